"""`ktsearch plan`: what a search will run, before it runs.

Hyperband's schedule is fixed by `max_epochs`, `factor` and `hyperband_iterations`: brackets of
successive halving, each round training the best configurations of the previous one for more
epochs (KerasTuner runs a continuation as a new trial that starts from its parent's checkpoint).
The formulas are KerasTuner's own (`HyperbandOracle._get_size`, `_get_epochs`,
`_get_num_brackets`); a test checks them against KerasTuner's oracle and against a real run.
Early stopping can only make a trial shorter than planned; failed trials and a search space
too small to give every new configuration distinct values make the search run fewer trials.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from hypermodels.space import Choice, Fixed
from hypermodels.spaces import RUNTIME_DIMS, RUNTIME_SECTIONS, SCHEDULE_BY_KIND, SearchSpace, condition_of

# Per-trial work outside the epochs (a build, the checkpoint, TensorBoard, KerasTuner's
# bookkeeping): ~0.12 s on a 2-core Intel Xeon with AVX-512 (`python -m tests.benchmarks.overhead`).
TRIAL_OVERHEAD_S = 0.12


@dataclass(frozen=True)
class Round:
    iteration: int
    bracket: int
    round: int
    trials: int  # configurations trained in this round (round 0: new ones; later: continuations)
    epochs_each: int  # epochs each trial trains (from its parent's last epoch)
    to_epoch: int  # the epoch each trial trains up to


def hyperband_rounds(max_epochs: int, factor: int, iterations: int) -> list[Round]:
    """Every round of a Hyperband search, in the order KerasTuner runs its brackets."""
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    end0 = math.ceil(1 + math.log(max_epochs, factor))

    def size(bracket: int, round_: int) -> int:
        return math.ceil(end0 / (bracket + 1) * factor ** (bracket - round_))

    def to_epoch(bracket: int, round_: int) -> int:
        return math.ceil(max_epochs / factor ** (bracket - round_))

    rounds = []
    for iteration in range(iterations):
        for bracket in reversed(range(brackets)):
            for r in range(bracket + 1):
                start = to_epoch(bracket, r - 1) if r else 0
                rounds.append(
                    Round(iteration, bracket, r, size(bracket, r), to_epoch(bracket, r) - start, to_epoch(bracket, r))
                )
    return rounds


def _count(dim) -> int | None:
    """Distinct values a dimension takes (None: unbounded, a float range)."""
    if dim is None or isinstance(dim, Fixed):
        return 1
    if isinstance(dim, Choice):
        return len(dim.values)
    if dim.integer:
        return int((dim.max - dim.min) // (dim.step or 1)) + 1
    return None


def _product(dims) -> int | None:
    total = 1
    for dim in dims:
        n = _count(dim)
        if n is None:
            return None
        total *= n
    return total


def space_size(space: SearchSpace) -> int | None:
    """How many distinct configurations the space holds (None: unbounded, a float range)."""
    common = _product(d for n, d in space.dims.items() if condition_of(n) is None and n != "schedule.kind")
    per_kind = [
        _product(space.dims.get(f"schedule.{key}") for key in SCHEDULE_BY_KIND.get(kind, {})) for kind in space.kinds()
    ]
    if common is None or None in per_kind:
        return None
    return common * sum(per_kind)


def architectures(space: SearchSpace, reuse: bool) -> int | None:
    """Distinct compiled models a search needs at most (None: as many as trials)."""
    if not reuse:
        return None
    # RandomAffine is left out of a model whose strengths are all zero: one more variant where a
    # trial can draw all zeros (choices with 0, fixed zeros), none where it never (a continuous range)
    # or always does.
    strengths = [space.dims.get(n) for n in RUNTIME_DIMS]
    off = [d is None or (isinstance(d, Fixed) and not d.value) for d in strengths]
    can_be_off = all(o or (isinstance(d, Choice) and 0 in d.values) for o, d in zip(off, strengths, strict=True))
    variants = 2 if can_be_off and not all(off) else 1
    graph = _product(d for n, d in space.dims.items() if n not in RUNTIME_DIMS and not n.startswith(RUNTIME_SECTIONS))
    return None if graph is None else variants * graph


def make_plan(cfg) -> dict:
    """Trials, epochs and rounds of the configured search, and its warnings."""
    t = cfg.tuner
    if t.hyperband:
        rounds = hyperband_rounds(t.max_epochs, t.factor, t.hyperband_iterations)
    else:
        rounds = [Round(0, 0, 0, t.max_trials, t.max_epochs, t.max_epochs)]
    new = sum(r.trials for r in rounds if r.round == 0)
    size = space_size(cfg.space)
    warnings = []
    if size is not None and size < new:
        warnings.append(
            f"the search space holds {size} distinct configurations, but the search asks for {new} new ones: "
            "KerasTuner stops proposing when it runs out, so the search will run fewer trials than planned "
            "(widen a range, add choices, or lower the budget)"
        )
    return {
        "algorithm": t.algorithm,
        "rounds": rounds,
        "trials": sum(r.trials for r in rounds),
        "new_configurations": new,
        "epochs": sum(r.trials * r.epochs_each for r in rounds),
        "space_size": size,
        "architectures": architectures(cfg.space, bool(t.reuse_models)),
        "warnings": warnings,
    }


def calibrate(cfg) -> dict:
    """Time one epoch of the search's default configuration on this machine (training + validation).

    Returns the epoch's seconds without tracing, and the tracing a new architecture costs (the
    first execution of the train and evaluation functions beyond a typical one).
    """
    import keras
    import keras_tuner as kt

    from search import data
    from search.models import build_hypermodel, check_hypermodel

    splits = data.load_splits(cfg.data, cfg.seed)
    check_hypermodel(cfg, splits.input_shape, splits.num_classes)
    # Writes nothing: a streamed source is cached in memory when it fits, else decoded as it streams.
    train_ds, val_ds, _ = data.to_datasets(splits, cfg.data.batch_size, cfg.seed, None, lambda line: None)
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


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def describe(cfg, plan: dict, calibration: dict | None) -> str:
    t = cfg.tuner
    lines = []
    if plan["algorithm"] == "hyperband":
        lines.append(
            f"{cfg.source}: hyperband, max_epochs {t.max_epochs}, factor {t.factor}, "
            f"{_n(t.hyperband_iterations, 'iteration')}"
        )
        for r in plan["rounds"]:
            what = "new configurations" if r.round == 0 else "continued from the previous round"
            prefix = f"iteration {r.iteration + 1} " if t.hyperband_iterations > 1 else ""
            lines.append(
                f"  {prefix}bracket {r.bracket} round {r.round}: {_n(r.trials, 'trial')} x {_n(r.epochs_each, 'epoch')} "
                f"(to epoch {r.to_epoch}; {what})"
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
        lines.append(f"estimated wall time: {_duration(estimate(plan, calibration))}")
    lines += [f"warning: {w}" for w in plan["warnings"]]
    return "\n".join(lines)
