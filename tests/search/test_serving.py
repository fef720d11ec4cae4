"""What `train` ships: SavedModel and TFLite files checked in a fresh process without ktsearch, the
model card, `--full-data`, and training on two devices. Real CLI processes and files."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import QUIET_ENV, ROOT, run_cli

pytestmark = pytest.mark.slow

# Runs with only NumPy, TensorFlow, Keras and ai-edge-litert: what a serving machine has.
FRESH = r"""
import json, sys
import numpy as np
import keras, tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

out, data = sys.argv[1], sys.argv[2]
x, y = np.load(data + "/x.npy", allow_pickle=False), np.load(data + "/y.npy", allow_pickle=False)
reference = keras.models.load_model(out + "/model.keras").predict(x, verbose=0)
saved = tf.saved_model.load(out + "/saved_model")  # keep it referenced: its functions use its variables
predictions = {"saved_model": saved.serve(x).numpy()}
ops = {}
for name in ("model.tflite", "model_dynamic_range.tflite"):
    interpreter = Interpreter(model_path=out + "/" + name)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    predictions[name] = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    ops[name] = sorted({op["op_name"] for op in interpreter._get_ops_details()})
report = {
    name: {
        "max_abs_diff": float(np.abs(p - reference).max()),
        "accuracy": float((p.argmax(1) == y).mean()),
    }
    for name, p in predictions.items()
}
print(json.dumps({
    "keras_accuracy": float((reference.argmax(1) == y).mean()),
    "files": report,
    "ops": ops,
    "project_imported": sorted(m for m in sys.modules if m.split(".")[0] in ("search", "hypermodels", "tests")),
}))
"""


def _export(smoke_run: Path, cwd: Path) -> Path:
    run = cwd / "results" / "digits-smoke"
    shutil.copytree(smoke_run, run)
    proc = run_cli("export", "results/digits-smoke", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return run / "best.yaml"


@pytest.fixture(scope="module")
def trained(smoke_run, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("serving")
    export = _export(smoke_run, cwd)
    proc = run_cli("train", str(export), "--quantize", "--quiet", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return export, cwd / "results" / "digits-smoke" / "train", proc


def test_serving_files_predict_as_the_keras_model_in_a_fresh_process(trained, tmp_path):
    export, out, proc = trained
    from search.config import load_export
    from search.data.sources import load_splits

    cfg = load_export(export)
    splits = load_splits(cfg.data, cfg.seed)  # the export's split: its test images
    np.save(tmp_path / "x.npy", splits.x_test.astype("float32"))
    np.save(tmp_path / "y.npy", splits.y_test)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | QUIET_ENV
    fresh = subprocess.run(
        [sys.executable, "-c", FRESH, str(out), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    seen = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert seen["project_imported"] == []
    files = seen["files"]
    assert files["saved_model"]["max_abs_diff"] <= 1e-5
    assert files["model.tflite"]["max_abs_diff"] <= 1e-4  # float32: the same function up to rounding
    assert files["model.tflite"]["accuracy"] == seen["keras_accuracy"]
    quantized = files["model_dynamic_range.tflite"]
    assert quantized["max_abs_diff"] <= 0.05 and abs(quantized["accuracy"] - seen["keras_accuracy"]) <= 0.01
    for name, ops in seen["ops"].items():  # TFLite built-in ops only: no Flex delegate, no custom ops
        assert ops and not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), (name, ops)
    # What train measured itself and wrote down agrees with the fresh process.
    metrics = json.loads((out / "metrics.json").read_text())
    serving = metrics["serving"]
    assert serving["images_checked"] == len(splits.y_test)
    assert (
        serving["keras_accuracy"] == pytest.approx(seen["keras_accuracy"]) == pytest.approx(metrics["test"]["accuracy"])
    )
    for name, f in serving["files"].items():
        assert f["within_tolerance"] and f["accuracy"] == pytest.approx(files[name]["accuracy"])
    assert serving["files"]["model_dynamic_range.tflite"]["bytes"] < serving["files"]["model.tflite"]["bytes"]
    assert "model_dynamic_range.tflite" in proc.stdout and "OK" in proc.stdout


def test_the_model_card_says_what_was_trained_on_what_and_how_to_reproduce_it(trained):
    export, out, _ = trained
    card = (out / "model_card.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    exported = yaml.safe_load(export.read_text())
    for heading in (
        "## Model",
        "## Data",
        "## Metrics",
        "## Serving files",
        "## Hyperparameters",
        "## How it was found",
    ):
        assert heading in card
    assert "## Reproduce" in card and "## Versions" in card
    assert f"| test | {metrics['test']['accuracy']:.4f} |" in card
    sizes = metrics["data"]
    assert f"train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']} images" in card
    assert "Trained on the train split; early stopping on val_loss" in card
    assert "Classes (output index order): 0, 1, 2, 3, 4, 5, 6, 7, 8, 9." in card
    placement = exported["hyperparameters"]["batchnorm"]["placement"]
    assert f"| batchnorm.placement | {placement} |" in card
    prov = exported["provenance"]
    assert f"Trial {prov['trial_id']}: val_accuracy {prov['score']:.4f}" in card
    assert "ktsearch finalize" in card  # no finalists yet: the card says how to measure the spread
    assert metrics["command"] in card and "--quantize" in metrics["command"]
    import tensorflow as tf

    assert f"| tensorflow | {prov['versions']['tensorflow']} | {tf.__version__} |" in card


def test_full_data_trains_on_train_and_validation_for_the_exported_epochs(trained, tmp_path):
    export, _, _ = trained
    out = tmp_path / "full"
    proc = run_cli(
        "train", str(export), "--full-data", "--no-serving", "--quiet", "-o", str(out), cwd=export.parents[2]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    data = metrics["data"]
    assert data["trained_on"] == ["train", "validation"] and data["held_out"] == "test"
    assert data["training_images"] == data["train"] + data["validation"] and data["early_stopping_on"] is None
    assert metrics["validation"] is None and "search" not in metrics  # nothing to compare on: it trained on it
    epochs = yaml.safe_load(export.read_text())["training"]["epochs"]
    assert metrics["epochs_requested"] == metrics["epochs_run"] == epochs  # no early stopping
    assert not any(k.startswith("val_") for k in metrics["history"])
    assert 0 < metrics["test"]["accuracy"] <= 1
    assert (out / "tensorboard" / "train").is_dir() and not (out / "tensorboard" / "validation").exists()
    assert not (out / "saved_model").exists() and (out / "model.keras").is_file()
    card = (out / "model_card.md").read_text()
    assert f"Trained on train + validation ({data['training_images']} images, `--full-data`)" in card
    assert f"trained {epochs} of {epochs} epochs on train + validation" in proc.stdout


def test_train_runs_on_two_logical_devices_with_the_distribution_section(trained, tmp_path):
    export, _, _ = trained
    probe = tmp_path / "probe.jsonl"
    script = f"""
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from search import train
lines = []
metrics = train({str(export)!r}, {str(tmp_path / "out")!r}, verbose=0, log=lines.append, overrides=[
    "hypermodel.name=tests.fixtures:ReplicaProbeCNN",
    "distribution.strategy=mirrored",
    "distribution.devices=[/cpu:0, /cpu:1]",
])
print(json.dumps({{"distribution": metrics["distribution"], "serving": metrics["serving"]}}))
"""
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT), "KTSEARCH_PROBE": str(probe)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["distribution"] == {"strategy": "mirrored", "replicas": 2}
    [record] = [json.loads(line) for line in probe.read_text().splitlines()]
    assert record["replicas"] == 2 and record["variable"] == "MirroredVariable"
    assert [d.rsplit("/", 1)[-1] for d in record["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert all(f["within_tolerance"] for f in out["serving"]["files"].values())  # served from one device


def test_train_refuses_to_replace_serving_files_without_overwrite(trained):
    export, out, _ = trained
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    proc = run_cli("train", str(export), "--quiet", cwd=export.parents[2])
    assert proc.returncode == 2
    assert "already holds model.keras, metrics.json, model_card.md, saved_model, model.tflite" in proc.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
