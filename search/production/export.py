"""`export_best`: the best trial of a run as a production config that `train` consumes.

Reads only JSON/YAML (no TensorFlow). The export is a locked config: the run's
data and hypermodel settings, every hyperparameter as a fixed value under its
dotted-path structure (``hyperparameters.augmentation.rotation_range``), the
training epochs, and provenance.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from search.config import SearchConfig, dump_yaml
from search.errors import UserError, arg
from search.runs import integrity, layout

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
    config_file = Path(run_dir) / layout.CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise UserError(str(run_dir), "", "expected a run directory (results/<name>), not found")
    if not config_file.is_file():
        raise UserError(str(run_dir), "", f"not a ktsearch run directory (no {layout.CONFIG_FILE})")
    return integrity.saved_config(run_dir)[1]


def fixed_hyperparameters(space, values: dict) -> dict:
    """Nested notation of one trial's values: every dimension fixed, off ones null."""
    out: dict[str, dict] = {}
    from hypermodels.dimensions import split_name

    for name, dim in space.dims.items():
        section, key = split_name(name)
        if dim is None:
            out.setdefault(section, {})[key] = None
        elif name in values:  # conditional dimensions of other schedule kinds are absent
            out.setdefault(section, {})[key] = values[name]
    return out


RANKINGS = ("auto", "finalists", "search")


class Constraint(NamedTuple):
    """A device constraint of `export --max-*`."""

    flag: str  # `ktsearch export`'s; a Python call names the `constraints` key
    value: Callable[[dict], float]  # what it bounds, from an architecture's costs (`search.production.costs`)
    text: Callable[[float], str]  # how a value reads
    least: str  # the trial with the lowest value, in words

    def given(self, key: str, limit=None) -> str:
        """How the caller gave it: `--max-params 60000` on the command line, `max_params=60000` in Python."""
        if limit is None:
            return arg(self.flag, key)
        return arg(f"{self.flag} {limit}", f"{key}={limit}")


CONSTRAINTS = {
    "max_params": Constraint("--max-params", lambda c: c["params"], lambda v: f"{v:,} params", "smallest"),
    "max_size_mb": Constraint("--max-size-mb", lambda c: c["size_bytes"] / 1e6, lambda v: f"{v:.3f} MB", "smallest"),
    "max_latency_ms": Constraint(
        "--max-latency-ms", lambda c: c["latency_ms"]["1"]["median"], lambda v: f"{v:.3f} ms at batch 1", "fastest"
    ),
}


