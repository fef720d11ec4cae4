"""The on-disk layout of a run and readers for it (plain JSON/YAML, no TensorFlow).

results/<name>/
    config.yaml        resolved config the run was started with (resume checks it)
    tuner/             KerasTuner project: oracle.json, trial_<id>/trial.json, checkpoints
    tuner/trial_<id>/epochs.json   ktsearch's record: epochs granted/run, best epoch, history
    tensorboard/       one log directory per trial (curves, learning rate, HParams)
    summary.json       every trial, written when the search ends
    best.yaml          `ktsearch export` output (default)
    train/             `ktsearch train` output (default)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
TUNER_DIR = "tuner"
TENSORBOARD_DIR = "tensorboard"
RECORD_FILE = "epochs.json"
SUMMARY_FILE = "summary.json"
EXPORT_FILE = "best.yaml"
TRAIN_DIR = "train"
DATA_CACHE_DIR = "cache"  # uint8 caches of streamed sources (search.streaming)


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file in the same directory and rename: never a half-written file."""
    _atomic(path, text, "w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """`atomic_write` for bytes (the TFLite files)."""
    _atomic(path, data, "wb")


def _atomic(path: str | os.PathLike, data: str | bytes, mode: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=jsonable) + "\n")


def jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def direction(objective: str) -> str:
    """'min' for losses and errors, else 'max' (KerasTuner's own inference rule)."""
    return "min" if ("loss" in objective or "error" in objective) else "max"


def split_values(values: dict) -> tuple[dict, dict]:
    """(real hyperparameters, KerasTuner bookkeeping ``tuner/*``)."""
    real = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    book = {k.partition("/")[2]: v for k, v in values.items() if k.startswith("tuner/")}
    return real, book


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_trials(run_dir: str | os.PathLike) -> list[dict]:
    """Every trial of a run, in trial-id order, joined with ktsearch's epoch record."""
    trials = []
    for trial_dir in sorted((Path(run_dir) / TUNER_DIR).glob("trial_*")):
        state = read_json(trial_dir / "trial.json")
        if state is None:
            continue
        real, book = split_values(state["hyperparameters"]["values"])
        trials.append(
            {
                "trial_id": state["trial_id"],
                "status": state["status"],
                "score": state.get("score"),
                "hyperparameters": real,
                "tuner": book,
                "message": state.get("message"),
                "record": read_json(trial_dir / RECORD_FILE),
            }
        )
    return trials


def read_budget(run_dir: str | os.PathLike) -> dict:
    """The time budget's record in oracle.json (`search.budget`): time spent, what did not fit; {} if none."""
    state = read_json(Path(run_dir) / TUNER_DIR / "oracle.json") or {}
    return state.get("ktsearch_budget") or {}


def best_trial(trials: list[dict], objective: str) -> dict | None:
    """The completed trial with the best finite score (ties: the earlier trial)."""
    done = [t for t in trials if t["status"] == "COMPLETED" and t["score"] is not None and math.isfinite(t["score"])]
    if not done:
        return None
    sign = -1 if direction(objective) == "max" else 1
    return min(done, key=lambda t: sign * t["score"])


def timeline_accounting(timeline: dict) -> dict:
    """A real run's wall time (first trial start to last trial end), trials and worker utilisation,
    from its oracle's timeline (`oracle.json`), measured as `ktsearch simulate` measures its own."""
    spans = [(w, s, e) for w, s, e in timeline.values() if e is not None]
    if not spans:
        return {"wall_s": 0.0, "trials": 0, "workers": 0, "utilisation": 0.0}
    start = min(s for _, s, _ in spans)
    wall = max(e for _, _, e in spans) - start
    workers = len({w for w, _, _ in spans})
    busy = sum(e - s for _, s, e in spans)
    return {
        "wall_s": round(wall, 2),
        "trials": len(spans),
        "workers": workers,
        "utilisation": round(busy / (workers * wall), 4) if wall else 0.0,
    }
