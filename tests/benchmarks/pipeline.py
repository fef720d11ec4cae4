"""tf.data autotuning on against off: what Keras's per-epoch iterator teardown costs, side by side.

    python -m tests.benchmarks.pipeline      # ~2 min on 2 CPU cores

Keras's `fit` drops its tf.data iterator at the end of every epoch and every evaluation. With
autotuning on (tf.data's default), about half of those drops stalled for ~1 s on a 2-core Intel
Xeon with AVX-512 (TF 2.21): the process sleeps, CPU idle, before the next epoch's first batch.
ktsearch's pipelines (`search.data.to_datasets`) turn autotuning off, as they have nothing to
tune. This fits the default CNN on mnist5k with both pipelines, alternating, REPEATS x EPOCHS
epochs each, and prints the median wait from an epoch's start to its first batch, the median
epoch, and the fits' total time (tracing excluded: each model's first epoch is left out).
"""

from __future__ import annotations

import statistics
import time

from search.runtime import import_tensorflow

REPEATS, EPOCHS = 3, 8


def _fit(splits, autotune: bool) -> tuple[list[float], list[float]]:
    import keras
    import keras_tuner as kt

    from hypermodels.cnn import CNNHyperModel
    from search import data

    if autotune:  # the tf.data guide's pipeline, tf.data's default options
        import tensorflow as tf

        def pipeline(x, y, shuffle):
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            ds = ds.shuffle(len(y), seed=0, reshuffle_each_iteration=True) if shuffle else ds
            return ds.batch(64).prefetch(tf.data.AUTOTUNE)

        train_ds, val_ds = pipeline(splits.x_train, splits.y_train, True), pipeline(splits.x_val, splits.y_val, False)
    else:  # ktsearch's: the same, autotuning off
        train_ds, val_ds, _ = data.to_datasets(splits, 64, 0)
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


def main() -> None:
    import_tensorflow()
    from search.config import DataConfig
    from search.data import load_splits

    splits = load_splits(DataConfig(source="mnist5k"), seed=1)
    results: dict[str, tuple[list[float], list[float]]] = {"autotune on": ([], []), "autotune off": ([], [])}
    for i in range(REPEATS):
        for name in sorted(results, reverse=i % 2 == 1):
            waits, epochs = _fit(splits, autotune=name == "autotune on")
            results[name][0].extend(waits)
            results[name][1].extend(epochs)
    print(f"default CNN on mnist5k, {REPEATS} fits x {EPOCHS - 1} epochs each (first epoch left out):")
    for name, (waits, epochs) in results.items():
        stalls = sum(w > 0.5 for w in waits)
        print(
            f"  {name:12s} wait before the first batch: median {statistics.median(waits) * 1000:6.1f} ms, "
            f"mean {statistics.mean(waits) * 1000:6.1f} ms, {stalls}/{len(waits)} epochs stalled > 0.5 s; "
            f"epoch median {statistics.median(epochs):.3f} s, total {sum(epochs):.1f} s"
        )
    on, off = (sum(results[name][1]) for name in ("autotune on", "autotune off"))
    print(f"total epoch time, autotune off / on: {off / on:.2f}x")


if __name__ == "__main__":
    main()
