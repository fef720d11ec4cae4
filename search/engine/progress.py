"""Live progress of a search: trial n of N (from the plan), best so far, elapsed time and ETA.

One compact line per trial; on a terminal, also a status bar kept on the last line and redrawn
after every trial. The ETA assumes the remaining planned epochs take as long as the epochs so
far did; early stopping makes the search end sooner than that.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Formats and prints per-trial progress for `tune`.

    Args:
        planned_trials, planned_epochs: the plan's totals (`search.algorithms.schedule.make_plan`).
        log: where lines go.
        terminal: draw a status bar on the last line (stdout is a terminal).
        quiet: no per-trial lines or bar; other lines still go to `log`.
    """

    def __init__(
        self,
        planned_trials: int,
        planned_epochs: int,
        log: Callable[[str], None] = print,
        terminal: bool = False,
        quiet: bool = False,
    ):
        self.planned_trials = planned_trials
        self.planned_epochs = planned_epochs
        self._log = log
        self.terminal = terminal and not quiet
        self.quiet = quiet
        self.start = time.monotonic()
        self.epochs_this_run = 0
        self._bar = ""

    def restart(self) -> None:
        self.start = time.monotonic()

    def log(self, line: str) -> None:
        """A line that is not a trial's (start, warnings, the final report)."""
        self._clear()
        self._log(line)
        self._draw()

    def status(self, ended: int, epochs_granted: int, best: str) -> str:
        elapsed = time.monotonic() - self.start
        left = max(self.planned_epochs - epochs_granted, 0)
        eta = f"~{clock(elapsed / self.epochs_this_run * left)} left" if self.epochs_this_run else "eta after a trial"
        return f"[{ended}/{self.planned_trials}] best {best} | {clock(elapsed)} elapsed, {eta}"

    def trial(self, line: str, ended: int, epochs_granted: int, epochs_this_trial: int, best: str) -> None:
        """A trial ended: `ended` trials of the search have, `epochs_granted` epochs of the plan are spent."""
        self.epochs_this_run += epochs_this_trial
        status = self.status(ended, epochs_granted, best)
        if self.quiet:
            return
        self._clear()
        self._log(f"{line} | {status}")
        self._bar = self._bar_text(ended, status) if self.terminal else ""
        self._draw()

    def _bar_text(self, ended: int, status: str, width: int = 24) -> str:
        done = min(width, round(width * ended / max(self.planned_trials, 1)))
        return f"{'#' * done}{'.' * (width - done)} {status}"

    def _clear(self) -> None:
        if self.terminal and self._bar:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()

    def _draw(self) -> None:
        if self.terminal and self._bar:
            sys.stdout.write(self._bar)
            sys.stdout.flush()

    def close(self) -> None:
        self._clear()
        self._bar = ""


class TrialReporter:
    """The line each ended trial gets, with the search's progress (trial n of N, best so far, ETA).

    Args:
        oracle: the search's own oracle (a single process's, or a distributed chief's).
        record: trial id -> its record (`search.engine.records.TrialRecords.get`).
        log: where lines go.
        progress: a `Progress` display, or None for plain lines.
    """

    def __init__(self, oracle, record: Callable[[str], dict | None], log: Callable[[str], None], progress=None):
        self.oracle = oracle
        self.record = record
        self.log = log
        self.progress = progress
        self._granted: int | None = None  # epochs of the plan spent by ended trials

    def trial_ended(self, trial_id: str, line: str) -> None:
        """Log a trial's end line; with a progress display, as trial n of N with the best so far and the ETA."""
        if self.progress is None:
            self.log(line)
            return
        record = self.record(trial_id) or {}
        trials = self.oracle.trials.values()
        if self._granted is None:  # the first trial this session: what earlier sessions spent too
            ended = [t for t in trials if t.status not in ("RUNNING", "IDLE")]
            self._granted = sum((self.record(t.trial_id) or {}).get("epochs_granted", 0) for t in ended)
        else:
            self._granted += record.get("epochs_granted", 0)
        ended = sum(t.status not in ("RUNNING", "IDLE") for t in trials)
        best = self.oracle.get_best_trials(1)
        best_text = f"{best[0].score:.4f} ({best[0].trial_id})" if best and best[0].score is not None else "none yet"
        self.progress.trial(line, ended, self._granted, record.get("epochs_granted", 0), best_text)


def trial_line(trial, record: dict, objective: str, reason: str | None, seconds: float) -> str:
    """'trial 0004 bracket 0 round 0: epochs 3/3 val_accuracy 0.8607 completed [0.3s]' (and the failure reason)."""
    where = f" bracket {record['bracket']} round {record['round']}" if record.get("bracket") is not None else ""
    epochs = f" epochs {record['epochs_run']}/{record['epochs_granted']}" if record else ""
    early = " (early stop)" if record.get("stopped_early") else ""
    score = "" if trial.score is None or trial.status != "COMPLETED" else f" {objective} {trial.score:.4f}"
    line = f"trial {trial.trial_id}{where}:{epochs}{early}{score} {trial.status.lower()} [{seconds:.1f}s]"
    return f"{line}: {reason}" if reason else line
