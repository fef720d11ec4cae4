"""The contract every search algorithm keeps, run over every name in the config's algorithm list
(`search.algorithms.ALGORITHMS`; the pattern of Optuna's `optuna/testing/pytest_samplers.py`): a sixth
algorithm added to the table gets all of it without touching a test.

Oracle-level tests drive the real oracle `make_oracle` builds, as KerasTuner drives it, over ktsearch's
real search space (the digits config's) with a synthetic objective; the slow ones run real `ktsearch tune`
processes: a search killed with SIGKILL and resumed, and a chief with two workers. Those runs are shared
with the tests that read them (`algorithm_runs` in tests/conftest.py)."""

from __future__ import annotations

import math

import keras_tuner as kt
import pytest

from hypermodels import private_api
from hypermodels.dimensions import condition_of
from hypermodels.notation import contains
from search.algorithms import ALGORITHMS, RUNGS, oracles, trial_order
from search.algorithms.schedule import make_plan
from search.analysis import simulate
from search.config import ALGORITHMS as CONFIG_ALGORITHMS
from search.config import load_config
from search.engine.seeding import oracle_seed
from search.errors import UserError
from tests.conftest import CONFIGS, algorithm_overrides, algorithm_param
from tests.search.test_reliability import _outcome
from tests.search.test_simulate import by_hand

NAMES = list(CONFIG_ALGORITHMS)  # what `tuner.algorithm` accepts: every one of them keeps the contract
OBJECTIVE = kt.Objective("val_accuracy", "max")


def test_the_config_accepts_every_algorithm_of_the_table_and_builds_its_oracle():
    """The contract runs over the config's list; this is what makes that list every algorithm there is."""
    for name, row in ALGORITHMS.items():
        cfg = load_config(CONFIGS / "digits_smoke.yaml", algorithm_overrides(name))
        assert cfg.tuner.algorithm == name
        assert type(oracles.make_oracle(cfg.tuner, OBJECTIVE, seed=1)).__name__ == row.oracle
    with pytest.raises(UserError, match="tuner.algorithm"):
        load_config(CONFIGS / "digits_smoke.yaml", ["tuner.algorithm=hyperbnd"])


# -- driving an oracle as KerasTuner does ----------------------------------------------------------------


def _config(algorithm: str, **changes):
    """The digits smoke config with `algorithm` (and tuner `changes`): its real search space."""
    return load_config(CONFIGS / "digits_smoke.yaml").with_tuner(algorithm=algorithm, **changes)


def _oracle(tmp_path, name: str, cfg, seed: int = 7, **kwargs):
    oracle = oracles.make_oracle(cfg.tuner, OBJECTIVE, seed=oracle_seed(seed), **kwargs)
    oracle.hyperparameters = simulate.search_space(cfg)
    oracle.verbose = 0
    private_api.attach_project(oracle, str(tmp_path), name)
    return oracle


def score(values: dict, epochs: int) -> float:
    """A synthetic objective over the digits space: higher learning rates, BatchNorm after the
    activation, less rotation and more epochs help; deterministic."""
    lr = values.get("schedule.initial_lr", 1e-3)
    bonus = 0.05 * (values.get("batchnorm.placement") == "after_activation")
    return (
        0.5 + 0.1 * math.log10(lr / 1e-3) + bonus - 0.004 * values.get("augmentation.rotation_range", 0) + 0.02 * epochs
    )


def finish(oracle, trial, metrics: dict, step: int = 0) -> None:
    """Report `metrics` for `trial` and end it, as KerasTuner's Tuner does."""
    oracle.update_trial(trial.trial_id, metrics, step=step)
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    oracle.save()  # as KerasTuner's Tuner.on_trial_end does, once the trial is no longer ongoing


def run_one_worker(oracle, end, limit: int, clock=None, epochs: int = 3, seconds_per_epoch: float = 10.0) -> list:
    """One worker: every trial runs to completion, `end(oracle, trial, epochs trained)` reporting it; `clock`
    (if given) advances 2 s + `seconds_per_epoch` per epoch trained (`epochs`: a trial without `tuner/epochs`)."""
    trials = []
    for _ in range(limit):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        values = trial.hyperparameters.values
        trained = int(values.get("tuner/epochs", epochs))
        if clock is not None:
            clock.now += 2.0 + seconds_per_epoch * (trained - int(values.get("tuner/initial_epoch", 0)))
        end(oracle, trial, trained)
        trials.append(trial)
    return trials


