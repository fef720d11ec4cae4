"""`CNNHyperModel`: the classic conv stack (conv blocks, BatchNorm, pooling, dense head)."""

from __future__ import annotations

import keras
from keras import layers

from hypermodels.base import BACKBONE, ImageHyperModel
from hypermodels.blocks import backbone_input, classifier, conv_unit, unit_options
from hypermodels.dimensions import CNN_MODEL


class CNNHyperModel(ImageHyperModel):
    """Conv blocks (two 3x3 convs + 2x2 max-pool, filters doubling), dense head, softmax.

    Example:
        >>> hm = CNNHyperModel((28, 28, 1), 10, {
        ...     "augmentation": {"rotation_range": {"min": 0, "max": 30}},
        ...     "batchnorm": {"placement": {"choice": ["none", "after_activation"]}},
        ... }, lr_horizon=9)
        >>> tuner = keras_tuner.Hyperband(hm, objective="val_accuracy", max_epochs=9)
    """

    model_space = CNN_MODEL

    def build_backbone(self, values) -> keras.Model:
        inputs, x = backbone_input(self.input_shape)
        unit = unit_options(values)
        for block in range(values["model.conv_blocks"]):
            filters = values["model.filters"] * 2**block
            x = conv_unit(x, filters, name=f"block{block + 1}a", **unit)
            x = conv_unit(x, filters, name=f"block{block + 1}b", **unit)
            if min(x.shape[1], x.shape[2]) >= 2:  # small inputs (8x8 digits) run out of pixels to pool
                x = layers.MaxPooling2D(2, name=f"block{block + 1}_pool")(x)
        x = layers.Flatten(name="flatten")(x)
        if values["model.dropout"]:
            x = layers.Dropout(values["model.dropout"], name="dense_dropout")(x)
        x = layers.Dense(values["model.dense_units"], activation=values["model.activation"], name="dense")(x)
        outputs = classifier(x, self.num_classes, values["model.dropout"])
        return keras.Model(inputs, outputs, name=BACKBONE)
