"""`ktsearch simulate`: how many workers a search can use, by discrete-event simulation.

A distributed search is a chief's oracle and N workers that each ask it for a trial, train it and
report back (`search.distributed`). The simulator replays that loop in simulated time, with the
**oracle classes the real search uses** (`search.algorithms.oracles.make_oracle`: KerasTuner's Hyperband,
ktsearch's BOHB and ASHA, KerasTuner's random search), on a temporary project directory, and
nothing but the training replaced:

* **The recorded table** (`CurveTable`): real trials of the same search space, each trained from
  scratch to `max_epochs` with early stopping that never fires (`configs/curves_mnist5k.yaml`),
  with per epoch the objective, early stopping's monitor and the epoch's seconds
  (`epochs.json`'s `epoch_seconds`), plus what the run's oracle timeline says a trial costs
  beyond its epochs and how long a worker takes between trials.
* **The surrogate**: a proposed configuration trains as its nearest recorded configuration
  (distance in KerasTuner's unit cube of each dimension, `value_to_prob`; a differing choice
  counts 1). A trial from epoch `a` to `b` (a Hyperband/ASHA continuation starts at its
  parent's last epoch) reads epochs `a..b-1` of that curve: the same uninterrupted curve
  whether or not the configuration was paused at `a` (KerasTuner restarts the optimizer at a
  continuation; the table cannot say what that costs).
* **A trial's seconds**: the overhead measured per trial + its epochs' seconds + the tracing
  of a new graph when the worker's pool of compiled models (`tuner.reuse_models`, by the
  HyperModel's `graph_key`) does not hold it. Early stopping applies with the config's
  monitor, patience and min_delta, as Keras's `EarlyStopping` does in each trial's fit.
* **A worker** asks, trains, reports, spends `gap_s` on its bookkeeping, asks again; told IDLE (Hyperband waiting
  for a round, ASHA for a promotion) it backs off as a real worker does
  (`distributed.IDLE_WAIT`: 0.2 s doubling to 2 s); told STOPPED it is done.
* **The chief** is a server with one queue: a request (a worker asking for a trial, or reporting one:
  its epochs' reports and its end together) waits while the chief answers the ones that came before
  it, then takes as long as the oracle's real call took in this process (`chief_service` fixes it
  instead, for worked examples). A saturated chief shows as workers waiting for it, not as a chief
  busy more than all the time.

Not simulated: start-up (imports, data loading, workers connecting), gRPC (the messages' encoding
and the network), failures and contention between workers (each runs at the table's speed: a
cluster of identical machines, or, on one machine, the setting the table was recorded in). A
worker's epoch reports reach the chief when its trial ends, not one per epoch.

Accounting per search: the wall time (first request to the last report answered), trials and epochs,
worker utilisation (worker-seconds in trials and their bookkeeping / (N x wall)), the rest split
into waiting (IDLE), at the chief (from a request to its answer) and done (STOPPED while others still
train), until when every worker was busy (the first IDLE or STOPPED), the best score and when the
best so far first reached the target. And how busy the chief is: the seconds it spends answering
within the wall time, as a share of it (its oracle on this CPU, without gRPC, and without its file
writes unless `chief_files`).
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
import tempfile
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

from search.algorithms import ALGORITHMS, TRIALS
from search.distributed.role import IDLE_WAIT
from search.errors import UserError
from search.runs import integrity, layout
from search.runtime import cpu_model

TABLE_FORMAT = 1
TRACE_MIN_S = 0.3  # a first epoch this much slower than the curve's typical epoch traced a new graph


# -- the recorded table -----------------------------------------------------------------


@dataclass
class Curve:
    """One recorded configuration trained from scratch to `max_epochs`."""

    trial_id: str
    values: dict  # its hyperparameter values
    scores: list[float]  # the objective after each epoch
    monitor: list[float]  # early stopping's monitor after each epoch
    epoch_seconds: list[float]  # each epoch's seconds, the first without the tracing of a new graph


@dataclass
class CurveTable:
    """Recorded curves and the per-trial costs of the run that recorded them."""

    objective: str
    direction: str  # "max" or "min"
    monitor: str
    max_epochs: int
    recorded: dict  # the recording config's data, hypermodel and search_space sections: what the curves hold
    curves: list[Curve]
    overhead_s: float  # a trial's seconds beyond its epochs (median over the recorded trials)
    trace_s: float  # tracing a graph the worker has not compiled yet (median over those that did)
    gap_s: float  # a worker's seconds between reporting a trial and asking for the next (median)
    source: dict = field(default_factory=dict)  # the run, its workers, the machine

    def to_json(self) -> dict:
        return {"format": TABLE_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> CurveTable:
        data = {k: v for k, v in data.items() if k != "format"}
        data["curves"] = [Curve(**c) for c in data["curves"]]
        return cls(**data)

    def typical_epoch_s(self) -> float:
        return statistics.median(s for c in self.curves for s in c.epoch_seconds[1:] or c.epoch_seconds)

    def best_scores(self) -> list[float]:
        pick = max if self.direction == "max" else min
        return [pick(c.scores) for c in self.curves]

    def default_target(self) -> float:
        """The score 10 % of the recorded configurations reach (their best epoch)."""
        ranked = sorted(self.best_scores(), reverse=self.direction == "max")
        return ranked[max(0, math.ceil(0.1 * len(ranked)) - 1)]


def load_table(path: str | Path) -> CurveTable:
    """A table from a `--write-curves` JSON file, or straight from a recording run's directory."""
    path = Path(path)
    if path.is_dir():
        return table_from_run(path)
    if not path.is_file():
        raise UserError(str(path), "", "expected a recorded run's directory or a curves JSON file (--write-curves)")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != TABLE_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        table = CurveTable.from_json(data)
        for curve in table.curves:
            lengths = {len(curve.scores), len(curve.monitor), len(curve.epoch_seconds)}
            if len(lengths) != 1 or lengths.pop() < table.max_epochs:
                raise ValueError(f"curve {curve.trial_id} does not hold {table.max_epochs} epochs of each series")
        if len(table.curves) < 2:
            raise ValueError(f"{len(table.curves)} curve(s), at least 2 needed")
        return table
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise UserError(str(path), "", f"expected a curves JSON file of format {TABLE_FORMAT} ({e})") from None


