"""ktsearch against the tools a practitioner would pick instead: Optuna and Ray Tune, side by side.

    pip install -e ".[bench]"                          # Optuna 5, optuna-integration, Ray Tune 2
    python -m tests.benchmarks.peers                   # 10 seeds x 6 systems: ~3 h on 2 CPU cores (Zen 4)
    python -m tests.benchmarks.peers --seeds 1 --systems optuna   # one run
    python -m tests.benchmarks.peers --report          # the table and plot from the saved results

One search problem, six systems, every run a fresh process timed from its launch (interpreter,
imports, data and start-up included):

* **ktsearch** Hyperband, BOHB and ASHA: `search.tune("configs/mnist5k.yaml")` as the README runs it
  (the default search), `tuner.algorithm` changed; ASHA gets as many configurations as keep its
  planned epochs within Hyperband's.
* **Optuna 5** as its docs write a Keras search: `TPESampler(multivariate=True)`,
  `HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)`, optuna-integration's
  `KerasPruningCallback` on `val_accuracy`, the objective returning the trial's best
  `val_accuracy`; `study.optimize` stops (a study callback) once the epoch budget is spent.
* **Ray Tune 2**: `ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3)` with `OptunaSearch`
  (TPE, multivariate), one trial at a time with both cores (`max_concurrent_trials=1`,
  `{"cpu": 2}`), Ray's `TuneReportCheckpointCallback` reporting each epoch, the arrays passed
  by `tune.with_parameters`; a `Stopper` ends the run once the epoch budget is spent.
* **plain KerasTuner** Hyperband over the same stock-layer model (the algorithms benchmark's
  script, brought to this space and these widths).

The three peers share one model function of stock Keras layers (`stock_model`): `RandomRotation`,
`RandomTranslation`, `RandomShear`, `RandomZoom` with ImageDataGenerator's ranges converted to
their factors, BatchNormalization none / before / after the activation, the CNN of
`configs/mnist5k.yaml` (2 blocks of two 3x3 convolutions, 16 and 32 filters, dense 64, dropout
0.25), Adam with the schedule set per epoch by `keras.callbacks.LearningRateScheduler` (constant,
step, exponential or cosine, after 0-2 warm-up epochs), and `EarlyStopping(val_loss, patience=3)`.
The space is `configs/mnist5k.yaml`'s, dimension for dimension, in each tool's own API. Same data
and split (mnist5k: 3,500 train, 1,000 validation, 500 test, the split of the run's seed), batch 64,
at most 9 epochs a trial, and the same total epoch budget: the epochs Hyperband's plan holds
(`ktsearch plan`); ktsearch's early stopping spends fewer, the peers spend all of it.

Measured by one instrument in every process (`tests/benchmarks/stepclock.py`): each epoch's end
(wall clock and val_accuracy) and the seconds inside Keras's compiled train/test steps, with
tracing told apart. A seed's best is the best val_accuracy any epoch of its search reached; its
time to a target is when that best first reached it. Each seed's best configuration, as the tool
reports it, is retrained once (ktsearch: `export_best` then `train`; a peer: its model function,
9 epochs with EarlyStopping restoring the best weights, which is what `train` does) and tested on
the 500 test images. Seeds are interleaved (seed 1 of every system, then seed 2, ...); each run's
result is saved as it ends (`--json`), and a rerun skips the runs already there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = "configs/mnist5k.yaml"
SYSTEMS = {
    "ktsearch Hyperband": "hyperband",
    "ktsearch BOHB": "bohb",
    "ktsearch ASHA": "asha",
    "Optuna TPE + Hyperband pruner": "optuna",
    "Ray Tune ASHA + OptunaSearch": "ray",
    "KerasTuner Hyperband, stock layers": "kerastuner",
}
MAX_EPOCHS = 9
FACTOR = 3


# -- the peers' model: stock Keras layers ----------------------------------------------------------


def stock_model(params: dict, input_shape, num_classes: int):
    """configs/mnist5k.yaml's CNN of stock Keras layers; `params` as the tools suggest them."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    rotation, shear = params["rotation_range"], params["shear_range"]
    width, height, zoom = params["width_shift_range"], params["height_shift_range"], params["zoom_range"]
    if rotation:
        x = layers.RandomRotation(rotation / 360, fill_mode="nearest")(x)  # a fraction of a full turn
    if width or height:
        x = layers.RandomTranslation(height, width, fill_mode="nearest")(x)
    if shear:
        tangent = math.tan(math.radians(shear))  # degrees -> the shear's fraction of the image
        x = layers.RandomShear(x_factor=tangent, y_factor=0.0, fill_mode="nearest")(x)
    if zoom:
        x = layers.RandomZoom(zoom, zoom, fill_mode="nearest")(x)
    placement = params["batchnorm"]
    for block in range(2):
        for _ in range(2):
            x = layers.Conv2D(16 * 2**block, 3, padding="same", use_bias=placement != "before_activation")(x)
            if placement == "before_activation":
                x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            if placement == "after_activation":
                x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(params["initial_lr"]), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def learning_rate(params: dict, epoch: int) -> float:
    """The schedule's rate for an epoch: warm-up, then constant / step / exponential / cosine."""
    lr, warmup = params["initial_lr"], params["warmup_epochs"]
    if epoch < warmup:
        return lr * (epoch + 1) / (warmup + 1)
    kind = params["schedule"]
    if kind == "step":
        return lr * (0.1 if epoch >= params["drop_epoch"] else 1.0)
    if kind == "exponential":
        return lr * params["decay_rate"] ** (epoch - warmup)
    if kind == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(1, MAX_EPOCHS - warmup)))
    return lr


