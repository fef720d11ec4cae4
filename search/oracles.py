"""Ending a trial on KerasTuner's oracle, where its consecutive-failure limit is turned into `FailureLimitReached`.

Both places that end trials go through `end_trial`: a single-process tuner's `on_trial_end` and a
distributed chief's `EndTrial`. KerasTuner raises the limit from inside `Oracle.end_trial` as a
plain RuntimeError, before it saves the trial that reached it and frees that trial's worker,
and with the oracle's lock still held; `end_trial` finishes that work, then raises
`FailureLimitReached` (a `SearchStopped`: exit code 1, results kept).
"""

from __future__ import annotations

import os

from hypermodels import private_api
from search.errors import FailureLimitReached


def end_trial(oracle, trial) -> None:
    """`oracle.end_trial(trial)`; FailureLimitReached when the trial is one failure too many."""
    try:
        oracle.end_trial(trial)
    except RuntimeError as e:
        if not private_api.is_failure_limit(e):
            raise
        private_api.release_lock(oracle)
        _finish_ending(oracle, trial.trial_id)
        limit = oracle.max_consecutive_failed_trials
        raise FailureLimitReached(
            f"search stopped: {limit} trials in a row failed (tuner.max_consecutive_failed_trials)"
        ) from None


def _finish_ending(oracle, trial_id: str) -> None:
    """What `Oracle.end_trial` skips when it raises: save the trial, free its worker, save the oracle."""
    final = oracle.get_trial(trial_id)
    final.save(os.path.join(private_api.project_dir(oracle), f"trial_{trial_id}", "trial.json"))
    for tuner_id, ongoing in list(oracle.ongoing_trials.items()):
        if ongoing.trial_id == trial_id:  # not ongoing: a resume must not re-run it
            del oracle.ongoing_trials[tuner_id]
    oracle.save()
