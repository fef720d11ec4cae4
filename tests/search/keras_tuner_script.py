"""A plain KerasTuner script, as a user writes one, with ktsearch's tuners and `hp` helpers (run as a subprocess).

    python tests/search/keras_tuner_script.py TUNER DIRECTORY PROJECT

TUNER: BOHB or ASHA (`search.BOHB`, `search.ASHA`), Hyperband or RandomSearch (KerasTuner's own). The 8x8
digits of scikit-learn (no download); the model's augmentation, BatchNorm placement and learning-rate
schedule are ktsearch's dimensions. Prints one JSON line: the trials and the best model's validation accuracy
(the chief's only in KerasTuner's distributed mode, `KERASTUNER_*`).
"""

import json
import math
import os
import sys

import keras
import keras_tuner as kt
from sklearn.datasets import load_digits

import hypermodels
import search

EPOCHS = 3
BATCH = 64


def data():
    x, y = load_digits(return_X_y=True)
    x = x.reshape(-1, 8, 8, 1).astype("float32") / 16.0
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


(x_train, y_train), (x_val, y_val) = data()
STEPS = math.ceil(len(x_train) / BATCH)


def build_model(hp):
    inputs = keras.Input((8, 8, 1))
    augment = hypermodels.augmentation(
        hp, rotation_range=(0, 15), width_shift_range=(0, 0.1), height_shift_range=0, shear_range=0, zoom_range=0.05
    )
    x = augment(inputs)
    x = hypermodels.conv_bn_act(x, hp.Int("filters", 8, 16, step=8), hp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    schedule = hypermodels.lr_schedule(hp, steps_per_epoch=STEPS, epochs=EPOCHS, warmup_epochs=(0, 1))
    model.compile(keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(name: str, directory: str, project: str) -> None:
    keras.utils.set_random_seed(1)
    common = {"objective": "val_accuracy", "directory": directory, "project_name": project, "seed": 1}
    if name == "RandomSearch":
        tuner = kt.RandomSearch(build_model, max_trials=4, **common)
    else:
        cls = {"Hyperband": kt.Hyperband, "BOHB": search.BOHB, "ASHA": search.ASHA}[name]
        tuner = cls(build_model, max_epochs=EPOCHS, factor=3, **common)
    stop_early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2)
    tuner.search(
        x_train, y_train, epochs=EPOCHS, batch_size=BATCH, validation_data=(x_val, y_val), callbacks=[stop_early]
    )
    if os.environ.get("KERASTUNER_ORACLE_IP") and os.environ.get("KERASTUNER_TUNER_ID") != "chief":
        return  # a worker: the chief holds the results
    best = tuner.get_best_models(1)[0]
    _, accuracy = best.evaluate(x_val, y_val, verbose=0)
    values = tuner.get_best_hyperparameters(1)[0].values
    print(json.dumps({"trials": len(tuner.oracle.trials), "best_val_accuracy": accuracy, "best": values}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