def callbacks(params: dict, restore: bool = False) -> list:
    import keras

    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=restore),
        keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate(params, epoch)),
    ]


def retrain(params: dict, splits, seed: int) -> float:
    """A peer's best configuration trained once more, as `ktsearch train` does; its test accuracy."""
    import keras

    keras.utils.set_random_seed(seed)
    model = stock_model(params, splits.input_shape, len(splits.class_names))
    _fit(model, params, splits, [], restore=True)
    return float(model.evaluate(splits.x_test, splits.y_test, verbose=0)[1])


def _fit(model, params: dict, splits, extra: list, restore: bool = False):
    """9 epochs on the train split, validated on the validation split: a trial's or a retrain's fit."""
    return model.fit(
        splits.x_train,
        splits.y_train,
        batch_size=64,
        epochs=MAX_EPOCHS,
        validation_data=(splits.x_val, splits.y_val),
        callbacks=[*callbacks(params, restore), *extra],
        verbose=0,
    )


# -- the systems, each in its own process ----------------------------------------------------------


def run_ktsearch(algorithm: str, seed: int, work: Path) -> dict:
    import yaml

    import search
    from tests.benchmarks import stepclock

    config = _configs(work)[algorithm]
    summary = search.tune(str(config), [f"seed={seed}"], results_dir=str(work / "results"), name="run", quiet=True)
    end = time.time()
    stepclock.phase("retrain")
    run_dir = work / "results" / "run"
    exported = search.export_best(str(run_dir))
    metrics = search.train(exported, str(work / "train"), serving=False)
    best = yaml.safe_load(Path(exported).read_text())  # the export file, as `train` read it
    return {
        "search_end": end,
        "test_accuracy": float(metrics["test"]["accuracy"]),
        "trials": len(summary["trials"]),
        "best": best,
    }


def _configs(work: Path) -> dict[str, Path]:
    from tests.benchmarks.algorithms import _config

    # ASHA gets the 35 new configurations whose plan is Hyperband's 75 epochs, and keeps to them.
    return _config(CONFIG, 5000, 1, work)


def budget() -> int:
    """The epochs of the default search's Hyperband plan: every system's budget."""
    from search.algorithms.schedule import make_plan
    from search.config import load_config

    return int(make_plan(load_config(CONFIG))["epochs"])


def _splits(seed: int):
    from search.config import load_config
    from search.data.sources import load_splits

    return load_splits(load_config(CONFIG).data, seed)


