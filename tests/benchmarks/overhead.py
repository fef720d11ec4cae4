"""Where a search's time goes, and whether memory grows from trial to trial.

    python -m tests.benchmarks.overhead                        # default search, ~3.5 min
    python -m tests.benchmarks.overhead --memory-trials 50     # 50 short digits trials, ~3 min

Time: the search's wall time, inside and outside `model.fit`, and split into train and
evaluation steps (timed per execution by a callback), tracing (what a new model's first
executions take beyond a typical one; a reused compiled model skips it) and everything else
(building models, checkpoints, TensorBoard, KerasTuner's bookkeeping, Keras's per-batch and
per-epoch Python work, loading the data). Memory: resident set size after every trial, and its growth per trial
(least-squares slope over the trials after the first five).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from search.runtime import import_tensorflow

CLOCK = {"steps": 0.0, "tracing": 0.0, "fit": 0.0}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _timed_cnn():
    """The CNN, timing its `fit` calls and, through a callback, every call into its step functions.

    With steps_per_execution > 1, Keras calls batch hooks once per execution (that many batches),
    so the clock times executions. The first train and the first evaluation execution of a fit
    on a new model include tracing; what they take beyond the fit's median execution of the
    same kind is counted as tracing, the rest as steps.
    """
    import keras

    from hypermodels.cnn import CNNHyperModel
    from search import register_hypermodel

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.runs: dict[str, list[float]] = {"train": [], "test": []}

        def _begin(self, batch, logs=None):
            self.t = time.perf_counter()

        on_train_batch_begin = on_test_batch_begin = _begin

        def on_train_batch_end(self, batch, logs=None):
            self.runs["train"].append(time.perf_counter() - self.t)

        def on_test_batch_end(self, batch, logs=None):
            self.runs["test"].append(time.perf_counter() - self.t)

        def on_train_end(self, logs=None):
            for runs in self.runs.values():
                if not runs:
                    continue
                typical = float(np.median(runs[1:])) if len(runs) > 1 else 0.0
                extra = max(runs[0] - typical, 0.0)
                CLOCK["tracing"] += extra
                CLOCK["steps"] += sum(runs) - extra

    class TimedCNN(CNNHyperModel):
        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            start = time.perf_counter()
            try:
                return super().fit(hp, model, *args, callbacks=[*(callbacks or []), StepClock()], **kwargs)
            finally:
                CLOCK["fit"] += time.perf_counter() - start

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
    return {"wall": wall, **CLOCK, "rss": rss}


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
    wall, steps, tracing, fit = result["wall"], result["steps"], result["tracing"], result["fit"]
    outside = wall - steps
    print(
        f"wall {wall:.1f} s, of which inside model.fit {fit:.1f} s: outside fit {wall - fit:.1f} s = {(wall - fit) / wall:.1%}"
    )
    print(f"inside train/eval steps {steps:.1f} s; outside steps {outside:.1f} s = {outside / wall:.1%}:")
    print(f"  tracing a new model's graphs (first executions) {tracing:.1f} s = {tracing / wall:.1%}")
    print(f"  everything else {outside - tracing:.1f} s = {(outside - tracing) / wall:.1%}")
    rss = result["rss"]
    if len(rss) > 6:
        xs = np.arange(5, len(rss))
        slope = np.polyfit(xs, np.array(rss[5:]), 1)[0]
        print(
            f"RSS after trial 1: {rss[0]:.0f} MB, after trial {len(rss)}: {rss[-1]:.0f} MB; growth {slope:.2f} MB/trial"
        )


if __name__ == "__main__":
    main()
