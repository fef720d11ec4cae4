"""Real kill -9, Ctrl-C, a second tune, and a run of failures: nothing done right is lost."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import QUIET_ENV, ROOT, run_cli

pytestmark = pytest.mark.slow
ARGS = ["tune", "configs/digits_smoke.yaml", "--set", "tuner.max_epochs=3"]


def _start(workdir: Path, name: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "search", *ARGS, "--name", name, *extra]
    return subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **QUIET_ENV}
    )


def _wait_for(proc: subprocess.Popen, prefix: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"exited before printing {prefix!r}: {proc.stderr.read()[-2000:]}")
        if line.startswith(prefix):
            return line
    raise TimeoutError(prefix)


def _outcome(run_dir: Path) -> dict:
    """{trial id: (status, hyperparameter values, score)}: what a search decided and found, independent
    of timing (a trial reads the same batches with the same seeds in whichever process runs it)."""
    out = {}
    for path in (run_dir / "tuner").glob("trial_*/trial.json"):
        state = json.loads(path.read_text())
        out[state["trial_id"]] = (state["status"], state["hyperparameters"]["values"], state["score"])
    return out


@pytest.fixture
def baseline(smoke_run):
    """The uninterrupted search: ARGS is the smoke config as it is (max_epochs 3), shared with every test."""
    return _outcome(smoke_run)


@pytest.mark.parametrize(
    "wait_for, delay",
    [
        ("starting run", 0.5),  # while the first trial builds or trains
        ("trial 0000", 0.0),  # between trials: the first just ended
        ("trial 0002", 0.8),  # in the middle of a later trial's epochs
    ],
)
def test_kill_9_then_rerun_resumes_to_the_same_search(workdir, baseline, wait_for, delay):
    proc = _start(workdir, "k")
    _wait_for(proc, wait_for)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    run_dir = workdir / "results" / "k"
    before = {t: s for t, (s, _, _) in _outcome(run_dir).items() if s == "COMPLETED"}

    resumed = run_cli(*ARGS, "--name", "k", cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming run" in resumed.stdout
    after = _outcome(run_dir)
    assert after == baseline  # same trials, configurations and scores, all completed once
    # Completed trials were kept, not re-run: the resumed run printed no line for them.
    for trial_id in before:
        assert f"trial {trial_id} " not in resumed.stdout


def test_a_second_tune_is_refused_and_a_stale_lock_is_taken_over(workdir):
    first = _start(workdir, "locked")
    _wait_for(first, "starting run")
    second = run_cli(*ARGS, "--name", "locked", cwd=workdir)
    assert second.returncode == 2
    assert f"in use by another ktsearch tune or finalize (PID {first.pid})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1

    os.kill(first.pid, signal.SIGKILL)  # a crash leaves the lock behind
    first.wait(30)
    lock = workdir / "results" / ".locked.lock"
    assert lock.read_text().strip().endswith(f":{first.pid}")
    third = run_cli(*ARGS, "--name", "locked", cwd=workdir)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "resuming run" in third.stdout and not lock.exists()


def test_ctrl_c_stops_quickly_with_exit_130_and_says_how_to_resume(workdir, baseline):
    proc = _start(workdir, "int")
    _wait_for(proc, "trial 0001")
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    code = proc.wait(30)
    assert code == 130 and time.monotonic() - start < 10
    stderr = proc.stderr.read()
    assert "interrupted; completed trials are kept; resume with: ktsearch tune configs/digits_smoke.yaml" in stderr
    assert "Traceback" not in stderr
    resumed = run_cli(*ARGS, "--name", "int", cwd=workdir)
    assert resumed.returncode == 0 and _outcome(workdir / "results" / "int") == baseline


def test_consecutive_failures_end_the_search_clearly_and_keep_results(workdir):
    args = ["--set", "hypermodel.name=tests.fixtures:PoisonedCNN", "--set", "search_space.model.poison=true"]
    args += ["--set", "tuner.max_consecutive_failed_trials=2"]
    proc = run_cli(*ARGS, "--name", "bad", *args, cwd=workdir, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("ktsearch: error: search stopped: 2 trials in a row failed")
    assert "Traceback" not in proc.stderr
    assert proc.stdout.count("diverged: loss became nan") == 2
    summary = json.loads((workdir / "results" / "bad" / "summary.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["FAILED", "FAILED"]


def test_keep_checkpoints_keeps_only_the_best_and_never_breaks_a_continuation(workdir):
    proc = run_cli(*ARGS, "--name", "kc", "--set", "tuner.keep_checkpoints=1", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = workdir / "results" / "kc"
    outcome = _outcome(run_dir)
    continuations = [t for t, (_, values, _) in outcome.items() if "tuner/trial_id" in values]
    assert continuations and all(status == "COMPLETED" for status, _, _ in outcome.values())
    summary = json.loads((run_dir / "summary.json").read_text())
    kept = {p.parent.name for p in (run_dir / "tuner").glob("trial_*/checkpoint.weights.h5")}
    assert kept == {f"trial_{summary['best_trial']}"}
    # A storage policy is not part of the search: changing it resumes instead of refusing.
    again = run_cli(*ARGS, "--name", "kc", "--set", "tuner.keep_checkpoints=2", cwd=workdir)
    assert again.returncode == 0 and "resuming run" in again.stdout


def test_atomic_write_leaves_the_old_file_whole_when_a_write_fails(tmp_path):
    from search.runs.layout import atomic_write, atomic_write_bytes

    target = tmp_path / "best.yaml"
    target.write_text("old: complete\n")

    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # fails after the temporary file exists
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "text, not bytes")
    assert target.read_text() == "old: complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["best.yaml"]  # no temporary file left behind
