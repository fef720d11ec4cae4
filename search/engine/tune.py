"""`tune`: config -> data -> the tuner (Hyperband, BOHB, ASHA, ...) with early stopping -> TensorBoard -> summary."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search import units
from search.algorithms import ALGORITHMS
from search.algorithms.schedule import make_plan
from search.config import SearchConfig, dump_yaml, load_config, parse_overrides
from search.distributed import handshake
from search.distributed import role as roles
from search.distributed.role import Role
from search.engine.context import SearchRun
from search.errors import FailureLimitReached, SearchStopped, UserError, arg
from search.models import check_hypermodel, use_hypermodel
from search.runs import integrity, layout, warmstart
from search.runs.lock import run_lock

SAMPLE_IMAGES = 16
RESUME_IGNORES = ("name", "results_dir", "distribution")  # where and on what a run runs, not what it searches
# Keys a resumed run may change: storage and speed, not what is searched.
RESUMABLE = {"tuner": ("keep_checkpoints", "reuse_models", "time_budget"), "data": ("cache",)}
# Keys a resumed run may raise, not lower: how much it searches. Raising one continues a finished run with its
# trials kept (`search.algorithms.base.SearchOracle.set_state` keeps the config's value over the one oracle.json saved).
EXTENDABLE = tuple(dict.fromkeys(a.size_key for a in ALGORITHMS.values()))


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
    for section, keys in RESUMABLE.items():
        out[section] = {k: v for k, v in out.get(section, {}).items() if k not in keys}
    out["tuner"] = {k: v for k, v in out["tuner"].items() if k not in EXTENDABLE}
    return out


def extension(saved: dict, config: SearchConfig) -> dict[str, tuple[int, int]]:
    """{tuner key: (old, new)} of the `EXTENDABLE` keys this config raises over a run's saved config;
    UserError for one it lowers."""
    raised = {}
    for key in EXTENDABLE:
        old, new = saved.get("tuner", {}).get(key), getattr(config.tuner, key)
        if old is None or old == new:
            continue
        if new < old:
            raise UserError(
                str(config.run_dir / layout.CONFIG_FILE),
                f"tuner.{key}",
                f"this run was started with {old}, the config now gives {new}: a run can be extended (raise it), "
                "not shortened; pass --name to start another run, or --overwrite to replace this one",
            )
        raised[key] = (old, new)
    return raised


def check_run_dir(config: SearchConfig, overwrite: bool) -> str:
    """'new', 'resume' or 'overwrite' for the config's run dir; UserError when it must be refused."""
    run_dir = config.run_dir
    if not run_dir.exists():
        return "new"
    if not run_dir.is_dir():
        raise UserError(str(run_dir), "", "exists and is not a directory")
    saved_file = run_dir / layout.CONFIG_FILE
    if not saved_file.exists():
        if any(run_dir.iterdir()):  # never delete a directory ktsearch did not create, --overwrite or not
            raise UserError(
                str(run_dir), "", "exists but holds no ktsearch run (no config.yaml); choose another --name"
            )
        return "new"
    if overwrite:
        return "overwrite"
    saved, _ = integrity.saved_config(
        run_dir, "restore it from a copy, or start the run over with --overwrite (its results are deleted)"
    )
    diff = _first_difference(_comparable(saved), _comparable(config.to_dict()))
    if diff:
        key, old, new = diff
        raise UserError(
            str(saved_file),
            key,
            f"this run was started with {old!r}, the config now gives {new!r}; "
            "pass --overwrite to replace the run (its results are deleted) or --name to start another",
        )
    extension(saved, config)  # a key lowered is refused here, before anything is written
    return "resume"


def prepare_run_dir(config: SearchConfig, mode: str, log: Callable[[str], None] = print) -> None:
    if mode == "overwrite":
        shutil.rmtree(config.run_dir)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    if mode != "resume":
        layout.atomic_write(config.run_dir / layout.CONFIG_FILE, dump_yaml(config.to_dict()))
        return
    saved, _ = integrity.saved_config(config.run_dir)
    raised = extension(saved, config)
    if raised:  # the run's config records how far it goes now; the rest of it stays as it started
        for key, (_, new) in raised.items():
            saved["tuner"][key] = new
        layout.atomic_write(config.run_dir / layout.CONFIG_FILE, dump_yaml(saved))
        done = len(layout.read_trials(config.run_dir))
        changes = ", ".join(f"tuner.{key} {old} -> {new}" for key, (old, new) in raised.items())
        log(f"extending run {config.run_dir}: {changes}; its {done} trials so far are kept")