def table_from_run(run_dir: Path) -> CurveTable:
    """The table of a finished recording run: every completed trial must hold a whole curve."""
    from search.config import load_config

    config_file = run_dir / layout.CONFIG_FILE
    oracle_file = run_dir / layout.TUNER_DIR / "oracle.json"
    if not config_file.is_file() or not oracle_file.is_file():
        raise UserError(str(run_dir), "", "expected a run directory written by ktsearch tune (config.yaml, tuner/)")
    cfg = load_config(config_file)
    t, es = cfg.tuner, cfg.early_stopping
    how = (
        "a run recorded for simulation: random search, early_stopping.patience >= tuner.max_epochs "
        "(as configs/curves_mnist5k.yaml), with this ktsearch (epochs.json's epoch_seconds)"
    )
    if ALGORITHMS[t.algorithm].schedule != TRIALS or es.patience < t.max_epochs:
        raise UserError(str(run_dir), "tuner.algorithm", f"expected {how}; got {t.algorithm}, patience {es.patience}")
    oracle, problem = integrity.read_oracle(oracle_file)
    if problem:
        raise UserError(
            str(oracle_file), "", f"is damaged ({problem}); resuming the run rebuilds it: ktsearch tune {config_file}"
        )
    timeline = (oracle.get("ktsearch_budget") or {}).get("timeline") or {}
    curves, overheads, traces = [], [], []
    for trial in layout.read_trials(run_dir):
        record = trial["record"]
        if trial["status"] != "COMPLETED" or record is None:
            continue
        history, seconds = record.get("history", {}), record.get("epoch_seconds")
        scores, monitor = history.get(t.objective), history.get(es.monitor)
        if not seconds or not scores or not monitor or len(seconds) < t.max_epochs:
            raise UserError(
                str(run_dir),
                f"trial {trial['trial_id']}",
                f"expected {how}; it holds {len(seconds or [])} of {t.max_epochs} timed epochs",
            )
        typical = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
        traced = seconds[0] - typical
        if traced > TRACE_MIN_S:
            traces.append(traced)
        first = seconds[0] - max(0.0, traced)
        curves.append(
            Curve(trial["trial_id"], trial["hyperparameters"], scores, monitor, [round(first, 4), *seconds[1:]])
        )
        span = timeline.get(trial["trial_id"])
        if span is not None and span[2] is not None:
            overheads.append(span[2] - span[1] - sum(seconds))
    if len(curves) < 2:
        raise UserError(str(run_dir), "", f"expected {how}, with at least 2 completed trials; found {len(curves)}")
    gaps, workers = _gaps(timeline)
    return CurveTable(
        objective=t.objective,
        direction=layout.direction(t.objective),
        monitor=es.monitor,
        max_epochs=t.max_epochs,
        recorded=recorded_sections(cfg),
        curves=curves,
        overhead_s=round(statistics.median(overheads), 4) if overheads else 0.0,
        trace_s=round(statistics.median(traces), 4) if traces else 0.0,
        gap_s=round(statistics.median(gaps), 4) if gaps else 0.0,
        source={
            "run": str(run_dir),
            "config": cfg.name,
            "data": cfg.data.source,
            "workers": workers,
            "cpu": cpu_model(),
        },
    )