def run_optuna(seed: int, work: Path) -> dict:
    import keras
    import optuna
    from optuna_integration import KerasPruningCallback

    from tests.benchmarks import stepclock

    splits = _splits(seed)
    left = {"epochs": budget()}
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        params = {
            "rotation_range": trial.suggest_float("rotation_range", 0, 30),
            "width_shift_range": trial.suggest_float("width_shift_range", 0, 0.2),
            "height_shift_range": trial.suggest_float("height_shift_range", 0, 0.2),
            "shear_range": trial.suggest_float("shear_range", 0, 20),
            "zoom_range": trial.suggest_float("zoom_range", 0, 0.2),
            "batchnorm": trial.suggest_categorical("batchnorm", ["none", "before_activation", "after_activation"]),
            "schedule": trial.suggest_categorical("schedule", ["constant", "step", "exponential", "cosine"]),
            "initial_lr": trial.suggest_float("initial_lr", 1e-4, 1e-2, log=True),
            "warmup_epochs": trial.suggest_int("warmup_epochs", 0, 2),
        }
        if params["schedule"] == "step":
            params["drop_epoch"] = trial.suggest_int("drop_epoch", 3, 7)
        if params["schedule"] == "exponential":
            params["decay_rate"] = trial.suggest_float("decay_rate", 0.6, 0.95)
        keras.utils.set_random_seed(seed * 1000 + trial.number)
        model = stock_model(params, splits.input_shape, len(splits.class_names))
        count = _EpochCount(left)
        history = _fit(model, params, splits, [count, KerasPruningCallback(trial, "val_accuracy")])
        return max(history.history["val_accuracy"])

    def spent(study, trial):
        if left["epochs"] <= 0:
            study.stop()

    sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=MAX_EPOCHS, reduction_factor=FACTOR)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, callbacks=[spent])
    end = time.time()
    stepclock.phase("retrain")
    best = {**study.best_trial.params}
    best = _complete(best)
    return {"search_end": end, "test_accuracy": retrain(best, splits, seed), "trials": len(study.trials), "best": best}


def _complete(params: dict) -> dict:
    """A flat configuration: the conditional values a kind leaves out filled with anything (unused)."""
    return {"drop_epoch": 5, "decay_rate": 0.8, **params}


def _EpochCount(left: dict):
    import keras

    class EpochCount(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            left["epochs"] -= 1

    return EpochCount()


def ray_trainable(config, splits=None, seed=0, clock=None):
    """One Ray Tune trial: the stock model, reported to Tune at each epoch's end."""
    import keras
    from ray import tune
    from ray.tune.integration.keras import TuneReportCheckpointCallback

    from tests.benchmarks import stepclock

    stepclock.install(clock)  # benchmark instrumentation in Ray's worker process
    keras.utils.set_random_seed(seed * 1000 + int(tune.get_context().get_trial_id().split("_")[-1], 16) % 1000)
    model = stock_model(config, splits.input_shape, len(splits.class_names))
    report = TuneReportCheckpointCallback(metrics=["val_accuracy", "val_loss"], checkpoint_on=[])
    _fit(model, config, splits, [report])


def run_ray(seed: int, work: Path, clock: str) -> dict:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tests.benchmarks import stepclock

    splits = _splits(seed)

    class Budget(tune.Stopper):
        def __init__(self, epochs: int):
            self.left = epochs

        def __call__(self, trial_id, result):
            self.left -= 1
            return False

        def stop_all(self):
            return self.left <= 0

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    space = {
        "rotation_range": tune.uniform(0, 30),
        "width_shift_range": tune.uniform(0, 0.2),
        "height_shift_range": tune.uniform(0, 0.2),
        "shear_range": tune.uniform(0, 20),
        "zoom_range": tune.uniform(0, 0.2),
        "batchnorm": tune.choice(["none", "before_activation", "after_activation"]),
        "schedule": tune.choice(["constant", "step", "exponential", "cosine"]),
        "initial_lr": tune.loguniform(1e-4, 1e-2),
        "warmup_epochs": tune.randint(0, 3),  # upper bound excluded
        "drop_epoch": tune.randint(3, 8),
        "decay_rate": tune.uniform(0.6, 0.95),
    }
    trainable = tune.with_resources(
        tune.with_parameters(ray_trainable, splits=splits, seed=seed, clock=clock), {"cpu": 2}
    )
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="val_accuracy",
            mode="max",
            scheduler=ASHAScheduler(max_t=MAX_EPOCHS, grace_period=1, reduction_factor=FACTOR),
            search_alg=OptunaSearch(sampler=optuna.samplers.TPESampler(multivariate=True, seed=seed)),
            num_samples=1000,
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(storage_path=str(work / "ray"), stop=Budget(budget()), verbose=0),
    )
    results = tuner.fit()
    end = time.time()
    best = results.get_best_result(metric="val_accuracy", mode="max", scope="all")
    ray.shutdown()
    stepclock.phase("retrain")
    return {
        "search_end": end,
        "test_accuracy": retrain(best.config, splits, seed),
        "trials": len(results),
        "best": best.config,
    }


