"""The whole search: `ktsearch tune` against a plain KerasTuner Hyperband script, side by side.

    python -m tests.benchmarks.search                  # seeds 1, 2, 3: ~10 min on 2 CPU cores
    python -m tests.benchmarks.search --seeds 1        # one of each, ~3.5 min

The plain script is written the way the keras-io guides write one: `kt.Hyperband(hypermodel,
objective=..., max_epochs=..., factor=...)` and `tuner.search(x, y, validation_data=(x_val, y_val),
callbacks=[EarlyStopping(...), TensorBoard(...)])`, on numpy arrays. It gets the same hypermodel
class with the config's search space (constructed with the class's defaults, as a user's script
would: Keras's steps_per_execution=1), the same splits, the same budget (max_epochs, factor,
iterations), the same EarlyStopping and the same oracle seed, so both propose the same
configurations. Each run is a fresh process (imports included) timed from outside; the two
alternate (plain first in odd repeats, ktsearch first in even ones) so drift hits both.

Each repeat uses another seed (`seed` of the config, for both): the two differ in how they seed
weights and shuffle batches, so at one seed their best scores are two draws of the same noise;
"equal or better" is judged on the mean over seeds. Prints per-repeat wall times and best
objective values, then the medians, the wall-time ratio and the mean best scores.
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


def plain_search(config_path: str, directory: str, seed: str) -> dict:
    """The keras-io way, on ktsearch's hypermodel and data; returns best score and trial count."""
    from search.config import load_config
    from search.runtime import import_tensorflow

    cfg = load_config(config_path, {"seed": int(seed)})
    import_tensorflow()
    import keras
    import keras_tuner as kt

    from search.data.sources import load_splits
    from search.engine.seeding import oracle_seed

    seed = cfg.seed
    keras.utils.set_random_seed(seed)
    splits = load_splits(cfg.data, seed)
    t, es = cfg.tuner, cfg.early_stopping
    hypermodel = user_hypermodel(cfg, splits)
    tuner = kt.Hyperband(
        hypermodel,
        objective=t.objective,
        max_epochs=t.max_epochs,
        factor=t.factor,
        hyperband_iterations=t.hyperband_iterations,
        seed=oracle_seed(seed),
        directory=directory,
        project_name="plain",
    )
    tuner.search(
        splits.x_train,
        splits.y_train,
        batch_size=cfg.data.batch_size,
        epochs=t.max_epochs,
        validation_data=(splits.x_val, splits.y_val),
        callbacks=[
            keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta),
            keras.callbacks.TensorBoard(str(Path(directory) / "logs")),
        ],
        verbose=0,
    )
    best = tuner.oracle.get_best_trials(1)[0]
    return {"best": best.score, "trials": len(tuner.oracle.trials)}


def user_hypermodel(cfg, splits):
    """ktsearch's HyperModel class with the config's space, constructed as a user's script would
    (the class's defaults: Keras's steps_per_execution=1)."""
    from hypermodels import registry

    hm = cfg.hypermodel
    return registry.resolve(hm.name)(
        splits.input_shape,
        splits.num_classes,
        cfg.space,
        optimizer=hm.optimizer,
        lr_horizon=cfg.lr_horizon,
        seed=cfg.seed,
    )


def _timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with exit code {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def run_plain(config: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wall, out = _timed([sys.executable, "-m", "tests.benchmarks.search", "--plain", config, tmp, str(seed)])
    return {"wall": wall, **json.loads(out.strip().splitlines()[-1])}


def run_ktsearch(config: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["tune", config, "--results-dir", tmp, "--name", "bench", "--set", f"seed={seed}"]
        wall, _ = _timed([sys.executable, "-m", "search", *cmd])
        summary = json.loads((Path(tmp) / "bench" / "summary.json").read_text())
    return {"wall": wall, "best": summary["best_score"], "trials": len(summary["trials"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist5k.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one repeat per seed")
    parser.add_argument("--plain", nargs=3, metavar=("CONFIG", "DIR", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain_search(*args.plain)))
        return
    results: dict[str, list[dict]] = {"plain KerasTuner": [], "ktsearch": []}
    for i, seed in enumerate(args.seeds):
        order = ["plain KerasTuner", "ktsearch"] if i % 2 == 0 else ["ktsearch", "plain KerasTuner"]
        for name in order:
            result = (run_plain if name == "plain KerasTuner" else run_ktsearch)(args.config, seed)
            results[name].append(result)
            print(
                f"seed {seed} {name:17s} {result['wall']:6.1f} s, {result['trials']} trials, best {result['best']:.4f}",
                flush=True,
            )
    medians = {name: statistics.median(r["wall"] for r in rs) for name, rs in results.items()}
    print(f"whole search, {args.config}, median of {len(args.seeds)} (seeds {', '.join(map(str, args.seeds))}):")
    for name, rs in results.items():
        bests = ", ".join(f"{r['best']:.4f}" for r in rs)
        mean = statistics.mean(r["best"] for r in rs)
        ratio = medians[name] / medians["plain KerasTuner"]
        print(f"  {name:17s} {medians[name]:6.1f} s  {ratio:.2f}x  best per seed {bests}, mean {mean:.4f}")


if __name__ == "__main__":
    main()
