"""ktsearch's dimensions as `hp` helpers, for any KerasTuner `build_model(hp)` (docs/in-your-script.md).

    def build_model(hp):
        inputs = keras.Input((28, 28, 1))
        x = hypermodels.augmentation(hp, rotation_range=(0, 30), zoom_range=0.1)(inputs)
        x = hypermodels.conv_bn_act(x, 32, hp)
        ...
        schedule = hypermodels.lr_schedule(hp, steps_per_epoch=110, epochs=10)
        model.compile(keras.optimizers.Adam(schedule), ...)

Each declares its dimensions on `hp` under the names and domains ktsearch's configs use
(`augmentation.rotation_range`, `batchnorm.placement`, `schedule.kind`, ...), so a space searched in a
plain script reads the same in ktsearch's reports and HParams view, and returns the Keras object to use.
An argument takes the notation of a ktsearch config in Python form: a tuple `(min, max)` is a range, a
list a choice, a scalar a fixed value, a dict the YAML notation (`{"min": 1e-4, "max": 1e-2, "sampling":
"log"}`), None switches an optional dimension off. An argument left out searches the default search's
range (`dimensions.SCRIPT_DEFAULTS`). A value outside a dimension's domain is a `SpaceError` (a
`KtsearchError` and a `ValueError`) naming it. Usable with any KerasTuner tuner: `kt.Hyperband`,
`kt.RandomSearch`, `kt.BayesianOptimization`, `search.BOHB`, `search.ASHA`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import keras
from keras import layers, ops

from hypermodels import augment, private_api
from hypermodels.blocks import conv_unit
from hypermodels.dimensions import AUGMENTATION, BATCHNORM, SCRIPT_DEFAULTS, SearchSpace, condition_of, schedule_specs
from hypermodels.notation import SpaceError
from hypermodels.schedules import LRSchedule

_OMITTED = object()  # an argument the call left out: the default search's range


def _notation(value: Any) -> Any:
    """A Python argument in a config's YAML notation: (min, max) -> range, [..] -> choice, the rest as is."""
    if isinstance(value, tuple):
        return {"min": value[0], "max": value[1]}
    if isinstance(value, list):
        return {"choice": value}
    return value


def _space(helper: str, section: str, given: dict[str, Any], allowed: dict) -> SearchSpace:
    """The SearchSpace of one section: the call's arguments over the default search's, checked."""
    for key, value in given.items():
        if isinstance(value, tuple) and len(value) != 2:
            raise SpaceError(f"{helper}({key}=...)", f"expected a (min, max) pair, got {value!r}")
    raw = {k: _notation(v) for k, v in given.items() if v is not _OMITTED}
    defaults = SCRIPT_DEFAULTS.get(section, {})
    if section == "schedule":
        kind = raw.get("kind", defaults["kind"])
        kinds = kind["choice"] if isinstance(kind, dict) and "choice" in kind else [kind]
        # A conditional default only where its kind can be drawn: `kind="cosine"` takes no drop_epoch.
        defaults = {
            k: v for k, v in defaults.items() if condition_of(f"schedule.{k}") in (None, *kinds) and k in allowed
        }
    raw = {**{k: v for k, v in defaults.items() if k in allowed}, **raw}
    try:
        return SearchSpace({section: raw}, {})
    except SpaceError as e:
        raise SpaceError(f"{helper}: {e.key}", e.message) from None


