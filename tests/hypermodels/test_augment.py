"""RandomAffine: ImageDataGenerator's vocabulary, one warp, identity at inference."""

import keras
import keras_tuner as kt
import numpy as np
import pytest
from keras import ops

from hypermodels.augment import RandomAffine, compose_transforms
from hypermodels.cnn import CNNHyperModel

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (4, 9, 11, 2)).astype("float32")  # odd, non-square: catches axis mix-ups


def _params(batch=4, **kw):
    base = {
        "rotation": 0.0,
        "shear": 0.0,
        "width_shift": 0.0,
        "height_shift": 0.0,
        "zoom_x": 1.0,
        "zoom_y": 1.0,
        "flip_x": 1.0,
        "flip_y": 1.0,
    }
    base.update(kw)
    return {k: ops.full((batch,), v) for k, v in base.items()}


def _warp(images, fill_mode="nearest", interpolation="nearest", **kw):
    t = compose_transforms(_params(len(images), **kw), images.shape[1], images.shape[2])
    return ops.convert_to_numpy(ops.image.affine_transform(images, t, interpolation=interpolation, fill_mode=fill_mode))


def test_identity_parameters_give_the_image_back():
    np.testing.assert_allclose(_warp(IMAGES), IMAGES)


def test_flips_are_exact_mirrors():
    np.testing.assert_allclose(_warp(IMAGES, flip_x=-1.0), IMAGES[:, :, ::-1])
    np.testing.assert_allclose(_warp(IMAGES, flip_y=-1.0), IMAGES[:, ::-1, :])


def test_rotation_by_180_degrees_is_a_double_flip():
    np.testing.assert_allclose(_warp(IMAGES, rotation=180.0), IMAGES[:, ::-1, ::-1], atol=1e-3)


def test_width_shift_moves_columns_by_the_fraction_of_width():
    square = RNG.uniform(0, 255, (1, 10, 10, 1)).astype("float32")
    shifted = _warp(square, fill_mode="constant", width_shift=0.2)  # 2 of 10 pixels
    np.testing.assert_allclose(shifted[:, :, 2:], square[:, :, :-2])
    assert (shifted[:, :, :2] == 0).all()
    down = _warp(square, fill_mode="constant", height_shift=0.3)
    np.testing.assert_allclose(down[:, 3:, :], square[:, :-3, :])


def test_the_composed_warp_equals_the_transforms_applied_one_after_another():
    """Flip, then rotate 90 degrees: one warp must equal two separate ones (exact for these angles)."""
    square = RNG.uniform(0, 255, (2, 8, 8, 1)).astype("float32")
    composed = _warp(square, rotation=90.0, flip_x=-1.0)
    sequential = _warp(_warp(square, rotation=90.0), flip_x=-1.0)
    np.testing.assert_allclose(composed, sequential, atol=1e-3)
    assert not np.allclose(composed, square)


def test_sampled_parameters_stay_inside_the_configured_ranges():
    layer = RandomAffine(
        rotation_range=30,
        width_shift_range=0.2,
        height_shift_range=0.1,
        shear_range=20,
        zoom_range=0.2,
        horizontal_flip=True,
        seed=3,
    )
    p = {k: ops.convert_to_numpy(v) for k, v in layer.sample(20000).items()}
    for key, limit in [("rotation", 30), ("shear", 20), ("width_shift", 0.2), ("height_shift", 0.1)]:
        assert p[key].min() >= -limit and p[key].max() <= limit
        assert p[key].min() < -0.95 * limit and p[key].max() > 0.95 * limit  # the whole range is used
    for key in ("zoom_x", "zoom_y"):
        assert 0.8 <= p[key].min() < 0.81 and 1.19 < p[key].max() <= 1.2
    assert set(np.unique(p["flip_x"])) == {-1.0, 1.0}
    assert set(np.unique(p["flip_y"])) == {1.0}  # vertical_flip off


def test_identity_at_inference_and_random_in_training():
    layer = RandomAffine(rotation_range=30, zoom_range=0.2, seed=1)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(IMAGES, training=False)), IMAGES)
    trained = ops.convert_to_numpy(layer(IMAGES, training=True))
    assert trained.shape == IMAGES.shape and not np.allclose(trained, IMAGES)


