"""BOHB, ASHA and the time budget in real searches: real CLI processes, real kill -9, a real chief
and workers, on scikit-learn's digits."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import algorithm_overrides, algorithm_param, run_cli, tensorboard_server
from tests.search.test_reliability import _outcome
from tests.search.test_tensorboard import _columns, _groups

SMOKE = "configs/digits_smoke.yaml"
ALGORITHMS = {  # `tune` arguments of the shared runs' searches (tests/conftest.py's ALGORITHM_SETTINGS)
    algorithm: [arg for item in algorithm_overrides(algorithm) for arg in ("--set", item)]
    for algorithm in ("asha", "bohb")
}


def _tune(workdir: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    proc = run_cli("tune", SMOKE, "--name", name, *extra, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _proposals(run_dir: Path) -> dict:
    return json.loads((run_dir / "tuner" / "oracle.json").read_text()).get("ktsearch_bohb", {}).get("proposals", {})


def _assert_asha_kept_its_plan(trials: list[dict]) -> None:
    """The shared ASHA search (9 new configurations at most, rungs at 1 and 3 epochs: 9 x 1 + 3 x 2 = 15
    epochs planned) spent its planned epochs and no more, promoting at least a third of its rung 0."""
    rounds = [t["tuner"]["round"] for t in trials]
    spent = sum(t["tuner"]["epochs"] - t["tuner"]["initial_epoch"] for t in trials)
    assert 15 - 2 < spent <= 15, spent  # stops only when not even a promotion (2 epochs) fits
    assert rounds.count(0) <= 9 and rounds.count(1) >= rounds.count(0) // 3 >= 2, rounds


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [algorithm_param("asha"), algorithm_param("bohb")])
def test_kill_9_mid_search_then_rerun_ends_with_the_uninterrupted_search(algorithm_runs, algorithm):
    """The contract's kill -9 (tests/search/test_algorithm_contract.py), and what it means for ASHA's rungs and
    BOHB's model: the same shared runs."""
    cut = algorithm_runs.killed_and_resumed(algorithm)
    whole = algorithm_runs.whole(algorithm)
    assert _outcome(cut.run_dir) == _outcome(whole)
    trials = json.loads((cut.run_dir / "summary.json").read_text())["trials"]
    if algorithm == "asha":
        _assert_asha_kept_its_plan(trials)
    else:
        # BOHB's model reads the scores: a trial re-run in a new process scores exactly what the killed
        # attempt would have (its own pipeline and seeds), so the model proposes exactly the same.
        assert len(cut.before) >= 8  # killed in iteration 2, where the model proposes
        assert _proposals(cut.run_dir) == _proposals(whole)
        by = [p["by"] for p in _proposals(cut.run_dir).values()]
        assert "model" in by and "random" in by  # the model really proposed in this search


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [algorithm_param("asha"), algorithm_param("bohb")])
def test_every_output_works_for_the_algorithm(algorithm_runs, tmp_path, algorithm):
    """Summary, report, export and train, TensorBoard's configuration rows with bracket and round (rung)."""
    run_dir = tmp_path / "results" / "r"
    shutil.copytree(algorithm_runs.whole(algorithm), run_dir)  # the shared run stays as its search left it
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["plan"]["algorithm"] == algorithm and summary["plan"]["trials"] == len(summary["trials"])
    report = run_cli("report", str(run_dir), "--format", "json", "-o", "-", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)
    assert {r["trial_id"] for r in rows} == {t["trial_id"] for t in summary["trials"]}
    assert all(r["round"] is not None and r["bracket"] is not None for r in rows)
    assert run_cli("export", str(run_dir), cwd=tmp_path).returncode == 0
    export = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert export["provenance"]["trial_id"] == summary["best_trial"]
    with tensorboard_server(run_dir / "tensorboard") as tb:
        groups = _groups(tb)
    chains = {t["trial_id"] for t in summary["trials"] if t["tuner"].get("round") == 0}
    assert len(groups) == len(chains)  # one row per configuration, its continuations as sessions
    rounds = {}
    for t in summary["trials"]:  # the latest round (rung) each configuration reached
        root = t["trial_id"]
        while parent := next(x for x in summary["trials"] if x["trial_id"] == root)["tuner"].get("trial_id"):
            root = parent
        rounds[root] = max(rounds.get(root, 0), t["tuner"]["round"])
    for group in groups.values():
        columns = _columns(group)
        assert columns["trial/round"] == rounds[group["sessions"][0]["name"].removeprefix("trial_")]
        assert columns["trial/bracket"] is not None


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [algorithm_param("asha"), algorithm_param("bohb")])
def test_chief_and_two_workers_run_the_algorithm_with_every_trial_exactly_once(algorithm_runs, algorithm):
    run = algorithm_runs.distributed(algorithm)  # the contract's run: exactly once, both workers worked
    if algorithm == "asha":
        _assert_asha_kept_its_plan(run.summary["trials"])
    else:
        assert len(run.summary["trials"]) == 18
        assert "model" in [p["by"] for p in _proposals(run.run_dir).values()]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [algorithm_param("hyperband")])
