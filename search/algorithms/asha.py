"""ASHA, asynchronous successive halving (Li et al., MLSys 2020), as a KerasTuner oracle.

Rungs are budgets in epochs, `grace_period * factor^k` rounded as Hyperband rounds its most
aggressive bracket (`ceil(max_epochs / factor^(s - k))`, the top rung `max_epochs`). Whenever a
worker asks for a trial, the oracle looks at the rungs from the top down and promotes the first
configuration that is in the top 1/factor of the completed results of its rung and not yet
promoted; only when none is, it starts a new configuration at the bottom rung. Nobody waits for a
rung to fill. A promotion is a new trial that continues its parent's checkpoint, with the values
Hyperband's oracle emits (`tuner/trial_id`, `tuner/initial_epoch`, `tuner/epochs`, `tuner/bracket`
0 and `tuner/round` = the rung), so KerasTuner's Hyperband tuner and the distributed chief serve
it unchanged.

The paper's ASHA runs until its user stops it. This one keeps to the epochs its plan states
(`search.algorithms.schedule.asha_rounds`): as many as `max_trials` configurations cost when every
rung promotes exactly 1/factor of it (`search.ASHA`'s default `max_trials` makes that Hyperband's
epochs). Asynchronous promotion promotes more than that (a configuration in the top third of the
first three results stays promoted when later ones beat it): without a budget, 27 configurations of
the default search's space trained 63 to 105 epochs for a plan of 63. So a trial starts only when the epochs it commits (`tuner/epochs -
tuner/initial_epoch`, counted as planned: one that early stopping ends sooner is not refunded) fit
in what the trials so far have left; a promotion that does not fit gives way to a new configuration
that does. It starts at most `max_trials` new configurations; after that it keeps promoting while
promotions fit, waits (IDLE) while trials still run elsewhere that may yield one, and stops when
none can (or when the epochs or the time budget end). Everything it decides is derived from the
trials themselves, so a resume needs no state of its own.

A request costs the same however many trials the search holds: the oracle keeps its rungs in an
index (`Rungs`) that each trial's start and end update (a sorted insert), built again from the
trials when a project is reloaded, instead of scanning every trial per request (`ladder`, the scan,
is kept as the definition the index is tested against).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from itertools import pairwise
from typing import NamedTuple

import keras_tuner as kt

from hypermodels import private_api
from search.algorithms import trial_order
from search.algorithms.schedule import asha_rounds, epochs_of, rung_epochs

TUNER_KEYS = ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round")


class Ladder(NamedTuple):
    members: dict[int, list]  # rung -> its trials
    promoted: dict[int, set[str]]  # rung -> ids of its trials promoted to the next
    committed: int  # epochs the trials commit the search to, running ones included, as planned


class Rungs:
    """ASHA's rungs as an index, kept up to date by each trial's start and end.

    Per rung: how many trials it holds, which of them were promoted, and two sorted lists of the keys
    `(sign * score, trial order)` of its completed trials: all of them (`ranked`) and those not yet
    promoted (`waiting`). The next promotion from a rung is `waiting[0]` when its place in `ranked` is
    within the top 1/factor: two binary searches, where the scan sorts the rung.
    """

    def __init__(self, rungs: int, factor: int, sign: float):
        self.factor = factor
        self.sign = sign
        self.sizes = [0] * rungs
        self.promoted: list[set[str]] = [set() for _ in range(rungs)]
        self.ranked: list[list] = [[] for _ in range(rungs)]
        self.waiting: list[list] = [[] for _ in range(rungs)]
        self.completed: list[set[str]] = [set() for _ in range(rungs)]
        self.committed = 0
        self.rung_of: dict[str, int] = {}
        self.key: dict[str, tuple] = {}

    def started(self, trial) -> None:
        """A trial handed out (once per trial: a retried one is not counted again)."""
        values = trial.hyperparameters.values
        rung = values.get("tuner/round")
        if trial.trial_id in self.rung_of or rung is None or not 0 <= rung < len(self.sizes):
            return
        self.rung_of[trial.trial_id] = rung
        self.sizes[rung] += 1
        self.committed += values["tuner/epochs"] - values["tuner/initial_epoch"]
        parent = values.get("tuner/trial_id")
        if rung > 0 and parent is not None and parent not in self.promoted[rung - 1]:
            self.promoted[rung - 1].add(parent)
            key = self.key.get(parent)
            if key is not None and self.rung_of.get(parent) == rung - 1:
                _remove(self.waiting[rung - 1], key)

    def ended(self, trial) -> None:
        """A trial's end: a completed one with a score takes its place in its rung's ranking."""
        rung = self.rung_of.get(trial.trial_id)
        if rung is None or trial.status != "COMPLETED" or trial.trial_id in self.completed[rung]:
            return
        self.completed[rung].add(trial.trial_id)
        if trial.score is None:
            return
        key = self.key[trial.trial_id] = (self.sign * trial.score, trial_order(trial.trial_id))
        insort(self.ranked[rung], key)
        if trial.trial_id not in self.promoted[rung]:
            insort(self.waiting[rung], key)

    def next_promotion(self, rung: int) -> str | None:
        """The best completed trial of `rung` not yet promoted, when it is in the rung's top 1/factor."""
        waiting, ranked = self.waiting[rung], self.ranked[rung]
        if not waiting or bisect_left(ranked, waiting[0]) >= len(ranked) // self.factor:
            return None
        return waiting[0][1][1]

    def continuable(self) -> set[str]:
        """Completed trials below the top rung not yet promoted."""
        return set().union(*(self.completed[r] - self.promoted[r] for r in range(len(self.sizes) - 1)))


def _remove(keys: list, key: tuple) -> None:
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]


