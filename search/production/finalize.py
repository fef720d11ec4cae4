"""`ktsearch finalize`: the top configurations of a search, retrained with several seeds each.

A search ranks configurations by one training each, and the gaps between its top trials are
often the size of the seed-to-seed noise. `finalize` retrains the top K *distinct*
configurations (a Hyperband continuation is the same configuration) N times each, with
training seeds 1..N, through the same path `train` uses (`search.production.train.fit_once`): the
export of that trial, its exported epochs, early stopping with best weights restored. The
seed sets initial weights, the augmentation stream and the shuffling order; the split is
the run's and never changes, so every finalist is scored on the same validation and test images.

Ranking is by the mean of the objective over seeds. Each mean gets a 95 % Student-t
interval (mean ± t(0.975, N-1)·sd/√N); configurations whose interval overlaps the leader's are
*within noise* of it: the data cannot tell them apart at N seeds (overlap of two 95 %
intervals is a conservative test: intervals that do not overlap differ at p < 0.05, overlapping
ones may still differ, and more seeds narrow the intervals). Test accuracy is reported
beside, never used to pick: the test split stays a held-out estimate.

Everything goes in ``RUN_DIR/finalize/``: ``results.json`` gains one entry per finished
(configuration, seed) training, written atomically, so a killed finalize resumes where it
stopped and a later one with more seeds or a larger K only trains what is missing;
``finalists.json`` is the summary `export`, `report` and `train`'s model card read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from search.config import validate_export
from search.errors import UserError, arg
from search.production.export import build_export, load_run
from search.production.statistics import SEEDS, TOP, key, score, summarize, table, verdict
from search.runs import integrity, layout
from search.runs.layout import FINALISTS_FILE, FINALIZE_DIR, FINALIZE_RESULTS_FILE, distinct_top


def finalize(
    run_dir: str | Path, top: int = TOP, seeds: int = SEEDS, log=print, verbose: int = 0, reuse: bool | None = None
) -> dict:
    """Retrain the top `top` distinct configurations of a run with seeds 1..`seeds`; returns finalists.json.

    Resumable: finished (configuration, seed) trainings are kept in ``finalize/results.json``
    and not trained again. `reuse`: train a configuration's later seeds in its first seed's
    compiled model (default: the run's ``tuner.reuse_models`` is not 0).
    """
    for flag, name, value in (("--top", "top", top), ("--seeds", "seeds", seeds)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
            raise UserError(arg(flag, name), "", f"expected an integer in [1, 1000], got {value!r}")
    run_dir = Path(run_dir)
    config = load_run(run_dir)
    integrity.warn(run_dir, log, finalize=False)  # its own files: set aside below, and said
    chosen = distinct_top(layout.read_trials(run_dir), config.tuner.objective, top)
    if not chosen:
        raise UserError(str(run_dir), "", "has no completed trial yet, so there is nothing to finalize")
    seed_list = list(range(1, seeds + 1))
    out = run_dir / FINALIZE_DIR
    exports = {t["trial_id"]: validate_export(build_export(run_dir, t, ranking="search")[0]) for t in chosen}
    from search.runs.lock import run_lock

    with run_lock(run_dir):  # one tune or finalize at a time writes into a run
        results, problem = layout.load_json(out / FINALIZE_RESULTS_FILE)
        if problem or (results is not None and not isinstance(results, dict)):
            kept = integrity.set_aside(out / FINALIZE_RESULTS_FILE)
            log(
                f"warning: {out / FINALIZE_RESULTS_FILE} is damaged ({problem or 'expected a JSON object'}): "
                f"its trainings are run again; the damaged file is {kept.name}"
            )
            results = None
        results = results or {}
        todo = [(t, s) for t in chosen for s in seed_list if key(t["trial_id"], s) not in results]
        done = len(chosen) * seeds - len(todo)
        log(
            f"finalize {run_dir}: top {len(chosen)} configuration(s) × {seeds} seed(s) = "
            f"{len(chosen) * seeds} trainings"
            + (f"; {done} already done, resuming" if done else "")
            + (f" (the run has only {len(chosen)} distinct completed configurations)" if len(chosen) < top else "")
        )
        out.mkdir(exist_ok=True)
        if todo:
            reuse = config.tuner.reuse_models > 0 if reuse is None else reuse
            _train_missing(run_dir, config, exports, todo, results, log, verbose, reuse)
        summary = summarize(config, chosen, results, seed_list)
        unchanged = not todo and layout.read_json(out / FINALISTS_FILE) == json.loads(json.dumps(summary))
        layout.write_json(out / FINALISTS_FILE, summary)
        if not unchanged:  # a rerun with nothing new adds no second point at the same step
            _to_tensorboard(run_dir, summary)
    return summary


def _train_missing(
    run_dir: Path, config, exports: dict, todo: list, results: dict, log, verbose: int, reuse: bool
) -> None:
    from search.engine.pool import ModelPool
    from search.production.train import fit_once, load_data
    from search.runtime import strategy as make_strategy

    quiet = lambda line: None  # noqa: E731
    first = exports[todo[0][0]["trial_id"]]
    splits = load_data(first, log)  # every finalist has the run's data and split
    strategy = make_strategy(config, log)
    objective = config.tuner.objective
    tb_root = run_dir / layout.TENSORBOARD_DIR / FINALIZE_DIR
    pools: dict[str, ModelPool] = {}
    for n, (trial, seed) in enumerate(todo, 1):
        trial_id = trial["trial_id"]
        cfg = exports[trial_id]
        pool = pools.setdefault(trial_id, ModelPool(1)) if reuse else None  # one compiled model per configuration
        reused = pool.reused if pool else 0
        log_dir = tb_root / f"trial_{trial_id}" / f"seed_{seed}"
        shutil.rmtree(log_dir, ignore_errors=True)  # a training killed earlier left partial curves: start afresh
        result = fit_once(
            cfg,
            splits,
            seed=seed,
            epochs=cfg.training.epochs,
            log_dir=log_dir,
            strategy=strategy,
            pool=pool,
            verbose=verbose,
            log=quiet,
        )
        value = score(objective, result)
        results[key(trial_id, seed)] = {
            "trial_id": trial_id,
            "seed": seed,
            "objective": value,
            "validation": result["validation"],
            "test": result["test"],
            "epochs_requested": cfg.training.epochs,
            "epochs_run": result["epochs_run"],
            "seconds": result["seconds"],
            "reused_compiled_model": pool is not None and pool.reused > reused,
        }
        layout.write_json(run_dir / FINALIZE_DIR / FINALIZE_RESULTS_FILE, results)
        log(
            f"[{n}/{len(todo)}] trial {trial_id} seed {seed}: {objective} {value:.4f}, "
            f"test accuracy {result['test']['accuracy']:.4f}, {result['epochs_run']} epochs in {result['seconds']:.1f} s"
        )
        if all(key(trial_id, s) in results for t, s in todo if t["trial_id"] == trial_id):
            pools.pop(trial_id, None)  # this configuration is done: free its graphs


def _to_tensorboard(run_dir: Path, summary: dict) -> None:
    """Each finalist's mean and sd as scalars, and the table as text, under tensorboard/finalize/."""
    from search.runtime import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    root = run_dir / layout.TENSORBOARD_DIR / FINALIZE_DIR
    objective = summary["objective"]
    for row in summary["finalists"]:
        s, test = row["objective"], row["test_accuracy"]
        writer = tf.summary.create_file_writer(str(root / f"trial_{row['trial_id']}"))
        with writer.as_default():
            step = s["n"]  # seeds so far: a later finalize with more seeds adds a point
            for tag, value in (
                (f"finalize/{objective}_mean", s["mean"]),
                (f"finalize/{objective}_sd", s["sd"]),
                ("finalize/test_accuracy_mean", test["mean"]),
                ("finalize/test_accuracy_sd", test["sd"]),
            ):
                if value is not None:
                    tf.summary.scalar(tag, value, step=step)
        writer.close()
    writer = tf.summary.create_file_writer(str(root))
    with writer.as_default():
        tf.summary.text("finalize", "\n".join([verdict(summary), "", *table(summary)]), step=len(summary["seeds"]))
    writer.close()
