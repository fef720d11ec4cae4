"""The chief's cost per call against the number of trials the search holds.

    python -m tests.benchmarks.chief                       # 100, 1,000 and 10,000 trials, every algorithm
    python -m tests.benchmarks.chief --sizes 100 1000 --algorithms asha

Drives the oracles a chief serves (`search.algorithms.oracles.make_oracle`, the default search's
space from `configs/mnist5k.yaml`, sized to the trials asked for) directly, without gRPC or
TensorFlow: `--workers` workers keep trials running (64), each trial reports an epoch score drawn
from a seeded generator per epoch it plans, and ends. The search first grows to the size with
its files off (in memory, as the simulator runs it), then writes its files as a chief does
(`oracle.json`, `trial.json`, the journal: through ktsearch's atomic writes, into a temporary
directory on this disk) for `--window` trials, whose calls are timed one by one: `create_trial`
(a request for a trial, IDLE answers included), `update_trial` (an epoch's report) and
`end_trial`. The first trial after the switch is not timed (it writes the whole state once).

Prints, per algorithm and size, the median and mean seconds of each call and of a trial's calls
together (mean: compactions included), and the ratio of each size's to the smallest size's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import deque

import numpy as np

from search.runtime import cpu_model

ALGORITHMS = ("hyperband", "bohb", "asha", "random")


def _oracle(cfg, algorithm: str, trials: int, directory: str):
    import keras_tuner as kt

    from hypermodels import private_api
    from search.algorithms import oracles
    from search.algorithms.schedule import sized_to
    from search.analysis.simulate import search_space
    from search.engine.seeding import oracle_seed
    from search.runs import layout

    sized = sized_to(cfg.with_tuner(algorithm=algorithm), trials)
    t = sized.tuner
    oracle = oracles.make_oracle(t, kt.Objective(t.objective, layout.direction(t.objective)), oracle_seed(cfg.seed))
    oracle.hyperparameters = search_space(sized)
    oracle.verbose = 0
    private_api.attach_project(oracle, directory, "chief")
    return oracle, t


class Driver:
    """Workers that ask, report each planned epoch and end; the oldest running trial ends first."""

    def __init__(self, oracle, tuner, workers: int, seed: int = 0):
        self.oracle = oracle
        self.tuner = tuner
        self.free = deque(f"worker{i}" for i in range(workers))
        self.running: deque = deque()
        self.rng = np.random.default_rng(seed)
        self.times: dict[str, list[float]] = {"create": [], "update": [], "end": []}
        self.timing = False
        self.stopped = False

    def _call(self, kind: str, fn, *args):
        tick = time.perf_counter()
        out = fn(*args)
        if self.timing:
            self.times[kind].append(time.perf_counter() - tick)
        return out

    def step(self) -> None:
        """One request from a free worker, or one running trial's end when none is free or it was told to wait."""
        if self.free and not self.stopped:
            worker = self.free.popleft()
            trial = self._call("create", self.oracle.create_trial, worker)
            if trial.status == "RUNNING":
                self.running.append((worker, trial))
                return
            if trial.status == "STOPPED":
                self.stopped = True
                return
            self.free.append(worker)  # IDLE: asks again once a trial has ended
        if not self.running:
            self.stopped = True
            return
        worker, trial = self.running.popleft()
        values = trial.hyperparameters.values
        start, end = int(values.get("tuner/initial_epoch", 0)), int(values.get("tuner/epochs", self.tuner.max_epochs))
        level = float(self.rng.uniform(0.8, 0.97))
        for epoch in range(start, end):
            score = level - 0.3 / (epoch + 1) + float(self.rng.normal(0, 0.003))
            self._call("update", self.oracle.update_trial, trial.trial_id, {self.tuner.objective: score}, epoch)
        trial.status = "COMPLETED"
        self._call("end", self.oracle.end_trial, trial)
        self.free.append(worker)

    def grow_to(self, trials: int) -> None:
        while not self.stopped and len(self.oracle.trials) < trials:
            self.step()


def measure(cfg, algorithm: str, size: int, window: int, workers: int) -> dict:
    from hypermodels import private_api
    from search.engine.tuners import configure_keras_tuner

    configure_keras_tuner()  # a chief's writes: temp file + rename
    with tempfile.TemporaryDirectory() as tmp:
        oracle, tuner = _oracle(cfg, algorithm, size + window + workers + 10, tmp)
        if hasattr(oracle, "write_in_background"):  # as a chief serves it (`search.distributed.chief.serve`)
            oracle.write_in_background()
        with private_api.files_off(oracle):
            driver = Driver(oracle, tuner, workers)
            driver.grow_to(size)
        grown = len(oracle.trials)
        driver.grow_to(grown + 1)  # the first calls with files on write the whole state: not timed
        driver.timing = True
        driver.grow_to(grown + 1 + window)
        if hasattr(oracle, "wait_for_files"):
            oracle.wait_for_files()  # before the directory goes
    per = {k: v for k, v in driver.times.items() if v}
    trials = max(1, len(driver.times["end"]))
    total = sum(sum(v) for v in per.values())
    return {
        "algorithm": algorithm,
        "trials": grown,
        "window": trials,
        **{f"{k}_median_s": statistics.median(v) for k, v in per.items()},
        **{f"{k}_mean_s": statistics.fmean(v) for k, v in per.items()},
        **{f"{k}_calls": len(v) for k, v in per.items()},
        "per_trial_s": total / trials,
    }


def line(r: dict, base: dict | None) -> str:
    def ms(key):
        return f"{1e3 * r[key]:.3f}" if key in r else "-"

    ratio = f"{r['per_trial_s'] / base['per_trial_s']:.2f}x" if base else "1.00x"
    return (
        f"| {r['algorithm']} | {r['trials']:,} | {ms('create_median_s')} / {ms('create_mean_s')} | "
        f"{ms('update_median_s')} / {ms('update_mean_s')} | {ms('end_median_s')} / {ms('end_mean_s')} | "
        f"{1e3 * r['per_trial_s']:.2f} | {ratio} |"
    )


HEADER = (
    "| algorithm | trials held | create_trial ms (median / mean) | update_trial ms | end_trial ms "
    "| ms per trial (all its calls) | vs the smallest |",
    "|---|---|---|---|---|---|---|",
)


def main() -> None:
    from search.config import load_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist5k.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    parser.add_argument("--window", type=int, default=300, help="trials timed at each size")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    cfg = load_config(args.config)
    print(f"CPU: {cpu_model()}; {args.workers} workers; {args.window} trials timed per size", flush=True)
    print("\n".join(HEADER), flush=True)
    results = []
    for algorithm in args.algorithms:
        base = None
        for size in args.sizes:
            r = measure(cfg, algorithm, size, args.window, args.workers)
            results.append(r)
            print(line(r, base), flush=True)
            base = base or r
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"cpu": cpu_model(), "workers": args.workers, "window": args.window, "results": results}, f, indent=1
            )


if __name__ == "__main__":
    main()
