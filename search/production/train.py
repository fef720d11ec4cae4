"""`train`: a production run from an exported (or hand-written) fixed configuration.

Builds the model through the same `HyperModel.build(hp)` path the search used,
trains with the same LR schedule and early stopping, evaluates on the held-out
test split and saves an inference model without augmentation: `model.keras`, and for
serving a SavedModel and TFLite file(s) checked against it (`search.production.serving`), plus
`metrics.json` and `model_card.md`.

`fit_once` is the one training of one configuration at one seed; `finalize` calls it too.
"""

from __future__ import annotations

import math
import shlex
import time
from pathlib import Path

from search.config import load_export
from search.errors import UserError, arg
from search.runs import layout

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
CARD_FILE = "model_card.md"


def _output_dir(cfg, output_dir, overwrite: bool) -> Path:
    from search.production.serving import FILES

    out = Path(output_dir) if output_dir is not None else cfg.run_dir / layout.TRAIN_DIR
    if out.exists() and not out.is_dir():
        raise UserError(str(out), "", "exists and is not a directory")
    existing = [f for f in (MODEL_FILE, METRICS_FILE, CARD_FILE, *FILES) if (out / f).exists()]
    if existing and not overwrite:
        raise UserError(
            str(out),
            "",
            f"already holds {', '.join(existing)}; pass {arg('--overwrite', 'overwrite=True')} to replace them "
            f"or {arg('-o DIR', 'output_dir')}",
        )
    return out


def _search_comparison(cfg, val_metrics: dict) -> dict:
    prov = cfg.provenance
    objective = prov.get("objective")
    if objective is None or prov.get("score") is None:
        return {}
    own = val_metrics.get(objective.removeprefix("val_")) if objective.startswith("val_") else None
    drift = None if own is None else own - prov["score"]
    out = {
        "objective": objective,
        "trial_id": prov.get("trial_id"),
        "score": prov["score"],
        "this_run": own,
        "drift": drift,
    }
    pick = ((prov.get("finalists") or {}).get("table") or [None])[0]
    if pick is not None:  # the finalists' mean over seeds: what a retraining should land near
        out["finalists_mean"], out["finalists_sd"] = pick["mean"], pick["sd"]
    return {"search": out}


def load_data(cfg, log=print):
    """The export's splits (its seed fixes the split, whatever the training seed), checked against its HyperModel."""
    from search.runtime import import_tensorflow

    import_tensorflow()
    from search.data import sources
    from search.models import check_hypermodel

    splits = sources.load_splits(cfg.data, cfg.seed)
    check_hypermodel(cfg, splits.input_shape, splits.num_classes)
    return splits


def fit_once(
    cfg,
    splits,
    *,
    seed: int,
    epochs: int,
    full_data: bool = False,
    log_dir: Path | None = None,
    strategy=None,
    pool=None,
    verbose: int = 0,
    log=print,
) -> dict:
    """Train `cfg`'s configuration once at `seed`: initial weights, augmentation stream and shuffling.

    With validation data: early stopping as exported, best weights restored. `full_data`:
    training and validation images together, for exactly `epochs` epochs (nothing to stop
    on). `pool` (a `search.engine.pool.ModelPool`): train in an already compiled model of the same
    graph when it holds one. Returns the model, HyperModel, history and metrics.
    """
    import keras
    import keras_tuner as kt

    from search.data import sources
    from search.engine.tensorboard import EpochCurves
    from search.models import build_hypermodel

    keras.utils.set_random_seed(seed)
    cache_dir = cfg.run_dir / layout.DATA_CACHE_DIR  # the search's cache, when it ran on this machine's disk
    train_ds, val_ds, test_ds = sources.to_datasets(
        splits, cfg.data.batch_size, seed, cache_dir, log, full_data=full_data
    )
    hypermodel = build_hypermodel(cfg, splits.input_shape, splits.num_classes, seed=seed)
    hp = kt.HyperParameters()
    if strategy is not None:
        with strategy.scope():
            model = hypermodel.build(hp)
    else:
        model = hypermodel.build(hp)
    if pool is not None and hasattr(hypermodel, "graph_key"):
        model = pool.adopt(hypermodel.graph_key(hp), model)
    callbacks = []
    if not full_data:
        es = cfg.early_stopping
        callbacks.append(
            keras.callbacks.EarlyStopping(
                es.monitor, min_delta=es.min_delta, patience=es.patience, restore_best_weights=True
            )
        )
    if log_dir is not None:
        callbacks.append(EpochCurves(log_dir))
    start = time.perf_counter()
    history = hypermodel.fit(
        hp, model, train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False
    )
    seconds = time.perf_counter() - start
    as_floats = lambda d: {k: float(v) for k, v in d.items()}  # noqa: E731
    val_metrics = None if full_data else as_floats(model.evaluate(val_ds, return_dict=True, verbose=0))
    test_metrics = as_floats(model.evaluate(test_ds, return_dict=True, verbose=0))
    return {
        "model": model,
        "hypermodel": hypermodel,
        "hp": hp,
        "history": history,
        "validation": val_metrics,
        "test": test_metrics,
        "epochs_run": len(history.epoch),
        "seconds": seconds,
        "test_ds": test_ds,
    }