class AshaOracle(private_api.OracleHooks, kt.Oracle):
    """ASHA (see the module doc). `max_trials` here counts new configurations, not trials."""

    HASH_IGNORES = TUNER_KEYS  # a promotion repeats its parent's values with a new tuner/trial_id

    def __init__(self, *args, max_epochs: int, factor: int = 3, grace_period: int = 1, max_trials: int = 10, **kwargs):
        super().__init__(*args, **kwargs)  # no max_trials for KerasTuner: promotions come on top of it
        self.max_epochs = max_epochs
        self.factor = factor
        self.grace_period = grace_period
        self.max_configurations = max_trials
        self.rungs = rung_epochs(max_epochs, factor, grace_period)
        self.epoch_budget = epochs_of(asha_rounds(max_trials, self.rungs, factor))
        self.index = self.build_index()

    def build_index(self) -> Rungs:
        """The rungs' index of the trials so far (each trial once, in trial order)."""
        index = Rungs(len(self.rungs), self.factor, -1.0 if self.objective.direction == "max" else 1.0)
        ordered = sorted(self.trials.values(), key=lambda t: trial_order(t.trial_id))
        for trial in ordered:
            index.started(trial)
        for trial in ordered:
            index.ended(trial)
        return index

    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        if trial.status == "RUNNING":
            self.index.started(trial)
        return trial

    def end_trial(self, trial):
        try:
            super().end_trial(trial)
        finally:  # the failure limit raises after the trial has ended
            kept = self.trials.get(trial.trial_id)
            if kept is not None:
                self.index.ended(kept)

    def ladder(self) -> Ladder:
        """The rungs as the trials so far make them, by a scan of every trial: the definition `Rungs` keeps
        incrementally (tests compare the two)."""
        members: dict[int, list] = {k: [] for k in range(len(self.rungs))}
        promoted: dict[int, set[str]] = {k: set() for k in range(len(self.rungs))}
        committed = 0
        for trial in self.trials.values():
            values = trial.hyperparameters.values
            rung = values.get("tuner/round")
            if rung is None or rung not in members:
                continue
            members[rung].append(trial)
            committed += values["tuner/epochs"] - values["tuner/initial_epoch"]
            if rung > 0 and values.get("tuner/trial_id") is not None:
                promoted[rung - 1].add(values["tuner/trial_id"])
        return Ladder(members, promoted, committed)

    def ranked(self, trials: list) -> list:
        """Completed trials, best first (ties: the earlier trial)."""
        sign = -1.0 if self.objective.direction == "max" else 1.0
        done = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
        return sorted(done, key=lambda t: (sign * t.score, trial_order(t.trial_id)))

    def promotable(self, ladder: Ladder, epochs_left: int | None = None) -> tuple[object, int] | None:
        """(trial, its rung) to promote next: from the highest rung that has one whose epochs fit in
        `epochs_left` (None: any); None when none has."""
        members, promoted = ladder.members, ladder.promoted
        for rung in reversed(range(len(self.rungs) - 1)):
            if epochs_left is not None and self.rungs[rung + 1] - self.rungs[rung] > epochs_left:
                continue
            ranked = self.ranked(members[rung])
            for trial in ranked[: len(ranked) // self.factor]:
                if trial.trial_id not in promoted[rung]:
                    return trial, rung
        return None

    def next_promotion(self, epochs_left: int) -> tuple[object, int] | None:
        """`promotable` from the index: (trial, its rung), or None."""
        for rung in reversed(range(len(self.rungs) - 1)):
            if self.rungs[rung + 1] - self.rungs[rung] > epochs_left:
                continue
            trial_id = self.index.next_promotion(rung)
            if trial_id is not None:
                return self.trials[trial_id], rung
        return None

    def populate_space(self, trial_id):
        left = self.epoch_budget - self.index.committed
        found = self.next_promotion(left)
        if found is not None:
            parent, rung = found
            values = {k: v for k, v in parent.hyperparameters.values.items() if not k.startswith("tuner/")}
            values.update(
                {
                    "tuner/trial_id": parent.trial_id,
                    "tuner/initial_epoch": self.rungs[rung],
                    "tuner/epochs": self.rungs[rung + 1],
                    "tuner/bracket": 0,
                    "tuner/round": rung + 1,
                }
            )
            return {"status": "RUNNING", "values": values}
        if self.index.sizes[0] < self.max_configurations and self.rungs[0] <= left:
            values = self.new_values()
            if values is not None:
                values.update({"tuner/epochs": self.rungs[0], "tuner/initial_epoch": 0, "tuner/bracket": 0})
                values["tuner/round"] = 0
                return {"status": "RUNNING", "values": values}
        # Nothing to start: wait while a running trial may still earn a promotion that fits.
        smallest = min(b - a for a, b in pairwise([0, *self.rungs]))
        return {"status": "IDLE" if self.ongoing_trials and left >= smallest else "STOPPED"}

    def continuable_trials(self) -> set[str]:
        """Completed trials below the top rung not yet promoted: a promotion may still start from them."""
        return self.index.continuable()

    def get_state(self):
        state = super().get_state()
        state.update(
            {
                "max_epochs": self.max_epochs,
                "factor": self.factor,
                "grace_period": self.grace_period,
                "max_configurations": self.max_configurations,
            }
        )
        return state

    def set_state(self, state):
        super().set_state(state)
        self.index = self.build_index()
        # Nothing else to restore (everything is derived from the trials, and the caller's sizes win: a run can be
        # extended), but another algorithm's project must not load as ASHA's: KerasTuner turns a missing key
        # into its "pass `overwrite=True`" error, as when a Hyperband project is reloaded by another tuner.
        missing = [k for k in ("max_epochs", "factor", "grace_period", "max_configurations") if k not in state]
        if missing:
            raise KeyError(missing[0])
