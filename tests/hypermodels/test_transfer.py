"""The `transfer` HyperModel: keras.applications backbones, frozen then partly fine-tuned, on real training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from hypermodels.base import BACKBONE
from hypermodels.transfer import TransferHyperModel, WeightsError, base_of
from search.engine.pool import ModelPool

SHAPE = (32, 32, 3)


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 60, (n, *SHAPE)).astype("float32")
    x[np.arange(n), :, :, y] += 150  # the class is in the colour: learnable
    return x, y


def _ds(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A weights file of MobileNetV3Small's base, as a user's pretrained one would be (offline: random)."""
    from hypermodels.transfer import pretrained

    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small.weights.h5"
    keras.utils.set_random_seed(0)
    pretrained("mobilenet_v3_small", SHAPE, None).save_weights(path)
    return str(path)


def _hm(weights, **model):
    space = {"model": {"family": "mobilenet_v3_small", "freeze_epochs": 1, "unfreeze_fraction": 0.3, **model}}
    return TransferHyperModel(SHAPE, 3, space, weights=weights, lr_horizon=4, seed=0, steps_per_execution=2)


def _hp(hm, **values):
    hp = kt.HyperParameters()
    hm.build(hp)  # declares the space
    hp.values.update(values)
    return hp


def _base_weights(model):
    return [v.numpy() for v in base_of(model.get_layer(BACKBONE)).weights]


def _moving_stats(model):
    base = base_of(model.get_layer(BACKBONE))
    return [v.numpy() for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)]  # fmt: skip


def test_frozen_then_the_top_fraction_fine_tunes_with_the_lr_factor_and_batchnorm_in_inference_mode(weights):
    hm = _hm(weights, finetune_lr_factor=0.1)
    hp = _hp(hm)
    keras.utils.set_random_seed(1)
    model = hm.build(hp)
    before, stats = _base_weights(model), _moving_stats(model)
    snapshots, rates = [], []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(_base_weights(self.model))
            rates.append(logs["learning_rate"])

    hm.fit(hp, model, _ds(*_data()), epochs=3, verbose=0, callbacks=[Watch()])
    assert all(np.array_equal(a, b) for a, b in zip(before, snapshots[0], strict=True))  # epoch 0: frozen
    changed = [not np.array_equal(a, b) for a, b in zip(before, snapshots[-1], strict=True)]
    base = base_of(model.get_layer(BACKBONE))
    trainable = [w.trainable for w in base.weights]
    assert any(changed) and not any(c and not t for c, t in zip(changed, trainable, strict=True))
    assert sum(trainable) < len(trainable) / 2  # the top 30% of the layers, BatchNorm excepted
    assert not any(w.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)
                   for w in layer.weights)  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(stats, _moving_stats(model), strict=True))
    np.testing.assert_allclose(rates, [1e-3, 1e-4, 1e-4], rtol=1e-5)


def test_a_continuation_starts_in_the_phase_of_its_first_epoch(weights):
    hm = _hm(weights, freeze_epochs=2)
    hp = _hp(hm)
    model = hm.build(hp)
    assert not any(w.trainable for w in base_of(model.get_layer(BACKBONE)).weights)  # built for epoch 0
    hm.fit(hp, model, _ds(*_data()), initial_epoch=2, epochs=3, verbose=0)  # a Hyperband round from epoch 2
    assert any(w.trainable for w in base_of(model.get_layer(BACKBONE)).weights)


def test_a_reused_model_trains_exactly_as_a_fresh_one_through_the_phase_change(weights):
    hm = _hm(weights)
    first = _hp(hm, **{"model.freeze_epochs": 0, "model.unfreeze_fraction": 0.5})  # ends fine-tuning
    second = _hp(hm, **{"model.freeze_epochs": 1, "model.unfreeze_fraction": 0.2, "schedule.initial_lr": 0.002})
    assert hm.graph_key(first) == hm.graph_key(second)  # the policy is not part of the graph key
    x, y = _data()

    def train(model, hp):
        return hm.fit(hp, model, _ds(x, y), validation_data=_ds(*_data(48, 1)), epochs=3, verbose=0).history

    pool = ModelPool(size=2)
    keras.utils.set_random_seed(11)
    kept = pool.adopt(hm.graph_key(first), hm.build(first))
    train(kept, first)
    keras.utils.set_random_seed(12)
    reused = pool.adopt(hm.graph_key(second), hm.build(second))
    assert reused is kept and pool.reused == 1
    history = train(reused, second)
    keras.utils.set_random_seed(12)
    fresh = hm.build(second)
    reference = train(fresh, second)
    for metric, values in reference.items():
        np.testing.assert_allclose(history[metric], values, rtol=1e-5, err_msg=metric)
    for a, b in zip(fresh.variables, reused.variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["mobilenet_v3_small", "efficientnet_v2_b0", "resnet50_v2"])
