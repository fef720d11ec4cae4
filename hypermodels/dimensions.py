"""The search dimensions every image HyperModel exposes, and `SearchSpace`.

Tables here are plain data (no TensorFlow), so config validation can use them
before anything heavy is imported. A dimension's name everywhere (YAML,
trial.json, TensorBoard HParams, exports) is its dotted path: ``section.key``.
"""

from __future__ import annotations

from typing import Any

from hypermodels.notation import (
    REQUIRED,
    Dimension,
    Fixed,
    SpaceError,
    Spec,
    check_keys,
    declare,
    parse_dimension,
    possible_values,
    upper,
)

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
PLACEMENTS = ("none", "before_activation", "after_activation")
SCHEDULE_KINDS = ("constant", "step", "exponential", "cosine")
ACTIVATIONS = ("relu", "elu", "gelu", "swish")

# ImageDataGenerator's names and units, so legacy settings carry over unchanged.
# RandomAffine's strengths, which it reads from variables at run time (not baked into the graph).
AUGMENTATION_RANGES = ("rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range")

# Values a built model reads while it runs instead of baking them into its graph: RandomAffine
# keeps its ranges in variables; the schedule is a callback that sets the optimizer's
# learning-rate variable (the initial rate is that variable's starting value).
RUNTIME_DIMS = frozenset(f"augmentation.{name}" for name in AUGMENTATION_RANGES)
RUNTIME_SECTIONS = ("schedule.",)

AUGMENTATION = {
    "rotation_range": Spec("float", 0.0, low=0, high=180, off=0.0, doc="degrees; angle drawn from [-r, r]"),
    "width_shift_range": Spec("float", 0.0, low=0, high=1, off=0.0, doc="fraction of width; shift drawn from [-w, w]"),
    "height_shift_range": Spec(
        "float", 0.0, low=0, high=1, off=0.0, doc="fraction of height; shift drawn from [-h, h]"
    ),
    "shear_range": Spec("float", 0.0, low=0, high=80, off=0.0, doc="degrees; shear angle drawn from [-s, s]"),
    "zoom_range": Spec(
        "float", 0.0, low=0, high=1, high_open=True, off=0.0, doc="scale per axis drawn from [1-z, 1+z]"
    ),
    "horizontal_flip": Spec("bool", False, off=False, doc="mirror left-right with probability 0.5"),
    "vertical_flip": Spec("bool", False, off=False, doc="mirror top-bottom with probability 0.5"),
    "fill_mode": Spec("enum", "nearest", options=FILL_MODES, doc="how pixels outside the image are filled"),
    "cval": Spec("float", 0.0, low=0, high=255, doc="fill value for fill_mode constant (pixel units, 0-255)"),
}

BATCHNORM = {
    "placement": Spec(
        "enum",
        "none",
        options=PLACEMENTS,
        off="none",
        doc="where BatchNormalization sits in every conv unit (see below)",
    ),
    # 0.9, not Keras's 0.99: a search trial is a few hundred steps, and with 0.99 the moving
    # statistics still remember their initial values after an epoch, so validation (inference
    # mode) sits at chance while training accuracy climbs (measured on mnist5k: 0.10 vs 0.93).
    "momentum": Spec("float", 0.9, low=0, high=1, high_open=True, doc="BatchNormalization moving-average momentum"),
}

SCHEDULE = {
    "kind": Spec(
        "enum", "constant", options=SCHEDULE_KINDS, doc="shape of the learning-rate curve over the epochs (see below)"
    ),
    "initial_lr": Spec("float", 1e-3, low=0, low_open=True, high=10, doc="learning rate after warmup"),
    "warmup_epochs": Spec("int", 0, low=0, off=0, doc="linear warmup epochs before the decay starts"),
}

# Parameters that exist only for one schedule kind (KerasTuner conditional scopes).
SCHEDULE_BY_KIND = {
    "step": {
        "drop_epoch": Spec(
            "int", REQUIRED, low=1, doc="absolute epoch (0-based) from which the LR is multiplied by drop_factor"
        ),
        "drop_factor": Spec(
            "float", 0.1, low=0, low_open=True, high=1, doc="LR multiplier after drop_epoch (applied once)"
        ),
    },
    "exponential": {
        "decay_rate": Spec("float", 0.9, low=0, low_open=True, high=1, doc="LR multiplier per epoch after warmup"),
    },
    "cosine": {
        "min_lr_ratio": Spec("float", 0.0, low=0, high=1, high_open=True, doc="final LR as a fraction of initial_lr"),
    },
}

