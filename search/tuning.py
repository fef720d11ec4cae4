"""`tune`: config -> data -> Hyperband with early stopping -> TensorBoard -> summary."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from search import runs
from search.config import Config, dump_yaml, load_config, parse_overrides
from search.errors import SearchStopped, UserError
from search.lock import run_lock

SAMPLE_IMAGES = 16
RESUME_IGNORES = ("name", "results_dir")  # moving or renaming a run does not change what it searches
STORAGE_AND_SPEED = ("keep_checkpoints", "reuse_models")  # tuner keys a resumed run may change


def _first_difference(old: Any, new: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            diff = _first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
            if diff:
                return diff
        return None
    return None if old == new else (prefix.rstrip("."), old, new)


def _comparable(resolved: dict) -> dict:
    out = {k: v for k, v in resolved.items() if k not in RESUME_IGNORES}
    # Storage and speed settings, not part of the search: a resumed run may change them.
    out["tuner"] = {k: v for k, v in out.get("tuner", {}).items() if k not in STORAGE_AND_SPEED}
    return out


def check_run_dir(config: Config, overwrite: bool) -> str:
    """'new', 'resume' or 'overwrite' for the config's run dir; UserError when it must be refused."""
    run_dir = config.run_dir
    if not run_dir.exists():
        return "new"
    if not run_dir.is_dir():
        raise UserError(str(run_dir), "", "exists and is not a directory")
    saved_file = run_dir / runs.CONFIG_FILE
    if not saved_file.exists():
        if any(run_dir.iterdir()):  # never delete a directory ktsearch did not create, --overwrite or not
            raise UserError(
                str(run_dir), "", "exists but holds no ktsearch run (no config.yaml); choose another --name"
            )
        return "new"
    if overwrite:
        return "overwrite"
    saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {}
    diff = _first_difference(_comparable(saved), _comparable(config.resolved))
    if diff:
        key, old, new = diff
        raise UserError(
            str(saved_file),
            key,
            f"this run was started with {old!r}, the config now gives {new!r}; "
            "pass --overwrite to replace the run (its results are deleted) or --name to start another",
        )
    return "resume"


def prepare_run_dir(config: Config, mode: str) -> None:
    if mode == "overwrite":
        shutil.rmtree(config.run_dir)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    if mode != "resume":
        runs.atomic_write(config.run_dir / runs.CONFIG_FILE, dump_yaml(config.resolved))


def summarize(config: Config) -> dict:
    """summary.json: every trial with its status, score, epochs and hyperparameters."""
    objective = config.section("tuner")["objective"]
    trials = runs.read_trials(config.run_dir)
    best = runs.best_trial(trials, objective)
    summary = {
        "run": str(config.run_dir),
        "objective": {"name": objective, "direction": runs.direction(objective)},
        "best_trial": None if best is None else best["trial_id"],
        "best_score": None if best is None else best["score"],
        "trials": [{k: v for k, v in t.items() if k != "record"} | _epochs(t) for t in trials],
    }
    runs.write_json(config.run_dir / runs.SUMMARY_FILE, summary)
    return summary


def _epochs(trial: dict) -> dict:
    record = trial["record"] or {}
    keys = ("initial_epoch", "epochs_granted", "epochs_run", "stopped_early", "best_epoch", "seconds")
    return {k: record.get(k) for k in keys}