def summarize(config: SearchConfig) -> dict:
    """summary.json: every trial with its status, score, epochs and hyperparameters."""
    objective = config.tuner.objective
    trials = layout.read_trials(config.run_dir)
    best = layout.best_trial(trials, objective)
    summary = {
        "run": str(config.run_dir),
        "objective": {"name": objective, "direction": layout.direction(objective)},
        "best_trial": None if best is None else best["trial_id"],
        "best_score": None if best is None else best["score"],
        "plan": _plan_ran(config, trials),
        "trials": [{k: v for k, v in t.items() if k != "record"} | _epochs(t) for t in trials],
    }
    layout.write_json(config.run_dir / layout.SUMMARY_FILE, summary)
    return summary


def _plan_ran(config: SearchConfig, trials: list[dict]) -> dict:
    """How much of the plan ran: trials and epochs planned and run, time spent, and the budget's stop."""
    plan = make_plan(config)
    budget = layout.read_budget(config.run_dir)
    return {
        "algorithm": config.tuner.algorithm,
        "planned_trials": plan["trials"],
        "trials": len(trials),
        "planned_epochs": plan["epochs"],
        "epochs_run": sum((t["record"] or {}).get("epochs_run") or 0 for t in trials),
        "time_budget_s": budget.get("time_budget_s"),
        "spent_s": budget.get("spent_s"),
        "stopped_by_budget": budget.get("stop"),
    }


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
    role: Role | None = None,
    threads: int | None = None,
    quiet: bool = False,
    progress_bar: bool = False,
    keras_verbose: int = 0,
    budget: str | float | None = None,
    warm_start: str | Path | None = None,
    top: int | None = None,
    hypermodel: Any = None,
    data: Any = None,
) -> dict:
    """Run (or resume) a search; returns the summary (also written to summary.json).

    Args:
        config: path to a YAML config, or the same structure as a dict.
        overrides: ``["tuner.max_epochs=3", ...]`` or ``{"tuner.max_epochs": 3}``.
        name: run name (default: the config's ``name``).
        results_dir: where runs live (default: the config's ``results_dir``).
        overwrite: delete an existing run of the same name with a different config.
        log: where progress lines go.
        role: `search.distributed.role.Role`: this process alone (default), the chief of a distributed
            search (serves the oracle; writes the summary when the search is over) or a worker
            (runs trials; returns ``{"worker": ID, "completed": [trial ids]}``).
        threads: TensorFlow's intra- and inter-op thread pools (default: TensorFlow's choice).
        quiet: no per-trial lines (the start and the final report still go to `log`).
        progress_bar: also keep a status bar on the terminal's last line (`ktsearch tune` on a TTY).
        keras_verbose: Keras's own per-epoch output in each trial (0 off, 1 bar, 2 a line per epoch).
        budget: wall-clock budget (seconds, or text such as ``"45m"``), overriding ``tuner.time_budget``;
            counted across resumes, and a resume may change it.
        warm_start: an earlier run's directory: the new run's first configurations are its best `top`
            (default 3) distinct ones (`search.runs.warmstart`); checked against this search space first.
        top: how many configurations `warm_start` gives.
        hypermodel: a KerasTuner model: a function `hp -> keras.Model` or a `keras_tuner.HyperModel`
            (or a ktsearch HyperModel class), in place of the config's `hypermodel.name`; recorded by
            its import name (`module:name`), which a worker or a later `train` imports.
        data: arrays from Python, in place of the config's `data.source`: `(x, y)`, `{"train": (x, y),
            "validation": ..., "test": ...}` or a `tf.data.Dataset` of `(image, label)` pairs
            (`search.data.arrays`); saved once into `<run>/data/`, fingerprinted for resumes.

    Raises:
        UserError: bad config or data, or a run directory that cannot be used.
    """
    overrides = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    given = (("name", name), ("results_dir", results_dir), ("tuner.time_budget", budget))
    overrides.update({k: v for k, v in given if v is not None})
    labels = {
        "name": arg("--name", "name"),
        "results_dir": arg("--results-dir", "results_dir"),
        "tuner.time_budget": arg("--budget", "budget"),
    }
    given_arrays = None
    if hypermodel is not None:
        overrides["hypermodel.name"] = use_hypermodel(hypermodel)
    if data is not None:
        from search.data import arrays

        given_arrays = arrays.from_python(data)  # bad data is one line, before anything is written
        run_dir = load_config(config, overrides, labels=labels).run_dir
        overrides.update({"data.source": "arrays", "data.path": str(run_dir / layout.ARRAYS_DIR)})
    cfg = load_config(config, overrides, labels=labels)
    role = role or Role()
    roles.check_role(role)  # security flags that do not fit, or would leave the search open
    if threads is not None and not 1 <= threads <= 1024:
        raise UserError(arg("--threads", "threads"), "", f"expected a thread count in [1, 1024], got {threads!r}")
    if role.kind == "worker":
        if warm_start is not None or top is not None:
            given = arg("--from", "warm_start") if warm_start is not None else arg("--top", "top")
            raise UserError(
                given,
                "",
                f"the chief's run holds the warm start; a worker takes no {arg('--from or --top', 'warm_start or top')}",
            )
        return _work(cfg, role, log, threads, config)
    mode = check_run_dir(cfg, overwrite)
    _check_arrays(cfg, mode, given_arrays)
    warm = _warm_start(cfg, mode, warm_start, top)
    from search.engine.progress import Progress

    plan = make_plan(cfg)
    progress = Progress(plan["trials"], plan["epochs"], log, terminal=progress_bar, quiet=quiet)
    log = progress.log  # other lines keep the status bar below them
    for warning in [*cfg.warnings(), *plan["warnings"]]:
        log(f"warning: {warning}")
    if roles.exposure_warning(role):
        log(f"warning: {roles.exposure_warning(role)}")

    # bad data, weights and devices fail before disk is touched
    splits, strategy = _load_data(cfg, role, threads, log, given_arrays)
    with run_lock(cfg.run_dir):
        mode = check_run_dir(cfg, overwrite)  # again, now that no other tune can change the run
        _check_arrays(cfg, mode, given_arrays)
        warm = _warm_start(cfg, mode, warm_start, top)
        prepare_run_dir(cfg, mode, log)
        if given_arrays is not None and not (cfg.run_dir / layout.ARRAYS_DIR).is_dir():
            from search.data import arrays

            arrays.save(given_arrays, cfg.run_dir / layout.ARRAYS_DIR)
        sizes = splits.sizes()
        log(
            f"{'resuming' if mode == 'resume' else 'starting'} run {cfg.run_dir} "
            f"({sizes['train']} train / {sizes['validation']} validation images, {splits.num_classes} classes)"
        )
        if warm is not None:
            warmstart.write(cfg.run_dir, warm)
            log(warmstart.describe(warm))
        shape = {"input_shape": list(splits.input_shape), "num_classes": splits.num_classes}
        if layout.read_json(cfg.run_dir / layout.MODEL_INPUT_FILE) != shape:  # what `ktsearch costs` builds models for
            layout.write_json(cfg.run_dir / layout.MODEL_INPUT_FILE, shape)
        run = SearchRun(cfg, mode, role, config, log, progress, strategy=strategy, keras_verbose=keras_verbose)
        _search(run, splits)
    progress.close()
    summary = summarize(cfg)
    log(final_report(cfg, summary))
    return summary


