"""Shared fixtures: seeding, real CLI subprocesses, and one shared digits search."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    yield


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m search ARGS` as a real subprocess in `cwd`."""
    full_env = {**os.environ, **QUIET_ENV, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "search", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def tree_state(path: Path) -> dict:
    """{relative path: (size, mtime_ns)} of everything under `path` (to prove nothing changed)."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory with the project's configs, as a user would have."""
    shutil.copytree(CONFIGS, tmp_path / "configs")
    return tmp_path


@pytest.fixture(scope="session")
def smoke_run(algorithm_runs) -> Path:
    """`ktsearch tune configs/digits_smoke.yaml` (Hyperband), run once for the whole session: the contract's
    uninterrupted hyperband search."""
    return algorithm_runs.whole("hyperband")


# -- real searches per algorithm, shared ---------------------------------------------------------------------

SMOKE = "configs/digits_smoke.yaml"
ALGORITHM_SETTINGS = {
    # Enough of a digits search for the algorithm to be itself; an algorithm not listed runs the config's size.
    "bohb": ["tuner.hyperband_iterations=3", "tuner.bohb={min_points: 2}"],  # its model proposes from iteration 2
    "asha": ["tuner.max_trials=9"],  # rungs at 1 and 3 epochs: 12 trials
}


def algorithm_overrides(algorithm: str) -> list[str]:
    """`--set` items that turn the digits search into one of `algorithm`: the keys the smoke config sets that
    the algorithm does not read (`factor`) cleared, its own settings (ALGORITHM_SETTINGS) added."""
    from search.algorithms import ALGORITHMS, SPECIFIC_KEYS

    smoke = yaml.safe_load((CONFIGS / "digits_smoke.yaml").read_text())["tuner"]
    cleared = [f"tuner.{key}=null" for key in SPECIFIC_KEYS if key in smoke and key not in ALGORITHMS[algorithm].keys]
    return [f"tuner.algorithm={algorithm}", *cleared, *ALGORITHM_SETTINGS.get(algorithm, [])]


SHARED = re.compile(r"\[(runs-[\w.-]+)\]$")  # a test id that names the shared runs it reads


def algorithm_param(algorithm: str):
    """A test parameter for `algorithm` whose id (`runs-ALGORITHM`) keeps the tests that read its real runs
    (`algorithm_runs`) on one pytest-xdist worker (`pytest_xdist_make_scheduler`)."""
    return pytest.param(algorithm, id=f"runs-{algorithm}")


@functools.cache
def _shares_module_fixtures(path: str) -> bool:
    file = ROOT / path
    return file.is_file() and 'scope="module"' in file.read_text()


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's load scheduling, with the tests that share one run sent to one worker as a unit (each
    worker makes its own fixtures: split, a run would be made twice): the tests whose id names one algorithm's
    runs (`algorithm_param`), and the tests of a module with a module-scoped fixture. xdist's own
    `xdist_group` mark no longer groups under pytest 9.2 (it rewrites `item._nodeid`, which pytest 9.2 no
    longer reads)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedRunsScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            match = SHARED.search(nodeid)
            if match:
                return match.group(1)
            path = nodeid.split("::", 1)[0]
            return path if _shares_module_fixtures(path) else nodeid

    return SharedRunsScheduling(config, log)


@dataclasses.dataclass
class Killed:
    run_dir: Path
    before: set  # trials that had completed when the search was killed
    resumed: subprocess.CompletedProcess


@dataclasses.dataclass
class Distributed:
    run_dir: Path
    chief_text: str
    ran: dict  # worker -> trial ids it completed
    summary: dict