def tune(
    config: str | Path | dict,
    overrides: list[str] | dict | None = None,
    *,
    name: str | None = None,
    results_dir: str | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) a search; returns the summary (also written to summary.json).

    Args:
        config: path to a YAML config, or the same structure as a dict.
        overrides: ``["tuner.max_epochs=3", ...]`` or ``{"tuner.max_epochs": 3}``.
        name: run name (default: the config's ``name``).
        results_dir: where runs live (default: the config's ``results_dir``).
        overwrite: delete an existing run of the same name with a different config.
        log: where progress lines go.

    Raises:
        UserError: bad config or data, or a run directory that cannot be used.
    """
    overrides = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    overrides.update({k: v for k, v in (("name", name), ("results_dir", results_dir)) if v is not None})
    cfg = load_config(config, overrides, labels={"name": "--name", "results_dir": "--results-dir"})
    mode = check_run_dir(cfg, overwrite)
    for warning in cfg.warnings():
        log(f"warning: {warning}")

    from search.runtime import import_tensorflow

    import_tensorflow()  # from here on TensorFlow is loaded
    from search import data

    splits = data.load_splits(cfg.section("data"), cfg.resolved["seed"])  # bad data fails before disk is touched
    with run_lock(cfg.run_dir):
        mode = check_run_dir(cfg, overwrite)  # again, now that no other tune can change the run
        prepare_run_dir(cfg, mode)
        sizes = splits.sizes()
        log(
            f"{'resuming' if mode == 'resume' else 'starting'} run {cfg.run_dir} "
            f"({sizes['train']} train / {sizes['validation']} validation images, {splits.num_classes} classes)"
        )
        _search(cfg, splits, mode, log)
    summary = summarize(cfg)
    log(final_report(cfg, summary))
    return summary


def _search(cfg: Config, splits, mode: str, log: Callable[[str], None]) -> None:
    import keras

    from search import data, tensorboard, tuners

    keras.utils.set_random_seed(cfg.resolved["seed"])
    train_ds, val_ds, _ = data.to_datasets(splits, cfg.section("data")["batch_size"], cfg.resolved["seed"])
    hypermodel = build_hypermodel(cfg, splits)
    samples = splits.x_train[:SAMPLE_IMAGES]  # the same images in every trial's augmentation grid
    if mode != "resume":  # one experiment config per run; a resumed run keeps its own
        objective = cfg.section("tuner")["objective"]
        tb_root = cfg.run_dir / runs.TENSORBOARD_DIR
        tensorboard.write_experiment(tb_root, cfg.space, objective, hypermodel.logged_metrics, samples)
    tuner = tuners.build_tuner(cfg, hypermodel, log=log, samples=samples)
    try:
        tuner.search(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.section("tuner")["max_epochs"],
            callbacks=tuners.search_callbacks(cfg),
            verbose=0,
            shuffle=False,  # the dataset reshuffles itself
        )
        tuner.prune_checkpoints(search_over=True)
        if tuner.pool is not None and tuner.pool.adopted:
            log(f"{tuner.pool.reused} of {tuner.pool.adopted} trials reused a compiled model (tuner.reuse_models)")
    except RuntimeError as e:  # KerasTuner's consecutive-failure limit
        if "consecutive failures" not in str(e):
            raise
        log(final_report(cfg, summarize(cfg)))
        limit = cfg.section("tuner")["max_consecutive_failed_trials"]
        raise SearchStopped(
            f"search stopped: {limit} trials in a row failed (tuner.max_consecutive_failed_trials); "
            f"the results so far are kept in {cfg.run_dir}"
        ) from None


def build_hypermodel(cfg: Config, splits):
    """The configured HyperModel for these splits (search and train share this)."""
    from hypermodels import registry

    hm = cfg.section("hypermodel")
    cls = registry.resolve(hm["name"])
    return cls(
        splits.input_shape,
        splits.num_classes,
        cfg.space,
        optimizer=hm["optimizer"],
        steps_per_execution=hm["steps_per_execution"],
        lr_horizon=cfg.lr_horizon,
        seed=cfg.resolved["seed"],
    )


def _shell_path(path: Path) -> str:
    text = str(path)
    return text if all(ch.isalnum() or ch in "/._-" for ch in text) else "'" + text.replace("'", "'\\''") + "'"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def final_report(cfg: Config, summary: dict) -> str:
    trials = summary["trials"]
    done = sum(t["status"] == "COMPLETED" for t in trials)
    lines = [f"search finished: {done} of {len(trials)} trials completed"]
    best = next((t for t in trials if t["trial_id"] == summary["best_trial"]), None)
    if best is None:
        lines.append("no trial completed; nothing to export")
        return "\n".join(lines)
    objective = summary["objective"]["name"]
    lines.append(f"best trial {best['trial_id']}: {objective} = {best['score']:.4f} (best epoch {best['best_epoch']})")
    values = best["hyperparameters"]
    lines += [f"  {name} = {_fmt(values[name])}" for name in cfg.space.dims if name in values]
    run = _shell_path(cfg.run_dir)
    lines += [
        "open TensorBoard:",
        f"  ktsearch tensorboard {run}",
        "export the best configuration, then train it:",
        f"  ktsearch export {run}",
        f"  ktsearch train {_shell_path(cfg.run_dir / runs.EXPORT_FILE)}",
    ]
    return "\n".join(lines)
