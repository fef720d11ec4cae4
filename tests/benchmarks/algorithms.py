"""Time to accuracy: random, hyperband, bohb and asha, and two plain KerasTuner scripts, side by side.

    python -m tests.benchmarks.algorithms                       # 5 seeds: 75 min on 2 CPU cores
    python -m tests.benchmarks.algorithms --seeds 1 2 --baseline-seeds 1
    python -m tests.benchmarks.algorithms --algorithms bohb --baseline-seeds --update results.json
                                                                # rerun one, merged into a saved run

Every search is a fresh `ktsearch tune` process on `configs/mnist5k.yaml` with `data.max_examples`
(default 2,000) and `tuner.hyperband_iterations` (default 3) so that BOHB's model gets used; all
algorithms share the data, the space, early stopping and a budget of about the same epochs
(`asha` and `random` get as many new configurations as make Hyperband's planned epochs). A trial's
time is when its line is printed, from the search's start (imports and data loading left out).
Then its best is exported and trained (`ktsearch export`, `ktsearch train`) for test accuracy.

Baselines, Hyperband with the same budget, the same splits and EarlyStopping, each a fresh process:

* **plain KerasTuner, stock layers**: written the way a user writes one (keras-io's guide): a
  32/64-filter CNN of stock Keras layers, `RandomRotation`/`RandomTranslation`/`RandomZoom`,
  optional `BatchNormalization`, `keras.optimizers.Adam` at a searched constant learning rate;
* **plain KerasTuner, ktsearch's hypermodel** (`tests.benchmarks.search`'s script): our
  HyperModel inside `kt.Hyperband`, so the gap to ktsearch is ktsearch's engine only.

Their trial times come from each `trial.json`'s last write, their test accuracy from training the
best hyperparameters again for `max_epochs` (EarlyStopping restoring the best weights) as such a
script would. Seeds are interleaved (seed 1 of every algorithm, then seed 2, ...) so machine drift
hits all alike. Prints one line per run, then a table; writes a PNG of best val_accuracy against
wall time (mean over seeds) and the raw results as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ALGORITHMS = ("random", "hyperband", "bohb", "asha")
BASELINES = ("plain KerasTuner, stock layers", "plain KerasTuner, ktsearch's hypermodel")


def _config(base: str, examples: int, iterations: int, directory: Path) -> dict[str, Path]:
    """One config file per algorithm, sized to Hyperband's planned epochs."""
    from search.algorithms.schedule import asha_configurations, make_plan, rung_epochs
    from search.config import load_config

    raw = yaml.safe_load(Path(base).read_text())
    raw["data"] = {**raw.get("data", {}), "max_examples": examples}
    tuner = {
        k: v for k, v in raw.get("tuner", {}).items() if k not in ("hyperband_iterations", "max_trials", "algorithm")
    }
    hb = {**raw, "tuner": {**tuner, "hyperband_iterations": iterations}}
    plan = make_plan(load_config(hb))
    epochs = plan["epochs"]
    t = load_config(hb).tuner
    max_epochs = t.max_epochs
    asha_trials = asha_configurations(epochs, rung_epochs(max_epochs, t.factor, t.grace_period), t.factor)
    configs = {
        "hyperband": hb,
        "bohb": {**raw, "tuner": {**tuner, "algorithm": "bohb", "hyperband_iterations": iterations}},
        "asha": {**raw, "tuner": {**tuner, "algorithm": "asha", "max_trials": asha_trials}},
        "random": {**raw, "tuner": {**tuner, "algorithm": "random", "max_trials": max(1, round(epochs / max_epochs))}},
    }
    from search.config import USED_BY

    paths = {}
    for name, config in configs.items():
        config["tuner"] = {k: v for k, v in config["tuner"].items() if name in USED_BY.get(k, (name,))}
        paths[name] = directory / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(config, sort_keys=False))
    return paths


