"""The on-disk layout of a run and readers for it (plain JSON/YAML, no TensorFlow).

results/<name>/
    config.yaml        resolved config the run was started with (resume checks it)
    tuner/             KerasTuner project: oracle.json, trial_<id>/trial.json, checkpoints
    tuner/trial_<id>/epochs.json   ktsearch's record: epochs granted/run, best epoch, history
    tensorboard/       one log directory per trial (curves, learning rate, HParams)
    summary.json       every trial, written when the search ends
    model_input.json   the models' input shape and classes (what `costs` builds them for)
    costs.json         parameters, size and latency per architecture (`ktsearch costs`)
    warm_start.json    the configurations a warm-started run (`tune --from`) proposes first
    best.yaml          `ktsearch export` output (default)
    finalize/          `ktsearch finalize`: results.json (every training), finalists.json (the pick)
    train/             `ktsearch train` output (default)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from search.algorithms import journal, trial_order

CONFIG_FILE = "config.yaml"
TUNER_DIR = "tuner"
TENSORBOARD_DIR = "tensorboard"
RECORD_FILE = "epochs.json"
SUMMARY_FILE = "summary.json"
MODEL_INPUT_FILE = "model_input.json"
EXPORT_FILE = "best.yaml"
TRAIN_DIR = "train"
DATA_CACHE_DIR = "cache"  # uint8 caches of streamed sources (search.data.streaming)
FINALIZE_DIR = "finalize"
FINALIZE_RESULTS_FILE = "results.json"  # in FINALIZE_DIR: every training's metrics, by configuration and seed
FINALISTS_FILE = "finalists.json"  # in FINALIZE_DIR: the finalists' statistics and the pick
ARRAYS_DIR = "data"  # a Python caller's arrays (`tune(data=...)`, `search.data.arrays`)
DIMENSIONS_FILE = "dimensions.json"  # a user model's dimensions as its builds declared them (`with_dimensions`)


def keep_dimensions(run_dir: Path, space) -> None:
    """Record the user model's dimensions `space` holds (and the ktsearch ones it dropped), for later readers."""
    write_json(Path(run_dir) / DIMENSIONS_FILE, {"dimensions": space.user_records(), "dropped": list(space.dropped)})


def read_dimensions(run_dir: Path) -> dict:
    """What `keep_dimensions` recorded: {"dimensions": {name: record}, "dropped": [names]} (empty: none)."""
    saved = read_json(Path(run_dir) / DIMENSIONS_FILE) or {}
    return {"dimensions": saved.get("dimensions") or {}, "dropped": saved.get("dropped") or []}


def with_dimensions(config, run_dir: Path | None = None):
    """`config` with its space holding the user model's dimensions a run recorded (a user's model only)."""
    space = config.space
    if space.open:
        saved = read_dimensions(Path(run_dir or config.run_dir))
        space.extend(saved["dimensions"])
        for name in saved["dropped"]:
            space.drop(name)
    return config


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


_DECLARED_DIRECTIONS: dict[str, str] = {}  # objective -> direction, as a KerasTuner project's metrics record it


def direction(objective: str) -> str:
    """'min' for losses and errors, else 'max' (KerasTuner's own inference rule for ktsearch's metrics); an
    objective a KerasTuner project declared (`declare_direction`) has the direction its files record."""
    if objective in _DECLARED_DIRECTIONS:
        return _DECLARED_DIRECTIONS[objective]
    return "min" if ("loss" in objective or "error" in objective) else "max"


def declare_direction(objective: str, value: str) -> None:
    """The direction of an objective ktsearch's rule may not know (`val_mse`), read from a KerasTuner project
    (`search.analysis.projects`), for this process."""
    _DECLARED_DIRECTIONS[objective] = value


def split_values(values: dict) -> tuple[dict, dict]:
    """(real hyperparameters, KerasTuner bookkeeping ``tuner/*``)."""
    real = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    book = {k.partition("/")[2]: v for k, v in values.items() if k.startswith("tuner/")}
    return real, book


