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

from search import integrity, runs
from search.config import SearchConfig, dump_yaml
from search.errors import UserError

PACKAGES = ("ktsearch", "tensorflow", "keras", "keras-tuner", "ai-edge-litert")


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
    return integrity.saved_config(run_dir)[1]


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


RANKINGS = ("auto", "finalists", "search")


def _finalists(run_dir: Path, trials: list[dict], search_best: dict, ranking: str) -> tuple[dict | None, str]:
    """(the finalists' summary to export from, or None; a line saying which ranking the export used and why)."""
    from search.finalists import read_summary

    summary = None if ranking == "search" else read_summary(run_dir)
    if summary is None or summary.get("winner") is None:
        if ranking == "finalists":
            raise UserError(str(run_dir), "", "has no finalists to export from; run: ktsearch finalize " + str(run_dir))
        return None, "ranking: the search's (one training per configuration)" + (
            "" if ranking == "search" else f"; retrain the top ones with several seeds: ktsearch finalize {run_dir}"
        )
    ids = {t["trial_id"] for t in trials}
    finalist_ids = [r["trial_id"] for r in summary["finalists"]]
    best_values = search_best["hyperparameters"]
    among = any(r["hyperparameters"] == best_values for r in summary["finalists"])
    if not set(finalist_ids) <= ids or (not among and ranking == "auto"):
        return None, (
            f"ranking: the search's; its best trial {search_best['trial_id']} came after the finalists "
            f"({', '.join(finalist_ids)}): rerun ktsearch finalize {run_dir}"
        )
    n = len(summary["seeds"])
    state = "" if summary["complete"] else " (finalize did not finish: partial seeds)"
    return summary, f"ranking: the finalists' (mean of {n} seed(s) per configuration){state}"


def build_export(run_dir: str | Path, trial: dict | None = None, ranking: str = "auto") -> tuple[dict, dict]:
    """(export mapping, exported trial) for a finished or partial run.

    `trial`: export that trial; else the best by `ranking`: "auto" (the finalists' pick when
    ``ktsearch finalize`` ran and still covers the search's best, else the search's best),
    "finalists" or "search".
    """
    run_dir = Path(run_dir)
    cfg = load_run(run_dir)
    tuner = cfg.tuner
    trials = runs.read_trials(run_dir)
    best = trial or runs.best_trial(trials, tuner.objective)
    if best is None:
        raise UserError(str(run_dir), "", "has no completed trial yet, so there is nothing to export")
    finalists, note = (None, "") if trial is not None else _finalists(run_dir, trials, best, ranking)
    if finalists is not None:
        best = next(t for t in trials if t["trial_id"] == finalists["winner"])
    record = best["record"] or {}
    best_epoch = record.get("best_epoch", tuner.max_epochs - 1)
    completed = [t for t in trials if t["status"] == "COMPLETED"]
    provenance = {
        "run": str(run_dir),
        "trial_id": best["trial_id"],
        "objective": tuner.objective,
        "score": best["score"],
        "best_epoch": best_epoch,
        "continues_trial": record.get("continues"),
        "seed": cfg.seed,
        "search": {"algorithm": tuner.algorithm, "trials": len(trials), "completed": len(completed)},
        "ranking": "finalists" if finalists is not None else "search",
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    if finalists is not None:
        provenance["finalists"] = _spread(finalists)
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
        "distribution": cfg.distribution.to_dict(),
        "provenance": provenance,
    }
    return export, best | {"ranking_note": note}


def _spread(summary: dict) -> dict:
    """The finalists in an export's provenance: the rule, the pick's spread and every finalist's."""
    from search.finalists import verdict

    def row(r: dict) -> dict:
        o, t = r["objective"], r["test_accuracy"]
        return {
            "trial_id": r["trial_id"],
            "mean": o["mean"],
            "sd": o["sd"],
            "ci95": o["ci"],
            "test_accuracy_mean": t["mean"],
            "test_accuracy_sd": t["sd"],
            "seeds": r["seeds"],
        }

    return {
        "seeds": summary["seeds"],
        "rule": summary["rule"],
        "told_apart": summary["told_apart"],
        "within_noise_of_winner": summary["within_noise_of_winner"],
        "verdict": verdict(summary),
        "table": [row(r) for r in summary["finalists"] if r["objective"]["n"]],
    }


def export_best(run_dir: str | Path, output: str | Path | None = None, ranking: str = "auto") -> Path:
    """Write the best configuration of `run_dir` as a production config; returns its path.

    `write_export` also returns the line saying which ranking picked it (the CLI prints it).

    Args:
        run_dir: a run directory (``results/<name>``).
        output: file to write (default ``<run_dir>/best.yaml``); written atomically.
        ranking: "auto" (default: the finalists' pick when ``ktsearch finalize`` ran, else the
            search's best trial), "finalists" or "search".
    """
    return write_export(run_dir, output, ranking)[0]


def write_export(run_dir: str | Path, output: str | Path | None = None, ranking: str = "auto") -> tuple[Path, str]:
    """`export_best`, returning (path, which ranking picked the configuration and why)."""
    if ranking not in RANKINGS:
        raise UserError("--ranking", "", f"expected one of {', '.join(RANKINGS)}, got {ranking!r}")
    export, best = build_export(run_dir, ranking=ranking)
    output = Path(output) if output is not None else Path(run_dir) / runs.EXPORT_FILE
    if not output.parent.is_dir():
        raise UserError(str(output), "", "its directory does not exist")
    prov = export["provenance"]
    spread = prov.get("finalists")
    if spread:
        pick = spread["table"][0]
        sd = "" if pick["sd"] is None else f" ± {pick['sd']:.4f}"
        found = f"{prov['objective']} {pick['mean']:.4f}{sd} over {len(pick['seeds'])} seed(s) (finalists' pick)"
    else:
        found = f"{prov['objective']} {best['score']:.4f} at epoch {prov['best_epoch']}"
    header = (
        f"# ktsearch export of {run_dir}, trial {best['trial_id']}: {found}.\n# Train it: ktsearch train {output}\n"
    )
    runs.atomic_write(output, header + dump_yaml(export))
    return output, best["ranking_note"]
