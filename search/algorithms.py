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

from search.asha import AshaOracle
from search.bohb import BohbOracle
from search.budget import SearchOracle


class HyperbandSearch(SearchOracle, kt.oracles.HyperbandOracle):
    pass


class BohbSearch(SearchOracle, BohbOracle):
    pass


class AshaSearch(SearchOracle, AshaOracle):
    pass


class RandomSearch(SearchOracle, kt.oracles.RandomSearchOracle):
    pass


class BayesianSearch(SearchOracle, kt.oracles.BayesianOptimizationOracle):
    pass


def make_oracle(tuner, objective, seed: int, time_budget: float | None = None, **kwargs):
    """The oracle of a `TunerConfig` (`time_budget`: seconds, overriding the config's; kwargs: a test's clock)."""
    common = dict(
        objective=objective,
        seed=seed,
        max_consecutive_failed_trials=tuner.max_consecutive_failed_trials,
        time_budget=tuner.time_budget if time_budget is None else time_budget,
        trial_epochs=tuner.max_epochs,
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
