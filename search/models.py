"""The configured HyperModel: what `tune`, `plan`'s calibration and `train` all build from."""

from __future__ import annotations

from search.config import Config
from search.errors import UserError


def register_hypermodel(name: str, cls: type | None = None):
    """Register a HyperModel class under `name`, usable as `hypermodel: {name: NAME}` in YAML; also a
    decorator (`@register_hypermodel("tiny")`).

    The class subclasses `hypermodels.ImageHyperModel` (or accepts its constructor arguments) and may set
    `model_space` and `logged_metrics`. UserError (a `KtsearchError`) for a name that is not a plain name or
    that a built-in HyperModel has.
    """
    if cls is None:
        return lambda c: register_hypermodel(name, c)
    from hypermodels import registry

    if not isinstance(name, str) or not name or ":" in name:
        raise UserError(
            "register_hypermodel", "name", f"expected a name without ':' (module:Class is imported), got {name!r}"
        )
    if not isinstance(cls, type):
        raise UserError("register_hypermodel", "cls", f"expected a HyperModel class, got {cls!r}")
    try:
        return registry.register(name, cls)
    except ValueError as e:  # a built-in's name
        raise UserError("register_hypermodel", "name", str(e)) from None


def build_hypermodel(cfg: Config, input_shape, num_classes: int, seed: int | None = None):
    """The HyperModel `cfg` names, for images of `input_shape` in `num_classes` classes.

    `seed` (default `cfg.seed`) seeds its augmentation stream: `train --seed` and `finalize` vary it.
    """
    from hypermodels import registry

    hm = cfg.hypermodel
    cls = registry.resolve(hm.name)
    # Keras's multi-batch loop fails under MirroredStrategy (keras-team/keras#19246): one batch per call there.
    mirrored = cfg.distribution.strategy == "mirrored"
    return cls(
        input_shape,
        num_classes,
        cfg.space,
        optimizer=hm.optimizer,
        steps_per_execution=1 if mirrored else hm.steps_per_execution,
        lr_horizon=cfg.lr_horizon,
        seed=cfg.seed if seed is None else seed,
        # Only when set: a user's HyperModel written before these keys existed keeps working.
        **{key: value for key, value in (("mixed_precision", hm.mixed_precision), ("weights", hm.weights)) if value},
    )


def check_hypermodel(cfg: Config, input_shape, num_classes: int) -> None:
    """What only the data or the network can tell, before anything is written: the HyperModel accepts
    these images, and its pretrained weights can be had (`prepare`: the `transfer` HyperModel fetches
    or loads them once). UserError naming the key otherwise."""
    try:
        hypermodel = build_hypermodel(cfg, input_shape, num_classes)
    except ValueError as e:  # the images do not fit the HyperModel
        raise UserError(str(cfg.source), "data", str(e)) from None
    prepare = getattr(hypermodel, "prepare", None)
    if prepare is not None:
        try:
            prepare()
        except ValueError as e:
            given = "hypermodel.weights" in getattr(cfg, "overrides", {})
            where = "--set hypermodel.weights" if given else str(cfg.source)
            raise UserError(where, "hypermodel.weights", str(e)) from None