def run_kerastuner(seed: int, work: Path) -> dict:
    import keras
    import keras_tuner as kt

    from search.engine.seeding import oracle_seed
    from tests.benchmarks import stepclock

    splits = _splits(seed)

    class StockCNN(kt.HyperModel):
        def build(self, hp):
            params = {
                "rotation_range": hp.Float("rotation_range", 0, 30),
                "width_shift_range": hp.Float("width_shift_range", 0, 0.2),
                "height_shift_range": hp.Float("height_shift_range", 0, 0.2),
                "shear_range": hp.Float("shear_range", 0, 20),
                "zoom_range": hp.Float("zoom_range", 0, 0.2),
                "batchnorm": hp.Choice("batchnorm", ["none", "before_activation", "after_activation"]),
                "schedule": hp.Choice("schedule", ["constant", "step", "exponential", "cosine"]),
                "initial_lr": hp.Float("initial_lr", 1e-4, 1e-2, sampling="log"),
                "warmup_epochs": hp.Int("warmup_epochs", 0, 2),
            }
            with hp.conditional_scope("schedule", ["step"]):
                params["drop_epoch"] = hp.Int("drop_epoch", 3, 7)
            with hp.conditional_scope("schedule", ["exponential"]):
                params["decay_rate"] = hp.Float("decay_rate", 0.6, 0.95)
            self.params = _complete({k: v for k, v in params.items() if v is not None})
            return stock_model(self.params, splits.input_shape, len(splits.class_names))

        def fit(self, hp, model, *args, callbacks=(), **kwargs):
            return model.fit(*args, callbacks=[*callbacks_for(hp), *callbacks], **kwargs)

    def callbacks_for(hp):
        values = _complete({k: v for k, v in hp.values.items() if v is not None})
        return [keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate(values, epoch))]

    keras.utils.set_random_seed(seed)
    tuner = kt.Hyperband(
        StockCNN(),
        objective="val_accuracy",
        max_epochs=MAX_EPOCHS,
        factor=FACTOR,
        seed=oracle_seed(seed),
        directory=str(work),
        project_name="kt",
    )
    tuner.search(
        splits.x_train,
        splits.y_train,
        batch_size=64,
        epochs=MAX_EPOCHS,
        validation_data=(splits.x_val, splits.y_val),
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)],
        verbose=0,
    )
    end = time.time()
    stepclock.phase("retrain")
    best = _complete({k: v for k, v in tuner.get_best_hyperparameters(1)[0].values.items() if v is not None})
    trials = len(tuner.oracle.trials)
    return {"search_end": end, "test_accuracy": retrain(best, splits, seed), "trials": trials, "best": best}


def child(system: str, seed: int, work: str, launch: float) -> None:
    """One system's search and retrain, in this fresh process; prints its result as one JSON line."""
    from search.runtime import import_tensorflow

    import_tensorflow()
    imported = time.time()  # the interpreter, ktsearch's and TensorFlow's imports
    from tests.benchmarks import stepclock

    work_dir = Path(work)
    clock = str(work_dir / "clock.jsonl")
    stepclock.install(clock)
    if system in ("hyperband", "bohb", "asha"):
        result = run_ktsearch(system, seed, work_dir)
    elif system == "optuna":
        result = run_optuna(seed, work_dir)
    elif system == "ray":
        result = run_ray(seed, work_dir, clock)
    else:
        result = run_kerastuner(seed, work_dir)
    measured = stepclock.read(clock, launch)
    wall = result.pop("search_end") - launch
    print(json.dumps({**result, **measured, "wall": wall, "imports": imported - launch}))


# -- the parent: interleaved seeds, saved per run, the table and the plot --------------------------


