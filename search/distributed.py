"""Distributed search on KerasTuner's chief/worker engine.

KerasTuner's distributed mode: a chief process holds the oracle and serves it over gRPC;
workers (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`) ask it
for trials, run them, and report back; all share one results directory. ktsearch uses
KerasTuner's oracle, servicer, protocol and client, and adds what a search needs to survive
real clusters:

* **Lost workers.** KerasTuner keeps a trial "ongoing" for its worker until that worker
  reports, so a worker killed mid-trial stalls the search for good (Hyperband waits for
  the trial's round; the chief never exits) unless the same worker ID comes back. Workers
  here send a heartbeat; a worker silent for `distribution.worker_timeout` seconds loses
  its trial, which goes back to the oracle's retry queue for the next worker that asks
  (KerasTuner's own mechanism for trials interrupted by a chief restart).
* **Fencing.** A worker that was only paused and reports later would end the same trial
  twice; the chief remembers which worker holds each trial and drops reports from any other.
* **Waiting without spinning.** KerasTuner's workers re-ask at once while Hyperband waits
  for a round to finish (status IDLE), a busy loop against the chief; they back off here.
* **A chief that ends.** The chief exits when the oracle has no more trials and every
  worker has been told so, or has gone silent; it then writes the run's summary.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from search import auth, runs
from search.auth import Security
from search.errors import FailureLimitReached, UserError

DEFAULT_PORT = 8000
CHIEF_FILE = "chief.json"  # in the run directory: {"state": "serving" | "done", "address", "host", "pid"}
ENV_ID, ENV_IP, ENV_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
METADATA_KEY = "ktsearch-worker"
MESSAGE_KEY = "ktsearch-message-bin"  # a failed trial's reason, which KerasTuner's Trial proto does not carry
IDLE_WAIT = (0.2, 2.0)  # seconds a worker waits before asking again while Hyperband waits for a round


@dataclass(frozen=True)
class Role:
    """What this process is in a search: 'single', 'chief' (serves `host:port`) or 'worker'."""

    kind: str = "single"
    host: str = ""
    port: int = 0
    worker_id: str = ""
    security: Security = field(default_factory=Security)  # the secret's source and TLS files (`search.auth`)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(text: str, flag: str, allow_zero: bool = False) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]")
    low = 0 if allow_zero else 1
    if not sep or not host or not port.isdigit() or not low <= int(port) <= 65535:
        raise UserError(flag, "", f"expected HOST:PORT with a port in {low}-65535, got {text!r}")
    return host, int(port)


def _worker_id(value: str, flag: str) -> str:
    if not WORKER_ID.match(value) or value.startswith("chief"):
        raise UserError(
            flag, "", f"expected a worker ID of letters, digits, '.', '_' or '-' (not starting 'chief'), got {value!r}"
        )
    return value


def resolve_role(
    chief: bool = False,
    bind: str | None = None,
    worker: bool = False,
    oracle: str | None = None,
    worker_id: str | None = None,
    environ: dict | None = None,
    security: Security | None = None,
) -> Role:
    """The process's role from `tune`'s flags, else from KerasTuner's environment variables."""
    role = _role(chief, bind, worker, oracle, worker_id, os.environ if environ is None else environ)
    return role if security is None else Role(role.kind, role.host, role.port, role.worker_id, security)


def check_role(role: Role, environ: dict | None = None) -> None:
    """Refuse security flags that do not fit the role, or would leave the search open (`search.auth.check`)."""
    auth.check(role.kind, role.host, role.security, os.environ if environ is None else environ)


