"""`ktsearch finalize`: the top configurations retrained with several seeds, through real CLI processes."""

import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from search.production.statistics import spread, summarize, verdict
from search.runs import layout
from search.runs.layout import distinct_top
from tests.conftest import QUIET_ENV, run_cli, tensorboard_server

T_975_2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (tables)


def _copy(smoke_run: Path, cwd: Path) -> Path:
    run = cwd / "results" / "digits-smoke"
    shutil.copytree(smoke_run, run)
    return run


def _trial(trial_id: str, score: float, values: dict) -> dict:
    return {"trial_id": trial_id, "status": "COMPLETED", "score": score, "hyperparameters": values}


# -- the rule, on hand-worked numbers (no training) -------------------------------------------


def test_a_continuation_is_the_same_configuration_and_only_its_best_trial_counts():
    trials = [
        _trial("0000", 0.90, {"a": 1}),
        _trial("0001", 0.95, {"a": 2}),
        _trial("0002", 0.97, {"a": 2}),  # 0001 continued: the same configuration, scored better
        _trial("0003", 0.93, {"a": 3}),
        {**_trial("0004", None, {"a": 4}), "status": "FAILED"},
    ]
    assert [t["trial_id"] for t in distinct_top(trials, "val_accuracy", 3)] == ["0002", "0003", "0000"]
    assert [t["trial_id"] for t in distinct_top(trials, "val_loss", 2)] == ["0000", "0003"]  # lower is better


def test_spread_is_the_mean_the_sample_sd_and_the_student_t_interval():
    s = spread([0.90, 0.92, 0.94])
    assert s["mean"] == pytest.approx(0.92) and s["sd"] == pytest.approx(0.02)
    half = T_975_2 * 0.02 / math.sqrt(3)  # 0.0497
    assert s["ci"] == pytest.approx([0.92 - half, 0.92 + half])
    assert spread([0.9, 0.8])["ci"] == pytest.approx([0.2147, 1.4853], abs=1e-4)  # 0.85 ± 12.706 · 0.0707 / √2
    assert spread([0.9])["sd"] is None and spread([0.9])["ci"] is None


class _Config:
    class tuner:
        objective = "val_accuracy"

    run_dir = Path("results/x")


def _results(scores: dict) -> dict:
    return {
        f"{tid}/seed_{s}": {"seed": s, "objective": v, "test": {"accuracy": v}, "epochs_requested": 5, "seconds": 1.0}
        for tid, values in scores.items()
        for s, v in enumerate(values, 1)
    }


def test_the_pick_is_by_mean_and_overlapping_intervals_are_within_noise():
    chosen = [_trial("0007", 0.99, {"a": 1}), _trial("0003", 0.98, {"a": 2}), _trial("0001", 0.97, {"a": 3})]
    # 0003 ranked second in the search but has the best mean; 0007 overlaps it, 0001 is far below.
    scores = {"0007": [0.950, 0.960, 0.955], "0003": [0.962, 0.958, 0.960], "0001": [0.900, 0.905, 0.902]}
    summary = summarize(_Config, chosen, _results(scores), [1, 2, 3])
    assert summary["winner"] == "0003" and [r["trial_id"] for r in summary["finalists"]] == ["0003", "0007", "0001"]
    by_id = {r["trial_id"]: r for r in summary["finalists"]}
    assert by_id["0007"]["within_noise"] is True and by_id["0001"]["within_noise"] is False
    assert summary["within_noise_of_winner"] == ["0007"] and not summary["told_apart"]
    assert "cannot tell them apart" in verdict(summary) and "0007" in verdict(summary)
    scores["0007"] = [0.930, 0.932, 0.931]  # now clearly below
    summary = summarize(_Config, chosen, _results(scores), [1, 2, 3])
    assert summary["told_apart"] and "beyond the seed noise" in verdict(summary)
    one_seed = summarize(_Config, chosen, _results({k: v[:1] for k, v in scores.items()}), [1])
    assert not one_seed["told_apart"] and "one seed each gives no interval" in verdict(one_seed)
    partial = summarize(_Config, chosen, _results({"0007": [0.95], "0003": [0.96, 0.95], "0001": []}), [1, 2])
    assert not partial["complete"] and partial["finalists"][-1]["trial_id"] == "0001"


