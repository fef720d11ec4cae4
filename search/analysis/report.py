"""`ktsearch report`: what a finished (or running) search found, and which knobs mattered.

Reads only the run directory (summary-independent: trial.json and epochs.json of every trial),
so it works on a search in progress too. Writes `report.md` with PNG plots, mirrors both into
the run's TensorBoard (`tensorboard/report/`: Text and Images tabs), or writes every trial as
CSV or JSON.

Hyperparameter importance: `search.analysis.importance`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from search.algorithms import ALGORITHMS, RUNGS
from search.analysis.importance import MIN_TRIALS_FOR_IMPORTANCE, importance
from search.analysis.projects import is_project
from search.config import SearchConfig
from search.engine.tune import budget_summary
from search.errors import UserError
from search.runs import integrity, layout

REPORT_FILE = "report.md"
PLOTS_DIR = "report"
TOP_K = 10


def load_run(run_dir: str | Path) -> tuple[SearchConfig, list[dict]]:
    run_dir = Path(run_dir)
    config_file = run_dir / layout.CONFIG_FILE
    if is_project(run_dir):
        raise UserError(str(run_dir), "", "a KerasTuner project, not a ktsearch run: `ktsearch report` views it")
    if not config_file.is_file():
        raise UserError(str(run_dir), "", "expected a run directory with config.yaml (written by ktsearch tune)")
    return integrity.saved_config(run_dir)[1], layout.read_trials(run_dir)


def _record(trial: dict) -> dict:
    return trial.get("record") or {}


def rows(trials: list[dict], costs: dict[str, dict] | None = None) -> list[dict]:
    """One flat row per trial: id, status, score, bracket/round, epochs, hyperparameters, best metrics, and its
    architecture's costs where measured (`search.production.costs.trial_costs`)."""
    out = []
    costs = costs or {}
    for t in trials:
        rec = _record(t)
        row = {
            "trial_id": t["trial_id"],
            "status": t["status"],
            "score": t["score"],
            "bracket": t["tuner"].get("bracket"),
            "round": t["tuner"].get("round"),
            "continues": t["tuner"].get("trial_id"),
            "epochs_granted": rec.get("epochs_granted"),
            "epochs_run": rec.get("epochs_run"),
            "best_epoch": rec.get("best_epoch"),
            "stopped_early": rec.get("stopped_early"),
            "message": t.get("message"),
        }
        row.update({f"hp.{k}": v for k, v in t["hyperparameters"].items()})
        row.update({f"metric.{k}": v for k, v in (rec.get("best_metrics") or {}).items()})
        cost = costs.get(t["trial_id"])
        if cost is not None:
            row.update(_cost_cells(cost))
        out.append(row)
    return out


def _cost_cells(cost: dict) -> dict:
    lat = cost["latency_ms"]
    return {
        "cost.architecture": cost["architecture"],
        "cost.params": cost["params"],
        "cost.size_mb": round(cost["size_bytes"] / 1e6, 6),
        "cost.latency_ms_batch1": lat["1"]["median"],
        "cost.latency_ms_batch32": lat["32"]["median"],
    }


def brackets(trials: list[dict], direction: str, by: str = "bracket") -> list[dict]:
    """Per Hyperband bracket (`by="round"`: per ASHA rung) trials, scores and epochs."""
    out = []
    for bracket in sorted(
        {t["tuner"].get(by) for t in trials if t["tuner"].get(by) is not None}, reverse=by == "bracket"
    ):
        ts = [t for t in trials if t["tuner"].get(by) == bracket]
        done = [t["score"] for t in ts if t["status"] == "COMPLETED" and t["score"] is not None]
        pick = max if direction == "max" else min
        out.append(
            {
                "bracket": bracket,
                "trials": len(ts),
                "completed": len(done),
                "rounds": len({t["tuner"].get("round") for t in ts}),
                "best": pick(done) if done else None,
                "mean": float(np.mean(done)) if done else None,
                "epochs_granted": sum(_record(t).get("epochs_granted") or 0 for t in ts),
                "epochs_run": sum(_record(t).get("epochs_run") or 0 for t in ts),
            }
        )
    return out


