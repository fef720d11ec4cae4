"""HyperModels for ktsearch: search dimensions as constructor arguments, `build(hp)` reads `hp`.

In a plain KerasTuner `build_model(hp)`, ktsearch's dimensions are three helpers (`hypermodels.helpers`,
docs/in-your-script.md): `augmentation(hp, ...)`, `lr_schedule(hp, ...)` and `conv_bn_act(x, filters, hp, ...)`.

Importing this package is cheap; the Keras classes and the helpers load on first access.
"""

from hypermodels.dimensions import SearchSpace
from hypermodels.notation import Choice, Fixed, Range, Spec
from hypermodels.registry import register, resolve
from hypermodels.schedules import LRSchedule

_LAZY = {
    "ImageHyperModel": "hypermodels.base",
    "CNNHyperModel": "hypermodels.cnn",
    "ResNetHyperModel": "hypermodels.resnet",
    "RandomAffine": "hypermodels.augment",
    "augmentation": "hypermodels.helpers",
    "lr_schedule": "hypermodels.helpers",
    "conv_bn_act": "hypermodels.helpers",
    "EpochSchedule": "hypermodels.helpers",
}

__all__ = ["register", "resolve", "LRSchedule", "SearchSpace", "Spec", "Fixed", "Range", "Choice", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hypermodels' has no attribute {name!r}")