def test_ranges_are_read_at_run_time_so_one_traced_graph_serves_every_strength():
    import tensorflow as tf

    layer = RandomAffine(rotation_range=30, zoom_range=0.2, seed=1)
    step = tf.function(lambda x: layer(x, training=True))
    assert not np.allclose(step(IMAGES).numpy(), IMAGES)
    for name in ("rotation_range", "zoom_range"):
        layer._ranges[name].assign(0.0)
    assert layer.rotation_range == 0.0 and layer.get_config()["zoom_range"] == 0.0
    np.testing.assert_allclose(step(IMAGES).numpy(), IMAGES, atol=1e-4)  # the traced graph saw the new ranges
    assert step.experimental_get_tracing_count() == 1


def test_layer_serialises_and_switched_off_augmentation_adds_no_layer():
    layer = RandomAffine(rotation_range=10, fill_mode="reflect")
    clone = RandomAffine.from_config(layer.get_config())
    assert clone.rotation_range == 10 and clone.fill_mode == "reflect"
    hm = CNNHyperModel((8, 8, 1), 10, {"augmentation": {"rotation_range": None}})
    model = hm.build(kt.HyperParameters())
    assert not any(isinstance(layer, RandomAffine) for layer in model.layers)


@pytest.mark.parametrize(
    "space", [{"augmentation": {"rotation_range": 30, "zoom_range": 0.2, "horizontal_flip": True}}]
)
def test_augmentation_runs_inside_the_model_and_is_stripped_for_inference(space):
    hm = CNNHyperModel((8, 8, 1), 10, space)
    model = hm.build(kt.HyperParameters())
    assert isinstance(model.layers[1], RandomAffine)
    inference = hm.inference_model(model)
    assert not any(isinstance(layer, RandomAffine) for layer in inference.layers)
    x = RNG.uniform(0, 255, (3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), inference.predict(x, verbose=0), rtol=1e-5)
    assert isinstance(inference, keras.Model)


def test_one_warp_matches_the_five_transforms_applied_one_after_another():
    """Rotation, shear, zoom, shift and flip in one interpolation == five separate warps (bilinear).

    The composed map samples the input at C + R S Z (F (p - C) - t), so the sequential order is
    rotation first (outermost), flip last. Sequential warps interpolate five times and blur a
    little more; on a smooth image the interiors agree within interpolation tolerance.
    """
    yy, xx = np.mgrid[0:32, 0:32].astype("float32")
    smooth = 127.5 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    images = smooth[None, :, :, None]
    params = {
        "rotation": 17.0,
        "shear": 9.0,
        "zoom_x": 1.1,
        "zoom_y": 0.92,
        "width_shift": 0.06,
        "height_shift": -0.04,
        "flip_x": -1.0,
    }

    def warp(x, **kw):
        return _warp(x, interpolation="bilinear", **kw)

    composed = warp(images, **params)
    sequential = images
    for step in (
        {"rotation": params["rotation"]},
        {"shear": params["shear"]},
        {"zoom_x": params["zoom_x"], "zoom_y": params["zoom_y"]},
        {"width_shift": params["width_shift"], "height_shift": params["height_shift"]},
        {"flip_x": params["flip_x"]},
    ):
        sequential = warp(sequential, **step)
    interior = (slice(None), slice(8, 24), slice(8, 24))
    assert np.abs(composed[interior] - sequential[interior]).max() < 3.0  # of a 200-level range (measured 1.6)
    assert np.abs(composed[interior] - images[interior]).max() > 50  # and it did transform the image


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_fast_warp_matches_keras_affine_transform(fill_mode):
    from hypermodels.augment import warp

    layer = RandomAffine(
        rotation_range=40,
        width_shift_range=0.3,
        height_shift_range=0.3,
        shear_range=20,
        zoom_range=0.3,
        horizontal_flip=True,
        seed=5,
    )
    images = RNG.uniform(0, 255, (16, 9, 11, 3)).astype("float32")
    transforms = compose_transforms(layer.sample(16), 9, 11)
    expected = ops.image.affine_transform(
        images, transforms, interpolation="bilinear", fill_mode=fill_mode, fill_value=17.0
    )
    got = warp(images, transforms, fill_mode, 17.0)
    np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(expected), atol=1e-3)