def _gaps(timeline: dict) -> tuple[list[float], int]:
    by_worker: dict[str, list] = {}
    for worker, start, end in timeline.values():
        if end is not None:
            by_worker.setdefault(worker, []).append((start, end))
    gaps = []
    for spans in by_worker.values():
        spans.sort()
        gaps += [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False) if b[0] >= a[1]]
    return gaps, len(by_worker)


# -- the surrogate ----------------------------------------------------------------------


class Surrogate:
    """A proposed configuration -> its nearest recorded curve; a trial -> its epochs, score and seconds.

    Args:
        table: the recorded curves.
        hyperparameters: KerasTuner's HyperParameters of the simulated search (the table's space).
        patience, min_delta: the config's early stopping.
    """

    def __init__(self, table: CurveTable, hyperparameters, patience: int, min_delta: float):
        self.table = table
        self.hps = {hp.name: hp for hp in hyperparameters.space}
        self.patience = patience
        self.min_delta = min_delta
        self.monitor_max = layout.direction(table.monitor) == "max"
        self._coords = [self._coordinates(c.values) for c in table.curves]
        self._cache: dict[str, Curve] = {}

    def _coordinates(self, values: dict) -> dict:
        out = {}
        for name, value in values.items():
            hp = self.hps.get(name)
            if hp is None:
                continue
            if type(hp).__name__ in ("Choice", "Boolean", "Fixed") or isinstance(value, (bool, str)):  # unordered
                out[name] = ("choice", value)
            else:
                out[name] = ("number", float(hp.value_to_prob(value)))
        return out

    def nearest(self, values: dict) -> Curve:
        """The recorded curve closest to `values` (the first of equals, in trial order)."""
        key = json.dumps(values, sort_keys=True, default=str)
        if key in self._cache:
            return self._cache[key]
        mine = self._coordinates(values)
        best, best_d = 0, math.inf
        for i, theirs in enumerate(self._coords):
            d = 0.0
            for name in mine.keys() | theirs.keys():
                a, b = mine.get(name), theirs.get(name)
                if a is None or b is None:
                    d += 1.0  # a conditional dimension only one of them has
                elif a[0] == "choice" or b[0] == "choice":
                    d += float(a[1] != b[1])
                else:
                    d += (a[1] - b[1]) ** 2
            if d < best_d:
                best, best_d = i, d
        self._cache[key] = curve = self.table.curves[best]
        return curve

    def epochs_run(self, curve: Curve, initial: int, epochs: int) -> list[int]:
        """The epochs a fit from `initial` up to `epochs` runs under Keras's EarlyStopping."""
        best, wait, ran = None, 0, []
        for epoch in range(initial, epochs):
            ran.append(epoch)
            current = curve.monitor[epoch]
            wait += 1
            if best is None or (
                current - self.min_delta > best if self.monitor_max else current + self.min_delta < best
            ):
                best, wait = current, 0
                continue
            if wait >= self.patience and epoch > 0:
                break
        return ran

    def trial(self, values: dict, initial: int, epochs: int) -> tuple[Curve, list[int], float]:
        """(curve, epochs run, seconds of training without tracing or overhead)."""
        curve = self.nearest(values)
        ran = self.epochs_run(curve, initial, min(epochs, len(curve.scores)))
        return curve, ran, sum(curve.epoch_seconds[e] for e in ran)


# -- the simulation ---------------------------------------------------------------------


