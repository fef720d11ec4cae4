"""Kill soak: a search SIGKILLed 20 times at seeded random moments, resumed each time, ends as the
uninterrupted search does; the same for a chief killed and restarted 20 times while two workers run
a random search.

Slow (minutes) and run only when asked: ``pytest --soak tests/search/test_soak.py -s`` (it prints
each kill's moment and the largest score difference). Both soaks train with one thread per process
(`--threads 1`), so a trial re-run after a kill computes what the killed attempt would have.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import QUIET_ENV, _free_port, run_cli
from tests.search.test_distributed import Proc, _config, finish_two_workers

pytestmark = [pytest.mark.slow, pytest.mark.soak]
KILLS = 20
SCORE_TOLERANCE = 0.0  # exact: a trial reads the same batches, seeds and threads wherever it runs
# Hyperband to 9 epochs, 4 iterations: 92 trials, about 35 s of search on 2 cores, so that 20 kills
# at 0.5-4 s into each resumed run (whose first trial traces its graphs for about 1.7 s) land before it ends.
SET = ["--set", "tuner.max_epochs=9", "--set", "tuner.hyperband_iterations=4", "--threads", "1", "--quiet"]


def _outcome(run_dir: Path) -> dict:
    """{trial id: (status, hyperparameter values, score)} of a run."""
    out = {}
    for path in sorted((run_dir / "tuner").glob("trial_*/trial.json")):
        state = json.loads(path.read_text())
        out[state["trial_id"]] = (state["status"], state["hyperparameters"]["values"], state["score"])
    return out


def _compare(soaked: dict, baseline: dict) -> float:
    """Assert the same trials, hyperparameters and statuses; return the largest score difference."""
    assert sorted(soaked) == sorted(baseline)
    for trial_id, (status, values, _) in baseline.items():
        assert soaked[trial_id][:2] == (status, values), trial_id
    return max(abs(soaked[t][2] - baseline[t][2]) for t in baseline)


def _wait_line(proc: subprocess.Popen, prefixes: tuple[str, ...], timeout: float = 120) -> bool:
    """Read the process's lines until one starts with a prefix (True) or it exits (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            return False
        if line.startswith(prefixes):
            return True
    raise TimeoutError(prefixes)


def test_a_search_killed_20_times_ends_as_the_uninterrupted_one(workdir):
    base = run_cli("tune", "configs/digits_smoke.yaml", *SET, "--name", "base", cwd=workdir)
    assert base.returncode == 0, base.stderr[-2000:]
    rng = random.Random(19)
    env = {**os.environ, **QUIET_ENV}
    cmd = [sys.executable, "-m", "search", "tune", "configs/digits_smoke.yaml", *SET, "--name", "soak"]
    moments = []
    for _ in range(KILLS):
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if rng.random() < 0.2:  # while TensorFlow and the data load, or the run directory is prepared
            when = ("start-up", rng.uniform(0.5, 4.0))
        else:  # while trials run
            assert _wait_line(proc, ("starting run", "resuming run")), "the search ended before 20 kills"
            when = ("search", rng.uniform(0.5, 4.0))
        time.sleep(when[1])
        assert proc.poll() is None, "the search ended before 20 kills: lengthen it"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        moments.append(f"{when[0]}+{when[1]:.2f}s")
    run_dir = workdir / "results" / "soak"
    done_before = sum(s == "COMPLETED" for s, _, _ in _outcome(run_dir).values())
    final = run_cli("tune", "configs/digits_smoke.yaml", *SET, "--name", "soak", cwd=workdir)
    assert final.returncode == 0, final.stderr[-2000:]
    baseline = _outcome(workdir / "results" / "base")
    worst = _compare(_outcome(run_dir), baseline)
    print(
        f"\nkill soak: {KILLS} SIGKILLs at {', '.join(moments)}; {done_before} of {len(baseline)} trials "
        f"completed before the last resume; same trials, hyperparameters and statuses; "
        f"largest score difference {worst:.3g}"
    )
    assert worst <= SCORE_TOLERANCE


def test_a_chief_killed_20_times_while_two_workers_run_ends_as_the_uninterrupted_search(workdir):
    # Random search: which trial a worker gets depends on timing, what each trial is does not (with
    # Hyperband, BOHB and ASHA the order trials finish in decides promotions, so two uninterrupted
    # distributed runs differ already: docs/algorithms.md). 150 trials of 3 epochs.
    config = _config(workdir, worker_timeout=600)  # workers are never handed on: only the chief dies
    raw = yaml.safe_load((workdir / config).read_text())
    raw["tuner"] = {**raw["tuner"], "algorithm": "random", "max_trials": 150, "max_epochs": 3}
    raw["tuner"].pop("factor", None)
    raw["tuner"].pop("hyperband_iterations", None)
    (workdir / config).write_text(yaml.safe_dump(raw))
    base = run_cli("tune", config, "--name", "base", "--threads", "1", "--quiet", cwd=workdir)
    assert base.returncode == 0, base.stderr[-2000:]

    port = _free_port()
    chief_args = ("tune", config, "--chief", "--bind", f"127.0.0.1:{port}", "--threads", "1", "--quiet")
    chief = Proc(workdir, *chief_args)
    chief.wait_for("serving the oracle")
    workers = {
        w: Proc(
            workdir, "tune", config, "--worker", "--oracle", f"127.0.0.1:{port}", "--worker-id", w, "--threads", "1"
        )
        for w in ("w1", "w2")
    }
    rng = random.Random(20)
    moments, kept = [], 0
    for _ in range(KILLS):
        chief.wait_for("serving the oracle")
        delay = rng.uniform(0.2, 2.0)
        time.sleep(delay)
        assert chief.p.poll() is None, "the search ended before 20 chief kills: lengthen it"
        chief.p.send_signal(signal.SIGKILL)
        chief.finish()
        (workdir / f"chief-{len(moments)}.log").write_text(chief.text())  # for a failure's post-mortem
        kept += any("stay with their workers" in line for line in chief.lines)
        moments.append(f"{delay:.2f}s")
        chief = Proc(workdir, *chief_args)  # the same command, as the docs say
    ran, summary = finish_two_workers(workdir, chief, workers)
    for name, proc in {"chief-last": chief, **workers}.items():
        (workdir / f"{name}.log").write_text(proc.text())
    for proc in workers.values():
        assert "handed to another worker" not in proc.text()  # no attempt was lost to a restart
    baseline = _outcome(workdir / "results" / "base")
    worst = _compare(_outcome(workdir / "results" / "digits-smoke"), baseline)
    print(
        f"\nchief soak: {KILLS} SIGKILLs of the chief at {', '.join(moments)} after it served; {kept} restarts "
        f"found trials running on the workers and left them there; w1 completed {len(ran['w1'])}, w2 "
        f"{len(ran['w2'])} of {len(summary['trials'])} trials; same trials, hyperparameters and statuses as one "
        f"uninterrupted process; largest score difference {worst:.3g}"
    )
    assert worst <= SCORE_TOLERANCE
