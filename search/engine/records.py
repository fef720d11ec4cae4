"""`TrialRecords`: ktsearch's record of each trial (`tuner/trial_<id>/epochs.json`).

KerasTuner keeps a trial's score and hyperparameters; the record adds what a reader of the
search needs: the epochs granted and run (early stopping), the absolute best epoch and its
metrics, the Hyperband bracket/round/parent, divergence, the history, the trial's seconds and
each epoch's (`EpochClock`: what `ktsearch simulate` reads from a recorded run).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from search.runs import layout


class EpochClock(keras.callbacks.Callback):
    """Wall seconds of each epoch of a fit, validation included (`seconds`, one per epoch run)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._begin = 0.0

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._begin = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self._begin, 4))


class TrialRecords:
    """Builds, writes and looks up trial records.

    Args:
        objective: KerasTuner's `Objective` (`name`, `direction`).
        trial_dir: trial id -> its directory under the tuner's project.
    """

    def __init__(self, objective, trial_dir: Callable[[str], str]):
        self.objective = objective
        self.trial_dir = trial_dir
        self._records: dict[str, dict] = {}
        self._started: dict[str, float] = {}
        self._clocks: dict[str, EpochClock] = {}

    def clock(self, trial_id: str, callbacks: list) -> None:
        """Time the trial's epochs with the `EpochClock` among its (per-trial copies of the) callbacks."""
        for callback in callbacks:
            if isinstance(callback, EpochClock):
                self._clocks[trial_id] = callback

    def started(self, trial_id: str) -> None:
        self._started[trial_id] = time.time()

    def seconds(self, trial_id: str) -> float:
        """Seconds since the trial started here (0 for a trial that did not)."""
        return time.time() - self._started.get(trial_id, time.time())

    def write(self, trial, history, initial: int, total: int) -> dict:
        """Record a trial that trained from epoch `initial` up to `total` (written atomically)."""
        record = self._records[trial.trial_id] = self._record(trial, history, initial, total)
        layout.write_json(Path(self.trial_dir(trial.trial_id)) / layout.RECORD_FILE, record)
        return record

    def get(self, trial_id: str) -> dict | None:
        """A trial's record: this process's, else the one on disk (another worker's, an earlier session's)."""
        if trial_id in self._records:
            return self._records[trial_id]
        return layout.read_json(Path(self.trial_dir(trial_id)) / layout.RECORD_FILE)

    def forget(self, trial_id: str) -> None:
        self._records.pop(trial_id, None)
        self._started.pop(trial_id, None)
        self._clocks.pop(trial_id, None)

    def _record(self, trial, history, initial: int, total: int) -> dict:
        series = history.history.get(self.objective.name, [])
        finite = [(v, i) for i, v in enumerate(series) if math.isfinite(v)]
        pick = max if self.objective.direction == "max" else min
        best_value, best_index = pick(finite, key=lambda p: p[0]) if finite else (None, None)
        _, book = layout.split_values(trial.hyperparameters.values)
        diverged = divergence(history.history.get("loss", []), initial)
        return {
            "trial_id": trial.trial_id,
            "bracket": book.get("bracket"),
            "round": book.get("round"),
            "continues": book.get("trial_id"),
            "initial_epoch": initial,
            "epochs_granted": total - initial,
            "epochs_run": len(history.epoch),
            "stopped_early": len(history.epoch) < total - initial and diverged is None,
            "best_epoch": None if best_index is None else initial + best_index,
            "best_value": best_value,
            "best_metrics": None
            if best_index is None
            else {k: float(v[best_index]) for k, v in history.history.items()},
            "diverged": diverged,
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "seconds": round(self.seconds(trial.trial_id), 3),
            "epoch_seconds": list(clock.seconds) if (clock := self._clocks.get(trial.trial_id)) else None,
        }


def divergence(losses: list, initial: int) -> str | None:
    """'diverged: loss became nan at epoch 3' for the first non-finite loss, else None."""
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            return f"diverged: loss became {loss} at epoch {initial + i}"
    return None


def failure_reason(trial) -> str | None:
    """One line saying why a trial did not complete (KerasTuner keeps the whole traceback)."""
    if trial.status == "COMPLETED":
        return None
    if not trial.message:
        return (
            "no objective value (NaN score)"
            if trial.score is not None and np.isnan(trial.score)
            else trial.status.lower()
        )
    last = trial.message.strip().splitlines()[-1]
    return last.partition(": ")[2] if last.startswith("keras_tuner.") else last