class SimClock:
    """Simulated seconds: the oracles' clock (their time budget reads it)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Worker:
    name: str
    pool: OrderedDict = field(default_factory=OrderedDict)  # graph keys of its compiled models, LRU
    idle_wait: float = IDLE_WAIT[0]
    busy: float = 0.0  # seconds in trials
    stopped_at: float | None = None
    last_end: float | None = None  # when its last trial ended


def graph_keys(cfg):
    """values -> the graph key a worker's pool of compiled models uses (the configured HyperModel's)."""
    from search.models import build_hypermodel

    size = tuple(cfg.data.image_size) if getattr(cfg.data, "image_size", None) else (32, 32)
    try:
        hypermodel = build_hypermodel(cfg, (*size, 3), 2)
        key = hypermodel.graph_key
        key(SimpleNamespace(values={}))
    except Exception:  # a HyperModel without a usable graph_key: every unordered value decides the graph
        return lambda values: tuple(sorted((k, v) for k, v in values.items() if isinstance(v, (bool, str))))
    return lambda values: key(SimpleNamespace(values=values))


def search_space(cfg):
    """KerasTuner's HyperParameters of the config's search space (what the tuner gives its oracle)."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    cfg.space.declare(hp)
    return hp


def recorded_sections(cfg) -> dict:
    """What decides a curve: the data, the HyperModel and the whole search space (fixed values too)."""
    d = cfg.to_dict()
    return {"data": d["data"], "hypermodel": d["hypermodel"], "search_space": d["search_space"]}


def check_table(cfg, table: CurveTable, where: str) -> None:
    """The curves must have been recorded with the config's data, HyperModel and search space (no TensorFlow)."""
    mine = _flat(recorded_sections(cfg))
    theirs = _flat(table.recorded)
    for key in sorted(mine.keys() | theirs.keys()):
        if mine.get(key) != theirs.get(key):
            raise UserError(
                where,
                key,
                f"expected the curves' {_show(theirs.get(key))} (recorded with {table.source.get('config')}), "
                f"got {_show(mine.get(key))} in {cfg.source}: record curves of this search (docs/scaleout.md)",
            )
    if cfg.tuner.max_epochs > table.max_epochs:
        raise UserError(
            where, "tuner.max_epochs", f"expected at most the curves' {table.max_epochs}, got {cfg.tuner.max_epochs}"
        )
    for key, mine_, theirs_ in (
        ("tuner.objective", cfg.tuner.objective, table.objective),
        ("early_stopping.monitor", cfg.early_stopping.monitor, table.monitor),
    ):
        if mine_ != theirs_:
            raise UserError(where, key, f"expected the curves' {theirs_}, got {mine_} in {cfg.source}")


_IGNORED = ("data.cache",)  # how the data is read, not what it is


