"""A chief that lets no one in: the secret on every call, TLS, refused clients that change nothing.
Real chief and worker processes, real gRPC clients, real certificates."""

import os
import signal
import stat
import subprocess
import sys
import time

import grpc
import pytest

from search.distributed import auth
from search.distributed.auth import Security
from search.errors import COMMAND_LINE, UserError
from tests.conftest import QUIET_ENV, ROOT, _free_port, run_cli, tree_state
from tests.search.test_distributed import Proc, _config, finish_two_workers
from tests.tls import make_certificates


def _private_file(path, text: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


# -- where the secret comes from (no processes) ------------------------------------------------


def test_the_chief_generates_a_private_secret_once_and_workers_read_it(tmp_path):
    assert auth.worker_secret(Security(), tmp_path, environ={}) is None  # the chief has not started yet
    secret = auth.chief_secret(Security(), tmp_path, environ={})
    path = tmp_path / auth.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(secret) >= 32
    assert auth.chief_secret(Security(), tmp_path, environ={}) == secret  # a restarted chief keeps it
    assert auth.worker_secret(Security(), tmp_path, environ={}) == secret
    # A file, then the environment, win over the run directory's.
    given = _private_file(tmp_path / "s.txt", "a-secret-of-enough-length\n")
    assert auth.worker_secret(Security(secret_file=str(given)), tmp_path, {}) == "a-secret-of-enough-length"
    env = {auth.ENV_SECRET: "from-the-environment-0123"}
    assert auth.chief_secret(Security(), tmp_path, env) == "from-the-environment-0123"
    assert auth.chief_secret(Security(no_auth=True), tmp_path, env) is None
    path.chmod(0o644)
    with pytest.raises(UserError, match="readable by others"):
        auth.worker_secret(Security(), tmp_path, environ={})


def test_security_flags_are_checked_before_anything_runs(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    tls = Security(tls_cert=str(certs["server.pem"]), tls_key=str(certs["server.key"]))
    auth.check("chief", "0.0.0.0", tls, {})  # off loopback with TLS: fine
    auth.check("chief", "127.0.0.1", Security(), {})  # loopback: the secret alone
    auth.check("worker", "10.0.0.5", Security(tls_ca=str(certs["ca.pem"])), {})
    with pytest.raises(UserError, match="KTSEARCH_SECRET"):
        auth.check("chief", "127.0.0.1", Security(), {auth.ENV_SECRET: "short"})
    with pytest.raises(UserError, match="only used with Role.kind 'chief' or Role.kind 'worker'"):
        auth.check("single", "", Security(tls_ca=str(certs["ca.pem"])), {})  # a Python caller's Role and Security
    token = COMMAND_LINE.set(True)  # the same check under `ktsearch` names its flags
    try:
        with pytest.raises(UserError, match=r"^--tls-ca: only used with --chief or --worker$"):
            auth.check("single", "", Security(tls_ca=str(certs["ca.pem"])), {})
    finally:
        COMMAND_LINE.reset(token)
    assert auth.is_loopback("127.0.0.2") and auth.is_loopback("::1") and auth.is_loopback("localhost")
    assert not auth.is_loopback("0.0.0.0") and not auth.is_loopback("chief.example.org")


def test_a_short_secret_in_the_environment_is_bad_input(workdir):
    before = tree_state(workdir)
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--chief", cwd=workdir, env={auth.ENV_SECRET: "short"})
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"ktsearch: error: {auth.ENV_SECRET}: expected a secret of at least 16 characters"
    ]
    assert tree_state(workdir) == before


def test_the_wire_name_workers_probe_is_kerastuners_get_space():
    """Workers call GetSpace by its wire name before importing KerasTuner: it must stay KerasTuner's."""
    from hypermodels import private_api
    from search.distributed.handshake import GET_SPACE

    service = private_api.protos().service.DESCRIPTOR.services_by_name["Oracle"]
    assert GET_SPACE == f"/{service.full_name}/{service.methods_by_name['GetSpace'].name}"


# -- a real chief ---------------------------------------------------------------------------------


def _stub(port: int, ca: bytes | None):
    from hypermodels import private_api

    protos = private_api.protos()
    address = f"127.0.0.1:{port}"
    channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(ca)) if ca else grpc.insecure_channel(address)
    return protos, protos.service_grpc.OracleStub(channel)


def _every_call(protos) -> list[tuple[str, object]]:
    s = protos.service
    return [
        ("GetSpace", s.GetSpaceRequest()),
        ("UpdateSpace", s.UpdateSpaceRequest()),
        ("CreateTrial", s.CreateTrialRequest(tuner_id="intruder")),
        ("UpdateTrial", s.UpdateTrialRequest(trial_id="0000")),
        ("EndTrial", s.EndTrialRequest()),
        ("GetTrial", s.GetTrialRequest(trial_id="0000")),
        ("GetBestTrials", s.GetBestTrialsRequest(num_trials=3)),
    ]


