"""BOHB, ASHA and the time budget, driven as KerasTuner drives an oracle, on synthetic objectives
whose answers are known: no model is trained here, the oracles are the real ones."""

from __future__ import annotations

import keras_tuner as kt
import numpy as np
import pytest

from search.algorithms import oracles
from search.algorithms.base import fit_trial_seconds
from search.algorithms.bohb import KDE, split_good_bad
from search.algorithms.schedule import rung_epochs
from search.config import load_config
from tests.conftest import CONFIGS
from tests.search.test_algorithm_contract import finish, run_one_worker

OBJECTIVE = kt.Objective("score", "max")


def _space() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    hp.Float("y", 0.0, 1.0)
    hp.Choice("kind", ["a", "b", "c"])  # unordered: a categorical dimension
    return hp


def synthetic(values: dict, epochs: int) -> float:
    """Best at x = 0.8, y = 0.2, kind b; more epochs help every configuration alike."""
    v = values
    return 1 - (v["x"] - 0.8) ** 2 - (v["y"] - 0.2) ** 2 - 0.2 * (v["kind"] != "b") + 0.01 * epochs


def _tuner(**changes):
    cfg = load_config(CONFIGS / "digits_smoke.yaml").with_tuner(**changes)
    return cfg.tuner


def _oracle(tmp_path, name: str, budget: float | None = None, clock=None, **changes):
    """The oracle `make_oracle` gives for digits_smoke with `changes`, over a synthetic space, as KerasTuner sets it up."""
    extra = {} if clock is None else {"clock": clock}
    oracle = oracles.make_oracle(_tuner(**changes), OBJECTIVE, seed=7, time_budget=budget, **extra)
    oracle.hyperparameters = _space()
    oracle.verbose = 0
    oracle._set_project_dir(str(tmp_path), name)  # what KerasTuner's Tuner does
    return oracle


def _finish(oracle, trial, score: float) -> None:
    finish(oracle, trial, {"score": score})


def _run_sequentially(oracle, limit: int = 1000, clock=None, seconds_per_epoch: float = 10.0) -> list:
    """One worker: every trial runs to completion, scored by `synthetic`."""

    def end(oracle, trial, epochs):
        _finish(oracle, trial, synthetic(trial.hyperparameters.values, epochs))

    return run_one_worker(oracle, end, limit, clock, 9, seconds_per_epoch)


# -- BOHB ------------------------------------------------------------------------------


def test_bohb_proposals_concentrate_where_the_score_is_best_once_a_budget_has_enough_results(tmp_path):
    oracle = _oracle(tmp_path, "bohb", algorithm="bohb", max_epochs=9, factor=3, hyperband_iterations=4)
    trials = _run_sequentially(oracle)
    new = [t for t in trials if t.hyperparameters.values["tuner/round"] == 0]
    by = [oracle.proposals[t.trial_id]["by"] for t in new]
    needed = 3 + 1 + 2  # min_points (3 dimensions + 1) + 2
    first_model = by.index("model")
    # No model before some budget had `needed` completed trials; the trials before it were random.
    assert first_model >= needed
    assert set(by[:first_model]) == {"random"}
    model = [t.hyperparameters.values for t, b in zip(new, by, strict=True) if b == "model"]
    rand = [t.hyperparameters.values for t, b in zip(new, by, strict=True) if b == "random"]
    assert len(model) >= 15 and len(rand) >= 15
    distance = lambda vs: np.mean([abs(v["x"] - 0.8) + abs(v["y"] - 0.2) for v in vs])  # noqa: E731
    assert distance(model) < 0.6 * distance(rand)  # the model samples near the optimum
    share_b = lambda vs: np.mean([v["kind"] == "b" for v in vs])  # noqa: E731
    assert share_b(model) > share_b(rand) + 0.2 and share_b(model) > 0.6
    # Every model proposal names the budget it modelled: the largest with enough results at the time.
    assert all(
        oracle.proposals[t.trial_id]["observations"] >= needed
        for t in new
        if oracle.proposals[t.trial_id]["by"] == "model"
    )


