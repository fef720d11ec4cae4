"""One real chief under load: `ktsearch tune --chief` on loopback, and fake workers that run no model.

    python -m tests.benchmarks.chief_load                     # 64 workers, every algorithm, ~3 min
    python -m tests.benchmarks.chief_load --workers 16 --trials-per-worker 3 --algorithms asha

For each algorithm: a real chief process (the digits config, `tuner.max_epochs` 9, the search sized to
at least `--trials-per-worker` trials per worker, as `ktsearch simulate` sizes it) and `--workers`
threads in this process, each one worker with its own gRPC channel, its name and the run's secret on
every call (as `search.distributed.worker` calls): it asks for a trial, sleeps `--epoch-seconds` per
epoch the trial plans (reporting each epoch's score, drawn from the trial's values), ends it, and asks
again; told IDLE it backs off as a real worker does; told STOPPED it is done. No TensorFlow runs in the
workers. Measured, from the first request to the last trial's end:

* requests served (and of which IDLE), the chief's CPU seconds (`/proc/PID/stat`) and its share of the
  wall time, each call's latency as the worker saw it (p50, p99, max);
* every trial ended exactly once: by the workers' count and in the chief's results;
* the wall time and the workers' utilisation, against what `search.analysis.simulate` predicts for
  the same search and the same durations (a table whose every epoch takes `--epoch-seconds`), its
  chief modelled as a queue served at the measured cost of its oracle's calls (`--chief-files`).

Loopback only; each search is bounded (`--timeout` seconds, after which it is reported as failed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "digits_smoke.yaml"
ALGORITHMS = ("hyperband", "bohb", "asha", "random")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def score(values: dict, epoch: int) -> float:
    real = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    digest = hashlib.sha256(json.dumps(real, sort_keys=True, default=str).encode()).digest()
    return 0.5 + 0.4 * digest[0] / 255 + 0.01 * epoch


def sized_overrides(algorithm: str, trials_per_worker: int, workers: int) -> list[str]:
    from search.algorithms import ALGORITHMS as TABLE
    from search.analysis.simulate import sized
    from search.config import load_config

    base = [f"tuner.algorithm={algorithm}", "tuner.max_epochs=9", "early_stopping.patience=9"]
    base += ["tuner.factor=3"] if "factor" in TABLE[algorithm].keys else ["tuner.factor=null"]
    cfg = sized(load_config(CONFIG, base), trials_per_worker, workers)
    key = TABLE[algorithm].size_key
    return [*base, f"tuner.{key}={getattr(cfg.tuner, key)}"]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class FakeWorker(threading.Thread):
    """One worker: its own channel, name and secret; trials that sleep and report drawn scores."""

    def __init__(self, name: str, address: str, secret: str, epoch_s: float, log: dict, start_gate: threading.Event):
        super().__init__(name=name, daemon=True)
        self.worker_id = name
        self.address = address
        self.secret = secret
        self.epoch_s = epoch_s
        self.log = log  # shared: calls, ended trials
        self.gate = start_gate
        self.busy = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the benchmark
            self.error = e

    def _run(self) -> None:
        import grpc
        from keras_tuner.engine import trial as trial_module

        from hypermodels import private_api
        from search.distributed.role import IDLE_WAIT
        from search.distributed.worker import NameThisWorker

        protos = private_api.protos()
        channel = grpc.intercept_channel(
            grpc.insecure_channel(self.address), NameThisWorker(self.worker_id, self.secret)
        )
        stub = protos.service_grpc.OracleStub(channel)
        calls, lock = self.log["calls"], self.log["lock"]

        def call(kind: str, method, request):
            tick = time.perf_counter()
            response = method(request, timeout=60)
            took = time.perf_counter() - tick
            with lock:
                calls.append((kind, tick, took))
            return response

        self.gate.wait()
        idle = IDLE_WAIT[0]
        while True:
            response = call("create", stub.CreateTrial, protos.service.CreateTrialRequest(tuner_id=self.worker_id))
            trial = trial_module.Trial.from_proto(response.trial)
            if trial.status == "STOPPED":
                break
            if trial.status == "IDLE":
                with lock:
                    self.log["idle"] += 1
                time.sleep(idle)
                idle = min(idle * 2, IDLE_WAIT[1])
                continue
            idle = IDLE_WAIT[0]
            values = trial.hyperparameters.values
            first, last = int(values.get("tuner/initial_epoch", 0)), int(values.get("tuner/epochs", 9))
            started = time.perf_counter()
            for epoch in range(first, last):
                time.sleep(self.epoch_s)
                metrics = {"val_accuracy": score(values, epoch), "val_loss": 1.0 - score(values, epoch)}
                request = protos.service.UpdateTrialRequest(trial_id=trial.trial_id, metrics=metrics, step=epoch)
                call("update", stub.UpdateTrial, request)
            self.busy += time.perf_counter() - started
            trial.status = "COMPLETED"
            call("end", stub.EndTrial, protos.service.EndTrialRequest(trial=trial.to_proto()))
            with lock:
                self.log["ended"].append((trial.trial_id, self.worker_id, time.perf_counter()))
        channel.close()


def run_one(algorithm: str, workers: int, trials_per_worker: int, epoch_s: float, timeout: float) -> dict:
    overrides = sized_overrides(algorithm, trials_per_worker, workers)
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        command = [sys.executable, "-m", "search", "tune", str(CONFIG), "--results-dir", tmp, "--name", "load"]
        for item in overrides:
            command += ["--set", item]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        chief_log = open(Path(tmp) / "chief.log", "w+")  # a file: a pipe nobody reads would block the chief's log
        chief = subprocess.Popen(
            [*command, "--chief", "--bind", f"127.0.0.1:{port}", "--threads", "1"],
            env=env,
            stdout=chief_log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        run_dir = Path(tmp) / "load"
        deadline = time.monotonic() + timeout
        while (
            not (run_dir / "chief.json").exists()
            or json.loads((run_dir / "chief.json").read_text()).get("state") != "serving"
        ):
            if chief.poll() is not None or time.monotonic() > deadline:
                chief.kill()
                raise SystemExit(f"the chief did not start:\n{(Path(tmp) / 'chief.log').read_text()[-3000:]}")
            time.sleep(0.1)
        secret = (run_dir / "chief.secret").read_text().strip()
        import grpc  # noqa: F401  (the workers' imports, done before the clock starts)

        from search.distributed import worker  # noqa: F401

        log = {"calls": [], "ended": [], "idle": 0, "lock": threading.Lock()}
        gate = threading.Event()
        crew = [FakeWorker(f"w{i}", f"127.0.0.1:{port}", secret, epoch_s, log, gate) for i in range(workers)]
        for w in crew:
            w.start()
        cpu_before = _cpu_seconds(chief.pid)
        start = time.perf_counter()
        gate.set()
        for w in crew:
            w.join(max(0.0, deadline - time.monotonic()))
        start = min((tick for _, tick, _ in log["calls"]), default=start)  # the first request
        end = max((t for *_, t in log["ended"]), default=time.perf_counter())
        cpu = _cpu_seconds(chief.pid) - cpu_before
        errors = [w.error for w in crew if w.error is not None] + [w.name for w in crew if w.is_alive()]
        try:
            chief.wait(timeout=max(5.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            chief.kill()
            chief.wait()
            errors.append("the chief did not end")
        chief_log.close()
        out = (Path(tmp) / "chief.log").read_text()
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    wall = end - start
    ended = [trial_id for trial_id, *_ in log["ended"]]
    completed = {t["trial_id"] for t in summary.get("trials", []) if t.get("status") == "COMPLETED"}
    latencies = sorted(took for _, _, took in log["calls"])
    return {
        "algorithm": algorithm,
        "workers": workers,
        "overrides": overrides,
        "errors": sorted({str(e).splitlines()[0] for e in errors})[:3],  # one of each kind
        "chief_exit": chief.returncode,
        "chief_tail": out[-1500:] if chief.returncode else "",
        "trials": len(ended),
        "ended_once": len(ended) == len(set(ended)),
        "chief_completed_match": set(ended) == completed,
        "requests": len(log["calls"]),
        "idle_answers": log["idle"],
        "wall_s": wall,
        "utilisation": sum(w.busy for w in crew) / (workers * wall) if wall else 0.0,
        "chief_cpu_s": cpu,
        "chief_cpu_share": cpu / wall if wall else 0.0,
        "latency_p50_ms": 1e3 * statistics.median(latencies) if latencies else None,
        "latency_p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
        "latency_max_ms": 1e3 * latencies[-1] if latencies else None,
    }


def predicted(algorithm: str, overrides: list[str], workers: int, epoch_s: float) -> dict:
    """The simulator's prediction for the same search, every epoch `epoch_s` seconds."""
    from search.analysis import simulate
    from search.config import load_config

    cfg = load_config(CONFIG, overrides)
    curve = simulate.Curve(
        "0", {}, [0.5 + 0.01 * e for e in range(9)], [0.5 - 0.01 * e for e in range(9)], [epoch_s] * 9
    )
    table = simulate.CurveTable(
        objective=cfg.tuner.objective,
        direction="max",
        monitor=cfg.early_stopping.monitor,
        max_epochs=9,
        recorded=simulate.recorded_sections(cfg),
        curves=[curve, simulate.Curve("1", {}, curve.scores, curve.monitor, curve.epoch_seconds)],
        overhead_s=0.0,
        trace_s=0.0,
        gap_s=0.0,
    )
    return simulate.simulate(cfg, table, workers, chief_files=True)


