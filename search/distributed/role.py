"""What this process is in a search (alone, the chief, or a worker), from `tune`'s flags or KerasTuner's
environment variables, and the constants chief and workers share. No TensorFlow, no gRPC.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field

from search.distributed import auth
from search.distributed.auth import Security
from search.errors import UserError, arg

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
    security: Security = field(
        default_factory=Security
    )  # the secret's source and TLS files (`search.distributed.auth`)

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
    """Refuse security flags that do not fit the role, or would leave the search open (`search.distributed.auth.check`)."""
    auth.check(role.kind, role.host, role.security, os.environ if environ is None else environ)


def _role(chief, bind, worker, oracle, worker_id, env) -> Role:
    if chief and worker:
        raise UserError(
            arg("--chief/--worker", "chief/worker"), "", "expected one of them: a process is the chief or a worker"
        )
    if (bind is not None) and not chief:
        raise UserError(arg("--bind", "bind"), "", f"only used with {arg('--chief', 'chief=True')}")
    if (oracle is not None or worker_id is not None) and not worker:
        flag = arg("--oracle", "oracle") if oracle is not None else arg("--worker-id", "worker_id")
        raise UserError(flag, "", f"only used with {arg('--worker', 'worker=True')}")
    if chief:
        host, port = parse_address(bind or f"127.0.0.1:{DEFAULT_PORT}", arg("--bind", "bind"), allow_zero=True)
        return Role("chief", host, port)
    if worker:
        if oracle is None and ENV_IP not in env:
            raise UserError(
                arg("--oracle", "oracle"), "", "expected the chief's HOST:PORT (or KERASTUNER_ORACLE_IP/_PORT)"
            )
        address = oracle if oracle is not None else f"{env[ENV_IP]}:{env.get(ENV_PORT, '')}"
        host, port = parse_address(address, arg("--oracle", "oracle") if oracle is not None else f"{ENV_IP}/{ENV_PORT}")
        default_id = env.get(ENV_ID) or f"worker-{socket.gethostname()}-{os.getpid()}"
        return Role(
            "worker",
            host,
            port,
            _worker_id(worker_id or default_id, arg("--worker-id", "worker_id") if worker_id else ENV_ID),
        )
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