def _command(export, output_dir, epochs, seed, full_data, quantize, overrides) -> str:
    parts = ["ktsearch", "train", str(export)]
    parts += [f"--set={o}" for o in overrides or []]
    for flag, value in (("-o", output_dir), ("--epochs", epochs), ("--seed", seed)):
        if value is not None:
            parts += [flag, str(value)]
    parts += ["--full-data"] * full_data + ["--quantize"] * quantize
    return shlex.join(parts)


def train(
    export,
    output_dir=None,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    full_data: bool = False,
    quantize: bool = False,
    serving: bool = True,
    overrides: list[str] | None = None,
    overwrite: bool = False,
    verbose: int = 2,
    log=print,
    hypermodel=None,
) -> dict:
    """Train from an export file (or dict); returns the metrics also written to metrics.json.

    Args:
        export: path to an export YAML (``ktsearch export`` output or ``configs/seed_recipe.yaml``).
        output_dir: where model.keras, the serving files, metrics.json, model_card.md and
            TensorBoard logs go (default ``<results_dir>/<name>/train``).
        epochs: override ``training.epochs``.
        seed: training seed (initial weights, augmentation, shuffling; default the export's
            ``seed``). The split always follows the export's ``seed``.
        full_data: train on the training and validation images together for the exported
            epochs: no early stopping, no validation metrics, the test split still held out.
        quantize: also write a dynamic-range quantised TFLite model.
        serving: write the SavedModel and TFLite file(s) (and check them).
        overrides: ``--set KEY=VALUE`` items (``distribution.strategy=mirrored``).
        overwrite: replace an earlier model and its files there.
        verbose: Keras fit verbosity (0 silent, 2 one line per epoch).
        hypermodel: the model function or `keras_tuner.HyperModel` the search ran, for an export whose
            `hypermodel.name` cannot be imported (one defined in a script's `__main__` or a notebook).
    """
    if hypermodel is not None:
        from search.models import use_hypermodel

        use_hypermodel(hypermodel)
    cfg = load_export(export, overrides)
    for flag, name, value, least in (("--epochs", "epochs", epochs, 1), ("--seed", "seed", seed, 0)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise UserError(arg(flag, name), "", f"expected an integer >= {least}, got {value!r}")
    if quantize and not serving:
        raise UserError(
            arg("--quantize", "quantize=True"),
            "",
            f"writes a TFLite file, which {arg('--no-serving', 'serving=False')} turns off; drop one of the two",
        )
    out = _output_dir(cfg, output_dir, overwrite)
    splits = load_data(cfg, log if verbose else (lambda line: None))
    from search.runtime import strategy as make_strategy

    strategy = make_strategy(cfg, log if verbose else (lambda line: None))
    out.mkdir(parents=True, exist_ok=True)
    n_epochs = epochs or cfg.training.epochs
    seed = cfg.seed if seed is None else seed
    result = fit_once(
        cfg,
        splits,
        seed=seed,
        epochs=n_epochs,
        full_data=full_data,
        log_dir=out / layout.TENSORBOARD_DIR,
        strategy=strategy,
        verbose=verbose,
        log=log if verbose else (lambda line: None),
    )
    inference = result["hypermodel"].inference_model(result["model"])
    inference.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    partial = out / f".{MODEL_FILE}.partial.keras"  # Keras wants the extension; renamed when complete
    inference.save(partial)
    partial.replace(out / MODEL_FILE)
    sizes = splits.sizes()
    metrics = {
        "validation": result["validation"],
        "test": result["test"],
        "epochs_requested": n_epochs,
        "epochs_run": result["epochs_run"],
        "seed": seed,
        "hyperparameters": result["hp"].values,
        **({} if full_data else _search_comparison(cfg, result["validation"])),
        "model": {
            "file": MODEL_FILE,
            "input_shape": list(splits.input_shape),
            "pixel_range": [0, 255],
            "class_names": splits.class_names,
        },
        "data": {
            **sizes,
            "trained_on": ["train", "validation"] if full_data else ["train"],
            "training_images": sizes["train"] + sizes["validation"] if full_data else sizes["train"],
            "early_stopping_on": None if full_data else "validation",
            "held_out": "test",
        },
        "distribution": None
        if strategy is None
        else {"strategy": "mirrored", "replicas": strategy.num_replicas_in_sync},
        "history": {k: [float(v) for v in vs] for k, vs in result["history"].history.items()},
        "train_seconds": result["seconds"],
        "export": str(export) if not isinstance(export, dict) else "<dict>",
        "command": _command(export, output_dir, epochs, seed, full_data, quantize, overrides),
    }
    if any(not math.isfinite(v) for v in metrics["test"].values()):
        metrics["warning"] = "non-finite test metrics: training diverged"
    if serving:
        metrics["serving"] = _serving(inference, out, quantize, result["test_ds"], log)
    layout.write_json(out / METRICS_FILE, metrics)
    from search.production.card import model_card

    layout.atomic_write(out / CARD_FILE, model_card(cfg, metrics))
    return metrics | {"output_dir": str(out)}


def _serving(inference, out: Path, quantize: bool, test_ds, log) -> dict:
    """Write and check the serving files; a conversion that fails is reported, the Keras model is kept."""
    from search.production import serving

    try:
        names = serving.write(inference, out, quantize)
        return serving.check(inference, out, names, test_ds)
    except Exception as e:  # a layer TFLite's built-in ops cannot express, a SavedModel tracing failure
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        log(f"warning: serving files not written ({reason}); {MODEL_FILE} is saved")
        return {"error": reason}