def _check_arrays(cfg: SearchConfig, mode: str, given) -> None:
    """A resume with arrays from Python: the same arrays the run was started with, or one line on what differs."""
    saved = cfg.run_dir / layout.ARRAYS_DIR
    from search.data import arrays

    if given is None or mode != "resume" or not (saved / arrays.META_FILE).is_file():
        return

    diff = arrays.differences(arrays.read_meta(saved), given.meta)
    if diff:
        raise UserError(
            "data=",
            "",
            f"this run was started with other arrays ({diff}; its copy is in {saved}); pass overwrite=True to "
            "replace the run (its results are deleted) or name= to start another",
        )


def _warm_start(cfg: SearchConfig, mode: str, source, top: int | None) -> dict | None:
    """The checked warm start of a new run (None without --from); a resume may only repeat its own."""
    if mode == "resume":
        warmstart.check_resume(cfg, source, top)
        return None
    if source is None:
        if top is not None:
            raise UserError(arg("--top", "top"), "", f"only used with {arg('--from RUN_DIR', 'warm_start')}")
        return None
    return warmstart.plan(cfg, source, top)


def _load_data(cfg: SearchConfig, role: Role, threads: int | None, log: Callable[[str], None], arrays=None):
    """TensorFlow (threads set), the data splits (checked against the HyperModel) and the configured
    distribution strategy (None: one device)."""
    from search.runtime import import_tensorflow

    roles.set_environment(role)  # KerasTuner reads its role from the environment
    tf = import_tensorflow()  # from here on TensorFlow is loaded
    if threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already ran something in this process (the Python API, twice)
            raise UserError(
                arg("--threads", "threads"), "", "TensorFlow is already running in this process; set it once"
            ) from None
    from search.data import sources
    from search.runtime import strategy

    splits = sources.load_splits(cfg.data, cfg.seed, arrays)
    if arrays is not None:  # the HyperModel's loss follows the labels' form, known before the copy is saved
        from search.data.arrays import expect

        expect(cfg.data.path, arrays)
    sample = splits.sample_batch(2) if hasattr(splits, "sample_batch") else None
    hypermodel = check_hypermodel(cfg, splits.input_shape, splits.num_classes, sample)  # images, labels, weights
    if cfg.space.open and role.kind != "worker":
        from search.models import user_notes

        for note in user_notes(cfg, hypermodel):
            log(f"warning: {note}")
    return splits, None if role.kind == "chief" else strategy(cfg, log)  # the chief trains nothing