def test_a_budget_stops_the_search_says_how_much_ran_and_a_resume_with_more_time_finishes_it(
    algorithm_runs, workdir, algorithm
):
    whole = algorithm_runs.whole(algorithm)  # the same search without a budget (`ktsearch tune` of SMOKE)
    planned = json.loads((whole / "summary.json").read_text())["plan"]["planned_trials"]
    first = _tune(workdir, "cut", "--budget", "4s")
    summary = json.loads((workdir / "results" / "cut" / "summary.json").read_text())
    plan = summary["plan"]
    assert plan["time_budget_s"] == 4.0 and plan["stopped_by_budget"] is not None
    assert 0 < plan["trials"] < plan["planned_trials"] == planned
    assert f"{plan['trials']} of {planned} planned trials" in first.stdout
    assert "the budget ended the search" in first.stdout
    second = _tune(workdir, "cut", "--budget", "1h")  # a resume may change the budget
    assert "resuming run" in second.stdout
    assert _outcome(workdir / "results" / "cut") == _outcome(whole)
    plan = json.loads((workdir / "results" / "cut" / "summary.json").read_text())["plan"]
    assert plan["trials"] == planned and plan["stopped_by_budget"] is None
    assert plan["spent_s"] > 1.0  # the first session's time counts too


def test_plan_explains_asha_and_bohb_and_sizes_a_search_to_a_budget(workdir):
    asha = run_cli("plan", SMOKE, "--no-calibrate", *ALGORITHMS["asha"], cwd=workdir)
    assert asha.returncode == 0, asha.stderr
    assert "asha, 9 new configurations, rungs at 1, 3 epochs" in asha.stdout
    assert "rung 0: up to 9 trials x 1 epoch (to epoch 1; new configurations)" in asha.stdout
    assert "rung 1: about 3 trials x 2 epochs (to epoch 3; promoted from rung 0, its top 1/3)" in asha.stdout
    assert "the search keeps to these 15 epochs" in asha.stdout
    bohb = run_cli("plan", SMOKE, "--no-calibrate", *ALGORITHMS["bohb"], cwd=workdir)
    assert bohb.returncode == 0, bohb.stderr
    assert "BOHB's model once a budget has 4 completed trials" in bohb.stdout
    assert "the model can propose from new configuration" in bohb.stdout
    few = run_cli("plan", SMOKE, "--no-calibrate", "--set", "tuner.algorithm=bohb", cwd=workdir)
    assert "no budget of this plan gets enough completed trials for BOHB's model" in few.stdout
    budget = run_cli("plan", SMOKE, "--budget", "2m", *ALGORITHMS["asha"], cwd=workdir)
    assert budget.returncode == 0, budget.stderr
    assert "time budget 2 min 00 s: the plan is estimated at" in budget.stdout
    line = next(ln for ln in budget.stdout.splitlines() if ln.startswith("to fit it: tuner.max_trials: "))
    assert int(line.split(": ")[2].split()[0]) > 9  # 9 configurations take seconds: many more fit in 2 minutes
    assert f"ktsearch tune {SMOKE} --set tuner.max_trials=" in budget.stdout and "--budget 2m" in budget.stdout


def test_bad_budgets_are_one_line_and_touch_nothing(workdir):
    for args, fragment in [
        (["tune", SMOKE, "--budget", "soon"], "--budget: tuner.time_budget: expected a duration > 0"),
        (["tune", SMOKE, "--budget=-5m"], "expected a duration > 0"),
        (["plan", SMOKE, "--budget", "0"], "--budget: expected a duration > 0"),
        (["tune", SMOKE, "--set", "tuner.time_budget=.nan"], "tuner.time_budget: expected a finite number, got nan"),
    ]:
        proc = run_cli(*args, cwd=workdir)
        assert proc.returncode == 2 and fragment in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (workdir / "results").exists()