def test_bohb_proposes_the_same_configurations_for_the_same_seed_and_across_a_reload(tmp_path):
    a = _run_sequentially(_oracle(tmp_path, "a", algorithm="bohb", max_epochs=9, hyperband_iterations=2))
    b = _run_sequentially(_oracle(tmp_path, "b", algorithm="bohb", max_epochs=9, hyperband_iterations=2))
    assert [t.hyperparameters.values for t in a] == [t.hyperparameters.values for t in b]

    # Stop half-way, reload the oracle from disk (a resume), and go on: the same proposals again.
    c = _oracle(tmp_path, "c", algorithm="bohb", max_epochs=9, hyperband_iterations=2)
    first = _run_sequentially(c, limit=len(a) // 2)
    resumed = _oracle(tmp_path, "c", algorithm="bohb", max_epochs=9, hyperband_iterations=2)
    resumed.reload()
    rest = _run_sequentially(resumed)
    assert [t.hyperparameters.values for t in first + rest] == [t.hyperparameters.values for t in a]


def test_the_good_and_bad_sets_follow_the_paper_and_the_kernels_are_densities():
    good, bad = split_good_bad(np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.0]), min_points=2, top_fraction=0.15)
    assert list(good) == [5, 1] and list(bad) == [3, 2, 4, 0]  # N_l = max(2, 0), N_b = max(2, 4)
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.random(50), rng.integers(3, size=50)])
    kde = KDE(data, [0, 3], 1e-3)
    xs = np.linspace(-1, 2, 3001)
    grid = np.array([[x, k] for k in range(3) for x in xs])
    total = kde.pdf(grid).sum() * (xs[1] - xs[0])  # integrates (continuous) and sums (categorical) to 1
    assert total == pytest.approx(1.0, abs=1e-3)
    samples = kde.sample(rng, 500, factor=3.0)
    assert samples[:, 0].min() >= 0 and samples[:, 0].max() <= 1 and set(samples[:, 1]) <= {0, 1, 2}


# -- ASHA ------------------------------------------------------------------------------


def test_asha_rungs_match_hyperbands_most_aggressive_bracket():
    assert rung_epochs(9, 3, 1) == [1, 3, 9]
    assert rung_epochs(27, 3, 1) == [1, 3, 9, 27]
    assert rung_epochs(10, 3, 1) == [2, 4, 10]  # ceil(10 / 3^k): the top rung is max_epochs
    assert rung_epochs(9, 3, 3) == [3, 9]
    assert rung_epochs(9, 3, 9) == [9]


def test_asha_promotes_the_top_third_of_a_rung_without_waiting_for_it_to_fill(tmp_path):
    oracle = _oracle(tmp_path, "asha", algorithm="asha", max_epochs=9, factor=3, max_trials=30)
    scores = {}
    running = {w: oracle.create_trial(w) for w in ("w1", "w2", "w3", "w4")}  # four workers, four new configs
    assert all(t.hyperparameters.values["tuner/round"] == 0 for t in running.values())
    # Three finish (w4's trial still runs): the best of those three is promoted at once.
    for w, score in (("w1", 0.5), ("w2", 0.9), ("w3", 0.1)):
        scores[running[w].trial_id] = score
        _finish(oracle, running.pop(w), score)
    promoted = oracle.create_trial("w1")
    values = promoted.hyperparameters.values
    best = max(scores, key=scores.get)
    assert values["tuner/trial_id"] == best and values["tuner/round"] == 1
    assert (values["tuner/initial_epoch"], values["tuner/epochs"]) == (1, 3)
    assert "w4" in {w for w, t in oracle.ongoing_trials.items()}  # nobody waited for w4's trial
    # The next asks start new configurations: 1/3 of 3 results is one promotion, already made.
    nxt = oracle.create_trial("w2")
    assert nxt.hyperparameters.values["tuner/round"] == 0