def run_ktsearch(config: Path, seed: int, results: Path) -> dict:
    """Tune, export, train; the timeline from the trial lines as they are printed."""
    name = f"{config.stem}-{seed}"
    cmd = [sys.executable, "-m", "search", "tune", str(config), "--results-dir", str(results), "--name", name]
    cmd += ["--set", f"seed={seed}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start, timeline = None, []
    for line in proc.stdout:
        now = time.perf_counter()
        if line.startswith(("starting run", "resuming run")):
            start = now
        elif line.startswith("trial ") and " completed [" in line and start is not None:
            words = line.split()
            score = float(words[words.index("val_accuracy") + 1])
            timeline.append((now - start, score))
    if proc.wait() != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr.read()[-3000:]}")
    wall = time.perf_counter() - start
    run_dir = results / name
    for step in (["export", str(run_dir)], ["train", str(run_dir / "best.yaml")]):
        done = subprocess.run([sys.executable, "-m", "search", *step], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"ktsearch {' '.join(step)} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((run_dir / "train" / "metrics.json").read_text())
    return {"wall": wall, "timeline": timeline, "trials": len(timeline), "test_accuracy": _test_accuracy(metrics)}


def _test_accuracy(metrics: dict) -> float:
    for key in ("test_accuracy", "accuracy"):
        if key in metrics.get("test", {}):
            return float(metrics["test"][key])
    return float(metrics["test_accuracy"])


def plain(kind: str, config_path: str, directory: str, seed: str) -> dict:
    """One baseline search (in this process): Hyperband, then the best retrained and tested."""
    from search.config import load_config
    from search.runtime import import_tensorflow

    cfg = load_config(config_path, {"seed": int(seed)})
    import_tensorflow()
    import keras
    import keras_tuner as kt
    import numpy as np

    from search.data.sources import load_splits
    from search.engine.seeding import oracle_seed
    from tests.benchmarks.search import user_hypermodel

    keras.utils.set_random_seed(cfg.seed)
    splits = load_splits(cfg.data, cfg.seed)
    t, es = cfg.tuner, cfg.early_stopping
    scale = 1 / 255 if float(np.max(splits.x_train)) > 1.5 else 1.0
    if kind == "stock":
        hypermodel = _stock_hypermodel(splits.input_shape, splits.num_classes, scale)
    else:
        hypermodel = user_hypermodel(cfg, splits)
    tuner = kt.Hyperband(
        hypermodel,
        objective=t.objective,
        max_epochs=t.max_epochs,
        factor=t.factor,
        hyperband_iterations=t.hyperband_iterations,
        seed=oracle_seed(cfg.seed),
        directory=directory,
        project_name="plain",
    )
    stop = lambda: keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta)  # noqa: E731
    data = dict(batch_size=cfg.data.batch_size, validation_data=(splits.x_val, splits.y_val), verbose=0)
    start = time.time()
    tuner.search(splits.x_train, splits.y_train, epochs=t.max_epochs, callbacks=[stop()], **data)
    wall = time.time() - start
    timeline = []
    for path in Path(directory, "plain").glob("trial_*/trial.json"):
        state = json.loads(path.read_text())
        if state["status"] == "COMPLETED" and state["score"] is not None:
            timeline.append((path.stat().st_mtime - start, state["score"]))
    best = tuner.get_best_hyperparameters(1)[0]
    model = tuner.hypermodel.build(best)
    restore = keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, restore_best_weights=True)
    tuner.hypermodel.fit(best, model, splits.x_train, splits.y_train, epochs=t.max_epochs, callbacks=[restore], **data)
    _, test_accuracy = model.evaluate(splits.x_test, splits.y_test, verbose=0)
    return {"wall": wall, "timeline": sorted(timeline), "trials": len(timeline), "test_accuracy": float(test_accuracy)}


def _stock_hypermodel(input_shape, num_classes: int, scale: float):
    import keras
    import keras_tuner as kt

    class StockCNN(kt.HyperModel):
        """keras-io's way: stock augmentation layers, an optional BatchNormalization, Adam."""

        def build(self, hp):
            inputs = keras.Input(shape=input_shape)
            x = keras.layers.Rescaling(scale)(inputs)
            x = keras.layers.RandomRotation(hp.Float("rotation_degrees", 0.0, 30.0) / 360.0, fill_mode="nearest")(x)
            shift = hp.Float("shift", 0.0, 0.2)
            x = keras.layers.RandomTranslation(shift, shift, fill_mode="nearest")(x)
            x = keras.layers.RandomZoom(hp.Float("zoom", 0.0, 0.2), fill_mode="nearest")(x)
            batchnorm = hp.Boolean("batchnorm")
            for filters in (32, 64):
                x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batchnorm)(x)
                if batchnorm:
                    x = keras.layers.BatchNormalization()(x)
                x = keras.layers.Activation("relu")(x)
                x = keras.layers.MaxPooling2D()(x)
            x = keras.layers.Flatten()(x)
            x = keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5))(x)
            x = keras.layers.Dense(128, activation="relu")(x)
            outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
            model = keras.Model(inputs, outputs)
            lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
            model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

    return StockCNN()


