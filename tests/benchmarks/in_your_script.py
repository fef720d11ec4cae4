"""keras-io's getting-started search in a plain KerasTuner script: `keras_tuner.Hyperband`, then ktsearch's pieces.

    python -m tests.benchmarks.in_your_script               # seeds 1, 2, 3: ~16 min on 2 CPU cores
    python -m tests.benchmarks.in_your_script --seeds 1     # one of each, ~5 min
    python -m tests.benchmarks.in_your_script --arms keras_tuner.Hyperband search.ASHA    # two of the arms

The guide's `build_model(hp)` and data as `tests.benchmarks.keras_tuner_guide` holds them (mnist5k: 3,500
train / 750 validation / 750 test, float32, one-hot), the same script each time, only the tuner line (or the
function) changed, as docs/in-your-script.md shows:

* `keras_tuner.Hyperband(build_model, objective="val_accuracy", max_epochs=9, factor=3, seed=S, ...)`;
* `search.BOHB(...)` and `search.ASHA(...)`, the same arguments (ASHA, by default: Hyperband's planned epochs);
* `search.BOHB(...)` over the guide's function with `hypermodels.augmentation(hp, ...)` and
  `hypermodels.lr_schedule(hp, ...)` added (the ranges of `keras_tuner_guide`'s AUGMENTED arm).

Each arm is a fresh process (imports included) timed from outside; `tuner.search(x, y, epochs=9,
validation_data=...)`, then `tuner.get_best_models(1)[0]` evaluated on the test split. Prints per seed and
arm the wall time, trials, best validation accuracy and test accuracy; then medians, the time ratio to
`keras_tuner.Hyperband`, and mean accuracies.
"""

from __future__ import annotations

import argparse
import json
import math

import keras
from keras import layers

from tests.benchmarks.keras_tuner_guide import EPOCHS, build_model, compare, guide_data

ARMS = ("keras_tuner.Hyperband", "search.BOHB", "search.ASHA", "search.BOHB + helpers")
TRAIN_SIZE = 3500


def build_with_helpers(hp):
    """The guide's function with ktsearch's augmentation and schedule dimensions added."""
    import hypermodels

    inputs = keras.Input((28, 28))
    x = layers.Reshape((28, 28, 1))(inputs)
    x = hypermodels.augmentation(
        hp,
        rotation_range=(0, 15),
        width_shift_range=(0, 0.1),
        height_shift_range=(0, 0.1),
        shear_range=0,
        zoom_range=(0, 0.1),
    )(x)
    x = layers.Flatten()(x)
    for i in range(hp.Int("num_layers", 1, 3)):
        x = layers.Dense(
            units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
            activation=hp.Choice("activation", ["relu", "tanh"]),
        )(x)
    if hp.Boolean("dropout"):
        x = layers.Dropout(rate=0.25)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    schedule = hypermodels.lr_schedule(
        hp, steps_per_epoch=math.ceil(TRAIN_SIZE / 32), epochs=EPOCHS, kind=["constant", "cosine"], warmup_epochs=0
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def one(arm: str, seed: int, directory: str) -> dict:
    import keras_tuner

    import search

    train, val, test = guide_data()
    keras.utils.set_random_seed(seed)
    cls = {ARMS[0]: keras_tuner.Hyperband, ARMS[1]: search.BOHB, ARMS[2]: search.ASHA, ARMS[3]: search.BOHB}[arm]
    build = build_with_helpers if arm == ARMS[3] else build_model
    tuner = cls(
        build, objective="val_accuracy", max_epochs=EPOCHS, factor=3, seed=seed, directory=directory, project_name="p"
    )
    tuner.search(*train, epochs=EPOCHS, validation_data=val, verbose=0)
    best = tuner.get_best_models(1)[0]
    return {
        "val": tuner.oracle.get_best_trials(1)[0].score,
        "test": float(best.evaluate(*test, verbose=0)[1]),
        "trials": len(tuner.oracle.trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--arms", nargs="+", choices=ARMS, default=list(ARMS), help="a subset, first the one the times are divided by"
    )
    parser.add_argument("--arm", nargs=3, metavar=("ARM", "SEED", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(one(args.arm[0], int(args.arm[1]), args.arm[2])))
        return
    compare("tests.benchmarks.in_your_script", tuple(args.arms), args.seeds)


if __name__ == "__main__":
    main()
