"""The bad-input corpus: every case is one line naming the file, the key and what was expected,
exit code 2, no traceback, and nothing created or removed on disk. Real CLI subprocesses."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import CONFIGS, run_cli, tree_state

BASE = {"name": "bad", "data": {"source": "digits"}, "tuner": {"max_epochs": 2}}


def _config(**sections) -> str:
    """BASE with sections replaced or added (a value of None removes the key)."""
    out = {**BASE}
    for key, value in sections.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return yaml.safe_dump(out)


def _npz_pickled(path: Path) -> None:
    np.savez(path, x_train=np.array([{"a": 1}, None], dtype=object), y_train=np.array([0, 1]))


def _npz_mismatched(path: Path) -> None:
    np.savez(path, x_train=np.zeros((10, 8, 8), "uint8"), y_train=np.zeros(7, "int64"))


def _npz_nan(path: Path) -> None:
    x = np.zeros((10, 8, 8), "float32")
    x[3, 2, 2] = np.nan
    np.savez(path, x_train=x, y_train=np.arange(10) % 2)


MODEL_FILE = """
import keras


def three_outputs(hp):
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(hp.Int("units", 8, 16)), keras.layers.Dense(3)])


def one_hot_loss(hp):
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


not_a_model = 3
"""


def _dir_one_class(path: Path) -> None:
    (path / "cats").mkdir(parents=True)
    (path / "cats" / "a.txt").write_text("not an image")


def _dir_non_images(path: Path) -> None:
    for label in ("cats", "dogs"):
        (path / label).mkdir(parents=True)
        (path / label / "notes.txt").write_text("not an image")
        (path / label / "broken.png").write_bytes(b"this is not a png")


def _npz_gray_32(path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 255, (40, 32, 32)).astype("uint8"), y_train=np.repeat([0, 1], 20))


def _dir_empty_class(path: Path) -> None:
    (path / "cats").mkdir(parents=True)
    (path / "dogs").mkdir()
    (path / "cats" / "a.png").write_bytes(_png())


def _dir_truncated_jpeg(path: Path) -> None:
    for label in ("cats", "dogs"):
        (path / label).mkdir(parents=True)
        (path / label / "a.png").write_bytes(_png())
    (path / "dogs" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _run_without_trials(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({**BASE, "name": "empty"}))


def _run_with_one_trial(path: Path) -> None:
    """A run whose one trial completed (as KerasTuner writes trial.json), never finalized."""
    _run_without_trials(path)
    trial = path / "tuner" / "trial_0000"
    trial.mkdir(parents=True)
    state = {
        "trial_id": "0000",
        "status": "COMPLETED",
        "score": 0.5,
        "best_step": 0,
        "message": None,
        "metrics": {"metrics": {}},
        "hyperparameters": {"space": [], "values": {}},
    }
    (trial / "trial.json").write_text(json.dumps(state))


def _run_with_values(values: dict):
    """A run (config BASE) whose one completed trial has these hyperparameter values."""

    def write(path: Path) -> None:
        _run_with_one_trial(path)
        trial = path / "tuner" / "trial_0000" / "trial.json"
        state = json.loads(trial.read_text())
        state["hyperparameters"]["values"] = values
        trial.write_text(json.dumps(state))

    return write


def _resolved_run(**tuner):
    """A run of BASE (as `tune` saves its config: resolved) with these tuner keys, and no trial yet."""

    def write(path: Path) -> None:
        from search.config import dump_yaml, load_config

        path.mkdir(parents=True)
        raw = {**BASE, "tuner": {**BASE["tuner"], **tuner}}
        (path / "config.yaml").write_text(dump_yaml(load_config(raw).to_dict()))

    return write


def _private(text: str):
    """A file only its owner can read (as secret and key files must be)."""

    def write(path: Path) -> None:
        path.write_text(text)
        path.chmod(0o600)

    return write


PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _mnist5k(rotation_max: int) -> str:
    return (
        (CONFIGS / "mnist5k.yaml")
        .read_text()
        .replace("rotation_range: {min: 0, max: 30}", f"rotation_range: {{min: 0, max: {rotation_max}}}")
    )


def _curves() -> str:
    return (CONFIGS / "curves_mnist5k.json").read_text()


SEARCH = ["tune", "c.yaml"]
SMOKE = ["tune", "configs/digits_smoke.yaml"]
CASES = [
    # (id, files {name: text or setup(path)}, argv, fragments that must all appear in the one line)
    ("malformed-yaml", {"c.yaml": "name: bad\ndata: [digits\n"}, SEARCH, ["c.yaml", "invalid YAML at line"]),
    ("tab-indented-yaml", {"c.yaml": "name: bad\ndata:\n\tsource: digits\n"}, SEARCH, ["c.yaml", "invalid YAML"]),
    ("top-level-list", {"c.yaml": "- name\n- bad\n"}, SEARCH, ["c.yaml", "expected a YAML mapping"]),
    ("empty-file", {"c.yaml": ""}, SEARCH, ["c.yaml", "expected a YAML mapping"]),
    (
        "not-utf8",
        {"c.yaml": lambda p: p.write_bytes(b"name: caf\xe9\n")},
        SEARCH,
        ["c.yaml", "cannot read the file", "UnicodeDecodeError"],
    ),
    (
        "alias-bomb",
        {
            "c.yaml": "name: bomb\nl0: &l0 [a, a, a, a, a, a, a, a, a, a]\n"
            + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 7))
        },
        SEARCH,
        ["c.yaml", "aliases expand to over 100,000 values"],
    ),
    (
        "key-given-twice",  # a block pasted into a config: YAML would keep the last seed without a word
        {"c.yaml": "name: bad\nseed: 3\ndata: {source: digits}\nseed: 4\n"},
        SEARCH,
        ["c.yaml: seed: given twice in one mapping (lines 2 and 4)"],
    ),
    (
        "nested-key-given-twice",
        {"c.yaml": "name: bad\ntuner:\n  max_epochs: 2\n  factor: 2\n  max_epochs: 9\n"},
        SEARCH,
        ["c.yaml: tuner.max_epochs: given twice in one mapping (lines 3 and 5)"],
    ),
    (
        "key-given-twice-in-an-export",
        {"e.yaml": (CONFIGS / "seed_recipe.yaml").read_text() + "seed: 2\n"},
        ["train", "e.yaml"],
        ["e.yaml: seed: given twice in one mapping (lines"],
    ),
    (
        "key-given-twice-in-a-set-value",
        {},
        [*SMOKE, "--set", "tuner.bohb={min_points: 2, min_points: 3}"],
        ["--set tuner.bohb: tuner.bohb.min_points: given twice in one mapping (columns 2 and 17)"],
    ),
    (
        "nan-where-a-number-goes",
        {"c.yaml": _config(data={"source": "digits", "validation_split": float("nan")})},
        SEARCH,
        ["c.yaml", "data.validation_split", "expected a finite number, got nan"],
    ),
    (
        "infinity-by-set",
        {},
        [*SMOKE, "--set", "early_stopping.min_delta=.inf"],
        ["--set early_stopping.min_delta", "expected a finite number, got inf"],
    ),
    (
        "boolean-where-a-number-goes",
        {"c.yaml": _config(tuner={"max_epochs": True})},
        SEARCH,
        ["c.yaml", "tuner.max_epochs", "got True"],
    ),
    (
        "nan-in-an-export",
        {},
        ["train", "configs/seed_recipe.yaml", "--set", "hyperparameters.augmentation.zoom_range=.nan"],
        ["hyperparameters.augmentation.zoom_range", "expected a finite number, got nan"],
    ),
    ("missing-file", {}, ["tune", "nope.yaml"], ["nope.yaml", "file not found"]),
    ("config-is-a-directory", {"cfgdir": lambda p: p.mkdir()}, ["tune", "cfgdir"], ["cfgdir", "got a directory"]),
    ("unknown-top-key", {"c.yaml": _config(tunner={})}, SEARCH, ["c.yaml", "tunner", "did you mean 'tuner'"]),
    (
        "unknown-data-key",
        {"c.yaml": _config(data={"sorce": "digits"})},
        SEARCH,
        ["data.sorce", "did you mean 'source'"],
    ),
    (
        "unknown-hypermodel-key",
        {"c.yaml": _config(hypermodel={"nmae": "cnn"})},
        SEARCH,
        ["hypermodel.nmae", "did you mean 'name'"],
    ),
    (
        "unknown-section",
        {"c.yaml": _config(search_space={"augmentaton": {}})},
        SEARCH,
        ["search_space.augmentaton", "did you mean 'augmentation'"],
    ),
    (
        "unknown-dimension",
        {"c.yaml": _config(search_space={"augmentation": {"rotation_rang": 5}})},
        SEARCH,
        ["search_space.augmentation.rotation_rang", "did you mean 'rotation_range'"],
    ),
    (
        "unknown-schedule-key",
        {"c.yaml": _config(search_space={"schedule": {"initial_rl": 0.1}})},
        SEARCH,
        ["search_space.schedule.initial_rl", "did you mean 'initial_lr'"],
    ),
    (
        "unknown-range-key",
        {"c.yaml": _config(search_space={"augmentation": {"zoom_range": {"mni": 0, "max": 0.2}}})},
        SEARCH,
        ["zoom_range.mni", "did you mean 'min'"],
    ),
    (
        "unknown-tuner-key",
        {"c.yaml": _config(tuner={"max_epoch": 3})},
        SEARCH,
        ["tuner.max_epoch", "did you mean 'max_epochs'"],
    ),
    (
        "unknown-early-stopping-key",
        {"c.yaml": _config(early_stopping={"patince": 3})},
        SEARCH,
        ["early_stopping.patince", "did you mean 'patience'"],
    ),
    ("seed-not-integer", {"c.yaml": _config(seed="one")}, SEARCH, ["seed", "expected an integer"]),
    (
        "batch-size-float",
        {"c.yaml": _config(data={"batch_size": 0.5})},
        SEARCH,
        ["data.batch_size", "expected an integer"],
    ),
    (
        "max-epochs-word",
        {"c.yaml": _config(tuner={"max_epochs": "three"})},
        SEARCH,
        ["tuner.max_epochs", "got 'three'"],
    ),
    (
        "image-size-scalar",
        {"c.yaml": _config(data={"image_size": 28})},
        SEARCH,
        ["data.image_size", "expected [height, width]"],
    ),
    (
        "flip-not-boolean",
        {"c.yaml": _config(search_space={"augmentation": {"horizontal_flip": "yes"}})},
        SEARCH,
        ["horizontal_flip", "expected true or false"],
    ),
    (
        "negative-patience",
        {"c.yaml": _config(early_stopping={"patience": -1})},
        SEARCH,
        ["early_stopping.patience", ">= 0"],
    ),
    ("split-above-one", {"c.yaml": _config(data={"validation_split": 1.5})}, SEARCH, ["data.validation_split", "< 1"]),
    (
        "min-above-max",
        {"c.yaml": _config(search_space={"augmentation": {"rotation_range": {"min": 30, "max": 10}}})},
        SEARCH,
        ["rotation_range", "min <= max"],
    ),
    (
        "log-with-zero-min",
        {"c.yaml": _config(search_space={"augmentation": {"shear_range": {"min": 0, "max": 10, "sampling": "log"}}})},
        SEARCH,
        ["shear_range", "log sampling needs min > 0"],
    ),
    (
        "empty-choice",
        {"c.yaml": _config(search_space={"batchnorm": {"placement": {"choice": []}}})},
        SEARCH,
        ["batchnorm.placement.choice", "non-empty list"],
    ),
    (
        "duplicate-choice",
        {"c.yaml": _config(search_space={"schedule": {"kind": {"choice": ["step", "step"]}, "drop_epoch": 1}})},
        SEARCH,
        ["schedule.kind.choice", "distinct"],
    ),
    (
        "unknown-hypermodel",
        {"c.yaml": _config(hypermodel={"name": "vgg"})},
        SEARCH,
        ["hypermodel.name", "expected one of cnn, resnet"],
    ),
    (
        "unknown-algorithm",
        {"c.yaml": _config(tuner={"algorithm": "grid"})},
        SEARCH,
        ["tuner.algorithm", "hyperband, bohb, asha, random, bayesian"],
    ),
    (
        "time-budget-not-a-duration",
        {"c.yaml": _config(tuner={"time_budget": "soon"})},
        SEARCH,
        ["tuner.time_budget", "expected a duration > 0 such as 45m"],
    ),
    (
        "time-budget-negative",
        {"c.yaml": _config(tuner={"time_budget": -60})},
        SEARCH,
        ["tuner.time_budget", "got -60"],
    ),
    ("budget-flag-bad", {"c.yaml": _config()}, [*SEARCH, "--budget", "3 weeks"], ["--budget", "got '3 weeks'"]),
    ("plan-budget-flag-bad", {"c.yaml": _config()}, ["plan", "c.yaml", "--budget", "0s"], ["--budget", "got '0s'"]),
    (
        "grace-period-above-max-epochs",
        {"c.yaml": _config(tuner={"algorithm": "asha", "max_epochs": 3, "grace_period": 5})},
        SEARCH,
        ["tuner.grace_period", "at most tuner.max_epochs (3), got 5"],
    ),
    (
        "grace-period-for-hyperband",
        {"c.yaml": _config(tuner={"grace_period": 2})},
        SEARCH,
        ["tuner.grace_period", "only used by asha, but tuner.algorithm is hyperband"],
    ),
    (
        "bohb-section-for-asha",
        {"c.yaml": _config(tuner={"algorithm": "asha", "bohb": {"top_fraction": 0.2}})},
        SEARCH,
        ["tuner.bohb", "only used by bohb, but tuner.algorithm is asha"],
    ),
    (
        "bohb-unknown-key",
        {"c.yaml": _config(tuner={"algorithm": "bohb", "bohb": {"bandwith_factor": 2}})},
        SEARCH,
        ["tuner.bohb.bandwith_factor", "did you mean 'bandwidth_factor'"],
    ),
    (
        "bohb-random-fraction-one",
        {"c.yaml": _config(tuner={"algorithm": "bohb", "bohb": {"random_fraction": 1}})},
        SEARCH,
        ["tuner.bohb.random_fraction", "expected a number >= 0 and < 1, got 1"],
    ),
    (
        "bohb-min-bandwidth-zero",
        {"c.yaml": _config(tuner={"algorithm": "bohb", "bohb": {"min_bandwidth": 0}})},
        SEARCH,
        ["tuner.bohb.min_bandwidth", "expected a number > 0, got 0"],
    ),
    (
        "hyperband-iterations-for-asha",
        {"c.yaml": _config(tuner={"algorithm": "asha", "hyperband_iterations": 2})},
        SEARCH,
        ["tuner.hyperband_iterations", "only used by hyperband and bohb, but tuner.algorithm is asha"],
    ),
    (
        "unknown-source",
        {"c.yaml": _config(data={"source": "imagenet"})},
        SEARCH,
        ["data.source", "expected one of digits"],
    ),
    (
        "unknown-schedule-kind",
        {"c.yaml": _config(search_space={"schedule": {"kind": "polynomial"}})},
        SEARCH,
        ["schedule.kind", "expected one of constant"],
    ),
    (
        "step-without-drop-epoch",
        {"c.yaml": _config(search_space={"schedule": {"kind": "step"}})},
        SEARCH,
        ["schedule.drop_epoch", "no default"],
    ),
    (
        "objective-never-logged",
        {"c.yaml": _config(tuner={"objective": "val_f1"})},
        SEARCH,
        ["tuner.objective", "val_accuracy"],
    ),
    (
        "monitor-never-logged",
        {"c.yaml": _config(early_stopping={"monitor": "val_auc"})},
        SEARCH,
        ["early_stopping.monitor", "val_loss"],
    ),
    (
        "max-epochs-zero",
        {"c.yaml": _config(tuner={"max_epochs": 0})},
        SEARCH,
        ["tuner.max_epochs", "in [1, 10000], got 0"],
    ),
    ("factor-one", {"c.yaml": _config(tuner={"factor": 1})}, SEARCH, ["tuner.factor", "in [2, 100], got 1"]),
    ("npz-without-path", {"c.yaml": _config(data={"source": "npz"})}, SEARCH, ["data.path", "expected a path"]),
    (
        "npz-path-missing",
        {"c.yaml": _config(data={"source": "npz", "path": "nope.npz"})},
        SEARCH,
        ["data.path", "not found"],
    ),
    (
        "directory-is-a-file",
        {"c.yaml": _config(data={"source": "directory", "path": "c.yaml", "image_size": [8, 8]})},
        SEARCH,
        ["data.path", "expected a directory"],
    ),
    (
        "directory-empty",
        {
            "c.yaml": _config(data={"source": "directory", "path": "imgs", "image_size": [8, 8]}),
            "imgs": lambda p: p.mkdir(),
        },
        SEARCH,
        ["imgs", "at least 2"],
    ),
    (
        "directory-one-class",
        {"c.yaml": _config(data={"source": "directory", "path": "imgs", "image_size": [8, 8]}), "imgs": _dir_one_class},
        SEARCH,
        ["imgs", "found 1"],
    ),
    (
        "directory-non-images",
        {
            "c.yaml": _config(data={"source": "directory", "path": "imgs", "image_size": [8, 8]}),
            "imgs": _dir_non_images,
        },
        SEARCH,
        ["imgs/cats/broken.png", "data.path", "not a readable image", "not a JPEG, PNG, GIF or BMP"],
    ),
    (
        "directory-empty-class-folder",
        {
            "c.yaml": _config(data={"source": "directory", "path": "imgs", "image_size": [8, 8]}),
            "imgs": _dir_empty_class,
        },
        SEARCH,
        ["imgs/dogs", "data.path", "holds no images"],
    ),
    (
        "directory-truncated-jpeg",
        {
            "c.yaml": _config(data={"source": "directory", "path": "imgs", "image_size": [8, 8]}),
            "imgs": _dir_truncated_jpeg,
        },
        SEARCH,
        ["imgs/dogs/cut.jpg", "data.path", "truncated JPEG", "nothing was written"],
    ),
    (
        "transfer-grayscale-images",
        {"c.yaml": _config(data={"source": "mnist5k", "image_size": [32, 32]}, hypermodel={"name": "transfer"})},
        SEARCH,
        ["c.yaml", "data.color_mode", "expected rgb"],
    ),
    (
        "transfer-npz-grayscale",
        {
            "c.yaml": _config(data={"source": "npz", "path": "d.npz"}, hypermodel={"name": "transfer"}),
            "d.npz": _npz_gray_32,
        },
        SEARCH,
        ["c.yaml", "data", "3 channels", "data.color_mode: rgb"],
    ),
    (
        "transfer-images-too-small",
        {
            "c.yaml": _config(
                data={"source": "mnist5k", "color_mode": "rgb"},
                hypermodel={"name": "transfer"},
                search_space={"model": {"family": "resnet50_v2"}},
            )
        },
        SEARCH,
        ["c.yaml", "data.image_size", "expected at least [32, 32] for resnet50_v2"],
    ),
    (
        "transfer-weights-file-for-several-families",
        {
            "c.yaml": _config(
                data={"source": "mnist5k", "color_mode": "rgb", "image_size": [32, 32]},
                hypermodel={"name": "transfer", "weights": "w.weights.h5"},
                search_space={"model": {"family": {"choice": ["mobilenet_v3_small", "resnet50_v2"]}}},
            ),
            "w.weights.h5": "not really weights",
        },
        SEARCH,
        ["c.yaml", "hypermodel.weights", "a weights file fits one family"],
    ),
    (
        "transfer-weights-file-missing",
        {"c.yaml": _config(hypermodel={"name": "transfer", "weights": "nowhere.weights.h5"})},
        SEARCH,
        ["c.yaml", "hypermodel.weights", "(not found)"],
    ),
    (
        "weights-for-a-cnn",
        {"c.yaml": _config(hypermodel={"name": "cnn", "weights": "imagenet"})},
        SEARCH,
        ["c.yaml", "hypermodel.weights", "only used with hypermodel transfer"],
    ),
    (
        "mixed-precision-unknown",
        {"c.yaml": _config(hypermodel={"name": "cnn", "mixed_precision": "float16"})},
        SEARCH,
        ["c.yaml", "hypermodel.mixed_precision", "expected one of mixed_float16, mixed_bfloat16"],
    ),
    (
        "data-cache-unknown",
        {"c.yaml": _config(data={"source": "digits", "cache": "ram"})},
        SEARCH,
        ["c.yaml", "data.cache", "expected one of auto, memory, disk, none"],
    ),
    (
        "tfrecord-keys-for-another-source",
        {"c.yaml": _config(data={"source": "digits", "tfrecord": {"label": "y"}})},
        SEARCH,
        ["c.yaml", "data.tfrecord", "only used with source tfrecord"],
    ),
    (
        "tfrecord-unknown-feature-key",
        {
            "c.yaml": _config(
                data={"source": "tfrecord", "path": "s", "image_size": [8, 8], "tfrecord": {"lable": "y"}}
            ),
            "s": lambda p: p.write_bytes(b"x"),
        },
        SEARCH,
        ["c.yaml", "data.tfrecord.lable", "did you mean 'label'"],
    ),
    (
        "tfrecord-glob-matches-nothing",
        {"c.yaml": _config(data={"source": "tfrecord", "path": "shards/train-*", "image_size": [8, 8]})},
        SEARCH,
        ["c.yaml", "data.path", "matches none"],
    ),
    (
        "tfrecord-without-image-size",
        {"c.yaml": _config(data={"source": "tfrecord", "path": "s"}), "s": lambda p: p.write_bytes(b"x")},
        SEARCH,
        ["c.yaml", "data.image_size", "resized to one size"],
    ),
    (
        "tfrecord-not-tfrecord",
        {
            "c.yaml": _config(data={"source": "tfrecord", "path": "s", "image_size": [8, 8]}),
            "s": lambda p: p.write_bytes(b"definitely not a TFRecord file"),
        },
        SEARCH,
        ["s: data.path", "cannot read it as TFRecord examples"],
    ),
    (
        "npz-pickled-objects",
        {"c.yaml": _config(data={"source": "npz", "path": "d.npz"}), "d.npz": _npz_pickled},
        SEARCH,
        ["d.npz", "x_train", "pickled"],
    ),
    (
        "npz-mismatched-lengths",
        {"c.yaml": _config(data={"source": "npz", "path": "d.npz"}), "d.npz": _npz_mismatched},
        SEARCH,
        ["d.npz", "y_train", "expected 10 labels"],
    ),
    (
        "npz-nan-pixels",
        {"c.yaml": _config(data={"source": "npz", "path": "d.npz"}), "d.npz": _npz_nan},
        SEARCH,
        ["d.npz", "x_train", "image 3 has NaN or infinite pixel values"],
    ),
    (
        "arrays-folder-without-its-arrays",
        {"c.yaml": _config(data={"source": "arrays", "path": "saved"}), "saved/notes.txt": "not arrays"},
        SEARCH,
        ["saved", "data.path", "expected the arrays a Python call saved here (data.json not found)"],
    ),
    (
        "model-function-output-width",
        {"c.yaml": _config(hypermodel={"name": "m:three_outputs"}), "m.py": MODEL_FILE},
        SEARCH,
        ["c.yaml", "hypermodel.name", "the model's output has 3 values per image, but the data has 10 classes"],
    ),
    (
        "model-function-loss-and-labels",  # compiled for one-hot rows; the digits are class indices
        {"c.yaml": _config(hypermodel={"name": "m:one_hot_loss"}), "m.py": MODEL_FILE},
        SEARCH,
        ["c.yaml", "hypermodel.name", "compiled loss or metrics do not fit labels given as class indices"],
    ),
    (
        "model-name-not-in-module",
        {"c.yaml": _config(hypermodel={"name": "m:build_modle"}), "m.py": MODEL_FILE},
        SEARCH,
        ["c.yaml", "hypermodel.name", "module 'm' has no 'build_modle'"],
    ),
    (
        "model-name-not-a-model",
        {"c.yaml": _config(hypermodel={"name": "m:not_a_model"}), "m.py": MODEL_FILE},
        SEARCH,
        ["c.yaml", "hypermodel.name", "'m:not_a_model' is a value of type int; expected a HyperModel class"],
    ),
    (
        "set-without-equals",
        {},
        ["validate", "configs/digits_smoke.yaml", "--set", "tuner.max_epochs"],
        ["--set", "expected KEY=VALUE"],
    ),
    (
        "set-bad-yaml",
        {},
        ["validate", "configs/digits_smoke.yaml", "--set", "tuner.max_epochs={a: [}"],
        ["--set tuner.max_epochs", "not valid YAML"],
    ),
    (
        "set-into-scalar",
        {},
        ["validate", "configs/digits_smoke.yaml", "--set", "seed.value=1"],
        ["--set seed.value", "not a mapping"],
    ),
    (
        "name-with-separator",
        {},
        ["tune", "configs/digits_smoke.yaml", "--name", "a/b"],
        ["--name", "name", "no path separators"],
    ),
    (
        "name-with-dotdot",
        {},
        ["tune", "configs/digits_smoke.yaml", "--name", ".."],
        ["--name", "name", "no path separators or '..'"],
    ),
    ("config-name-escapes", {"c.yaml": _config(name="../../etc")}, SEARCH, ["c.yaml", "name", "no path separators"]),
    (
        "export-without-trials",
        {"results/empty": _run_without_trials},
        ["export", "results/empty"],
        ["results/empty", "no completed trial"],
    ),
    (
        "export-not-a-run",
        {"somedir": lambda p: p.mkdir()},
        ["export", "somedir"],
        ["somedir", "not a ktsearch run directory"],
    ),
    (
        "export-unknown-ranking",
        {"results/one": _run_with_one_trial},
        ["export", "results/one", "--ranking", "best"],
        ["--ranking", "invalid choice: 'best'"],
    ),
    (
        "export-finalists-never-run",
        {"results/one": _run_with_one_trial},
        ["export", "results/one", "--ranking", "finalists"],
        ["results/one", "has no finalists to export from", "ktsearch finalize results/one"],
    ),
    (
        "finalize-not-a-run",
        {"somedir": lambda p: p.mkdir()},
        ["finalize", "somedir"],
        ["somedir", "not a ktsearch run directory"],
    ),
    (
        "finalize-without-trials",
        {"results/empty": _run_without_trials},
        ["finalize", "results/empty"],
        ["results/empty", "nothing to finalize"],
    ),
    (
        "finalize-zero-seeds",
        {"results/one": _run_with_one_trial},
        ["finalize", "results/one", "--seeds", "0"],
        ["--seeds", "expected an integer in [1, 1000], got 0"],
    ),
    (
        "finalize-zero-top",
        {"results/one": _run_with_one_trial},
        ["finalize", "results/one", "--top", "0"],
        ["--top", "expected an integer in [1, 1000], got 0"],
    ),
    (
        "train-negative-seed",
        {},
        ["train", "configs/seed_recipe.yaml", "--seed", "-1"],
        ["--seed", "expected an integer >= 0, got -1"],
    ),
    (
        "train-quantize-without-serving",
        {},
        ["train", "configs/seed_recipe.yaml", "--quantize", "--no-serving"],
        ["--quantize", "--no-serving turns off"],
    ),
    (
        "train-unknown-strategy",
        {},
        ["train", "configs/seed_recipe.yaml", "--set", "distribution.strategy=parameter_server"],
        ["distribution.strategy", "parameter_server"],
    ),
    (
        "train-device-this-machine-lacks",
        {},
        [
            "train",
            "configs/seed_recipe.yaml",
            "--set",
            "distribution.strategy=mirrored",
            "--set",
            "distribution.devices=[/gpu:7]",
        ],
        ["configs/seed_recipe.yaml", "distribution.devices", "expected devices of this machine", "/gpu:7"],
    ),
    (
        "train-on-search-config",
        {},
        ["train", "configs/digits_smoke.yaml"],
        ["configs/digits_smoke.yaml", "not an export"],
    ),
    ("train-on-unrelated-yaml", {"x.yaml": "foo: 1\n"}, ["train", "x.yaml"], ["x.yaml", "not an export"]),
    (
        "train-zero-epochs",
        {},
        ["train", "configs/seed_recipe.yaml", "--epochs", "0"],
        ["--epochs", "expected an integer >= 1"],
    ),
    (
        "unknown-option",
        {},
        ["tune", "configs/digits_smoke.yaml", "--frobnicate"],
        ["unrecognized arguments: --frobnicate"],
    ),
    ("chief-and-worker", {}, [*SMOKE, "--chief", "--worker"], ["--chief/--worker", "expected one of them"]),
    ("worker-without-oracle", {}, [*SMOKE, "--worker"], ["--oracle", "expected the chief's HOST:PORT"]),
    ("oracle-bad-address", {}, [*SMOKE, "--worker", "--oracle", "chief-host"], ["--oracle", "expected HOST:PORT"]),
    ("oracle-port-out-of-range", {}, [*SMOKE, "--worker", "--oracle", "h:70000"], ["--oracle", "1-65535"]),
    ("bind-without-chief", {}, [*SMOKE, "--bind", "127.0.0.1:8000"], ["--bind", "only used with --chief"]),
    ("bind-bad-port", {}, [*SMOKE, "--chief", "--bind", "127.0.0.1:http"], ["--bind", "expected HOST:PORT"]),
    (
        "worker-id-with-slash",
        {},
        [*SMOKE, "--worker", "--oracle", "h:8000", "--worker-id", "../w"],
        ["--worker-id", "letters, digits"],
    ),
    ("threads-zero", {}, [*SMOKE, "--threads", "0"], ["--threads", "expected a thread count"]),
    (
        "distribution-unknown-strategy",
        {"c.yaml": _config(distribution={"strategy": "tpu"})},
        SEARCH,
        ["c.yaml", "distribution.strategy", "mirrored"],
    ),
    (
        "distribution-devices-without-strategy",
        {"c.yaml": _config(distribution={"devices": ["/gpu:0"]})},
        SEARCH,
        ["c.yaml", "distribution.devices", "only used with"],
    ),
    (
        "distribution-device-not-here",
        {"c.yaml": _config(distribution={"strategy": "mirrored", "devices": ["/gpu:7"]})},
        SEARCH,
        ["c.yaml", "distribution.devices", "expected devices of this machine", "/gpu:7"],
    ),
    (
        "distribution-timeout-zero",
        {"c.yaml": _config(distribution={"worker_timeout": 0})},
        SEARCH,
        ["c.yaml", "distribution.worker_timeout", "seconds"],
    ),
    ("report-not-a-run", {}, ["report", "configs"], ["configs", "expected a run directory with config.yaml"]),
    ("report-bad-format", {}, ["report", "configs", "--format", "xlsx"], ["--format", "invalid choice"]),
    (
        "report-md-to-stdout",
        {},
        ["report", "configs", "-o", "-"],
        ["-o -", "standard output takes --format csv or json"],
    ),
    (
        "report-output-dir-missing",
        {"results/empty": _run_without_trials},
        ["report", "results/empty", "--format", "csv", "-o", "nodir/t.csv"],
        ["-o nodir/t.csv", "nodir does not exist"],
    ),
    (
        "validate-export-with-a-range",
        {
            "e.yaml": (CONFIGS / "seed_recipe.yaml")
            .read_text()
            .replace("rotation_range: 30", "rotation_range: {min: 0, max: 30}")
        },
        ["validate", "e.yaml"],
        ["e.yaml", "hyperparameters.augmentation.rotation_range", "expected a fixed value in an export"],
    ),
    (
        "simulate-curves-missing",
        {},
        ["simulate", "configs/digits_smoke.yaml", "--curves", "nope.json"],
        ["nope.json", "expected a recorded run's directory or a curves JSON file"],
    ),
    (
        "simulate-curves-not-json",
        {"c.json": "curves: none\n"},
        ["simulate", "configs/digits_smoke.yaml", "--curves", "c.json"],
        ["c.json", "expected a curves JSON file of format 1"],
    ),
    (
        "simulate-curves-truncated",
        {"c.json": _curves().replace('"scores": [', '"scores": [0.5, ', 1)},
        ["simulate", "configs/digits_smoke.yaml", "--curves", "c.json"],
        ["c.json", "does not hold 9 epochs of each series"],
    ),
    (
        "simulate-curves-of-another-space",
        {"m.yaml": _mnist5k(40), "c.json": _curves()},
        ["simulate", "m.yaml", "--curves", "c.json"],
        ["--curves c.json", "search_space.augmentation.rotation_range", "m.yaml", "record curves of this search"],
    ),
    (
        "simulate-max-epochs-above-the-curves",
        {"m.yaml": _mnist5k(30).replace("max_epochs: 9", "max_epochs: 27"), "c.json": _curves()},
        ["simulate", "m.yaml", "--curves", "c.json"],
        ["tuner.max_epochs", "at most the curves' 9, got 27"],
    ),
    (
        "simulate-curves-from-a-search",
        {"results/empty": _run_without_trials},
        ["simulate", "configs/digits_smoke.yaml", "--curves", "results/empty"],
        ["results/empty", "expected a run directory written by ktsearch tune"],
    ),
    (
        "simulate-workers-not-numbers",
        {"m.yaml": _mnist5k(30), "c.json": _curves()},
        ["simulate", "m.yaml", "--curves", "c.json", "--workers", "4,x"],
        ["--workers", "expected comma-separated positive integers", "got '4,x'"],
    ),
    (
        "simulate-zero-workers",
        {"m.yaml": _mnist5k(30), "c.json": _curves()},
        ["simulate", "m.yaml", "--curves", "c.json", "--workers", "0"],
        ["--workers", "got '0'"],
    ),
    (
        "simulate-unknown-algorithm",
        {"m.yaml": _mnist5k(30), "c.json": _curves()},
        ["simulate", "m.yaml", "--curves", "c.json", "--algorithms", "hyperband,grid"],
        ["--algorithms", "hyperband, bohb, asha, random, bayesian", "got 'grid'"],
    ),
    (
        "simulate-negative-trials-per-worker",
        {"m.yaml": _mnist5k(30), "c.json": _curves()},
        ["simulate", "m.yaml", "--curves", "c.json", "--trials-per-worker", "-1"],
        ["--trials-per-worker", "expected 0 or more, got -1"],
    ),
    (
        "simulate-output-dir-is-a-file",
        {"m.yaml": _mnist5k(30), "c.json": _curves(), "out": "a file\n"},
        ["simulate", "m.yaml", "--curves", "c.json", "-o", "out"],
        ["-o out", "expected a directory (or a new one), got a file"],
    ),
    (
        "simulate-output-exists",
        {"m.yaml": _mnist5k(30), "c.json": _curves(), "out/simulation.md": "an earlier simulation\n"},
        ["simulate", "m.yaml", "--curves", "c.json", "-o", "out"],
        ["out/simulation.md", "it exists (--overwrite replaces it)"],
    ),
    (
        "chief-open-bind-without-tls",
        {},
        [*SMOKE, "--chief", "--bind", "0.0.0.0:0"],
        ["--bind", "0.0.0.0 is reachable from other machines", "--tls-cert and --tls-key"],
    ),
    (
        "worker-remote-chief-without-tls",
        {},
        [*SMOKE, "--worker", "--oracle", "10.0.0.5:8000"],
        ["--oracle", "10.0.0.5 is another machine", "--tls-ca"],
    ),
    (
        "chief-cert-without-key",
        {"c.pem": PEM},
        [*SMOKE, "--chief", "--tls-cert", "c.pem"],
        ["--tls-key", "expected --tls-cert and --tls-key together"],
    ),
    (
        "chief-given-a-ca",
        {"ca.pem": PEM},
        [*SMOKE, "--chief", "--tls-ca", "ca.pem"],
        ["--tls-ca", "a worker's", "the chief takes --tls-cert and --tls-key"],
    ),
    (
        "worker-given-a-certificate",
        {"c.pem": PEM},
        [*SMOKE, "--worker", "--oracle", "127.0.0.1:8000", "--tls-cert", "c.pem"],
        ["--tls-cert", "the chief's; a worker takes --tls-ca"],
    ),
    (
        "tls-cert-not-pem",
        {"c.pem": "not a certificate\n", "k.pem": _private(PEM)},
        [*SMOKE, "--chief", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
        ["--tls-cert", "expected a PEM file, got c.pem"],
    ),
    (
        "tls-key-missing",
        {"c.pem": PEM},
        [*SMOKE, "--chief", "--tls-cert", "c.pem", "--tls-key", "nope.pem"],
        ["--tls-key", "cannot read nope.pem"],
    ),
    (
        "tls-key-readable-by-others",
        {"c.pem": PEM, "k.pem": PEM},
        [*SMOKE, "--chief", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
        ["--tls-key", "k.pem is readable by others", "chmod 600 k.pem"],
    ),
    (
        "secret-file-readable-by-others",
        {"s.txt": "a-secret-long-enough-for-anyone\n"},
        [*SMOKE, "--chief", "--secret-file", "s.txt"],
        ["--secret-file", "s.txt is readable by others"],
    ),
    (
        "secret-file-too-short",
        {"s.txt": _private("short\n")},
        [*SMOKE, "--worker", "--oracle", "127.0.0.1:8000", "--secret-file", "s.txt"],
        ["--secret-file", "expected a secret of at least 16 characters in s.txt"],
    ),
    (
        "secret-file-missing",
        {},
        [*SMOKE, "--chief", "--secret-file", "nope.txt"],
        ["--secret-file", "cannot read nope.txt"],
    ),
    (
        "no-auth-off-loopback",
        {},
        [*SMOKE, "--chief", "--bind", "10.0.0.1:0", "--insecure-no-auth"],
        ["--insecure-no-auth", "only for runs on this machine", "--bind 10.0.0.1"],
    ),
    (
        "no-auth-with-a-secret",
        {"s.txt": _private("a-secret-long-enough-for-anyone\n")},
        [*SMOKE, "--chief", "--insecure-no-auth", "--secret-file", "s.txt"],
        ["--insecure-no-auth", "turns the secret off"],
    ),
    (
        "security-flag-without-a-role",
        {"s.txt": _private("a-secret-long-enough-for-anyone\n")},
        [*SMOKE, "--secret-file", "s.txt"],
        ["--secret-file", "only used with --chief or --worker"],
    ),
    (
        "export-max-params-zero",
        {"results/one": _run_with_one_trial},
        ["export", "results/one", "--max-params", "0"],
        ["--max-params", "expected a positive integer, got 0"],
    ),
    (
        "export-max-size-negative",
        {"results/one": _run_with_one_trial},
        ["export", "results/one", "--max-size-mb", "-1.5"],
        ["--max-size-mb", "expected a positive number, got -1.5"],
    ),
    (
        "export-max-latency-not-a-number",
        {"results/one": _run_with_one_trial},
        ["export", "results/one", "--max-latency-ms", "fast"],
        ["--max-latency-ms", "invalid float value: 'fast'"],
    ),
    (
        "export-max-latency-infinite",
        {"results/one": _run_with_one_trial},
        ["export", "results/one", "--max-latency-ms", "inf"],
        ["--max-latency-ms", "expected a positive number, got inf"],
    ),
    (
        "export-constraint-on-a-run-without-trials",
        {"results/empty": _run_without_trials},
        ["export", "results/empty", "--max-params", "10000"],
        ["results/empty", "has no completed trial yet: no architecture to measure"],
    ),
    (
        "export-constraint-on-no-run",
        {},
        ["export", "configs", "--max-size-mb", "1"],
        ["configs", "not a ktsearch run directory"],
    ),
    ("costs-not-a-run", {}, ["costs", "configs"], ["configs", "expected a run directory with config.yaml"]),
    (
        "costs-run-without-trials",
        {"results/empty": _run_without_trials},
        ["costs", "results/empty"],
        ["results/empty", "has no completed trial yet: no architecture to measure"],
    ),
    (
        "warm-start-from-not-a-run",
        {"c.yaml": _config()},
        [*SEARCH, "--from", "configs"],
        ["--from configs", "expected a run directory written by ktsearch tune"],
    ),
    (
        "warm-start-from-a-run-without-trials",
        {"c.yaml": _config(), "results/empty": _run_without_trials},
        [*SEARCH, "--from", "results/empty"],
        ["--from results/empty", "has no completed trial to start from"],
    ),
    (
        "warm-start-value-outside-the-space",
        {
            "c.yaml": _config(search_space={"augmentation": {"rotation_range": {"min": 0, "max": 20}}}),
            "results/old": _run_with_values({"augmentation.rotation_range": 25.0}),
        },
        [*SEARCH, "--from", "results/old"],
        [
            "--from results/old",
            "augmentation.rotation_range",
            "trial 0000 has 25.0, outside the new search space (float in [0, 20]",
        ],
    ),
    (
        "warm-start-dimension-the-space-lacks",
        {"c.yaml": _config(), "results/old": _run_with_values({"model.poison": True})},
        [*SEARCH, "--from", "results/old"],
        ["--from results/old", "model.poison", "trial 0000 sets it, but the new search space has no such dimension"],
    ),
    (
        "warm-start-dimension-the-old-run-never-set",
        {"c.yaml": _config(), "results/old": _run_with_values({})},
        [*SEARCH, "--from", "results/old"],
        ["--from results/old", "augmentation.rotation_range", "trial 0000 of the earlier run", "never set it"],
    ),
    (
        "warm-start-top-zero",
        {"c.yaml": _config(), "results/old": _run_with_one_trial},
        [*SEARCH, "--from", "results/old", "--top", "0"],
        ["--top", "expected a positive integer", "got 0"],
    ),
    ("warm-start-top-without-from", {"c.yaml": _config()}, [*SEARCH, "--top", "2"], ["--top", "only used with --from"]),
    (
        "warm-start-on-a-run-that-began-without",
        {"c.yaml": _config(), "results/bad": _resolved_run()},
        [*SEARCH, "--from", "results/bad"],
        ["--from results/bad", "run results/bad exists and began without --from"],
    ),
    (
        "warm-start-from-the-run-it-writes",
        {"c.yaml": _config()},
        [*SEARCH, "--from", "results/bad"],
        ["--from results/bad", "expected another run than the one this search writes"],
    ),
    (
        "warm-start-on-a-worker",
        {},
        [*SMOKE, "--worker", "--oracle", "127.0.0.1:8000", "--from", "results/old"],
        ["--from", "a worker takes no --from"],
    ),
    (
        "extend-lowers-hyperband-iterations",
        {"c.yaml": _config(), "results/bad": _resolved_run(hyperband_iterations=2)},
        SEARCH,
        [
            "results/bad/config.yaml",
            "tuner.hyperband_iterations",
            "started with 2, the config now gives 1",
            "not shortened",
        ],
    ),
    (
        "extend-lowers-max-trials",
        {
            "c.yaml": _config(tuner={"max_epochs": 2, "algorithm": "random", "max_trials": 3}),
            "results/bad": _resolved_run(algorithm="random", max_trials=5),
        },
        SEARCH,
        ["tuner.max_trials", "started with 5, the config now gives 3", "can be extended (raise it)"],
    ),
    (
        "tensorboard-bad-port",
        {"results/empty": _run_without_trials},
        ["tensorboard", "results/empty", "--port", "70000"],
        ["results/empty", "tensorboard/"],
    ),
]


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("files, argv, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, files, argv, fragments):
    (tmp_path / "configs").mkdir()
    for name in ("digits_smoke.yaml", "seed_recipe.yaml"):
        (tmp_path / "configs" / name).write_text((CONFIGS / name).read_text())
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        content(path) if callable(content) else path.write_text(content)
    before = tree_state(tmp_path)
    proc = run_cli(*argv, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert tree_state(tmp_path) == before
