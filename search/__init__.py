"""ktsearch: KerasTuner search over augmentation, BatchNorm placement and LR schedules.

Python API (each accepts a config path or dict)::

    from search import tune, finalize, export_best, train
    summary = tune("configs/mnist5k.yaml", ["tuner.max_epochs=3"])
    finalists = finalize("results/mnist5k-cnn", top=3, seeds=3)
    path = export_best("results/mnist5k-cnn")  # the finalists' pick
    metrics = train(path, full_data=True, quantize=True)

`register_hypermodel` adds a HyperModel class usable by name in YAML. Every error ktsearch
raises on purpose is a `KtsearchError` (`UserError`: bad input; `SearchStopped`: the search
ended early).
Importing this package does not import TensorFlow.
"""

from hypermodels.registry import register as register_hypermodel
from search.config import Config, ExportConfig, SearchConfig, load_config, load_export
from search.errors import KtsearchError, SearchStopped, UserError
from search.export import export_best


def tune(*args, **kwargs):
    """Run or resume a search; see `search.tuning.tune`."""
    from search.tuning import tune as _tune

    return _tune(*args, **kwargs)


def finalize(*args, **kwargs):
    """Retrain a run's top configurations with several seeds; see `search.finalize.finalize`."""
    from search.finalize import finalize as _finalize

    return _finalize(*args, **kwargs)


def train(*args, **kwargs):
    """Train from an export; see `search.train.train`."""
    from search.train import train as _train

    return _train(*args, **kwargs)


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
]
