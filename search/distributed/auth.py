"""Who may talk to a chief: a shared secret on every call, and TLS off this machine.

KerasTuner's chief/worker protocol has no authentication: whatever reaches the chief's port
can ask for trials, report invented scores, end trials or read the best ones. ktsearch adds:

* **A shared secret on every RPC**, reads included. The chief takes it from ``--secret-file``,
  else ``$KTSEARCH_SECRET``, else generates one into ``RUN_DIR/chief.secret`` (mode 0600,
  kept across chief restarts). Workers take it the same way; sharing the results directory
  (as workers must) is enough on one machine or a shared filesystem. Each call carries it in
  its ``authorization`` metadata; the chief's interceptor refuses a call without it
  (UNAUTHENTICATED) or with another (PERMISSION_DENIED) before KerasTuner's servicer sees it,
  so a refused call changes nothing. The secret is never a command-line argument (``ps``
  shows those), and secret files must be readable by their owner only.
* **TLS off loopback** (gRPC's own): ``--tls-cert``/``--tls-key`` on the chief, ``--tls-ca`` on
  workers. A chief that binds anything but a loopback address without them is refused, and so
  is a worker that would send its secret in the clear to another machine. A worker that does
  not trust the chief's certificate stops at once, with one line.
* ``--insecure-no-auth``: no secret, for throwaway runs on 127.0.0.1 only.

TensorFlow-free; gRPC is imported only where a server or channel is made.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from search.errors import UserError, arg

SECRET_FILE = "chief.secret"  # in the run directory
ENV_SECRET = "KTSEARCH_SECRET"
METADATA_KEY = "authorization"
SCHEME = "Bearer "
MIN_SECRET = 16  # characters


@dataclass(frozen=True)
class Security:
    """How a chief or worker authenticates: where the secret comes from, and TLS files (paths)."""

    secret_file: str | None = None
    no_auth: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert or self.tls_ca)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _readable(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UserError(flag, "", f"cannot read {path} ({e.strerror or e})") from None


def _private(path: Path, flag: str) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(
            flag,
            "",
            f"{path} is readable by others (mode {stat.filemode(mode)}); a secret must not be: chmod 600 {path}",
        )


def read_secret(path: str | Path, flag: str) -> str:
    """A secret file's secret: its first line, at least `MIN_SECRET` characters, the file private."""
    text = _readable(str(path), flag).decode("utf-8", "replace").strip()
    _private(Path(path), flag)
    secret = text.splitlines()[0].strip() if text else ""
    if len(secret) < MIN_SECRET:
        raise UserError(flag, "", f"expected a secret of at least {MIN_SECRET} characters in {path}")
    return secret


PYTHON_NAMES = {  # what a Python caller passed instead of each flag (`search.errors.arg`)
    "--secret-file": "Security.secret_file",
    "--insecure-no-auth": "Security.no_auth",
    "--tls-cert": "Security.tls_cert",
    "--tls-key": "Security.tls_key",
    "--tls-ca": "Security.tls_ca",
    "--bind": "Role.host",
    "--oracle": "Role.host",
    "--chief": "Role.kind 'chief'",
    "--worker": "Role.kind 'worker'",
}


def _f(flag: str) -> str:
    """A flag as its caller gave it: the flag itself under `ktsearch`, the `Security` or `Role` field in Python."""
    return arg(flag, PYTHON_NAMES[flag])


def check(kind: str, host: str, security: Security, environ: dict) -> None:
    """Refuse, before anything runs, flags that do not fit together or leave a search open."""
    s = security
    if kind not in ("chief", "worker"):
        given = [flag for flag, v in _flags(s) if v]
        if given:
            raise UserError(given[0], "", f"only used with {_f('--chief')} or {_f('--worker')}")
        return
    if kind == "worker" and (s.tls_cert or s.tls_key):
        raise UserError(
            _f("--tls-cert") if s.tls_cert else _f("--tls-key"), "", f"the chief's; a worker takes {_f('--tls-ca')}"
        )
    if kind == "chief" and s.tls_ca:
        raise UserError(
            _f("--tls-ca"),
            "",
            f"a worker's (the CA it trusts); the chief takes {_f('--tls-cert')} and {_f('--tls-key')}",
        )
    if kind == "chief" and bool(s.tls_cert) != bool(s.tls_key):
        raise UserError(
            _f("--tls-cert") if s.tls_key else _f("--tls-key"),
            "",
            f"expected {_f('--tls-cert')} and {_f('--tls-key')} together",
        )
    for flag, path in ((_f("--tls-cert"), s.tls_cert), (_f("--tls-key"), s.tls_key), (_f("--tls-ca"), s.tls_ca)):
        if path is not None and not _readable(path, flag).strip().startswith(b"-----BEGIN"):
            raise UserError(flag, "", f"expected a PEM file, got {path}")
    if s.tls_key:
        _private(Path(s.tls_key), _f("--tls-key"))
    if s.no_auth:
        if s.secret_file:
            raise UserError(_f("--insecure-no-auth"), "", f"turns the secret off; drop it or {_f('--secret-file')}")
        if not is_loopback(host):
            flag = _f("--bind") if kind == "chief" else _f("--oracle")
            raise UserError(
                _f("--insecure-no-auth"), "", f"only for runs on this machine (127.0.0.1), not {flag} {host}"
            )
    elif s.secret_file:
        read_secret(s.secret_file, _f("--secret-file"))
    elif environ.get(ENV_SECRET) is not None and len(environ[ENV_SECRET].strip()) < MIN_SECRET:
        raise UserError(ENV_SECRET, "", f"expected a secret of at least {MIN_SECRET} characters")
    if not is_loopback(host) and not s.tls:
        if kind == "chief":
            raise UserError(
                _f("--bind"),
                "",
                f"{host} is reachable from other machines: serve TLS with {_f('--tls-cert')} and {_f('--tls-key')}",
            )
        raise UserError(
            _f("--oracle"),
            "",
            f"{host} is another machine: connect over TLS with {_f('--tls-ca')} (the CA of the chief's certificate)",
        )


