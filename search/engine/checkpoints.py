"""`CheckpointRetention`: `tuner.keep_checkpoints`, applied to KerasTuner's one checkpoint per trial."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypermodels.private_api import brackets_in_progress


class CheckpointRetention:
    """Keep the weights of the `keep` best trials only (None: keep all; ktsearch deletes nothing unless told).

    A trial that a Hyperband bracket in progress may still continue (ASHA: one not yet promoted
    below the top rung) keeps its checkpoint, the continuation starts from it, until the bracket
    is done, or the search is over.

    Args:
        keep: checkpoints to keep, or None.
        path: trial id -> its checkpoint file.
    """

    def __init__(self, keep: int | None, path: Callable[[str], str]):
        self.keep = keep
        self.path = path

    def prune(self, oracle, search_over: bool = False) -> None:
        """Delete the checkpoints no longer kept (`oracle`: the search's own, not a worker's client)."""
        if self.keep is None:
            return
        objective = oracle.objective
        done = [t for t in oracle.trials.values() if t.status == "COMPLETED" and t.score is not None]
        done.sort(key=lambda t: t.score, reverse=objective.direction == "max")
        keep = {t.trial_id for t in done[: self.keep]}
        keep |= {t.trial_id for t in oracle.ongoing_trials.values()}
        if not search_over:
            keep |= _continuable(oracle)
        for trial_id in oracle.trials:
            if trial_id not in keep:
                Path(self.path(trial_id)).unlink(missing_ok=True)


def _continuable(oracle) -> set[str]:
    own = getattr(oracle, "continuable_trials", None)  # ASHA: trials a promotion may still start from
    if own is not None:
        return own()
    return {info["id"] for bracket in brackets_in_progress(oracle) for round_ in bracket["rounds"] for info in round_}
