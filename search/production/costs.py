"""What each architecture of a run costs where it will run: parameters, `.keras` size, inference latency.

Trials that share a `graph_key` (`hypermodels.base.ImageHyperModel.graph_key`: every hyperparameter
that shapes the model's graph, augmentation strengths, learning rates and the rest left out) build the
same network, so costs are measured once per architecture, after the search or on demand
(`ktsearch costs`, and `report` and `export --max-*` for architectures not measured yet), never inside
trials: a latency measured on two cores busy training is noise. For each architecture this builds
the trial's model through the search's own HyperModel, takes its inference model (no augmentation:
what `ktsearch train` saves) and records

* `params`: its parameter count (`count_params`);
* `size_bytes`: the size of that model saved as `.keras`;
* `latency_ms`: at batch 1 and batch 32, the median (and 90th percentile) over timed calls of the
  model under `tf.function` on random pixels, after warm-up calls (tracing excluded), each call
  waited for (`.numpy()`); the architectures of a group are timed in interleaved rounds (`measure`),
  so that other work on the machine does not favour one of them.

The device (the first GPU TensorFlow sees, else the CPU), the CPU model (`lscpu`), TensorFlow's
thread settings and the versions are recorded with the costs in `RUN_DIR/costs.json`. Latencies
compare only on one machine, and a file may hold the target device's (measured there, copied back):
architectures are added to a file only on the machine that measured it; elsewhere `--remeasure`
replaces it all.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from search.errors import UserError
from search.runs import integrity, layout

COSTS_FILE = "costs.json"
FORMAT = 1
BATCHES = (1, 32)
REPEATS = 50  # timed calls per architecture and batch size, at most
CALLS = 5  # of them per round
MIN_REPEATS = 15  # at least, however long they take
GROUP = 16  # architectures built and timed together
WARMUP = 10  # untimed calls first (tracing, thread pools, caches), and at least WARMUP_SECONDS of them
WARMUP_SECONDS = 0.3
SECONDS_PER_BATCH = 2.0
MB = 1e6


def architecture_id(key: tuple) -> str:
    return hashlib.sha1(repr(key).encode()).hexdigest()[:10]


def read(run_dir: str | Path) -> dict | None:
    """The run's costs.json, or None (not measured, or not a costs file of this format)."""
    data, _ = layout.load_json(Path(run_dir) / COSTS_FILE)
    ok = isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("architectures"), dict)
    return data if ok and isinstance(data.get("trials"), dict) else None


def trial_costs(data: dict | None) -> dict[str, dict]:
    """{trial id: its architecture's costs (with "architecture": its id)} of the measured trials of a costs
    file's content (`read`; None: no trial measured)."""
    if data is None:
        return {}
    out = {}
    for trial_id, arch in data["trials"].items():
        cost = data["architectures"].get(arch)
        if cost is not None:
            out[trial_id] = cost | {"architecture": arch}
    return out


