"""Epoch time of the default CNN with augmentation on against off, side by side.

    python -m tests.benchmarks.epoch      # ~2 min on 2 CPU cores

The mnist5k data and CNN of configs/mnist5k.yaml, BatchNorm after the activation, Adam.
Augmentation "on" uses the classic strengths (rotation 30, shifts 0.2, shear 0.2, zoom 0.2,
nearest fill) in the model, once through ktsearch's warp and once through Keras's
affine_transform op. Median seconds per epoch over REPEATS models x EPOCHS epochs, the first
epoch of each model (tracing, XLA compilation) left out.
"""

from __future__ import annotations

import statistics
import time

from search.runtime import import_tensorflow

CLASSIC = {
    "rotation_range": 30,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 0.2,
    "zoom_range": 0.2,
}
REPEATS, EPOCHS = 3, 4


def _epoch_times(space: dict, splits, keras_op: bool = False) -> list[float]:
    import keras
    import keras_tuner as kt

    from hypermodels import augment
    from hypermodels.cnn import CNNHyperModel
    from search.data import sources

    base = {"batchnorm": {"placement": "after_activation"}, "model": {"filters": 16, "dense_units": 64}}
    hm = CNNHyperModel(splits.input_shape, splits.num_classes, {**base, **space}, lr_horizon=EPOCHS, seed=0)
    times: list[float] = []
    original = augment.warp
    if keras_op:
        augment.warp = lambda x, t, fill_mode, cval, interpolation: keras.ops.image.affine_transform(
            x, t, interpolation=interpolation, fill_mode=fill_mode, fill_value=cval
        )
    try:
        for _ in range(REPEATS):
            train_ds, val_ds, _ = sources.to_datasets(splits, 64, 0)
            hp = kt.HyperParameters()
            model = hm.build(hp)
            stamps: list[float] = []
            clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs, s=stamps: s.append(time.perf_counter()))
            start = time.perf_counter()
            hm.fit(hp, model, train_ds, validation_data=val_ds, epochs=EPOCHS, verbose=0, callbacks=[clock])
            edges = [start, *stamps]
            times += [b - a for a, b in zip(edges[1:-1], edges[2:], strict=True)]  # skip epoch 0
    finally:
        augment.warp = original
    return times


def main() -> None:
    import_tensorflow()
    from search.config import DataConfig
    from search.data.sources import load_splits

    splits = load_splits(DataConfig(source="mnist5k"), seed=1)
    off = statistics.median(_epoch_times({}, splits))
    on = statistics.median(_epoch_times({"augmentation": CLASSIC}, splits))
    op = statistics.median(_epoch_times({"augmentation": CLASSIC}, splits, keras_op=True))
    print(f"epoch time, default CNN on mnist5k ({len(splits.y_train)} images), median of {REPEATS}x{EPOCHS - 1} epochs")
    print(f"  augmentation off                        {off:6.3f} s   1.00x")
    print(f"  augmentation on (ktsearch warp)         {on:6.3f} s   {on / off:.2f}x")
    print(f"  augmentation on (keras affine op)       {op:6.3f} s   {op / off:.2f}x")


if __name__ == "__main__":
    main()
