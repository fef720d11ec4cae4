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

The paper's ASHA runs until its user stops it. This one starts at most `max_trials` new
configurations; after that it keeps promoting while promotions exist, waits (IDLE) while trials
still run elsewhere that may yield one, and stops when none can (or when the time budget ends).
Everything it decides is derived from the trials themselves, so a resume needs no state of its own.
"""

from __future__ import annotations

import keras_tuner as kt

from hypermodels import private_api
from search.algorithms import trial_order
from search.algorithms.schedule import rung_epochs

TUNER_KEYS = ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round")


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

    def ladder(self) -> tuple[dict[int, list], dict[int, set[str]]]:
        """({rung: its trials}, {rung: ids of its trials promoted to the next}), from the trials."""
        members: dict[int, list] = {k: [] for k in range(len(self.rungs))}
        promoted: dict[int, set[str]] = {k: set() for k in range(len(self.rungs))}
        for trial in self.trials.values():
            values = trial.hyperparameters.values
            rung = values.get("tuner/round")
            if rung is None or rung not in members:
                continue
            members[rung].append(trial)
            if rung > 0 and values.get("tuner/trial_id") is not None:
                promoted[rung - 1].add(values["tuner/trial_id"])
        return members, promoted

    def ranked(self, trials: list) -> list:
        """Completed trials, best first (ties: the earlier trial)."""
        sign = -1.0 if self.objective.direction == "max" else 1.0
        done = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
        return sorted(done, key=lambda t: (sign * t.score, trial_order(t.trial_id)))

    def promotable(self) -> tuple[object, int] | None:
        """(trial, its rung) to promote next: from the highest rung that has one; None when none has."""
        members, promoted = self.ladder()
        for rung in reversed(range(len(self.rungs) - 1)):
            ranked = self.ranked(members[rung])
            for trial in ranked[: len(ranked) // self.factor]:
                if trial.trial_id not in promoted[rung]:
                    return trial, rung
        return None

    def populate_space(self, trial_id):
        found = self.promotable()
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
        members, _ = self.ladder()
        if len(members[0]) < self.max_configurations:
            values = self.new_values()
            if values is not None:
                values.update({"tuner/epochs": self.rungs[0], "tuner/initial_epoch": 0, "tuner/bracket": 0})
                values["tuner/round"] = 0
                return {"status": "RUNNING", "values": values}
        # No new configuration left to start: wait while a running trial may still earn a promotion.
        return {"status": "IDLE" if self.ongoing_trials else "STOPPED"}

    def continuable_trials(self) -> set[str]:
        """Completed trials below the top rung not yet promoted: a promotion may still start from them."""
        members, promoted = self.ladder()
        return {
            t.trial_id
            for rung in range(len(self.rungs) - 1)
            for t in members[rung]
            if t.status == "COMPLETED" and t.trial_id not in promoted[rung]
        }

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
        # Nothing to restore (everything is derived from the trials, and the caller's sizes win: a run can be
        # extended), but another algorithm's project must not load as ASHA's: KerasTuner turns a missing key
        # into its "pass `overwrite=True`" error, as when a Hyperband project is reloaded by another tuner.
        missing = [k for k in ("max_epochs", "factor", "grace_period", "max_configurations") if k not in state]
        if missing:
            raise KeyError(missing[0])