def _finish(oracle, trial, epochs: int = 3) -> None:
    values = trial.hyperparameters.values
    epochs = int(values.get("tuner/epochs", epochs))
    finish(oracle, trial, {"val_accuracy": score(values, epochs)}, step=epochs - 1)


def _run(oracle, limit: int = 500, clock=None) -> list:
    return run_one_worker(oracle, _finish, limit, clock)


def _values(trials) -> list[dict]:
    return [t.hyperparameters.values for t in trials]


def _reloaded(tmp_path, name: str, cfg, **kwargs):
    oracle = _oracle(tmp_path, name, cfg, **kwargs)
    oracle.reload()
    return oracle


# -- the contract: oracles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", NAMES)
def test_every_proposal_lies_inside_the_search_space(tmp_path, algorithm):
    cfg = _config(algorithm)
    trials = _run(_oracle(tmp_path, "space", cfg))
    assert trials
    max_epochs = cfg.tuner.max_epochs
    seen = set()
    for trial in trials:
        values = trial.hyperparameters.values
        kind = values.get("schedule.kind")
        for name, dim in cfg.space.dims.items():
            if dim is None or condition_of(name) not in (None, kind):
                continue  # off, or a schedule parameter of another kind: not a dimension of this trial
            assert name in values, (trial.trial_id, name)
            assert contains(dim, values[name]), (trial.trial_id, name, values[name], dim.describe())
        for name in values:
            assert name.startswith("tuner/") or name in cfg.space.dims, (trial.trial_id, name)
        epochs, initial = int(values.get("tuner/epochs", max_epochs)), int(values.get("tuner/initial_epoch", 0))
        assert 0 <= initial < epochs <= max_epochs, (trial.trial_id, initial, epochs)
        parent = values.get("tuner/trial_id")
        assert parent is None or parent in seen, (trial.trial_id, parent)  # a continuation's parent ran before it
        seen.add(trial.trial_id)


@pytest.mark.parametrize("algorithm", NAMES)
def test_the_same_seed_gives_the_same_proposals_and_another_seed_others(tmp_path, algorithm):
    cfg = _config(algorithm)
    a = _values(_run(_oracle(tmp_path, "a", cfg, seed=3)))
    b = _values(_run(_oracle(tmp_path, "b", cfg, seed=3)))
    c = _values(_run(_oracle(tmp_path, "c", cfg, seed=4)))
    assert a == b
    assert a != c