HEADER = (
    "| algorithm | workers | trials (each ended once) | requests (IDLE) | wall: real / simulated | "
    "utilisation: real / simulated | chief CPU / simulated chief busy | latency p50 / p99 / max |",
    "|---|---|---|---|---|---|---|---|",
)


def line(r: dict, sim: dict) -> str:
    once = "yes" if r["ended_once"] and r["chief_completed_match"] and not r["errors"] else "NO"
    return (
        f"| {r['algorithm']} | {r['workers']} | {r['trials']} ({once}) | {r['requests']:,} ({r['idle_answers']:,}) | "
        f"{r['wall_s']:.1f} s / {sim['wall_s']:.1f} s | {100 * r['utilisation']:.0f} % / {100 * sim['utilisation']:.0f} % | "
        f"{100 * r['chief_cpu_share']:.0f} % / {100 * sim['chief_load']:.0f} % | "
        f"{r['latency_p50_ms']:.1f} / {r['latency_p99_ms']:.1f} / {r['latency_max_ms']:.0f} ms |"
    )


def main() -> None:
    from search.runtime import cpu_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--trials-per-worker", type=int, default=10)
    parser.add_argument("--epoch-seconds", type=float, default=0.25)
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per search, start-up included")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    print(
        f"CPU: {cpu_model()}; {args.workers} fake workers (threads of this process), epochs of {args.epoch_seconds} s"
    )
    print("\n".join(HEADER), flush=True)
    results = []
    failed = False
    for algorithm in args.algorithms:
        r = run_one(algorithm, args.workers, args.trials_per_worker, args.epoch_seconds, args.timeout)
        sim = predicted(algorithm, r["overrides"], args.workers, args.epoch_seconds)
        r["simulated"] = {k: v for k, v in sim.items() if k not in ("schedule", "best_over_time")}
        results.append(r)
        print(line(r, sim), flush=True)
        if r["errors"] or not r["ended_once"] or not r["chief_completed_match"] or r["chief_exit"]:
            failed = True
            print(f"  {algorithm}: errors {r['errors']}, chief exit {r['chief_exit']}\n{r['chief_tail']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_model(), "args": vars(args), "results": results}, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
