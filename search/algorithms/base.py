"""`SearchOracle`: what every ktsearch oracle adds to KerasTuner's, chiefly the wall-clock budget.

`tuner.time_budget` (or `tune --budget`) is soft. Before a trial starts, the oracle estimates what
it commits the search to: the trial's epochs, or, for the first trial of a Hyperband/BOHB round,
the whole round (its trials spread over the workers seen so far). When that does not fit in the
time left, the trial is not started (the proposal is undone, so a resume with a larger budget
proposes exactly it); the running trials finish and the search ends. The estimate is a line
`seconds = a + b * epochs` fitted to the trials that ended (build, tracing and bookkeeping in `a`);
before any trial has ended there is nothing to go on and the trial starts.

The time spent is counted from when the oracle is built (after the data is loaded) and saved in
`oracle.json` with every trial's start and end, so it adds up across resumes; so is each trial's
timeline (which worker ran it, from when to when, in seconds of search), from which a run's worker
utilisation follows (`ktsearch simulate` compares its predictions with it); the minutes
between the last save and a `kill -9` are not counted. The budget itself is not saved: a resume
applies the one its config or `--budget` gives.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from hypermodels import private_api
from search.algorithms import trial_order

STATE_KEY = "ktsearch_budget"
WARM_KEY = "ktsearch_warm_start"


class SearchOracle(private_api.OracleHooks):
    """Mixin for a KerasTuner Oracle: the wall-clock budget and the trials a search may still continue.

    Args:
        time_budget: seconds, or None (no budget).
        trial_epochs: epochs of a trial without `tuner/epochs` (random and Bayesian search).
        clock: seconds, monotonic (tests pass a fake one).
        warm_start: configurations (name -> value) to propose first, in order (`search.runs.warmstart`).
    """

    def __init__(
        self,
        *args,
        time_budget: float | None = None,
        trial_epochs: int = 1,
        clock: Callable[[], float] = time.monotonic,
        warm_start: list[dict] | None = None,
        **kwargs,
    ):
        self.warm_start = list(warm_start or [])
        self.warm_used = 0  # how many of them were proposed (saved with the oracle)
        self.time_budget = time_budget
        self.trial_epochs = trial_epochs
        self.clock = clock
        self.spent_before = 0.0
        self.session_start = clock()
        self.trial_costs: dict[str, list[float]] = {}  # trial id -> [epochs trained, seconds]
        self.timeline: dict[str, list] = {}  # trial id -> [worker, started, ended or None] (seconds of search)
        self.budget_stop: dict | None = None  # what did not fit, when the budget ended the search
        self._started: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    # -- warm start -----------------------------------------------------------------------

    def propose_values(self):
        """The next warm-start configuration while any is left, else the algorithm's own proposal."""
        import keras_tuner as kt

        while self.warm_used < len(self.warm_start):
            wanted = self.warm_start[self.warm_used]
            self.warm_used += 1
            hps = kt.HyperParameters()
            for hp in self.hyperparameters.space:  # as KerasTuner's random draw fills them: active ones only
                hps.merge([hp])
                if hps.is_active(hp):
                    hps.values[hp.name] = wanted.get(hp.name, hp.default)
            if not self.is_duplicate(hps.values):
                return hps.values
        return super().propose_values()

    def proposal_state(self) -> dict:
        return super().proposal_state() | {"warm_used": self.warm_used}

    # -- the budget -----------------------------------------------------------------------

    def spent(self) -> float:
        """Seconds of search so far, this session and the earlier ones."""
        return self.spent_before + self.clock() - self.session_start

    def populate_space(self, trial_id):
        if self.time_budget is None:
            return super().populate_space(trial_id)
        saved = self.proposal_state()
        response = super().populate_space(trial_id)
        if response.get("status") != "RUNNING":
            return response
        needed, what = self.commitment(trial_id, response["values"])
        left = self.time_budget - self.spent()
        if left <= 0 or (needed is not None and needed > left):
            self.restore_proposal_state(saved)  # a resume with more time proposes this very trial
            self.budget_stop = {
                "spent_s": round(self.spent(), 1),
                "next": what,
                "needed_s": None if needed is None else round(needed, 1),
                "left_s": round(left, 1),
            }
            return {"status": "IDLE" if self.ongoing_trials else "STOPPED"}
        return response

    def commitment(self, trial_id: str, values: dict) -> tuple[float | None, str]:
        """(estimated seconds, what) a proposed trial commits the search to."""
        epochs = int(values.get("tuner/epochs", self.trial_epochs)) - int(values.get("tuner/initial_epoch", 0))
        per_trial = self.estimate(epochs)
        where = self.hyperband_round(trial_id)
        if where is not None and where[3] == 1:  # the first trial of a round: the round
            bracket, round_num, size, _ = where
            waves = math.ceil(size / max(1, len(self.tuner_ids)))
            what = f"bracket {bracket} round {round_num} ({size} trials x {epochs} epochs)"
            return (None if per_trial is None else waves * per_trial), what
        return per_trial, f"trial {trial_id} ({epochs} epochs)"

    def estimate(self, epochs: int) -> float | None:
        """Seconds a trial of `epochs` epochs takes, from the trials that ended (None: none yet)."""
        return fit_trial_seconds(list(self.trial_costs.values()), epochs)

    # -- KerasTuner's oracle, timed -------------------------------------------------------

    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        if trial.status == "RUNNING":
            self._started[trial.trial_id] = self.clock()
            self.timeline[trial.trial_id] = [tuner_id, round(self.spent(), 3), None]
            self.budget_stop = None
        elif self.budget_stop is not None:
            self.save()  # KerasTuner saves only when a trial starts: keep the stop and the time spent
        return trial

    def end_trial(self, trial):
        started = self._started.pop(trial.trial_id, None)
        if started is not None:  # a trial started before a resume has no clean time: left out
            kept = self.trials.get(trial.trial_id)
            epochs = _epochs_run(kept, self.objective) if kept is not None else 0
            if epochs:
                self.trial_costs[trial.trial_id] = [epochs, round(self.clock() - started, 3)]
        if trial.trial_id in self.timeline:
            self.timeline[trial.trial_id][2] = round(self.spent(), 3)
        return super().end_trial(trial)

    def get_state(self):
        state = super().get_state()
        state[STATE_KEY] = {
            "time_budget_s": self.time_budget,
            "spent_s": round(self.spent(), 3),
            "trial_costs": self.trial_costs,
            "timeline": self.timeline,
            "stop": self.budget_stop,
        }
        state[WARM_KEY] = {"used": self.warm_used}
        return state

    def set_state(self, state):
        super().set_state(state)  # Hyperband's and BOHB's `hyperband_iterations` stay the config's (`OracleHooks`)
        # KerasTuner's reload fills `trials` in the file system's order; what reads them in order (Bayesian
        # optimisation's observations) must see them as the uninterrupted search did.
        ordered = sorted(self.trials.items(), key=lambda item: trial_order(item[0]))
        self.trials.clear()
        self.trials.update(ordered)
        saved = state.get(STATE_KEY) or {}  # absent in runs made before the budget existed
        self.spent_before = float(saved.get("spent_s", 0.0))
        self.session_start = self.clock()
        self.trial_costs = {k: list(v) for k, v in (saved.get("trial_costs") or {}).items()}
        self.timeline = {k: list(v) for k, v in (saved.get("timeline") or {}).items()}
        self.budget_stop = saved.get("stop")
        self.warm_used = int((state.get(WARM_KEY) or {}).get("used", 0))


def _epochs_run(trial, objective) -> int:
    try:
        return len(trial.metrics.get_history(objective.name))
    except (KeyError, ValueError, AttributeError):
        return 0


def fit_trial_seconds(costs: list[list[float]], epochs: int) -> float | None:
    """`a + b * epochs`, fitted to [epochs, seconds] pairs (a, b >= 0); None without any."""
    costs = [(e, s) for e, s in costs if e > 0]
    if not costs:
        return None
    e = np.array([c[0] for c in costs], dtype=float)
    s = np.array([c[1] for c in costs], dtype=float)
    if len(set(e)) > 1:
        b, a = np.polyfit(e, s, 1)
        if a >= 0 and b >= 0:
            return float(a + b * epochs)
    return float(np.median(s / e) * epochs)  # one trial length seen (or a fit that makes no sense): per epoch
