"""`TransferHyperModel`: a pretrained `keras.applications` backbone, frozen, then partly fine-tuned.

Follows Keras's transfer-learning guide: the backbone is called with ``training=False``, so its
BatchNorm layers stay in inference mode (their moving statistics never change) whether the
backbone is frozen or not; the head (pooling, an optional dense layer, dropout, the classifier)
trains from the start. Each family's own preprocessing is inside the model, so the saved model
takes 0-255 pixels: MobileNetV3 and EfficientNetV2 rescale themselves
(``include_preprocessing=True``), ResNet50V2 gets a `Rescaling` layer to [-1, 1].

With `weights: null` there is nothing pretrained: the whole backbone trains from scratch, its
BatchNorm in training mode, and the fine-tuning dimensions below have no effect.

The fine-tuning policy is a function of the absolute epoch, like the learning-rate schedule: for
epochs below `model.freeze_epochs` only the head trains; from then on the top
`model.unfreeze_fraction` of the backbone's layers train too (BatchNorm layers excepted) and the
learning rate is multiplied by `model.finetune_lr_factor`. `FineTunePhase` sets the phase at the
start of every epoch and recompiles when it changes (a fresh optimizer, as the guide does), so a
Hyperband continuation that starts at a later epoch resumes in the right phase, and a model
reused from the compiled-model pool is put back in the phase its trial starts in.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
from keras import layers

from hypermodels.base import BACKBONE, ImageHyperModel
from hypermodels.blocks import classifier
from hypermodels.dimensions import TRANSFER_FAMILIES, TRANSFER_MODEL


def base_of(backbone: keras.Model) -> keras.Model:
    """The keras.applications model inside the backbone."""
    return next(layer for layer in backbone.layers if isinstance(layer, keras.Model))


POLICY_DIMS = ("model.freeze_epochs", "model.unfreeze_fraction", "model.finetune_lr_factor")


class WeightsError(ValueError):
    """Pretrained weights that cannot be had or do not fit."""


def check_input(input_shape, families) -> str | None:
    """Why these images cannot go through these families, or None."""
    height, width, channels = input_shape
    if channels != 3:
        return f"pretrained backbones take RGB images (3 channels), got {channels}; set data.color_mode: rgb"
    for family in families:
        smallest = TRANSFER_FAMILIES[family][1]
        if min(height, width) < smallest:
            return (
                f"{family} takes images of at least {smallest}x{smallest}, got {height}x{width}; raise data.image_size"
            )
    return None


def pretrained(family: str, input_shape, weights: str | None) -> keras.Model:
    """The family's convolutional base (no top), with `weights`: "imagenet", None, or a `.weights.h5` file."""
    cls = getattr(keras.applications, TRANSFER_FAMILIES[family][0])
    options = {"include_preprocessing": True} if family != "resnet50_v2" else {}
    base = cls(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=tuple(input_shape),
        **options,
    )
    if weights not in (None, "imagenet"):
        with warnings.catch_warnings(record=True) as caught:  # Keras skips parts that do not match, and warns
            warnings.simplefilter("always")
            base.load_weights(str(Path(weights).expanduser()))
        skipped = [str(w.message) for w in caught if str(w.message).startswith("Skipping")]
        if skipped:  # a partial load would leave layers at random weights without a word
            raise ValueError(skipped[0].splitlines()[0])
    return base


def set_phase(backbone: keras.Model, fraction: float, fine_tuning: bool) -> bool:
    """Freeze the base, or let its top `fraction` of layers train (BatchNorm excepted); True if it changed."""
    base = base_of(backbone)
    before = [w.trainable for w in base.weights]
    base.trainable = True  # per-layer flags below decide
    inner = base.layers
    first = len(inner) - round(fraction * len(inner)) if fine_tuning else len(inner)
    for i, layer in enumerate(inner):
        layer.trainable = i >= first and not isinstance(layer, layers.BatchNormalization)
    return [w.trainable for w in base.weights] != before


class FineTunePhase(keras.callbacks.Callback):
    """Puts the model in its epoch's phase (frozen or fine-tuning) and recompiles when that changes."""

    def __init__(self, hypermodel: TransferHyperModel, values: dict):
        super().__init__()
        self.hypermodel = hypermodel
        self.freeze_epochs = values["model.freeze_epochs"]
        self.fraction = values["model.unfreeze_fraction"]

    def on_epoch_begin(self, epoch, logs=None):
        fine_tuning = self.fraction > 0 and epoch >= self.freeze_epochs
        if set_phase(self.model.get_layer(BACKBONE), self.fraction, fine_tuning):
            rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            self.hypermodel.compile(self.model, rate)
            self.model.optimizer.build(self.model.trainable_variables)
            self.model.make_train_function()  # Keras's fit loop calls model.train_function afresh every step


