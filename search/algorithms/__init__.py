"""The search algorithms: which oracle proposes the trials, and how much each trial trains.

Every algorithm is a KerasTuner oracle with `base.SearchOracle`'s additions (the wall-clock budget,
the warm start, the timeline), run by one of two KerasTuner tuners. `ALGORITHMS` below is the one
table of them; `tuner.algorithm` takes its names, and everything that differs between algorithms
reads its row: the config (which `tuner` keys apply), the tuner (`engine.tuners`), the plan
(`schedule`), the budget's sizing and a run's extension (`size_key`), and the contract tests
(`tests/search/test_algorithm_contract.py`), which every row passes.

| algorithm | oracle | new configurations | budgets (epochs per trial) |
|---|---|---|---|
| `hyperband` | KerasTuner's `HyperbandOracle` | random | Hyperband's brackets |
| `bohb` | `bohb.BohbOracle` | BOHB's model (random at first) | Hyperband's brackets |
| `asha` | `asha.AshaOracle` | random | ASHA's rungs, asynchronous |
| `random` | KerasTuner's `RandomSearchOracle` | random | `max_epochs` each |
| `bayesian` | KerasTuner's `BayesianOptimizationOracle` | Gaussian process | `max_epochs` each |

Modules: `base` (`SearchOracle`), `schedule` (rounds, rungs and the plan's counts), `oracles` (the
classes this table names, and `make_oracle`), `bohb`, `asha`, `ending` (ending a trial; the
failure limit), `tuners` (`search.BOHB` and `search.ASHA`: BOHB's and ASHA's oracles as KerasTuner tuners, for a
plain KerasTuner script). Importing this package, or `schedule`, does not import TensorFlow; the package's own
`trial_order` is the order of the trial ids its oracles hand out, which every reader of a run sorts by.
"""

from __future__ import annotations

from dataclasses import dataclass

BRACKET_TUNER = "bracket"  # trials that continue a parent's checkpoint for more epochs (KerasTuner's Hyperband tuner)
SINGLE_RUN_TUNER = "single"  # every trial trains from scratch for max_epochs (KerasTuner's Tuner)
BRACKETS = "brackets"  # Hyperband's brackets of rounds; the first trial of a round commits the budget to the round
RUNGS = "rungs"  # ASHA's rungs, filled asynchronously
TRIALS = "trials"  # max_trials trials of max_epochs each


@dataclass(frozen=True)
class Algorithm:
    """One row of the table: what a search with `tuner.algorithm: name` runs."""

    name: str
    oracle: str  # the oracle class in `search.algorithms.oracles` (imported when a search builds it)
    tuner: str  # BRACKET_TUNER or SINGLE_RUN_TUNER
    keys: tuple[str, ...]  # the algorithm-specific `tuner` keys it reads (the config refuses them for the others)
    schedule: str  # BRACKETS, RUNGS or TRIALS: how `schedule.make_plan` lays out its trials
    size_key: str  # the `tuner` key that sizes the search: what `--budget` fits, what raising extends a run
    proposes: str  # where its new configurations come from (docs, `validate`)

    @property
    def bracketed(self) -> bool:
        return self.schedule == BRACKETS


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "hyperband",
            "HyperbandSearch",
            BRACKET_TUNER,
            ("factor", "hyperband_iterations"),
            BRACKETS,
            "hyperband_iterations",
            "random",
        ),
        Algorithm(
            "bohb",
            "BohbSearch",
            BRACKET_TUNER,
            ("factor", "hyperband_iterations", "bohb"),
            BRACKETS,
            "hyperband_iterations",
            "density models of good and bad configurations, random at first",
        ),
        Algorithm(
            "asha",
            "AshaSearch",
            BRACKET_TUNER,
            ("factor", "max_trials", "grace_period"),
            RUNGS,
            "max_trials",
            "random",
        ),
        Algorithm("random", "RandomSearch", SINGLE_RUN_TUNER, ("max_trials",), TRIALS, "max_trials", "random"),
        Algorithm(
            "bayesian", "BayesianSearch", SINGLE_RUN_TUNER, ("max_trials",), TRIALS, "max_trials", "a Gaussian process"
        ),
    )
}
NAMES = tuple(ALGORITHMS)


def used_by(key: str) -> tuple[str, ...]:
    """The algorithms that read an algorithm-specific `tuner` key, in the table's order."""
    return tuple(a.name for a in ALGORITHMS.values() if key in a.keys)


SPECIFIC_KEYS = tuple(dict.fromkeys(key for a in ALGORITHMS.values() for key in a.keys))


def trial_order(trial_id: str) -> tuple[int, str]:
    """Sort key of trial ids in the order the trials were created. Ids are zero-padded numbers whose
    width only grows ('8', '9', '10' in a run extended past its first width: `OracleHooks.create_trial`)."""
    return len(trial_id), trial_id
