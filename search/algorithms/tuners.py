"""`search.BOHB` and `search.ASHA`: ktsearch's oracles as KerasTuner tuners, for a plain KerasTuner script.

    import search
    tuner = search.BOHB(build_model, objective="val_accuracy", max_epochs=10, factor=3,
                        directory="my_dir", project_name="intro")     # was: keras_tuner.Hyperband(...)
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val), callbacks=[...])
    best = tuner.get_best_models(1)[0]

Each is KerasTuner's own Hyperband tuner over one of ktsearch's oracles (`private_api.HyperbandWithOracle`):
a continuation loads its parent's best checkpoint and trains from `tuner/initial_epoch` to `tuner/epochs`,
and everything else (`search`'s arguments and callbacks, `get_best_models`, `get_best_hyperparameters`,
`results_summary`, `search_space_summary`, reloading a project with `overwrite=False`, the distributed mode
of the `KERASTUNER_*` environment variables, `executions_per_trial`, `max_model_size`, the compile overrides)
is KerasTuner's, unchanged. The arguments are `keras_tuner.Hyperband`'s, so a script changes algorithm by
changing the class name: BOHB takes exactly them (and BOHB's own, `tuner.bohb` in a ktsearch config); ASHA
takes them too, `hyperband_iterations` sizing its default `max_trials`. KerasTuner's tests of the contract
pass with both (`tests/search/test_kt_hyperband_contract.py`, `tests/search/test_kt_tuner_contract.py`).

One addition: a learning-rate schedule from `hypermodels.lr_schedule` continues, in a continuation, from
the epoch the parent reached (KerasTuner's Hyperband restarts the optimizer, and with it a schedule that
counts steps). A bad argument is an `ArgumentError` (a `KtsearchError` and a `ValueError`) naming it.

Importing this module imports KerasTuner (and TensorFlow); `search.BOHB` imports it on first use.
"""

from __future__ import annotations

import math
import numbers

from hypermodels import private_api
from search.algorithms.asha import AshaOracle
from search.algorithms.bohb import BohbOracle
from search.algorithms.schedule import asha_configurations, epochs_of, hyperband_rounds, rung_epochs
from search.errors import ArgumentError


def _integer(call: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ArgumentError(call, name, f"expected an integer >= {low}, got {value!r}")
    return int(value)


def _number(call: str, name: str, value, low: float, high: float, low_open: bool = False) -> float:
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
    if bad or value < low or value > high or (low_open and value == low):
        bounds = f"{'>' if low_open else '>='} {low:g} and <= {high:g}"
        raise ArgumentError(call, name, f"expected a number {bounds}, got {value!r}")
    return float(value)


def _oracle_arguments(call: str, seed, hyperparameters, tune_new_entries, allow_new_entries, retries, failures) -> dict:
    """`keras_tuner.Oracle`'s arguments every tuner here takes, checked."""
    return {
        "seed": None if seed is None else _integer(call, "seed", seed, 0),
        "hyperparameters": hyperparameters,
        "tune_new_entries": tune_new_entries,
        "allow_new_entries": allow_new_entries,
        "max_retries_per_trial": _integer(call, "max_retries_per_trial", retries, 0),
        "max_consecutive_failed_trials": _integer(call, "max_consecutive_failed_trials", failures, 1),
    }


class _ContinuingTuner(private_api.HyperbandWithOracle):
    """KerasTuner's Hyperband tuner over the oracle a subclass builds; schedules continue with their parent."""

    def __init__(self, oracle, hypermodel=None, **kwargs):
        if hypermodel is None and type(self).run_trial is _ContinuingTuner.run_trial:
            # `keras_tuner.Tuner` refuses this unless `run_trial` is overridden, but Hyperband's own override
            # hides the check from `keras_tuner.Hyperband`'s users: without it the search fails in its first trial.
            raise ArgumentError(
                f"search.{type(self).__name__}",
                "hypermodel",
                "expected a function hp -> keras.Model or a keras_tuner.HyperModel: Received `hypermodel=None`, "
                "and run_trial() is not overridden to train without one",
            )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)

    def _build_hypermodel(self, hp):
        model = super()._build_hypermodel(hp)  # a continuation: with its parent's best weights loaded
        start = hp.values.get("tuner/initial_epoch") if "tuner/trial_id" in hp.values else None
        if start:
            from hypermodels.helpers import continue_schedule

            continue_schedule(model, int(start))
        return model