def _work(cfg: SearchConfig, role: Role, log: Callable[[str], None], threads: int | None, source) -> dict:
    """A worker: wait for the chief, check that both run the same search, run trials until told to stop."""
    handshake.wait_for_chief(role, log, cfg.run_dir)
    saved_file = cfg.run_dir / layout.CONFIG_FILE
    if not saved_file.is_file():
        raise UserError(
            str(cfg.run_dir),
            "",
            f"expected the chief's run directory here (the chief at {role.address} serves a run; workers need "
            "the same results directory, shared, at the same path, and the same --name)",
        )
    saved, _ = integrity.saved_config(cfg.run_dir, "restore it from a copy on the chief's side")
    diff = _first_difference(_comparable(saved), _comparable(cfg.to_dict()))
    if diff:
        key, old, new = diff
        raise UserError(str(cfg.source), key, f"the chief's run has {old!r}, this worker's config gives {new!r}")
    splits, strategy = _load_data(cfg, role, threads, log)
    from search.distributed.worker import SearchOver

    log(f"worker {role.worker_id}: running trials of {cfg.run_dir} for the chief at {role.address}")
    try:
        tuner = _search(SearchRun(cfg, "resume", role, source, log, strategy=strategy), splits)
    except SearchOver as e:  # the chief is gone: the search ended while away, or it crashed
        if not e.done:
            raise SearchStopped(f"worker {role.worker_id}: {e} at {role.address}") from None
        log(f"worker {role.worker_id}: stopping: {e} (while this worker could not reach it)")
        return {"worker": role.worker_id, "completed": []}
    ids = ", ".join(tuner.completed) or "none"
    log(
        f"worker {role.worker_id}: done, {len(tuner.completed)} trials completed here ({ids}); the chief writes the summary"
    )
    return {"worker": role.worker_id, "completed": tuner.completed}


def _search(run: SearchRun, splits):
    """Build the tuner over the run's HyperModel and run the search (or serve it, as the chief)."""
    import keras

    from search.data import sources
    from search.engine import tensorboard, tuners
    from search.models import build_hypermodel

    cfg = run.config
    keras.utils.set_random_seed(cfg.seed)
    run.splits = splits
    if run.role.kind != "chief":  # the chief trains nothing: it never decodes or caches the data
        cache_dir = cfg.run_dir / layout.DATA_CACHE_DIR
        run.train_for, val_ds, _ = sources.seeded_datasets(splits, cfg.data.batch_size, cache_dir, run.log)
        train_ds = run.train_for(cfg.seed)  # each trial reads a fresh one (`tuners.RecordingTuner`)
    hypermodel = build_hypermodel(cfg, splits.input_shape, splits.num_classes)
    run.samples = splits.samples(SAMPLE_IMAGES)  # the same images in every trial's augmentation grid
    _known_dimensions(cfg, hypermodel.space)
    if run.mode != "resume":  # one experiment config per run; a resumed run keeps its own
        logged = hypermodel.logged_metrics
        tensorboard.write_experiment(run.tensorboard_root, hypermodel.space, cfg.tuner.objective, logged, run.samples)
    tuner = tuners.build_tuner(run, hypermodel)
    tuner.keep_dimensions()
    if run.progress is not None:
        run.progress.restart()  # elapsed and ETA count the search, not imports and data loading
    try:
        if run.role.kind == "chief":
            hint = _worker_command(cfg, run.source, run.role.security)
            from search.distributed.chief import serve

            ran = serve(tuner, run.role, run.log, cfg.distribution.worker_timeout, hint)
            done = ", ".join(f"{worker} {len(ids)}" for worker, ids in sorted(ran.items())) or "none"
            run.log(f"trials completed per worker: {done}")
        else:
            tuner.search(
                train_ds,
                validation_data=val_ds,
                epochs=cfg.tuner.max_epochs,
                callbacks=tuners.search_callbacks(cfg),
                verbose=run.keras_verbose,
                shuffle=False,  # the dataset reshuffles itself
            )
    except (tuners.DataFileError, tuners.StorageFault) as e:  # the trial in progress reruns when the search resumes
        raise e.problem from None
    except FailureLimitReached as e:
        run.log(final_report(cfg, summarize(cfg)))
        raise FailureLimitReached(f"{e}; the results so far are kept in {cfg.run_dir}") from None
    tuner.prune_checkpoints(search_over=True)
    tuner.keep_dimensions()  # a chief: the ones the workers' trials declared
    compact = getattr(tuner.oracle, "compact", None)  # a chief's or one process's own oracle, not a worker's client
    if compact is not None:
        compact()  # the finished search's oracle.json holds all of it; its journal is empty
    if tuner.pool is not None and tuner.pool.adopted:
        run.log(f"{tuner.pool.reused} of {tuner.pool.adopted} trials reused a compiled model (tuner.reuse_models)")
    return tuner


