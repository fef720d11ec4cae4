"""The whole search: `ktsearch tune` against a plain KerasTuner Hyperband script, side by side.

    python -m tests.benchmarks.search                  # 3 repeats of each, ~15 min on 2 CPU cores
    python -m tests.benchmarks.search --repeats 1      # one of each, ~5 min

The plain script is written the way the keras-io guides write one: `kt.Hyperband(hypermodel,
objective=..., max_epochs=..., factor=...)` and `tuner.search(x, y, validation_data=(x_val, y_val),
callbacks=[EarlyStopping(...), TensorBoard(...)])`, on numpy arrays. It gets the same hypermodel
class with the config's search space (constructed with the class's defaults, as a user's script
would: Keras's steps_per_execution=1), the same splits, the same budget (max_epochs, factor,
iterations), the same EarlyStopping and the same oracle seed, so both propose the same
configurations. Each run is a fresh process (imports included) timed from outside; the two
alternate (plain first in odd repeats, ktsearch first in even ones) so drift hits both.
Prints per-repeat wall times and best objective values, then medians and the wall-time ratio.
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


def plain_search(config_path: str, directory: str) -> dict:
    """The keras-io way, on ktsearch's hypermodel and data; returns best score and trial count."""
    from search.config import load_config
    from search.runtime import import_tensorflow

    cfg = load_config(config_path)
    import_tensorflow()
    import keras
    import keras_tuner as kt

    from hypermodels import registry
    from search.data import load_splits
    from search.tuners import oracle_seed

    seed = cfg.resolved["seed"]
    keras.utils.set_random_seed(seed)
    splits = load_splits(cfg.section("data"), seed)
    t, es, hm = cfg.section("tuner"), cfg.section("early_stopping"), cfg.section("hypermodel")
    hypermodel = registry.resolve(hm["name"])(
        splits.input_shape,
        splits.num_classes,
        cfg.space,
        optimizer=hm["optimizer"],
        lr_horizon=cfg.lr_horizon,
        seed=seed,
    )
    tuner = kt.Hyperband(
        hypermodel,
        objective=t["objective"],
        max_epochs=t["max_epochs"],
        factor=t["factor"],
        hyperband_iterations=t["hyperband_iterations"],
        seed=oracle_seed(seed),
        directory=directory,
        project_name="plain",
    )
    tuner.search(
        splits.x_train,
        splits.y_train,
        batch_size=cfg.section("data")["batch_size"],
        epochs=t["max_epochs"],
        validation_data=(splits.x_val, splits.y_val),
        callbacks=[
            keras.callbacks.EarlyStopping(monitor=es["monitor"], patience=es["patience"], min_delta=es["min_delta"]),
            keras.callbacks.TensorBoard(str(Path(directory) / "logs")),
        ],
        verbose=0,
    )
    best = tuner.oracle.get_best_trials(1)[0]
    return {"best": best.score, "trials": len(tuner.oracle.trials)}


def _timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with exit code {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def run_plain(config: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wall, out = _timed([sys.executable, "-m", "tests.benchmarks.search", "--plain", config, tmp])
    return {"wall": wall, **json.loads(out.strip().splitlines()[-1])}


def run_ktsearch(config: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wall, _ = _timed([sys.executable, "-m", "search", "tune", config, "--results-dir", tmp, "--name", "bench"])
        summary = json.loads((Path(tmp) / "bench" / "summary.json").read_text())
    return {"wall": wall, "best": summary["best_score"], "trials": len(summary["trials"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist5k.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plain", nargs=2, metavar=("CONFIG", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain_search(*args.plain)))
        return
    results: dict[str, list[dict]] = {"plain KerasTuner": [], "ktsearch": []}
    for i in range(args.repeats):
        order = ["plain KerasTuner", "ktsearch"] if i % 2 == 0 else ["ktsearch", "plain KerasTuner"]
        for name in order:
            result = (run_plain if name == "plain KerasTuner" else run_ktsearch)(args.config)
            results[name].append(result)
            print(
                f"repeat {i + 1} {name:17s} {result['wall']:6.1f} s, {result['trials']} trials, best {result['best']:.4f}",
                flush=True,
            )
    medians = {name: statistics.median(r["wall"] for r in rs) for name, rs in results.items()}
    print(f"whole search, {args.config}, median of {args.repeats}:")
    for name, rs in results.items():
        bests = ", ".join(f"{r['best']:.4f}" for r in rs)
        print(f"  {name:17s} {medians[name]:6.1f} s  {medians[name] / medians['plain KerasTuner']:.2f}x  best {bests}")


if __name__ == "__main__":
    main()
