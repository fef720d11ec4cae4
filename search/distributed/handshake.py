"""A worker's first contact with its chief, and what a refused call means. No TensorFlow: a worker
waits for its chief, and learns that its secret or certificate is wrong, before it imports KerasTuner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from search.distributed import auth
from search.distributed.role import CHIEF_FILE, Role
from search.errors import SearchStopped, UserError
from search.runs import layout

CONNECT_WAIT = 600  # seconds a worker waits for its chief to come up, or to come back
GET_SPACE = "/keras_tuner.Oracle/GetSpace"  # KerasTuner's service (package keras_tuner, service Oracle)
ATTEMPT = 10  # seconds per attempt of a call to the chief


def chief_done(run_dir: Path) -> bool:
    """Whether the chief has said (in chief.json) that the search is over."""
    state = layout.read_json(Path(run_dir) / CHIEF_FILE) or {}
    return state.get("state") == "done"


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
    state = layout.read_json(Path(run_dir) / CHIEF_FILE) or {}
    if not role.security.tls and state.get("tls") and state.get("state") == "serving":
        return UserError("--tls-ca", "", f"{where} serves TLS: connect with --tls-ca (the CA of its certificate)")
    return None


def wait_for_chief(role: Role, log: Callable[[str], None], run_dir: Path) -> None:
    """Block until the chief answers a call with this worker's credentials (it may start after its workers).

    A refused secret or an untrusted certificate is a UserError at once; no answer within
    CONNECT_WAIT is SearchStopped.
    """
    import grpc

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
