"""`UserHyperModel`: a KerasTuner user's `build_model(hp)` or `keras_tuner.HyperModel`, as ktsearch runs it.

What KerasTuner's own `get_hypermodel` does with a function (wrap it as a HyperModel), plus what
ktsearch adds around every model it searches:

* ``pixels -> RandomAffine -> the user's model``: the augmentation dimensions apply in front of
  it, at the values the user's data has (no rescaling: their model sees what they passed);
* the user's `hp` calls are the search's `model` dimensions, declared as the builds make them
  (names that appear only for some values, `units_2` when `num_layers` is 3, join the space when
  they first appear, as KerasTuner's `tune_new_entries` does); YAML's `search_space.model.<name>`
  is declared first, so it fixes or narrows the user's own call (KerasTuner's `hyperparameters=`);
* a model that comes back compiled keeps its loss, metrics, optimizer class and settings; the
  schedule (`schedule.*`) then sets that optimizer's learning rate every epoch, starting from the
  user's own rate (`LRSchedule` with `initial_lr` = that rate). An uncompiled model is compiled as
  the built-in ones are, its loss fitting the labels (class indices or one-hot rows);
* the user's `fit` (a `kt.HyperModel.fit` override) runs, with ktsearch's callbacks added.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import keras_tuner as kt

from hypermodels import augment, private_api
from hypermodels.base import BOOKKEEPING, ImageHyperModel, make_optimizer
from hypermodels.dimensions import SearchSpace, spec_of
from hypermodels.notation import Choice, Dimension, Fixed, Range
from hypermodels.schedules import LRSchedule

INITIAL_LR = "schedule.initial_lr"
# Dimensions that act only through something the user's model may not have: name -> what it needs.
NEEDS = {
    "batchnorm.placement": "a BatchNorm helper in the model (ktsearch's own HyperModels have one)",
    "batchnorm.momentum": "a BatchNorm helper in the model (ktsearch's own HyperModels have one)",
}


def is_user_model(obj: Any) -> bool:
    """A function `hp -> keras.Model`, or a `keras_tuner.HyperModel` (class or instance) that is not ktsearch's."""
    if isinstance(obj, type):
        return issubclass(obj, kt.HyperModel) and not issubclass(obj, ImageHyperModel)
    if isinstance(obj, kt.HyperModel):
        return not isinstance(obj, ImageHyperModel)
    return callable(obj)


def as_keras_tuner(obj: Any) -> kt.HyperModel:
    """The user's object as a `kt.HyperModel` (a class is instantiated without arguments)."""
    if isinstance(obj, type):
        try:
            return obj()
        except TypeError as e:
            raise ValueError(f"{obj.__name__}() needs arguments ({e}); pass an instance instead") from None
    if isinstance(obj, kt.HyperModel):
        return obj
    try:
        inspect.signature(obj).bind(kt.HyperParameters())
    except (TypeError, ValueError):
        raise ValueError(f"{getattr(obj, '__name__', obj)!r} is not a function of one argument (hp)") from None
    return FunctionHyperModel(obj)


