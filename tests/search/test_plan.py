"""`ktsearch plan`: KerasTuner's Hyperband schedule, checked against its oracle and a real run."""

import json

import keras_tuner as kt
import pytest

from search.algorithms.schedule import hyperband_rounds, make_plan, space_size
from search.config import load_config
from tests.conftest import CONFIGS, run_cli


@pytest.mark.parametrize(("max_epochs", "factor"), [(9, 3), (3, 3), (27, 3), (8, 2), (10, 4), (100, 3), (1, 3)])
def test_rounds_are_kerastuner_hyperband_rounds(tmp_path, max_epochs, factor):
    oracle = kt.oracles.HyperbandOracle(objective="val_accuracy", max_epochs=max_epochs, factor=factor)
    rounds = hyperband_rounds(max_epochs, factor, iterations=2)
    brackets = oracle._get_num_brackets()
    expected = [
        (i, b, r, oracle._get_size(b, r), oracle._get_epochs(b, r))
        for i in range(2)
        for b in reversed(range(brackets))
        for r in range(oracle._get_num_rounds(b))
    ]
    assert [(x.iteration, x.bracket, x.round, x.trials, x.to_epoch) for x in rounds] == expected
    for x in rounds:
        start = oracle._get_epochs(x.bracket, x.round - 1) if x.round else 0
        assert x.epochs_each == x.to_epoch - start


def test_a_space_too_small_for_the_budget_warns():
    finite = {
        "augmentation": {"rotation_range": {"choice": [0, 10]}},
        "batchnorm": {"placement": {"choice": ["none", "after_activation"]}},
        "schedule": {"kind": "constant", "initial_lr": {"choice": [0.001, 0.01]}},
    }
    cfg = load_config(CONFIGS / "digits_smoke.yaml", {"search_space": finite})
    assert space_size(cfg.space) == 8
    plan = make_plan(cfg)
    assert plan["new_configurations"] == 5 and not plan["warnings"]
    assert plan["architectures"] == 4  # 2 placements x with/without the augmentation layer
    plan = make_plan(load_config(CONFIGS / "mnist5k.yaml", {"search_space": finite}))
    assert plan["new_configurations"] == 17
    assert "holds 8 distinct configurations, but the search asks for 17 new ones" in plan["warnings"][0]
    assert make_plan(load_config(CONFIGS / "mnist5k.yaml"))["space_size"] is None  # continuous ranges


@pytest.mark.slow
def test_the_plan_is_what_the_search_then_runs(smoke_run, workdir):
    proc = run_cli("plan", "configs/digits_smoke.yaml", "--no-calibrate", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    plan = make_plan(load_config(CONFIGS / "digits_smoke.yaml"))
    assert f"total: {plan['trials']} trials" in proc.stdout and f"{plan['epochs']} epochs" in proc.stdout
    summary = json.loads((smoke_run / "summary.json").read_text())
    trials = summary["trials"]
    assert len(trials) == plan["trials"]
    assert sum(t["epochs_granted"] for t in trials) == plan["epochs"]
    ran = sorted((t["tuner"]["bracket"], t["tuner"]["round"], t["epochs_granted"]) for t in trials)
    planned = sorted((r.bracket, r.round, r.epochs_each) for r in plan["rounds"] for _ in range(r.trials))
    assert ran == planned


def test_calibrated_plan_estimates_the_wall_time(workdir):
    proc = run_cli("plan", "configs/digits_smoke.yaml", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "calibration, one epoch of the default configuration on this machine:" in proc.stdout
    assert "estimated wall time:" in proc.stdout
    assert not (workdir / "results").exists()  # planning writes nothing


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("hyperband", "hyperband_iterations"),
        ("bohb", "hyperband_iterations"),
        ("asha", "max_trials"),
        ("random", "max_trials"),
    ],
)
def test_a_budget_sizes_the_search_to_the_largest_setting_whose_estimate_fits_with_the_margin(algorithm, key):
    from search.analysis.plan import BUDGET_MARGIN, estimate, fit_budget

    cfg = load_config(CONFIGS / "mnist5k.yaml", {"tuner": {"algorithm": algorithm, "max_epochs": 9}})
    calibration = {"epoch_s": 1.5, "tracing_s": 2.0}
    budget = 3600.0
    found_key, value, seconds = fit_budget(cfg, calibration, budget)
    assert found_key == key and value >= 1
    fits = lambda v: estimate(make_plan(cfg.with_tuner(**{key: v})), calibration) * BUDGET_MARGIN <= budget  # noqa: E731
    assert fits(value) and not fits(value + 1)
    assert seconds == estimate(make_plan(cfg.with_tuner(**{key: value})), calibration)
    assert fit_budget(cfg, calibration, 1.0) is None  # not even the smallest search fits a second


def test_asha_plan_counts_every_new_configuration_and_at_least_a_third_of_each_rung():
    from search.algorithms.schedule import asha_rounds

    rounds = asha_rounds(30, [1, 3, 9], 3)
    assert [(r.round, r.trials, r.epochs_each, r.to_epoch) for r in rounds] == [
        (0, 30, 1, 1),
        (1, 10, 2, 3),
        (2, 3, 6, 9),
    ]
    plan = make_plan(load_config(CONFIGS / "digits_smoke.yaml", {"tuner.algorithm": "asha", "tuner.max_trials": 9}))
    assert plan["trials"] == 12 and plan["new_configurations"] == 9 and plan["epochs"] == 9 * 1 + 3 * 2
