"""`ktsearch plan`: what a search will run and how long it will take, before it runs.

What runs (every bracket and round, ASHA's rungs, trials and epochs, the space's size) is
`search.algorithms.schedule`'s plan; this module prints it, times one epoch of the default
configuration on this machine (`calibrate`) and estimates the wall time from it.

With a time budget (`tuner.time_budget`, `plan --budget`), the calibrated estimate sizes the
search to fit: Hyperband's and BOHB's iterations, ASHA's, random and Bayesian search's trials (the
algorithm's `size_key`), after multiplying the estimate by `BUDGET_MARGIN` (the one-epoch
calibration ran 20-40% short of real searches on the resnet and mnist5k configs).
"""

from __future__ import annotations

import time

from search import units
from search.algorithms import ALGORITHMS, BRACKETS, RUNGS
from search.algorithms.schedule import bohb_first_model, make_plan
from search.config import TunerConfig

# Per-trial work outside the epochs (a build, the checkpoint, TensorBoard, KerasTuner's
# bookkeeping): ~0.12 s on a 2-core Intel Xeon with AVX-512 (`python -m tests.benchmarks.overhead`).
TRIAL_OVERHEAD_S = 0.12
BUDGET_MARGIN = 1.4


def calibrate(cfg) -> dict:
    """Time one epoch of the search's default configuration on this machine (training + validation).

    Returns the epoch's seconds without tracing, and the tracing a new architecture costs (the
    first execution of the train and evaluation functions beyond a typical one).
    """
    import keras
    import keras_tuner as kt

    from search.data import sources
    from search.models import build_hypermodel, check_hypermodel

    splits = sources.load_splits(cfg.data, cfg.seed)
    check_hypermodel(cfg, splits.input_shape, splits.num_classes)
    # Writes nothing: a streamed source is cached in memory when it fits, else decoded as it streams.
    train_ds, val_ds, _ = sources.to_datasets(splits, cfg.data.batch_size, cfg.seed, None, lambda line: None)
    hypermodel = build_hypermodel(cfg, splits.input_shape, splits.num_classes)
    hp = kt.HyperParameters()
    runs: dict[str, list[float]] = {"train": [], "test": []}

    class Clock(keras.callbacks.Callback):
        def _begin(self, batch, logs=None):
            self.t = time.perf_counter()

        on_train_batch_begin = on_test_batch_begin = _begin

        def on_train_batch_end(self, batch, logs=None):
            runs["train"].append(time.perf_counter() - self.t)

        def on_test_batch_end(self, batch, logs=None):
            runs["test"].append(time.perf_counter() - self.t)

    model = hypermodel.build(hp)
    start = time.perf_counter()
    hypermodel.fit(hp, model, train_ds, validation_data=val_ds, epochs=1, verbose=0, callbacks=[Clock()])
    wall = time.perf_counter() - start
    tracing = 0.0
    for times in runs.values():
        if len(times) > 1:
            tracing += max(times[0] - sorted(times[1:])[len(times[1:]) // 2], 0.0)
    return {"epoch_s": wall - tracing, "tracing_s": tracing}


def estimate(plan: dict, calibration: dict) -> float:
    """Seconds: every planned epoch, the tracing of each architecture, the per-trial bookkeeping."""
    graphs = plan["trials"] if plan["architectures"] is None else min(plan["trials"], plan["architectures"])
    return (
        plan["epochs"] * calibration["epoch_s"] + graphs * calibration["tracing_s"] + plan["trials"] * TRIAL_OVERHEAD_S
    )


def fit_budget(cfg, calibration: dict, budget_s: float) -> tuple[str, int, float] | None:
    """(key, largest value that fits, its estimate in seconds) for the search to fit `budget_s` after
    `BUDGET_MARGIN`; None when not even the smallest setting does."""
    t = cfg.tuner
    key = ALGORITHMS[t.algorithm].size_key
    limit = TunerConfig.accepts()[key].high

    def seconds(value: int) -> float:
        return estimate(make_plan(cfg.with_tuner(**{key: value})), calibration)

    if seconds(1) * BUDGET_MARGIN > budget_s:
        return None
    low, high = 1, 2
    while high <= limit and seconds(high) * BUDGET_MARGIN <= budget_s:
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:  # the largest value whose estimate fits: low fits, high does not
        mid = (low + high) // 2
        low, high = (mid, high) if seconds(mid) * BUDGET_MARGIN <= budget_s else (low, mid)
    return key, low, seconds(low)


def _budget_lines(cfg, plan: dict, calibration: dict | None, budget_s: float) -> list[str]:
    t = cfg.tuner
    head = f"time budget {units.duration(budget_s)}"
    if calibration is None:
        return [f"{head}: no estimate without the calibration run (drop --no-calibrate to size the search to it)"]
    planned = estimate(plan, calibration)
    lines = [
        f"{head}: the plan is estimated at {units.duration(planned)}, x{BUDGET_MARGIN} for calibration error "
        f"{units.duration(planned * BUDGET_MARGIN)}: "
        + (
            "it fits"
            if planned * BUDGET_MARGIN <= budget_s
            else "the budget ends it early (soft: no trial starts that would not fit)"
        )
    ]
    fit = fit_budget(cfg, calibration, budget_s)
    if fit is None:
        key = ALGORITHMS[t.algorithm].size_key
        lines.append(
            f"not even tuner.{key}: 1 fits the budget with the margin: lower tuner.max_epochs or give more time"
        )
        return lines
    key, value, seconds = fit
    lines.append(
        f"to fit it: tuner.{key}: {value} (estimated {units.duration(seconds)}, x{BUDGET_MARGIN} {units.duration(seconds * BUDGET_MARGIN)})"
    )
    config = cfg.source if isinstance(cfg.source, str) else "CONFIG"
    lines.append(f"  ktsearch tune {config} --set tuner.{key}={value} --budget {units.budget_text(budget_s)}")
    return lines


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe(cfg, plan: dict, calibration: dict | None, budget_s: float | None = None) -> str:
    """What `ktsearch plan` prints (`budget_s`: `--budget`, else the config's `tuner.time_budget`)."""
    t = cfg.tuner
    lines = []
    schedule = ALGORITHMS[t.algorithm].schedule
    if schedule == BRACKETS:
        lines.append(
            f"{cfg.source}: {plan['algorithm']}, max_epochs {t.max_epochs}, factor {t.factor}, "
            f"{_n(t.hyperband_iterations, 'iteration')}"
        )
        for r in plan["rounds"]:
            what = "new configurations" if r.round == 0 else "continued from the previous round"
            prefix = f"iteration {r.iteration + 1} " if t.hyperband_iterations > 1 else ""
            lines.append(
                f"  {prefix}bracket {r.bracket} round {r.round}: {_n(r.trials, 'trial')} x {_n(r.epochs_each, 'epoch')} "
                f"(to epoch {r.to_epoch}; {what})"
            )
        if t.algorithm == "bohb":
            lines += _bohb_lines(cfg, plan)
    elif schedule == RUNGS:
        rungs = [r.to_epoch for r in plan["rounds"]]
        lines.append(
            f"{cfg.source}: asha, {t.max_trials} new configurations, rungs at {', '.join(map(str, rungs))} epochs "
            f"(max_epochs {t.max_epochs}, factor {t.factor}, grace period {t.grace_period})"
        )
        for r in plan["rounds"]:
            what = "new configurations" if r.round == 0 else f"promoted from rung {r.round - 1}, its top 1/{t.factor}"
            count = f"up to {_n(r.trials, 'trial')}" if r.round == 0 else f"about {_n(r.trials, 'trial')}"
            lines.append(f"  rung {r.round}: {count} x {_n(r.epochs_each, 'epoch')} (to epoch {r.to_epoch}; {what})")
        lines.append(
            "  asynchronous: a trial is promoted as soon as it is in the top 1/factor of its rung's results so far, "
            f"else a new configuration starts; the search keeps to these {plan['epochs']} epochs (early leaders "
            "that stay promoted take the place of new configurations) and stops when they are spent, or once "
            "every new configuration has started and nothing is left to promote"
        )
    else:
        lines.append(f"{cfg.source}: {plan['algorithm']}, {t.max_trials} trials x {t.max_epochs} epochs")
    lines.append(
        f"total: {plan['trials']} trials ({plan['new_configurations']} new configurations), "
        f"{plan['epochs']} epochs; early stopping can only shorten trials"
    )
    size = plan["space_size"]
    lines.append(
        "search space: unbounded (a continuous range)"
        if size is None
        else f"search space: {size:,} distinct configurations"
    )
    graphs = plan["architectures"]
    lines.append(
        f"architectures: {'one per trial' if graphs is None else f'at most {graphs}'} compiled (graph tracing)"
    )
    if calibration is not None:
        lines.append(
            f"calibration, one epoch of the default configuration on this machine: {calibration['epoch_s']:.2f} s "
            f"(+ {calibration['tracing_s']:.2f} s tracing a new architecture)"
        )
        lines.append(f"estimated wall time: {units.duration(estimate(plan, calibration))}")
    budget_s = t.time_budget if budget_s is None else budget_s
    if budget_s is not None:
        lines += _budget_lines(cfg, plan, calibration, budget_s)
    lines += [f"warning: {w}" for w in plan["warnings"]]
    return "\n".join(lines)


def _bohb_lines(cfg, plan: dict) -> list[str]:
    b = cfg.tuner.bohb
    points = b["min_points"] or len(cfg.space.searched()) + 1
    lines = [
        f"  new configurations: BOHB's model once a budget has {points + 2} completed trials (min_points {points}"
        f"{'' if b['min_points'] else ', searched dimensions + 1,'} plus 2), a random draw before that and "
        f"{b['random_fraction']:.0%} of the time after it"
    ]
    first = bohb_first_model(cfg, plan)
    if first is not None:  # else make_plan warns
        new, index, budget = first
        r = plan["rounds"][index]
        prefix = f"iteration {r.iteration + 1} " if cfg.tuner.hyperband_iterations > 1 else ""
        lines.append(
            f"  the model can propose from new configuration {new} of {plan['new_configurations']} on "
            f"({prefix}bracket {r.bracket}, modelling budget {_n(budget, 'epoch')}; one worker, every trial completing)"
        )
    return lines
