"""`ImageHyperModel`: the shared search/production path of every image HyperModel."""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner as kt

from hypermodels import augment
from hypermodels.blocks import plain_keras
from hypermodels.dimensions import DEFAULT_METRICS, RUNTIME_DIMS, RUNTIME_SECTIONS, SearchSpace
from hypermodels.notation import Spec
from hypermodels.optimizers import FusedAdam, FusedSGD
from hypermodels.schedules import LRSchedule

OPTIMIZERS = ("adam", "sgd", "rmsprop")
PRECISIONS = ("mixed_float16", "mixed_bfloat16")  # Keras's mixed dtype policies
BACKBONE = "backbone"
BOOKKEEPING = "tuner/"  # KerasTuner's own values (Hyperband's epochs, bracket, round, parent trial)


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Keras's optimizer of that name; Adam and SGD update through TensorFlow's fused kernels."""
    if name == "sgd":
        return FusedSGD(learning_rate, momentum=0.9)  # plain SGD barely moves in a short search
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    return FusedAdam(learning_rate)


class ImageHyperModel(kt.HyperModel):
    """Base class: augmentation, BatchNorm placement and LR schedule as search dimensions.

    Subclasses set `model_space` (their architecture dimensions) and implement
    `build_backbone(values)`, returning a `keras.Model` of built-in layers that maps
    0-255 pixels to class probabilities. `build(hp)` wraps it as
    ``pixels -> RandomAffine -> backbone``; the backbone alone is the inference model.

    Args:
        input_shape: (height, width, channels) of the images.
        num_classes: number of classes.
        search_space: nested YAML notation (``{"augmentation": {"rotation_range":
            {"min": 0, "max": 30}}}``) or a `SearchSpace`; absent dimensions take defaults.
        optimizer: "adam", "sgd" (momentum 0.9) or "rmsprop".
        lr_horizon: epochs the LR schedule spans (the tuner's max_epochs).
        seed: seed of the augmentation layer's random stream.
        steps_per_execution: batches per call into the compiled train/eval function
            (Keras's compile option): the same updates in the same order, with Keras's
            per-batch Python work (callbacks, logs) once per this many batches.
        mixed_precision: None (float32), "mixed_float16" or "mixed_bfloat16": the Keras dtype
            policy of every layer `build` creates (variables stay float32; the output is cast
            to float32; `compile` adds Keras's loss scaling for float16).
    """

    model_space: dict[str, Spec] = {}
    logged_metrics: tuple[str, ...] = DEFAULT_METRICS

    def __init__(
        self,
        input_shape,
        num_classes: int,
        search_space: dict | SearchSpace | None = None,
        *,
        optimizer: str = "adam",
        lr_horizon: int = 10,
        seed: int | None = None,
        steps_per_execution: int = 1,
        mixed_precision: str | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        if isinstance(search_space, SearchSpace):
            self.space = search_space
        else:
            self.space = SearchSpace(search_space, self.model_space)
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        self.optimizer = optimizer
        self.lr_horizon = int(lr_horizon)
        self.seed = seed
        self.steps_per_execution = int(steps_per_execution)
        if mixed_precision not in (None, *PRECISIONS):
            raise ValueError(f"mixed_precision must be None or one of {PRECISIONS}, got {mixed_precision!r}")
        self.mixed_precision = mixed_precision

    def build(self, hp) -> keras.Model:
        """The trial's model, every layer under the configured dtype policy (Keras's global one is restored)."""
        if self.mixed_precision is None:
            return self._build_model(hp)
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.mixed_precision)
        try:
            return self._build_model(hp)
        finally:
            keras.config.set_dtype_policy(previous)

    def _build_model(self, hp) -> keras.Model:
        values = self.space.declare(hp)
        inputs = keras.Input(shape=self.input_shape, name="pixels")
        x = inputs
        layer = augment.from_values(values, seed=self.seed)
        if layer is not None:
            x = layer(x)
        backbone = self.build_backbone(values)
        outputs = backbone(x)
        if self.mixed_precision is not None and backbone.output.dtype != "float32":  # a backbone of the user's
            outputs = keras.layers.Activation("linear", dtype="float32", name="float32_output")(outputs)
        model = keras.Model(inputs, outputs, name=self.name or "ktsearch_model")
        self.compile(model, values["schedule.initial_lr"])
        return model

    def compile(self, model: keras.Model, learning_rate) -> None:
        """Compile `model` with a fresh optimizer (also how a phase change of fine-tuning recompiles)."""
        model.compile(
            optimizer=make_optimizer(self.optimizer, float(learning_rate)),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            steps_per_execution=self.steps_per_execution,
        )

    def build_backbone(self, values: dict[str, Any]) -> keras.Model:
        raise NotImplementedError

    def graph_key(self, hp) -> tuple:
        """What decides the traced graph of `build(hp)`'s model; equal keys, interchangeable graphs.

        Two trials with the same key build models of the same structure whose graphs differ
        only in variable values, so a tuner may train the second in the first's compiled model
        after copying the fresh model's variables into it (`search.engine.tuners.ModelPool`). The key
        is every hyperparameter value except those in `RUNTIME_DIMS`/`RUNTIME_SECTIONS`, plus
        whether an augmentation layer is present at all. A subclass whose build reads one of
        those values into its graph (or anything else that is not a hyperparameter) must
        override this.
        """
        fixed = sorted(
            (k, v)
            for k, v in hp.values.items()
            if not (k.startswith((BOOKKEEPING, *RUNTIME_SECTIONS)) or k in RUNTIME_DIMS)
        )
        return (augment.is_identity(hp.values), tuple(fixed))  # dims switched off are absent: no augmentation

    def schedule(self, hp) -> LRSchedule:
        return LRSchedule.from_values(self.space.values(hp), self.lr_horizon)

    def fit(self, hp, model, *args, callbacks=None, first_callbacks=(), **kwargs):
        """`model.fit` with the trial's LR schedule (a function of the absolute epoch).

        `first_callbacks` run before the scheduler (a subclass's callback that recompiles the
        model must, so that the scheduler sets the new optimizer's rate).
        """
        # The scheduler goes early so the learning rate is in the epoch logs that later callbacks see.
        schedule = keras.callbacks.LearningRateScheduler(self.schedule(hp))
        callbacks = [*first_callbacks, schedule, keras.callbacks.TerminateOnNaN(), *(callbacks or [])]
        return model.fit(*args, callbacks=callbacks, **kwargs)

    @staticmethod
    def inference_model(model: keras.Model) -> keras.Model:
        """The model without augmentation, as a copy of built-in Keras layers only (same weights)."""
        return plain_keras(model.get_layer(BACKBONE))
