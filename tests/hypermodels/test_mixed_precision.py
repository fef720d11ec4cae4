"""`hypermodel.mixed_precision`: Keras's dtype policies, applied per model, output in float32; on CPU in bfloat16."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest

from hypermodels import ImageHyperModel
from hypermodels.blocks import backbone_input
from hypermodels.cnn import CNNHyperModel

SPACE = {
    "augmentation": {"rotation_range": 10, "zoom_range": 0.1},
    "batchnorm": {"placement": "before_activation"},
    "model": {"filters": 8, "conv_blocks": 1, "dense_units": 16},
}


def _build(policy, cls=CNNHyperModel):
    hm = cls((8, 8, 1), 10, SPACE if cls is CNNHyperModel else None, mixed_precision=policy)
    return hm.build(kt.HyperParameters())


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_the_policy_is_applied_to_every_layer_and_the_output_is_float32(policy):
    model = _build(policy)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was
    backbone = model.get_layer("backbone")
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.dtype_policy.name == policy for layer in convs)
    assert model.get_layer("augmentation").dtype_policy.name == policy
    assert all(v.dtype == "float32" for v in model.weights)  # variables stay float32
    assert model.output.dtype == "float32" and backbone.get_layer("classifier").compute_dtype == "float32"
    loss_scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert loss_scaled == (policy == "mixed_float16")  # Keras scales the loss for float16 only


def test_without_a_policy_nothing_changes():
    model = _build(None)
    assert all(layer.dtype_policy.name == "float32" for layer in model.get_layer("backbone").layers)
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


class LowPrecisionOutput(ImageHyperModel):
    """A user's backbone whose last layer follows the policy: ktsearch adds the float32 cast."""

    def build_backbone(self, values):
        inputs, x = backbone_input(self.input_shape)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(self.num_classes, activation="softmax")(x), name="backbone")


def test_a_users_low_precision_output_is_cast_to_float32():
    model = _build("mixed_bfloat16", LowPrecisionOutput)
    assert model.get_layer("backbone").output.dtype == "bfloat16"
    assert model.output.dtype == "float32" and model.layers[-1].name == "float32_output"


def test_training_in_bfloat16_learns_on_cpu_as_float32_does():
    from search.config import DataConfig
    from search.data.sources import load_splits, to_datasets

    splits = load_splits(DataConfig(source="digits"), seed=1)
    space = {**SPACE, "schedule": {"initial_lr": 0.005}}
    accuracy = {}
    for policy in (None, "mixed_bfloat16"):
        train, val, _ = to_datasets(splits, 64, seed=1)
        hm = CNNHyperModel(splits.input_shape, splits.num_classes, space, mixed_precision=policy, seed=1)
        hp = kt.HyperParameters()
        keras.utils.set_random_seed(1)
        history = hm.fit(hp, hm.build(hp), train, validation_data=val, epochs=5, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        accuracy[policy] = history.history["val_accuracy"][-1]
    assert accuracy["mixed_bfloat16"] > 0.6  # ten classes: chance is 0.1
    assert abs(accuracy["mixed_bfloat16"] - accuracy[None]) < 0.1, accuracy


@pytest.mark.slow
def test_a_search_and_train_run_in_bfloat16_and_the_model_loads_in_plain_keras(tmp_path):
    from search import export_best, train, tune

    config = {
        "name": "bf16",
        "results_dir": str(tmp_path / "results"),
        "data": {"source": "digits", "max_examples": 600},
        "hypermodel": {"name": "cnn", "mixed_precision": "mixed_bfloat16"},
        "search_space": {**SPACE, "schedule": {"initial_lr": {"min": 1e-3, "max": 1e-2, "sampling": "log"}}},
        "tuner": {"max_epochs": 2, "factor": 2},
    }
    summary = tune(config, log=lambda line: None)
    assert any(t["status"] == "COMPLETED" for t in summary["trials"])
    metrics = train(export_best(tmp_path / "results" / "bf16"), verbose=0)
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    saved = tmp_path / "results" / "bf16" / "train" / "model.keras"
    code = (
        "import json, sys, keras, numpy as np\n"
        "m = keras.saving.load_model(sys.argv[1])\n"
        "p = m.predict(np.zeros((2, 8, 8, 1), 'float32'), verbose=0)\n"
        "policies = sorted({l.dtype_policy.name for l in m.layers if isinstance(l, keras.layers.Conv2D)})\n"
        "print(json.dumps([str(p.dtype), float(p.sum()), policies, 'search' in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dtype, total, policies, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert dtype == "float32" and abs(total - 2.0) < 1e-3
    assert policies == ["mixed_bfloat16"] and not imported