def _flags(s: Security):
    return (
        (_f("--secret-file"), s.secret_file),
        (_f("--insecure-no-auth"), s.no_auth),
        (_f("--tls-cert"), s.tls_cert),
        (_f("--tls-key"), s.tls_key),
        (_f("--tls-ca"), s.tls_ca),
    )


def _given(security: Security, env: dict) -> str | None:
    """A secret the user gave: --secret-file, else $KTSEARCH_SECRET."""
    if security.secret_file:
        return read_secret(security.secret_file, _f("--secret-file"))
    return env[ENV_SECRET].strip() if env.get(ENV_SECRET) else None


def chief_secret(security: Security, run_dir: Path, environ: dict | None = None) -> str | None:
    """The chief's secret: the one given, else RUN_DIR/chief.secret (generated once, 0600); None with no auth."""
    if security.no_auth:
        return None
    given = _given(security, os.environ if environ is None else environ)
    if given:
        return given
    path = Path(run_dir) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # an earlier start of this chief (or another chief of this run) made it: keep it
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return read_secret(path, str(path))


def worker_secret(security: Security, run_dir: Path, environ: dict | None = None) -> str | None:
    """The worker's secret, the same way; None while the chief has not written RUN_DIR/chief.secret yet."""
    if security.no_auth:
        return None
    path = Path(run_dir) / SECRET_FILE
    given = _given(security, os.environ if environ is None else environ)
    return given or (read_secret(path, str(path)) if path.exists() else None)


def server_credentials(security: Security):
    import grpc

    key = _readable(security.tls_key, "--tls-key")
    cert = _readable(security.tls_cert, "--tls-cert")
    return grpc.ssl_server_credentials([(key, cert)])


def channel(security: Security, address: str):
    """A gRPC channel to the chief: TLS trusting --tls-ca, or plain on loopback."""
    import grpc

    if security.tls_ca:
        credentials = grpc.ssl_channel_credentials(_readable(security.tls_ca, "--tls-ca"))
        return grpc.secure_channel(address, credentials, options=RECONNECT)
    return grpc.insecure_channel(address, options=RECONNECT)


# gRPC backs off between reconnects up to 120 s by default: a worker whose chief restarted a few
# times would wait minutes after it came back. A reconnect at least every second instead.
RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def interceptor(secret: str | None, refused):
    """The chief's server interceptor: every call carries the secret, or is refused before it runs.

    `refused(method, code_name)` is told of each refusal (the chief logs a few).
    """
    import grpc

    expected = (SCHEME + secret).encode() if secret else None

    def deny(code, message):
        def handler(request, context):
            context.abort(code, message)

        return grpc.unary_unary_rpc_method_handler(handler)

    class Authenticate(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            if expected is None:
                return continuation(details)
            given = dict(details.invocation_metadata or ()).get(METADATA_KEY)
            if given is None:
                refused(details.method, "UNAUTHENTICATED")
                return deny(grpc.StatusCode.UNAUTHENTICATED, "this chief takes calls with its secret only")
            if not hmac.compare_digest(str(given).encode(), expected):
                refused(details.method, "PERMISSION_DENIED")
                return deny(grpc.StatusCode.PERMISSION_DENIED, "wrong secret")
            return continuation(details)

    return Authenticate()


def metadata(secret: str | None) -> list[tuple[str, str]]:
    return [(METADATA_KEY, SCHEME + secret)] if secret else []
