"""BOHB, ASHA and the time budget in real searches: real CLI processes, real kill -9, a real chief
and workers, on scikit-learn's digits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import QUIET_ENV, run_cli, tensorboard_server
from tests.search.test_distributed import run_with_two_workers
from tests.search.test_reliability import _outcome
from tests.search.test_tensorboard import _columns, _groups

SMOKE = "configs/digits_smoke.yaml"
ALGORITHMS = {
    # 9 new configurations, rungs at 1 and 3 epochs: 12 trials
    "asha": ["--set", "tuner.algorithm=asha", "--set", "tuner.max_trials=9"],
    # 3 iterations of Hyperband's brackets; the model needs 2 + 2 results at a budget: used from iteration 2
    "bohb": [
        "--set",
        "tuner.algorithm=bohb",
        "--set",
        "tuner.hyperband_iterations=3",
        "--set",
        "tuner.bohb={min_points: 2}",
    ],
}


def _tune(workdir: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    proc = run_cli("tune", SMOKE, "--name", name, *extra, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _proposals(run_dir: Path) -> dict:
    return json.loads((run_dir / "tuner" / "oracle.json").read_text()).get("ktsearch_bohb", {}).get("proposals", {})


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["asha", "bohb"])
def test_kill_9_mid_search_then_rerun_ends_with_the_uninterrupted_search(workdir, algorithm):
    args = ALGORITHMS[algorithm]
    _tune(workdir, "whole", *args)
    whole = _outcome(workdir / "results" / "whole")
    cmd = [sys.executable, "-m", "search", "tune", SMOKE, "--name", "cut", *args]
    proc = subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, **QUIET_ENV}
    )
    target = "trial 0005 " if algorithm == "asha" else "trial 0008 "  # bohb: in iteration 2, where the model proposes
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(target) or (not line and proc.poll() is not None):
            break
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = {t: o for t, o in _outcome(workdir / "results" / "cut").items() if o[0] == "COMPLETED"}
    resumed = _tune(workdir, "cut", *args)
    assert "resuming run" in resumed.stdout
    after = _outcome(workdir / "results" / "cut")
    trials = json.loads((workdir / "results" / "cut" / "summary.json").read_text())["trials"]
    assert after == whole  # same trials, values, statuses and scores
    assert all(after[t] == whole[t] for t in before)  # the trials done before the kill were kept
    if algorithm == "asha":
        rounds = [t["tuner"]["round"] for t in trials]
        assert rounds.count(0) == 9 and rounds.count(1) >= 3
    else:
        # BOHB's model reads the scores: a trial re-run in a new process scores exactly what the killed
        # attempt would have (its own pipeline and seeds), so the model proposes exactly the same.
        assert _proposals(workdir / "results" / "cut") == _proposals(workdir / "results" / "whole")
        by = [p["by"] for p in _proposals(workdir / "results" / "cut").values()]
        assert "model" in by and "random" in by  # the model really proposed in this search


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["asha", "bohb"])
def test_every_output_works_for_the_algorithm(workdir, algorithm):
    """Summary, report, export and train, TensorBoard's configuration rows with bracket and round (rung)."""
    _tune(workdir, "r", *ALGORITHMS[algorithm])
    run_dir = workdir / "results" / "r"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["plan"]["algorithm"] == algorithm and summary["plan"]["trials"] == len(summary["trials"])
    report = run_cli("report", str(run_dir), "--format", "json", "-o", "-", cwd=workdir)
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)
    assert {r["trial_id"] for r in rows} == {t["trial_id"] for t in summary["trials"]}
    assert all(r["round"] is not None and r["bracket"] is not None for r in rows)
    assert run_cli("export", str(run_dir), cwd=workdir).returncode == 0
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
@pytest.mark.parametrize("algorithm", ["asha", "bohb"])
def test_chief_and_two_workers_run_the_algorithm_with_every_trial_exactly_once(workdir, algorithm):
    raw = yaml.safe_load((workdir / SMOKE).read_text())
    if algorithm == "asha":
        raw["tuner"] = {**raw["tuner"], "algorithm": "asha", "max_trials": 12}
    else:  # 3 iterations, the model used from the second
        raw["tuner"] = {**raw["tuner"], "algorithm": "bohb", "hyperband_iterations": 3, "bohb": {"min_points": 2}}
    (workdir / "configs" / "alg.yaml").write_text(yaml.safe_dump(raw))
    _, _, summary = run_with_two_workers(workdir, "configs/alg.yaml")
    run_dir = workdir / "results" / "digits-smoke"
    rounds = [t["tuner"]["round"] for t in summary["trials"]]
    if algorithm == "asha":
        assert rounds.count(0) == 12 and rounds.count(1) >= 4
    else:
        assert len(summary["trials"]) == 18
        assert "model" in [p["by"] for p in _proposals(run_dir).values()]


@pytest.mark.slow
def test_a_budget_stops_the_search_says_how_much_ran_and_a_resume_with_more_time_finishes_it(workdir):
    more = ["--set", "tuner.hyperband_iterations=3"]
    _tune(workdir, "whole", *more)
    first = _tune(workdir, "cut", *more, "--budget", "4s")
    summary = json.loads((workdir / "results" / "cut" / "summary.json").read_text())
    plan = summary["plan"]
    assert plan["time_budget_s"] == 4.0 and plan["stopped_by_budget"] is not None
    assert 0 < plan["trials"] < plan["planned_trials"] == 18
    assert f"{plan['trials']} of 18 planned trials" in first.stdout and "the budget ended the search" in first.stdout
    second = _tune(workdir, "cut", *more, "--budget", "1h")  # a resume may change the budget
    assert "resuming run" in second.stdout
    assert _outcome(workdir / "results" / "cut") == _outcome(workdir / "results" / "whole")
    plan = json.loads((workdir / "results" / "cut" / "summary.json").read_text())["plan"]
    assert plan["trials"] == 18 and plan["stopped_by_budget"] is None
    assert plan["spent_s"] > 1.0  # the first session's time counts too


def test_plan_explains_asha_and_bohb_and_sizes_a_search_to_a_budget(workdir):
    asha = run_cli("plan", SMOKE, "--no-calibrate", *ALGORITHMS["asha"], cwd=workdir)
    assert asha.returncode == 0, asha.stderr
    assert "asha, 9 new configurations, rungs at 1, 3 epochs" in asha.stdout
    assert "rung 0: 9 trials x 1 epoch (to epoch 1; new configurations)" in asha.stdout
    assert "rung 1: at least 3 trials x 2 epochs (to epoch 3; promoted from rung 0, its top 1/3)" in asha.stdout
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
