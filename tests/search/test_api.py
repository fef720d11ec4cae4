"""The Python API on a dict config with a user-registered HyperModel (in-process, real training)."""

import json
import sys

import keras
import pytest

from hypermodels import ImageHyperModel, Spec
from hypermodels.blocks import backbone_input, classifier
from search import UserError, export_best, register_hypermodel, train, tune

pytestmark = pytest.mark.slow


class TinyDense(ImageHyperModel):
    """A user's own HyperModel: a dense net with one searchable width."""

    model_space = {"units": Spec("int", 16, low=1, high=512)}

    def build_backbone(self, values):
        inputs, x = backbone_input(self.input_shape)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(values["model.units"], activation="relu")(x)
        return keras.Model(inputs, classifier(x, self.num_classes, 0.0), name="backbone")


register_hypermodel("tiny-dense", TinyDense)
sys.modules.setdefault("user_models", sys.modules[__name__])  # importable as user_models:TinyDense


@pytest.mark.parametrize("hypermodel", ["tiny-dense", "user_models:TinyDense"])
def test_tune_export_train_from_python(tmp_path, hypermodel):
    lines = []
    config = {
        "name": "api",
        "results_dir": str(tmp_path / "results"),
        "data": {"source": "digits", "max_examples": 1000},
        "hypermodel": {"name": hypermodel},
        "search_space": {
            "model": {"units": {"choice": [8, 32]}},
            "augmentation": {"rotation_range": {"min": 0, "max": 10}},
            "schedule": {"initial_lr": 0.01},
        },
        "tuner": {"algorithm": "random", "max_trials": 2, "max_epochs": 2},
    }
    summary = tune(config, log=lines.append)
    assert len(summary["trials"]) == 2 and summary["best_trial"] is not None
    assert all(t["hyperparameters"]["model.units"] in (8, 32) for t in summary["trials"])
    assert all(t["epochs_granted"] == 2 for t in summary["trials"])
    assert any(line.startswith("trial ") for line in lines)

    path = export_best(tmp_path / "results" / "api")
    metrics = train(path, tmp_path / "prod", epochs=15, verbose=0)
    best = next(t for t in summary["trials"] if t["trial_id"] == summary["best_trial"])
    assert metrics["hyperparameters"]["model.units"] == best["hyperparameters"]["model.units"]
    assert json.loads((tmp_path / "prod" / "metrics.json").read_text())["test"]["accuracy"] > 0.5


def test_api_raises_user_error_on_bad_config(tmp_path):
    with pytest.raises(UserError, match="tuner.max_epochs"):
        tune({"name": "x", "results_dir": str(tmp_path), "tuner": {"max_epochs": -1}})
    assert not any(tmp_path.iterdir())