def _flat(sections: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in sections.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not ({"min", "max"} & value.keys() or "choice" in value):
            out.update(_flat(value, name + "."))
        elif not name.startswith(_IGNORED):
            out[name] = value
    return out


def _show(value) -> str:
    return "nothing" if value is None else json.dumps(value, default=str)


def simulate(
    cfg,
    table: CurveTable,
    workers: int,
    *,
    target: float | None = None,
    keys=None,
    chief_files: bool = False,
    chief_service: float | None = None,
) -> dict:
    """One search of `cfg` (its tuner section as it is) with `workers` simulated workers.

    `chief_service`: seconds the chief takes per request (a test's worked example; 0: it answers at once);
    None: the real seconds of the oracle's calls this simulation makes.

    `chief_files`: the oracle writes its files as a chief does (through ktsearch's atomic writes), so
    that the chief's load includes them; slower (every call rewrites the whole `oracle.json`).

    Returns the accounting described in the module doc, the oracle's class, `best_over_time`
    [(seconds, best so far)] and `schedule` (every trial: worker, start, end, parent, epochs run,
    values, score).
    """
    import keras_tuner as kt

    from hypermodels import private_api
    from search.algorithms import oracles
    from search.engine.seeding import oracle_seed

    t, es = cfg.tuner, cfg.early_stopping
    hps = search_space(cfg)
    surrogate = Surrogate(table, hps, es.patience, es.min_delta)
    keys = keys or graph_keys(cfg)
    clock = SimClock()
    objective = kt.Objective(t.objective, table.direction)
    oracle = oracles.make_oracle(t, objective, oracle_seed(cfg.seed), clock=clock)
    oracle.hyperparameters = hps
    oracle.verbose = 0
    with tempfile.TemporaryDirectory() as tmp:
        private_api.attach_project(oracle, tmp, "simulation")
        if chief_files:
            from search.engine.tuners import configure_keras_tuner

            configure_keras_tuner()  # a chief's setting: KerasTuner's JSON files through atomic writes
            oracle.write_in_background()  # and a finished trial's trial.json written off the calls
        else:
            private_api.keep_in_memory(oracle)  # a simulated search never reads its files back
        result = _run(oracle, surrogate, table, t, workers, clock, keys, target, chief_service)
        if chief_files:
            oracle.wait_for_files()  # before the directory goes
    return {"oracle": type(oracle).__name__, **result}


def _run(
    oracle, surrogate: Surrogate, table: CurveTable, tuner, n: int, clock: SimClock, keys, target, service
) -> dict:
    maximize = table.direction == "max"
    crew = [Worker(f"worker{i}") for i in range(n)]
    events: list = [(0.0, i, "ask", i, None) for i in range(n)]  # (time, order, what, worker, trial)
    heapq.heapify(events)
    order = n
    trials = epochs = 0
    best, reached, best_over_time, last_end, first_wait = None, None, [], 0.0, None
    running = 0  # trials in flight
    chief = 0.0  # seconds the chief spent answering: the real seconds of the oracle's calls (or `service`)
    free_at = 0.0  # when the chief is done with the requests before: the next one waits until then
    requests: list[tuple[float, float, float]] = []  # (arrived, started, answered) of every request
    schedule: list[dict] = []  # every trial: worker, start, end, parent, epochs run, values, score

    def push(at: float, what: str, w: int, payload=None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, what, w, payload))

    def serve(arrived: float, call, *args) -> tuple[float, object]:
        """A request that reached the chief at `arrived`, answered in arrival order: (when answered, answer)."""
        nonlocal chief, free_at
        start = max(arrived, free_at)
        clock.now = start
        tick = time.perf_counter()
        answer = call(*args)
        spent = time.perf_counter() - tick if service is None else service
        chief += spent
        free_at = start + spent
        requests.append((arrived, start, free_at))
        return free_at, answer

    def report(trial, curve, ran):
        for epoch in ran:
            oracle.update_trial(
                trial.trial_id, {table.objective: curve.scores[epoch], table.monitor: curve.monitor[epoch]}, epoch
            )
        trial.status = "COMPLETED"
        oracle.end_trial(trial)

    while events:
        arrived, _, what, w, payload = heapq.heappop(events)
        worker = crew[w]
        if what == "ask":
            now, trial = serve(arrived, oracle.create_trial, worker.name)
            if trial.status == "RUNNING":
                worker.idle_wait = IDLE_WAIT[0]
                values = trial.hyperparameters.values
                real, book = layout.split_values(values)
                initial = int(book.get("initial_epoch", 0))
                total = int(book.get("epochs", tuner.max_epochs))
                curve, ran, seconds = surrogate.trial(real, initial, total)
                key = keys(real) if tuner.reuse_models else None
                if key is None or key not in worker.pool:
                    seconds += table.trace_s
                if key is not None:
                    worker.pool[key] = True
                    worker.pool.move_to_end(key)
                    while len(worker.pool) > tuner.reuse_models:
                        worker.pool.popitem(last=False)
                seconds += table.overhead_s
                worker.busy += seconds
                entry = {
                    "trial_id": trial.trial_id,
                    "worker": worker.name,
                    "start": round(now, 4),
                    "end": round(now + seconds, 4),
                    "parent": book.get("trial_id"),
                    "epochs_run": len(ran),
                    "values": dict(values),
                    "score": None,
                }
                schedule.append(entry)
                running += 1
                push(now + seconds, "end", w, (trial, curve, ran, entry))
            elif trial.status == "IDLE":
                if not running:  # nothing can change the oracle's answer: it would wait forever
                    raise RuntimeError(f"{type(oracle).__name__} answered IDLE with no trial running")
                first_wait = now if first_wait is None else first_wait
                push(now + worker.idle_wait, "ask", w)
                worker.idle_wait = min(worker.idle_wait * 2, IDLE_WAIT[1])
            else:
                first_wait = now if first_wait is None else first_wait
                worker.stopped_at = now
        else:
            trial, curve, ran, entry = payload
            running -= 1
            now, _ = serve(arrived, report, trial, curve, ran)
            trials += 1
            epochs += len(ran)
            last_end = now
            score = entry["score"] = oracle.get_trial(trial.trial_id).score
            if score is not None and (best is None or (score > best if maximize else score < best)):
                best = score
                best_over_time.append((round(now, 3), score))
                if target is not None and reached is None and (score >= target if maximize else score <= target):
                    reached = now
            worker.busy += table.gap_s  # the worker's bookkeeping after a trial: part of its cost
            worker.last_end = now
            push(now + table.gap_s, "ask", w)
    wall = last_end
    for x in crew:  # the last bookkeeping after the search's last trial ended is not in its wall time
        x.busy -= max(0.0, x.last_end + table.gap_s - wall) if x.last_end is not None else 0.0
    capacity = n * wall
    busy = sum(x.busy for x in crew)
    # A worker back-off can run past the last trial's end: count waiting up to it only.
    done = sum(wall - x.stopped_at for x in crew if x.stopped_at is not None and x.stopped_at < wall)
    # Up to the wall: the workers' seconds from a request to its answer, the chief's in answering.
    queued = sum(max(0.0, min(answered, wall) - arrived) for arrived, _, answered in requests)
    serving = sum(max(0.0, min(answered, wall) - started) for _, started, answered in requests)
    at_chief = min(queued, max(0.0, capacity - busy - done))
    return {
        "workers": n,
        "wall_s": round(wall, 2),
        "trials": trials,
        "epochs": epochs,
        "utilisation": round(busy / capacity, 4) if capacity else 0.0,
        "waiting": round(max(0.0, capacity - busy - done - at_chief) / capacity, 4) if capacity else 0.0,
        "at_chief": round(at_chief / capacity, 4) if capacity else 0.0,
        "done_early": round(done / capacity, 4) if capacity else 0.0,
        "all_busy_until": round(min(first_wait, wall) / wall, 4) if wall and first_wait is not None else 1.0,
        "chief_s": round(chief, 3),
        "chief_load": round(serving / wall, 4) if wall else 0.0,
        "best": best,
        "target": target,
        "time_to_target_s": None if reached is None else round(reached, 2),
        "best_over_time": best_over_time,
        "schedule": schedule,
    }