class AlgorithmRuns:
    """Real `ktsearch tune` runs of the digits search per algorithm, each made once per session (per xdist
    worker: the tests that read one go to one worker, `pytest_xdist_make_scheduler`) and read by every test that needs it."""

    def __init__(self, factory):
        self.factory = factory
        self.cache: dict = {}

    def config(self, algorithm: str):
        from search.config import load_config

        return load_config(CONFIGS / "digits_smoke.yaml", algorithm_overrides(algorithm))

    def _once(self, key, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def _workdir(self, name: str) -> Path:
        cwd = self.factory.mktemp(name)
        shutil.copytree(CONFIGS, cwd / "configs")
        return cwd

    def whole(self, algorithm: str) -> Path:
        """The uninterrupted search's run directory, `results/digits-smoke` (its output in `tune.stdout`); the
        hyperband one is `ktsearch tune configs/digits_smoke.yaml` itself (`smoke_run`)."""

        def make():
            cwd = self._workdir(f"whole-{algorithm}")
            sets = [a for s in algorithm_overrides(algorithm) for a in ("--set", s)]
            proc = run_cli("tune", SMOKE, *sets, cwd=cwd)
            assert proc.returncode == 0, proc.stderr[-3000:]
            run_dir = cwd / "results" / "digits-smoke"
            (run_dir / "tune.stdout").write_text(proc.stdout)
            return run_dir

        return self._once(("whole", algorithm), make)

    def killed_and_resumed(self, algorithm: str) -> Killed:
        """The same search SIGKILLed once half its planned trials had ended, then resumed to the end."""

        def make():
            from search.algorithms.schedule import make_plan

            cwd = self._workdir(f"cut-{algorithm}")
            sets = [a for s in algorithm_overrides(algorithm) for a in ("--set", s)]
            half = max(1, make_plan(self.config(algorithm))["trials"] // 2)
            cmd = [sys.executable, "-m", "search", "tune", SMOKE, "--name", "cut", *sets]
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, **QUIET_ENV},
            )
            ended, deadline = 0, time.monotonic() + 300
            while ended < half and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    break
                ended += bool(TRIAL_LINE.match(line))
            time.sleep(0.3)  # into the next trial
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            assert ended == half, f"the search ended before its trial {half} ({ended} trials)"
            run_dir = cwd / "results" / "cut"
            before = {
                path.parent.name.removeprefix("trial_")
                for path in (run_dir / "tuner").glob("trial_*/trial.json")
                if json.loads(path.read_text())["status"] == "COMPLETED"
            }
            resumed = run_cli("tune", SMOKE, "--name", "cut", *sets, cwd=cwd)
            assert resumed.returncode == 0, resumed.stderr[-3000:]
            return Killed(run_dir, before, resumed)

        return self._once(("killed", algorithm), make)

    def distributed(self, algorithm: str) -> Distributed:
        """A chief and workers w1, w2 to the end (`finish_two_workers` checks exactly-once)."""

        def make():
            import yaml

            from tests.search.test_distributed import run_with_two_workers

            cwd = self._workdir(f"dist-{algorithm}")
            raw = yaml.safe_load((cwd / SMOKE).read_text())
            from search.config import apply_overrides, parse_overrides

            raw = apply_overrides(raw, parse_overrides(algorithm_overrides(algorithm)))
            (cwd / "configs" / "dist.yaml").write_text(yaml.safe_dump(raw))
            chief, ran, summary = run_with_two_workers(cwd, "configs/dist.yaml")
            return Distributed(cwd / "results" / "digits-smoke", chief.text(), ran, summary)

        return self._once(("distributed", algorithm), make)


TRIAL_LINE = re.compile(r"^trial \S+ .*\| \[\d+/\d+\]")  # a trial's end, as `tune` prints it


@pytest.fixture(scope="session")
def algorithm_runs(tmp_path_factory) -> AlgorithmRuns:
    return AlgorithmRuns(tmp_path_factory)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoardServer:
    """A real TensorBoard process on 127.0.0.1; `get` and `post` speak JSON to it."""

    def __init__(self, logdir: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--reload_interval", "0"]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **QUIET_ENV}
        )

    def wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()[-2000:]
            with contextlib.suppress(OSError):
                if self.get("/data/plugins_listing"):
                    return
            time.sleep(0.5)
        raise TimeoutError("TensorBoard did not answer")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict):
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc.kill()


@contextlib.contextmanager
def tensorboard_server(logdir: Path):
    server = TensorBoardServer(logdir)
    try:
        server.wait()
        yield server
    finally:
        server.stop()


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true", help="also run the kill soak (tests marked soak; minutes)")


@pytest.fixture(scope="module")
def eager_keras():
    """Keras's train and test steps run eagerly for a module: for tests of a tuner's contract, where a graph traced
    for every model of a few samples costs more than its training (KerasTuner's contract tests: 222 s -> 68 s)."""
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def pytest_collection_finish(session):
    # Everything imported so far (TensorFlow, Keras, the test modules) lives as long as the process: out of
    # the collector's way. KerasTuner's tuners call gc.collect() before every model they build, which in a
    # test process scanned all of it again (0.25 s a trial, 3 of a 7 s KerasTuner contract test).
    import gc

    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config, items):
    # The end-to-end runs first: pytest-xdist hands tests out in this order as workers free up, so a long
    # run started last would keep one worker busy while the other idles (the same order on every worker).
    items.sort(key=lambda item: "slow" not in item.keywords)
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="kill soak: run with pytest --soak tests/search/test_soak.py")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
