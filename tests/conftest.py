"""Shared fixtures: seeding, real CLI subprocesses, and one shared digits search."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

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
def smoke_run(tmp_path_factory) -> Path:
    """`ktsearch tune configs/digits_smoke.yaml`, run once for the whole session."""
    cwd = tmp_path_factory.mktemp("smoke")
    shutil.copytree(CONFIGS, cwd / "configs")
    proc = run_cli("tune", "configs/digits_smoke.yaml", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cwd / "results" / "digits-smoke"
    (run_dir / "tune.stdout").write_text(proc.stdout)
    return run_dir


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


def pytest_collection_modifyitems(config, items):
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="kill soak: run with pytest --soak tests/search/test_soak.py")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