@pytest.mark.slow
def test_a_tls_chief_refuses_every_call_without_its_secret_and_serves_workers_that_trust_it(workdir, tmp_path):
    certs = make_certificates(tmp_path / "certs")
    config = _config(workdir)
    port = _free_port()
    tls = ["--tls-cert", str(certs["server.pem"]), "--tls-key", str(certs["server.key"])]
    chief = Proc(workdir, "tune", config, "--chief", "--bind", f"127.0.0.1:{port}", "--threads", "1", *tls)
    chief.wait_for("serving the oracle")
    run = workdir / "results" / "digits-smoke"
    secret_file = run / auth.SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600  # readable by the owner only
    secret = secret_file.read_text().strip()
    assert secret not in chief.text()  # never printed
    before = tree_state(run)
    ca = certs["ca.pem"].read_bytes()
    protos, stub = _stub(port, ca)
    refused = {
        "no secret": (None, grpc.StatusCode.UNAUTHENTICATED),
        "a wrong secret": ([("authorization", "Bearer " + "x" * len(secret))], grpc.StatusCode.PERMISSION_DENIED),
        "the secret without its scheme": ([("authorization", secret)], grpc.StatusCode.PERMISSION_DENIED),
    }
    for what, (metadata, code) in refused.items():
        for method, request in _every_call(protos):
            with pytest.raises(grpc.RpcError) as e:
                getattr(stub, method)(request, metadata=metadata, timeout=10)
            assert e.value.code() == code, (what, method, e.value.details())
    _, plain = _stub(port, None)  # no TLS at all: the chief does not even talk
    with pytest.raises(grpc.RpcError) as e:
        plain.GetSpace(protos.service.GetSpaceRequest(), metadata=[("authorization", "Bearer " + secret)], timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert tree_state(run) == before  # the refused calls changed no file: oracle, trials, TensorBoard
    assert "refused a call to GetSpace (UNAUTHENTICATED; 1 refused so far)" in chief.text()
    assert "-> intruder" not in chief.text()
    # The right secret over TLS is served (a read: it changes nothing either).
    space = stub.GetSpace(protos.service.GetSpaceRequest(), metadata=[("authorization", "Bearer " + secret)])
    assert len(space.hyperparameters.space.ListFields()) > 0 and tree_state(run) == before

    # Workers that cannot get in stop at once, with one line and exit code 2, and change nothing.
    worker = ["tune", config, "--worker", "--oracle", f"127.0.0.1:{port}", "--worker-id"]
    started = time.monotonic()
    distrusting = run_cli(*worker, "w-x", "--tls-ca", str(certs["other-ca.pem"]), cwd=workdir, timeout=120)
    assert time.monotonic() - started < 60
    assert distrusting.returncode == 2 and len(distrusting.stderr.strip().splitlines()) == 1, distrusting.stderr
    assert "presents a certificate" in distrusting.stderr and "does not trust" in distrusting.stderr
    plaintext = run_cli(*worker, "w-y", cwd=workdir, timeout=120)
    assert plaintext.returncode == 2 and "serves TLS: connect with --tls-ca" in plaintext.stderr
    wrong = run_cli(
        *worker, "w-z", "--tls-ca", str(certs["ca.pem"]), cwd=workdir, timeout=120, env={auth.ENV_SECRET: "w" * 40}
    )
    assert wrong.returncode == 2 and "refused this worker's secret (PERMISSION_DENIED)" in wrong.stderr
    assert "Traceback" not in distrusting.stderr + plaintext.stderr + wrong.stderr
    assert tree_state(run) == before

    # Two workers that trust the chief's CA (the secret from the shared run directory) finish the search.
    workers = {w: Proc(workdir, *worker, w, "--tls-ca", str(certs["ca.pem"]), "--threads", "1") for w in ("w1", "w2")}
    finish_two_workers(workdir, chief, workers)  # every trial completed exactly once, both workers worked


@pytest.mark.slow
def test_the_opt_out_serves_anyone_on_this_machine_and_says_so(workdir):
    config = _config(workdir)
    port = _free_port()
    chief = Proc(workdir, "tune", config, "--chief", "--bind", f"127.0.0.1:{port}", "--insecure-no-auth")
    line = chief.wait_for("serving the oracle")
    assert "NO AUTHENTICATION" in line
    protos, stub = _stub(port, None)
    assert len(stub.GetSpace(protos.service.GetSpaceRequest(), timeout=10).hyperparameters.space.ListFields()) > 0
    assert not (workdir / "results" / "digits-smoke" / auth.SECRET_FILE).exists()
    chief.p.send_signal(signal.SIGINT)
    assert chief.finish(timeout=60) == 130


@pytest.mark.slow
def test_a_secret_from_the_environment_is_never_on_the_command_line(workdir):
    """KTSEARCH_SECRET on both sides: ps shows no secret, and a chief given one writes no chief.secret."""
    config = _config(workdir)
    port = _free_port()
    secret = "environment-secret-" + "7" * 24
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT), auth.ENV_SECRET: secret}
    cmd = [sys.executable, "-m", "search", "tune", config, "--chief", "--bind", f"127.0.0.1:{port}"]
    chief = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        protos, stub = _stub(port, None)
        while True:
            try:
                stub.GetSpace(
                    protos.service.GetSpaceRequest(), metadata=[("authorization", "Bearer " + secret)], timeout=5
                )
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline and chief.poll() is None
                time.sleep(0.5)
        with open(f"/proc/{chief.pid}/cmdline", "rb") as f:
            assert secret.encode() not in f.read()
        assert not (workdir / "results" / "digits-smoke" / auth.SECRET_FILE).exists()
    finally:
        chief.send_signal(signal.SIGINT)
        chief.wait(timeout=60)
