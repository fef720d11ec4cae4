"""`RandomAffine`: ImageDataGenerator's geometric augmentation as one Keras 3 layer.

Rotation, shear, zoom, shifts and flips are composed into a single affine
transform per image and applied with one interpolation
(`keras.ops.image.affine_transform`), inside the model: it runs on the GPU when
there is one and is the identity at inference (``training=False``).

Parameter names and units are ImageDataGenerator's: rotation and shear in
degrees, shifts as fractions of width/height, zoom as ``[1 - z, 1 + z]``.

The five ranges are non-trainable variables of the layer, read when the model
runs: models that differ only in augmentation strengths share one traced graph
(ktsearch's tuner reuses a compiled model across such trials).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from hypermodels.dimensions import AUGMENTATION_RANGES as RANGES


@keras.saving.register_keras_serializable(package="ktsearch")
class RandomAffine(keras.layers.Layer):
    """Random affine augmentation with ImageDataGenerator's vocabulary.

    Args:
        rotation_range: degrees; angle drawn uniformly from [-r, r].
        width_shift_range: fraction of width; shift drawn from [-w, w].
        height_shift_range: fraction of height; shift drawn from [-h, h].
        shear_range: degrees; shear angle drawn from [-s, s].
        zoom_range: scale per axis drawn independently from [1 - z, 1 + z].
        horizontal_flip: mirror left-right with probability 0.5.
        vertical_flip: mirror top-bottom with probability 0.5.
        fill_mode: "constant", "nearest", "reflect" or "wrap".
        cval: fill value for "constant".
        interpolation: "bilinear" (ImageDataGenerator's order=1) or "nearest".
        seed: optional int for the layer's random stream.

    Example:
        >>> aug = RandomAffine(rotation_range=30, width_shift_range=0.2, zoom_range=0.2)
        >>> augmented = aug(images, training=True)   # images: (batch, h, w, c)
    """

    def __init__(
        self,
        rotation_range: float = 0.0,
        width_shift_range: float = 0.0,
        height_shift_range: float = 0.0,
        shear_range: float = 0.0,
        zoom_range: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        interpolation: str = "bilinear",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        given = (rotation_range, width_shift_range, height_shift_range, shear_range, zoom_range)
        self._ranges = {
            name: self.add_weight(
                shape=(), initializer=keras.initializers.Constant(float(value)), trainable=False, name=name
            )
            for name, value in zip(RANGES, given, strict=True)
        }
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.fill_mode = fill_mode
        self.cval = float(cval)
        self.interpolation = interpolation
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    rotation_range = property(lambda self: self._current("rotation_range"))
    width_shift_range = property(lambda self: self._current("width_shift_range"))
    height_shift_range = property(lambda self: self._current("height_shift_range"))
    shear_range = property(lambda self: self._current("shear_range"))
    zoom_range = property(lambda self: self._current("zoom_range"))

    def _current(self, name: str) -> float:
        return float(ops.convert_to_numpy(self._ranges[name]))

    def sample(self, batch) -> dict:
        """Random parameters for `batch` images (degrees, fractions, scales, +-1 flips)."""

        def uniform(name):
            unit = keras.random.uniform((batch,), 0.0, 1.0, seed=self.seed_generator)
            return (2.0 * unit - 1.0) * ops.cast(self._ranges[name], unit.dtype)  # [-limit, limit]

        def flip(enabled):
            if not enabled:
                return ops.ones((batch,))
            coin = keras.random.uniform((batch,), 0.0, 1.0, seed=self.seed_generator)
            return ops.where(coin < 0.5, -1.0, 1.0)

        return {
            "rotation": uniform("rotation_range"),
            "shear": uniform("shear_range"),
            "width_shift": uniform("width_shift_range"),
            "height_shift": uniform("height_shift_range"),
            "zoom_x": 1.0 + uniform("zoom_range"),
            "zoom_y": 1.0 + uniform("zoom_range"),
            "flip_x": flip(self.horizontal_flip),
            "flip_y": flip(self.vertical_flip),
        }

    def call(self, images, training=None):
        if not training:
            return images
        shape = ops.shape(images)
        params = self.sample(shape[0])
        transforms = compose_transforms(params, shape[1], shape[2])
        return warp(images, transforms, self.fill_mode, self.cval, self.interpolation)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        keys = (
            "rotation_range width_shift_range height_shift_range shear_range zoom_range "
            "horizontal_flip vertical_flip fill_mode cval interpolation seed"
        ).split()
        config.update({key: getattr(self, key) for key in keys})
        return config


def compose_transforms(params: dict, height, width):
    """One (batch, 8) projective transform per image from sampled parameters.

    The output pixel p (x = column, y = row) samples the input at
    ``C + R(rotation) @ Shear(shear) @ Zoom(zx, zy) @ (Flip @ (p - C) - shift)``,
    where C is the image centre: every geometric change in a single warp.
    """
    height = ops.cast(height, "float32")
    width = ops.cast(width, "float32")
    theta = params["rotation"] * (math.pi / 180.0)
    shear = params["shear"] * (math.pi / 180.0)
    zx, zy = params["zoom_x"], params["zoom_y"]
    cos_t, sin_t = ops.cos(theta), ops.sin(theta)
    # M = R @ S @ Z with S = [[1, -sin(shear)], [0, cos(shear)]] as in ImageDataGenerator.
    m00 = cos_t * zx
    m01 = (-cos_t * ops.sin(shear) - sin_t * ops.cos(shear)) * zy
    m10 = sin_t * zx
    m11 = (-sin_t * ops.sin(shear) + cos_t * ops.cos(shear)) * zy
    tx = params["width_shift"] * width
    ty = params["height_shift"] * height
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # A = M @ Flip; offset = C - A @ C - M @ t.
    a00, a01 = m00 * params["flip_x"], m01 * params["flip_y"]
    a10, a11 = m10 * params["flip_x"], m11 * params["flip_y"]
    b0 = cx - (a00 * cx + a01 * cy) - (m00 * tx + m01 * ty)
    b1 = cy - (a10 * cx + a11 * cy) - (m10 * tx + m11 * ty)
    zeros = ops.zeros_like(a00)
    return ops.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)


def _bilinear(images, transforms, fill_value, clamp: bool):
    """Bilinear warp by gathering the four neighbours of every output pixel, all channels at once.

    `clamp` (fill_mode "nearest") clamps the sample point to the image; otherwise ("constant")
    each neighbour outside the image reads `fill_value`. Same results as TensorFlow's
    ImageProjectiveTransformV3, which computes the coordinates once per channel instead.
    """
    shape = ops.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    ys, xs = ops.meshgrid(ops.arange(height, dtype="float32"), ops.arange(width, dtype="float32"), indexing="ij")
    xs, ys = ops.reshape(xs, (1, -1)), ops.reshape(ys, (1, -1))
    sx = transforms[:, 0:1] * xs + transforms[:, 1:2] * ys + transforms[:, 2:3]
    sy = transforms[:, 3:4] * xs + transforms[:, 4:5] * ys + transforms[:, 5:6]
    w_max, h_max = ops.cast(width - 1, "float32"), ops.cast(height - 1, "float32")
    if clamp:
        sx, sy = ops.clip(sx, 0.0, w_max), ops.clip(sy, 0.0, h_max)
    x0, y0 = ops.floor(sx), ops.floor(sy)
    fx, fy = ops.reshape(sx - x0, (-1, 1)), ops.reshape(sy - y0, (-1, 1))
    flat = ops.reshape(images, (-1, channels))
    base = ops.reshape(ops.arange(batch, dtype="int32") * (height * width), (-1, 1))

    def tap(y, x):
        xi = ops.cast(ops.clip(x, 0.0, w_max), "int32")
        yi = ops.cast(ops.clip(y, 0.0, h_max), "int32")
        value = ops.take(flat, ops.reshape(base + yi * width + xi, (-1,)), axis=0)
        if clamp:
            return value
        inside = (x >= 0) & (x <= w_max) & (y >= 0) & (y <= h_max)
        return ops.where(ops.reshape(inside, (-1, 1)), value, fill_value)

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return ops.reshape(top * (1 - fy) + bottom * fy, shape)


_compiled_bilinear = _bilinear
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    # One XLA-compiled function for every layer and trial: compiled once per image shape, it runs
    # about 3x faster than ImageProjectiveTransformV3 on CPU (python -m tests.benchmarks.augment).
    _compiled_bilinear = tf.function(_bilinear, jit_compile=True, reduce_retracing=True)


def warp(images, transforms, fill_mode: str = "nearest", fill_value: float = 0.0, interpolation: str = "bilinear"):
    """Apply one (batch, 8) affine transform per image, as `keras.ops.image.affine_transform` does.

    Bilinear "nearest" and "constant" fills (ImageDataGenerator's default and the common
    alternative) take the fast gather path; other modes use Keras's own op.
    """
    if interpolation == "bilinear" and fill_mode in ("nearest", "constant"):
        images = ops.cast(images, "float32")
        return _compiled_bilinear(
            images, ops.cast(transforms, "float32"), ops.cast(fill_value, "float32"), fill_mode == "nearest"
        )
    return ops.image.affine_transform(
        images, transforms, interpolation=interpolation, fill_mode=fill_mode, fill_value=fill_value
    )


def _kwargs(values: dict) -> dict:
    return {k.partition(".")[2]: v for k, v in values.items() if k.startswith("augmentation.")}


def is_identity(values: dict) -> bool:
    """Whether dotted hyperparameter values ask for no augmentation at all."""
    kwargs = _kwargs(values)
    return not any(kwargs.get(name) for name in RANGES) and not any(
        kwargs.get(flip) for flip in ("horizontal_flip", "vertical_flip")
    )


def from_values(values: dict, seed: int | None = None) -> RandomAffine | None:
    """The augmentation layer for dotted hyperparameter values, None when it does nothing."""
    if is_identity(values):
        return None
    return RandomAffine(**_kwargs(values), seed=seed, name="augmentation")
