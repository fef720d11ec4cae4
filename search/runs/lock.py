"""One `tune` or `finalize` per run directory: a lock file holding the owner's host and PID.

The lock lives beside the run (``results/.<name>.lock``), so ``--overwrite`` can
take it before deleting the run. A lock left by a crashed process (same host, PID
no longer running) is detected and taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from search.errors import UserError


def lock_path(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner(path: Path) -> tuple[str, int] | None:
    try:
        host, _, pid = path.read_text().strip().partition(":")
        return host, int(pid)
    except (OSError, ValueError):
        return None  # vanished, or half-written by a process killed while writing it


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold the run's lock for the duration of the block; UserError when another process has it."""
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()}:{os.getpid()}"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(path)
            if owner is not None and (owner[0] != socket.gethostname() or _alive(owner[1])):
                where = f"PID {owner[1]}" + ("" if owner[0] == socket.gethostname() else f" on {owner[0]}")
                raise UserError(
                    str(run_dir),
                    "",
                    f"is in use by another ktsearch tune or finalize ({where}); wait for it, or delete {path} if it is gone",
                ) from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me + "\n")
        break
    else:
        raise UserError(str(run_dir), "", f"could not take the lock {path}")
    try:
        yield
    finally:
        if (_owner(path) or ("", -1))[1] == os.getpid():
            path.unlink(missing_ok=True)