def check_constraints(constraints: dict | None) -> dict:
    """The given constraints (None values dropped), each a positive finite number; UserError otherwise."""
    import math

    out = {}
    for key, value in (constraints or {}).items():
        if key not in CONSTRAINTS:
            raise UserError("constraints", key, f"expected one of {', '.join(CONSTRAINTS)}")
        if value is None:
            continue
        flag = CONSTRAINTS[key].given(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or value <= 0 or (key == "max_params" and value != int(value)):
            what = "a positive integer" if key == "max_params" else "a positive number"
            raise UserError(flag, "", f"expected {what}, got {value!r}")
        out[key] = value
    return out


def _eligible(
    run_dir: Path, trials: list[dict], constraints: dict, objective: str
) -> tuple[list[dict], dict, str, str]:
    """(completed trials that meet every constraint, best first; trial id -> costs; where they were measured;
    a line saying how many meet them), or UserError naming the constraint no trial meets and the closest trial."""
    from search.production.costs import read, trial_costs, where

    data = read(run_dir)
    costs = trial_costs(data)
    done = [t for t in layout.ranked(trials, objective) if t["trial_id"] in costs]  # best first
    if not done:
        raise UserError(str(run_dir), "", f"has no measured costs; run: ktsearch costs {run_dir}")
    measured = where(data)

    def excess(t: dict) -> dict[str, float]:
        """Per constraint, how far over it the trial is (relative; 0 when met)."""
        return {k: max(0.0, CONSTRAINTS[k].value(costs[t["trial_id"]]) / limit - 1) for k, limit in constraints.items()}

    ok = [t for t in done if not any(excess(t).values())]
    if ok:
        return (
            ok,
            costs,
            measured,
            f"{len(ok)} of {len(done)} completed trials meet the constraints (costs measured {measured})",
        )
    for key, limit in constraints.items():  # one that no trial meets on its own
        _, value, text, least = CONSTRAINTS[key]
        lowest = min(value(costs[t["trial_id"]]) for t in done)
        if lowest > limit:
            pick = next(t for t in done if value(costs[t["trial_id"]]) == lowest)  # the best-scoring of them
            raise UserError(
                CONSTRAINTS[key].given(key, limit),
                "",
                f"no trial of {run_dir} meets it: the {least}, trial {pick['trial_id']} ({objective} "
                f"{pick['score']:.4f}), has {text(lowest)} (measured {measured})",
            )
    closest = min(done, key=lambda t: max(excess(t).values()))  # `done` is best first: ties go to the better
    over = excess(closest)
    have = ", ".join(CONSTRAINTS[k].text(CONSTRAINTS[k].value(costs[closest["trial_id"]])) for k in constraints)
    worst = max(over, key=over.get)
    flags = " and ".join(CONSTRAINTS[k].given(k, v) for k, v in constraints.items())
    raise UserError(
        flags,
        "",
        f"no trial of {run_dir} meets them together: the closest, trial {closest['trial_id']} ({objective} "
        f"{closest['score']:.4f}), has {have}: over {CONSTRAINTS[worst].given(worst)} by {100 * over[worst]:.0f}% "
        f"(measured {measured})",
    )


def _finalists(
    run_dir: Path, trials: list[dict], search_best: dict, ranking: str, allowed: set[str] | None = None
) -> tuple[dict | None, str]:
    """(the finalists' summary to export from, or None; a line saying which ranking the export used and why).

    `allowed`: the trial ids that meet the export's constraints (None: no constraints); the summary's
    "pick" is then the best-ranked finalist among them."""
    from search.production.statistics import read_summary

    summary = None if ranking == "search" else read_summary(run_dir)
    if summary is not None and summary.get("winner") is not None and allowed is not None:
        fitting = [r["trial_id"] for r in summary["finalists"] if r["objective"]["n"] and r["trial_id"] in allowed]
        if not fitting:
            if ranking == "finalists":
                raise UserError(
                    str(run_dir),
                    "",
                    "has no finalist that meets the constraints; retrain more: ktsearch finalize --top",
                )
            return None, "ranking: the search's (no finalist meets the constraints)"
        summary = summary | {"pick": fitting[0]}
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
    fits = "; the best-ranked that meets the constraints" if allowed is not None else ""
    return summary, f"ranking: the finalists' (mean of {n} seed(s) per configuration){state}{fits}"


def build_export(
    run_dir: str | Path, trial: dict | None = None, ranking: str = "auto", constraints: dict | None = None
) -> tuple[dict, dict]:
    """(export mapping, exported trial) for a finished or partial run.

    `trial`: export that trial; else the best by `ranking`: "auto" (the finalists' pick when
    ``ktsearch finalize`` ran and still covers the search's best, else the search's best),
    "finalists" or "search". `constraints` (`CONSTRAINTS` keys: max_params, max_size_mb,
    max_latency_ms): only trials whose measured costs (`search.production.costs`) meet all of them.
    """
    run_dir = Path(run_dir)
    cfg = load_run(run_dir)
    tuner = cfg.tuner
    trials = layout.read_trials(run_dir)
    constraints = check_constraints(constraints)
    best = trial or layout.best_trial(trials, tuner.objective)
    if best is None:
        raise UserError(str(run_dir), "", "has no completed trial yet, so there is nothing to export")
    allowed, costs, measured, fit = None, {}, "", ""
    if constraints and trial is None:
        eligible, costs, measured, fit = _eligible(run_dir, trials, constraints, tuner.objective)
        allowed, best = {t["trial_id"] for t in eligible}, eligible[0]
    finalists, note = (None, "") if trial is not None else _finalists(run_dir, trials, best, ranking, allowed)
    if finalists is not None:
        best = next(t for t in trials if t["trial_id"] == finalists.get("pick", finalists["winner"]))
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
    if constraints:
        cost = costs[best["trial_id"]]
        provenance["constraints"] = constraints
        provenance["costs"] = {
            "architecture": cost["architecture"],
            "params": cost["params"],
            "size_mb": round(cost["size_bytes"] / 1e6, 6),
            "latency_ms": {batch: lat["median"] for batch, lat in cost["latency_ms"].items()},
            "measured": measured,
        }
        has = ", ".join(c.text(c.value(cost)) for c in CONSTRAINTS.values())
        fit = f"constraints: trial {best['trial_id']} has {has}; {fit}"
        note = f"{note}\n{fit}" if note else fit
    from hypermodels import registry

    if registry.is_user(cfg.hypermodel.name):  # a KerasTuner model: `train` imports it by this name
        problem = registry.importable(cfg.hypermodel.name)
        module = sys.modules.get(cfg.hypermodel.name.partition(":")[0])
        provenance["model"] = {"import": cfg.hypermodel.name, "file": getattr(module, "__file__", None)}
        if problem:
            provenance["model"]["note"] = problem
            note = f"{note}\n{problem}" if note else problem
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
    from search.production.statistics import verdict

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


def export_best(
    run_dir: str | Path, output: str | Path | None = None, ranking: str = "auto", constraints: dict | None = None
) -> Path:
    """Write the best configuration of `run_dir` as a production config; returns its path.

    `write_export` also returns the line saying which ranking picked it (the CLI prints it).

    Args:
        run_dir: a run directory (``results/<name>``).
        output: file to write (default ``<run_dir>/best.yaml``); written atomically.
        ranking: "auto" (default: the finalists' pick when ``ktsearch finalize`` ran, else the
            search's best trial), "finalists" or "search".
        constraints: ``{"max_params": N, "max_size_mb": Y, "max_latency_ms": X}`` (any of them): the best
            trial whose architecture meets all (measured first where costs.json lacks it), or UserError
            naming the constraint no trial meets and the closest trial.
    """
    return write_export(run_dir, output, ranking, constraints)[0]


def write_export(
    run_dir: str | Path,
    output: str | Path | None = None,
    ranking: str = "auto",
    constraints: dict | None = None,
    log=print,
) -> tuple[Path, str]:
    """`export_best`, returning (path, which ranking picked the configuration and why).

    With `constraints`, the architectures costs.json lacks are measured first (`search.production.costs`;
    lines to `log`)."""
    if ranking not in RANKINGS:
        raise UserError(arg("--ranking", "ranking"), "", f"expected one of {', '.join(RANKINGS)}, got {ranking!r}")
    constraints = check_constraints(constraints)
    load_run(run_dir)  # not a run: said first (and before TensorFlow loads)
    output = Path(output) if output is not None else Path(run_dir) / layout.EXPORT_FILE
    if not output.parent.is_dir():
        raise UserError(str(output), "", "its directory does not exist")
    if constraints:
        from search.production import costs

        costs.measure_run(run_dir, log)  # none completed: said before anything is written
    export, best = build_export(run_dir, ranking=ranking, constraints=constraints)
    prov = export["provenance"]
    spread = prov.get("finalists")
    if spread:
        pick = next(r for r in spread["table"] if r["trial_id"] == best["trial_id"])
        sd = "" if pick["sd"] is None else f" ± {pick['sd']:.4f}"
        found = f"{prov['objective']} {pick['mean']:.4f}{sd} over {len(pick['seeds'])} seed(s) (finalists' pick)"
    else:
        found = f"{prov['objective']} {best['score']:.4f} at epoch {prov['best_epoch']}"
    header = (
        f"# ktsearch export of {run_dir}, trial {best['trial_id']}: {found}.\n# Train it: ktsearch train {output}\n"
    )
    if prov.get("model", {}).get("note"):  # a model function no other process can import
        header += f"# {prov['model']['note']}\n"
    layout.atomic_write(output, header + dump_yaml(export))
    return output, best["ranking_note"]