# -- sizing and the whole study ---------------------------------------------------------


def sized(cfg, trials_per_worker: int, workers: int):
    """`cfg` with its tuner sized to at least `trials_per_worker` x `workers` planned trials (0: as it is)."""
    from search.algorithms.schedule import sized_to

    return cfg if trials_per_worker <= 0 else sized_to(cfg, trials_per_worker * workers)


def study(
    cfg,
    table: CurveTable,
    algorithms: list[str],
    workers: list[int],
    *,
    trials_per_worker: int = 0,
    seeds: int = 1,
    target: float | None = None,
    chief_files: bool = False,
    log=print,
) -> dict:
    """Every algorithm at every worker count, `seeds` oracle seeds each; medians per cell."""
    default = target is None
    target = table.default_target() if default else target
    keys = graph_keys(cfg)
    cells = []
    for algorithm in algorithms:
        for n in workers:
            runs_ = []
            for s in range(seeds):
                base = cfg.with_tuner(algorithm=algorithm)
                base = _with_seed(sized(base, trials_per_worker, n), cfg.seed + s)
                runs_.append(simulate(base, table, n, target=target, keys=keys, chief_files=chief_files))
            cell = _median_cell(algorithm, n, runs_)
            cells.append(cell)
            log(row(cell))
    return {
        "config": str(cfg.source),
        "table": {k: v for k, v in table.to_json().items() if k != "curves"} | {"configurations": len(table.curves)},
        "target": target,
        "target_is_default": default,
        "trials_per_worker": trials_per_worker,
        "seeds": seeds,
        "chief_files": chief_files,
        "cells": cells,
    }


def _with_seed(cfg, seed: int):
    import dataclasses

    return dataclasses.replace(cfg, seed=seed)


def _median_cell(algorithm: str, n: int, results: list[dict]) -> dict:
    def med(key):
        if key == "time_to_target_s":  # never reached counts as later than any time: None if most never did
            times = sorted(math.inf if r[key] is None else r[key] for r in results)
            middle = statistics.median_high(times) if len(times) % 2 == 0 else statistics.median(times)
            return None if math.isinf(middle) else middle
        values = [r[key] for r in results if r[key] is not None]
        return statistics.median(values) if values else None

    cell = {"algorithm": algorithm, "workers": n, "seeds": len(results)}
    for key in (
        "wall_s",
        "trials",
        "epochs",
        "utilisation",
        "waiting",
        "at_chief",
        "done_early",
        "all_busy_until",
        "chief_load",
        "best",
        "time_to_target_s",
    ):
        cell[key] = med(key)
    cell["reached"] = sum(r["time_to_target_s"] is not None for r in results)
    cell["runs"] = [{k: v for k, v in r.items() if k != "schedule"} for r in results]
    return cell


