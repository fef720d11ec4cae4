"""Name -> HyperModel class, resolvable without importing TensorFlow for built-ins.

Config validation needs a HyperModel's architecture dimensions and logged
metrics before TensorFlow is imported; built-ins declare them here as data.
Users add their own classes with `register` (from their tuning script) or name
them in YAML as ``package.module:ClassName``. A name may also point at a KerasTuner user's
`build_model(hp)` function or `keras_tuner.HyperModel` (`hypermodels.wrapped`): its
`model_space` is open (`USER_MODEL`), its dimensions found as it builds.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from hypermodels.dimensions import CNN_MODEL, DEFAULT_METRICS, RESNET_MODEL, TRANSFER_MODEL, USER_MODEL
from hypermodels.notation import Spec

_BUILTIN = {
    "cnn": ("hypermodels.cnn", "CNNHyperModel", CNN_MODEL),
    "resnet": ("hypermodels.resnet", "ResNetHyperModel", RESNET_MODEL),
    "transfer": ("hypermodels.transfer", "TransferHyperModel", TRANSFER_MODEL),
}
_REGISTERED: dict[str, type] = {}


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


def import_name(obj: Any) -> str:
    """`module:qualname` of a function or class (`module:` the instance's class for an instance)."""
    target = obj if callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return f"{target.__module__}:{target.__qualname__}"


def importable(name: str) -> str | None:
    """None when a later process can import `name` again, else why not (one line)."""
    module, _, attr = name.partition(":")
    if module == "__main__" or "<" in attr:
        where = "a script's __main__ or a notebook" if module == "__main__" else "a function's body"
        return (
            f"{name} is defined in {where}, so another process cannot import it; move it into a module, "
            "or pass it from Python (search.train(export, hypermodel=...))"
        )
    return None


def search_folders(folder: str | os.PathLike | None) -> None:
    """Let `module:attr` names import from the config's folder and the working directory, as `python` would."""
    for path in (os.getcwd(), None if folder is None else str(Path(folder).resolve())):
        if path is not None and path not in sys.path:
            sys.path.insert(0, path)


def _import_class(name: str) -> Any:
    module_name, _, attr = name.partition(":")
    problem = importable(name)
    if problem:  # a script's or a notebook's own: no other process can import it
        raise UnknownHyperModel(problem)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownHyperModel(
            f"cannot import module '{module_name}': {e} (looked in the config's folder, the working directory "
            "and sys.path)"
        ) from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UnknownHyperModel(f"module '{module_name}' has no '{attr}'")
        obj = getattr(obj, part)
    return obj


def resolve(name: str) -> Any:
    """The HyperModel class for `name`, or a user's model function / `keras_tuner.HyperModel` (imports TensorFlow)."""
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


def is_user(name: str) -> bool:
    """Whether `name` is a user's model function or `keras_tuner.HyperModel` (imports it, and TensorFlow, for a
    `module:attr` or registered name only; False for a built-in or an unknown one)."""
    if name not in _REGISTERED and ":" not in name:
        return False
    from hypermodels.wrapped import is_user_model

    return is_user_model(resolve(name))


def model_space(name: str) -> dict[str, Spec]:
    """Architecture dimensions of HyperModel `name` (no TensorFlow for built-ins; `USER_MODEL` for a user's)."""
    if is_user(name):
        return USER_MODEL
    found = None if name in _BUILTIN else resolve(name)
    if found is not None and not isinstance(found, type):
        raise UnknownHyperModel(
            f"'{name}' is a value of type {type(found).__name__}; expected a HyperModel class, a function hp -> keras.Model or a keras_tuner.HyperModel"
        )
    return _attribute(name, "model_space", lambda entry: entry[2]) or {}


def logged_metrics(name: str) -> tuple[str, ...]:
    """Training metrics the model logs; validation adds `val_` versions."""
    return tuple(_attribute(name, "logged_metrics", lambda entry: DEFAULT_METRICS) or DEFAULT_METRICS)
