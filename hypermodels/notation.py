"""Search-space notation shared by YAML configs and HyperModels (no TensorFlow here).

A dimension is written in YAML as:

* a scalar: fixed (``rotation_range: 30``);
* ``{min, max[, step][, sampling: linear|log]}``: a range;
* ``{choice: [...]}``: categorical;
* ``null``: switched off (only where the dimension allows it).

`parse_dimension` turns that notation into `Fixed`, `Range` or `Choice`, checked
against a `Spec` (type, bounds, legal values). `declare` registers a dimension on
a KerasTuner ``HyperParameters`` object under its dotted name.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()  # a Spec default meaning "the user must give this one"


class KtsearchError(Exception):
    """Base class of every error ktsearch raises on purpose (catch this one in your scripts).

    It lives here, in the bottom layer, so that `hypermodels`' own errors are ktsearch's too;
    `search.errors` re-exports it with the others."""


class SpaceError(KtsearchError, ValueError):
    """A dimension that breaks its Spec; `key` is the dotted config path (or the helper's argument)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Spec:
    """What one dimension may be.

    Args:
        kind: "float", "int", "bool" or "enum".
        default: YAML notation used when the key is absent (`REQUIRED`: no default).
        low, high: inclusive bounds for numbers (None: unbounded).
        high_open: True when `high` itself is not allowed.
        low_open: True when `low` itself is not allowed.
        options: the legal values of an "enum".
        off: the value the model uses when the dimension is ``null``;
            `None` here means the dimension cannot be switched off.
        doc: one line for the README and `ktsearch validate`.
    """

    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    options: tuple = ()
    off: Any = None
    doc: str = ""

    @property
    def optional(self) -> bool:
        return self.off is not None


@dataclass(frozen=True)
class Fixed:
    value: Any

    def describe(self) -> str:
        return f"fixed {_fmt(self.value)}"

    def notation(self) -> Any:
        return self.value


@dataclass(frozen=True)
class Range:
    min: float
    max: float
    step: float | None = None
    sampling: str = "linear"
    integer: bool = False

    def describe(self) -> str:
        kind = "int" if self.integer else "float"
        step = f", step {_fmt(self.step)}" if self.step is not None else ""
        return f"{kind} in [{_fmt(self.min)}, {_fmt(self.max)}]{step}, {self.sampling} sampling"

    def notation(self) -> dict:
        out: dict[str, Any] = {"min": self.min, "max": self.max}
        if self.step is not None:
            out["step"] = self.step
        out["sampling"] = self.sampling
        return out


@dataclass(frozen=True)
class Choice:
    values: tuple = field(default_factory=tuple)

    def describe(self) -> str:
        return "choice of {" + ", ".join(_fmt(v) for v in self.values) + "}"

    def notation(self) -> dict:
        return {"choice": list(self.values)}


Dimension = Fixed | Range | Choice


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def did_you_mean(word: str, candidates) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    match = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_keys(mapping: dict, allowed, where: str) -> None:
    """Raise SpaceError for the first key of `mapping` not in `allowed`."""
    for key in mapping:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            expected = ", ".join(str(a) for a in allowed)
            raise SpaceError(f"{where}.{key}" if where else str(key), f"unknown key{hint}; expected one of: {expected}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounds_text(spec: Spec) -> str:
    lo = "" if spec.low is None else f"{'>' if spec.low_open else '>='} {_fmt(spec.low)}"
    hi = "" if spec.high is None else f"{'<' if spec.high_open else '<='} {_fmt(spec.high)}"
    return " and ".join(t for t in (lo, hi) if t)


def check_scalar(value: Any, spec: Spec, key: str) -> Any:
    """Return `value` normalised to the spec's type, or raise SpaceError."""
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise SpaceError(key, f"expected true or false, got {value!r}")
        return value
    if spec.kind == "enum":
        if value not in spec.options:
            hint = did_you_mean(value, spec.options)
            raise SpaceError(key, f"expected one of {', '.join(map(str, spec.options))}, got {value!r}{hint}")
        return value
    if spec.kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        raise SpaceError(key, f"expected an integer, got {value!r}")
    if not _is_number(value) or not math.isfinite(value):
        raise SpaceError(key, f"expected a number, got {value!r}")
    low_bad = spec.low is not None and (value < spec.low or (spec.low_open and value == spec.low))
    high_bad = spec.high is not None and (value > spec.high or (spec.high_open and value == spec.high))
    if low_bad or high_bad:
        raise SpaceError(key, f"expected a value {_bounds_text(spec)}, got {value!r}")
    return value if spec.kind == "int" else float(value)


def _parse_range(raw: dict, spec: Spec, key: str) -> Dimension:
    check_keys(raw, ("min", "max", "step", "sampling"), key)
    if spec.kind not in ("int", "float"):
        raise SpaceError(key, f"a range needs a numeric dimension; use {{choice: [...]}} for {spec.kind} values")
    for bound in ("min", "max"):
        if bound not in raw:
            raise SpaceError(f"{key}.{bound}", "missing; a range needs both min and max")
    low = check_scalar(raw["min"], spec, f"{key}.min")
    high = check_scalar(raw["max"], spec, f"{key}.max")
    if low > high:
        raise SpaceError(key, f"expected min <= max, got min={_fmt(low)} > max={_fmt(high)}")
    sampling = raw.get("sampling", "linear")
    if sampling not in ("linear", "log"):
        raise SpaceError(
            f"{key}.sampling", f"expected linear or log, got {sampling!r}{did_you_mean(sampling, ('linear', 'log'))}"
        )
    if sampling == "log" and low <= 0:
        raise SpaceError(key, f"log sampling needs min > 0, got min={_fmt(low)}")
    step = raw.get("step")
    if step is not None:
        if not _is_number(step) or step <= 0 or (spec.kind == "int" and not isinstance(step, int)):
            raise SpaceError(
                f"{key}.step", f"expected a positive {'integer' if spec.kind == 'int' else 'number'}, got {step!r}"
            )
        if sampling == "log":
            raise SpaceError(f"{key}.step", "step cannot be combined with log sampling")
    if low == high:
        return Fixed(low)
    return Range(low, high, step, sampling, integer=spec.kind == "int")


def _parse_choice(raw: dict, spec: Spec, key: str) -> Dimension:
    check_keys(raw, ("choice",), key)
    values = raw["choice"]
    if not isinstance(values, list) or not values:
        raise SpaceError(f"{key}.choice", f"expected a non-empty list, got {values!r}")
    checked = [check_scalar(v, spec, f"{key}.choice[{i}]") for i, v in enumerate(values)]
    if len(set(checked)) != len(checked):
        raise SpaceError(f"{key}.choice", f"expected distinct values, got {values!r}")
    if len(checked) == 1:
        return Fixed(checked[0])
    return Choice(tuple(checked))


def parse_dimension(raw: Any, spec: Spec, key: str) -> Dimension | None:
    """Parse YAML notation into a Dimension (None: switched off)."""
    if raw is REQUIRED:
        raise SpaceError(key, "missing; this dimension has no default")
    if raw is None:
        if not spec.optional:
            raise SpaceError(key, "cannot be switched off with null; give a value, a range or a choice")
        return None
    if isinstance(raw, dict):
        if "choice" in raw:
            return _parse_choice(raw, spec, key)
        if not raw:
            raise SpaceError(key, "expected {min, max[, step][, sampling]} or {choice: [...]}, got {}")
        return _parse_range(raw, spec, key)
    if isinstance(raw, list):
        raise SpaceError(key, f"expected a scalar, a {{min, max}} range or {{choice: [...]}}, got a list {raw!r}")
    return Fixed(check_scalar(raw, spec, key))


def possible_values(dim: Dimension | None, spec: Spec) -> tuple:
    """The values a categorical dimension can take (off value when switched off)."""
    if dim is None:
        return (spec.off,)
    if isinstance(dim, Fixed):
        return (dim.value,)
    if isinstance(dim, Choice):
        return dim.values
    raise TypeError("a range has no finite set of values")


def upper(dim: Dimension | None, spec: Spec) -> Any:
    """The largest value a numeric dimension can take."""
    if dim is None:
        return spec.off
    if isinstance(dim, Range):
        return dim.max
    return max(possible_values(dim, spec))


def declare(hp, name: str, dim: Dimension) -> Any:
    """Register `dim` on a KerasTuner HyperParameters under `name`; return its value."""
    if isinstance(dim, Fixed):
        return hp.Fixed(name, dim.value)
    if isinstance(dim, Choice):
        if all(isinstance(v, bool) for v in dim.values):
            return hp.Boolean(name)  # hp.Choice would turn False/True into 0/1
        return hp.Choice(name, list(dim.values))
    if dim.integer:
        return hp.Int(name, int(dim.min), int(dim.max), step=int(dim.step or 1), sampling=dim.sampling)
    return hp.Float(name, dim.min, dim.max, step=dim.step, sampling=dim.sampling)


def contains(dim: Dimension, value: Any) -> bool:
    """Whether `dim` can take `value` (a step grid and integers included; floats to 1e-9 relative)."""

    def close(a, b) -> bool:
        return _is_number(a) and _is_number(b) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)

    if isinstance(dim, Fixed):
        return value == dim.value or close(value, dim.value)
    if isinstance(dim, Choice):
        return any(value == v and type(value) is type(v) or close(value, v) for v in dim.values)
    if not _is_number(value) or not (dim.min <= value <= dim.max or close(value, dim.min) or close(value, dim.max)):
        return False
    if dim.integer and value != int(value):
        return False
    if dim.step:
        steps = (value - dim.min) / dim.step
        return math.isclose(steps, round(steps), abs_tol=1e-6)
    return True