SECTIONS = ("augmentation", "batchnorm", "schedule", "model")

# What `hypermodels.augmentation(hp)`, `hypermodels.lr_schedule(hp)` and `hypermodels.conv_bn_act(x, filters, hp)`
# search when a call leaves an argument out: the default search's space (configs/mnist5k.yaml; a test keeps them
# equal). Flips stay off unless asked for: a mirrored digit or letter is another glyph.
SCRIPT_DEFAULTS = {
    "augmentation": {
        "rotation_range": {"min": 0, "max": 30},
        "width_shift_range": {"min": 0, "max": 0.2},
        "height_shift_range": {"min": 0, "max": 0.2},
        "shear_range": {"min": 0, "max": 20},
        "zoom_range": {"min": 0, "max": 0.2},
        "horizontal_flip": False,
        "fill_mode": "nearest",
    },
    "batchnorm": {"placement": {"choice": list(PLACEMENTS)}},
    "schedule": {
        "kind": {"choice": list(SCHEDULE_KINDS)},
        "initial_lr": {"min": 1.0e-4, "max": 1.0e-2, "sampling": "log"},
        "warmup_epochs": {"min": 0, "max": 2},
        "drop_epoch": {"min": 3, "max": 7},
        "drop_factor": 0.1,
        "decay_rate": {"min": 0.6, "max": 0.95},
        "min_lr_ratio": 0.0,
    },
}
DEFAULT_METRICS = ("loss", "accuracy")  # what a HyperModel logs unless it says otherwise (`logged_metrics`)


class UserModelSpace(dict):
    """The `model_space` of a user's `build_model(hp)` or `keras_tuner.HyperModel`: open.

    Its dimensions are the `hp` calls the user's code makes, found as builds run
    (`hypermodels.wrapped`), not declared up front; YAML's `search_space.model.<name>` fixes or
    narrows one of them (KerasTuner's `hyperparameters=`), its kind read from the notation.
    Their names are the user's own (`units_0`, `lr`), with no `model.` prefix.
    """


USER_MODEL = UserModelSpace()
USER_DOC = "declared by the model's own hp calls"


def is_user_name(name: str) -> bool:
    """Whether `name` is a user's model's own (`units_0`, `lr`): not `section.key` of a ktsearch section."""
    section, dot, _ = name.partition(".")
    return not (dot and section in SECTIONS)


def split_name(name: str) -> tuple[str, str]:
    """(section, key) of a dimension: `schedule.kind` -> (schedule, kind); a user's `units_0` -> (model, units_0)."""
    return ("model", name) if is_user_name(name) else tuple(name.split(".", 1))


def spec_for(raw: Any) -> Spec:
    """The Spec a user's dimension takes from its YAML notation (no table knows it): the kind of its values."""
    if isinstance(raw, dict):
        values = raw.get("choice", [raw.get("min"), raw.get("max"), *([raw["step"]] if "step" in raw else [])])
    else:
        values = [raw]
    values = values if isinstance(values, list) else [values]
    if values and all(isinstance(v, bool) for v in values):
        kind = "bool"
    elif values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        kind = "int"
    elif values and all(isinstance(v, str) for v in values):
        return Spec("enum", values[0], options=tuple(values), doc=USER_DOC)
    else:
        kind = "float"
    return Spec(kind, None, doc=USER_DOC)


def spec_of(kind: str, default: Any, options: tuple = ()) -> Spec:
    """The Spec of a dimension a user's build declared (`hypermodels.wrapped.dimension_of`)."""
    return Spec(kind, default, options=tuple(options), doc=USER_DOC)


def schedule_specs() -> dict[str, Spec]:
    """Every schedule key, conditional ones included."""
    specs = dict(SCHEDULE)
    for params in SCHEDULE_BY_KIND.values():
        specs.update(params)
    return specs


def condition_of(name: str) -> str | None:
    """The schedule kind a conditional dimension belongs to, else None."""
    section, _, key = name.partition(".")
    if section != "schedule":
        return None
    return next((kind for kind, params in SCHEDULE_BY_KIND.items() if key in params), None)