def run(system: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        launch = time.time()
        cmd = [sys.executable, "-m", "tests.benchmarks.peers", "--child", system, str(seed), work, repr(launch)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_to(timeline: list, target: float) -> float:
    """When a run's best first reached `target` (inf: never)."""
    return next((t for t, best in timeline if best >= target - 1e-9), math.inf)


def summarize(results: dict) -> tuple[dict, float, str]:
    """Per system: the figures of the table; the target (the strongest peer's mean final best)."""
    rows = {}
    for name, runs in results.items():
        if not runs:
            continue
        finals = [r["timeline"][-1][1] for r in runs]
        walls = [r["wall"] for r in runs]
        tests = [r["test_accuracy"] for r in runs]
        rows[name] = {
            "runs": len(runs),
            "wall_median": statistics.median(walls),
            "wall_range": (min(walls), max(walls)),
            "final_mean": statistics.mean(finals),
            "final_sd": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "test_mean": statistics.mean(tests),
            "test_sd": statistics.stdev(tests) if len(tests) > 1 else 0.0,
            "test_median": statistics.median(tests),
            "epochs": statistics.median(r["epochs"] for r in runs),
            "trials": statistics.median(r["trials"] for r in runs if r.get("trials") is not None)
            if any(r.get("trials") is not None for r in runs)
            else None,
            "steps_share": statistics.median(r["steps"] / r["wall"] for r in runs),
            "tracing_share": statistics.median(r["tracing"] / r["wall"] for r in runs),
            "steps_median": statistics.median(r["steps"] for r in runs),
            "tracing_median": statistics.median(r["tracing"] for r in runs),
        }
    peers = [n for n in rows if not n.startswith("ktsearch")]
    strongest = (
        max(peers, key=lambda n: rows[n]["final_mean"]) if peers else max(rows, key=lambda n: rows[n]["final_mean"])
    )
    target = rows[strongest]["final_mean"]
    floor = min(row["final_mean"] for row in rows.values())  # every system's mean final best reaches it
    for name, row in rows.items():
        for key, level in (("time_to_target", target), ("time_to_floor", floor)):
            reached = sorted(time_to(r["timeline"], level) for r in results[name])
            row[key] = statistics.median(reached)  # a "never" (inf) in the middle makes it inf
            row[key.replace("time_to", "reached")] = sum(math.isfinite(x) for x in reached)
    return rows, target, strongest


def _time_text(row: dict, key: str, reference: float) -> str:
    """A median time to a level, how many seeds reached it, and its ratio to the reference's."""
    to, reached = row[key], row[key.replace("time_to", "reached")]
    text = f"{to:.0f} s ({reached}/{row['runs']})" if math.isfinite(to) else f"never ({reached}/{row['runs']})"
    if math.isfinite(to) and math.isfinite(reference):
        return f"{text}, {to / reference:.2f}×"
    return f"{text}, ahead (the reference's median: never)" if math.isfinite(to) else text


def table(rows: dict, target: float, strongest: str) -> list[str]:
    floor = min(row["final_mean"] for row in rows.values())
    lines = [
        f"| system | runs | wall time: median (range) | epochs | final best val_accuracy: mean ± sd | "
        f"time to {target:.4f} (the target): median (reached), × {strongest}'s | "
        f"time to {floor:.4f} (the lowest mean final best): median (reached), × {strongest}'s | "
        "test accuracy: mean ± sd (median) | in train/test steps | tracing |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        to_target = _time_text(r, "time_to_target", rows[strongest]["time_to_target"])
        to_floor = _time_text(r, "time_to_floor", rows[strongest]["time_to_floor"])
        lines.append(
            f"| {name} | {r['runs']} | {r['wall_median']:.0f} s ({r['wall_range'][0]:.0f}–{r['wall_range'][1]:.0f}) | "
            f"{r['epochs']:.0f} | {r['final_mean']:.4f} ± {r['final_sd']:.4f} | {to_target} | {to_floor} | "
            f"{r['test_mean']:.4f} ± {r['test_sd']:.4f} ({r['test_median']:.3f}) | {100 * r['steps_share']:.0f} % | "
            f"{100 * r['tracing_share']:.0f} % |"
        )
    return lines


def breakdown(results: dict) -> list[str]:
    """Where each system's wall time goes (medians over seeds): the physical limit is its steps alone."""
    lines = [
        "| system | wall | interpreter + imports | inside train/test steps | tracing | everything else "
        "(data, start-up, per-trial set-up, the tool's bookkeeping) | seconds per epoch in steps |",
        "|---|---|---|---|---|---|---|",
    ]
    median = statistics.median
    for name, runs in results.items():
        if not runs:
            continue
        wall = median(r["wall"] for r in runs)
        imports = median(r["imports"] for r in runs if "imports" in r) if any("imports" in r for r in runs) else None
        steps, tracing = median(r["steps"] for r in runs), median(r["tracing"] for r in runs)
        other = median(r["wall"] - r["steps"] - r["tracing"] - r.get("imports", 0.0) for r in runs)
        share = lambda x, wall=wall: f"{x:.1f} s ({100 * x / wall:.0f} %)"  # noqa: E731
        lines.append(
            f"| {name} | {wall:.0f} s | {share(imports) if imports is not None else '–'} | {share(steps)} | "
            f"{share(tracing)} | {share(other)} | {median(r['steps'] / r['epochs'] for r in runs):.2f} s |"
        )
    return lines


def plot(results: dict, target: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for name, runs in results.items():
        if not runs:
            continue
        times = sorted(time_to(r["timeline"], target) for r in runs)
        finite = [t for t in times if math.isfinite(t)]
        if not finite:
            continue
        xs = np.array([0.0, *finite])
        ys = np.arange(len(xs)) / len(runs)
        style = "-" if name.startswith("ktsearch") else "--"
        ax.step(xs, ys, style, where="post", label=f"{name} ({len(finite)}/{len(runs)})")
    ax.set_xlabel("wall time from launch (s)")
    ax.set_ylabel(f"share of seeds whose best reached {target:.4f}")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def cpu_model() -> str:
    """lscpu's model name with its family/model numbers and vector width: "AMD EPYC" alone is both a
    Zen 4 and a Zen 5, and results from two machines never mix in one table."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    field = lambda key: fields.get(key, "?").strip()  # noqa: E731
    vector = (
        "AVX-512" if "avx512f" in field("Flags").split() else "AVX2" if "avx2" in field("Flags").split() else "no AVX2"
    )
    return f"{field('Model name')} (family {field('CPU family')}, model {field('Model')}, {vector})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS.values()), default=list(SYSTEMS.values()))
    parser.add_argument("--json", default="docs/peers.json", help="results, saved after every run")
    parser.add_argument("--png", default="docs/images/peers_time_to_target.png")
    parser.add_argument("--report", action="store_true", help="only the table and plot from --json")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        system, seed, work, launch = args.child
        child(system, int(seed), work, float(launch))
        return
    path = Path(args.json)
    saved = json.loads(path.read_text()) if path.exists() else {"cpu": cpu_model(), "results": {}}
    results = {name: saved["results"].get(name, []) for name in SYSTEMS}
    if not args.report:
        if saved["cpu"] != cpu_model():
            sys.exit(f"{path} was measured on {saved['cpu']}, this is {cpu_model()}: another --json")
        print(f"{cpu_model()}; epoch budget {budget()} for every system; results -> {path}", flush=True)
        for seed in args.seeds:
            for name, system in SYSTEMS.items():
                if system not in args.systems or any(r["seed"] == seed for r in results[name]):
                    continue
                result = {"seed": seed, **run(system, seed)}
                results[name].append(result)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({**saved, "results": results}, separators=(",", ":")) + "\n")
                final = result["timeline"][-1][1] if result["timeline"] else float("nan")
                print(
                    f"seed {seed:2d} {name:36s} {result['wall']:6.1f} s, {result['epochs']:3d} epochs, "
                    f"best val {final:.4f}, test {result['test_accuracy']:.4f}, "
                    f"steps {100 * result['steps'] / result['wall']:.0f} %, tracing {result['tracing']:.1f} s",
                    flush=True,
                )
    rows, target, strongest = summarize(results)
    title = f"{CONFIG}, epoch budget {budget()}; {saved['cpu']}\ntarget: {strongest}'s mean final best"
    print(title)
    print("\n".join(table(rows, target, strongest)))
    print()
    print("\n".join(breakdown(results)))
    plot(results, target, Path(args.png), title)
    print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