def _role(chief, bind, worker, oracle, worker_id, env) -> Role:
    if chief and worker:
        raise UserError("--chief/--worker", "", "expected one of them: a process is the chief or a worker")
    if (bind is not None) and not chief:
        raise UserError("--bind", "", "only used with --chief")
    if (oracle is not None or worker_id is not None) and not worker:
        flag = "--oracle" if oracle is not None else "--worker-id"
        raise UserError(flag, "", "only used with --worker")
    if chief:
        host, port = parse_address(bind or f"127.0.0.1:{DEFAULT_PORT}", "--bind", allow_zero=True)
        return Role("chief", host, port)
    if worker:
        if oracle is None and ENV_IP not in env:
            raise UserError("--oracle", "", "expected the chief's HOST:PORT (or KERASTUNER_ORACLE_IP/_PORT)")
        address = oracle if oracle is not None else f"{env[ENV_IP]}:{env.get(ENV_PORT, '')}"
        host, port = parse_address(address, "--oracle" if oracle is not None else f"{ENV_IP}/{ENV_PORT}")
        default_id = env.get(ENV_ID) or f"worker-{socket.gethostname()}-{os.getpid()}"
        return Role("worker", host, port, _worker_id(worker_id or default_id, "--worker-id" if worker_id else ENV_ID))
    if ENV_IP in env or ENV_ID in env:  # KerasTuner's own way of saying it
        missing = [name for name in (ENV_ID, ENV_IP, ENV_PORT) if not env.get(name)]
        if missing:
            raise UserError(missing[0], "", f"expected {ENV_ID}, {ENV_IP} and {ENV_PORT} together")
        host, port = parse_address(f"{env[ENV_IP]}:{env[ENV_PORT]}", f"{ENV_IP}/{ENV_PORT}")
        if env[ENV_ID].startswith("chief"):
            return Role("chief", host, port)
        return Role("worker", host, port, _worker_id(env[ENV_ID], ENV_ID))
    return Role()


def set_environment(role: Role) -> None:
    """KerasTuner reads the role from the environment: set it (or clear it) for this process."""
    if role.kind == "single":
        for name in (ENV_ID, ENV_IP, ENV_PORT):
            os.environ.pop(name, None)
        return
    os.environ[ENV_ID] = "chief" if role.kind == "chief" else role.worker_id
    os.environ[ENV_IP] = role.host
    os.environ[ENV_PORT] = str(role.port)


def exposure_warning(role: Role) -> str | None:
    if role.kind == "chief" and role.host in ("0.0.0.0", "::", ""):
        return (
            f"the chief listens on every network interface ({role.address}): TLS and the run's secret keep "
            "others out, but anyone who can reach the port can try; bind a private address where you can"
        )
    return None


# -- chief --------------------------------------------------------------------------------


def _servicer_class():
    import keras_tuner as kt
    from keras_tuner.engine import trial as trial_module

    from hypermodels import private_api
    from search import oracles

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
                    oracles.end_trial(self.oracle, trial)
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
                            f"worker {worker} silent for {self.timeout:g} s: "
                            f"trial {trial.trial_id} goes back to the queue"
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

    return ChiefServicer


def serve(tuner, role: Role, log: Callable[[str], None], timeout: float, start_workers_hint: str) -> dict:
    """Serve the tuner's oracle until the search is over; returns {worker: [completed trial ids]}."""
    from concurrent import futures

    import grpc

    from hypermodels import private_api

    tuner.oracle.verbose = 0  # KerasTuner's per-trial tables; the chief logs a line per event instead
    run_dir = Path(tuner.project_dir).parent
    marker = run_dir / CHIEF_FILE
    security = role.security
    secret = auth.chief_secret(security, run_dir)
    servicer = _servicer_class()(tuner.oracle, log, timeout, tuner.reporter.trial_ended)
    if (runs.read_json(marker) or {}).get("state") == "serving":  # this chief is back after a crash or kill
        before = runs.read_json(Path(tuner.project_dir) / "oracle.json") or {}
        kept = servicer.keep_running(before.get("ongoing_trials") or {})
        if kept:
            log(
                f"chief: restarted; trials {', '.join(kept)} stay with their workers (a worker silent for "
                f"{timeout:g} s loses its trial to the queue)"
            )
    tuner.save()
    interceptor = auth.interceptor(secret, _refusal_log(log))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[interceptor])  # calls serialise
    private_api.protos().service_grpc.add_OracleServicer_to_server(servicer, server)
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
    runs.write_json(marker, state)
    log(f"chief: serving the oracle on {role.host}:{port}; {_protection(security, run_dir)}; start workers with:")
    log(f"  {start_workers_hint.replace('{ADDRESS}', f'{role.host}:{port}')}")
    try:
        while not servicer.done():
            time.sleep(0.5)
            servicer.reap()
        runs.write_json(marker, {**state, "state": "done"})  # workers that come back later stop instead of waiting
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


# -- worker -------------------------------------------------------------------------------

