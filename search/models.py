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
    if registry.is_user(hm.name):  # a KerasTuner user's function or HyperModel, wrapped
        import copy

        from hypermodels.wrapped import UserHyperModel
        from search.data.sources import label_form

        return UserHyperModel(
            cls,
            input_shape,
            num_classes,
            copy.deepcopy(cfg.space),  # its builds add the model's dimensions; the config stays as given
            label_form=label_form(cfg.data),
            optimizer=hm.optimizer,
            steps_per_execution=1 if mirrored else hm.steps_per_execution,
            lr_horizon=cfg.lr_horizon,
            seed=cfg.seed if seed is None else seed,
            mixed_precision=hm.mixed_precision,
        )
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


def user_model(cfg: Config):
    """The wrapped user's model of `cfg` as a build at default values sees it (no data: placeholder images),
    for `validate` and `plan`: its space (the model's own dimensions included) and what it makes of ktsearch's."""
    return build_hypermodel(cfg, (8, 8, 1), 2)


def user_notes(cfg: Config, hypermodel) -> list[str]:
    """Warnings on a user's model: searched dimensions it has no use for, YAML names its build never declares."""
    from hypermodels.notation import Fixed
    from hypermodels.wrapped import INITIAL_LR

    where = str(cfg.source)
    out = [
        f"{where}: search_space.{name}: has no effect on {cfg.hypermodel.name}: {why}"
        for name, why in hypermodel.unused().items()
    ]
    given = cfg.space.dims.get(INITIAL_LR)
    if hypermodel.compiles and given is not None and given != Fixed(1e-3):  # set in the YAML
        out.append(
            f"{where}: search_space.{INITIAL_LR}: has no effect on {cfg.hypermodel.name}: the model compiles its own "
            "optimizer, whose learning rate starts the schedule"
        )
    if hypermodel.compiles and cfg.hypermodel.optimizer != "adam":
        out.append(
            f"{where}: hypermodel.optimizer: has no effect on {cfg.hypermodel.name}: the model compiles its own optimizer"
        )
    declared = set(hypermodel.probed)
    for name in cfg.space.user_names():
        if name not in declared:
            out.append(
                f"{where}: search_space.model.{name}: a build at default values never declares it (a typo, or a name "
                "that exists only for other values)"
            )
    return out


def check_hypermodel(cfg: Config, input_shape, num_classes: int, sample=None):
    """What only the data or the network can tell, before anything is written: the HyperModel accepts
    these images (a user's model: and its compile fits these labels, given `sample` = (images, labels
    as fed)), and its pretrained weights can be had (`prepare`: the `transfer` HyperModel fetches or
    loads them once). UserError naming the key otherwise; returns the HyperModel built."""
    try:
        hypermodel = build_hypermodel(cfg, input_shape, num_classes)
        check = getattr(hypermodel, "check", None)
        if check is not None:  # a user's model: one build at default values, on these images
            check(sample)
    except ValueError as e:  # the images do not fit the HyperModel (a user's: nor its compile the labels)
        from hypermodels import registry

        key = "hypermodel.name" if registry.is_user(cfg.hypermodel.name) else "data"
        raise UserError(str(cfg.source), key, str(e)) from None
    prepare = getattr(hypermodel, "prepare", None)
    if prepare is not None:
        try:
            prepare()
        except ValueError as e:
            given = "hypermodel.weights" in getattr(cfg, "overrides", {})
            where = "--set hypermodel.weights" if given else str(cfg.source)
            raise UserError(where, "hypermodel.weights", str(e)) from None
    return hypermodel


def use_hypermodel(obj) -> str:
    """The import name `tune(hypermodel=obj)` records; `obj` is what that name resolves to in this process."""
    from hypermodels import registry
    from search.errors import arg
    from search.runtime import import_tensorflow

    import_tensorflow()
    from hypermodels.base import ImageHyperModel
    from hypermodels.wrapped import is_user_model

    if not (is_user_model(obj) or (isinstance(obj, type) and issubclass(obj, ImageHyperModel))):
        raise UserError(
            arg("--hypermodel", "hypermodel"),
            "",
            f"expected a function hp -> keras.Model, a keras_tuner.HyperModel or a ktsearch HyperModel class, got {obj!r}",
        )
    name = registry.import_name(obj)
    registry.register(name, obj)  # resolved to `obj` itself in this process, found without importing
    return name
