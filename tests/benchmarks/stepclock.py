"""Where a search's time goes: seconds inside Keras's compiled train/test steps, and each epoch's end.

`install(path)` patches Keras's TensorFlow trainer in this process (benchmark instrumentation only:
nothing in ktsearch imports it):

* every call into a model's compiled train or test function is timed (`perf_counter`); a call far
  slower than its function's median (> 3x, and 20 ms over) is counted as tracing, the rest of it and
  every other call as steps;
* `fit` gets one callback first in its list, which appends a JSON line at each epoch's end to `path`:
  the wall clock (`time.time()`), the phase (`phase(...)`), the epoch's `val_accuracy`, and this
  process's running totals (steps, tracing, calls). Lines are written as they happen, so a trial
  killed mid-fit (Ray Tune's scheduler) loses nothing already written, and several processes (Ray's
  workers) can append to one file.

The same instrument is installed in every system's process, so their shares compare like for like.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time

_STATE = {"phase": "search", "path": None, "steps": 0.0, "tracing": 0.0, "calls": 0}
_FUNCTIONS: dict[int, list[float]] = {}  # id of a timed function -> its call durations
_TRACING: dict[int, float] = {}  # id -> seconds of its calls counted as tracing
_STEPS: dict[int, float] = {}  # id -> seconds of its other calls


def phase(name: str) -> None:
    _STATE["phase"] = name


def install(path: str) -> None:
    """Time compiled steps and log epoch ends to `path` (a JSON-lines file, appended to)."""
    from keras.src.backend.tensorflow import trainer

    _STATE["path"] = path
    cls = trainer.TensorFlowTrainer
    if getattr(cls, "_stepclock", False):
        return
    cls._stepclock = True
    for kind in ("train", "test"):
        _wrap_maker(cls, kind)
    fit = cls.fit

    def clocked_fit(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=[_epoch_log_class()(), *(callbacks or [])], **kwargs)

    cls.fit = clocked_fit


def _wrap_maker(cls, kind: str) -> None:
    maker = getattr(cls, f"make_{kind}_function")
    attribute = f"{kind}_function"

    def make(self, force=False):
        existing = getattr(self, attribute)
        if existing is not None and not force:
            return existing
        maker(self, force)
        function = getattr(self, attribute)
        if function is not None:
            setattr(self, attribute, _timed(function))
        return getattr(self, attribute)

    setattr(cls, f"make_{kind}_function", make)


def _timed(function):
    durations: list[float] = []
    _FUNCTIONS[id(durations)] = durations

    def call(iterator):
        start = time.perf_counter()
        try:
            return function(iterator)
        finally:
            durations.append(time.perf_counter() - start)

    return call


def totals() -> dict:
    """This process's seconds in steps and in tracing so far (functions re-split as medians settle)."""
    for key, durations in _FUNCTIONS.items():
        if not durations:
            continue
        median = statistics.median(durations)
        slow = [d for d in durations if d > 3 * median + 0.02]
        _TRACING[key] = sum(d - median for d in slow)
        _STEPS[key] = sum(durations) - _TRACING[key]
    # A model's functions die with it; their figures stay in _TRACING/_STEPS. Keep the lists short.
    for key in [k for k, d in _FUNCTIONS.items() if len(d) > 5000]:
        del _FUNCTIONS[key]
    return {
        "steps": sum(_STEPS.values()),
        "tracing": sum(_TRACING.values()),
        "calls": sum(len(d) for d in _FUNCTIONS.values()),
    }


@functools.cache
def _epoch_log_class():
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            line = {
                "pid": os.getpid(),
                "t": time.time(),
                "phase": _STATE["phase"],
                "epoch": int(epoch),
                "val_accuracy": float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
                **totals(),
            }
            with open(_STATE["path"], "a") as f:
                f.write(json.dumps(line) + "\n")

    return EpochLog


def read(path: str, since: float) -> dict:
    """The search phase of a log: its timeline [(seconds after `since`, best val_accuracy so far)],
    epochs run, and the seconds in steps and tracing summed over processes (each one's last line)."""
    lines = [json.loads(line) for line in open(path) if line.strip()]
    search = [x for x in lines if x["phase"] == "search"]
    timeline, best = [], None
    for x in sorted(search, key=lambda x: x["t"]):
        if x["val_accuracy"] is not None and (best is None or x["val_accuracy"] > best):
            best = x["val_accuracy"]
            timeline.append((x["t"] - since, best))
    last: dict[int, dict] = {}
    for x in search:
        last[x["pid"]] = x
    return {
        "timeline": timeline,
        "epochs": len(search),
        "steps": sum(x["steps"] for x in last.values()),
        "tracing": sum(x["tracing"] for x in last.values()),
    }
