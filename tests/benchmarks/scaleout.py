"""The simulator's prediction for 2 workers against a real 2-worker search, side by side.

    python -m tests.benchmarks.scaleout                      # records curves (~4.5 min), then 3 real runs (~3 min)
    python -m tests.benchmarks.scaleout --curves configs/curves_mnist5k.json --repeats 1

1. Records the curves as `docs/scaleout.md` says: `configs/curves_mnist5k.yaml` run by a chief
   and 2 workers with 1 thread each on this machine (skipped with `--curves`).
2. Runs the real search (`configs/mnist5k.yaml`, a chief and 2 workers x 1 thread, fresh
   processes) `--repeats` times and simulates the same search with 2 workers over those curves.

Both sides are measured alike: from the first trial's start to the last trial's end, from the
real chief's `oracle.json` timeline and the simulator's clock (start-up, imports and data
loading are outside both: printed separately for the real runs). Prints trials, wall time and
utilisation of each, medians, and the prediction's error.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from search.analysis import simulate
from search.config import load_config
from search.runs import layout
from search.runtime import cpu_model
from tests.benchmarks.workers import run as run_distributed

RECORDING = "configs/curves_mnist5k.yaml"


def record(directory: Path) -> simulate.CurveTable:
    result = run_distributed(RECORDING, workers=2, threads=1, keep=directory)
    print(f"recorded {result['trials']} curves in {result['wall']:.0f} s (chief + 2 workers x 1 thread)", flush=True)
    return simulate.table_from_run(directory / "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist5k.yaml")
    parser.add_argument("--curves", help="a curves JSON file or recording run (default: record them now)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        table = simulate.load_table(args.curves) if args.curves else record(Path(tmp))
    cfg = load_config(args.config)
    simulate.check_table(cfg, table, args.curves or RECORDING)
    predicted = simulate.simulate(cfg, table, 2, target=None)
    real = []
    for i in range(args.repeats):
        result = run_distributed(args.config, workers=2, threads=1)
        measured = layout.timeline_accounting(result["timeline"])
        measured["process_wall_s"] = result["wall"]
        measured["best"] = result["best"]
        real.append(measured)
        print(
            f"real run {i + 1}: {measured['trials']} trials, search {measured['wall_s']:.1f} s "
            f"(chief process {result['wall']:.1f} s), utilisation {100 * measured['utilisation']:.0f} %, "
            f"best {result['best']:.4f}",
            flush=True,
        )
    wall = statistics.median(r["wall_s"] for r in real)
    util = statistics.median(r["utilisation"] for r in real)
    print(f"{args.config}, 2 workers x 1 thread, CPU {cpu_model()}:")
    print(
        f"  real (median of {len(real)}): {statistics.median(r['trials'] for r in real):.0f} trials, "
        f"search {wall:.1f} s, utilisation {100 * util:.0f} %"
    )
    print(
        f"  simulated: {predicted['trials']} trials, search {predicted['wall_s']:.1f} s, "
        f"utilisation {100 * predicted['utilisation']:.0f} %, best {predicted['best']:.4f}"
    )
    print(
        f"  prediction / real wall time: {predicted['wall_s'] / wall:.3f} ({100 * (predicted['wall_s'] / wall - 1):+.1f} %)"
    )


if __name__ == "__main__":
    main()