class SearchSpace:
    """The parsed dimensions of one HyperModel: dotted name -> Dimension or None (off).

    Args:
        raw: nested YAML notation, ``{"augmentation": {"rotation_range": {...}}, ...}``;
            absent keys take their Spec default.
        model_space: the HyperModel's own architecture dimensions (section "model").
    """

    def __init__(self, raw: dict | None, model_space: dict[str, Spec]):
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise SpaceError("search_space", f"expected a mapping of sections, got {raw!r}")
        check_keys(raw, SECTIONS, "")
        self.specs: dict[str, Spec] = {}
        self.dims: dict[str, Dimension | None] = {}
        tables = {
            "augmentation": AUGMENTATION,
            "batchnorm": BATCHNORM,
            "schedule": schedule_specs(),
            "model": model_space,
        }
        self.open = isinstance(model_space, UserModelSpace)
        self.grown: list[str] = []  # user dimensions found after the space was parsed (`discover`)
        self.dropped: list[str] = []  # dimensions the model has no use for (`drop`)
        for section, table in tables.items():
            if section == "model" and self.open:
                self._parse_user(raw.get(section))
                continue
            self._parse_section(section, raw.get(section), table)
        self._check_schedule()
        self.dims = {name: self.dims[name] for name in self.specs if name in self.dims}  # table order

    def _parse_section(self, section: str, raw: Any, table: dict[str, Spec]) -> None:
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise SpaceError(section, f"expected a mapping of dimensions, got {raw!r}")
        check_keys(raw, tuple(table), section)
        for key, spec in table.items():
            name = f"{section}.{key}"
            self.specs[name] = spec
            if condition_of(name) is None or key in raw:
                self.dims[name] = parse_dimension(raw.get(key, spec.default), spec, name)

    def _parse_user(self, raw: Any) -> None:
        """`search_space.model` of a user's model: any names, each fixing or narrowing one of its `hp` calls."""
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise SpaceError("model", f"expected a mapping of the model's hyperparameter names, got {raw!r}")
        for key, value in raw.items():
            if not isinstance(key, str) or not key or not is_user_name(key):
                raise SpaceError(f"model.{key}", "expected the name of one of the model's own hp calls")
            spec = spec_for(value)
            self.specs[key] = spec
            self.dims[key] = parse_dimension(value, spec, f"model.{key}")

    def user_names(self) -> list[str]:
        """The user's own dimensions (a user's model only), in the order they became known."""
        return [n for n in self.dims if is_user_name(n)] if self.open else []

    def add(self, name: str, dim: Dimension, spec: Spec) -> bool:
        """Add a user dimension a build declared (False when it is known already: a YAML one keeps its domain)."""
        if name in self.dims:
            return False
        self.dims[name] = dim
        self.specs[name] = spec
        self.grown.append(name)
        return True

    def drop(self, name: str) -> None:
        """Remove a dimension the model has no use for (`schedule.initial_lr` of a model that compiles itself)."""
        self.dims.pop(name, None)
        if name not in self.dropped:
            self.dropped.append(name)

    def user_records(self) -> dict:
        """The user's dimensions as plain data (`kind`, `default`, `domain` notation): what a run keeps of them."""
        out = {}
        for name in self.user_names():
            spec, dim = self.specs[name], self.dims[name]
            out[name] = {
                "kind": spec.kind,
                "default": spec.default,
                "options": list(spec.options),
                "domain": dim.notation(),
            }
        return out

    def extend(self, records: dict) -> None:
        """Add the user dimensions `user_records` wrote (a run's saved copy of the ones its builds declared)."""
        for name, r in records.items():
            spec = spec_of(r["kind"], r.get("default"), tuple(r.get("options") or ()))
            self.add(name, parse_dimension(r["domain"], spec, f"model.{name}"), spec)

    def _check_schedule(self) -> None:
        kinds = self.kinds()
        for kind, params in SCHEDULE_BY_KIND.items():
            for key, spec in params.items():
                name = f"schedule.{key}"
                if kind not in kinds and name in self.dims:
                    raise SpaceError(name, f"set, but schedule.kind never takes '{kind}' (it takes {', '.join(kinds)})")
                if kind in kinds and name not in self.dims:
                    self.dims[name] = parse_dimension(spec.default, spec, name)

    def kinds(self) -> tuple:
        return possible_values(self.dims["schedule.kind"], SCHEDULE["kind"])

    def active_names(self, kind: str | None = None) -> list[str]:
        """Dimension names in declaration order; conditional ones only for `kind` (all if None)."""
        return [n for n in self.dims if condition_of(n) in (None, kind) or kind is None]

    def max_value(self, name: str) -> Any:
        return upper(self.dims[name], self.specs[name])

    def declare(self, hp, sections: tuple[str, ...] = SECTIONS) -> dict[str, Any]:
        """Register every dimension (of `sections` only, when given) on `hp` and return the values this build uses."""
        values: dict[str, Any] = {}
        for name, dim in self.dims.items():
            if condition_of(name) is None and split_name(name)[0] in sections:
                values[name] = self.specs[name].off if dim is None else declare(hp, name, dim)
        for kind, params in SCHEDULE_BY_KIND.items():
            if kind not in self.kinds() or "schedule" not in sections:
                continue
            with hp.conditional_scope("schedule.kind", [kind]):
                for key in params:
                    value = declare(hp, f"schedule.{key}", self.dims[f"schedule.{key}"])
                    if kind == values["schedule.kind"]:
                        values[f"schedule.{key}"] = value
        return values

    def values(self, hp) -> dict[str, Any]:
        """The values `hp` holds for this space (off dimensions at their off value)."""
        kind = hp.values.get("schedule.kind", None)
        out = {}
        for name in self.active_names(kind):
            dim = self.dims[name]
            if dim is None:
                out[name] = self.specs[name].off
            elif name in hp.values:  # a user's dimension exists only for some values of others (`units_2`)
                out[name] = hp.values[name]
        return out

    def notation(self) -> dict:
        """Nested YAML notation of this space (what a resolved config records)."""
        out: dict[str, dict] = {s: {} for s in SECTIONS}
        for name, dim in self.dims.items():
            section, key = split_name(name)
            out[section][key] = None if dim is None else dim.notation()
        return out

    def describe(self) -> list[tuple[str, str, str]]:
        """Rows (name, domain, condition) for `ktsearch validate`."""
        rows = []
        for name, dim in self.dims.items():
            kind = condition_of(name)
            cond = f"when schedule.kind = {kind}" if kind else ""
            rows.append((name, "off" if dim is None else dim.describe(), cond))
        return rows

    def searched(self) -> list[str]:
        return [n for n, d in self.dims.items() if d is not None and not isinstance(d, Fixed)]