def _plots(
    run_dir: Path, config: SearchConfig, trials: list[dict], imp: dict, dims: list[str], objective: str
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = run_dir / PLOTS_DIR
    out_dir.mkdir(exist_ok=True)
    paths = []
    done = [t for t in trials if t["status"] == "COMPLETED" and t["score"] is not None]
    if imp["ranking"]:
        names = [r["dimension"] for r in imp["ranking"]][::-1]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
        ax.barh(
            names, [r["importance"] for r in imp["ranking"]][::-1], xerr=[r["spread"] for r in imp["ranking"]][::-1]
        )
        ax.set_xlabel("drop in held-out R² when shuffled")
        ax.set_title(f"hyperparameter importance ({imp['trials']} completed trials)")
        paths.append(_save(fig, out_dir / "importance.png"))
    if done and dims:
        cols = 3
        rows_ = math.ceil(len(dims) / cols)
        fig, axes = plt.subplots(rows_, cols, figsize=(4 * cols, 3 * rows_), squeeze=False)
        for ax, name in zip(axes.flat, dims, strict=False):
            used = [t for t in done if t["hyperparameters"].get(name) is not None]  # conditional: where it applied
            values = [t["hyperparameters"][name] for t in used]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                levels = sorted({str(v) for v in values})
                values = [levels.index(str(v)) for v in values]
                ax.set_xticks(range(len(levels)), levels, rotation=20, fontsize=7)
            epochs = [_record(t).get("epochs_granted", 0) for t in used]
            ax.scatter(values, [t["score"] for t in used], c=epochs, cmap="viridis", s=18)
            ax.set_title(name, fontsize=9)
            ax.set_ylabel(objective, fontsize=8)
        for ax in list(axes.flat)[len(dims) :]:
            ax.axis("off")
        fig.suptitle(f"{objective} against each searched dimension (colour: epochs trained)")
        paths.append(_save(fig, out_dir / "objective_vs_dimensions.png"))
    top = [t for t in _top(trials, config)[:5] if (_record(t).get("history") or {}).get(objective)]
    if top:
        fig, ax = plt.subplots(figsize=(7, 4))
        for t in top:
            rec = _record(t)
            series = (rec.get("history") or {}).get(objective, [])
            start = rec.get("initial_epoch", 0)
            ax.plot(range(start + 1, start + 1 + len(series)), series, marker="o", label=f"trial {t['trial_id']}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(objective)
        ax.set_title("learning curves of the top trials")
        ax.legend()
        paths.append(_save(fig, out_dir / "top_learning_curves.png"))
    return paths


FRONTS = {  # axis: (label, value of a trial's costs)
    "size": ("model size (MB, .keras)", lambda c: c["size_bytes"] / 1e6),
    "latency": ("inference latency at batch 1 (ms, median)", lambda c: c["latency_ms"]["1"]["median"]),
}


def pareto_fronts(run_dir: Path, trials: list[dict], objective: str) -> dict | None:
    """The completed trials with measured costs and, per axis of `FRONTS`, who dominates each (None: on the
    front); None when no costs are measured."""
    from search.production.costs import dominators, read, trial_costs, where

    data = read(run_dir)
    costs = trial_costs(data)
    done = [t for t in layout.ranked(trials, objective) if t["trial_id"] in costs]
    if data is None or not done:
        return None
    direction = layout.direction(objective)
    marks = {
        axis: dominators([(t["trial_id"], t["score"], value(costs[t["trial_id"]])) for t in done], direction)
        for axis, (_, value) in FRONTS.items()
    }
    return {"trials": done, "costs": costs, "marks": marks, "where": where(data), "unmeasured": len(trials) - len(done)}


def fronts_section(run_dir: Path, fronts: dict | None, objective: str) -> list[str]:
    lines = ["## Size and latency: Pareto fronts", ""]
    if fronts is None:
        return lines + [f"Not measured. `ktsearch costs {run_dir}` measures every architecture of the run."]
    marks, costs = fronts["marks"], fronts["costs"]
    on = {axis: [t for t in fronts["trials"] if marks[axis][t["trial_id"]] is None] for axis in FRONTS}
    lines += [
        f"Each architecture measured once, {fronts['where']}: parameters, `.keras` size, inference latency "
        "(median; no augmentation). A trial is dominated when another scores at least as well and costs no more "
        f"(better in one). On the size front: {len(on['size'])} trials; on the latency front: {len(on['latency'])}; "
        f"the other {len(fronts['trials']) - len(set(t['trial_id'] for a in on.values() for t in a))} completed "
        "trials are dominated on both. Export the best that fits: `ktsearch export "
        f"{run_dir} --max-size-mb Y --max-latency-ms X` (or `--max-params N`).",
        "",
        f"| trial | {objective} | params | size MB | ms batch 1 | ms batch 32 | size front | latency front |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in fronts["trials"]:
        c = costs[t["trial_id"]]
        cells = [
            t["trial_id"],
            f"{t['score']:.4f}",
            f"{c['params']:,}",
            f"{c['size_bytes'] / 1e6:.3f}",
            f"{c['latency_ms']['1']['median']:.3f}",
            f"{c['latency_ms']['32']['median']:.3f}",
        ]
        for axis in FRONTS:
            by = marks[axis][t["trial_id"]]
            cells.append("**front**" if by is None else f"dominated by {by}")
        lines.append("| " + " | ".join(cells) + " |")
    if fronts["unmeasured"]:
        lines += ["", f"{fronts['unmeasured']} trials are not in the table (not completed, or not measured yet)."]
    return lines


def _front_plots(run_dir: Path, fronts: dict | None, objective: str) -> list[Path]:
    if fronts is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = run_dir / PLOTS_DIR
    out_dir.mkdir(exist_ok=True)
    paths = []
    for axis, (label, value) in FRONTS.items():
        marks = fronts["marks"][axis]
        points = [(value(fronts["costs"][t["trial_id"]]), t["score"], t["trial_id"]) for t in fronts["trials"]]
        front = sorted(p for p in points if marks[p[2]] is None)
        dominated = [p for p in points if marks[p[2]] is not None]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.scatter([p[0] for p in dominated], [p[1] for p in dominated], c="lightgrey", s=18, label="dominated")
        ax.plot([p[0] for p in front], [p[1] for p in front], "o-", c="tab:red", drawstyle="steps-post", label="front")
        for x, y, trial_id in front:
            ax.annotate(trial_id, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(label)
        ax.set_ylabel(objective)
        ax.set_title(f"{objective} against {axis}: Pareto front of {len(points)} completed trials")
        ax.legend()
        paths.append(_save(fig, out_dir / f"pareto_{axis}.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _top(trials: list[dict], config: SearchConfig) -> list[dict]:
    return layout.ranked(trials, config.tuner.objective)


def workers_line(timeline: dict) -> str | None:
    """How busy a distributed search kept its workers (None for one worker or no timeline)."""
    measured = layout.timeline_accounting(timeline)
    if measured["workers"] < 2:
        return None
    return (
        f"{measured['workers']} workers ran {measured['trials']} trials in {measured['wall_s']:.1f} s "
        f"(first trial's start to last trial's end), busy {100 * measured['utilisation']:.0f} % of it; "
        "how it would scale to more: `ktsearch simulate` (docs/scaleout.md)."
    )


def finalists_section(run_dir: Path) -> list[str]:
    """The finalists' table (`ktsearch finalize`), or how to get one."""
    from search.production.statistics import read_summary, table, verdict

    summary = read_summary(run_dir)
    lines = ["## Finalists", ""]
    if summary is None:
        return lines + [
            "Not run. The ranking above is one training per configuration; `ktsearch finalize "
            f"{run_dir}` retrains the top 3 with 3 seeds each and ranks them by mean and spread."
        ]
    state = "" if summary["complete"] else " Finalize did not finish: some seeds are missing."
    return lines + [
        f"Top {summary['top']} configurations retrained with seeds {', '.join(map(str, summary['seeds']))} "
        f"(initial weights, augmentation and shuffling vary; the split does not). Rule: {summary['rule']}.{state}",
        "",
        *table(summary),
        "",
        verdict(summary),
    ]


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown(
    run_dir: Path,
    config: SearchConfig,
    trials: list[dict],
    imp: dict,
    dims: list[str],
    plots: list[Path],
    fronts: dict | None = None,
    view: dict | None = None,
) -> str:
    objective = config.tuner.objective
    direction = layout.direction(objective)
    top = _top(trials, config)
    title = Path(view["project"]).name if view else run_dir.name
    lines = [f"# Search report: {title}", ""]
    if view:
        lines += [
            f"A KerasTuner project ({view['tuner']}): {view['project']}. Not in KerasTuner's files, so not shown: "
            f"{'; '.join(view['unknown'])}.",
            "",
        ]
    lines.append(
        f"{config.tuner.algorithm}: {len(trials)} trials, {sum(t['status'] == 'COMPLETED' for t in trials)} completed; "
        f"objective {objective} ({direction})."
    )
    from search.runs.warmstart import read as read_warm_start

    warm = read_warm_start(run_dir)
    if warm is not None:
        ids = ", ".join(c["trial_id"] for c in warm["configurations"])
        lines += ["", f"Warm start: the first new configurations were {warm['from']}'s best (its trials {ids})."]
    plan_ran = (layout.read_json(run_dir / layout.SUMMARY_FILE) or {}).get("plan") or {}
    if plan_ran.get("time_budget_s") is not None:
        lines += ["", budget_summary(plan_ran) + "."]
    workers = workers_line(layout.read_budget(run_dir).get("timeline") or {})
    if workers:
        lines += ["", workers]
    lines += ["", f"## Top {min(TOP_K, len(top))} trials", ""]
    header = ["trial", objective, "epochs granted" if view else "epochs run / granted", "best epoch", *dims]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + " --- |" * len(header))
    for t in top[:TOP_K]:
        rec = _record(t)
        cells = [
            t["trial_id"],
            f"{t['score']:.4f}",
            str(rec.get("epochs_granted")) if view else f"{rec.get('epochs_run')} / {rec.get('epochs_granted')}",
            str(rec.get("best_epoch")),
        ]
        cells += [_fmt(t["hyperparameters"].get(d)) for d in dims]
        lines.append("| " + " | ".join(cells) + " |")
    if not view:  # a KerasTuner script's model function is not known to ktsearch: no finalists, no costs
        lines += ["", *finalists_section(run_dir)]
        lines += ["", *fronts_section(run_dir, fronts, objective)]
    asha = ALGORITHMS[config.tuner.algorithm].schedule == RUNGS
    epochs_column = "epochs granted" if view else "epochs run / granted"
    lines += [
        "",
        "## Rungs (ASHA)" if asha else "## Brackets",
        "",
        f"| rung | trials | completed | best | mean | {epochs_column} |"
        if asha
        else f"| bracket | rounds | trials | completed | best | mean | {epochs_column} |",
        "| --- | --- | --- | --- | --- | --- |" if asha else "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for b in brackets(trials, direction, "round" if asha else "bracket"):
        best = "-" if b["best"] is None else f"{b['best']:.4f}"
        mean = "-" if b["mean"] is None else f"{b['mean']:.4f}"
        first = f"| {b['bracket']} |" if asha else f"| {b['bracket']} | {b['rounds']} |"
        lines.append(
            f"{first} {b['trials']} | {b['completed']} | {best} | {mean} | "
            + (f"{b['epochs_granted']} |" if view else f"{b['epochs_run']} / {b['epochs_granted']} |")
        )
    granted = sum(_record(t).get("epochs_granted") or 0 for t in trials)
    ran = sum(_record(t).get("epochs_run") or 0 for t in trials)
    early = sum(bool(_record(t).get("stopped_early")) for t in trials)
    saved = granted - ran
    if not view:  # the epochs a trial ran are not in KerasTuner's files (said once, above)
        lines += ["", "## Early stopping", ""]
        lines.append(
            f"{early} of {len(trials)} trials stopped early; {ran} of {granted} granted epochs ran: "
            f"**{saved} epochs saved** ({saved / granted:.0%} of the budget)."
            if granted
            else "No epochs recorded."
        )
    lines += ["", "## Hyperparameter importance", ""]
    if imp["method"] is None:
        lines.append(f"Not computed: {imp['trials']} completed trials (at least {MIN_TRIALS_FOR_IMPORTANCE} needed).")
    else:
        lines.append(
            f"Method: {imp['method']} on {imp['trials']} completed trials, with the epochs each trained as a feature "
            f"of its own (the forest explains R² = {imp['r2']:.2f} of the objective on held-out trials). Importance is "
            "the drop "
            "in that R² when a dimension's values are shuffled across trials (mean ± spread over 20 shuffles); "
            "near zero or negative: no detectable effect in this search."
        )
        lines += ["", "| rank | dimension | importance | ± |", "| --- | --- | --- | --- |"]
        for i, r in enumerate(imp["ranking"], 1):
            lines.append(f"| {i} | {r['dimension']} | {r['importance']:.3f} | {r['spread']:.3f} |")
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(run_dir)})" for p in plots]
    return "\n".join(lines) + "\n"


def mirror_to_tensorboard(run_dir: Path, config: SearchConfig, text: str, plots: list[Path], imp: dict) -> Path:
    """The report as Text and its plots as Images in `tensorboard/report/` (step 0, replaced each time),
    and the HParams dashboard's default columns set by importance (`search.engine.tensorboard.headline`)."""
    from search.runtime import import_tensorflow

    import_tensorflow()
    from search.engine.tensorboard import headline, set_headline, write_report

    logdir = run_dir / layout.TENSORBOARD_DIR / PLOTS_DIR
    write_report(logdir, text, plots)
    ranking = [r["dimension"] for r in imp["ranking"] if r["importance"] > 0]
    set_headline(run_dir / layout.TENSORBOARD_DIR, headline(config.space, ranking))
    return logdir


def table(trials: list[dict], fmt: str, costs: dict[str, dict] | None = None) -> str:
    """Every trial as CSV or JSON text (`rows`)."""
    data = rows(trials, costs)
    if fmt == "json":
        return json.dumps(data, indent=2, default=layout.jsonable) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in data for k in row)))
    writer.writeheader()
    writer.writerows(data)
    return buffer.getvalue()


def _output(output: str | Path | None, default: Path) -> Path:
    path = Path(output) if output else default
    if not path.parent.is_dir():
        raise UserError(f"-o {output}", "", f"expected a file in an existing directory ({path.parent} does not exist)")
    return path


def report(
    run_dir: str | Path,
    fmt: str = "md",
    output: str | Path | None = None,
    measure: bool = True,
    log: Callable[[str], None] = print,
) -> Path | None:
    """Write the report (md: report.md + PNGs + TensorBoard; csv/json: every trial). Returns the file.

    `output` "-" writes csv or json to standard output (and returns None); the markdown report has
    PNG plots beside it, so it needs a file in a directory. `measure`: the md report first measures
    the architectures costs.json lacks (`search.production.costs`; lines to `log`), for its size and latency fronts.
    `run_dir` may be a plain KerasTuner project instead (`project_report`).
    """
    run_dir = Path(run_dir)
    if str(output) == "-" and fmt == "md":
        raise UserError(
            "-o -", "", "standard output takes --format csv or json; the md report writes PNG plots beside a file"
        )
    if is_project(run_dir):
        return project_report(run_dir, fmt, output, log)
    config, trials = load_run(run_dir)
    if fmt in ("csv", "json"):
        from search.production.costs import read, trial_costs

        text = table(trials, fmt, trial_costs(read(run_dir)))  # the costs measured so far (`ktsearch costs`)
        return _write_table(text, output, run_dir / f"report.{fmt}")
    path = _output(output, run_dir / REPORT_FILE)
    if measure and any(t["status"] == "COMPLETED" for t in trials):
        from search.production import costs

        costs.measure_run(run_dir, log, strict=False)  # costs from another machine are shown, not replaced
    return _markdown_report(run_dir, config, trials, path)


def _write_table(text: str, output: str | Path | None, default: Path) -> Path | None:
    if str(output) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    path = _output(output, default)
    layout.atomic_write(path, text)
    return path


def _markdown_report(run_dir: Path, config, trials: list[dict], path: Path, view: dict | None = None) -> Path:
    objective = config.tuner.objective
    dims = config.space.searched()
    imp = importance(trials, dims, layout.direction(objective))
    fronts = None if view else pareto_fronts(run_dir, trials, objective)
    plots = _plots(run_dir, config, trials, imp, dims, objective) + _front_plots(run_dir, fronts, objective)
    text = markdown(run_dir, config, trials, imp, dims, plots, fronts, view)
    layout.atomic_write(path, text)
    mirror_to_tensorboard(run_dir, config, text, plots, imp)
    return path


def project_report(
    project: Path, fmt: str = "md", output: str | Path | None = None, log: Callable[[str], None] = print
) -> Path | None:
    """The report of a plain KerasTuner project (`search.analysis.projects`), written with its view to a directory
    of its own: `output` (None: a new temporary one); never into the project. csv/json with `output` "-": the
    table on standard output (the view, and what it says, still go to a temporary directory and to `log`)."""
    from search.analysis import projects

    to_stdout = str(output) == "-"
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if to_stdout else log  # stdout holds the table
    shown = projects.view(project, None if to_stdout else output, say)
    trials = layout.read_trials(shown.run_dir)
    if fmt in ("csv", "json"):  # `output` named the view's directory (or "-": the table to standard output)
        return _write_table(table(trials, fmt), "-" if to_stdout else None, shown.run_dir / f"report.{fmt}")
    return _markdown_report(
        shown.run_dir, shown.config, trials, shown.run_dir / REPORT_FILE, projects.read_view(shown.run_dir)
    )
