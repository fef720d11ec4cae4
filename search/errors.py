"""What ktsearch raises for a user to catch: one base class, `KtsearchError`.

* `UserError`: bad input (config, CLI argument, data file, run directory); one line naming
  the file, the key and what was expected; exit code 2.
* `SearchStopped`: the search ended early for a reason that is not bad input; exit code 1.
  `FailureLimitReached` is the one KerasTuner's `max_consecutive_failed_trials` causes.
"""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class KtsearchError(Exception):
    """Base class of every error ktsearch raises on purpose (catch this one in your scripts)."""


class UserError(KtsearchError):
    """Bad input from the user (config, CLI argument, data file).

    Args:
        source: the file (or "--set KEY", "command line") the bad input came from.
        key: dotted config key, or "" when the whole source is at fault.
        message: what was expected and what was found.
    """

    def __init__(self, source: str, key: str, message: str):
        self.source = str(source)
        self.key = key
        self.message = message
        super().__init__(self.line())

    def line(self) -> str:
        where = f"{self.source}: {self.key}" if self.key else self.source
        return f"{where}: {self.message}"


class SearchStopped(KtsearchError):
    """The search ended early for a reason that is not bad input (e.g. too many failed trials)."""


class FailureLimitReached(SearchStopped):
    """`tuner.max_consecutive_failed_trials` trials failed in a row; the results so far are kept."""
