"""The oracles `tuner.algorithm` names, each a KerasTuner oracle with `SearchOracle`'s budget.

| algorithm | oracle | new configurations | budgets |
|---|---|---|---|
| `hyperband` | KerasTuner's `HyperbandOracle` | random | Hyperband's brackets |
| `bohb` | `search.bohb.BohbOracle` | BOHB's model (random at first) | Hyperband's brackets |
| `asha` | `search.asha.AshaOracle` | random | ASHA's rungs, asynchronous |
| `random` | KerasTuner's `RandomSearchOracle` | random | `max_epochs` each |
| `bayesian` | KerasTuner's `BayesianOptimizationOracle` | Gaussian process | `max_epochs` each |
"""

from __future__ import annotations

import keras_tuner as kt

from hypermodels import private_api
from search.asha import AshaOracle
from search.bohb import BohbOracle
from search.budget import SearchOracle

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
    """The oracle of a `TunerConfig` (`time_budget`: seconds, overriding the config's; `warm_start`: configurations
    to propose first, `search.warmstart`; kwargs: a test's clock)."""
    common = dict(
        objective=objective,
        seed=seed,
        max_consecutive_failed_trials=tuner.max_consecutive_failed_trials,
        time_budget=tuner.time_budget if time_budget is None else time_budget,
        trial_epochs=tuner.max_epochs,
        warm_start=warm_start,
        **kwargs,
    )
    algorithm = tuner.algorithm
    if algorithm in ("hyperband", "bohb"):
        brackets = dict(
            max_epochs=tuner.max_epochs, factor=tuner.factor, hyperband_iterations=tuner.hyperband_iterations
        )
        if algorithm == "hyperband":
            return HyperbandSearch(**brackets, **common)
        return BohbSearch(**brackets, **tuner.bohb, **common)
    if algorithm == "asha":
        return AshaSearch(
            max_epochs=tuner.max_epochs,
            factor=tuner.factor,
            grace_period=tuner.grace_period,
            max_trials=tuner.max_trials,
            **common,
        )
    cls = RandomSearch if algorithm == "random" else BayesianSearch
    return cls(max_trials=tuner.max_trials, **common)
