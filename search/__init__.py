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

ktsearch's algorithms inside a plain KerasTuner script, in place of `keras_tuner.Hyperband` (the same
arguments; docs/in-your-script.md)::

    tuner = search.BOHB(build_model, objective="val_accuracy", max_epochs=10, directory="my_dir")
    tuner = search.ASHA(build_model, objective="val_accuracy", max_epochs=10, max_trials=30)

`register_hypermodel` adds a HyperModel class usable by name in YAML. Every error ktsearch
raises on purpose is a `KtsearchError` (`UserError`: bad input; `SearchStopped`: the search
ended early; `StorageError`: a write failed for want of storage). Importing this package does
not import TensorFlow: `tune`, `finalize` and `train` import it when they run, `BOHB` and `ASHA` on first use.

The package's layout, by role (docs/development.md draws the map): `data` (sources and
streaming), `runs` (the run directory), `algorithms` (the oracles), `distributed` (chief and
workers), `engine` (the trial loop), `production` (export, finalize, train, serving files),
`analysis` (plan, report, simulate); `config`, `errors`, `units`, `runtime` and `models` under
them all, and `cli` over them.
"""

from search.config import Config, ExportConfig, SearchConfig, load_config, load_export
from search.engine.tune import tune
from search.errors import ArgumentError, KtsearchError, SearchStopped, StorageError, UserError
from search.models import register_hypermodel
from search.production.export import export_best
from search.production.finalize import finalize
from search.production.train import train

_TUNERS = ("BOHB", "ASHA")  # `search.algorithms.tuners`, imported (with KerasTuner) on first access

__all__ = [
    "tune",
    "BOHB",
    "ASHA",
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
    "ArgumentError",
]


def __getattr__(name):
    if name in _TUNERS:
        from search.algorithms import tuners

        return getattr(tuners, name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
