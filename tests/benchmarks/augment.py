"""Augmentation throughput: ktsearch's one-warp RandomAffine against the anchors, side by side.

    pip install tf_keras==2.21.*          # only for the legacy ImageDataGenerator anchor
    python -m tests.benchmarks.augment    # ~1 min on 2 CPU cores

The classic parameters (rotation 30, shifts 0.2, shear 0.2, zoom 0.2, horizontal flip, nearest
fill) on 32x32x3 images in batches of 64. Prints the median images/s of several repeats for each
implementation, measured in one process, and ratios to ImageDataGenerator.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from search.runtime import import_tensorflow

CLASSIC = dict(rotation_range=30, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2, zoom_range=0.2)
BATCH, BATCHES, REPEATS = 64, 60, 5


def _images(n: int = BATCH * BATCHES) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def _rate(run_once) -> float:
    """Median images/s over REPEATS timed passes of BATCHES batches (after one warm-up pass)."""
    run_once()
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run_once()
        rates.append(BATCH * BATCHES / (time.perf_counter() - start))
    return statistics.median(rates)


def ours_in_model(images):
    """RandomAffine as it runs inside the model: a compiled step over batches."""
    tf = import_tensorflow()
    from hypermodels.augment import RandomAffine

    layer = RandomAffine(**CLASSIC, horizontal_flip=True, fill_mode="nearest", seed=0)
    step = tf.function(lambda x: layer(x, training=True), jit_compile=False)
    batches = [tf.constant(images[i * BATCH : (i + 1) * BATCH]) for i in range(BATCHES)]
    return lambda: [step(b).numpy() for b in batches]


def ours_in_tf_data(images):
    tf = import_tensorflow()
    from hypermodels.augment import RandomAffine

    layer = RandomAffine(**CLASSIC, horizontal_flip=True, fill_mode="nearest", seed=0)
    ds = tf.data.Dataset.from_tensor_slices(images).batch(BATCH).map(lambda x: layer(x, training=True)).prefetch(2)
    return lambda: [b.numpy() for b in ds]


def keras3_chained(images):
    tf = import_tensorflow()
    import keras

    layers = [
        keras.layers.RandomRotation(30 / 360, fill_mode="nearest", seed=0),
        keras.layers.RandomTranslation(0.2, 0.2, fill_mode="nearest", seed=0),
        keras.layers.RandomShear(x_factor=0.2 / 90, y_factor=0.2 / 90, fill_mode="nearest", seed=0),
        keras.layers.RandomZoom(0.2, 0.2, fill_mode="nearest", seed=0),
        keras.layers.RandomFlip("horizontal", seed=0),
    ]

    def chain(x):
        for layer in layers:
            x = layer(x, training=True)
        return x

    ds = tf.data.Dataset.from_tensor_slices(images).batch(BATCH).map(chain).prefetch(2)
    return lambda: [b.numpy() for b in ds]


def image_data_generator(images):
    from tf_keras.preprocessing.image import ImageDataGenerator

    gen = ImageDataGenerator(**CLASSIC, horizontal_flip=True, fill_mode="nearest")

    def run():
        flow = gen.flow(images, batch_size=BATCH, shuffle=False, seed=0)
        return [next(flow) for _ in range(BATCHES)]

    return run


def main() -> None:
    images = _images()
    try:
        baseline = _rate(image_data_generator(images))
    except ImportError:
        raise SystemExit("needs tf_keras for the ImageDataGenerator anchor: pip install 'tf_keras==2.21.*'") from None
    rows = [("ImageDataGenerator (tf_keras)", baseline)]
    rows += [
        ("Keras 3 chained layers, tf.data", _rate(keras3_chained(images))),
        ("ktsearch RandomAffine, tf.data", _rate(ours_in_tf_data(images))),
        ("ktsearch RandomAffine, in-model step", _rate(ours_in_model(images))),
    ]
    print(f"augmentation throughput, 32x32x3, batch {BATCH}, median of {REPEATS} x {BATCH * BATCHES} images")
    for name, rate in rows:
        print(f"  {name:<40} {rate:>10,.0f} images/s   {rate / baseline:6.2f}x ImageDataGenerator")


if __name__ == "__main__":
    main()
