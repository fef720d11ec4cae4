"""The chief: it holds the oracle and serves it to the workers over KerasTuner's gRPC protocol
(the shape of KerasTuner's `distribute/oracle_chief.py`), with heartbeats, fencing and an end.

`ChiefServicer` is KerasTuner's servicer with ktsearch's additions (`search.distributed` says what and
why); `serve` runs it until the search is over. Importing this module imports KerasTuner.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import keras_tuner as kt
from keras_tuner.engine import trial as trial_module

from hypermodels import private_api
from search.algorithms import ending, journal
from search.distributed import auth
from search.distributed.auth import Security
from search.distributed.role import CHIEF_FILE, MESSAGE_KEY, METADATA_KEY, Role
from search.errors import FailureLimitReached, UserError
from search.runs import layout

private_api.quiet_conditions()
protos = private_api.protos()


@kt.synchronized
def requeue(oracle, worker: str):
    """Take a silent worker's trial back: KerasTuner's retry queue serves it to the next worker."""
    trial = oracle.ongoing_trials.pop(worker, None)
    oracle.tuner_ids.discard(worker)
    if trial is not None:
        trial.status = trial_module.TrialStatus.RUNNING
        private_api.retry_queue(oracle).append(trial.trial_id)
        oracle.save()
    return trial


@kt.synchronized
def give_back(oracle, worker: str, trial_id: str) -> bool:
    """Undo KerasTuner's reload, which queued the trials running at a chief restart for retry: the
    trial stays its worker's (False if it is not queued)."""
    queue = private_api.retry_queue(oracle)
    if trial_id not in queue or trial_id not in oracle.trials or oracle.trials[trial_id].status != "RUNNING":
        return False
    queue.remove(trial_id)
    oracle.ongoing_trials[worker] = oracle.trials[trial_id]
    oracle.tuner_ids.add(worker)
    return True


@kt.synchronized
def finished(oracle) -> bool:
    return not oracle.ongoing_trials and not oracle.tuner_ids


class ChiefServicer(private_api.oracle_servicer_class()):
    """KerasTuner's servicer, with worker heartbeats, fencing, and a log line per event.

    Calls are served one at a time, and the reaper takes the same lock.
    """

    def __init__(self, oracle, log: Callable[[str], None], timeout: float, on_end: Callable[[str, str], None]):
        super().__init__(oracle)
        self.log = log
        self.on_end = on_end  # a trial's end line: the tuner adds trial n of N, best so far, ETA
        self.timeout = timeout
        self.seen: dict[str, float] = {}
        self.owner: dict[str, str] = {}  # trial id -> the worker that holds it
        self.ran: dict[str, list[str]] = {}  # worker -> trials it completed
        self.failure_limit: FailureLimitReached | None = None
        self.lock = threading.RLock()

    def _worker(self, context) -> str:
        worker = dict(context.invocation_metadata()).get(METADATA_KEY, "")
        if worker:
            self.seen[worker] = time.monotonic()
        return worker

    def GetSpace(self, request, context):  # also the workers' heartbeat
        with self.lock:
            self._worker(context)
            return super().GetSpace(request, context)

    def CreateTrial(self, request, context):
        with self.lock:
            self._worker(context)
            if self.failure_limit:
                stopped = trial_module.Trial(self.oracle.get_space(), status=trial_module.TrialStatus.STOPPED)
                self.oracle.tuner_ids.discard(request.tuner_id)
                return protos.service.CreateTrialResponse(trial=stopped.to_proto())
            response = super().CreateTrial(request, context)
            trial_id = response.trial.trial_id
            status = trial_module.TrialStatus.from_proto(response.trial.status)
            if status == trial_module.TrialStatus.RUNNING and self.owner.get(trial_id) != request.tuner_id:
                self.owner[trial_id] = request.tuner_id
                self.log(f"trial {trial_id} -> {request.tuner_id}")
            return response

    def GetTrial(self, request, context):
        with self.lock:
            worker = self._worker(context)
            response = super().GetTrial(request, context)
            holder = self.owner.get(request.trial_id)
            taken = (holder is not None and holder != worker) or request.trial_id in private_api.retry_queue(
                self.oracle
            )
            if worker and taken:  # asked by a worker that lost this trial
                response.trial.status = trial_module.TrialStatus.to_proto(trial_module.TrialStatus.STOPPED)
            return response

    def _stale(self, trial_id: str, context) -> str | None:
        worker = self._worker(context)
        holder = self.owner.get(trial_id)
        return worker if worker and holder != worker else None

    def UpdateTrial(self, request, context):
        with self.lock:
            if self._stale(request.trial_id, context):
                trial = self.oracle.get_trial(request.trial_id).to_proto()
                trial.status = trial_module.TrialStatus.to_proto(trial_module.TrialStatus.STOPPED)  # dropped
                return protos.service.UpdateTrialResponse(trial=trial)
            return super().UpdateTrial(request, context)

    def EndTrial(self, request, context):
        with self.lock:
            trial_id = request.trial.trial_id
            stale = self._stale(trial_id, context)
            if stale:
                self.log(f"trial {trial_id}: dropped the late report of {stale} (the trial was handed on)")
                return protos.service.EndTrialResponse()
            worker = self.owner.pop(trial_id, "?")
            trial = trial_module.Trial.from_proto(request.trial)
            message = dict(context.invocation_metadata()).get(MESSAGE_KEY)
            trial.message = message.decode("utf-8", "replace") if message else None  # not in KerasTuner's proto
            try:
                ending.end_trial(self.oracle, trial)
            except FailureLimitReached as e:  # workers are told to stop; `serve` raises it when they have
                self.failure_limit = e
            final = self.oracle.get_trial(trial_id)
            if final.status == trial_module.TrialStatus.COMPLETED:
                self.ran.setdefault(worker, []).append(trial_id)
            score = f" {self.oracle.objective.name} {final.score:.4f}" if final.score is not None else ""
            self.on_end(trial_id, f"trial {trial_id} {final.status.lower()} on {worker}{score}")
            return protos.service.EndTrialResponse()

    def reap(self) -> None:
        """Requeue the trials of workers silent for longer than the timeout; forget idle silent ones."""
        with self.lock:
            now = time.monotonic()
            for worker in [w for w, t in self.seen.items() if now - t > self.timeout]:
                del self.seen[worker]
                trial = requeue(self.oracle, worker)
                if trial is not None:
                    self.owner.pop(trial.trial_id, None)
                    self.log(
                        f"worker {worker} silent for {self.timeout:g} s: trial {trial.trial_id} goes back to the queue"
                    )

    def keep_running(self, ongoing: dict[str, str]) -> list[str]:
        """After a chief restart: each trial a worker was running stays that worker's, so a worker that
        kept running reports it as if nothing happened, and one silent for the timeout loses it (`reap`).
        Returns "trial (worker)" for each."""
        kept = []
        with self.lock:
            for worker, trial_id in ongoing.items():
                if give_back(self.oracle, worker, trial_id):
                    self.owner[trial_id] = worker
                    self.seen[worker] = time.monotonic()  # its timeout counts from the restart
                    kept.append(f"{trial_id} ({worker})")
        return kept

    def done(self) -> bool:
        with self.lock:
            stopped = private_api.servicer_stopped(self) or self.failure_limit is not None
            return stopped and finished(self.oracle)