def test_asha_promotes_only_rung_leaders_keeps_to_its_planned_epochs_and_stops(tmp_path):
    oracle = _oracle(tmp_path, "asha", algorithm="asha", max_epochs=9, factor=3, max_trials=27)
    rng = np.random.default_rng(3)
    running: dict[str, object] = {}
    history = []
    while True:  # three simulated workers finishing in random order
        for w in ("w1", "w2", "w3"):
            if w not in running:
                trial = oracle.create_trial(w)
                if trial.status == "RUNNING":
                    running[w] = trial
                    values = trial.hyperparameters.values
                    if values["tuner/round"] > 0:  # the parent is in the top 1/3 of its rung's results so far
                        below = values["tuner/round"] - 1
                        rung = [t for t in history if t.hyperparameters.values["tuner/round"] == below]
                        ranked = sorted(rung, key=lambda t: -t.score)
                        assert values["tuner/trial_id"] in {t.trial_id for t in ranked[: len(ranked) // 3]}
        if not running:
            break
        w = list(running)[int(rng.integers(len(running)))]
        trial = running.pop(w)
        values = trial.hyperparameters.values
        _finish(oracle, trial, synthetic(values, values["tuner/epochs"]) + rng.normal(0, 0.01))
        history.append(oracle.trials[trial.trial_id])
    rounds = [t.hyperparameters.values["tuner/round"] for t in history]
    planned = 27 * 1 + 9 * 2 + 3 * 6  # plan: 27 new configurations, a third of each rung promoted
    spent = sum(
        t.hyperparameters.values["tuner/epochs"] - t.hyperparameters.values["tuner/initial_epoch"] for t in history
    )
    assert planned - 6 < spent <= planned  # stopped only when not even the dearest step fitted any more
    assert rounds.count(0) <= 27 and rounds.count(1) >= rounds.count(0) // 3 and rounds.count(2) >= rounds.count(1) // 3
    assert oracle.create_trial("w1").status == "STOPPED"
    parents = [
        t.hyperparameters.values.get("tuner/trial_id") for t in history if t.hyperparameters.values["tuner/round"]
    ]
    assert len(parents) == len(set(parents))  # no configuration promoted twice from the same rung


def _improving_run(oracle) -> list[dict]:
    """One worker; every result beats all before it, so each rung's early leaders fall out of its top third
    later but stay promoted (ASHA's overshoot). The values of the trials run, in order."""
    history = []
    while (trial := oracle.create_trial("w1")).status == "RUNNING":
        history.append(trial.hyperparameters.values)
        _finish(oracle, trial, float(len(history)))
    return history


def test_asha_keeps_to_its_planned_epochs_when_early_leaders_stay_promoted(tmp_path):
    planned = 9 * 1 + 3 * 2 + 1 * 6  # 9 new configurations on rungs 1, 3, 9, a third of each promoted
    spent = lambda run: sum(v["tuner/epochs"] - v["tuner/initial_epoch"] for v in run)  # noqa: E731
    rounds = lambda run: [v["tuner/round"] for v in run]  # noqa: E731
    unbounded = _oracle(tmp_path, "free", algorithm="asha", max_epochs=9, factor=3, max_trials=9)
    unbounded.epoch_budget = 10**6  # successive halving as the paper runs it, stopped by max_trials alone
    free = _improving_run(unbounded)
    assert rounds(free).count(0) == 9 and spent(free) > planned  # the overshoot the budget is for
    kept = _improving_run(_oracle(tmp_path, "kept", algorithm="asha", max_epochs=9, factor=3, max_trials=9))
    assert planned - 6 < spent(kept) <= planned
    assert rounds(kept).count(0) < 9  # the extra promotions took new configurations' place
    # The same search until the budget binds; then a promotion to the top rung (6 epochs) that no longer
    # fits gives way to a new configuration (1 epoch) that does.
    n = len(kept) - 1
    assert kept[:n] == free[:n] and rounds(free)[n] == 2 and rounds(kept)[n] == 0


def test_ashas_rung_index_answers_as_a_scan_of_every_trial_at_every_request(tmp_path):
    """Eight workers that end their trials in a shuffled order (some fail): before each request the index's
    next promotion, epochs committed and continuable trials are the scan's (`ladder`), and a reloaded
    oracle rebuilds the same index."""
    rng = np.random.default_rng(3)
    oracle = _oracle(tmp_path, "asha", algorithm="asha", max_epochs=27, factor=3, max_trials=120)
    running, checks, asked = [], 0, 0
    while True:
        ladder = oracle.ladder()
        left = oracle.epoch_budget - ladder.committed
        assert oracle.index.committed == ladder.committed
        assert oracle.next_promotion(left) == oracle.promotable(ladder, left)
        assert oracle.continuable_trials() == {
            t.trial_id
            for r in range(len(oracle.rungs) - 1)
            for t in ladder.members[r]
            if t.status == "COMPLETED" and t.trial_id not in ladder.promoted[r]
        }
        checks += 1
        if len(running) < 8:
            asked += 1
            trial = oracle.create_trial(f"w{asked}")  # a new worker name each time: one trial per name
            if trial.status == "RUNNING":
                running.append(trial)
                continue
        if not running:
            break
        done = running.pop(int(rng.integers(len(running))))
        if rng.random() < 0.05:
            done.status = "FAILED"
            oracle.end_trial(done)
        else:
            _finish(oracle, done, float(rng.normal()))
    assert checks > 150 and len(oracle.trials) > 120
    reloaded = _oracle(tmp_path, "asha", algorithm="asha", max_epochs=27, factor=3, max_trials=120)
    reloaded.reload()
    for name in ("sizes", "promoted", "ranked", "waiting", "completed", "committed"):
        assert getattr(reloaded.index, name) == getattr(oracle.index, name), name


def test_asha_waits_while_a_running_trial_may_still_be_promoted(tmp_path):
    oracle = _oracle(tmp_path, "asha", algorithm="asha", max_epochs=3, factor=3, max_trials=2)
    a, b = oracle.create_trial("w1"), oracle.create_trial("w2")
    _finish(oracle, a, 0.5)
    # Both started, and b can never earn a promotion: 1/3 of 2 results is none, and the plan (2 x 1 epoch)
    # has no epoch left for one.
    assert oracle.create_trial("w1").status == "STOPPED"
    oracle = _oracle(tmp_path, "asha3", algorithm="asha", max_epochs=3, factor=3, max_trials=3)  # 3 x 1 + 1 x 2 epochs
    a, b, c = (oracle.create_trial(w) for w in ("w1", "w2", "w3"))
    _finish(oracle, a, 0.5)
    assert oracle.create_trial("w1").status == "IDLE"  # all three started; b or c may still earn a promotion
    _finish(oracle, b, 0.7)
    _finish(oracle, c, 0.6)
    promoted = oracle.create_trial("w1")
    assert promoted.hyperparameters.values["tuner/trial_id"] == b.trial_id
    assert oracle.create_trial("w2").status == "STOPPED"  # the 5 planned epochs are all committed


# -- the time budget -------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_trial_seconds_fit_a_line_over_epochs():
    assert fit_trial_seconds([], 3) is None
    assert fit_trial_seconds([[1, 3.0], [3, 7.0], [9, 19.0]], 27) == pytest.approx(55.0)  # 1 + 2 e
    assert fit_trial_seconds([[2, 4.0], [2, 6.0]], 3) == pytest.approx(7.5)  # one length: per epoch


@pytest.mark.parametrize("algorithm", ["hyperband", "bohb", "asha", "random"])
def test_the_budget_stops_before_a_trial_that_would_not_fit_and_a_resume_with_more_time_goes_on(tmp_path, algorithm):
    changes = {"algorithm": algorithm, "max_epochs": 9}
    if algorithm in ("asha", "random"):
        changes["max_trials"] = 12
    full = _run_sequentially(_oracle(tmp_path, "full", **changes), clock=Clock())

    clock = Clock()
    oracle = _oracle(tmp_path, "cut", 200.0, clock, **changes)
    first = _run_sequentially(oracle, clock=clock)
    assert 0 < len(first) < len(full)
    assert clock.now <= 200.0  # soft, but the estimate is exact here: nothing ran past the budget
    stop = oracle.budget_stop
    assert stop is not None and stop["needed_s"] > stop["left_s"]
    if algorithm == "bohb":  # the refused proposal left no note behind
        assert set(oracle.proposals) <= set(oracle.trials)
    # A resume (reload from disk) with a larger budget: time spent is carried over, and the search
    # continues exactly where the uninterrupted one would.
    later = Clock()
    resumed = _oracle(tmp_path, "cut", 10_000.0, later, **changes)
    resumed.reload()
    assert resumed.spent() == pytest.approx(clock.now, abs=0.01)
    rest = _run_sequentially(resumed, clock=later)
    assert [t.hyperparameters.values for t in first + rest] == [t.hyperparameters.values for t in full]


def test_a_hyperband_round_that_would_not_fit_does_not_start(tmp_path):
    clock = Clock()
    oracle = _oracle(tmp_path, "hb", 170.0, clock, algorithm="hyperband", max_epochs=9, factor=3)
    trials = _run_sequentially(oracle, clock=clock)
    # Bracket 2 (9 x 1 epoch, then 3 x 2, then 1 x 6) costs 9*12 + 3*22 + 62 = 236 s > 170 s: its
    # round 1 (3 x 22 s = 66 s) does not fit after round 0's 108 s, so the search stops after round 0.
    assert [t.hyperparameters.values["tuner/round"] for t in trials] == [0] * 9
    assert oracle.budget_stop["next"].startswith("bracket 2 round 1 (3 trials")


def test_until_its_model_has_data_bohb_proposes_exactly_hyperbands_configurations(tmp_path):
    hyperband = _run_sequentially(_oracle(tmp_path, "hb", algorithm="hyperband", max_epochs=9, hyperband_iterations=2))
    oracle = _oracle(tmp_path, "bohb", algorithm="bohb", max_epochs=9, hyperband_iterations=2)
    bohb = _run_sequentially(oracle)
    first_model = next(t.trial_id for t in bohb if oracle.proposals.get(t.trial_id, {}).get("by") == "model")
    before = [t.hyperparameters.values for t in bohb if t.trial_id < first_model]
    assert len(before) >= 3 + 1 + 2  # min_points (3 dimensions + 1) + 2 results at one budget
    assert before == [t.hyperparameters.values for t in hyperband[: len(before)]]
