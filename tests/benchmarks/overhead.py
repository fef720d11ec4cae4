"""Where a search's time goes, and whether memory grows from trial to trial.

    python -m tests.benchmarks.overhead                        # default search, ~3.5 min
    python -m tests.benchmarks.overhead --memory-trials 50     # 50 short digits trials, ~3 min

Time: the search's wall time split into train and evaluation steps (measured per batch by a
callback), the first train and first evaluation batch of every trial (where a new model's graphs
are traced and optimised; a reused compiled model skips that), and everything else (building
models, checkpoints, TensorBoard, KerasTuner's bookkeeping, loading the data). Memory: resident set size after every trial, and its growth per trial
(least-squares slope over the trials after the first five).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from search.runtime import import_tensorflow

STEPS = {"train": 0.0, "test": 0.0, "first": 0.0}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _timed_cnn():
    """The CNN with a callback that adds up the time spent inside train and evaluation steps."""
    import keras

    from hypermodels.cnn import CNNHyperModel
    from search import register_hypermodel

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen: set[str] = set()

        def _begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def _end(self, kind):
            STEPS[kind if kind in self.seen else "first"] += time.perf_counter() - self.t
            self.seen.add(kind)

        on_train_batch_begin = on_test_batch_begin = _begin

        def on_train_batch_end(self, batch, logs=None):
            self._end("train")

        def on_test_batch_end(self, batch, logs=None):
            self._end("test")

    class TimedCNN(CNNHyperModel):
        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            return super().fit(hp, model, *args, callbacks=[*(callbacks or []), StepClock()], **kwargs)

    register_hypermodel("timed-cnn", TimedCNN)


def run(config: str, overrides: list[str]) -> dict:
    import_tensorflow()
    _timed_cnn()
    from search import tune

    rss: list[float] = []

    def log(line: str) -> None:
        if line.startswith("trial "):
            rss.append(_rss_mb())
            if "failed" in line:
                print(line, flush=True)

    with tempfile.TemporaryDirectory() as results:
        start = time.perf_counter()
        tune(config, [*overrides, "hypermodel.name=timed-cnn"], results_dir=results, log=log)
        wall = time.perf_counter() - start
    return {"wall": wall, "steps": STEPS["train"] + STEPS["test"], "first": STEPS["first"], "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-trials", type=int, help="run N two-epoch random-search trials on digits instead")
    args = parser.parse_args()
    if args.memory_trials:
        overrides = [
            "tuner.algorithm=random",
            "tuner.factor=null",
            f"tuner.max_trials={args.memory_trials}",
            "tuner.max_epochs=2",
            "name=mem",
        ]
        result = run("configs/digits_smoke.yaml", overrides)
    else:
        result = run("configs/mnist5k.yaml", [])
    wall, steps, first, rss = result["wall"], result["steps"], result["first"], result["rss"]
    rest = wall - steps - first
    print(
        f"wall {wall:.1f} s; inside train/eval steps {steps:.1f} s; outside {wall - steps:.1f} s = {(wall - steps) / wall:.1%}:"
    )
    print(f"  first train/eval batch of each trial (tracing a new model's graphs) {first:.1f} s = {first / wall:.1%}")
    print(f"  everything else {rest:.1f} s = {rest / wall:.1%}")
    if len(rss) > 6:
        xs = np.arange(5, len(rss))
        slope = np.polyfit(xs, np.array(rss[5:]), 1)[0]
        print(
            f"RSS after trial 1: {rss[0]:.0f} MB, after trial {len(rss)}: {rss[-1]:.0f} MB; growth {slope:.2f} MB/trial"
        )


if __name__ == "__main__":
    main()
