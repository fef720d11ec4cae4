"""BatchNorm placement builds what it says, in both built-in HyperModels."""

import keras
import keras_tuner as kt
import pytest

from hypermodels.cnn import CNNHyperModel
from hypermodels.resnet import ResNetHyperModel

EXPECTED = {
    "before_activation": ["Conv2D", "BatchNormalization", "Activation"],
    "after_activation": ["Conv2D", "Activation", "BatchNormalization"],
    "none": ["Conv2D", "Activation"],
}


def _units(backbone: keras.Model) -> dict[str, list]:
    """Layers grouped by conv unit (name prefix before _conv/_bn/_act), in graph order."""
    units: dict[str, list] = {}
    for layer in backbone.layers:
        prefix, _, suffix = layer.name.rpartition("_")
        if suffix in ("conv", "bn", "act"):
            units.setdefault(prefix, []).append(layer)
    return units


@pytest.mark.parametrize("cls", [CNNHyperModel, ResNetHyperModel])
@pytest.mark.parametrize("placement", list(EXPECTED))
def test_layer_order(cls, placement):
    hm = cls((16, 16, 1), 10, {"batchnorm": {"placement": placement}, "model": {"filters": 4}})
    model = hm.build(kt.HyperParameters())
    units = _units(hm.inference_model(model))
    assert len(units) >= 4
    for name, layers in units.items():
        assert [type(layer).__name__ for layer in layers] == EXPECTED[placement], name
        conv = layers[0]
        # Before-activation BN makes the conv bias redundant (BN's beta replaces it).
        assert conv.use_bias == (placement != "before_activation")
    # Graph order, not just the layer list: each unit's layers feed one another.
    for layers in units.values():
        for upstream, downstream in zip(layers, layers[1:], strict=False):
            assert downstream.input is upstream.output


def test_placement_is_searchable():
    hm = CNNHyperModel(
        (8, 8, 1), 10, {"batchnorm": {"placement": {"choice": ["none", "before_activation", "after_activation"]}}}
    )
    hp = kt.HyperParameters()
    hm.build(hp)
    (param,) = [p for p in hp.space if p.name == "batchnorm.placement"]
    assert param.values == ["none", "before_activation", "after_activation"]
    hp.values["batchnorm.placement"] = "after_activation"
    bns = [
        layer for layer in hm.inference_model(hm.build(hp)).layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(bns) == 4


def test_fused_batchnorm_trains_exactly_as_keras_batchnorm():
    import numpy as np
    import tensorflow as tf

    from hypermodels.blocks import FusedBatchNormalization

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(1.0, 3.0, (8, 6, 5, 3)).astype("float32"))
    weights = tf.constant(rng.normal(size=(8, 6, 5, 3)).astype("float32"))
    layers = [FusedBatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)]
    for layer in layers:
        layer.build(x.shape)
        layer.gamma.assign([0.5, 1.5, 2.0])
        layer.beta.assign([0.1, -0.2, 0.3])
    results = []
    for layer in layers:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance, layer(x, training=False)])
    for fused, plain in zip(*results, strict=True):
        np.testing.assert_allclose(np.array(fused), np.array(plain), rtol=1e-4, atol=1e-4)
    # and the fused kernel is what ran (otherwise both sides would be Keras's own code)
    graph = tf.function(lambda t: layers[0](t, training=True)).get_concrete_function(x).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
    assert not np.allclose(np.array(results[0][-2]), 1.0)  # the moving variance did move


def test_saved_backbone_holds_only_built_in_layers_with_the_same_weights():
    import numpy as np

    from hypermodels.blocks import FusedBatchNormalization

    hm = CNNHyperModel((8, 8, 1), 10, {"batchnorm": {"placement": "before_activation"}, "model": {"filters": 4}})
    model = hm.build(kt.HyperParameters())
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.get_layer("backbone").layers)
    inference = hm.inference_model(model)
    assert {type(layer).__module__.split(".")[0] for layer in inference.layers} == {"keras"}
    x = np.random.default_rng(1).uniform(0, 255, (4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), inference.predict(x, verbose=0), rtol=1e-5)
