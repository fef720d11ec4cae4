"""`ktsearch plan`: what a search will run, before it runs.

Hyperband's schedule is fixed by `max_epochs`, `factor` and `hyperband_iterations`: brackets of
successive halving, each round training the best configurations of the previous one for more
epochs (KerasTuner runs a continuation as a new trial that starts from its parent's checkpoint).
The formulas are KerasTuner's own (`HyperbandOracle._get_size`, `_get_epochs`,
`_get_num_brackets`); a test checks them against KerasTuner's oracle and against a real run.
BOHB runs Hyperband's schedule; only where its new configurations come from differs. ASHA's
rungs are fixed by `max_epochs`, `factor` and `grace_period`; it starts `max_trials` new
configurations and promotes at least a 1/factor of each rung (more when an early leader of a
rung falls out of its top later: it stays promoted). Early stopping can only make a trial
shorter than planned; failed trials and a search space too small to give every new
configuration distinct values make the search run fewer trials.

With a time budget (`tuner.time_budget`, `plan --budget`), the calibrated estimate sizes the
search to fit: Hyperband's and BOHB's iterations, ASHA's, random and Bayesian search's trials,
after multiplying the estimate by `BUDGET_MARGIN` (the one-epoch calibration ran 20-40% short of
real searches on the resnet and mnist5k configs).
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
BUDGET_MARGIN = 1.4


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


def rung_epochs(max_epochs: int, factor: int, grace_period: int) -> list[int]:
    """ASHA's rungs: the epochs each trains a configuration to, bottom to top (`search.asha`)."""
    top = 0
    while grace_period * factor ** (top + 1) <= max_epochs:
        top += 1
    return [-(-max_epochs // factor ** (top - k)) for k in range(top + 1)]


def asha_rounds(max_trials: int, rungs: list[int], factor: int) -> list[Round]:
    """ASHA's rungs as rounds of one bracket: every new configuration at rung 0, at least a
    1/factor of each rung promoted to the next."""
    rounds, trials = [], max_trials
    for k, to_epoch in enumerate(rungs):
        if k:
            trials //= factor
        start = rungs[k - 1] if k else 0
        rounds.append(Round(0, 0, k, trials, to_epoch - start, to_epoch))
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
    elif t.algorithm == "asha":
        rounds = asha_rounds(t.max_trials, rung_epochs(t.max_epochs, t.factor, t.grace_period), t.factor)
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
    plan = {
        "algorithm": t.algorithm,
        "rounds": rounds,
        "trials": sum(r.trials for r in rounds),
        "new_configurations": new,
        "epochs": sum(r.trials * r.epochs_each for r in rounds),
        "space_size": size,
        "architectures": architectures(cfg.space, bool(t.reuse_models)),
        "warnings": warnings,
    }
    if t.algorithm == "bohb" and bohb_first_model(cfg, plan) is None:
        warnings.append(
            "no budget of this plan gets enough completed trials for BOHB's model, so BOHB proposes at random "
            "like Hyperband: raise tuner.hyperband_iterations (or lower tuner.bohb.min_points)"
        )
    return plan


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


def bohb_first_model(cfg, plan: dict) -> tuple[int, int, int] | None:
    """(new configuration number, its round's index, budget) of the first new configuration BOHB's model
    can propose, run in order on one worker with every trial completing; None: never in this plan.

    A budget needs `min_points + 2` completed trials (min_points: searched dimensions + 1 by default).
    """
    needed = (cfg.tuner.bohb["min_points"] or len(cfg.space.searched()) + 1) + 2
    observed: dict[int, int] = {}
    new = 0
    for index, r in enumerate(plan["rounds"]):
        for _ in range(r.trials):
            if r.round == 0:
                new += 1
                ready = [b for b, n in observed.items() if n >= needed]
                if ready:
                    return new, index, max(ready)
            observed[r.to_epoch] = observed.get(r.to_epoch, 0) + 1
    return None


def fit_budget(cfg, calibration: dict, budget_s: float) -> tuple[str, int, float] | None:
    """(key, largest value that fits, its estimate in seconds) for the search to fit `budget_s` after
    `BUDGET_MARGIN`; None when not even the smallest setting does."""
    t = cfg.tuner
    key = "hyperband_iterations" if t.hyperband else "max_trials"
    limit = 100 if t.hyperband else 100000

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
    head = f"time budget {duration(budget_s)}"
    if calibration is None:
        return [f"{head}: no estimate without the calibration run (drop --no-calibrate to size the search to it)"]
    planned = estimate(plan, calibration)
    lines = [
        f"{head}: the plan is estimated at {duration(planned)}, x{BUDGET_MARGIN} for calibration error "
        f"{duration(planned * BUDGET_MARGIN)}: "
        + (
            "it fits"
            if planned * BUDGET_MARGIN <= budget_s
            else "the budget ends it early (soft: no trial starts that would not fit)"
        )
    ]
    fit = fit_budget(cfg, calibration, budget_s)
    if fit is None:
        key = "hyperband_iterations" if t.hyperband else "max_trials"
        lines.append(
            f"not even tuner.{key}: 1 fits the budget with the margin: lower tuner.max_epochs or give more time"
        )
        return lines
    key, value, seconds = fit
    lines.append(
        f"to fit it: tuner.{key}: {value} (estimated {duration(seconds)}, x{BUDGET_MARGIN} {duration(seconds * BUDGET_MARGIN)})"
    )
    config = cfg.source if isinstance(cfg.source, str) else "CONFIG"
    lines.append(f"  ktsearch tune {config} --set tuner.{key}={value} --budget {_budget_text(budget_s)}")
    return lines


def budget_summary(ran: dict) -> str:
    """The final report's line on a time budget: time used, what did not fit, how much of the plan ran
    (`ran`: summary.json's `plan`)."""
    share = (
        f"{ran['trials']} of {ran['planned_trials']} planned trials, "
        f"{ran['epochs_run']} of {ran['planned_epochs']} planned epochs ran"
    )
    used = f"time budget {duration(ran['time_budget_s'])}: {duration(ran['spent_s'] or 0)} used"
    stop = ran.get("stopped_by_budget")
    if not stop:
        return f"{used}; {share}"
    needed = "" if stop["needed_s"] is None else f", about {duration(stop['needed_s'])}"
    left = duration(max(stop["left_s"], 0))
    return (
        f"{used}; the budget ended the search: the next {stop['next']}{needed} did not fit in the {left} left; {share}"
    )


def _budget_text(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def describe(cfg, plan: dict, calibration: dict | None, budget_s: float | None = None) -> str:
    """What `ktsearch plan` prints (`budget_s`: `--budget`, else the config's `tuner.time_budget`)."""
    t = cfg.tuner
    lines = []
    if t.hyperband:
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
    elif t.algorithm == "asha":
        rungs = [r.to_epoch for r in plan["rounds"]]
        lines.append(
            f"{cfg.source}: asha, {t.max_trials} new configurations, rungs at {', '.join(map(str, rungs))} epochs "
            f"(max_epochs {t.max_epochs}, factor {t.factor}, grace period {t.grace_period})"
        )
        for r in plan["rounds"]:
            what = "new configurations" if r.round == 0 else f"promoted from rung {r.round - 1}, its top 1/{t.factor}"
            count = _n(r.trials, "trial") if r.round == 0 else f"at least {_n(r.trials, 'trial')}"
            lines.append(f"  rung {r.round}: {count} x {_n(r.epochs_each, 'epoch')} (to epoch {r.to_epoch}; {what})")
        lines.append(
            "  asynchronous: a trial is promoted as soon as it is in the top 1/factor of its rung's results so far, "
            "else a new configuration starts; the search stops once every new configuration has started and "
            "nothing is left to promote"
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
        lines.append(f"estimated wall time: {duration(estimate(plan, calibration))}")
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
