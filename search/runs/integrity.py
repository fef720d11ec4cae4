"""Damaged run files: found, named, and rebuilt where the run still holds what they held (no TensorFlow).

ktsearch writes every JSON/YAML file of a run through a temporary file and a rename, so a kill or
a full disk never leaves one half-written. A file can still be damaged by something else: a failing
disk, a sync tool, a hand edit, a copy cut short. This module tells such a file from a missing one
and says what each damage costs:

| file | `tune` (resume) | `report`, `export`, `finalize` |
|---|---|---|
| `config.yaml` | refused: restore it, or `--overwrite` | refused: restore it |
| `tuner/oracle.json` | rebuilt by replaying the trials through a fresh oracle (`search.engine.repair`) | not needed |
| `tuner/trial_*/trial.json` | rebuilt by the replay, its result from `epochs.json` (else re-run) | the trial is left out |
| `tuner/trial_*/epochs.json` | rebuilt from `trial.json` (best epoch and metrics; no history or timings) | the same, in memory |
| `tuner/*.json` (the tuner's own) | rewritten (it holds nothing) | not needed |
| a checkpoint | a continuation of it trains from scratch for all its epochs | not needed |
| `finalize/results.json` | | `finalize` re-runs its trainings |

A damaged file is never deleted: it is renamed to `<name>.damaged` before its replacement is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from search.algorithms import journal
from search.runs import layout

DAMAGED_SUFFIX = ".damaged"
ORACLE_FILE = "oracle.json"
TRIAL_FILE = "trial.json"
# What KerasTuner's `Oracle.set_state` reads (keras_tuner/src/engine/oracle.py, 1.4.8).
ORACLE_KEYS = (
    "ongoing_trials",
    "hyperparameters",
    "start_order",
    "end_order",
    "run_times",
    "retry_queue",
    "seed",
    "seed_state",
    "tried_so_far",
    "id_to_hash",
    "display",
)


@dataclass(frozen=True)
class Damage:
    """A run file that exists but cannot be used: its path and what is wrong with it."""

    path: Path
    problem: str

    def line(self) -> str:
        return f"{self.path} is damaged ({self.problem})"


def read_oracle(path: Path) -> tuple[dict | None, str | None]:
    """The oracle's state: `oracle.json` with the journal's events after it (`search.algorithms.journal`);
    (None, what is wrong) when `oracle.json` is damaged."""
    data, problem = layout.load_json(path)
    if data is None:
        return None, problem
    problem = layout.json_shape(data, ORACLE_KEYS)
    if problem:
        return None, problem
    merged, _ = journal.merged_state(path, data)
    return merged, None


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """What keeps a weights checkpoint from loading: missing, or not a whole HDF5 file; None if it reads."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    import h5py  # Keras's own weights format; imports without TensorFlow

    try:
        with h5py.File(path, "r") as f:
            datasets = []
            f.visititems(lambda _, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
            for dataset in datasets:
                dataset[()]  # reads every weight: a file cut short fails here
    except Exception as e:  # h5py raises OSError, KeyError, ValueError and others for a broken file
        return f"not a readable HDF5 weights file: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return None


def scan(run_dir: str | os.PathLike, finalize: bool = False) -> list[Damage]:
    """Every damaged KerasTuner/ktsearch file of a search (`oracle.json`, the tuner's, `trial.json`s,
    `epochs.json`s; with `finalize`, finalize's two files too); checkpoints are checked where they are used."""

    tuner_dir = Path(run_dir) / layout.TUNER_DIR
    found = []
    if finalize:
        for name in (layout.FINALIZE_RESULTS_FILE, layout.FINALISTS_FILE):
            path = Path(run_dir) / layout.FINALIZE_DIR / name
            data, problem = layout.load_json(path)
            if problem or (data is not None and not isinstance(data, dict)):
                found.append(Damage(path, problem or "expected a JSON object"))
    for path in sorted(tuner_dir.glob("*.json")):
        _, problem = read_oracle(path) if path.name == ORACLE_FILE else layout.load_json(path)
        if problem:
            found.append(Damage(path, problem))
    for trial_dir in layout.trial_dirs(tuner_dir):
        for name, reader in ((TRIAL_FILE, layout.read_trial), (layout.RECORD_FILE, layout.read_record)):
            _, problem = reader(trial_dir / name)
            if problem:
                found.append(Damage(trial_dir / name, problem))
    return found


def consequences(damage: list[Damage], run_dir: str | os.PathLike) -> list[str]:
    """For `report`/`export`/`finalize`: a line per damaged file saying what it costs and what to do."""

    resume = f"ktsearch tune {Path(run_dir) / layout.CONFIG_FILE}"
    lines = []
    for d in damage:
        if d.path.name == TRIAL_FILE:
            what = f"trial {d.path.parent.name.removeprefix('trial_')} is left out; `{resume}` rebuilds it"
        elif d.path.name == layout.RECORD_FILE:
            what = "its best epoch and metrics are read from trial.json (no per-epoch history)"
        elif d.path.parent.name == layout.FINALIZE_DIR and d.path.name == layout.FINALISTS_FILE:
            what = f"export ranks by the search instead; `ktsearch finalize {run_dir}` rewrites it (no training)"
        elif d.path.parent.name == layout.FINALIZE_DIR:
            what = f"`ktsearch finalize {run_dir}` sets it aside and runs its trainings again"
        else:
            what = f"not needed here; `{resume}` rebuilds it"
        lines.append(f"warning: {d.line()}: {what}")
    return lines


def set_aside(path: Path) -> Path:
    """Rename a damaged file to `<name>.damaged` (kept for the user to inspect); returns the new path."""
    kept = path.with_name(path.name + DAMAGED_SUFFIX)
    os.replace(path, kept)
    return kept


def saved_config(run_dir: str | os.PathLike, hint: str = "restore it from a copy") -> tuple[dict, object]:
    """(the resolved mapping `config.yaml` holds, its validated `SearchConfig`); a damaged file is a
    UserError naming it and what to do (`hint`)."""
    from search.config import read_yaml, validate
    from search.errors import UserError

    path = Path(run_dir) / layout.CONFIG_FILE
    try:
        raw = read_yaml(path)
        return raw, layout.with_dimensions(validate(raw, str(path)), Path(run_dir))
    except UserError as e:
        if e.message == "file not found":
            raise
        raise UserError(
            str(path), e.key, f"{e.message}; this is the config the run was started with, so it is damaged: {hint}"
        ) from None


def warn(run_dir: str | os.PathLike, log, finalize: bool = True) -> None:
    """`log` a warning per damaged file of a run that `report`, `export` or `finalize` reads (`finalize`:
    finalize's own files too; finalize itself says what it does with them)."""
    for line in consequences(scan(run_dir, finalize), run_dir):
        log(line)
