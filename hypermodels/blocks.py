"""Building blocks shared by the HyperModels: conv units with BatchNorm placement."""

from __future__ import annotations

import keras
from keras import layers


def unit_options(values: dict) -> dict:
    """The `conv_unit` keyword arguments a trial's values select."""
    return {
        "placement": values["batchnorm.placement"],
        "activation": values["model.activation"],
        "momentum": values["batchnorm.momentum"],
    }


def conv_unit(x, filters: int, *, placement: str, activation: str, momentum: float, name: str, strides: int = 1):
    """3x3 conv + activation, with BatchNorm where `placement` says.

    * ``before_activation``: Conv (no bias: BN's beta replaces it) -> BN -> activation
    * ``after_activation``: Conv -> activation -> BN
    * ``none``: Conv -> activation
    """
    use_bias = placement != "before_activation"
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=use_bias, name=f"{name}_conv")(x)
    if placement == "before_activation":
        x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    x = layers.Activation(activation, name=f"{name}_act")(x)
    if placement == "after_activation":
        x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return x


def backbone_input(input_shape):
    """Input of 0-255 pixels, rescaled to [0, 1] inside the model (so the saved model takes raw pixels)."""
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def classifier(x, num_classes: int, dropout: float):
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name="classifier")(x)