HEADER = (
    "| algorithm | workers | trials | epochs | wall | utilisation | waiting (IDLE) | at the chief | done early "
    "| all busy until | chief busy | best | to target |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
)


def row(cell: dict) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.0f} %"

    def secs(x):
        return "never" if x is None else f"{x:,.0f} s"

    best = "-" if cell["best"] is None else f"{cell['best']:.4f}"
    reached = f" ({cell['reached']}/{cell['seeds']})" if cell["seeds"] > 1 else ""
    return (
        f"| {cell['algorithm']} | {cell['workers']} | {cell['trials']:.0f} | {cell['epochs']:.0f} | "
        f"{secs(cell['wall_s'])} | {pct(cell['utilisation'])} | {pct(cell['waiting'])} | "
        f"{pct(cell.get('at_chief'))} | "
        f"{pct(cell['done_early'])} | {pct(cell['all_busy_until'])} of it | {pct(cell['chief_load'])} | {best} | "
        f"{secs(cell['time_to_target_s'])}{reached} |"
    )


def header(cfg, table: CurveTable, target: float | None) -> str:
    """What is simulated, over which curves, and the target."""
    source = table.source
    target_line = (
        f"target {table.default_target():.4f} (what the best 10 % of the recorded configurations reach)"
        if target is None
        else f"target {target:.4f}"
    )
    return "\n".join(
        [
            f"simulating {cfg.source} over {len(table.curves)} recorded configurations of {source.get('config')} "
            f"({source.get('data')}; recorded by {source.get('workers')} worker(s) on "
            f"{source.get('cpu') or 'an unnamed CPU'})",
            f"a trial costs its epochs ({table.typical_epoch_s():.2f} s typical) + {table.overhead_s:.2f} s, "
            f"+ {table.trace_s:.2f} s to trace a graph its worker has not compiled; "
            f"{table.gap_s:.2f} s between a worker's trials",
            target_line,
        ]
    )


def describe(result: dict, cfg, table: CurveTable) -> str:
    """simulation.md: the header and the table."""
    target = None if result["target_is_default"] else result["target"]
    size = (
        f"each search sized to at least {result['trials_per_worker']} trials per worker"
        if result["trials_per_worker"]
        else "each search as configured"
    )
    return "\n".join(
        [header(cfg, table, target), f"{size}; medians of {result['seeds']} seed(s)", "", *HEADER]
        + [row(c) for c in result["cells"]]
    )


def plot(result: dict, path: Path) -> None:
    """Utilisation, and wall time (whole search, to target) against workers, one colour per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
    algorithms = list(dict.fromkeys(c["algorithm"] for c in result["cells"]))
    for i, algorithm in enumerate(algorithms):
        colour = f"C{i}"
        cells = [c for c in result["cells"] if c["algorithm"] == algorithm]
        ns = [c["workers"] for c in cells]
        left.plot(ns, [100 * c["utilisation"] for c in cells], marker="o", color=colour, label=algorithm)
        right.plot(ns, [c["wall_s"] for c in cells], marker="o", color=colour, label=f"{algorithm}: whole search")
        reached = [(c["workers"], c["time_to_target_s"]) for c in cells if c["time_to_target_s"] is not None]
        if reached:
            xs, ys = zip(*reached, strict=True)
            right.plot(xs, ys, marker="x", linestyle=":", color=colour, label=f"{algorithm}: to target")
    ns = sorted({c["workers"] for c in result["cells"]})
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("workers")
        ax.grid(alpha=0.3)
    left.set_ylabel("worker utilisation (%)")
    left.set_ylim(0, 105)
    left.axhline(90, color="grey", linewidth=0.8, linestyle="--")
    right.set_ylabel("simulated seconds")
    right.set_yscale("log")
    right.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    right.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    right.yaxis.set_minor_formatter(NullFormatter())
    left.legend(loc="lower left")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    per = result["trials_per_worker"]
    size = f"each search at least {per} trials per worker" if per else "the search as configured"
    fig.suptitle(f"{result['config']}, simulated: {size}, target {result['target']:.4f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