def _known_dimensions(cfg: SearchConfig, space) -> None:
    """A user's model: the dimensions its builds declared before, in this run (a resume) or in the run a warm
    start comes from, join the space from the start, so the oracle proposes them (a warm start's `units_1`)."""
    if not getattr(space, "open", False):
        return
    runs = [cfg.run_dir]
    warm = layout.read_json(cfg.run_dir / warmstart.WARM_FILE)
    if warm:
        runs.append(Path(warm["from"]))
    for run_dir in runs:
        space.extend(layout.read_dimensions(run_dir)["dimensions"])
    space.grown.clear()  # the experiment written at the start declares them


def _worker_command(cfg: SearchConfig, source, security) -> str:
    config = _shell_path(Path(source)) if isinstance(source, (str, Path)) else "CONFIG"
    flags = f" --name {cfg.name} --results-dir {_shell_path(Path(cfg.results_dir))}"
    if security.tls_cert:
        flags += " --tls-ca CA.pem"  # the CA that signed the chief's certificate
    if security.no_auth:
        flags += " --insecure-no-auth"
    elif security.secret_file:
        flags += " --secret-file FILE"  # the chief's secret, copied to the worker's machine
    return f"ktsearch tune {config}{flags} --worker --oracle {{ADDRESS}}"


def _shell_path(path: Path) -> str:
    text = str(path)
    return text if all(ch.isalnum() or ch in "/._-" for ch in text) else "'" + text.replace("'", "'\\''") + "'"


def budget_summary(ran: dict) -> str:
    """The final report's line on a time budget: time used, what did not fit, how much of the plan ran
    (`ran`: summary.json's `plan`)."""
    share = (
        f"{ran['trials']} of {ran['planned_trials']} planned trials, "
        f"{ran['epochs_run']} of {ran['planned_epochs']} planned epochs ran"
    )
    used = f"time budget {units.duration(ran['time_budget_s'])}: {units.duration(ran['spent_s'] or 0)} used"
    stop = ran.get("stopped_by_budget")
    if not stop:
        return f"{used}; {share}"
    needed = "" if stop["needed_s"] is None else f", about {units.duration(stop['needed_s'])}"
    left = units.duration(max(stop["left_s"], 0))
    return (
        f"{used}; the budget ended the search: the next {stop['next']}{needed} did not fit in the {left} left; {share}"
    )


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def final_report(cfg: SearchConfig, summary: dict) -> str:
    layout.with_dimensions(cfg)  # a user's model: its own dimensions are listed with ktsearch's
    trials = summary["trials"]
    done = sum(t["status"] == "COMPLETED" for t in trials)
    lines = [f"search finished: {done} of {len(trials)} trials completed"]
    ran = summary.get("plan") or {}
    if ran.get("time_budget_s") is not None:
        lines.append(budget_summary(ran))
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
        f"  ktsearch train {_shell_path(cfg.run_dir / layout.EXPORT_FILE)}",
        "or the best that fits a device (size and latency per architecture, measured on this machine):",
        f"  ktsearch costs {run}",
        f"  ktsearch export {run} --max-latency-ms X --max-size-mb Y",
    ]
    return "\n".join(lines)