def load_json(path: Path) -> tuple[object | None, str | None]:
    """(data, None), (None, None) when the file does not exist, or (None, what is wrong with it)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, "a directory, not a file"
    if not raw.strip():
        return None, "empty"
    try:
        return json.loads(raw.decode("utf-8")), None
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as e:
        return None, f"truncated or not JSON: {e.msg} at line {e.lineno}, column {e.colno}"


def json_shape(data: object, keys: tuple[str, ...]) -> str | None:
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    missing = [k for k in keys if k not in data]
    return f"missing {', '.join(missing)}" if missing else None


def trial_problem(data: object) -> str | None:
    """What makes a parsed `trial.json` unusable by KerasTuner, or None."""
    problem = json_shape(data, ("trial_id", "hyperparameters", "status", "metrics"))
    if problem:
        return problem
    hps = data["hyperparameters"]
    if not isinstance(hps, dict) or not isinstance(hps.get("values"), dict) or not isinstance(hps.get("space"), list):
        return "expected hyperparameters with space and values"
    if not isinstance(data["trial_id"], str) or not isinstance(data["status"], str):
        return "expected a trial_id and a status"
    return None


def read_trial(path: Path) -> tuple[dict | None, str | None]:
    """A `trial.json`: (state, None), (None, None) if missing, (None, problem) if damaged."""
    data, problem = load_json(path)
    if data is None:
        return None, problem
    problem = trial_problem(data)
    return (None, problem) if problem else (data, None)


def read_record(path: Path) -> tuple[dict | None, str | None]:
    """An `epochs.json` (`search.engine.records`): (record, None), (None, None) if missing, (None, problem)."""
    data, problem = load_json(path)
    if data is None:
        return None, problem
    problem = json_shape(data, ("trial_id", "best_epoch", "best_value"))
    return (None, problem) if problem else (data, None)


def record_from_trial(state: dict) -> dict:
    """An `epochs.json` rebuilt from KerasTuner's `trial.json`: the epochs granted, the best epoch and its
    metrics (KerasTuner keeps the best epoch's only, at `best_step` counted from the trial's first
    epoch); the per-epoch history and timings are lost."""
    _, book = split_values(state["hyperparameters"]["values"])
    metrics = ((state.get("metrics") or {}).get("metrics")) or {}
    best_step = state.get("best_step")
    best = {}
    for name, history in metrics.items():
        for observation in (history or {}).get("observations") or []:
            if observation.get("step") == best_step and observation.get("value"):
                best[name] = float(observation["value"][-1])
    initial = int(book.get("initial_epoch", 0) or 0)
    total = book.get("epochs")
    return {
        "trial_id": state["trial_id"],
        "bracket": book.get("bracket"),
        "round": book.get("round"),
        "continues": book.get("trial_id"),
        "initial_epoch": initial,
        "epochs_granted": None if total is None else int(total) - initial,
        "epochs_run": None,
        "stopped_early": None,
        "best_epoch": initial + best_step if state.get("score") is not None and best_step is not None else None,
        "best_value": state.get("score"),
        "best_metrics": best or None,
        "diverged": None,
        "history": {},
        "seconds": None,
        "epoch_seconds": None,
        "rebuilt_from": "trial.json",
    }


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # missing or damaged: `search.runs.integrity` tells which


def trial_dirs(tuner_dir: str | os.PathLike) -> list[Path]:
    """A tuner directory's `trial_*` folders, in trial order."""
    return sorted(Path(tuner_dir).glob("trial_*"), key=lambda d: trial_order(d.name))


def read_trials(run_dir: str | os.PathLike) -> list[dict]:
    """Every trial of a run, in trial-id order, joined with ktsearch's epoch record (rebuilt from
    `trial.json` when `epochs.json` is damaged; a damaged `trial.json` leaves its trial out)."""
    trials = []
    for trial_dir in trial_dirs(Path(run_dir) / TUNER_DIR):
        state, _ = read_trial(trial_dir / "trial.json")
        if state is None:  # not written yet, or damaged (`search.runs.integrity.scan` names it)
            continue
        record, damaged = read_record(trial_dir / RECORD_FILE)
        if damaged:
            record = record_from_trial(state)
        real, book = split_values(state["hyperparameters"]["values"])
        trials.append(
            {
                "trial_id": state["trial_id"],
                "status": state["status"],
                "score": state.get("score"),
                "hyperparameters": real,
                "tuner": book,
                "message": state.get("message"),
                "record": record,
            }
        )
    return trials


def read_budget(run_dir: str | os.PathLike) -> dict:
    """The time budget's record in oracle.json (`search.algorithms.base`): time spent, what did not fit; {} if none."""
    state, _ = journal.merged_state(Path(run_dir) / TUNER_DIR / journal.ORACLE_FILE)
    return (state or {}).get("ktsearch_budget") or {}


def ranked(trials: list[dict], objective: str) -> list[dict]:
    """The completed trials with a finite score, best first (ties: the earlier trial)."""
    done = [t for t in trials if t["status"] == "COMPLETED" and t["score"] is not None and math.isfinite(t["score"])]
    sign = -1 if direction(objective) == "max" else 1
    return sorted(done, key=lambda t: (sign * t["score"], trial_order(t["trial_id"])))


def best_trial(trials: list[dict], objective: str) -> dict | None:
    """The completed trial with the best finite score (ties: the earlier trial)."""
    done = ranked(trials, objective)
    return done[0] if done else None


def distinct_top(trials: list[dict], objective: str, k: int) -> list[dict]:
    """The best trial of each of the `k` best distinct configurations (same hyperparameters: one configuration)."""
    chosen, seen = [], set()
    for t in ranked(trials, objective):
        key = repr(sorted(t["hyperparameters"].items()))
        if key not in seen:
            seen.add(key)
            chosen.append(t)
        if len(chosen) == k:
            break
    return chosen


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