class FineTuneSchedule:
    """The trial's LR schedule, times `finetune_lr_factor` from `freeze_epochs` on (absolute epochs)."""

    def __init__(self, schedule, freeze_epochs: int, factor: float, fine_tunes: bool):
        self.schedule, self.freeze_epochs, self.factor, self.fine_tunes = schedule, freeze_epochs, factor, fine_tunes

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        rate = self.schedule(epoch, lr)
        return rate * self.factor if self.fine_tunes and epoch >= self.freeze_epochs else rate


class TransferHyperModel(ImageHyperModel):
    """A `keras.applications` backbone (the family a search dimension) under a searched fine-tuning policy.

    Args:
        weights: "imagenet" (downloaded by Keras and cached on first use), the path of a
            `.weights.h5` file of the family's base (`include_top=False`; one family), or None:
            random initialisation, and then the whole backbone trains from the first epoch with
            its BatchNorm in training mode (there is nothing to protect), so the fine-tuning
            dimensions have no effect.
        The other arguments are `ImageHyperModel`'s.
    """

    model_space = TRANSFER_MODEL

    def __init__(self, input_shape, num_classes: int, search_space=None, *, weights: str | None = None, **kwargs):
        super().__init__(input_shape, num_classes, search_space, **kwargs)
        self.weights = weights
        problem = check_input(self.input_shape, self.families())
        if problem:
            raise ValueError(problem)

    def prepare(self) -> None:
        """Fetch or load the weights of every family once, before a search or training starts.

        Raises `WeightsError` with a one-line reason: ImageNet weights that cannot be downloaded
        (offline, no copy in ~/.keras/models) or a weights file that does not fit the family.
        """
        if not self.pretrained:
            return  # nothing to fetch or load
        for family in self.families():
            try:
                pretrained(family, self.input_shape, self.weights)
            except Exception as e:  # urllib's errors for a download, ValueError for a file that does not fit
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                if self.weights == "imagenet":
                    raise WeightsError(
                        f"could not get the ImageNet weights of {TRANSFER_FAMILIES[family][0]} ({reason}); Keras "
                        "downloads them on first use into ~/.keras/models, so this needs internet access once, "
                        "or use weights null or a local .weights.h5 file"
                    ) from None
                raise WeightsError(f"{self.weights} does not fit {family} at {self.input_shape} ({reason})") from None

    def families(self) -> list[str]:
        dim = self.space.dims["model.family"]
        return list(getattr(dim, "values", None) or [dim.value])

    def build_backbone(self, values) -> keras.Model:
        family = values["model.family"]
        inputs = keras.Input(shape=self.input_shape, name="pixels")
        x = inputs
        if family == "resnet50_v2":  # ResNetV2 expects [-1, 1]; a saveable layer, not a Lambda
            x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(x)
        base = pretrained(family, self.input_shape, self.weights)
        if not self.pretrained:  # Keras's 0.99 leaves the moving statistics near their start after a short trial
            for layer in base.layers:
                if isinstance(layer, layers.BatchNormalization):
                    layer.momentum = values["batchnorm.momentum"]
        # Pretrained: BatchNorm in inference mode, always. From scratch: nothing to protect, it trains.
        x = base(x, training=False) if self.pretrained else base(x)
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        if values["model.head_units"]:
            x = layers.Dense(values["model.head_units"], activation="relu", name="head")(x)
        backbone = keras.Model(inputs, classifier(x, self.num_classes, values["model.dropout"]), name=BACKBONE)
        if self.pretrained:
            fine_tuning = values["model.unfreeze_fraction"] > 0 and values["model.freeze_epochs"] == 0
            set_phase(backbone, values["model.unfreeze_fraction"], fine_tuning)  # the phase of epoch 0
        return backbone

    @property
    def pretrained(self) -> bool:
        """Whether the backbone starts from learned weights (then it is frozen, then fine-tuned)."""
        return self.weights is not None

    def graph_key(self, hp) -> tuple:
        """The base key without the fine-tuning policy: it decides when `FineTunePhase` recompiles, not
        what the model is, and `FineTunePhase` puts a reused model in its trial's phase."""
        augment_off, fixed = super().graph_key(hp)
        return augment_off, tuple((k, v) for k, v in fixed if k not in POLICY_DIMS)

    def schedule(self, hp):
        values = self.space.values(hp)
        fine_tunes = self.pretrained and values["model.unfreeze_fraction"] > 0
        return FineTuneSchedule(
            super().schedule(hp), values["model.freeze_epochs"], values["model.finetune_lr_factor"], fine_tunes
        )

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        """`ImageHyperModel.fit` with the fine-tuning phase set at every epoch's start, before the LR is."""
        if not self.pretrained:  # from scratch: one phase, the whole backbone trains
            return super().fit(hp, model, *args, callbacks=callbacks, **kwargs)
        phase = FineTunePhase(self, self.space.values(hp))
        return super().fit(hp, model, *args, callbacks=callbacks, first_callbacks=[phase], **kwargs)
