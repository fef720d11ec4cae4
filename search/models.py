"""The configured HyperModel: what `tune`, `plan`'s calibration and `train` all build from."""

from __future__ import annotations

from search.config import Config, SearchConfig


def build_hypermodel(cfg: Config, input_shape, num_classes: int):
    """The HyperModel `cfg` names, for images of `input_shape` in `num_classes` classes."""
    from hypermodels import registry

    hm = cfg.hypermodel
    cls = registry.resolve(hm.name)
    # Keras's multi-batch loop fails under MirroredStrategy (keras-team/keras#19246): one batch per call there.
    mirrored = isinstance(cfg, SearchConfig) and cfg.distribution.strategy == "mirrored"
    return cls(
        input_shape,
        num_classes,
        cfg.space,
        optimizer=hm.optimizer,
        steps_per_execution=1 if mirrored else hm.steps_per_execution,
        lr_horizon=cfg.lr_horizon,
        seed=cfg.seed,
        mixed_precision=hm.mixed_precision,
    )
