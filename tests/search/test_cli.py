"""The real `ktsearch` command in subprocesses: help, validate, bad input."""

import subprocess
import sys
import time

import pytest

from search.cli import COMMANDS
from tests.conftest import run_cli, tree_state


def test_help_is_fast_and_never_imports_tensorflow(workdir):
    """--help, validate and plan --no-calibrate succeed (exit 0, each checked) without importing TensorFlow."""
    code = (
        "import sys, contextlib, io\n"
        "from search.cli import main\n"
        "for argv in (['--help'], ['tune', '--help'], ['validate', 'configs/mnist5k.yaml'],\n"
        "             ['validate', 'configs/seed_recipe.yaml'], ['plan', 'configs/mnist5k.yaml', '--no-calibrate']):\n"
        "    out = io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            code = main(argv)\n"
        "    except SystemExit as e:  # argparse's --help\n"
        "        code = e.code\n"
        "    assert code == 0 and out.getvalue(), (argv, code)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'heavy import'\n"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - start < 3  # TensorFlow alone takes ~3 s to import


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_every_command_has_help(workdir, command):
    proc = run_cli(command, "--help", cwd=workdir)
    assert proc.returncode == 0 and "usage: ktsearch " + command in proc.stdout


def test_validate_prints_the_resolved_space(workdir):
    proc = run_cli("validate", "configs/mnist5k.yaml", "--set", "tuner.max_epochs=3", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "augmentation.rotation_range" in out and "float in [0, 30], linear sampling" in out
    assert "schedule.initial_lr" in out and "log sampling" in out
    assert "choice of {none, before_activation, after_activation}" in out
    assert "(when schedule.kind = step)" in out
    assert "max_epochs 3" in out
    # drop_epoch reaches 7 >= 3: legal, but those values never drop during the search.
    assert "warning:" in proc.stderr and "search_space.schedule.drop_epoch" in proc.stderr
    assert not (workdir / "results").exists()


def test_validate_checks_an_export_too(workdir):
    proc = run_cli("validate", "configs/seed_recipe.yaml", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "an export: train it with ktsearch train configs/seed_recipe.yaml" in proc.stdout
    assert "training: 20 epochs" in proc.stdout
    assert "augmentation.rotation_range" in proc.stdout and "fixed 30" in proc.stdout
    assert "batchnorm.placement" in proc.stdout and "fixed after_activation" in proc.stdout
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["validate", "configs/missing.yaml"], "configs/missing.yaml: file not found"),
        (["validate", "configs/mnist5k.yaml", "--set", "tuner.max_epochs"], "expected KEY=VALUE"),
        (
            ["validate", "configs/mnist5k.yaml", "--set", "tuner.factor=1"],
            "--set tuner.factor: tuner.factor: expected an integer in [2, 100], got 1",
        ),
        (["tune", "configs/mnist5k.yaml", "--name", "../outside"], "--name: name: expected a run name"),
        (["tune", "configs/mnist5k.yaml", "--set", "data.sourc=npz"], "did you mean 'source'"),
        (["export", "results/nothing"], "results/nothing: expected a run directory"),
        (["train", "configs/mnist5k.yaml"], "not an export"),
        (["tune"], "the following arguments are required: CONFIG"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback_nothing_written(workdir, args, fragment):
    before = tree_state(workdir)
    proc = run_cli(*args, cwd=workdir)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr
    assert tree_state(workdir) == before


def test_offline_keras_dataset_is_a_clear_error(workdir, tmp_path):
    # Point every download at a closed local port: what a machine without internet sees.
    env = {
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "KERAS_HOME": str(tmp_path / "keras_home"),
    }
    proc = run_cli(
        "tune", "configs/digits_smoke.yaml", "--set", "data.source=keras:fashion_mnist", cwd=workdir, env=env
    )
    assert proc.returncode == 2
    assert "could not load keras.datasets.fashion_mnist" in proc.stderr and "internet" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (workdir / "results").exists()


def test_output_piped_into_head_ends_quietly(workdir):
    """`ktsearch validate CONFIG | head`: a reader that stops early is not an error with a traceback."""
    script = f'"{sys.executable}" -m search validate configs/mnist5k.yaml | true; exit "${{PIPESTATUS[0]}}"'
    proc = subprocess.run(["bash", "-c", script], cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