def test_each_family_saves_a_model_of_0_255_pixels_that_loads_in_plain_keras(tmp_path, family):
    hm = TransferHyperModel(SHAPE, 3, {"model": {"family": family, "head_units": 16}})
    model = hm.build(kt.HyperParameters())
    inference = hm.inference_model(model)
    x = _data(4)[0]
    expected = inference.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    inference.save(path)
    code = (
        "import json, sys, keras, numpy as np\n"
        "m = keras.saving.load_model(sys.argv[1])\n"
        "x = np.load(sys.argv[2], allow_pickle=False)\n"
        "print(json.dumps([m.predict(x, verbose=0).tolist(), 'search' in sys.modules or 'hypermodels' in sys.modules,"
        " [type(l).__name__ for l in m.layers]]))\n"
    )
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "x.npy")], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    predictions, imported, kinds = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(predictions, expected, rtol=1e-4, atol=1e-5)
    assert not imported and "Lambda" not in kinds
    if family == "resnet50_v2":
        assert "Rescaling" in kinds  # [-1, 1] inside the model


def test_a_weights_file_is_loaded_into_the_backbone(weights):
    from hypermodels.transfer import pretrained

    source = pretrained("mobilenet_v3_small", SHAPE, weights)
    hm = TransferHyperModel(SHAPE, 3, {"model": {"family": "mobilenet_v3_small"}}, weights=weights)
    hm.prepare()
    keras.utils.set_random_seed(99)  # another seed: only the file can make the weights equal
    model = hm.build(kt.HyperParameters())
    for a, b in zip(source.weights, base_of(model.get_layer(BACKBONE)).weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    wrong = TransferHyperModel(SHAPE, 3, {"model": {"family": "resnet50_v2"}}, weights=weights)
    with pytest.raises(WeightsError, match="does not fit resnet50_v2"):
        wrong.prepare()


def test_imagenet_weights_offline_are_one_clear_error(tmp_path):
    """No network (a proxy that refuses) and an empty Keras cache: the reason, not a traceback."""
    code = (
        "from hypermodels.transfer import TransferHyperModel, WeightsError\n"
        "hm = TransferHyperModel((32, 32, 3), 3, {'model': {'family': 'mobilenet_v3_small'}}, weights='imagenet')\n"
        "try:\n    hm.prepare()\nexcept WeightsError as e:\n    print('ERROR', e)\n"
    )
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("ERROR could not get the ImageNet weights of MobileNetV3Small"), proc.stdout + proc.stderr
    assert "internet access" in line and "weights null" in line


def test_without_pretrained_weights_the_whole_backbone_trains_from_scratch():
    hm = TransferHyperModel(SHAPE, 3, {"model": {"family": "mobilenet_v3_small", "freeze_epochs": 2}}, seed=0)
    hp = kt.HyperParameters()
    model = hm.build(hp)
    base = base_of(model.get_layer(BACKBONE))
    assert all(w.trainable for layer in base.layers if isinstance(layer, keras.layers.Conv2D) for w in layer.weights)
    stats = _moving_stats(model)
    history = hm.fit(hp, model, _ds(*_data()), epochs=2, verbose=0)
    assert history.history["learning_rate"] == pytest.approx([1e-3, 1e-3])  # no fine-tuning factor
    assert not all(np.array_equal(a, b) for a, b in zip(stats, _moving_stats(model), strict=True))  # BN trains


def test_images_the_backbones_cannot_take_are_refused():
    with pytest.raises(ValueError, match="3 channels"):
        TransferHyperModel((32, 32, 1), 3)
    with pytest.raises(ValueError, match="at least 32x32"):
        TransferHyperModel((28, 28, 3), 3)
