"""A worker's oracle: KerasTuner's client to the chief (the shape of KerasTuner's
`distribute/oracle_client.py`), with its name and the run's secret on every call, a heartbeat, patience
while its chief is away, and backing off while Hyperband waits for a round.

`WorkerClient` replaces the `OracleClient` KerasTuner's tuner makes for a worker (`engine.tuners`).
Importing this module imports KerasTuner.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import grpc
import keras_tuner as kt
from keras_tuner.engine import trial as trial_module

from hypermodels import private_api
from search.distributed import auth
from search.distributed.handshake import ATTEMPT, CONNECT_WAIT, chief_done, refusal
from search.distributed.role import IDLE_WAIT, MESSAGE_KEY, METADATA_KEY, Role

private_api.quiet_conditions()
protos = private_api.protos()
CALL_FIELDS = ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")


class SearchOver(kt.errors.FatalError):
    """The chief is gone: it ended the search (`done`), or has not come back within CONNECT_WAIT."""

    def __init__(self, message: str, done: bool):
        super().__init__(message)
        self.done = done


class PatientStub:
    """The oracle stub, each call made in short attempts: a worker whose chief is gone learns whether
    the search is over (chief.json says so) or waits up to CONNECT_WAIT for the chief to come back."""

    def __init__(self, stub, role: Role, run_dir: Path):
        self._stub = stub
        self._role = role
        self._run_dir = run_dir

    def __getattr__(self, name):
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
                        raise SearchOver("the chief has ended the search", done=True) from None
                    if time.monotonic() > deadline:
                        message = f"the chief has not answered for {CONNECT_WAIT} s"
                        raise SearchOver(message, done=False) from None

        return call


class CallDetails(collections.namedtuple("CallDetails", CALL_FIELDS), grpc.ClientCallDetails):
    pass


class NameThisWorker(grpc.UnaryUnaryClientInterceptor):
    """Every call names this worker and carries the secret."""

    def __init__(self, worker_id: str, secret: str | None):
        self.worker_id = worker_id
        self.secret = secret

    def intercept_unary_unary(self, continuation, details, request):
        metadata = [*(details.metadata or []), (METADATA_KEY, self.worker_id), *auth.metadata(self.secret)]
        values = [getattr(details, name, None) for name in CALL_FIELDS]
        return continuation(CallDetails(*values[:2], metadata, *values[3:]), request)


class WorkerClient(private_api.oracle_client_class()):
    """KerasTuner's OracleClient for this worker: named calls, a heartbeat, backing off while IDLE.

    Args:
        oracle: the local oracle KerasTuner's tuner made (`private_api.wrapped_oracle`).
        role: this worker's `Role` (the chief's address, its ID, the secret's source and TLS files).
        heartbeat: seconds between heartbeats (`engine.tuners.heartbeat`).
        run_dir: the run directory shared with the chief (its secret, `chief.json`).
    """

    def __init__(self, oracle, role: Role, heartbeat: float, run_dir: Path):
        super().__init__(oracle)
        secret = auth.worker_secret(role.security, run_dir)
        channel = grpc.intercept_channel(
            auth.channel(role.security, role.address), NameThisWorker(role.worker_id, secret)
        )
        self._raw = protos.service_grpc.OracleStub(channel)
        self.stub = PatientStub(self._raw, role, run_dir)  # OracleClient's methods call the chief through `stub`
        self.tuner_id = role.worker_id
        self.heartbeat = heartbeat
        self._idle = IDLE_WAIT[0]
        self.dropped: set[str] = set()  # trials handed to another worker while this one was silent
        self._stop = threading.Event()
        threading.Thread(target=self._beat, name="ktsearch-heartbeat", daemon=True).start()

    def _beat(self):
        while not self._stop.wait(self.heartbeat):
            try:
                self._raw.GetSpace(protos.service.GetSpaceRequest(), timeout=max(self.heartbeat, 5.0))
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
