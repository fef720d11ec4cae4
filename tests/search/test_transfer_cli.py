"""`configs/transfer.yaml` through the CLI, as shipped (offline, weights null), and ImageNet weights offline."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import run_cli, tree_state

pytestmark = pytest.mark.slow

SMALL = [
    "--set", "data.max_examples=300",
    "--set", "tuner.max_epochs=2",
    "--set", "tuner.factor=2",
    "--set", "search_space.model.family=mobilenet_v3_small",
    "--set", "search_space.model.head_units=0",
]  # fmt: skip


def test_the_shipped_transfer_config_searches_exports_and_trains_offline(workdir):
    proc = run_cli("tune", "configs/transfer.yaml", *SMALL, "--name", "t", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = workdir / "results" / "t"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_trial"] is not None
    assert run_cli("export", str(run_dir), cwd=workdir).returncode == 0
    proc = run_cli("train", str(run_dir / "best.yaml"), "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = (
        "import sys, keras, numpy as np\n"
        "m = keras.saving.load_model(sys.argv[1])\n"
        "p = m.predict(np.full((2, 32, 32, 3), 255.0, 'float32'), verbose=0)\n"
        "assert p.shape == (2, 10) and abs(p.sum() - 2) < 1e-4, p\n"
        "assert 'search' not in sys.modules and 'hypermodels' not in sys.modules\n"
    )
    model = run_dir / "train" / "model.keras"
    check = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, cwd=workdir)
    assert check.returncode == 0, check.stderr[-2000:]


def test_imagenet_weights_offline_stop_tune_before_anything_is_written(workdir, tmp_path_factory):
    env = {
        "KERAS_HOME": str(tmp_path_factory.mktemp("keras-home")),  # an empty cache, outside the working directory
        "HTTPS_PROXY": "http://127.0.0.1:9",  # a port that refuses: offline, even on a machine with internet
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    before = tree_state(workdir)
    proc = run_cli(
        "tune", "configs/transfer.yaml", *SMALL, "--set", "hypermodel.weights=imagenet", cwd=workdir, env=env
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    expected = "--set hypermodel.weights: hypermodel.weights: could not get the ImageNet weights of MobileNetV3Small"
    assert expected in lines[0]
    assert tree_state(workdir) == before
