"""Faults that lose nothing: a full or read-only disk mid-search, mid-export, mid-train. Real CLI
processes; a real small tmpfs where the machine lets the tests mount one, and an injected OSError
(tests/faults/sitecustomize.py) at each of ktsearch's write sites everywhere."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from search.errors import EXIT_STORAGE
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
FAULTS = ROOT / "tests" / "faults"


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ktsearch: error:")]


def _statuses(run: Path) -> list[str]:
    return [json.loads(p.read_text())["status"] for p in sorted(run.glob("tuner/trial_*/trial.json"))]


def _all_json_whole(root: Path) -> None:
    for path in root.rglob("*.json"):
        json.loads(path.read_text())  # raises on a half-written file


def _fault(glob: str, code: str = "ENOSPC") -> dict:
    return {"PYTHONPATH": f"{FAULTS}:{ROOT}", "KTSEARCH_FAULT_PATH": glob, "KTSEARCH_FAULT_ERRNO": code}


@pytest.mark.parametrize(
    "site", ["*/tuner/trial_0002/epochs.json", "*/tuner/trial_0003/trial.json", "*/tuner/oracle.json"]
)
def test_a_failed_write_during_the_search_stops_it_and_the_rerun_completes(workdir, site):
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--quiet", cwd=workdir, env=_fault(site))
    assert proc.returncode == EXIT_STORAGE, proc.stderr[-3000:]
    [line] = _errors(proc.stderr)
    assert "no space left on the device (ENOSPC)" in line and "then rerun: ktsearch tune" in line
    assert site.replace("*", "") in line  # the path that failed
    assert "Traceback" not in proc.stderr
    run = workdir / "results" / "digits-smoke"
    assert "FAILED" not in _statuses(run) and "INVALID" not in _statuses(run)  # not the trial's fault
    _all_json_whole(run)
    again = run_cli("tune", "configs/digits_smoke.yaml", "--quiet", cwd=workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(_statuses(run)) == {"COMPLETED"} and len(_statuses(run)) == 6


def test_failed_writes_of_export_finalize_and_train_keep_the_old_files(smoke_run, tmp_path):
    run = tmp_path / "results" / "digits-smoke"
    shutil.copytree(smoke_run, run)
    best = run / "best.yaml"
    best.write_text("# an earlier export\n")
    proc = run_cli("export", "results/digits-smoke", cwd=tmp_path, env=_fault("*/best.yaml", "EROFS"))
    assert proc.returncode == EXIT_STORAGE and "best.yaml: read-only file system (EROFS)" in _errors(proc.stderr)[0]
    assert best.read_text() == "# an earlier export\n"  # whole, the old one
    assert run_cli("export", "results/digits-smoke", cwd=tmp_path).returncode == 0
    proc = run_cli(
        "finalize",
        "results/digits-smoke",
        "--top",
        "1",
        "--seeds",
        "2",
        cwd=tmp_path,
        env=_fault("*/finalize/results.json", "EIO"),
    )
    assert proc.returncode == EXIT_STORAGE and "input/output error (EIO)" in _errors(proc.stderr)[0]
    assert not (run / "finalize" / "results.json").exists()
    proc = run_cli("train", str(best), "--quiet", "--no-serving", cwd=tmp_path, env=_fault("*/train/model.keras"))
    assert proc.returncode == EXIT_STORAGE and "model.keras: no space left" in _errors(proc.stderr)[0]
    assert not (run / "train" / "model.keras").exists() and not (run / "train" / "metrics.json").exists()
    again = run_cli("train", str(best), "--quiet", "--no-serving", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]


def _mount(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_a_really_full_disk_stops_the_search_and_it_resumes_once_there_is_space(workdir, tmp_path):
    small = tmp_path / "small"
    if not _mount(small, "700k"):
        pytest.skip("cannot mount a small tmpfs on this machine (needs root); the injected faults above still run")
    try:
        proc = run_cli("tune", "configs/digits_smoke.yaml", "--results-dir", str(small), "--quiet", cwd=workdir)
        assert proc.returncode == EXIT_STORAGE, proc.stderr[-3000:]
        [line] = _errors(proc.stderr)
        assert str(small) in line and "(ENOSPC)" in line and "Traceback" not in proc.stderr
        run = small / "digits-smoke"
        assert "FAILED" not in _statuses(run) and "INVALID" not in _statuses(run)
        _all_json_whole(run)
        subprocess.run(["mount", "-o", "remount,size=30m", str(small)], check=True)  # space is back
        again = run_cli("tune", "configs/digits_smoke.yaml", "--results-dir", str(small), "--quiet", cwd=workdir)
        assert again.returncode == 0, again.stderr[-3000:]
        assert set(_statuses(run)) == {"COMPLETED"} and len(_statuses(run)) == 6
        subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)  # and now read-only
        proc = run_cli("export", str(run), cwd=workdir)
        assert proc.returncode == EXIT_STORAGE and "(EROFS)" in _errors(proc.stderr)[0]
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
