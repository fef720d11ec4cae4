"""Distributed search: KerasTuner's chief/worker mode through `ktsearch tune --chief/--worker`,
lost and paused workers, and MirroredStrategy per trial. Real processes, real signals."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from search.distributed.role import Role, exposure_warning, resolve_role
from search.errors import UserError
from tests.conftest import QUIET_ENV, ROOT, _free_port, algorithm_param, run_cli

# -- roles: flags and KerasTuner's environment variables (no TensorFlow) ------------------


def test_roles_from_flags():
    assert resolve_role(environ={}) == Role()
    assert resolve_role(chief=True, environ={}) == Role("chief", "127.0.0.1", 8000)
    assert resolve_role(chief=True, bind="0.0.0.0:0", environ={}) == Role("chief", "0.0.0.0", 0)
    worker = resolve_role(worker=True, oracle="10.0.0.5:9000", worker_id="gpu-3", environ={})
    assert worker == Role("worker", "10.0.0.5", 9000, "gpu-3")
    assert resolve_role(worker=True, oracle="h:1", environ={}).worker_id.startswith("worker-")


def test_roles_from_kerastuner_environment():
    env = {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8001"}
    assert resolve_role(environ=env) == Role("chief", "127.0.0.1", 8001)
    env["KERASTUNER_TUNER_ID"] = "tuner1"
    assert resolve_role(environ=env) == Role("worker", "127.0.0.1", 8001, "tuner1")
    # flags win over the environment
    assert resolve_role(worker=True, oracle="h:2", worker_id="w", environ=env) == Role("worker", "h", 2, "w")
    with pytest.raises(UserError, match="KERASTUNER_ORACLE_PORT"):
        resolve_role(environ={"KERASTUNER_TUNER_ID": "t", "KERASTUNER_ORACLE_IP": "h"})
    with pytest.raises(UserError, match="KERASTUNER_ORACLE_IP/KERASTUNER_ORACLE_PORT"):
        resolve_role(environ={**env, "KERASTUNER_ORACLE_PORT": "x"})


def test_only_an_open_bind_warns():
    assert exposure_warning(Role("chief", "127.0.0.1", 8000)) is None
    assert exposure_warning(Role("chief", "10.1.2.3", 8000)) is None
    assert "every network interface" in exposure_warning(Role("chief", "0.0.0.0", 8000))


# -- real chief and workers ----------------------------------------------------------------


class Proc:
    """A `python -m search ...` subprocess whose output lines are collected as they come."""

    def __init__(self, cwd: Path, *args: str):
        env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT)}
        self.p = subprocess.Popen(
            [sys.executable, "-m", "search", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, fragment: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if fragment in line:
                    return line
            if self.p.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {fragment!r}:\n" + "\n".join(self.lines[-40:]))

    def finish(self, timeout: float = 600) -> int:
        code = self.p.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code

    def text(self) -> str:
        return "\n".join(self.lines)


def _config(workdir: Path, iterations: int = 1, **distribution) -> str:
    raw = yaml.safe_load((workdir / "configs" / "digits_smoke.yaml").read_text())
    raw["distribution"] = distribution
    raw["tuner"]["hyperband_iterations"] = iterations
    (workdir / "configs" / "dist.yaml").write_text(yaml.safe_dump(raw))
    return "configs/dist.yaml"


def _completed_by(worker: Proc) -> list[str]:
    """Trial ids a worker reported completed (its per-trial lines)."""
    return [
        line.split()[1].rstrip(":") for line in worker.lines if line.startswith("trial ") and " completed [" in line
    ]


def _start(workdir: Path, config: str, workers: list[str]) -> tuple[Proc, dict[str, Proc]]:
    port = _free_port()
    chief = Proc(workdir, "tune", config, "--chief", "--bind", f"127.0.0.1:{port}", "--threads", "1")
    chief.wait_for("serving the oracle")
    procs = {
        w: Proc(
            workdir, "tune", config, "--worker", "--oracle", f"127.0.0.1:{port}", "--worker-id", w, "--threads", "1"
        )
        for w in workers
    }
    return chief, procs


def run_with_two_workers(workdir: Path, config: str) -> tuple[Proc, dict, dict]:
    """A chief and workers w1, w2 to the end: (chief, {worker: trial ids it completed}, summary),
    having checked that every trial ran exactly once, completed, and both workers worked."""
    chief, workers = _start(workdir, config, ["w1", "w2"])
    ran, summary = finish_two_workers(workdir, chief, workers)
    return chief, ran, summary


def finish_two_workers(workdir: Path, chief: Proc, workers: dict[str, Proc]) -> tuple[dict, dict]:
    """Wait for a started chief and workers w1, w2 to end: ({worker: trial ids it completed}, summary),
    having checked that every trial ran exactly once, completed, and both workers worked."""
    assert chief.finish() == 0, chief.text()
    for proc in workers.values():
        assert proc.finish() == 0, proc.text()
    summary = json.loads((workdir / "results" / "digits-smoke" / "summary.json").read_text())
    ran = {w: _completed_by(p) for w, p in workers.items()}
    every = ran["w1"] + ran["w2"]
    assert len(every) == len(set(every))  # no trial ran twice
    assert set(every) == {t["trial_id"] for t in summary["trials"]}  # and every trial ran
    assert all(t["status"] == "COMPLETED" for t in summary["trials"])
    assert ran["w1"] and ran["w2"]  # both workers worked
    return ran, summary


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [algorithm_param("hyperband")])
def test_chief_and_two_workers_run_every_trial_exactly_once(algorithm_runs, tmp_path, algorithm):
    run = algorithm_runs.distributed(algorithm)  # the contract's run: exactly once, both workers worked
    ran, summary, chief_text = run.ran, run.summary, run.chief_text
    run_dir = tmp_path / "results" / "digits-smoke"
    shutil.copytree(run.run_dir, run_dir)  # export and report write into it: the shared run stays as it ended
    assert len(summary["trials"]) == 6  # the smoke budget
    assert f"trials completed per worker: w1 {len(ran['w1'])}, w2 {len(ran['w2'])}" in chief_text
    assert "search finished" in chief_text
    assert [
        line for line in chief_text.splitlines() if " | [6/6] best " in line
    ]  # the chief's progress counts every worker's trials
    proc = run_cli("export", str(run_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((run_dir / "best.yaml").read_text())["provenance"]["trial_id"] == summary["best_trial"]
    # The chief's timeline: which worker ran each trial, when; the report reads the workers' utilisation from it.
    timeline = json.loads((run_dir / "tuner" / "oracle.json").read_text())["ktsearch_budget"]["timeline"]
    assert {tid: worker for tid, (worker, _, _) in timeline.items()} == {
        tid: worker for worker, ids in ran.items() for tid in ids
    }
    assert run_cli("report", str(run_dir), cwd=tmp_path).returncode == 0
    assert "2 workers ran 6 trials in" in (run_dir / "report.md").read_text()


@pytest.mark.slow
def test_a_worker_killed_mid_trial_loses_only_its_attempt(workdir):
    config = _config(workdir, worker_timeout=4)
    chief, workers = _start(workdir, config, ["w1", "w2"])
    line = chief.wait_for("-> w1")  # w1 now holds a trial and is building or training it
    lost = line.split()[1]
    workers["w1"].p.send_signal(signal.SIGKILL)
    assert chief.finish() == 0, chief.text()
    assert workers["w2"].finish() == 0, workers["w2"].text()
    workers["w1"].finish()
    log = chief.text()
    assert f"worker w1 silent for 4 s: trial {lost} goes back to the queue" in log
    assert f"trial {lost} -> w2" in log
    summary = json.loads((workdir / "results" / "digits-smoke" / "summary.json").read_text())
    assert all(t["status"] == "COMPLETED" for t in summary["trials"])
    completed = _completed_by(workers["w1"]) + _completed_by(workers["w2"])
    assert lost in _completed_by(workers["w2"]) and lost not in _completed_by(workers["w1"])
    assert len(completed) == len(set(completed)) and set(completed) == {t["trial_id"] for t in summary["trials"]}


@pytest.mark.slow
def test_a_killed_worker_restarted_with_its_id_takes_its_trial_back(workdir):
    config = _config(workdir, worker_timeout=600)  # longer than the test: no handing on
    chief, workers = _start(workdir, config, ["w1"])
    held = chief.wait_for("-> w1").split()[1]
    workers["w1"].p.send_signal(signal.SIGKILL)
    workers["w1"].finish()
    address = re.search(r"serving the oracle on (\S+);", chief.wait_for("serving the oracle on")).group(1)
    again = Proc(workdir, "tune", config, "--worker", "--oracle", address, "--worker-id", "w1", "--threads", "1")
    assert chief.finish() == 0, chief.text()
    assert again.finish() == 0, again.text()
    assert held == _completed_by(again)[0]  # KerasTuner gives a returning worker its ongoing trial first
    assert "silent" not in chief.text()
    summary = json.loads((workdir / "results" / "digits-smoke" / "summary.json").read_text())
    assert sorted(_completed_by(again)) == sorted(t["trial_id"] for t in summary["trials"])


@pytest.mark.slow
def test_a_chief_killed_while_workers_run_leaves_their_trials_with_them(workdir):
    config = _config(workdir, worker_timeout=600)
    raw = yaml.safe_load((workdir / config).read_text())
    raw["tuner"] = {"algorithm": "random", "max_trials": 12, "max_epochs": 3, "objective": "val_accuracy"}
    (workdir / config).write_text(yaml.safe_dump(raw))
    chief, workers = _start(workdir, config, ["w1", "w2"])
    held = {w: chief.wait_for(f"-> {w}").split()[1] for w in ("w1", "w2")}
    address = re.search(r"serving the oracle on (\S+);", chief.wait_for("serving the oracle on")).group(1)
    chief.p.send_signal(signal.SIGKILL)  # while both workers train
    chief.finish()
    again = Proc(workdir, "tune", config, "--chief", "--bind", address, "--threads", "1")
    kept = again.wait_for("stay with their workers")
    for worker, trial_id in held.items():
        # kept, or reported to the first chief before the kill
        assert f"{trial_id} ({worker})" in kept or f"trial {trial_id} completed on {worker}" in chief.text()
    ran, summary = finish_two_workers(workdir, again, workers)
    assert len(summary["trials"]) == 12
    for proc in workers.values():  # no attempt was lost to the restart, nothing ran twice
        assert "handed to another worker" not in proc.text()


@pytest.mark.slow
def test_a_paused_worker_reporting_late_is_fenced_off(workdir):
    # 24 trials, so that w2 is still busy when w1 resumes (with 12, a fast CPU ended the search first)
    config = _config(workdir, iterations=4, worker_timeout=3)
    chief, workers = _start(workdir, config, ["w1", "w2"])
    held = chief.wait_for("-> w1").split()[1]
    workers["w1"].p.send_signal(signal.SIGSTOP)
    chief.wait_for(f"worker w1 silent for 3 s: trial {held} goes back to the queue", timeout=60)
    chief.wait_for(f"trial {held} -> w2", timeout=120)
    workers["w1"].p.send_signal(signal.SIGCONT)  # w1 finishes the trial it no longer holds
    for proc in (chief, *workers.values()):
        assert proc.finish() == 0, proc.text()
    assert f"trial {held}: dropped the late report of w1" in chief.text()
    assert f"trial {held}: handed to another worker while this one was silent" in workers["w1"].text()
    ends = [line for line in chief.lines if line.startswith(f"trial {held} ") and " on w" in line]
    assert len(ends) == 1 and ends[0].startswith(f"trial {held} completed on w2")  # counted once, for w2
    completed = _completed_by(workers["w1"]) + _completed_by(workers["w2"])
    assert held in _completed_by(workers["w2"]) and held not in _completed_by(workers["w1"])
    summary = json.loads((workdir / "results" / "digits-smoke" / "summary.json").read_text())
    trials = 24  # 4 Hyperband iterations of digits_smoke's 6 trials
    assert len(completed) == len(set(completed)) == len(summary["trials"]) == trials
    oracle = json.loads((workdir / "results" / "digits-smoke" / "tuner" / "oracle.json").read_text())
    assert len(oracle["end_order"]) == len(set(oracle["end_order"])) == trials


@pytest.mark.slow
def test_a_worker_back_after_the_search_ended_stops_instead_of_waiting(workdir):
    config = _config(workdir, worker_timeout=3)
    chief, workers = _start(workdir, config, ["w1", "w2"])
    held = chief.wait_for("-> w1").split()[1]
    workers["w1"].p.send_signal(signal.SIGSTOP)
    assert chief.finish() == 0, chief.text()  # w2 ran everything, w1's trial included
    assert f"trial {held} completed on w2" in chief.text()
    workers["w1"].p.send_signal(signal.SIGCONT)
    assert workers["w1"].finish(timeout=120) == 0, workers["w1"].text()
    assert "stopping: the chief has ended the search" in workers["w1"].text()
    assert held not in _completed_by(workers["w1"])
    assert workers["w2"].finish() == 0


@pytest.mark.slow
def test_the_consecutive_failure_limit_stops_chief_and_workers(workdir):
    raw = yaml.safe_load((workdir / "configs" / "digits_smoke.yaml").read_text())
    raw["hypermodel"]["name"] = "tests.fixtures:PoisonedCNN"
    raw["search_space"]["model"]["poison"] = True  # every trial diverges
    raw["tuner"]["max_consecutive_failed_trials"] = 2
    (workdir / "configs" / "poison.yaml").write_text(yaml.safe_dump(raw))
    chief, workers = _start(workdir, "configs/poison.yaml", ["w1", "w2"])
    assert chief.finish() == 1, chief.text()
    assert "search stopped: 2 trials in a row failed" in chief.text()
    for proc in workers.values():
        assert proc.finish() == 0, proc.text()
    summary = json.loads((workdir / "results" / "digits-smoke" / "summary.json").read_text())
    failed = [t for t in summary["trials"] if t["status"] == "FAILED"]
    assert len(failed) >= 2 and all("diverged" in t["message"] for t in failed)
    assert all(t["status"] != "RUNNING" for t in summary["trials"])  # saved as they ended, none left hanging


@pytest.mark.slow
def test_mirrored_strategy_trains_each_trial_on_two_logical_devices(workdir, tmp_path):
    probe = tmp_path / "probe.jsonl"
    script = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from search import tune
lines = []
summary = tune("configs/digits_smoke.yaml", {
    "hypermodel.name": "tests.fixtures:ReplicaProbeCNN",
    "distribution.strategy": "mirrored",
    "distribution.devices": ["/cpu:0", "/cpu:1"],
}, log=lines.append)
print(json.dumps({"lines": lines, "statuses": [t["status"] for t in summary["trials"]]}))
"""
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT), "KTSEARCH_PROBE": str(probe)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert any("2 replica(s) (MirroredStrategy over" in line for line in out["lines"])
    assert out["statuses"] and set(out["statuses"]) == {"COMPLETED"}
    records = [json.loads(line) for line in probe.read_text().splitlines()]
    assert len(records) == len(out["statuses"])  # every trial, reused compiled models included
    for record in records:
        assert record["replicas"] == 2
        assert record["variable"] == "MirroredVariable"
        assert [d.rsplit("/", 1)[-1] for d in record["devices"]] == ["device:CPU:0", "device:CPU:1"]
