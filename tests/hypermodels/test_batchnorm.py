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
