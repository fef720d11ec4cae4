"""HyperModels used by tests through `hypermodel.name: tests.fixtures:Class` (PYTHONPATH=repo root)."""

import keras

from hypermodels.cnn import CNNHyperModel
from hypermodels.space import Spec
from hypermodels.spaces import CNN_MODEL


class PoisonedCNN(CNNHyperModel):
    """The CNN, plus `model.poison`: when true, the predictions are multiplied by NaN so the loss diverges."""

    model_space = {**CNN_MODEL, "poison": Spec("bool", False, off=False, doc="make this trial diverge")}

    def build_backbone(self, values):
        backbone = super().build_backbone(values)
        if not values["model.poison"]:
            return backbone
        inputs = keras.Input(shape=self.input_shape)
        poisoned = keras.layers.Rescaling(float("nan"), name="poison")(backbone(inputs))
        return keras.Model(inputs, poisoned, name="backbone")
