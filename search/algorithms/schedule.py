"""What a configured search will run, before it runs: rounds, trials, epochs, the space's size.

Hyperband's schedule is fixed by `max_epochs`, `factor` and `hyperband_iterations`: brackets of
successive halving, each round training the best configurations of the previous one for more
epochs (KerasTuner runs a continuation as a new trial that starts from its parent's checkpoint).
The formulas are KerasTuner's own (`HyperbandOracle._get_size`, `_get_epochs`,
`_get_num_brackets`); a test checks them against KerasTuner's oracle and against a real run.
BOHB runs Hyperband's schedule; only where its new configurations come from differs. ASHA's
rungs are fixed by `max_epochs`, `factor` and `grace_period` (`rung_epochs`, which its oracle
uses too); it plans `max_trials` new configurations and a 1/factor of each rung promoted, and its
oracle keeps to those epochs (an early leader of a rung that falls out of its top later stays
promoted, and takes the place of a new configuration). Early
stopping can only make a trial shorter than planned; failed trials and a search space too small
to give every new configuration distinct values make the search run fewer trials.

No TensorFlow: `plan --no-calibrate`, `tune`'s progress line and `simulate` read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypermodels.dimensions import RUNTIME_DIMS, RUNTIME_SECTIONS, SCHEDULE_BY_KIND, SearchSpace, condition_of
from hypermodels.notation import Choice, Fixed
from search.algorithms import ALGORITHMS, BRACKETS, RUNGS


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
    """ASHA's rungs: the epochs each trains a configuration to, bottom to top (`search.algorithms.asha`)."""
    top = 0
    while grace_period * factor ** (top + 1) <= max_epochs:
        top += 1
    return [-(-max_epochs // factor ** (top - k)) for k in range(top + 1)]


def asha_rounds(max_trials: int, rungs: list[int], factor: int) -> list[Round]:
    """ASHA's rungs as rounds of one bracket: every new configuration at rung 0, a 1/factor of each rung
    promoted to the next. Their epochs are the budget the oracle keeps to."""
    rounds, trials = [], max_trials
    for k, to_epoch in enumerate(rungs):
        if k:
            trials //= factor
        start = rungs[k - 1] if k else 0
        rounds.append(Round(0, 0, k, trials, to_epoch - start, to_epoch))
    return rounds


def epochs_of(rounds: list[Round]) -> int:
    """Epochs the rounds train, every trial to its planned end."""
    return sum(r.trials * r.epochs_each for r in rounds)


def asha_configurations(epochs: int, rungs: list[int], factor: int) -> int:
    """The most new configurations (at least 1) whose ASHA plan fits in `epochs`: how `search.ASHA` and the
    benchmarks give ASHA a Hyperband plan's budget."""
    n = 1
    while epochs_of(asha_rounds(n + 1, rungs, factor)) <= epochs:
        n += 1
    return n


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
    """How many distinct configurations the space holds (None: unbounded, a float range, or a user's model whose
    `hp` calls are known only as it builds)."""
    if getattr(space, "open", False):
        return None
    common = _product(d for n, d in space.dims.items() if condition_of(n) is None and n != "schedule.kind")
    per_kind = [
        _product(space.dims.get(f"schedule.{key}") for key in SCHEDULE_BY_KIND.get(kind, {})) for kind in space.kinds()
    ]
    if common is None or None in per_kind:
        return None
    return common * sum(per_kind)


def architectures(space: SearchSpace, reuse: bool) -> int | None:
    """Distinct compiled models a search needs at most (None: as many as trials, or not known before the
    search: a user's model declares its dimensions as it builds)."""
    if not reuse or getattr(space, "open", False):
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
    schedule = ALGORITHMS[t.algorithm].schedule
    if schedule == BRACKETS:
        rounds = hyperband_rounds(t.max_epochs, t.factor, t.hyperband_iterations)
    elif schedule == RUNGS:
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
        "epochs": epochs_of(rounds),
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


def sized_to(cfg, trials: int):
    """`cfg` with its algorithm's size key (`tuner.hyperband_iterations` or `tuner.max_trials`: the table's
    `size_key`) set to the smallest value whose plan has at least `trials` trials."""
    key = ALGORITHMS[cfg.tuner.algorithm].size_key

    def planned(value: int) -> int:
        return make_plan(cfg.with_tuner(**{key: value}))["trials"]

    low, high = 0, 1  # planned(low) < trials (or low is 0), planned(high) >= trials once found
    while planned(high) < trials:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if planned(mid) >= trials else (mid, high)
    return cfg.with_tuner(**{key: high})