@pytest.mark.parametrize("algorithm", NAMES)
def test_a_reloaded_oracle_goes_on_as_the_uninterrupted_one(tmp_path, algorithm):
    """What a resume does to the oracle: stop half-way, reload it from its files, go on."""
    cfg = _config(algorithm)
    whole = _values(_run(_oracle(tmp_path, "whole", cfg)))
    first = _run(_oracle(tmp_path, "cut", cfg), limit=len(whole) // 2)
    rest = _run(_reloaded(tmp_path, "cut", cfg))
    assert _values(first) + _values(rest) == whole


@pytest.mark.parametrize("algorithm", NAMES)
def test_a_warm_start_is_proposed_first_and_counted_across_a_reload(tmp_path, algorithm):
    cfg = _config(algorithm)
    plain = _run(_oracle(tmp_path, "plain", cfg))
    warm = [
        {k: v for k, v in t.hyperparameters.values.items() if not k.startswith("tuner/")} for t in plain[-2:]
    ]  # two of its own later proposals, as an earlier run's best would be
    oracle = _oracle(tmp_path, "warm", cfg, warm_start=warm)
    for wanted in warm:
        trial = oracle.create_trial("tuner0")
        assert {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")} == wanted
        _finish(oracle, trial)
    reloaded = _reloaded(tmp_path, "warm", cfg, warm_start=warm)
    assert reloaded.warm_used == 2
    nxt = reloaded.create_trial("tuner0")
    assert nxt.status == "RUNNING"
    assert {k: v for k, v in nxt.hyperparameters.values.items() if not k.startswith("tuner/")} not in warm


@pytest.mark.parametrize("algorithm", NAMES)
def test_raising_the_size_key_extends_a_finished_search(tmp_path, algorithm):
    """`tuner.hyperband_iterations` or `tuner.max_trials` (the table's `size_key`) raised on a finished run:
    its trials are kept, the search goes on, and it plans what a search started that large plans."""
    key = ALGORITHMS[algorithm].size_key
    small = _config(algorithm, **{key: 2})
    large = _config(algorithm, **{key: 4})
    done = _run(_oracle(tmp_path, "x", small))
    grown = _reloaded(tmp_path, "x", large)
    more = _run(grown)
    assert more and not {t.trial_id for t in more} & {t.trial_id for t in done}
    assert set(grown.trials) >= {t.trial_id for t in done}  # the old trials are kept
    ids = sorted(grown.trials, key=trial_order)
    new_configurations = sum("tuner/trial_id" not in grown.trials[t].hyperparameters.values for t in ids)
    assert new_configurations == make_plan(large)["new_configurations"]
    if ALGORITHMS[algorithm].schedule != RUNGS:
        # Brackets and plain trials run exactly as one search that large would; ASHA's promotions follow the
        # order results arrive in, so an extended ASHA promotes from the results it has when it goes on.
        whole = _run(_oracle(tmp_path, "whole", large))
        assert [grown.trials[t].hyperparameters.values for t in ids] == _values(whole)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("algorithm", NAMES)
def test_a_time_budget_stops_before_a_trial_that_would_not_fit_and_more_time_goes_on(tmp_path, algorithm):
    cfg = _config(algorithm)
    full = _run(_oracle(tmp_path, "full", cfg, clock=Clock()), clock=Clock())
    total = 2.0 * len(full) + 10.0 * sum(
        int(t.hyperparameters.values.get("tuner/epochs", 3))
        - int(t.hyperparameters.values.get("tuner/initial_epoch", 0))
        for t in full
    )
    clock = Clock()
    oracle = _oracle(tmp_path, "cut", cfg, clock=clock, time_budget=total / 2)
    first = _run(oracle, clock=clock)
    assert 0 < len(first) < len(full)
    assert clock.now <= total / 2  # soft, but the estimate is exact here: nothing ran past the budget
    stop = oracle.budget_stop
    assert stop is not None and stop["needed_s"] > stop["left_s"]
    later = Clock()
    resumed = _reloaded(tmp_path, "cut", cfg, clock=later, time_budget=10 * total)
    assert resumed.spent() == pytest.approx(clock.now, abs=0.01)  # time spent counts across the resume
    rest = _run(resumed, clock=later)
    assert _values(first) + _values(rest) == _values(full)


@pytest.mark.parametrize("algorithm", NAMES)
def test_simulate_drives_the_real_oracle(tmp_path, algorithm):
    """`ktsearch simulate` on the shipped curves: one simulated worker gets what the oracle, driven by hand
    with the same scores, proposes; sixteen run every trial once."""
    cfg = load_config(CONFIGS / "mnist5k.yaml").with_tuner(algorithm=algorithm, max_trials=12)
    table = simulate.load_table(CONFIGS / "curves_mnist5k.json")
    result = simulate.simulate(cfg, table, 1)
    assert result["oracle"] == ALGORITHMS[algorithm].oracle
    proposed, _ = by_hand(cfg, tmp_path)
    assert [t["values"] for t in result["schedule"]] == proposed
    many = simulate.simulate(simulate.sized(cfg, 4, 16), table, 16)
    assert len({t["trial_id"] for t in many["schedule"]}) == many["trials"] >= 64


# -- the contract: real searches ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [algorithm_param(a) for a in NAMES])
def test_kill_9_and_resume_end_with_the_uninterrupted_search(algorithm_runs, algorithm):
    whole = _outcome(algorithm_runs.whole(algorithm))
    cut = algorithm_runs.killed_and_resumed(algorithm)
    assert "resuming run" in cut.resumed.stdout
    after = _outcome(cut.run_dir)
    assert after == whole  # the same trials, values, statuses and scores
    assert cut.before and all(after[t] == whole[t] for t in cut.before)  # what finished before the kill is kept
    for trial_id in cut.before:  # and not run again
        assert f"trial {trial_id} " not in cut.resumed.stdout


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [algorithm_param(a) for a in NAMES])
def test_a_chief_and_two_workers_run_every_trial_exactly_once(algorithm_runs, algorithm):
    run = algorithm_runs.distributed(algorithm)  # checks exactly-once, all completed, both workers worked
    plan = run.summary["plan"]
    assert plan["algorithm"] == algorithm and "search finished" in run.chief_text
    trials = run.summary["trials"]
    new = [t for t in trials if t["tuner"].get("trial_id") is None]
    assert len(new) == make_plan(algorithm_runs.config(algorithm))["new_configurations"]
    if ALGORITHMS[algorithm].schedule == RUNGS:  # promotions follow the order results arrive in
        assert len(trials) >= plan["planned_trials"]
    else:
        assert len(trials) == plan["planned_trials"]
