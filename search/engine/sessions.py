"""`TrialSessions`: each trial's HParams session in the run's TensorBoard (`search.engine.tensorboard` writes it).

A configuration is one session group named after the first trial of its Hyperband chain; each
trial opens a session (its searched values and the sample images augmented at its strengths)
and closes it (success or failure and the reason), and the group's columns are rewritten from
the records of the whole chain. Replaces KerasTuner's own HParams hook rather than stacking on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from hypermodels import augment
from search.engine import tensorboard as tb


class TrialSessions:
    """Writes the TensorBoard session of every trial.

    Args:
        root: the run's TensorBoard directory.
        space: the search's `SearchSpace` (which values are searched; their values per trial).
        samples: the run's sample images (None: no augmentation grids).
        seed: the augmentation layer's seed for the grids.
        objective: KerasTuner's `Objective`.
        chain: trial id -> ids of its Hyperband chain, first to this one.
        record: trial id -> its record (`search.engine.records.TrialRecords.get`).
    """

    def __init__(
        self,
        root: Path,
        space,
        samples: np.ndarray | None,
        seed: int,
        objective,
        chain: Callable[[str], list[str]],
        record: Callable[[str], dict | None],
    ):
        self.root = Path(root)
        self.space = space
        self.samples = samples
        self.seed = seed
        self.objective = objective
        self.chain = chain
        self.record = record

    def point_curves(self, callbacks: list, trial_id: str) -> None:
        """Send the trial's per-epoch curves into its session directory."""
        for callback in callbacks:
            if isinstance(callback, tb.EpochCurves):
                callback.log_dir = str(tb.trial_dir(self.root, trial_id))

    def start(self, trial) -> None:
        searched = set(self.space.searched())
        values = {k: v for k, v in trial.hyperparameters.values.items() if k in searched}
        augmented = None if self.samples is None else self._augmented(trial)
        caption = tb.augmentation_caption(self.space.values(trial.hyperparameters))
        tb.start_trial(self.root, trial.trial_id, self.chain(trial.trial_id)[0], values, augmented, caption)

    def end(self, trial, reason: str | None, columns: bool = True) -> None:
        """Close the trial's session; `columns`: rewrite its configuration's columns too (`write_group`)."""
        ok = trial.status == "COMPLETED"
        tb.end_trial(self.root, trial.trial_id, ok, reason)
        if columns:
            self.write_group(trial.trial_id, ok)

    def write_group(self, trial_id: str, ok: bool) -> None:
        """The columns of the configuration `trial_id` is the latest trial of, from its whole chain's records."""
        chain = self.chain(trial_id)
        records = [r for r in (self.record(t) for t in chain) if r]
        columns = tb.chain_columns(records, self.objective.name, self.objective.direction) if records else {}
        columns["trial/failed"] = 0.0 if ok else 1.0
        tb.write_columns(self.root, chain[0], len(chain) - 1, columns)

    def _augmented(self, trial) -> np.ndarray:
        layer = augment.from_values(self.space.values(trial.hyperparameters), seed=self.seed)
        if layer is None:
            return self.samples
        return keras.ops.convert_to_numpy(layer(self.samples, training=True))