def augmentation(
    hp,
    rotation_range=_OMITTED,
    width_shift_range=_OMITTED,
    height_shift_range=_OMITTED,
    shear_range=_OMITTED,
    zoom_range=_OMITTED,
    horizontal_flip=_OMITTED,
    vertical_flip=_OMITTED,
    fill_mode=_OMITTED,
    cval=_OMITTED,
    seed: int | None = None,
) -> keras.layers.Layer:
    """Declare the augmentation dimensions (`augmentation.*`, ImageDataGenerator's names and units) on `hp`;
    return the layer for this trial's values: `RandomAffine` (ktsearch's fused affine augmentation, active
    in training only), or `keras.layers.Identity` when every strength is 0.

    Defaults (an argument left out): rotation 0-30°, shifts 0-0.2, shear 0-20°, zoom 0-0.2, no flips,
    fill_mode "nearest". `seed`: the layer's random stream (None: drawn).
    """
    given = dict(
        rotation_range=rotation_range,
        width_shift_range=width_shift_range,
        height_shift_range=height_shift_range,
        shear_range=shear_range,
        zoom_range=zoom_range,
        horizontal_flip=horizontal_flip,
        vertical_flip=vertical_flip,
        fill_mode=fill_mode,
        cval=cval,
    )
    space = _space("hypermodels.augmentation", "augmentation", given, AUGMENTATION)
    layer = augment.from_values(space.declare(hp, ("augmentation",)), seed=seed)  # None: every strength is 0
    return layers.Identity(name="augmentation") if layer is None else layer