def machine() -> dict:
    """Where latencies are measured: device, CPU model, thread settings, versions."""
    import tensorflow as tf

    from search.runtime import cpu_model

    gpus = tf.config.list_physical_devices("GPU")
    device = "CPU"
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"GPU {details.get('device_name', gpus[0].name)}"
    return {
        "device": device,
        "cpu": cpu_model() or platform.processor() or "unknown CPU",
        "cores": os.cpu_count(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "tensorflow": tf.__version__,
    }


def same_machine(a: dict, b: dict) -> bool:
    keys = ("device", "cpu", "cores", "intra_op_threads", "inter_op_threads", "tensorflow")
    return all(a.get(k) == b.get(k) for k in keys)


def model_input(run_dir: Path, cfg) -> tuple[tuple, int]:
    """(input shape, classes) of the run's models: recorded by `tune`, else from its data."""
    data, _ = layout.load_json(run_dir / layout.MODEL_INPUT_FILE)
    if (
        isinstance(data, dict)
        and isinstance(data.get("input_shape"), list)
        and isinstance(data.get("num_classes"), int)
    ):
        return tuple(data["input_shape"]), data["num_classes"]
    from search.data import sources as data_module

    splits = data_module.load_splits(cfg.data, cfg.seed)
    return tuple(splits.input_shape), splits.num_classes


def architectures(hypermodel, trials: list[dict]) -> dict[str, dict]:
    """{architecture id: {"trials": ids, "values": the first trial's values}} of the completed trials."""
    import keras_tuner as kt

    out: dict[str, dict] = {}
    for t in trials:
        if t["status"] != "COMPLETED":
            continue
        hp = kt.HyperParameters()
        hp.values = dict(t["hyperparameters"])
        arch = architecture_id(hypermodel.graph_key(hp))
        out.setdefault(arch, {"trials": [], "values": t["hyperparameters"]})["trials"].append(t["trial_id"])
    return out


def _prepare(hypermodel, values: dict, input_shape: tuple) -> dict:
    """The inference model the HyperModel builds from `values`: its parameters, `.keras` size, a traced
    call and inputs per batch size, warmed up."""
    import keras_tuner as kt
    import tensorflow as tf

    hp = kt.HyperParameters()
    hp.values = dict(values)
    model = hypermodel.inference_model(hypermodel.build(hp))
    with tempfile.TemporaryDirectory(prefix="ktsearch-costs-") as scratch:
        path = Path(scratch) / "model.keras"
        model.save(path)
        size = path.stat().st_size
    call = tf.function(lambda x: model(x, training=False))
    inputs = {batch: tf.random.uniform((batch, *input_shape), 0, 255, seed=batch) for batch in BATCHES}
    for x in inputs.values():
        warm_until = time.perf_counter() + WARMUP_SECONDS
        for i in itertools.count():
            call(x).numpy()
            if i + 1 >= WARMUP and time.perf_counter() >= warm_until:
                break
    return {"params": int(model.count_params()), "size_bytes": size, "call": call, "inputs": inputs}


def measure(hypermodel, items: dict[str, dict], input_shape: tuple, log: Callable[[str], None] = print) -> dict:
    """{architecture: parameters, `.keras` size and latencies} of the inference models the HyperModel builds
    from each item's values. Up to `GROUP` architectures are built at a time and timed in interleaved
    rounds (`CALLS` calls per architecture and batch size each), so that a burst of other work on the
    machine slows every architecture of the group alike instead of one of them; at most `REPEATS` timed
    calls each, fewer (at least `MIN_REPEATS`) when a round of the group takes longer than the time allowed
    (`SECONDS_PER_BATCH` per architecture and batch size)."""
    import keras

    out: dict[str, dict] = {}
    names = list(items)
    for start in range(0, len(names), GROUP):
        group = names[start : start + GROUP]
        built = {arch: _prepare(hypermodel, items[arch]["values"], input_shape) for arch in group}
        times: dict[str, dict[int, list[float]]] = {arch: {b: [] for b in BATCHES} for arch in group}
        deadline = time.perf_counter() + SECONDS_PER_BATCH * len(BATCHES) * len(group)
        for done in range(0, REPEATS, CALLS):
            if done >= MIN_REPEATS and time.perf_counter() > deadline:
                break
            for arch in group:
                call, inputs = built[arch]["call"], built[arch]["inputs"]
                for batch in BATCHES:
                    for _ in range(CALLS):
                        begin = time.perf_counter()
                        call(inputs[batch]).numpy()
                        times[arch][batch].append(1000 * (time.perf_counter() - begin))
        for arch in group:
            latency = {}
            for batch, ts in times[arch].items():
                ts.sort()
                latency[str(batch)] = {
                    "median": round(statistics.median(ts), 4),
                    "p90": round(ts[min(len(ts) - 1, int(0.9 * len(ts)))], 4),
                    "repeats": len(ts),
                }
            cost = {"params": built[arch]["params"], "size_bytes": built[arch]["size_bytes"], "latency_ms": latency}
            out[arch] = cost
            log("  " + describe(arch, cost, items[arch]["trials"]))
        built.clear()
        keras.backend.clear_session()  # the next group builds from a clean graph state
    return out


def measure_run(
    run_dir: str | Path, log: Callable[[str], None] = print, remeasure: bool = False, strict: bool = True
) -> tuple[dict, int]:
    """Measure the run's architectures that costs.json lacks (all with `remeasure`); returns (the costs
    file's content, architectures measured now).

    A costs.json measured on another machine that lacks some of the run's architectures is left as it
    is (its latencies may be the target device's): UserError saying so, or with `strict` False a warning
    to `log` and the file's content unchanged."""
    from search.models import build_hypermodel
    from search.runtime import import_tensorflow

    run_dir = Path(run_dir)
    if not (run_dir / layout.CONFIG_FILE).is_file():
        raise UserError(str(run_dir), "", "expected a run directory with config.yaml (written by ktsearch tune)")
    cfg = integrity.saved_config(run_dir)[1]
    trials = layout.read_trials(run_dir)
    if not any(t["status"] == "COMPLETED" for t in trials):
        raise UserError(str(run_dir), "", "has no completed trial yet: no architecture to measure")
    import_tensorflow()
    input_shape, classes = model_input(run_dir, cfg)
    hypermodel = build_hypermodel(cfg, input_shape, classes)
    found = architectures(hypermodel, trials)
    here = machine()
    old = None if remeasure else read(run_dir)
    if old is None and not remeasure and (run_dir / COSTS_FILE).exists():
        log(f"{run_dir / COSTS_FILE} is not a costs file ktsearch can read: measuring every architecture again")
    missing = [arch for arch in found if old is not None and arch not in old["architectures"]]
    if old is not None and missing and not same_machine(old["measured"], here):
        # Latencies compare on one machine only, and those of the file may be the target device's: never mixed,
        # never replaced without being asked.
        was = old["measured"]
        problem = (
            f"was measured on {was.get('device')} ({was.get('cpu')}), this machine is {here['device']} "
            f"({here['cpu']}): {len(missing)} architecture(s) of the run are not in it; measure them on that machine "
            f"(ktsearch costs {run_dir}), or all of them here: ktsearch costs {run_dir} --remeasure"
        )
        if strict:
            raise UserError(str(run_dir / COSTS_FILE), "", problem)
        log(f"warning: {run_dir / COSTS_FILE} {problem}; showing the {len(old['architectures'])} measured")
        return old, 0
    known = {} if old is None else old["architectures"]
    todo = [arch for arch in found if arch not in known]
    if todo:
        log(f"measuring {len(todo)} of the run's {len(found)} architecture(s) on {here['device']} ({here['cpu']})")
    measured = dict(known) | measure(hypermodel, {arch: found[arch] for arch in todo}, input_shape, log)
    for arch, info in found.items():
        measured[arch] = measured[arch] | {"trials": info["trials"]}
    data = {
        "format": FORMAT,
        "measured": here | {"at": datetime.now(UTC).isoformat(timespec="seconds")} if todo else old["measured"],
        "method": {
            "batches": list(BATCHES),
            "statistic": "median of timed calls after warm-up, architectures interleaved in rounds",
            "max_repeats": REPEATS,
            "calls_per_round": CALLS,
            "seconds_per_batch": SECONDS_PER_BATCH,
            "model": "inference model (no augmentation) under tf.function",
        },
        "architectures": measured,
        "trials": {trial_id: arch for arch, info in found.items() for trial_id in info["trials"]},
    }
    if data != old:  # unchanged (nothing new measured, no new trial): the file is left alone
        layout.write_json(run_dir / COSTS_FILE, data)
    return data, len(todo)


def describe(arch: str, cost: dict, trials: list[str]) -> str:
    lat = cost["latency_ms"]
    ids = ", ".join(trials[:6]) + (f" and {len(trials) - 6} more" if len(trials) > 6 else "")
    return (
        f"architecture {arch}: {cost['params']:,} params, {cost['size_bytes'] / MB:.3f} MB, "
        f"{lat['1']['median']:.3f} ms at batch 1, {lat['32']['median']:.3f} ms at batch 32 (trials {ids})"
    )


def where(data: dict) -> str:
    """'on DEVICE (CPU model)' of a costs file."""
    m = data["measured"]
    return f"on {m['device']} ({m['cpu']}, {m['cores']} cores), TensorFlow {m['tensorflow']}"


# -- Pareto fronts --------------------------------------------------------------------------------


def dominators(points: list[tuple[str, float, float]], direction: str) -> dict[str, str | None]:
    """{id: None when on the Pareto front of (objective, cost), else the id of a point that dominates it}.

    `points`: (id, objective, cost). A point is dominated when another is at least as good on both
    and better on one; among its dominators the one with the best objective is named (ties: lower cost)."""
    sign = 1.0 if direction == "max" else -1.0
    out: dict[str, str | None] = {}
    for pid, score, cost in points:
        better = [
            (q, s, c)
            for q, s, c in points
            if q != pid and sign * s >= sign * score and c <= cost and (sign * s > sign * score or c < cost)
        ]
        out[pid] = min(better, key=lambda p: (-sign * p[1], p[2], p[0]))[0] if better else None
    return out
