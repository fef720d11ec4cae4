"""Config loading and validation: the one place that checks user YAML.

Runs before TensorFlow is imported and before anything is written to disk.
Configs are locked: an unknown key is an error with a "did you mean" hint.
Two kinds of file share this module:

* a *search* config (``ktsearch tune``): ``search_space`` + ``tuner`` sections;
* an *export* (``ktsearch train``): fixed ``hyperparameters`` + ``training``,
  written by ``ktsearch export`` or by hand (``configs/seed_recipe.yaml``).
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hypermodels import registry
from hypermodels.space import SpaceError, did_you_mean
from hypermodels.spaces import SearchSpace
from search.errors import UserError

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
SOURCES = ("digits", "mnist5k", "directory", "npz", *(f"keras:{n}" for n in KERAS_DATASETS))
ALGORITHMS = ("hyperband", "random", "bayesian")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
OVERRIDE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

DEFAULTS: dict[str, Any] = {
    "name": None,
    "seed": 1,
    "results_dir": "results",
    "data": {
        "source": "digits",
        "path": None,
        "image_size": None,
        "color_mode": None,
        "validation_split": 0.2,
        "test_split": 0.1,
        "batch_size": 64,
        "max_examples": None,
    },
    "hypermodel": {"name": "cnn", "optimizer": "adam", "steps_per_execution": 8},
    "tuner": {
        "algorithm": "hyperband",
        "objective": "val_accuracy",
        "max_epochs": 9,
        "factor": 3,
        "hyperband_iterations": 1,
        "max_trials": 10,
        "max_consecutive_failed_trials": 3,
        "keep_checkpoints": None,
        "reuse_models": 4,
    },
    "early_stopping": {"monitor": "val_loss", "patience": 3, "min_delta": 0.0},
    "distribution": {"strategy": None, "devices": None, "worker_timeout": 60},
}
STRATEGIES = ("mirrored",)
TRAINING_DEFAULTS = {"epochs": None, "lr_horizon": None}
SEARCH_KEYS = (
    "name",
    "seed",
    "results_dir",
    "data",
    "hypermodel",
    "search_space",
    "tuner",
    "early_stopping",
    "distribution",
)
EXPORT_KEYS = (
    "name",
    "seed",
    "results_dir",
    "data",
    "hypermodel",
    "hyperparameters",
    "training",
    "early_stopping",
    "provenance",
)
HYPERBAND_ONLY = ("factor", "hyperband_iterations")


@dataclass
class Config:
    """A validated config: `resolved` holds every key, defaults filled in."""

    source: str
    resolved: dict
    space: SearchSpace
    kind: str  # "search" or "export"
    overrides: dict = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """Legal but probably unintended settings (printed by validate and tune)."""
        out = []
        if self.kind == "search" and "step" in self.space.kinds():
            drop = self.space.max_value("schedule.drop_epoch")
            if drop >= self.lr_horizon:
                out.append(
                    f"{self.source}: search_space.schedule.drop_epoch: values >= tuner.max_epochs "
                    f"({self.lr_horizon}) never drop the rate during the search (up to {drop})"
                )
        return out

    @property
    def name(self) -> str:
        return self.resolved["name"]

    @property
    def run_dir(self) -> Path:
        return Path(self.resolved["results_dir"]) / self.name

    @property
    def lr_horizon(self) -> int:
        if self.kind == "search":
            return self.resolved["tuner"]["max_epochs"]
        return self.resolved["training"]["lr_horizon"]

    def section(self, name: str) -> dict:
        return self.resolved[name]


class _Checker:
    """Small typed getters that raise UserError naming file and key."""

    def __init__(self, source: str, overrides: dict, labels: dict | None = None):
        self.source = source
        self.overrides = overrides
        self.labels = labels or {}  # override key -> how the user gave it ("--name"), default "--set KEY"

    def fail(self, key: str, message: str) -> UserError:
        for override in self.overrides:
            if key == override or key.startswith(override + ".") or override.startswith(key + "."):
                return UserError(self.labels.get(override, f"--set {override}"), key, message)
        return UserError(self.source, key, message)

    def mapping(self, value: Any, key: str, allowed) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        for k in value:
            if k not in allowed:
                expected = ", ".join(allowed)
                raise self.fail(
                    f"{key}.{k}" if key else str(k),
                    f"unknown key{did_you_mean(k, allowed)}; expected one of: {expected}",
                )
        return value

    def integer(self, value: Any, key: str, low: int, high: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
            limit = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise self.fail(key, f"expected an integer {limit}, got {value!r}")
        return value

    def fraction(self, value: Any, key: str, low_open: bool) -> float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or value >= 1 or value < 0 or (low_open and value == 0):
            raise self.fail(key, f"expected a number {'>' if low_open else '>='} 0 and < 1, got {value!r}")
        return float(value)

    def choice(self, value: Any, key: str, options) -> str:
        if value not in options:
            raise self.fail(
                key, f"expected one of {', '.join(map(str, options))}, got {value!r}{did_you_mean(value, options)}"
            )
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value


def read_yaml(path: str | os.PathLike) -> dict:
    """Parse a YAML mapping with yaml.safe_load; UserError on any problem."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(path, "", "file not found") from None
    except IsADirectoryError:
        raise UserError(path, "", "expected a YAML file, got a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(path, "", f"cannot read the file ({e.__class__.__name__}: {e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(path, "", f"invalid YAML at {where}: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(path, "", f"expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["tuner.max_epochs=3", ...]`` -> ``{"tuner.max_epochs": 3}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not OVERRIDE_KEY.match(key):
            raise UserError("--set", item, "expected KEY=VALUE with a dotted key, e.g. --set tuner.max_epochs=3")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--set {key}", key, f"value {text!r} is not valid YAML") from None
    return out


def apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    """A copy of `raw` with dotted keys set; intermediate mappings are created."""
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise UserError(
                    f"--set {key}", prefix, f"is {child!r}, not a mapping, so it has no key '{parts[i + 1]}'"
                )
            node = child
        node[parts[-1]] = value
    return out


def _check_name(c: _Checker, value: Any) -> str:
    if not isinstance(value, str) or not RUN_NAME.match(value) or ".." in value:
        raise c.fail(
            "name",
            f"expected a run name of letters, digits, '.', '_' or '-' (no path separators or '..'), got {value!r}",
        )
    return value


def _check_data(c: _Checker, raw: Any) -> dict:
    data = {**DEFAULTS["data"], **c.mapping(raw, "data", tuple(DEFAULTS["data"]))}
    c.choice(data["source"], "data.source", SOURCES)
    path = data["path"]
    if data["source"] in ("directory", "npz"):
        if path in (None, ""):
            raise c.fail("data.path", f"expected a path (required for source {data['source']})")
        c.string(path, "data.path")
        want_dir = data["source"] == "directory"
        if not Path(path).exists():
            raise c.fail(
                "data.path",
                f"expected an existing {'directory' if want_dir else '.npz file'}, got {path!r} (not found)",
            )
        if want_dir != Path(path).is_dir():
            raise c.fail("data.path", f"expected {'a directory' if want_dir else 'an .npz file'}, got {path!r}")
    elif path is not None:
        raise c.fail("data.path", f"only used with source directory or npz, got {path!r} for source {data['source']}")
    size = data["image_size"]
    if size is None and data["source"] == "directory":
        raise c.fail("data.image_size", "expected [height, width]: images from a directory are resized to one size")
    if size is not None:
        if not isinstance(size, list) or len(size) != 2:
            raise c.fail("data.image_size", f"expected [height, width] or null, got {size!r}")
        for i, side in enumerate(size):
            c.integer(side, f"data.image_size[{i}]", 4, 1024)
    if data["color_mode"] is not None:
        c.choice(data["color_mode"], "data.color_mode", ("grayscale", "rgb"))
    c.fraction(data["validation_split"], "data.validation_split", low_open=True)
    c.fraction(data["test_split"], "data.test_split", low_open=False)
    if data["validation_split"] + data["test_split"] >= 0.9:
        raise c.fail(
            "data.test_split", "expected validation_split + test_split < 0.9 so training keeps at least 10% of the data"
        )
    c.integer(data["batch_size"], "data.batch_size", 1, 65536)
    if data["max_examples"] is not None:
        c.integer(data["max_examples"], "data.max_examples", 20)
    return data


def _check_hypermodel(c: _Checker, raw: Any) -> dict:
    if isinstance(raw, str):  # shorthand: `hypermodel: resnet`
        raw = {"name": raw}
    hm = {**DEFAULTS["hypermodel"], **c.mapping(raw, "hypermodel", tuple(DEFAULTS["hypermodel"]))}
    c.string(hm["name"], "hypermodel.name")
    if ":" in hm["name"]:  # a user's module:Class imports Keras; keep TensorFlow's start-up chatter off stderr
        from search.runtime import import_tensorflow

        import_tensorflow()
    try:
        registry.model_space(hm["name"])
    except registry.UnknownHyperModel as e:
        raise c.fail("hypermodel.name", str(e)) from None
    c.choice(hm["optimizer"], "hypermodel.optimizer", ("adam", "sgd", "rmsprop"))
    c.integer(hm["steps_per_execution"], "hypermodel.steps_per_execution", 1, 10000)
    return hm


def _metric_names(hypermodel: str) -> tuple[str, ...]:
    logged = registry.logged_metrics(hypermodel)
    return (*logged, *(f"val_{m}" for m in logged))


def _check_metric(c: _Checker, value: Any, key: str, hypermodel: str) -> str:
    return c.choice(value, key, _metric_names(hypermodel))


def _check_tuner(c: _Checker, raw: Any, hypermodel: str) -> dict:
    # null means "the default" here, so `--set tuner.factor=null` can clear a hyperband-only key.
    given = {k: v for k, v in c.mapping(raw, "tuner", tuple(DEFAULTS["tuner"])).items() if v is not None}
    tuner = {**DEFAULTS["tuner"], **given}
    c.choice(tuner["algorithm"], "tuner.algorithm", ALGORITHMS)
    _check_metric(c, tuner["objective"], "tuner.objective", hypermodel)
    c.integer(tuner["max_epochs"], "tuner.max_epochs", 1, 10000)
    c.integer(tuner["factor"], "tuner.factor", 2, 100)
    c.integer(tuner["hyperband_iterations"], "tuner.hyperband_iterations", 1, 100)
    c.integer(tuner["max_trials"], "tuner.max_trials", 1, 100000)
    c.integer(tuner["max_consecutive_failed_trials"], "tuner.max_consecutive_failed_trials", 1, 100000)
    if tuner["keep_checkpoints"] is not None:
        c.integer(tuner["keep_checkpoints"], "tuner.keep_checkpoints", 1)
    c.integer(tuner["reuse_models"], "tuner.reuse_models", 0, 64)
    hyperband = tuner["algorithm"] == "hyperband"
    for key in given:
        if (key in HYPERBAND_ONLY and not hyperband) or (key == "max_trials" and hyperband):
            used_by = "hyperband" if key in HYPERBAND_ONLY else "random and bayesian"
            raise c.fail(f"tuner.{key}", f"only used by {used_by}, but tuner.algorithm is {tuner['algorithm']}")
    unused = ("max_trials",) if hyperband else HYPERBAND_ONLY
    return {k: v for k, v in tuner.items() if k not in unused}


def _check_early_stopping(c: _Checker, raw: Any, hypermodel: str) -> dict:
    es = {**DEFAULTS["early_stopping"], **c.mapping(raw, "early_stopping", tuple(DEFAULTS["early_stopping"]))}
    _check_metric(c, es["monitor"], "early_stopping.monitor", hypermodel)
    c.integer(es["patience"], "early_stopping.patience", 0)
    delta = es["min_delta"]
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or delta < 0:
        raise c.fail("early_stopping.min_delta", f"expected a number >= 0, got {delta!r}")
    es["min_delta"] = float(delta)
    return es


def _check_distribution(c: _Checker, raw: Any) -> dict:
    d = {**DEFAULTS["distribution"], **c.mapping(raw, "distribution", tuple(DEFAULTS["distribution"]))}
    if d["strategy"] is not None:
        c.choice(d["strategy"], "distribution.strategy", STRATEGIES)
    devices = d["devices"]
    if devices is not None:
        if d["strategy"] is None:
            raise c.fail("distribution.devices", "only used with distribution.strategy: mirrored")
        if not isinstance(devices, list) or not devices or not all(isinstance(x, str) and x for x in devices):
            raise c.fail("distribution.devices", f"expected a list of device names like /gpu:0, got {devices!r}")
    timeout = d["worker_timeout"]
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 1 <= timeout <= 86400:
        raise c.fail("distribution.worker_timeout", f"expected seconds in [1, 86400], got {timeout!r}")
    return d


def _check_space(c: _Checker, raw: Any, hypermodel: str, section: str, horizon: int, fixed: bool) -> SearchSpace:
    try:
        space = SearchSpace(raw, registry.model_space(hypermodel))
    except SpaceError as e:
        key = f"{section}.{e.key}" if e.key else section
        raise c.fail(key.rstrip("."), e.message) from None
    if fixed and space.searched():
        name = space.searched()[0]
        raise c.fail(f"{section}.{name}", f"expected a fixed value in an export, got {space.dims[name].describe()}")
    if space.max_value("schedule.warmup_epochs") >= horizon:
        raise c.fail(
            f"{section}.schedule.warmup_epochs", f"expected values below the schedule horizon ({horizon} epochs)"
        )
    return space


def _check_common(c: _Checker, raw: dict) -> dict:
    out = {"name": _check_name(c, raw.get("name"))}
    out["seed"] = c.integer(raw.get("seed", DEFAULTS["seed"]), "seed", 0, 2**31 - 1)
    out["results_dir"] = c.string(raw.get("results_dir", DEFAULTS["results_dir"]), "results_dir")
    out["data"] = _check_data(c, raw.get("data"))
    out["hypermodel"] = _check_hypermodel(c, raw.get("hypermodel"))
    return out


def validate(raw: dict, source: str = "<config>", overrides: dict | None = None, labels: dict | None = None) -> Config:
    """Validate a search config (already merged with overrides) into a `Config`."""
    overrides = overrides or {}
    c = _Checker(source, overrides, labels)
    if "hyperparameters" in raw and "search_space" not in raw:
        raise c.fail(
            "hyperparameters",
            "this is an export (for ktsearch train); a search config has search_space and tuner sections",
        )
    c.mapping(raw, "", SEARCH_KEYS)
    out = _check_common(c, raw)
    hm = out["hypermodel"]["name"]
    out["tuner"] = _check_tuner(c, raw.get("tuner"), hm)
    out["early_stopping"] = _check_early_stopping(c, raw.get("early_stopping"), hm)
    out["distribution"] = _check_distribution(c, raw.get("distribution"))
    space = _check_space(c, raw.get("search_space"), hm, "search_space", out["tuner"]["max_epochs"], fixed=False)
    out["search_space"] = space.notation()
    return Config(source, _ordered(out, SEARCH_KEYS), space, "search", overrides)


def validate_export(raw: dict, source: str = "<export>") -> Config:
    """Validate an export (fixed hyperparameters + training section) for `train`."""
    c = _Checker(source, {})
    if "search_space" in raw or "hyperparameters" not in raw or "training" not in raw:
        raise c.fail(
            "hyperparameters",
            "not an export: expected 'hyperparameters' and 'training' sections (write one with: ktsearch export RUN_DIR)",
        )
    c.mapping(raw, "", EXPORT_KEYS)
    out = _check_common(c, raw)
    training = {**TRAINING_DEFAULTS, **c.mapping(raw.get("training"), "training", tuple(TRAINING_DEFAULTS))}
    c.integer(training["epochs"], "training.epochs", 1, 100000)
    if training["lr_horizon"] is None:
        training["lr_horizon"] = training["epochs"]
    c.integer(training["lr_horizon"], "training.lr_horizon", 1, 100000)
    out["training"] = training
    out["early_stopping"] = _check_early_stopping(c, raw.get("early_stopping"), out["hypermodel"]["name"])
    space = _check_space(
        c, raw.get("hyperparameters"), out["hypermodel"]["name"], "hyperparameters", training["lr_horizon"], fixed=True
    )
    out["hyperparameters"] = space.notation()
    provenance = raw.get("provenance")
    if provenance is not None and not isinstance(provenance, dict):
        raise c.fail("provenance", f"expected a mapping, got {provenance!r}")
    out["provenance"] = provenance or {}
    return Config(source, _ordered(out, EXPORT_KEYS), space, "export")


def _ordered(out: dict, keys) -> dict:
    return {k: out[k] for k in keys if k in out}


def load_config(
    config: str | os.PathLike | dict, overrides: list[str] | dict | None = None, labels: dict | None = None
) -> Config:
    """Load and validate a search config from a path or a dict, with ``--set`` overrides.

    `labels` names how an override reached us when it was not ``--set`` (``{"name": "--name"}``).
    """
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides = overrides or {}
    raw, source = (config, "<dict>") if isinstance(config, dict) else (read_yaml(config), str(config))
    return validate(apply_overrides(raw, overrides), source, overrides, labels)


def load_export(export: str | os.PathLike | dict) -> Config:
    raw, source = (export, "<dict>") if isinstance(export, dict) else (read_yaml(export), str(export))
    return validate_export(raw, source)


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
