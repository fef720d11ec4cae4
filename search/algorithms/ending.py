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


def forget_finished_retries(oracle) -> list[str]:
    """Drop the trials that already ended from the retry queue of a reloaded oracle; returns their ids.

    KerasTuner's `Oracle.end_trial` saves `oracle.json` before it removes the trial from the ongoing
    ones, so a kill just after a trial ended leaves it "ongoing" on disk, and `Oracle.reload` queues
    every ongoing trial to run again: the finished trial would be trained a second time (and ended
    twice). A trial that ended COMPLETED or FAILED is done; INVALID ones keep KerasTuner's retries.
    """
    queue = private_api.retry_queue(oracle)
    done = [t for t in queue if t in oracle.trials and oracle.trials[t].status in ("COMPLETED", "FAILED")]
    queue[:] = [t for t in queue if t not in done]
    return done
