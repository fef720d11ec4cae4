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
        planned_trials, planned_epochs: the plan's totals (`search.plan.make_plan`).
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
