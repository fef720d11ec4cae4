"""Building blocks shared by the HyperModels: conv units with BatchNorm placement."""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="ktsearch")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras's BatchNormalization, trained through TensorFlow's fused kernel.

    Keras 3 computes a training-mode BatchNorm from separate ops (moments, then the
    normalisation), and its gradient likewise; TensorFlow's FusedBatchNormV3 does each in
    one kernel. Same weights, config and results as the parent class (the moving variance
    is updated with the biased batch variance, as Keras does); on 2 CPU cores an epoch of
    the default CNN with BatchNorm takes about 1.3 s instead of 1.75 s. Inference, and
    every case the fused kernel does not cover (not 4-D channels-last float32, masks,
    renorm, synchronized, another backend), run the parent's code. `plain_keras` turns a
    model's fused layers back into Keras's own class for saving.
    """

    def _fusable(self, inputs, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (3, -1)
            and inputs.dtype == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones((channels,), inputs.dtype)
        offset = self.beta if self.center else tf.zeros((channels,), inputs.dtype)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The kernel returns the unbiased (n - 1) variance for the running average; Keras uses the biased one.
        n = tf.cast(tf.size(inputs) // channels, variance.dtype)
        variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


def plain_keras(model: keras.Model) -> keras.Model:
    """A copy of `model`, same weights, with every `FusedBatchNormalization` as Keras's own class.

    The saved production model then holds built-in layers only and loads with
    ``keras.saving.load_model`` without ktsearch installed.
    """

    def clone(layer):
        cls = layers.BatchNormalization if isinstance(layer, FusedBatchNormalization) else type(layer)
        return cls.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def unit_options(values: dict) -> dict:
    """The `conv_unit` keyword arguments a trial's values select."""
    return {
        "placement": values["batchnorm.placement"],
        "activation": values["model.activation"],
        "momentum": values["batchnorm.momentum"],
    }


def conv_unit(
    x,
    filters: int,
    *,
    placement: str,
    activation: str,
    momentum: float,
    name: str | None,
    strides: int = 1,
    kernel_size: int = 3,
):
    """Conv (3x3 unless told) + activation, with BatchNorm where `placement` says (`name`: the layers'
    prefix; None: Keras names them).

    * ``before_activation``: Conv (no bias: BN's beta replaces it) -> BN -> activation
    * ``after_activation``: Conv -> activation -> BN
    * ``none``: Conv -> activation
    """

    def named(part: str) -> str | None:
        return None if name is None else f"{name}_{part}"

    use_bias = placement != "before_activation"
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=use_bias, name=named("conv"))(x)
    if placement == "before_activation":
        x = FusedBatchNormalization(momentum=momentum, name=named("bn"))(x)
    x = layers.Activation(activation, name=named("act"))(x)
    if placement == "after_activation":
        x = FusedBatchNormalization(momentum=momentum, name=named("bn"))(x)
    return x


def backbone_input(input_shape):
    """Input of 0-255 pixels, rescaled to [0, 1] inside the model (so the saved model takes raw pixels)."""
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def classifier(x, num_classes: int, dropout: float):
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    # float32 whatever the dtype policy: a softmax in float16/bfloat16 loses the small probabilities.
    return layers.Dense(num_classes, activation="softmax", name="classifier", dtype="float32")(x)
