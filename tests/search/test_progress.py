"""Live progress: trial n of N from the plan, best so far, elapsed and ETA; --quiet; a bar on a terminal."""

import os
import pty
import re
import sys
import time

import pytest

from search.engine.progress import Progress, clock
from tests.conftest import QUIET_ENV, run_cli

LINE = re.compile(
    r"^trial (\d{4}) .* \| \[(\d+)/(\d+)\] best (\d\.\d{4}) \((\d{4})\) \| (\d+:\d\d) elapsed, ~(\d+:\d\d) left$"
)


def test_eta_spends_the_rate_so_far_on_the_epochs_left():
    lines = []
    progress = Progress(planned_trials=10, planned_epochs=20, log=lines.append)
    progress.start = time.monotonic() - 10  # ten seconds into the search
    progress.trial("trial 0000: done", ended=1, epochs_granted=5, epochs_this_trial=5, best="0.5000 (0000)")
    assert lines == ["trial 0000: done | [1/10] best 0.5000 (0000) | 0:10 elapsed, ~0:30 left"]
    assert clock(3725) == "1:02:05" and clock(59.6) == "1:00"


def test_quiet_prints_no_trial_lines():
    lines = []
    progress = Progress(planned_trials=3, planned_epochs=3, log=lines.append, quiet=True)
    progress.trial("trial 0000: done", ended=1, epochs_granted=1, epochs_this_trial=1, best="0.5000 (0000)")
    progress.log("search finished")
    assert lines == ["search finished"]


@pytest.mark.slow
def test_each_trial_line_counts_against_the_plan(smoke_run):
    matches = [LINE.match(line) for line in (smoke_run / "tune.stdout").read_text().splitlines()]
    rows = [m.groups() for m in matches if m]
    assert [int(r[1]) for r in rows] == list(range(1, 7)) and {r[2] for r in rows} == {"6"}
    bests = [float(r[3]) for r in rows]
    assert bests == sorted(bests)  # the best so far never gets worse
    assert rows[-1][6] == "0:00"  # nothing left after the last planned trial


@pytest.mark.slow
def test_quiet_tune_prints_the_start_and_the_report_only(workdir):
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert not [line for line in proc.stdout.splitlines() if line.startswith("trial ")]
    assert proc.stdout.startswith("starting run") and "search finished: 6 of 6 trials completed" in proc.stdout


@pytest.mark.slow
def test_a_terminal_gets_a_status_bar(workdir):
    pid, fd = pty.fork()
    if pid == 0:  # the child: ktsearch on a pseudo-terminal
        os.chdir(workdir)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "search", "tune", "configs/digits_smoke.yaml"],
            {**os.environ, **QUIET_ENV},
        )
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out[-2000:]
    text = out.decode()
    assert "########################" in text and "[6/6] best" in text  # the bar, full at the end
    assert text.count("\r\x1b[K") >= 6  # redrawn under each trial line, then cleared
    assert "search finished: 6 of 6 trials completed" in text
