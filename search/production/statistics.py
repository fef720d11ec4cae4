"""The finalists' statistics: the spread of a run's top configurations over seeds, and the rule that picks one.

TensorFlow-free (`export`, `report` and the model card read it); `search.production.finalize` trains
them and says what the numbers mean.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from search.algorithms import trial_order
from search.runs import layout

TOP = 3
SEEDS = 3
CONFIDENCE = 0.95
RULE = (
    "ranked by the mean objective over seeds; a configuration is within noise of the leader when the 95% "
    "Student-t intervals of their means overlap"
)


def t_quantile(df: int) -> float:
    """t(0.975, df): the two-sided 95 % Student-t quantile."""
    from scipy.stats import t

    return float(t.ppf(0.5 + CONFIDENCE / 2, df))


def spread(values: list[float]) -> dict:
    """Mean, sample sd and the 95 % interval of the mean (no interval from one value)."""
    n = len(values)
    mean = statistics.fmean(values) if values else None
    sd = statistics.stdev(values) if n > 1 else None
    half = None if sd is None else t_quantile(n - 1) * sd / math.sqrt(n)
    return {
        "n": n,
        "values": values,
        "mean": mean,
        "sd": sd,
        "ci": None if half is None else [mean - half, mean + half],
    }


def key(trial_id: str, seed: int) -> str:
    return f"{trial_id}/seed_{seed}"


def score(objective: str, result: dict) -> float:
    """The objective of one finalist training: validation metrics after best weights are restored."""
    if objective.startswith("val_"):
        return result["validation"][objective.removeprefix("val_")]
    return float(result["history"].history[objective][-1])


def summarize(config, chosen: list[dict], results: dict, seeds: list[int]) -> dict:
    """finalists.json: each configuration's spread, the ranking and whether its top can be told apart."""
    objective = config.tuner.objective
    maximize = layout.direction(objective) == "max"
    rows = []
    for trial in chosen:
        done = [results[key(trial["trial_id"], s)] for s in seeds if key(trial["trial_id"], s) in results]
        rows.append(
            {
                "trial_id": trial["trial_id"],
                "search_score": trial["score"],
                "hyperparameters": trial["hyperparameters"],
                "epochs": done[0]["epochs_requested"] if done else None,
                "seeds": [r["seed"] for r in done],
                "objective": spread([r["objective"] for r in done]),
                "test_accuracy": spread([r["test"]["accuracy"] for r in done]),
                "seconds": sum(r["seconds"] for r in done),
            }
        )
    scored = [r for r in rows if r["objective"]["n"]]
    scored.sort(
        key=lambda r: (
            -r["objective"]["mean"] if maximize else r["objective"]["mean"],
            trial_order(r["trial_id"]),
        )
    )
    leader = scored[0] if scored else None
    for rank, row in enumerate(scored, 1):
        row["rank"] = rank
        row["within_noise"] = _overlap(leader, row) if row is not leader else None
    complete = all(r["objective"]["n"] == len(seeds) for r in rows)
    ties = [r["trial_id"] for r in scored[1:] if r["within_noise"] is not False]
    return {
        "run": str(config.run_dir),
        "objective": objective,
        "direction": "max" if maximize else "min",
        "seeds": seeds,
        "top": len(chosen),
        "complete": complete,
        "rule": RULE,
        "confidence": CONFIDENCE,
        "winner": leader["trial_id"] if leader else None,
        "told_apart": leader is not None and not ties,
        "within_noise_of_winner": ties,
        "finalists": scored + [r for r in rows if not r["objective"]["n"]],
    }


def _overlap(a: dict, b: dict) -> bool | None:
    """Whether the 95 % intervals of two finalists overlap (None: fewer than two seeds, no interval)."""
    ia, ib = a["objective"]["ci"], b["objective"]["ci"]
    if ia is None or ib is None:
        return None
    return ia[0] <= ib[1] and ib[0] <= ia[1]


def verdict(summary: dict) -> str:
    """One sentence: the pick, and whether it is distinguishable from the runners-up."""
    winner, n = summary["winner"], len(summary["seeds"])
    if winner is None:
        return "No finalist has finished a seed yet."
    best = summary["finalists"][0]["objective"]
    head = f"Pick: trial {winner} ({summary['objective']} {_pm(best)} over {best['n']} seed(s))"
    if len(summary["finalists"]) == 1:
        return head + "; the only finalist."
    if n < 2:
        return (
            head + "; one seed each gives no interval, so the finalists cannot be told apart (use --seeds 3 or more)."
        )
    if summary["told_apart"]:
        return (
            head + f"; its 95% interval overlaps no other finalist's: it is better beyond the seed noise at {n} seeds."
        )
    ties = ", ".join(summary["within_noise_of_winner"])
    return (
        head + f"; within noise of trial(s) {ties} (overlapping 95% intervals at {n} seeds): the data cannot tell them "
        "apart; the pick is by mean. More seeds narrow the intervals."
    )


def _pm(s: dict) -> str:
    if s["mean"] is None:
        return "-"
    return f"{s['mean']:.4f}" if s["sd"] is None else f"{s['mean']:.4f} ± {s['sd']:.4f}"


def table(summary: dict) -> list[str]:
    """The finalists as a Markdown table (report.md, the TensorBoard text, the CLI)."""
    objective = summary["objective"]
    lines = [
        f"| rank | trial | search {objective} | epochs | seeds | {objective} mean ± sd | 95% interval | "
        "test accuracy mean ± sd | within noise of the pick |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary["finalists"]:
        ci = r["objective"]["ci"]
        noise = {None: "-", True: "yes", False: "no"}[r.get("within_noise")] if r.get("rank") != 1 else "(pick)"
        lines.append(
            f"| {r.get('rank', '-')} | {r['trial_id']} | {r['search_score']:.4f} | {r['epochs']} | {r['objective']['n']} | "
            f"{_pm(r['objective'])} | {'-' if ci is None else f'{ci[0]:.4f} – {ci[1]:.4f}'} | "
            f"{_pm(r['test_accuracy'])} | {noise} |"
        )
    return lines


def read_summary(run_dir: str | Path) -> dict | None:
    data, _ = layout.load_json(Path(run_dir) / layout.FINALIZE_DIR / layout.FINALISTS_FILE)
    return data if isinstance(data, dict) else None  # missing or damaged (`search.runs.integrity` names it)
