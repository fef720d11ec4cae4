"""The oracle classes `search.algorithms.ALGORITHMS` names, and `make_oracle`, which builds the configured one.

Each is a KerasTuner oracle with `SearchOracle`'s budget, warm start and timeline mixed in front.
Importing this module imports KerasTuner (and TensorFlow).
"""

from __future__ import annotations

import keras_tuner as kt

from hypermodels import private_api
from search.algorithms import ALGORITHMS, BRACKET_TUNER
from search.algorithms.asha import AshaOracle
from search.algorithms.base import SearchOracle
from search.algorithms.bohb import BohbOracle

DRAW_STATE_KEY = "ktsearch_bayesian_draws"


class HyperbandSearch(SearchOracle, kt.oracles.HyperbandOracle):
    pass


class BohbSearch(SearchOracle, BohbOracle):
    pass


class AshaSearch(SearchOracle, AshaOracle):
    pass


class RandomSearch(SearchOracle, kt.oracles.RandomSearchOracle):
    pass


class _WarmBayesian(kt.oracles.BayesianOptimizationOracle):
    def populate_space(self, trial_id):
        if self.warm_used < len(self.warm_start):  # a warm start's configurations first, as initial points
            return private_api.random_proposal(self)
        return super().populate_space(trial_id)


class BayesianSearch(SearchOracle, _WarmBayesian):
    """Saves the random state KerasTuner does not, so that a resumed (or extended, or replayed) search proposes
    what the uninterrupted one would have."""

    def get_state(self):
        return super().get_state() | {DRAW_STATE_KEY: private_api.draw_state(self)}

    def set_state(self, state):
        super().set_state(state)
        if state.get(DRAW_STATE_KEY):  # absent in runs made before it was saved: drawn from the seed again
            private_api.set_draw_state(self, state[DRAW_STATE_KEY])


def make_oracle(
    tuner, objective, seed: int, time_budget: float | None = None, warm_start: list[dict] | None = None, **kwargs
):
    """The oracle of a `TunerConfig`, as its row of `ALGORITHMS` says (`time_budget`: seconds, overriding the
    config's; `warm_start`: configurations to propose first, `search.runs.warmstart`; kwargs: a test's clock).

    The oracle gets the `tuner` keys its row lists (`bohb`'s mapping spread out as keyword arguments), and
    `max_epochs` when its trials continue a parent's checkpoint."""
    row = ALGORITHMS[tuner.algorithm]
    specific = {key: getattr(tuner, key) for key in row.keys if key != "bohb"}
    if "bohb" in row.keys:
        specific.update(tuner.bohb)
    if row.tuner == BRACKET_TUNER:
        specific["max_epochs"] = tuner.max_epochs
    return globals()[row.oracle](
        objective=objective,
        seed=seed,
        max_consecutive_failed_trials=tuner.max_consecutive_failed_trials,
        time_budget=tuner.time_budget if time_budget is None else time_budget,
        trial_epochs=tuner.max_epochs,
        warm_start=warm_start,
        **specific,
        **kwargs,
    )
