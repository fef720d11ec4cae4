"""HyperModels used by tests through `hypermodel.name: tests.fixtures:Class` (PYTHONPATH=repo root)."""

import keras

from hypermodels.cnn import CNNHyperModel
from hypermodels.dimensions import CNN_MODEL
from hypermodels.notation import Spec


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


class ReplicaProbeCNN(CNNHyperModel):
    """The CNN, appending to $KTSEARCH_PROBE one JSON line per trial: how its model is distributed."""

    def fit(self, hp, model, *args, **kwargs):
        import json
        import os

        variable = model.trainable_variables[0].value
        record = {
            "replicas": model.distribute_strategy.num_replicas_in_sync,
            "variable": type(variable).__name__,
            "devices": sorted(v.device for v in getattr(variable, "values", [variable])),
        }
        with open(os.environ["KTSEARCH_PROBE"], "a") as f:
            f.write(json.dumps(record) + "\n")
        return super().fit(hp, model, *args, **kwargs)
