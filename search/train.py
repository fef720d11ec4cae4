"""`train`: a production run from an exported (or hand-written) fixed configuration.

Builds the model through the same `HyperModel.build(hp)` path the search used,
trains with the same LR schedule and early stopping, evaluates on the held-out
test split and saves an inference model without augmentation.
"""

from __future__ import annotations

import math
from pathlib import Path

from search import runs
from search.config import load_export
from search.errors import UserError

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"


def _output_dir(cfg, output_dir, overwrite: bool) -> Path:
    out = Path(output_dir) if output_dir is not None else cfg.run_dir / runs.TRAIN_DIR
    existing = [f for f in (MODEL_FILE, METRICS_FILE) if (out / f).exists()]
    if existing and not overwrite:
        raise UserError(
            str(out), "", f"already holds {', '.join(existing)}; pass --overwrite to replace them or -o DIR"
        )
    if out.exists() and not out.is_dir():
        raise UserError(str(out), "", "exists and is not a directory")
    return out


def _search_comparison(cfg, val_metrics: dict) -> dict:
    prov = cfg.provenance
    objective = prov.get("objective")
    if objective is None or prov.get("score") is None:
        return {}
    own = val_metrics.get(objective.removeprefix("val_")) if objective.startswith("val_") else None
    drift = None if own is None else own - prov["score"]
    return {
        "search": {
            "objective": objective,
            "trial_id": prov.get("trial_id"),
            "score": prov["score"],
            "this_run": own,
            "drift": drift,
        }
    }


def train(export, output_dir=None, *, epochs: int | None = None, overwrite: bool = False, verbose: int = 2) -> dict:
    """Train from an export file (or dict); returns the metrics also written to metrics.json.

    Args:
        export: path to an export YAML (``ktsearch export`` output or ``configs/seed_recipe.yaml``).
        output_dir: where model.keras, metrics.json and TensorBoard logs go
            (default ``<results_dir>/<name>/train``).
        epochs: override ``training.epochs``.
        overwrite: replace an earlier model.keras / metrics.json there.
        verbose: Keras fit verbosity (0 silent, 2 one line per epoch).
    """
    cfg = load_export(export)
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise UserError("--epochs", "", f"expected an integer >= 1, got {epochs!r}")
    out = _output_dir(cfg, output_dir, overwrite)

    from search.runtime import import_tensorflow

    import_tensorflow()
    from search import data
    from search.models import build_hypermodel, check_hypermodel
    from search.tensorboard import EpochCurves

    seed = cfg.seed
    splits = data.load_splits(cfg.data, seed)
    check_hypermodel(cfg, splits.input_shape, splits.num_classes)
    out.mkdir(parents=True, exist_ok=True)

    import keras
    import keras_tuner as kt

    keras.utils.set_random_seed(seed)
    log = print if verbose else (lambda line: None)
    cache_dir = cfg.run_dir / runs.DATA_CACHE_DIR  # the search's cache, when it ran on this machine's disk
    train_ds, val_ds, test_ds = data.to_datasets(splits, cfg.data.batch_size, seed, cache_dir, log)
    hypermodel = build_hypermodel(cfg, splits.input_shape, splits.num_classes)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    es = cfg.early_stopping
    callbacks = [
        keras.callbacks.EarlyStopping(
            es.monitor, min_delta=es.min_delta, patience=es.patience, restore_best_weights=True
        ),
        EpochCurves(out / runs.TENSORBOARD_DIR),
    ]
    n_epochs = epochs or cfg.training.epochs
    history = hypermodel.fit(
        hp,
        model,
        train_ds,
        validation_data=val_ds,
        epochs=n_epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    )
    val_metrics = model.evaluate(val_ds, return_dict=True, verbose=0)
    test_metrics = model.evaluate(test_ds, return_dict=True, verbose=0)

    inference = hypermodel.inference_model(model)
    inference.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    inference.save(out / MODEL_FILE)
    metrics = {
        "validation": {k: float(v) for k, v in val_metrics.items()},
        "test": {k: float(v) for k, v in test_metrics.items()},
        "epochs_requested": n_epochs,
        "epochs_run": len(history.epoch),
        "hyperparameters": hp.values,
        **_search_comparison(cfg, {k: float(v) for k, v in val_metrics.items()}),
        "model": {
            "file": MODEL_FILE,
            "input_shape": list(splits.input_shape),
            "pixel_range": [0, 255],
            "class_names": splits.class_names,
        },
        "data": splits.sizes(),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "export": str(export) if not isinstance(export, dict) else "<dict>",
    }
    if any(not math.isfinite(v) for v in metrics["test"].values()):
        metrics["warning"] = "non-finite test metrics: training diverged"
    runs.write_json(out / METRICS_FILE, metrics)
    return metrics | {"output_dir": str(out)}
