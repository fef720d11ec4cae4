"""`SearchOracle`: what every ktsearch oracle adds to KerasTuner's, chiefly the wall-clock budget.

`tuner.time_budget` (or `tune --budget`) is soft. Before a trial starts, the oracle estimates what
it commits the search to: the trial's epochs, or, for the first trial of a Hyperband/BOHB round,
the whole round (its trials spread over the workers seen so far). When that does not fit in the
time left, the trial is not started (the proposal is undone, so a resume with a larger budget
proposes exactly it); the running trials finish and the search ends. The estimate is a line
`seconds = a + b * epochs` fitted to the trials that ended (build, tracing and bookkeeping in `a`);
before any trial has ended there is nothing to go on and the trial starts.

Every `SearchOracle` saves its state through the journal (`search.algorithms.journal`): a state
change appends an event, `oracle.json` is rewritten only at compactions, so a call's cost does not
grow with the trials the search holds; `reload` reads `oracle.json` and the events after it.

The time spent is counted from when the oracle is built (after the data is loaded) and saved in
`oracle.json` with every trial's start and end, so it adds up across resumes; so is each trial's
timeline (which worker ran it, from when to when, in seconds of search), from which a run's worker
utilisation follows (`ktsearch simulate` compares its predictions with it); the minutes
between the last save and a `kill -9` are not counted. The budget itself is not saved: a resume
applies the one its config or `--budget` gives.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable

import keras_tuner as kt
import numpy as np
from keras_tuner.engine import trial as trial_module

from hypermodels import private_api
from search.algorithms import journal, trial_order

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
        self._journal: journal.Writer | None = None
        self._background: journal.Background | None = None
        self._update: tuple | None = None
        self._version = 0  # counts what may change a proposal: starts, ends, saves, loads
        self._idle_at: int | None = None  # `_version` when the oracle last answered IDLE
        self._reset_journal_marks()
        self._reloading = False
        super().__init__(*args, **kwargs)
        private_api.track_tried(self)

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
            # Nothing that decides the answer has changed since this oracle last said IDLE (no trial started,
            # ended or was saved): IDLE again, without going over the brackets or rungs (workers waiting for a
            # round ask every 0.2 to 2 s each).
            if self._idle_at == self._version:
                return {"status": "IDLE"}
            response = super().populate_space(trial_id)
            self._idle_at = self._version if response.get("status") == "IDLE" else None
            return response
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
        if trial.status != "IDLE":
            self._version += 1
        if trial.status == "RUNNING":
            self._started[trial.trial_id] = self.clock()
            self.timeline[trial.trial_id] = [tuner_id, round(self.spent(), 3), None]
            self._dirty.add(trial.trial_id)  # journaled with the next event
            self.budget_stop = None
        elif self.budget_stop is not None:
            self.save()  # KerasTuner saves only when a trial starts: keep the stop and the time spent
        if trial.status == "STOPPED" and not self.ongoing_trials and self._journal is not None:
            if self._journal.since_compaction:
                self.compact()  # the search is over: oracle.json holds all of it
        return trial

    @kt.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        self._update = (trial_id, metrics, step)  # journaled as called (`trial_changed`)
        try:
            return super().update_trial(trial_id, metrics, step=step)
        finally:
            self._update = None

    def end_trial(self, trial):
        self._version += 1
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
        state[journal.STATE_KEY] = {"seq": self._journal.seq if self._journal is not None else 0}
        return state

    def set_state(self, state):
        self._version += 1
        if self._reloading:
            state = self._replay_journal(state)
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
        private_api.track_tried(self)
        self._reset_journal_marks()
        for trial_id in sorted(self.__dict__.pop("_replayed", set()), key=trial_order):  # newer than its trial.json
            if self.trials[trial_id].status in ("COMPLETED", "FAILED"):  # ended after its file: written now
                self.write_trial_file(self.trials[trial_id])
            else:
                self._journaled.add(trial_id)

    # -- the journal (`search.algorithms.journal`) ------------------------------------------

    JOURNALED = {"ktsearch_budget/trial_costs": "trial_costs", "ktsearch_budget/timeline": "timeline"}

    def _containers(self) -> dict[str, tuple[object, str]]:
        """{state path: (object, attribute)} of every per-trial collection of the state."""
        out = private_api.per_trial_containers(self)
        for cls in type(self).__mro__:
            for path, attr in cls.__dict__.get("JOURNALED", {}).items():
                out[path] = (self, attr)
        return out

    def _reset_journal_marks(self) -> None:
        """What the next event is relative to: the state as it is now (after a load or a compaction)."""
        self._dirty: set[str] = set()  # trials whose per-trial entries changed since the last event
        self._journaled: set[str] = set()  # running trials whose newest state is in the journal only
        self._pending: dict[str, object] = {}  # trials started or ended: their state goes in the next event
        self._on_disk: set[str] = set(getattr(self, "trials", {}))  # trials with a trial.json
        self._cursors = {path: len(getattr(self, path, [])) for path in journal.LISTS}
        self._last_state: dict[str, object] = {}  # key -> its JSON in the last event (the space: its config)
        # key -> its value at the last event or compaction (the workers' trials: `journal.FLAT_DICTS`)
        self._last_flat: dict[str, dict] = {
            "ongoing_trials": {k: t.trial_id for k, t in getattr(self, "ongoing_trials", {}).items()}
        }
        if hasattr(self, "_tried_so_far"):
            private_api.tried_changes(self)

    def _writer(self) -> journal.Writer | None:
        """The journal's writer; None while the project has no oracle.json (the first save compacts)."""
        if self._journal is None:
            directory = private_api.project_dir(self)
            if not os.path.exists(os.path.join(directory, journal.ORACLE_FILE)):
                return None
            self._journal = journal.Writer(directory)
        return self._journal

    def save(self):
        self._version += 1  # whatever changed the state may change the next answer
        writer = self._writer()
        if writer is None or not all(self._cursors[p] <= len(getattr(self, p)) for p in journal.LISTS):
            return self.compact()  # no oracle.json yet (or lists KerasTuner replaced): the whole state
        event = self._event()
        if event:
            writer.append(event)
        self._write_ended()
        if writer.since_compaction >= max(journal.COMPACT_MIN, len(self.trials)):
            self.compact(final=False)

    def write_in_background(self) -> None:
        """A chief's setting: a finished trial's trial.json is written by a thread of its own (the event that
        ended it holds its final state, so a kill before the file is written loses nothing), so a worker's
        call does not wait for the disk; compactions wait for the thread."""
        if self._background is None:
            self._background = journal.Background(self.write_trial_file)

    def wait_for_files(self) -> None:
        """Return once the background writer (`write_in_background`) has written every file it was given."""
        if self._background is not None:
            self._background.flush()

    def _write_ended(self) -> None:
        """The trial.json of the trials whose end the last event holds; in one process (not a chief's background
        writer), of those it started too, as KerasTuner writes them (the epochs' reports stay in the journal)."""
        for trial_id, trial in self._pending.items():
            if trial.status in ("COMPLETED", "FAILED"):
                if self._background is not None:
                    self._background.submit(trial_id, trial)
                else:
                    self.write_trial_file(trial)
                self._journaled.discard(trial_id)
            else:
                if self._background is None and trial.status == "RUNNING":
                    self.write_trial_file(trial)
                self._journaled.add(trial_id)
            self._on_disk.add(trial_id)  # a base state the metrics that follow apply to
        self._pending.clear()

    def compact(self, final: bool = True) -> None:
        """Write oracle.json whole, then empty the journal: `oracle.json` then holds every event. `final` (the end
        of a search, a caller's): the finished trials' trial.json are all written first. Otherwise (every so many
        events) the trials whose newest state is not in a trial.json yet (running ones, finished ones the
        background writer has not written yet) go on in the emptied journal, in one line."""
        if self._journal is None:
            self._journal = journal.Writer(private_api.project_dir(self))
        self._write_ended()
        carried = set(self._journaled)
        if self._background is not None:
            if final:
                self._background.flush()
            else:
                carried |= self._background.in_flight()
        carried = [self.trials[t] for t in sorted(carried, key=trial_order) if t in self.trials]
        super().save()  # get_state holds the last event's number
        self._journal.truncate()
        self._reset_journal_marks()
        if carried:  # one line, where a trial.json each would cost a file and its sync per worker
            self._journal.append(self._trial_records(carried))
            self._journaled.update(trial.trial_id for trial in carried if trial.status not in ("COMPLETED", "FAILED"))

    def _event(self) -> dict:
        containers = self._containers()
        with private_api.emptied(self, containers):
            state = self.get_state()
        state = journal.strip(state)
        state.pop(journal.STATE_KEY, None)
        changed = {}
        for key, value in state.items():
            if key in journal.FLAT_DICTS or (key == "hyperparameters" and value is self._last_state.get(key)):
                continue  # the first: journaled as changes (below); the second: the same space's config object
            text = value if value is None or isinstance(value, (int, float, str)) else json.dumps(value, default=str)
            if self._last_state.get(key, self) != text:
                self._last_state[key] = value if key == "hyperparameters" else text
                changed[key] = value
        event: dict = {}
        if changed:
            event["state"] = changed
        ongoing = {tuner_id: trial.trial_id for tuner_id, trial in self.ongoing_trials.items()}
        before = self._last_flat.get("ongoing_trials", {})
        if ongoing != before:
            change = {"set": {k: v for k, v in ongoing.items() if before.get(k) != v}}
            gone = [k for k in before if k not in ongoing]
            if gone:
                change["del"] = gone
            event["diff"] = {"ongoing_trials": change}
            self._last_flat["ongoing_trials"] = ongoing
        added = {}
        for path in journal.LISTS:
            items = getattr(self, path)
            if len(items) > self._cursors[path]:
                added[path] = items[self._cursors[path] :]
                self._cursors[path] = len(items)
        if added:
            event["add"] = added
        entries: dict[str, dict] = {}
        for path, (obj, attr) in containers.items():
            if path in journal.LISTS or path == journal.SET or path in journal.FLAT_DICTS:
                continue
            collection = getattr(obj, attr)
            for trial_id in self._dirty:
                if trial_id in collection:
                    value = collection[trial_id]
                    entries.setdefault(path, {})[trial_id] = value.isoformat() if hasattr(value, "isoformat") else value
        self._dirty.clear()
        if entries:
            event["set"] = entries
        tried = private_api.tried_changes(self)
        if tried:
            event["tried"] = tried
        event.update(self._trial_records(self._pending.values()))
        return event

    def _trial_records(self, trials) -> dict:
        """Trials' states for the journal: those in the oracle's own space by their values, status, metrics and
        score (`started`: the space is not written again for each), others whole (`trials`: a worker's trial
        that declared more hyperparameters)."""
        own, whole = [], []
        for trial in trials:
            if trial.hyperparameters.space == self.hyperparameters.space:
                own.append(
                    {
                        "trial_id": trial.trial_id,
                        "values": trial.hyperparameters.values,
                        "status": trial.status,
                        "metrics": trial.metrics.get_config(),
                        "score": trial.score,
                        "best_step": trial.best_step,
                        "message": trial.message,
                    }
                )
            else:
                whole.append(trial.get_state())
        return {k: v for k, v in (("started", own), ("trials", whole)) if v}

    def trial_changed(self, trial) -> None:
        """KerasTuner saves a trial (at its start, each epoch's report, its end), then, at a start or an end, the
        oracle. Journaled: an epoch's report appends the trial's metrics at once; a start's or an end's state goes
        in the oracle's next event, one line with what the start or the end changed (a kill lands before or after
        both), and an end then writes the trial's trial.json. Without a journal yet: KerasTuner's trial.json."""
        writer = self._writer()
        trial_id = trial.trial_id
        self._dirty.add(trial_id)
        if writer is None:
            self.write_trial_file(trial)
            self._on_disk.add(trial_id)
        elif trial_id in self._on_disk and trial.status == "RUNNING" and trial_id not in self._pending:
            update = self._update if self._update is not None and self._update[0] == trial_id else None
            if update is not None:
                writer.append({"update": [trial_id, _plain(update[1]), update[2]]})
            else:
                writer.append({"trials": [trial.get_state()]})
            self._journaled.add(trial_id)
        else:  # a new trial, one that ended, one that ended to be retried (INVALID): with the next event
            self._pending[trial_id] = trial

    def reload(self):
        self._reloading = True
        try:
            super().reload()
        finally:
            self._reloading = False

    def _replay_journal(self, state: dict) -> dict:
        """oracle.json's `state` and the journal's events after it; the trials the journal holds newer."""
        directory = private_api.project_dir(self)
        path = journal.journal_path(directory)
        events = journal.read(path)
        writer = journal.Writer(directory)
        if events.problem:
            print(f"warning: {path}: {events.problem}; the search goes on from the event before", file=sys.stderr)
            writer.truncate(events.good_bytes)
        state, trials, last = journal.merge(state, events.events)
        self._replayed = set()
        space = None
        for trial_id, record in trials.items():
            kept = self.trials.get(trial_id)
            if kept is not None and kept.status in ("COMPLETED", "FAILED"):  # its trial.json is its end
                continue
            if "hyperparameters" in record:  # a whole state
                trial = trial_module.Trial.from_state(record)
            elif "values" in record:  # in the oracle's space: the trial's values, status, metrics, score
                if space is None:
                    space = private_api.SharedSpace.from_config(copy.deepcopy(state["hyperparameters"]))
                hyperparameters = space.copy()
                hyperparameters.values = dict(record["values"])
                trial = trial_module.Trial(hyperparameters, trial_id=trial_id, status=record["status"])
                if record.get("metrics") is not None:
                    trial.metrics = type(trial.metrics).from_config(record["metrics"])
                trial.score, trial.best_step = record.get("score"), record.get("best_step", 0)
                trial.message = record.get("message")
            elif kept is not None:  # reports on a trial whose trial.json holds its start
                trial = trial_module.Trial.from_state(kept.get_state())
            else:
                continue
            for metrics, step in record.get("updates", []):
                private_api.apply_metrics(self, trial, metrics, step)
            self.trials[trial_id] = trial
            self._replayed.add(trial_id)
        writer.seq = last
        writer.since_compaction = len(events.events)
        if self._journal is not None:
            self._journal.close()
        self._journal = writer
        return state


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


def _plain(metrics: dict) -> dict:
    """Reported metric values as JSON numbers (a worker's may be NumPy scalars)."""
    return {name: float(value) if hasattr(value, "item") else value for name, value in metrics.items()}
