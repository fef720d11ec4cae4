"""tf.data autotuning on against off: what Keras's per-epoch iterator teardown costs, side by side.

    python -m tests.benchmarks.pipeline      # ~5 min on 2 CPU cores

Keras's `fit` drops its tf.data iterator at the end of every epoch and every evaluation. With
autotuning on (tf.data's default), about half of those drops stalled for ~1 s on a 2-core Intel
Xeon with AVX-512 (TF 2.21): the process sleeps, CPU idle, before the next epoch's first batch.
ktsearch's pipelines (`search.data.sources.to_datasets`) turn autotuning off; the streamed ones
(`search.data.streaming`) give their parallel decode a fixed parallelism instead. This fits the
default CNN on mnist5k, in memory and streamed from a folder of its 5,000 images as PNGs
(`data.cache: none`, so every epoch decodes in the parallel map), each with autotuning on and
off, alternating, REPEATS x EPOCHS epochs each, and prints the median wait from an epoch's start
to its first batch, the median epoch, and the fits' total time (tracing excluded: each model's
first epoch is left out).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from search.runtime import import_tensorflow

REPEATS, EPOCHS = 3, 8


def _fit(splits, autotune: bool) -> tuple[list[float], list[float]]:
    if not hasattr(splits, "x_train"):  # streamed: ktsearch's pipelines, with autotuning switched back on or not
        import tensorflow as tf

        from search.data import sources

        train_ds, val_ds, _ = sources.to_datasets(splits, 64, 0, None, lambda line: None)
        if autotune:
            options = tf.data.Options()
            options.autotune.enabled = True
            train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)
        return _train(splits, train_ds, val_ds)

    from search.data import sources

    if autotune:  # the tf.data guide's pipeline, tf.data's default options
        import tensorflow as tf

        def pipeline(x, y, shuffle):
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            ds = ds.shuffle(len(y), seed=0, reshuffle_each_iteration=True) if shuffle else ds
            return ds.batch(64).prefetch(tf.data.AUTOTUNE)

        train_ds, val_ds = pipeline(splits.x_train, splits.y_train, True), pipeline(splits.x_val, splits.y_val, False)
    else:  # ktsearch's: the same, autotuning off
        train_ds, val_ds, _ = sources.to_datasets(splits, 64, 0)
    return _train(splits, train_ds, val_ds)


def _train(splits, train_ds, val_ds) -> tuple[list[float], list[float]]:
    import keras
    import keras_tuner as kt

    from hypermodels.cnn import CNNHyperModel

    hm = CNNHyperModel(splits.input_shape, splits.num_classes, {"model": {"filters": 16}}, steps_per_execution=8)
    hp = kt.HyperParameters()
    waits: list[float] = []
    epochs: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = self.first = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.first = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch > 0:
                waits.append(self.first - self.start)
                epochs.append(time.perf_counter() - self.start)

    hm.fit(hp, hm.build(hp), train_ds, validation_data=val_ds, epochs=EPOCHS, verbose=0, callbacks=[Clock()])
    return waits, epochs


def _png_folder(splits, root: Path) -> Path:
    """The in-memory images as a class-per-folder tree of PNGs (lossless), written once."""
    from PIL import Image

    if (root / ".complete").exists():
        return root
    x = np.concatenate([splits.x_train, splits.x_val, splits.x_test]).astype("uint8")[..., 0]
    y = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(label) / f"{i:05d}.png")
    (root / ".complete").write_text("ok")
    return root


def main() -> None:
    import_tensorflow()
    from search.config import DataConfig
    from search.data.sources import load_splits

    splits = load_splits(DataConfig(source="mnist5k"), seed=1)
    folder = _png_folder(splits, Path(tempfile.gettempdir()) / "ktsearch-mnist5k-png")
    streamed = load_splits(
        DataConfig(source="directory", path=str(folder), image_size=[28, 28], color_mode="grayscale", cache="none"),
        seed=1,
    )
    cases = {
        "in memory, autotune on": (splits, True),
        "in memory, autotune off": (splits, False),
        "streamed, autotune on": (streamed, True),
        "streamed, autotune off": (streamed, False),
    }
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    for i in range(REPEATS):
        for name in sorted(results, reverse=i % 2 == 1):
            waits, epochs = _fit(*cases[name])
            results[name][0].extend(waits)
            results[name][1].extend(epochs)
    print(f"default CNN on mnist5k, {REPEATS} fits x {EPOCHS - 1} epochs each (first epoch left out):")
    for name, (waits, epochs) in results.items():
        stalls = sum(w > 0.5 for w in waits)
        print(
            f"  {name:24s} wait before the first batch: median {statistics.median(waits) * 1000:6.1f} ms, "
            f"mean {statistics.mean(waits) * 1000:6.1f} ms, {stalls}/{len(waits)} epochs stalled > 0.5 s; "
            f"epoch median {statistics.median(epochs):.3f} s, total {sum(epochs):.1f} s"
        )
    for kind in ("in memory", "streamed"):
        on, off = (sum(results[f"{kind}, autotune {state}"][1]) for state in ("on", "off"))
        print(f"{kind}: total epoch time, autotune off / on: {off / on:.2f}x")


if __name__ == "__main__":
    main()