class BOHB(_ContinuingTuner):
    """BOHB (Falkner et al., 2018): Hyperband's brackets, new configurations from density models of the good
    and the bad results once a budget has enough of them (random before). docs/algorithms.md has the details.

    Args:
        hypermodel, objective, max_epochs, factor, hyperband_iterations, seed, hyperparameters,
        tune_new_entries, allow_new_entries, max_retries_per_trial, max_consecutive_failed_trials, **kwargs:
            `keras_tuner.Hyperband`'s, with its defaults (`directory`, `project_name`, `overwrite`,
            `distribution_strategy`, `executions_per_trial`, ... go to `keras_tuner.Tuner`).
        random_fraction: share of new configurations drawn at random even when the model has data (1/3).
        top_fraction: share of a budget's results that make the "good" density (0.15).
        min_points: results a budget needs for a model, less 2 (None: searched dimensions + 1).
        candidates: samples of the good density scored per proposal (64).
        bandwidth_factor: widening of the good density's bandwidths for those samples (3).
        min_bandwidth: smallest kernel bandwidth (1e-3).
    """

    def __init__(
        self,
        hypermodel=None,
        objective=None,
        max_epochs=100,
        factor=3,
        hyperband_iterations=1,
        seed=None,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        random_fraction=1 / 3,
        top_fraction=0.15,
        min_points=None,
        candidates=64,
        bandwidth_factor=3.0,
        min_bandwidth=1e-3,
        **kwargs,
    ):
        call = "search.BOHB"
        oracle = BohbOracle(
            objective,
            max_epochs=_integer(call, "max_epochs", max_epochs, 1),
            factor=_integer(call, "factor", factor, 2),
            hyperband_iterations=_integer(call, "hyperband_iterations", hyperband_iterations, 1),
            **_oracle_arguments(
                call,
                seed,
                hyperparameters,
                tune_new_entries,
                allow_new_entries,
                max_retries_per_trial,
                max_consecutive_failed_trials,
            ),
            random_fraction=_number(call, "random_fraction", random_fraction, 0, 1),
            top_fraction=_number(call, "top_fraction", top_fraction, 0, 1, low_open=True),
            min_points=None if min_points is None else _integer(call, "min_points", min_points, 1),
            candidates=_integer(call, "candidates", candidates, 1),
            bandwidth_factor=_number(call, "bandwidth_factor", bandwidth_factor, 0, math.inf, low_open=True),
            min_bandwidth=_number(call, "min_bandwidth", min_bandwidth, 0, math.inf, low_open=True),
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)


class ASHA(_ContinuingTuner):
    """ASHA (Li et al., 2020): asynchronous successive halving. A free worker promotes the best not yet promoted
    configuration of the highest rung that has one (the top 1/factor of a rung's results), else starts a new
    one at the bottom rung; nobody waits for a rung to fill, so it keeps many workers busy.

    Args:
        max_trials: new configurations to start at most. It also sets the epochs the search keeps to: what
            these configurations cost when every rung promotes exactly 1/factor (promotions beyond that take
            the place of new configurations). None: as many as fit in the epochs of a `keras_tuner.Hyperband`
            of the same `max_epochs`, `factor` and `hyperband_iterations` (35 for 75 epochs at max_epochs 9).
        grace_period: epochs of the bottom rung (rungs: grace_period * factor^k, the top one max_epochs).
        the others: `keras_tuner.Hyperband`'s, with its defaults (see `BOHB`).
    """

    def __init__(
        self,
        hypermodel=None,
        objective=None,
        max_epochs=100,
        max_trials=None,
        factor=3,
        grace_period=1,
        hyperband_iterations=1,
        seed=None,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        **kwargs,
    ):
        call = "search.ASHA"
        max_epochs = _integer(call, "max_epochs", max_epochs, 1)
        factor = _integer(call, "factor", factor, 2)
        iterations = _integer(call, "hyperband_iterations", hyperband_iterations, 1)
        grace_period = _integer(call, "grace_period", grace_period, 1)
        if grace_period > max_epochs:
            raise ArgumentError(call, "grace_period", f"expected at most max_epochs ({max_epochs}), got {grace_period}")
        if max_trials is None:
            max_trials = asha_configurations(
                epochs_of(hyperband_rounds(max_epochs, factor, iterations)),
                rung_epochs(max_epochs, factor, grace_period),
                factor,
            )
        oracle = AshaOracle(
            objective,
            max_epochs=max_epochs,
            factor=factor,
            grace_period=grace_period,
            max_trials=_integer(call, "max_trials", max_trials, 1),
            **_oracle_arguments(
                call,
                seed,
                hyperparameters,
                tune_new_entries,
                allow_new_entries,
                max_retries_per_trial,
                max_consecutive_failed_trials,
            ),
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