CONNECT_WAIT = 600  # seconds a worker waits for its chief to come up, or to come back
GET_SPACE = "/keras_tuner.Oracle/GetSpace"  # KerasTuner's service (package keras_tuner, service Oracle)
ATTEMPT = 10  # seconds per attempt of a call to the chief


def chief_done(run_dir: Path) -> bool:
    state = runs.read_json(Path(run_dir) / CHIEF_FILE) or {}
    return state.get("state") == "done"


@functools.cache
def search_over_error() -> type:
    """The exception a worker's calls raise when its chief is gone (one class, made on first use)."""
    import keras_tuner as kt

    class SearchOver(kt.errors.FatalError):
        """The chief is gone: it ended the search (`done`), or has not come back within CONNECT_WAIT."""

        def __init__(self, message: str, done: bool):
            super().__init__(message)
            self.done = done

    return SearchOver


class _PatientStub:
    """The oracle stub, each call made in short attempts: a worker whose chief is gone learns whether
    the search is over (chief.json says so) or waits up to CONNECT_WAIT for the chief to come back."""

    def __init__(self, stub, role: Role, run_dir: Path):
        self._stub = stub
        self._role = role
        self._run_dir = run_dir

    def __getattr__(self, name):
        import grpc

        method = getattr(self._stub, name)

        def call(request, metadata=None, **_):
            deadline = time.monotonic() + CONNECT_WAIT
            while True:
                try:
                    return method(request, wait_for_ready=True, timeout=ATTEMPT, metadata=metadata)
                except grpc.RpcError as e:
                    problem = refusal(e, self._role, self._run_dir)
                    if problem is not None:
                        raise problem from None
                    if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        raise
                    if chief_done(self._run_dir):
                        raise search_over_error()("the chief has ended the search", done=True) from None
                    if time.monotonic() > deadline:
                        message = f"the chief has not answered for {CONNECT_WAIT} s"
                        raise search_over_error()(message, done=False) from None

        return call


