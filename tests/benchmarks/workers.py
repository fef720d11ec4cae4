"""Trials per hour of a distributed search: one worker with 2 threads against two with 1 thread each.

    python -m tests.benchmarks.workers                 # 3 repeats of each, ~10 min on 2 CPU cores
    python -m tests.benchmarks.workers --repeats 1

Each run is `ktsearch tune CONFIG --chief` plus its workers (`--worker --threads N`), all on this
machine, fresh processes, timed from the chief's start to its exit (imports and the workers'
start-up included). The two set-ups alternate. Prints per-run wall time, trials and trials per
hour, then medians and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(config: str, workers: int, threads: int, keep: Path | None = None) -> dict:
    """One distributed search on this machine; `keep`: the results directory to leave it in (else a temporary one)."""
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(keep) if keep is not None else scratch
        port = _free_port()
        common = [sys.executable, "-m", "search", "tune", config, "--results-dir", tmp, "--name", "bench"]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        start = time.perf_counter()
        chief = subprocess.Popen(
            [*common, "--chief", "--bind", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE, text=True
        )
        procs = [
            subprocess.Popen(
                [
                    *common,
                    "--worker",
                    "--oracle",
                    f"127.0.0.1:{port}",
                    "--worker-id",
                    f"w{i}",
                    "--threads",
                    str(threads),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            for i in range(workers)
        ]
        out, _ = chief.communicate()
        wall = time.perf_counter() - start
        for p in procs:
            p.wait()
        if chief.returncode != 0 or any(p.returncode for p in procs):
            sys.exit(f"a run failed:\n{out[-3000:]}")
        summary = json.loads((Path(tmp) / "bench" / "summary.json").read_text())
        oracle = json.loads((Path(tmp) / "bench" / "tuner" / "oracle.json").read_text())
    trials = len(summary["trials"])
    return {
        "wall": wall,
        "trials": trials,
        "per_hour": trials * 3600 / wall,
        "best": summary["best_score"],
        "timeline": oracle["ktsearch_budget"]["timeline"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist5k.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    setups = {"1 worker x 2 threads": (1, 2), "2 workers x 1 thread": (2, 1)}
    results: dict[str, list[dict]] = {name: [] for name in setups}
    for i in range(args.repeats):
        for name in sorted(setups, reverse=i % 2 == 1):
            result = run(args.config, *setups[name])
            results[name].append(result)
            print(
                f"repeat {i + 1} {name}: {result['wall']:.1f} s, {result['trials']} trials, "
                f"{result['per_hour']:.0f} trials/hour, best {result['best']:.4f}",
                flush=True,
            )
    medians = {name: statistics.median(r["per_hour"] for r in rs) for name, rs in results.items()}
    base = medians["1 worker x 2 threads"]
    print(f"{args.config}, chief + workers on this machine, median of {args.repeats}:")
    for name, rs in results.items():
        wall = statistics.median(r["wall"] for r in rs)
        print(f"  {name}: {medians[name]:.0f} trials/hour ({wall:.1f} s a search), {medians[name] / base:.2f}x")


if __name__ == "__main__":
    main()