class FunctionHyperModel(kt.HyperModel):
    """KerasTuner's `DefaultHyperModel` (not public): a model function as a HyperModel; `build` calls it."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def build(self, hp):
        return self.function(hp)


def dimension_of(hp) -> tuple[Dimension, Any]:
    """(ktsearch Dimension, Spec) of a KerasTuner hyperparameter object."""
    config = hp.get_config()
    if isinstance(hp, kt.engine.hyperparameters.Fixed):
        value = config["value"]
        kind = "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "float"
        kind = "enum" if isinstance(value, str) else kind
        return Fixed(value), spec_of(kind, value, (value,) if kind == "enum" else ())
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return Choice((False, True)), spec_of("bool", config.get("default", False))
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        values = tuple(config["values"])
        kind = "int" if all(isinstance(v, int) and not isinstance(v, bool) for v in values) else "float"
        kind = "enum" if any(isinstance(v, str) for v in values) else kind
        dim = Fixed(values[0]) if len(values) == 1 else Choice(values)
        return dim, spec_of(kind, hp.default, values if kind == "enum" else ())
    integer = isinstance(hp, kt.engine.hyperparameters.Int)
    low, high = config["min_value"], config["max_value"]
    # KerasTuner's "reverse_log" reads as log here (same interval, denser at the other end), and a step on a
    # log scale (a multiplier) is not a step of ktsearch's notation: the domain is recorded without it.
    sampling = "log" if config.get("sampling") in ("log", "reverse_log") else "linear"
    step = config.get("step")
    step = None if sampling == "log" or (integer and step in (None, 1)) else step
    spec = spec_of("int" if integer else "float", hp.default)
    if low == high:
        return Fixed(low), spec
    return Range(low, high, step, sampling, integer=integer), spec


def discover(space: SearchSpace, hyperparameters) -> list[str]:
    """Add to `space` every hyperparameter of `hyperparameters` (a `kt.HyperParameters`) it lacks; the new names."""
    new = []
    for hp in hyperparameters.space:
        if hp.name in space.dims or hp.name in space.specs or hp.name.startswith(BOOKKEEPING):
            continue
        dim, spec = dimension_of(hp)
        if space.add(hp.name, dim, spec):
            new.append(hp.name)
    return new


class UserHyperModel(ImageHyperModel):
    """A user's model function or `kt.HyperModel` behind ktsearch's augmentation, schedule and records.

    Args:
        user: the function `hp -> keras.Model`, or the `kt.HyperModel` (class or instance).
        label_form: "index" (class indices) or "one_hot" (rows of `num_classes`): the loss an
            uncompiled model gets, and what the data pipeline feeds.
        the rest: `ImageHyperModel`'s.
    """

    def __init__(self, user, input_shape, num_classes: int, search_space: SearchSpace, *, label_form="index", **kw):
        kw.pop("weights", None)
        super().__init__(input_shape, num_classes, search_space, **kw)
        self.user = as_keras_tuner(user)
        self.label_form = label_form
        self._rates: dict[tuple, float] = {}
        self.compiles, self.user_lr, self.collisions = self._probe()
        if self.compiles:
            self.space.drop(INITIAL_LR)  # their optimizer's rate is the schedule's start

    def _probe(self) -> tuple[bool, float | None, list[str]]:
        """Build the user's model once at default values: their dimensions, whether it compiles itself, its rate."""
        hp = kt.HyperParameters()  # the user's own calls alone (YAML's narrowed ones join in every real build)
        model = self._user_build(hp)
        self.probed = [hp_.name for hp_ in hp.space]
        ours = [name for name in self.probed if name in self.space.dims and name not in self.space.user_names()]
        discover(self.space, hp)
        self.space.grown.clear()  # the default build's dimensions are the space's start, not growth
        compiled = bool(getattr(model, "compiled", False)) and getattr(model, "optimizer", None) is not None
        return compiled, user_learning_rate(model) if compiled else None, ours

    def check(self, sample=None) -> None:
        """A full build at default values for these images (and, given `sample` = (images, labels as fed), one
        evaluation step on them): ValueError, in one line, when the model cannot take them."""
        if self.collisions:
            raise ValueError(
                f"the model declares {', '.join(self.collisions)}, which is one of ktsearch's own dimensions "
                f"(search_space.{self.collisions[0]}); rename it in the model"
            )
        hp = kt.HyperParameters()
        model = self.build(hp)
        width = model.output_shape[-1]
        if width != self.num_classes:
            raise ValueError(
                f"the model's output has {width} values per image, but the data has {self.num_classes} classes"
            )
        if sample is not None:
            try:
                model.test_on_batch(*sample)
            except Exception as e:  # the user's loss or metrics and the labels' form do not fit
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                form = "one-hot rows" if self.label_form == "one_hot" else "class indices"
                raise ValueError(
                    f"the model's compiled loss or metrics do not fit labels given as {form} ({first})"
                ) from None
        keras.backend.clear_session()

    def unused(self) -> dict[str, str]:
        """Searched ktsearch dimensions that cannot change this model: name -> why (`ktsearch validate` says so)."""
        out = {}
        for name, why in NEEDS.items():
            if name in self.space.searched():
                out[name] = f"the model has no place for it: it needs {why}"
        return out

    def _user_build(self, hp) -> keras.Model:
        model = self.user.build(hp)
        if not isinstance(model, keras.Model):
            raise ValueError(f"the model function returned {type(model).__name__}, expected a keras.Model")
        return model

    def _build_model(self, hp) -> keras.Model:
        values = self.space.declare(hp)
        user = self._user_build(hp)
        discover(self.space, hp)
        inputs = keras.Input(shape=self.input_shape, name="pixels")
        x = inputs
        layer = augment.from_values(values, seed=self.seed)
        if layer is not None:
            x = layer(x)
        model = keras.Model(inputs, user(x), name=self.name or "ktsearch_model")
        if self.compiles and getattr(user, "optimizer", None) is not None:
            rate = user_learning_rate(user)
            if rate is not None:  # read now: a scheduler changes the optimizer's rate as the model trains
                self._rates[values_key(hp)] = rate
            arguments = private_api.compile_arguments(user)
            metrics = list(arguments.get("metrics") or [])
            if "accuracy" not in metrics:
                metrics.append("accuracy")  # ktsearch ranks and reports by `accuracy`/`val_accuracy`
            steps = max(arguments.get("steps_per_execution") or 1, self.steps_per_execution)
            # The optimizer Keras made of theirs (a name such as "adam" included), never built: it trains the wrapper.
            model.compile(
                **{**arguments, "optimizer": user.optimizer, "metrics": metrics, "steps_per_execution": steps}
            )
        else:
            self.compile(model, values.get(INITIAL_LR, 1e-3))
        return model

    def compile(self, model: keras.Model, learning_rate) -> None:
        loss = "categorical_crossentropy" if self.label_form == "one_hot" else "sparse_categorical_crossentropy"
        model.compile(
            optimizer=make_optimizer(self.optimizer, float(learning_rate)),
            loss=loss,
            metrics=["accuracy"],
            steps_per_execution=self.steps_per_execution,
        )

    def schedule(self, hp) -> LRSchedule | None:
        values = self.space.values(hp)
        if self.compiles:
            if self.user_lr is None:
                return None  # their optimizer runs its own LearningRateSchedule
            values[INITIAL_LR] = self._rates.get(values_key(hp), self.user_lr)
        return LRSchedule.from_values(values, self.lr_horizon)

    def fit(self, hp, model, *args, callbacks=None, first_callbacks=(), **kwargs):
        schedule = self.schedule(hp)
        ours = [] if schedule is None else [keras.callbacks.LearningRateScheduler(schedule)]
        callbacks = [*first_callbacks, *ours, keras.callbacks.TerminateOnNaN(), *(callbacks or [])]
        if type(self.user).fit is not kt.HyperModel.fit:
            kwargs.pop("shuffle", None)  # ktsearch's datasets shuffle themselves; the user's fit may pass its own
        return self.user.fit(hp, model, *args, callbacks=callbacks, **kwargs)

    def inference_model(self, model: keras.Model) -> keras.Model:
        """The user's own model, without the augmentation in front (same weights, same layers)."""
        return next(layer for layer in reversed(model.layers) if isinstance(layer, keras.Model))


def user_learning_rate(model: keras.Model) -> float | None:
    """The learning rate the user's compiled optimizer starts from (None: it runs a LearningRateSchedule)."""
    rate = model.optimizer.get_config().get("learning_rate")
    return float(rate) if isinstance(rate, (int, float)) else None


def values_key(hp) -> tuple:
    """The values of a build, as a key (the user's rate follows from them: their `lr` may be searched)."""
    return tuple(sorted((k, v) for k, v in hp.values.items() if not k.startswith(BOOKKEEPING)))
