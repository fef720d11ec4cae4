"""What ktsearch raises for a user to catch: one base class, `KtsearchError`.

* `UserError`: bad input (config, CLI argument, data file, run directory); one line naming
  the file, the key and what was expected; exit code 2. `ArgumentError`: a bad argument to a
  Python call (the tuners, `search.BOHB` and `search.ASHA`).
* `hypermodels.notation.SpaceError`: a search dimension that breaks its domain, from a config
  or from one of `hypermodels`' `hp` helpers.
* `SearchStopped`: the search ended early for a reason that is not bad input; exit code 1.
* `StorageError`: a write failed because the disk is full, read-only or failing; exit code 3.
  `FailureLimitReached` is the one KerasTuner's `max_consecutive_failed_trials` causes.
"""

from __future__ import annotations

import contextvars
import errno

from hypermodels.notation import KtsearchError

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_STORAGE = 3  # the disk is full, read-only or failing: nothing is lost, rerun when it is fixed
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


COMMAND_LINE = contextvars.ContextVar("ktsearch_command_line", default=False)  # set by `ktsearch` (search.cli)


def arg(flag: str, param: str) -> str:
    """An argument as its caller gave it, for an error to name: the flag under the `ktsearch` command
    (`--quantize`), the parameter from a Python call (`quantize=True`)."""
    return flag if COMMAND_LINE.get() else param


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


class ArgumentError(UserError, ValueError):
    """A bad argument to a Python call of ktsearch's (`search.BOHB(factor=1)`): `source` names the call,
    `key` the argument. A ValueError too, as KerasTuner raises for its own arguments."""


class SearchStopped(KtsearchError):
    """The search ended early for a reason that is not bad input (e.g. too many failed trials)."""


class FailureLimitReached(SearchStopped):
    """`tuner.max_consecutive_failed_trials` trials failed in a row; the results so far are kept."""


class StorageError(KtsearchError):
    """A write failed because of the storage (disk full, read-only, I/O error): exit code 3.

    Nothing is recorded against the trial that was running; rerunning the command resumes."""


STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
}
STORAGE_MESSAGES = {  # TensorFlow's file writers report the same conditions as text
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
    "Input/output error": errno.EIO,
}


def storage_error(error: BaseException, where: str | None = None) -> StorageError | None:
    """The storage problem behind `error` (or its causes), as one line naming the path and the errno; else None.

    `where`: the path to name when the error does not say (h5py's OSError for a checkpoint names no file).
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error)
        code = getattr(error, "errno", None) if isinstance(error, OSError) else None
        if code not in STORAGE_ERRNOS:
            code = next((c for m, c in STORAGE_MESSAGES.items() if m in text), None)
        if code in STORAGE_ERRNOS:
            path = getattr(error, "filename", None) or _path_in(text) or where
            return StorageError(
                f"{f'{path}: ' if path else ''}{STORAGE_ERRNOS[code]} ({errno.errorcode[code]}); nothing was recorded for the work in "
                "progress"
            )
        error = error.__cause__ or error.__context__
    return None


def _path_in(text: str) -> str | None:
    """A file path in an error message (TensorFlow's: '... /results/x/tensorboard/events...; No space ...')."""
    for word in text.replace(";", " ").replace("'", " ").split():
        if word.startswith("/") and len(word) > 1:
            return word.rstrip(".,:")
    return None
