"""Serving files beside `model.keras`, and their check against the Keras model.

`train` writes the inference model (no augmentation, 0-255 pixels in, class probabilities
out) three more ways:

* ``saved_model/``: a TensorFlow SavedModel (`keras.Model.export`), signature ``serve``
  (also ``serving_default``), for TF Serving and `tf.saved_model.load`;
* ``model.tflite``: LiteRT (TFLite) float32, TFLite built-in ops only (no Flex ops, so the
  plain LiteRT runtime runs it);
* ``model_dynamic_range.tflite`` (`--quantize`): the same with dynamic-range quantisation
  (int8 weights, float activations: about 4x smaller, no calibration data needed).

Each is then loaded the way a user loads it (the LiteRT files through the `ai-edge-litert`
interpreter, `tf.lite.Interpreter` being deprecated) and its predictions on the test images
compared with the Keras model's: float files must agree within `FLOAT_TOLERANCE` (max
absolute difference of any class probability), the quantised one within `QUANTIZED_TOLERANCE`
with a test-accuracy change of at most `QUANTIZED_ACCURACY_DELTA`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from search.runs import layout

SAVED_MODEL_DIR = "saved_model"
TFLITE_FILE = "model.tflite"
TFLITE_DYNAMIC_FILE = "model_dynamic_range.tflite"
FILES = (SAVED_MODEL_DIR, TFLITE_FILE, TFLITE_DYNAMIC_FILE)
FLOAT_TOLERANCE = 1e-4
QUANTIZED_TOLERANCE = 0.05
QUANTIZED_ACCURACY_DELTA = 0.01
CHECK_IMAGES = 2000  # test images the check runs through every file (the first ones, in split order)


def _tflite(saved_model: Path, quantize: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex (TensorFlow) ops
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    return converter.convert()


def write(model, out: Path, quantize: bool) -> list[str]:
    """Write the SavedModel and the TFLite file(s) of `model` into `out`; returns their names."""
    saved = out / SAVED_MODEL_DIR
    shutil.rmtree(saved, ignore_errors=True)  # --overwrite: `train` refused earlier without it
    model.export(str(saved), format="tf_saved_model", verbose=False)
    names = [SAVED_MODEL_DIR, TFLITE_FILE]
    layout.atomic_write_bytes(out / TFLITE_FILE, _tflite(saved, quantize=False))
    if quantize:
        layout.atomic_write_bytes(out / TFLITE_DYNAMIC_FILE, _tflite(saved, quantize=True))
        names.append(TFLITE_DYNAMIC_FILE)
    else:
        (out / TFLITE_DYNAMIC_FILE).unlink(missing_ok=True)  # an earlier --quantize's file would be stale
    return names


class LiteRT:
    """One TFLite file in the `ai-edge-litert` interpreter, resized to each batch it is given."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path))
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.shape = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self.shape:
            self.interpreter.resize_tensor_input(self.input, x.shape)
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def check(model, out: Path, names: list[str], test_ds) -> dict:
    """Each serving file's predictions against `model`'s on up to `CHECK_IMAGES` test images."""
    import tensorflow as tf

    saved = tf.saved_model.load(str(out / SAVED_MODEL_DIR))
    predictors = {SAVED_MODEL_DIR: lambda x: saved.serve(x).numpy()}
    predictors.update({name: LiteRT(out / name) for name in names if name.endswith(".tflite")})
    diff = dict.fromkeys(predictors, 0.0)
    agree = dict.fromkeys(predictors, 0)
    correct = dict.fromkeys(["keras", *predictors], 0)
    seen = 0
    for x, y in test_ds:
        x, y = x.numpy()[: CHECK_IMAGES - seen], y.numpy()[: CHECK_IMAGES - seen]
        y = y.argmax(1) if y.ndim == 2 else y  # one-hot rows, as a user's arrays gave them
        reference = model.predict_on_batch(x)
        correct["keras"] += int((reference.argmax(1) == y).sum())
        for name, predict in predictors.items():
            p = predict(x)
            diff[name] = max(diff[name], float(np.abs(p - reference).max()))
            agree[name] += int((p.argmax(1) == reference.argmax(1)).sum())
            correct[name] += int((p.argmax(1) == y).sum())
        seen += len(y)
        if seen >= CHECK_IMAGES:
            break
    keras_accuracy = correct["keras"] / max(seen, 1)
    files = {}
    for name in predictors:
        quantized = name == TFLITE_DYNAMIC_FILE
        accuracy = correct[name] / max(seen, 1)
        tolerance = QUANTIZED_TOLERANCE if quantized else FLOAT_TOLERANCE
        ok = diff[name] <= tolerance and (not quantized or abs(accuracy - keras_accuracy) <= QUANTIZED_ACCURACY_DELTA)
        files[name] = {
            "bytes": _size(out / name),
            "max_abs_diff": diff[name],
            "tolerance": tolerance,
            "argmax_agreement": agree[name] / max(seen, 1),
            "accuracy": accuracy,
            "accuracy_delta": accuracy - keras_accuracy,
            "within_tolerance": bool(ok),
        }
    return {"images_checked": seen, "keras_accuracy": keras_accuracy, "files": files}


def describe(serving: dict) -> list[str]:
    """One line per serving file: size and agreement with the Keras model."""
    lines = []
    for name, f in serving["files"].items():
        verdict = "OK" if f["within_tolerance"] else "OUTSIDE TOLERANCE"
        lines.append(
            f"  {name}: {f['bytes'] / 1e3:,.0f} kB, max |Δp| {f['max_abs_diff']:.2g} (tolerance {f['tolerance']:g}), "
            f"accuracy {f['accuracy']:.4f} ({f['accuracy_delta']:+.4f}) on {serving['images_checked']} test images: "
            f"{verdict}"
        )
    return lines