# -- a real finalize of the smoke search --------------------------------------------------------


@pytest.fixture(scope="module")
def finalized(smoke_run, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("finalize")
    run = _copy(smoke_run, cwd)
    proc = run_cli("finalize", "results/digits-smoke", "--top", "2", "--seeds", "3", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, proc


@pytest.mark.slow
def test_finalize_retrains_the_top_distinct_configurations_with_every_seed(finalized):
    run, proc = finalized
    summary = json.loads((run / "finalize" / "finalists.json").read_text())
    results = json.loads((run / "finalize" / "results.json").read_text())
    trials = {t["trial_id"]: t for t in layout.read_trials(run)}
    expected = distinct_top(list(trials.values()), "val_accuracy", 2)
    assert sorted(r["trial_id"] for r in summary["finalists"]) == sorted(t["trial_id"] for t in expected)
    assert summary["finalists"][0]["hyperparameters"] != summary["finalists"][1]["hyperparameters"]
    assert len(results) == 6 and summary["complete"] and summary["seeds"] == [1, 2, 3]
    for row in summary["finalists"]:
        mine = [results[f"{row['trial_id']}/seed_{s}"] for s in (1, 2, 3)]
        record = trials[row["trial_id"]]["record"]
        assert all(r["epochs_requested"] == record["best_epoch"] + 1 for r in mine)  # the exported epochs
        values = [r["validation"]["accuracy"] for r in mine]  # the objective, after best weights are restored
        assert row["objective"]["values"] == values
        assert row["objective"]["mean"] == pytest.approx(statistics.fmean(values))
        assert row["objective"]["sd"] == pytest.approx(statistics.stdev(values))
        half = T_975_2 * statistics.stdev(values) / math.sqrt(3)
        assert row["objective"]["ci"] == pytest.approx(
            [statistics.fmean(values) - half, statistics.fmean(values) + half]
        )
        assert row["test_accuracy"]["values"] == [r["test"]["accuracy"] for r in mine]
        # Seed 1 builds and compiles; seeds 2 and 3 train in that compiled model.
        assert [r["reused_compiled_model"] for r in mine] == [False, True, True]
    means = {r["trial_id"]: r["objective"]["mean"] for r in summary["finalists"]}
    assert summary["winner"] == max(means, key=means.get)
    a, b = (r["objective"]["ci"] for r in summary["finalists"])
    assert summary["told_apart"] == (not (a[0] <= b[1] and b[0] <= a[1]))
    assert any(len(set(r["objective"]["values"])) > 1 for r in summary["finalists"])  # seeds do vary the training
    assert "| rank | trial |" in proc.stdout and f"Pick: trial {summary['winner']}" in proc.stdout


@pytest.mark.slow
def test_export_takes_the_finalists_pick_and_train_at_a_seed_reproduces_that_seed(finalized, tmp_path):
    run, _ = finalized
    cwd = run.parents[1]
    summary = json.loads((run / "finalize" / "finalists.json").read_text())
    results = json.loads((run / "finalize" / "results.json").read_text())
    out = tmp_path / "best.yaml"
    proc = run_cli("export", "results/digits-smoke", "-o", str(out), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "ranking: the finalists' (mean of 3 seed(s) per configuration)" in proc.stdout
    export = yaml.safe_load(out.read_text())
    prov = export["provenance"]
    assert prov["ranking"] == "finalists" and prov["trial_id"] == summary["winner"]
    assert [r["trial_id"] for r in prov["finalists"]["table"]] == [r["trial_id"] for r in summary["finalists"]]
    assert prov["finalists"]["table"][0]["sd"] == pytest.approx(summary["finalists"][0]["objective"]["sd"])
    assert prov["finalists"]["told_apart"] == summary["told_apart"] and prov["finalists"]["seeds"] == [1, 2, 3]
    assert "finalists' pick" in out.read_text().splitlines()[0]
    # `train --seed 2` of the export is finalize's seed-2 training of that configuration: same split, and
    # the reused compiled model trained exactly as a fresh one.
    proc = run_cli("train", str(out), "--seed", "2", "--no-serving", "--quiet", "-o", str(tmp_path / "t"), cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    mine = results[f"{summary['winner']}/seed_2"]
    assert metrics["validation"]["accuracy"] == pytest.approx(mine["validation"]["accuracy"], abs=1e-6)
    assert metrics["test"]["accuracy"] == pytest.approx(mine["test"]["accuracy"], abs=1e-6)
    assert metrics["search"]["finalists_mean"] == pytest.approx(summary["finalists"][0]["objective"]["mean"])
    assert "finalists' mean over seeds" in proc.stdout


@pytest.mark.slow
def test_export_falls_back_to_the_search_when_its_best_came_after_the_finalists(finalized, tmp_path):
    run, _ = finalized
    stale = tmp_path / "results" / "digits-smoke"
    shutil.copytree(run, stale)
    path = stale / "finalize" / "finalists.json"
    summary = json.loads(path.read_text())
    best = layout.best_trial(layout.read_trials(stale), "val_accuracy")
    summary["finalists"] = [r for r in summary["finalists"] if r["hyperparameters"] != best["hyperparameters"]]
    summary["winner"] = summary["finalists"][0]["trial_id"]
    path.write_text(json.dumps(summary))
    proc = run_cli("export", "results/digits-smoke", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"its best trial {best['trial_id']} came after the finalists" in proc.stdout
    prov = yaml.safe_load((stale / "best.yaml").read_text())["provenance"]
    assert prov["ranking"] == "search" and prov["trial_id"] == best["trial_id"] and "finalists" not in prov
    proc = run_cli("export", "results/digits-smoke", "--ranking", "finalists", "-o", "f.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((tmp_path / "f.yaml").read_text())["provenance"]["trial_id"] == summary["winner"]


@pytest.mark.slow
def test_finalists_are_in_the_report_and_in_tensorboard(finalized):
    run, _ = finalized
    cwd = run.parents[1]
    summary = json.loads((run / "finalize" / "finalists.json").read_text())
    proc = run_cli("report", "results/digits-smoke", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    text = (run / "report.md").read_text()
    assert "## Finalists" in text and f"Pick: trial {summary['winner']}" in text
    assert f"| 1 | {summary['winner']} |" in text
    winner = summary["finalists"][0]
    with tensorboard_server(run / "tensorboard") as tb:
        listed = tb.get("/data/runs")
        for seed in (1, 2, 3):
            assert f"finalize/trial_{winner['trial_id']}/seed_{seed}/validation" in listed
        points = tb.get(
            f"/data/plugin/scalars/scalars?run=finalize/trial_{winner['trial_id']}&tag=finalize/val_accuracy_mean"
        )
        assert points[-1][1] == 3 and points[-1][2] == pytest.approx(winner["objective"]["mean"], abs=1e-6)
        curve = tb.get(
            f"/data/plugin/scalars/scalars?run=finalize/trial_{winner['trial_id']}/seed_1/validation&tag=epoch_accuracy"
        )
        assert len(curve) == winner["epochs"]


@pytest.mark.slow
def test_a_killed_finalize_resumes_without_retraining_what_finished(smoke_run, tmp_path):
    run = _copy(smoke_run, tmp_path)
    results_file = run / "finalize" / "results.json"
    cmd = [sys.executable, "-m", "search", "finalize", "results/digits-smoke", "--top", "3", "--seeds", "4"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, **QUIET_ENV}, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not results_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = json.loads(results_file.read_text())
    assert 1 <= len(before) < 12, "finalize finished before it could be killed"
    assert (run.parent / ".digits-smoke.lock").exists()  # left behind by the killed process
    again = run_cli("finalize", "results/digits-smoke", "--top", "3", "--seeds", "4", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(before)} already done, resuming" in again.stdout
    assert again.stdout.count("] trial ") == 12 - len(before)  # only the missing trainings ran
    after = json.loads(results_file.read_text())
    assert len(after) == 12 and all(after[k] == v for k, v in before.items())
    # A third run with nothing missing trains nothing.
    third = run_cli("finalize", "results/digits-smoke", "--top", "3", "--seeds", "4", cwd=tmp_path)
    assert third.returncode == 0 and "12 already done" in third.stdout and "] trial " not in third.stdout