def refusal(error, role: Role, run_dir: Path) -> UserError | None:
    """What a failed call says about this worker's credentials (one line), or None: the chief is just not up."""
    import grpc

    code, details = error.code(), error.details() or ""
    where = f"the chief at {role.address}"
    secret_flag = f"--secret-file or ${auth.ENV_SECRET}"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UserError(
            "--secret-file",
            "",
            f"{where} refused this worker: no secret (UNAUTHENTICATED); give the chief's secret with {secret_flag} "
            f"(a chief that generated one keeps it in {run_dir / auth.SECRET_FILE})",
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return UserError(
            "--secret-file", "", f"{where} refused this worker's secret (PERMISSION_DENIED): {secret_flag}"
        )
    if code != grpc.StatusCode.UNAVAILABLE:
        return None
    lowered = details.lower()
    if "handshake" in lowered or "certificate" in lowered:
        reason = details.rsplit(": ", 2)[-2] if details.count(": ") >= 2 else details
        if "WRONG_VERSION_NUMBER" in details:
            return UserError("--tls-ca", "", f"{where} does not serve TLS ({reason}); drop --tls-ca on loopback")
        return UserError(
            "--tls-ca", "", f"{where} presents a certificate {role.security.tls_ca} does not trust ({reason})"
        )
    state = runs.read_json(Path(run_dir) / CHIEF_FILE) or {}
    if not role.security.tls and state.get("tls") and state.get("state") == "serving":
        return UserError("--tls-ca", "", f"{where} serves TLS: connect with --tls-ca (the CA of its certificate)")
    return None


def wait_for_chief(role: Role, log: Callable[[str], None], run_dir: Path) -> None:
    """Block until the chief answers a call with this worker's credentials (it may start after its workers).

    A refused secret or an untrusted certificate is a UserError at once; no answer within
    CONNECT_WAIT is SearchStopped.
    """
    import grpc

    from search.errors import SearchStopped

    deadline = time.monotonic() + CONNECT_WAIT
    told = False
    while True:
        secret = auth.worker_secret(role.security, run_dir)  # a generated one appears when the chief starts
        channel = auth.channel(role.security, role.address)
        try:
            # GetSpace by its wire name (its request is empty): no KerasTuner, so no TensorFlow, before the chief answers.
            get_space = channel.unary_unary(GET_SPACE, request_serializer=None, response_deserializer=None)
            get_space(b"", timeout=ATTEMPT, metadata=auth.metadata(secret))
            return
        except grpc.RpcError as e:
            problem = refusal(e, role, run_dir)
            raced = secret is None and auth.worker_secret(role.security, run_dir) is not None
            if problem is not None and not raced:  # (raced: the chief wrote its secret after this worker looked)
                raise problem from None
            if problem is None and e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        finally:
            channel.close()
        if time.monotonic() > deadline:
            raise SearchStopped(f"no chief answered at {role.address} within {CONNECT_WAIT} s")
        if not told:
            log(f"worker {role.worker_id}: waiting for the chief at {role.address} (up to {CONNECT_WAIT} s)")
            told = True
        time.sleep(1.0)


def worker_client(oracle, role: Role, heartbeat: float, log: Callable[[str], None], run_dir: Path):
    """KerasTuner's OracleClient for this worker: named calls, a heartbeat, backing off while IDLE."""
    import collections

    import grpc
    from keras_tuner.engine import trial as trial_module

    from hypermodels import private_api

    private_api.quiet_conditions()
    protos = private_api.protos()
    fields = ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")

    class CallDetails(collections.namedtuple("CallDetails", fields), grpc.ClientCallDetails):
        pass

    secret = auth.worker_secret(role.security, run_dir)

    class NameThisWorker(grpc.UnaryUnaryClientInterceptor):
        """Every call names this worker and carries the secret."""

        def intercept_unary_unary(self, continuation, details, request):
            metadata = [*(details.metadata or []), (METADATA_KEY, role.worker_id), *auth.metadata(secret)]
            values = [getattr(details, name, None) for name in fields]
            return continuation(CallDetails(*values[:2], metadata, *values[3:]), request)

    class WorkerClient(private_api.oracle_client_class()):
        def __init__(self):
            super().__init__(oracle)
            channel = grpc.intercept_channel(auth.channel(role.security, role.address), NameThisWorker())
            self._raw = protos.service_grpc.OracleStub(channel)
            self.stub = _PatientStub(self._raw, role, run_dir)  # OracleClient's methods call the chief through `stub`
            self.tuner_id = role.worker_id
            self._idle = IDLE_WAIT[0]
            self.dropped: set[str] = set()  # trials handed to another worker while this one was silent
            self._stop = threading.Event()
            threading.Thread(target=self._beat, name="ktsearch-heartbeat", daemon=True).start()

        def _beat(self):
            while not self._stop.wait(heartbeat):
                try:
                    self._raw.GetSpace(protos.service.GetSpaceRequest(), timeout=max(heartbeat, 5.0))
                except grpc.RpcError:
                    pass  # the chief is restarting or gone; the next real call waits for it

        def create_trial(self, tuner_id):
            trial = super().create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.IDLE:
                time.sleep(self._idle)  # Hyperband waits for a round to finish on other workers
                self._idle = min(self._idle * 2, IDLE_WAIT[1])
            else:
                self._idle = IDLE_WAIT[0]
            if trial.status == trial_module.TrialStatus.STOPPED:
                self._stop.set()
            return trial

        def end_trial(self, trial):
            metadata = [(MESSAGE_KEY, trial.message.encode("utf-8"))] if trial.message else None
            self.stub.EndTrial(protos.service.EndTrialRequest(trial=trial.to_proto()), metadata=metadata)

        def holds(self, trial_id: str) -> bool:
            """Whether the chief still counts this worker as the trial's runner (asked before writing its files)."""
            request = protos.service.GetTrialRequest(trial_id=trial_id)
            try:
                status = trial_module.TrialStatus.from_proto(self._raw.GetTrial(request, timeout=ATTEMPT).trial.status)
            except grpc.RpcError:
                return True  # cannot tell; the chief drops a late report anyway
            if status != trial_module.TrialStatus.RUNNING:
                self.dropped.add(trial_id)
            return status == trial_module.TrialStatus.RUNNING

        def update_trial(self, trial_id, metrics, step=0):
            trial = super().update_trial(trial_id, metrics, step=step)
            if trial.status == trial_module.TrialStatus.STOPPED:
                self.dropped.add(trial_id)
            return trial

    return WorkerClient()
