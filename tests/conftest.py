"""Shared fixtures: seeding, real CLI subprocesses, and one shared digits search."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
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
