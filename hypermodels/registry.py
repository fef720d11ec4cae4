"""Name -> HyperModel class, resolvable without importing TensorFlow for built-ins.

Config validation needs a HyperModel's architecture dimensions and logged
metrics before TensorFlow is imported; built-ins declare them here as data.
Users add their own classes with `register` (from their tuning script) or name
them in YAML as ``package.module:ClassName``.
"""

from __future__ import annotations

import importlib
from typing import Any

from hypermodels.dimensions import CNN_MODEL, RESNET_MODEL, TRANSFER_MODEL
from hypermodels.notation import Spec

_BUILTIN = {
    "cnn": ("hypermodels.cnn", "CNNHyperModel", CNN_MODEL),
    "resnet": ("hypermodels.resnet", "ResNetHyperModel", RESNET_MODEL),
    "transfer": ("hypermodels.transfer", "TransferHyperModel", TRANSFER_MODEL),
}
_REGISTERED: dict[str, type] = {}
DEFAULT_METRICS = ("loss", "accuracy")


class UnknownHyperModel(LookupError):
    pass


def register(name: str, cls: type | None = None):
    """Register a HyperModel class under `name` (usable as a decorator).

    The class must subclass `hypermodels.base.ImageHyperModel` (or accept the same
    constructor arguments) and may set `model_space` and `logged_metrics`.

    Example:
        >>> @register("tiny")
        ... class Tiny(ImageHyperModel): ...
    """
    if cls is None:
        return lambda c: register(name, c)
    if name in _BUILTIN:
        raise ValueError(f"'{name}' is a built-in HyperModel name; choose another")
    _REGISTERED[name] = cls
    return cls


def names() -> list[str]:
    return [*_BUILTIN, *_REGISTERED]


def _import_class(name: str) -> type:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownHyperModel(f"cannot import module '{module_name}': {e}") from None
    if not hasattr(module, attr):
        raise UnknownHyperModel(f"module '{module_name}' has no class '{attr}'")
    return getattr(module, attr)


def resolve(name: str) -> type:
    """The HyperModel class for `name` (imports TensorFlow)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        module, attr, _ = _BUILTIN[name]
        return getattr(importlib.import_module(module), attr)
    if ":" in name:
        return _import_class(name)
    from hypermodels.notation import did_you_mean

    raise UnknownHyperModel(
        f"expected one of {', '.join(names())} or 'module:Class', got {name!r}{did_you_mean(name, names())}"
    )


def _attribute(name: str, attr: str, builtin: Any) -> Any:
    if name in _BUILTIN:
        return builtin(_BUILTIN[name])
    return getattr(resolve(name), attr, None)


def model_space(name: str) -> dict[str, Spec]:
    """Architecture dimensions of HyperModel `name` (no TensorFlow for built-ins)."""
    return _attribute(name, "model_space", lambda entry: entry[2]) or {}


def logged_metrics(name: str) -> tuple[str, ...]:
    """Training metrics the model logs; validation adds `val_` versions."""
    return tuple(_attribute(name, "logged_metrics", lambda entry: DEFAULT_METRICS) or DEFAULT_METRICS)
