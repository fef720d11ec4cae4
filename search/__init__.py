"""ktsearch: KerasTuner search over augmentation, BatchNorm placement and LR schedules.

Python API (each accepts a config path or dict)::

    from search import tune, finalize, export_best, train
    summary = tune("configs/mnist5k.yaml", ["tuner.max_epochs=3"])
    finalists = finalize("results/mnist5k-cnn", top=3, seeds=3)
    path = export_best("results/mnist5k-cnn")  # the finalists' pick
    metrics = train(path, full_data=True, quantize=True)

A KerasTuner script's own model function (or `keras_tuner.HyperModel`) and arrays, as they are
(docs/keras-tuner.md)::

    summary = tune({"tuner": {"max_epochs": 9}}, hypermodel=build_model,
                   data={"train": (x_train, y_train), "validation": (x_val, y_val)})

`register_hypermodel` adds a HyperModel class usable by name in YAML. Every error ktsearch
raises on purpose is a `KtsearchError` (`UserError`: bad input; `SearchStopped`: the search
ended early; `StorageError`: a write failed for want of storage). Importing this package does
not import TensorFlow: `tune`, `finalize` and `train` import it when they run.

The package's layout, by role (docs/development.md draws the map): `data` (sources and
streaming), `runs` (the run directory), `algorithms` (the oracles), `distributed` (chief and
workers), `engine` (the trial loop), `production` (export, finalize, train, serving files),
`analysis` (plan, report, simulate); `config`, `errors`, `units`, `runtime` and `models` under
them all, and `cli` over them.
"""

from search.config import Config, ExportConfig, SearchConfig, load_config, load_export
from search.engine.tune import tune
from search.errors import KtsearchError, SearchStopped, StorageError, UserError
from search.models import register_hypermodel
from search.production.export import export_best
from search.production.finalize import finalize
from search.production.train import train

__all__ = [
    "tune",
    "finalize",
    "export_best",
    "train",
    "register_hypermodel",
    "load_config",
    "load_export",
    "Config",
    "SearchConfig",
    "ExportConfig",
    "KtsearchError",
    "UserError",
    "SearchStopped",
    "StorageError",
]