def conv_bn_act(
    x,
    filters: int,
    hp,
    *,
    placement=_OMITTED,
    momentum=_OMITTED,
    activation: str = "relu",
    kernel_size: int = 3,
    strides: int = 1,
    name: str | None = None,
):
    """A conv unit whose BatchNorm placement is a dimension: Conv -> BN -> activation (`before_activation`),
    Conv -> activation -> BN (`after_activation`) or Conv -> activation (`none`).

    Declares `batchnorm.placement` (default: a choice of the three) and `batchnorm.momentum` (default 0.9,
    fixed) on `hp`, shared by every call in one model, as in ktsearch's own HyperModels. The BatchNorm is
    `hypermodels.blocks.FusedBatchNormalization` (Keras's, trained through TensorFlow's fused kernel;
    `blocks.plain_keras(model)` turns it back into Keras's class for a model to load without ktsearch).
    """
    for arg, value, low in (("filters", filters, 1), ("kernel_size", kernel_size, 1), ("strides", strides, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise SpaceError(f"hypermodels.conv_bn_act({arg}=...)", f"expected an integer >= {low}, got {value!r}")
    space = _space("hypermodels.conv_bn_act", "batchnorm", {"placement": placement, "momentum": momentum}, BATCHNORM)
    values = space.declare(hp, ("batchnorm",))
    return conv_unit(
        x,
        int(filters),
        placement=values["batchnorm.placement"],
        activation=activation,
        momentum=values["batchnorm.momentum"],
        name=name,
        strides=int(strides),
        kernel_size=int(kernel_size),
    )


@keras.saving.register_keras_serializable(package="ktsearch")
class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """ktsearch's learning-rate curve (`hypermodels.schedules.LRSchedule`: warmup, then constant, step,
    exponential or cosine, as a function of the absolute epoch) as a Keras `LearningRateSchedule`.

    The epoch is `start_epoch + step // steps_per_epoch`: the rate changes at epoch boundaries, as
    ktsearch's own searches apply it. `start_epoch` is 0 for a model trained from scratch; `search.BOHB`
    and `search.ASHA` set it to the epoch a continuation starts from, so the curve goes on where the parent
    left it (KerasTuner restarts the optimizer's step count in a continuation).
    """

    def __init__(
        self,
        kind: str,
        initial_lr: float,
        steps_per_epoch: int,
        horizon: int,
        warmup_epochs: int = 0,
        drop_epoch: int = 1,
        drop_factor: float = 0.1,
        decay_rate: float = 0.9,
        min_lr_ratio: float = 0.0,
        start_epoch: int = 0,
    ):
        self.curve = LRSchedule(
            kind, initial_lr, warmup_epochs, horizon, drop_epoch, drop_factor, decay_rate, min_lr_ratio
        )
        self.steps_per_epoch = int(steps_per_epoch)
        self.start_epoch = int(start_epoch)

    def epoch_rate(self, epoch):
        """The rate at (float tensor) `epoch`, as `LRSchedule.__call__` computes it for a Python int."""
        c = self.curve
        warm = c.initial_lr * (epoch + 1.0) / (c.warmup_epochs + 1.0)
        if c.kind == "constant":
            decayed = ops.full_like(epoch, c.initial_lr)
        elif c.kind == "step":
            decayed = ops.where(epoch >= c.drop_epoch, c.initial_lr * c.drop_factor, c.initial_lr)
        elif c.kind == "exponential":
            decayed = c.initial_lr * ops.power(c.decay_rate, epoch - c.warmup_epochs)
        else:
            span = float(c.horizon - c.warmup_epochs)
            progress = ops.minimum(epoch - c.warmup_epochs, span) / span
            cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
            decayed = c.initial_lr * (c.min_lr_ratio + (1.0 - c.min_lr_ratio) * cosine)
        return ops.where(epoch < c.warmup_epochs, warm, decayed)

    def __call__(self, step):
        epoch = ops.floor(ops.cast(step, "float32") / float(self.steps_per_epoch)) + float(self.start_epoch)
        return self.epoch_rate(epoch)

    def get_config(self) -> dict:
        c = self.curve
        return {
            "kind": c.kind,
            "initial_lr": c.initial_lr,
            "steps_per_epoch": self.steps_per_epoch,
            "horizon": c.horizon,
            "warmup_epochs": c.warmup_epochs,
            "drop_epoch": c.drop_epoch,
            "drop_factor": c.drop_factor,
            "decay_rate": c.decay_rate,
            "min_lr_ratio": c.min_lr_ratio,
            "start_epoch": self.start_epoch,
        }


def lr_schedule(
    hp,
    *,
    steps_per_epoch: int,
    epochs: int,
    kind=_OMITTED,
    initial_lr=_OMITTED,
    warmup_epochs=_OMITTED,
    drop_epoch=_OMITTED,
    drop_factor=_OMITTED,
    decay_rate=_OMITTED,
    min_lr_ratio=_OMITTED,
) -> EpochSchedule:
    """Declare the schedule dimensions (`schedule.*`; the kind's own parameters under KerasTuner conditional
    scopes) on `hp`; return this trial's curve as a Keras `LearningRateSchedule` to hand to any optimizer.

    `steps_per_epoch`: batches per epoch (`ceil(len(x_train) / batch_size)`); `epochs`: the horizon cosine
    decays over (the tuner's `max_epochs`). Defaults: kind any of constant/step/exponential/cosine,
    initial_lr 1e-4-1e-2 (log), warmup 0-2 epochs, drop_epoch 3-7 with drop_factor 0.1, decay_rate 0.6-0.95,
    min_lr_ratio 0. The formulas: docs/config.md (schedule).
    """
    helper = "hypermodels.lr_schedule"
    for arg, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise SpaceError(f"{helper}({arg}=...)", f"expected an integer >= 1, got {value!r}")
    given = dict(
        kind=kind,
        initial_lr=initial_lr,
        warmup_epochs=warmup_epochs,
        drop_epoch=drop_epoch,
        drop_factor=drop_factor,
        decay_rate=decay_rate,
        min_lr_ratio=min_lr_ratio,
    )
    space = _space(helper, "schedule", given, schedule_specs())
    most_warmup = space.max_value("schedule.warmup_epochs")
    if most_warmup >= epochs:
        raise SpaceError(
            f"{helper}: schedule.warmup_epochs",
            f"expected warmup epochs below epochs={epochs} (the schedule's horizon), got up to {most_warmup}",
        )
    values = space.declare(hp, ("schedule",))
    params = {name.partition(".")[2]: value for name, value in values.items()}
    return EpochSchedule(steps_per_epoch=int(steps_per_epoch), horizon=int(epochs), **params)


def continue_schedule(model, start_epoch: int) -> None:
    """Make an `EpochSchedule` on `model`'s optimizer go on from `start_epoch` (a continuation of a trial
    that trained `start_epoch` epochs; `search.BOHB` and `search.ASHA` call it)."""
    schedule = private_api.learning_rate_schedule(getattr(model, "optimizer", None))
    if isinstance(schedule, EpochSchedule):
        schedule.start_epoch = int(start_epoch)
