"""FusedAdam / FusedSGD train exactly as Keras's Adam / SGD, through TensorFlow's fused kernels."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hypermodels.base import make_optimizer
from hypermodels.optimizers import FusedAdam, FusedSGD

CASES = [
    (FusedAdam, keras.optimizers.Adam, {"learning_rate": 0.01}, "ResourceApplyAdam"),
    (FusedSGD, keras.optimizers.SGD, {"learning_rate": 0.05, "momentum": 0.9}, "ResourceApplyKerasMomentum"),
    (
        FusedSGD,
        keras.optimizers.SGD,
        {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
        "ResourceApplyKerasMomentum",
    ),
    (FusedSGD, keras.optimizers.SGD, {"learning_rate": 0.05}, "ResourceApplyGradientDescent"),
]


def _model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize(("fused", "plain", "kwargs", "kernel"), CASES)
def test_fused_optimizer_trains_as_keras_does(fused, plain, kwargs, kernel):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.integers(0, 3, 64)
    weights, losses = [], []
    for cls in (fused, plain):
        model = _model(seed=3)
        model.compile(optimizer=cls(**kwargs), loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0)
        weights.append(model.get_weights() + [v.numpy() for v in model.optimizer.variables])
        losses.append(history.history["loss"])
    assert losses[0][-1] < losses[0][0]  # it trained
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # and the fused kernel is what ran (otherwise both sides would be Keras's own update)
    model = _model(seed=3)
    optimizer = fused(**kwargs)
    optimizer.build(model.trainable_variables)
    grads = [tf.ones_like(v) for v in model.trainable_variables]
    step = tf.function(lambda: optimizer.apply(grads, model.trainable_variables))
    ops = {op.type for op in step.get_concrete_function().graph.get_operations()}
    assert kernel in ops


def test_amsgrad_falls_back_to_keras_update():
    model = _model(seed=1)
    optimizer = FusedAdam(0.01, amsgrad=True)
    optimizer.build(model.trainable_variables)
    grads = [tf.ones_like(v) for v in model.trainable_variables]
    graph = tf.function(lambda: optimizer.apply(grads, model.trainable_variables)).get_concrete_function().graph
    assert "ResourceApplyAdam" not in {op.type for op in graph.get_operations()}


def test_search_optimizers_are_the_fused_ones_and_save_with_a_model(tmp_path):
    assert type(make_optimizer("adam", 0.01)) is FusedAdam
    sgd = make_optimizer("sgd", 0.01)
    assert type(sgd) is FusedSGD and sgd.momentum == 0.9
    model = _model(seed=2)
    model.compile(optimizer=make_optimizer("adam", 0.003), loss="mse")
    model.fit(np.ones((8, 6)), np.zeros((8, 3)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is FusedAdam
    assert loaded.optimizer.learning_rate.numpy() == pytest.approx(0.003)
