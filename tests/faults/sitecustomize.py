"""Fault injection for tests, loaded only when tests put this folder on PYTHONPATH.

KTSEARCH_FAULT_PATH=GLOB makes the first `os.replace` onto a path matching GLOB (the last step of
every atomic write: JSON, YAML, model.keras) fail with KTSEARCH_FAULT_ERRNO (default ENOSPC), as a
full disk would."""

import errno
import fnmatch
import os

_pattern = os.environ.get("KTSEARCH_FAULT_PATH")
if _pattern:
    _code = getattr(errno, os.environ.get("KTSEARCH_FAULT_ERRNO", "ENOSPC"))
    _replace = os.replace
    _fired = []

    def replace(src, dst, *args, **kwargs):
        if not _fired and fnmatch.fnmatch(os.fspath(dst), _pattern):
            _fired.append(dst)
            raise OSError(_code, os.strerror(_code), os.fspath(dst))
        return _replace(src, dst, *args, **kwargs)

    os.replace = replace
