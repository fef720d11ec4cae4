"""`ResNetHyperModel`: a small residual network."""

from __future__ import annotations

import keras
from keras import layers

from hypermodels.base import BACKBONE, ImageHyperModel
from hypermodels.blocks import backbone_input, classifier, conv_unit, unit_options
from hypermodels.dimensions import RESNET_MODEL


class ResNetHyperModel(ImageHyperModel):
    """Stem conv, stages of residual blocks (resolution halves, filters double), global pooling.

    Each block is two conv units (BatchNorm placed as searched) plus a shortcut
    (a strided 1x1 conv when the shape changes), added before the block's output.

    Example:
        >>> hm = ResNetHyperModel((32, 32, 3), 10, {"model": {"stages": {"min": 2, "max": 3}}})
        >>> model = hm.build(keras_tuner.HyperParameters())
    """

    model_space = RESNET_MODEL

    def build_backbone(self, values) -> keras.Model:
        inputs, x = backbone_input(self.input_shape)
        unit = unit_options(values)
        x = conv_unit(x, values["model.filters"], name="stem", **unit)
        for stage in range(values["model.stages"]):
            filters = values["model.filters"] * 2**stage
            for block in range(values["model.blocks_per_stage"]):
                downsample = stage > 0 and block == 0 and min(x.shape[1], x.shape[2]) >= 2
                x = self._block(x, filters, 2 if downsample else 1, f"stage{stage + 1}_block{block + 1}", unit)
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        outputs = classifier(x, self.num_classes, values["model.dropout"])
        return keras.Model(inputs, outputs, name=BACKBONE)

    @staticmethod
    def _block(x, filters, strides, name, unit):
        shortcut = x
        if strides != 1 or x.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, strides=strides, name=f"{name}_shortcut")(x)
        y = conv_unit(x, filters, strides=strides, name=f"{name}_1", **unit)
        y = conv_unit(y, filters, name=f"{name}_2", **unit)
        return layers.Add(name=f"{name}_add")([shortcut, y])
