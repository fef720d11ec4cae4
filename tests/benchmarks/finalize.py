"""What reusing a configuration's compiled model saves `finalize`, measured side by side.

    python -m tests.benchmarks.finalize                 # default search's run, top 3 x 3 seeds, 3 repeats
    python -m tests.benchmarks.finalize --run results/mnist5k-cnn --repeats 5

Copies a finished run (default: runs `ktsearch tune configs/mnist5k.yaml` into a temporary
directory first), then alternates `finalize` with and without compiled-model reuse on fresh
copies, and prints each one's wall time, the median ratio, and whether both gave the same
scores (reuse must not change what a seed trains to).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from search.runtime import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a finished run directory (default: run the default search first)")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from search import tune
    from search.production.finalize import finalize

    work = Path(tempfile.mkdtemp(prefix="ktsearch-bench-finalize-"))
    run = Path(args.run) if args.run else None
    if run is None:
        tune("configs/mnist5k.yaml", results_dir=str(work), quiet=True, log=lambda line: None)
        run = work / "mnist5k-cnn"
    print(f"CPU: {cpu_model()}; run {run}; top {args.top} x {args.seeds} seeds, {args.repeats} repeats")
    times: dict[bool, list[float]] = {True: [], False: []}
    scores: dict[bool, dict] = {}
    for repeat in range(args.repeats):
        for reuse in (False, True) if repeat % 2 == 0 else (True, False):
            copy = work / f"copy-{repeat}-{reuse}" / run.name
            shutil.copytree(run, copy, ignore=shutil.ignore_patterns("finalize"))
            start = time.perf_counter()
            summary = finalize(copy, args.top, args.seeds, log=lambda line: None, reuse=reuse)
            times[reuse].append(time.perf_counter() - start)
            scores[reuse] = {r["trial_id"]: r["objective"]["values"] for r in summary["finalists"]}
            print(f"  repeat {repeat + 1}, reuse {'on ' if reuse else 'off'}: {times[reuse][-1]:.1f} s", flush=True)
            shutil.rmtree(copy.parent)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"median: reuse off {off:.1f} s, reuse on {on:.1f} s: {on / off:.2f}x the time")
    print(f"same scores with and without reuse: {scores[True] == scores[False]}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