def serve(tuner, role: Role, log: Callable[[str], None], timeout: float, start_workers_hint: str) -> dict:
    """Serve the tuner's oracle until the search is over; returns {worker: [completed trial ids]}."""
    tuner.oracle.verbose = 0  # KerasTuner's per-trial tables; the chief logs a line per event instead
    tuner.oracle.write_in_background()  # a finished trial's trial.json: off the workers' calls (the journal has it)
    run_dir = Path(tuner.project_dir).parent
    marker = run_dir / CHIEF_FILE
    security = role.security
    secret = auth.chief_secret(security, run_dir)
    servicer = ChiefServicer(tuner.oracle, log, timeout, tuner.reporter.trial_ended)
    if (layout.read_json(marker) or {}).get("state") == "serving":  # this chief is back after a crash or kill
        before = journal.merged_state(Path(tuner.project_dir) / journal.ORACLE_FILE)[0] or {}
        kept = servicer.keep_running(before.get("ongoing_trials") or {})
        if kept:
            log(
                f"chief: restarted; trials {', '.join(kept)} stay with their workers (a worker silent for "
                f"{timeout:g} s loses its trial to the queue)"
            )
    tuner.save()
    interceptor = auth.interceptor(secret, _refusal_log(log))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[interceptor])  # calls serialise
    protos.service_grpc.add_OracleServicer_to_server(servicer, server)
    try:
        if security.tls_cert:
            port = server.add_secure_port(role.address, auth.server_credentials(security))
        else:
            port = server.add_insecure_port(role.address)
    except RuntimeError as e:
        port, error = 0, str(e)
    else:
        error = "address in use or not available"
    if not port:
        raise UserError("--bind", "", f"cannot listen on {role.address} ({error})")
    server.start()
    state = {
        "state": "serving",
        "address": f"{role.host}:{port}",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "tls": bool(security.tls_cert),
        "auth": secret is not None,
    }
    layout.write_json(marker, state)
    log(f"chief: serving the oracle on {role.host}:{port}; {_protection(security, run_dir)}; start workers with:")
    log(f"  {start_workers_hint.replace('{ADDRESS}', f'{role.host}:{port}')}")
    try:
        while not servicer.done():
            time.sleep(0.5)
            servicer.reap()
        layout.write_json(marker, {**state, "state": "done"})  # workers that come back later stop instead of waiting
    finally:
        server.stop(grace=2).wait()
    if servicer.failure_limit:
        raise servicer.failure_limit
    return servicer.ran


def _protection(security: Security, run_dir: Path) -> str:
    if security.no_auth:
        return "NO AUTHENTICATION: --insecure-no-auth, anyone on this machine can steer the search"
    if security.secret_file:
        source = f"the secret in {security.secret_file}"
    elif os.environ.get(auth.ENV_SECRET):
        source = f"the secret in ${auth.ENV_SECRET}"
    else:
        source = f"the secret in {run_dir / auth.SECRET_FILE}"
    return ("TLS, " if security.tls_cert else "") + f"calls need {source}"


def _refusal_log(log: Callable[[str], None], first: int = 5, every: int = 100):
    """Log the first refused calls, then one in `every`: a client hammering the port cannot flood the log."""
    count = [0]
    lock = threading.Lock()

    def refused(method: str, code: str) -> None:
        with lock:
            count[0] += 1
            n = count[0]
        if n <= first or n % every == 0:
            log(f"chief: refused a call to {method.rsplit('/', 1)[-1]} ({code}; {n} refused so far)")

    return refused