def run_plain(kind: str, config: Path, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tests.benchmarks.algorithms", "--plain", kind, str(config), tmp, str(seed)]
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_so_far(timeline: list, at: float) -> float | None:
    scores = [s for t, s in timeline if t <= at]
    return max(scores) if scores else None


def time_to(timeline: list, target: float) -> float | None:
    for t, _ in sorted(timeline):
        if best_so_far(timeline, t) >= target:
            return t
    return None


def table(results: dict, target: float) -> list[str]:
    lines = [
        f"| search | runs | wall time, median | trials | final best val_accuracy, mean ± sd | time to {target:.4f}, median "
        "(reached) | test accuracy of the best, mean ± sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        if not runs:
            continue
        finals = [max(s for _, s in r["timeline"]) for r in runs]
        reached = [time_to(r["timeline"], target) for r in runs]
        hits = [x for x in reached if x is not None]
        to = f"{statistics.median(hits):.0f} s ({len(hits)}/{len(runs)})" if hits else f"never (0/{len(runs)})"
        tests = [r["test_accuracy"] for r in runs]
        sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
        lines.append(
            f"| {name} | {len(runs)} | {statistics.median(r['wall'] for r in runs):.0f} s | "
            f"{statistics.median(r['trials'] for r in runs):.0f} | {statistics.mean(finals):.4f} ± {sd(finals):.4f} | "
            f"{to} | {statistics.mean(tests):.4f} ± {sd(tests):.4f} |"
        )
    return lines


def plot(results: dict, target: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    end = max(r["wall"] for runs in results.values() for r in runs)
    grid = np.linspace(0, end, 400)
    for name, runs in results.items():
        if not runs:
            continue
        curves = []
        for r in runs:
            curves.append([best_so_far(r["timeline"], t) for t in grid])
        longest = max(r["wall"] for r in runs)  # each line ends where its longest search ended
        mean = [
            statistics.mean(c[i] for c in curves)
            if grid[i] <= longest and all(c[i] is not None for c in curves)
            else np.nan
            for i in range(len(grid))
        ]
        style = "--" if name in BASELINES else "-"
        ax.plot(grid, mean, style, label=f"{name} ({len(runs)} seeds)")
    ax.axhline(target, color="grey", linewidth=0.8, linestyle=":", label=f"Hyperband's mean final best {target:.4f}")
    ax.set_xlabel("wall time of the search (s)")
    ax.set_ylabel("best val_accuracy so far (mean over seeds)")
    finals = [max(s for _, s in r["timeline"]) for runs in results.values() for r in runs]
    ax.set_ylim(min(finals) - 0.05, 1.0)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist5k.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--baseline-seeds", type=int, nargs="*", default=None, help="default: --seeds")
    parser.add_argument("--examples", type=int, default=2000, help="data.max_examples, for every search")
    parser.add_argument("--iterations", type=int, default=3, help="tuner.hyperband_iterations")
    parser.add_argument("--png", default="docs/images/time_to_accuracy.png")
    parser.add_argument("--json", default=None, help="write the raw results here")
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    parser.add_argument(
        "--update", metavar="JSON", help="results of an earlier run (--json): rerun only what is asked, keep the rest"
    )
    parser.add_argument("--plain", nargs=4, metavar=("KIND", "CONFIG", "DIR", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain(*args.plain)))
        return
    baseline_seeds = args.seeds if args.baseline_seeds is None else args.baseline_seeds
    results: dict[str, list] = {name: [] for name in (*ALGORITHMS, *BASELINES)}
    if args.update:
        kept = json.loads(Path(args.update).read_text())["results"]
        rerun = [*args.algorithms, *(BASELINES if baseline_seeds else ())]
        results.update({name: runs for name, runs in kept.items() if name not in rerun})
    with tempfile.TemporaryDirectory() as tmp:
        configs = _config(args.config, args.examples, args.iterations, Path(tmp))
        for seed in args.seeds:
            names = [*args.algorithms, *(BASELINES if seed in baseline_seeds else ())]
            for name in names:
                if name in ALGORITHMS:
                    result = run_ktsearch(configs[name], seed, Path(tmp) / "results")
                else:
                    kind = "stock" if name == BASELINES[0] else "ktsearch"
                    result = run_plain(kind, configs["hyperband"], seed)
                results[name].append(result)
                final = max(s for _, s in result["timeline"])
                print(
                    f"seed {seed} {name:40s} {result['wall']:6.1f} s {result['trials']:3d} trials, best val "
                    f"{final:.4f}, test {result['test_accuracy']:.4f}",
                    flush=True,
                )
    hyperband = [max(s for _, s in r["timeline"]) for r in results["hyperband"]]
    target = statistics.mean(hyperband)
    title = (
        f"{args.config}, data.max_examples {args.examples}, {args.iterations} Hyperband iterations' budget; "
        f"seeds {', '.join(map(str, args.seeds))}"
    )
    print(title)
    print("\n".join(table(results, target)))
    plot(results, target, Path(args.png), title)
    print(f"plot: {args.png}")
    if args.json or args.update:
        Path(args.json or args.update).write_text(
            json.dumps({"target": target, "results": results}, separators=(",", ":")) + "\n"
        )


if __name__ == "__main__":
    main()
