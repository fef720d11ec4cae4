"""`export_best`: the best trial of a run as a production config that `train` consumes.

Reads only JSON/YAML (no TensorFlow). The export is a locked config: the run's
data and hypermodel settings, every hyperparameter as a fixed value under its
dotted-path structure (``hyperparameters.augmentation.rotation_range``), the
training epochs, and provenance.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from search import runs
from search.config import SearchConfig, dump_yaml, read_yaml, validate
from search.errors import UserError

PACKAGES = ("ktsearch", "tensorflow", "keras", "keras-tuner")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def load_run(run_dir: str | Path) -> SearchConfig:
    """The validated config a run was started with."""
    config_file = Path(run_dir) / runs.CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise UserError(str(run_dir), "", "expected a run directory (results/<name>), not found")
    if not config_file.is_file():
        raise UserError(str(run_dir), "", f"not a ktsearch run directory (no {runs.CONFIG_FILE})")
    return validate(read_yaml(config_file), str(config_file))


def fixed_hyperparameters(space, values: dict) -> dict:
    """Nested notation of one trial's values: every dimension fixed, off ones null."""
    out: dict[str, dict] = {}
    for name, dim in space.dims.items():
        section, _, key = name.partition(".")
        if dim is None:
            out.setdefault(section, {})[key] = None
        elif name in values:  # conditional dimensions of other schedule kinds are absent
            out.setdefault(section, {})[key] = values[name]
    return out


def build_export(run_dir: str | Path) -> tuple[dict, dict]:
    """(export mapping, best trial) for a finished or partial run."""
    cfg = load_run(run_dir)
    tuner = cfg.tuner
    best = runs.best_trial(runs.read_trials(run_dir), tuner.objective)
    if best is None:
        raise UserError(str(run_dir), "", "has no completed trial yet, so there is nothing to export")
    record = best["record"] or {}
    best_epoch = record.get("best_epoch", tuner.max_epochs - 1)
    export = {
        "name": cfg.name,
        "seed": cfg.seed,
        "results_dir": cfg.results_dir,
        "data": cfg.data.to_dict(),
        "hypermodel": cfg.hypermodel.to_dict(),
        "hyperparameters": fixed_hyperparameters(cfg.space, best["hyperparameters"]),
        # Train as long as the tuned trial took to reach its best score; the LR curve keeps the search's horizon.
        "training": {"epochs": best_epoch + 1, "lr_horizon": tuner.max_epochs},
        "early_stopping": cfg.early_stopping.to_dict(),
        "provenance": {
            "run": str(run_dir),
            "trial_id": best["trial_id"],
            "objective": tuner.objective,
            "score": best["score"],
            "best_epoch": best_epoch,
            "continues_trial": record.get("continues"),
            "seed": cfg.seed,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": versions(),
        },
    }
    return export, best


def export_best(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the best trial of `run_dir` as a production config; returns its path.

    Args:
        run_dir: a run directory (``results/<name>``).
        output: file to write (default ``<run_dir>/best.yaml``); written atomically.
    """
    export, best = build_export(run_dir)
    output = Path(output) if output is not None else Path(run_dir) / runs.EXPORT_FILE
    if not output.parent.is_dir():
        raise UserError(str(output), "", "its directory does not exist")
    header = (
        f"# ktsearch export of {run_dir}, trial {best['trial_id']}: "
        f"{export['provenance']['objective']} {best['score']:.4f} at epoch {export['provenance']['best_epoch']}.\n"
        f"# Train it: ktsearch train {output}\n"
    )
    runs.atomic_write(output, header + dump_yaml(export))
    return output