# Architecture dimensions (section "model") of the built-in HyperModels.
CNN_MODEL = {
    "filters": Spec("int", 32, low=1, high=1024, doc="filters of the first conv block; doubled each block"),
    "conv_blocks": Spec("int", 2, low=1, high=6, doc="blocks of two 3x3 convs and a 2x2 max-pool"),
    "dense_units": Spec("int", 128, low=1, high=8192, doc="units of the dense head"),
    "dropout": Spec(
        "float", 0.25, low=0, high=1, high_open=True, off=0.0, doc="dropout before the dense head and the classifier"
    ),
    "activation": Spec("enum", "relu", options=ACTIVATIONS, doc="activation of every conv and dense layer"),
}

RESNET_MODEL = {
    "filters": Spec("int", 16, low=1, high=1024, doc="filters of the first stage; doubled each stage"),
    "stages": Spec("int", 3, low=1, high=5, doc="stages; each after the first halves the resolution"),
    "blocks_per_stage": Spec("int", 1, low=1, high=8, doc="residual blocks (two 3x3 convs each) per stage"),
    "dropout": Spec("float", 0.0, low=0, high=1, high_open=True, off=0.0, doc="dropout before the classifier"),
    "activation": Spec("enum", "relu", options=ACTIVATIONS, doc="activation of every conv layer"),
}

# keras.applications families the `transfer` HyperModel can start from: (Keras class, smallest input side).
TRANSFER_FAMILIES = {
    "mobilenet_v3_small": ("MobileNetV3Small", 32),
    "efficientnet_v2_b0": ("EfficientNetV2B0", 32),
    "resnet50_v2": ("ResNet50V2", 32),
}

TRANSFER_MODEL = {
    "family": Spec(
        "enum",
        "mobilenet_v3_small",
        options=tuple(TRANSFER_FAMILIES),
        doc="the pretrained backbone (`keras.applications`): MobileNetV3Small, EfficientNetV2B0 or ResNet50V2",
    ),
    "freeze_epochs": Spec(
        "int", 2, low=0, high=1000, doc="epochs (absolute, from 0) the backbone stays frozen: only the head trains"
    ),
    "unfreeze_fraction": Spec(
        "float",
        0.3,
        low=0,
        high=1,
        doc="fraction of the backbone's layers, from the top, that train after freeze_epochs (0: never)",
    ),
    "finetune_lr_factor": Spec(
        "float",
        0.1,
        low=0,
        low_open=True,
        high=1,
        doc="the learning rate is multiplied by this from freeze_epochs on (fine-tuning takes small steps)",
    ),
    "head_units": Spec("int", 0, low=0, high=8192, off=0, doc="units of a dense layer in the head (0: none)"),
    "dropout": Spec("float", 0.2, low=0, high=1, high_open=True, off=0.0, doc="dropout before the classifier"),
}
