"""KerasTuner's generic tuner tests, run with `search.BOHB` and `search.ASHA` in place of KerasTuner's tuners.

Source: `keras_tuner/engine/tuner_test.py` of keras-team/keras-tuner (Apache License 2.0, Copyright 2019 The
KerasTuner Authors), as released with KerasTuner 1.4.7 and 1.4.8 (unchanged since October 2023). Each test
keeps its name; `keras_tuner.RandomSearch(..., max_trials=2)` (or 4) becomes `cls(..., **SIZED[cls])`, the
smallest search of each algorithm (2 trials: BOHB one bracket of one trial, 2 iterations; ASHA one rung, 2
configurations: continuations are `test_kt_hyperband_contract.py`'s), and a count of trials compares with
that size. Other changes are said where they are made. Not applicable, and why:

* `test_update_trial`, `test_build_and_fit_model_in_tuner`: they test `keras_tuner.Tuner` over an oracle the
  test builds (a custom one; RandomSearch's); ktsearch's tuners build their own. `test_tuning_correctness` and
  the tests through `assert_found_best_score` build `keras_tuner.Tuner(oracle=RandomSearchOracle(...))` too, and
  do apply: they run with ktsearch's tuners in its place (at one budget: KerasTuner's MockModel saves no
  weights for a continuation to load).
* `test_tuner_errors`' first case (an `oracle` that is not an Oracle): no `oracle` argument to give.
* `test_metric_direction_inferred_from_objective`: an oracle-level test of KerasTuner's `Oracle.update_trial`;
  run here on ktsearch's two oracles instead of `RandomSearchOracle`.
* `test_tunable_false_hypermodel`: skipped by KerasTuner itself under Keras 3 ("too slow": 256x256 Xception).
* `test_convert_hyperparams_to_hparams`: tests KerasTuner's `tuner_utils` function, no tuner.
"""

from __future__ import annotations

import os
from io import StringIO
from unittest.mock import patch

import keras_tuner
import numpy as np
import pytest
from keras_tuner.src import errors
from keras_tuner.src.backend import keras

import search
from hypermodels import private_api
from search.algorithms.asha import AshaOracle
from search.algorithms.bohb import BohbOracle

# Small searches, about a minute on 2 cores together, with Keras's steps run eagerly (`eager_keras`).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("eager_keras")]


INPUT_DIM = 2
NUM_CLASSES = 3
NUM_SAMPLES = 64
TRAIN_INPUTS = np.random.random(size=(NUM_SAMPLES, INPUT_DIM))
TRAIN_TARGETS = np.random.randint(0, NUM_CLASSES, size=(NUM_SAMPLES, 1))
VAL_INPUTS = np.random.random(size=(NUM_SAMPLES, INPUT_DIM))
VAL_TARGETS = np.random.randint(0, NUM_CLASSES, size=(NUM_SAMPLES, 1))

SIZED = {
    search.BOHB: {"max_epochs": 1, "hyperband_iterations": 2},
    search.ASHA: {"max_epochs": 1, "max_trials": 2},
}
TRIALS = 2  # what SIZED runs
TUNERS = pytest.mark.parametrize("cls", tuple(SIZED), ids=lambda c: c.__name__)


def build_model(hp):
    inputs = keras.Input(shape=(INPUT_DIM,))
    x = inputs
    for i in range(hp.Int("num_layers", 1, 4)):
        x = keras.layers.Dense(units=hp.Int(f"units_{str(i)}", 5, 9, 1, default=6), activation="relu")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [1e-2, 1e-3, 1e-4])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class MockModel(keras.Model):
    def __init__(self, full_history):
        super().__init__()
        self.full_history = full_history
        self.callbacks = []
        self.optimizer = True

    def on_epoch_begin(self, epoch):
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs=None)

    def on_epoch_end(self, epoch):
        logs = {"loss": np.average(self.full_history[epoch])}
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs=logs)

    def on_batch_begin(self, epoch, batch):
        for callback in self.callbacks:
            callback.on_batch_begin(batch, logs=None)

    def on_batch_end(self, epoch, batch):
        logs = {"loss": self.full_history[epoch][batch]}
        for callback in self.callbacks:
            callback.on_batch_end(epoch, logs=logs)

    def fit(self, *args, **kwargs):
        self.callbacks = kwargs["callbacks"]
        for callback in self.callbacks:
            callback.set_model(self)
        for epoch in range(len(self.full_history)):
            self.on_epoch_begin(epoch)
            for batch in range(len(self.full_history[epoch])):
                self.on_batch_begin(epoch, batch)
                self.on_batch_end(epoch, batch)
            self.on_epoch_end(epoch)
        history = keras.callbacks.History()
        history.history = {"loss": [np.average(epoch_values) for epoch_values in self.full_history]}
        return history

    def save_weights(self, fname, **kwargs):
        pass

    def get_config(self):
        return {}


class MockHyperModel(keras_tuner.HyperModel):
    mode_0 = [[10, 9, 8], [7, 6, 5], [4, 3, 2]]
    mode_1 = [[13, 13, 13], [12, 12, 12], [11, 11, 11]]

    def __init__(self):
        self.mode_0_execution_count = -1

    def build(self, hp):
        if hp.Choice("mode", [0, 1]) == 0:
            return MockModel(self.mode_0)
        return MockModel(self.mode_1)


def build_subclass_model(hp):
    class MyModel(keras.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.layer = keras.layers.Dense(NUM_CLASSES, activation="softmax")

        def build(self, input_shape):
            self.layer.build(input_shape)
            super().build(input_shape)

        def call(self, x):
            x = x + hp.Float("bias", 0, 10)
            return self.layer(x)

        def get_config(self):
            return {}

    model = MyModel()
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [1e-2, 1e-3, 1e-4])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class ExampleHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        return build_model(hp)

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, shuffle=hp.Boolean("shuffle"), **kwargs)


def _search(tuner, **kwargs):
    tuner.search(x=TRAIN_INPUTS, y=TRAIN_TARGETS, epochs=2, validation_data=(VAL_INPUTS, VAL_TARGETS), **kwargs)


@TUNERS
def test_basic_tuner_attributes(tmp_path, cls):
    tuner = cls(build_model, objective="val_accuracy", executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    assert tuner.oracle.objective.name == "val_accuracy"
    assert tuner.executions_per_trial == 3
    assert tuner.directory == tmp_path
    assert tuner.hypermodel.__class__.__name__ == "DefaultHyperModel"
    assert len(tuner.oracle.hyperparameters.space) == 3  # default search space
    assert len(tuner.oracle.hyperparameters.values) == 3  # default search space
    tuner.search_space_summary()
    _search(tuner)
    tuner.results_summary()
    assert len(tuner.oracle.trials) == TRIALS  # KerasTuner's: oracle.max_trials == 2 (Hyperband has none)
    assert os.path.exists(os.path.join(str(tmp_path), "untitled_project"))


@TUNERS
def test_multi_objective(tmp_path, cls):
    tuner = cls(
        build_model, objective=["val_accuracy", "val_loss"], executions_per_trial=3, directory=tmp_path, **SIZED[cls]
    )
    assert tuner.oracle.objective.name == "multi_objective"
    tuner.search_space_summary()
    _search(tuner)
    tuner.results_summary()
    assert len(tuner.oracle.get_best_trials()) == 1


@TUNERS
def test_no_hypermodel_with_objective(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, *args, **kwargs):
            return {"val_loss": trial.hyperparameters.Float("value", 0, 10)}

    tuner = MyTuner(objective="val_loss", directory=tmp_path, **SIZED[cls])
    tuner.search()
    assert len(tuner.oracle.trials) == TRIALS


@TUNERS
def test_no_objective_with_hypermodel(tmp_path, cls):
    class MyHyperModel(ExampleHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            return hp.Float("value", 0, 10)

    tuner = cls(hypermodel=MyHyperModel(), executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    tuner.search()
    assert len(tuner.oracle.trials) == TRIALS


@TUNERS
def test_no_hypermodel_no_objective(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, *args, **kwargs):
            return trial.hyperparameters.Float("value", 0, 10)

    tuner = MyTuner(objective="val_loss", directory=tmp_path, **SIZED[cls])
    tuner.search()
    assert len(tuner.oracle.trials) == TRIALS


@TUNERS
def test_no_hypermodel_without_override_run_trial_error(tmp_path, cls):
    with pytest.raises(ValueError, match="Received `hypermodel=None`"):
        cls(executions_per_trial=3, directory=tmp_path, **SIZED[cls])


@TUNERS
def test_fit_return_string(tmp_path, cls):
    class MyHyperModel(ExampleHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            return hp.Choice("value", ["a", "b"])

    tuner = cls(
        objective="val_loss", hypermodel=MyHyperModel(), executions_per_trial=3, directory=tmp_path, **SIZED[cls]
    )
    with pytest.raises(TypeError, match=r"HyperModel\.fit\(\) to be one of"):
        tuner.search()


@TUNERS
def test_run_trial_return_string(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, **kwargs):
            return trial.hyperparameters.Choice("value", ["a", "b"])

    tuner = MyTuner(objective="val_loss", executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    with pytest.raises(TypeError, match=r"Tuner\.run_trial\(\) to be one of"):
        tuner.search()


@TUNERS
def test_no_objective_fit_return_not_float(tmp_path, cls):
    class MyHyperModel(ExampleHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            return {"val_loss": hp.Float("value", 0, 10)}

    tuner = cls(hypermodel=MyHyperModel(), executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    with pytest.raises(TypeError, match=r"HyperModel\.fit\(\) to be a single float"):
        tuner.search()


@TUNERS
def test_no_objective_run_trial_return_not_float(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, **kwargs):
            return {"val_loss": trial.hyperparameters.Float("value", 0, 10)}

    tuner = MyTuner(executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    with pytest.raises(TypeError, match=r"Tuner\.run_trial\(\) to be a single float"):
        tuner.search()


@TUNERS
def test_callbacks_in_fit_kwargs(tmp_path, cls):
    tuner = cls(build_model, objective="val_accuracy", executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    with patch.object(tuner, "_build_and_fit_model", wraps=tuner._build_and_fit_model) as build_and_fit:
        _search(tuner, callbacks=[keras.callbacks.EarlyStopping(), keras.callbacks.TensorBoard(tmp_path)])
        assert len(tuner.oracle.trials) == TRIALS
        names = {x.__class__.__name__ for x in build_and_fit.call_args[1]["callbacks"]}
        assert {"EarlyStopping", "TensorBoard", "TunerCallback", "SaveBestEpoch"}.issubset(names)


@TUNERS
def test_hypermodel_with_dynamic_space(tmp_path, cls):
    hypermodel = ExampleHyperModel()
    tuner = cls(hypermodel, objective="val_accuracy", executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    assert tuner.hypermodel == hypermodel
    tuner.search_space_summary()
    _search(tuner)
    tuner.results_summary()
    assert len(tuner.oracle.trials) == TRIALS
    tuner.oracle.hyperparameters.get("shuffle")


@TUNERS
def test_override_compile(tmp_path, cls):
    class MyHyperModel(ExampleHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            history = super().fit(hp, model, *args, **kwargs)
            assert model.optimizer.__class__.__name__ == "RMSprop"
            assert model.loss == "mse"
            assert len(model.metrics) >= 2
            assert model.metrics[-2].__class__.__name__ in ("mean_squared_error", "Mean")
            assert model.metrics[-1].__class__.__name__ in ("sparse_categorical_accuracy", "CompileMetrics")
            return history

    tuner = cls(
        MyHyperModel(),
        objective="val_mse",
        executions_per_trial=1,
        metrics=["mse", "accuracy"],
        loss="mse",
        optimizer="rmsprop",
        directory=tmp_path,
        **SIZED[cls],
    )
    assert tuner.oracle.objective.name == "val_mse"
    assert tuner.optimizer == "rmsprop"
    assert tuner.loss == "mse"
    assert tuner.metrics == ["mse", "accuracy"]
    tuner.search_space_summary()
    _search(tuner)
    tuner.results_summary()
    assert tuner.get_best_models()[0].loss == "mse"


@TUNERS
def test_override_optimizer_with_actual_optimizer_object(tmp_path, cls):
    tuner = cls(
        build_model, objective="val_loss", optimizer=keras.optimizers.Adam(0.01), directory=tmp_path, **SIZED[cls]
    )
    _search(tuner)
    assert len(tuner.oracle.trials) == TRIALS  # not in KerasTuner's test: it only ran


@TUNERS
def test_static_space(tmp_path, cls):
    def build_model_static(hp):
        inputs = keras.Input(shape=(INPUT_DIM,))
        x = inputs
        for i in range(hp.get("num_layers")):
            x = keras.layers.Dense(units=hp.get(f"units_{str(i)}"), activation="relu")(x)
        outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(hp.get("learning_rate")),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    hp = keras_tuner.HyperParameters()
    hp.Int("num_layers", 1, 3, 1, default=2)
    hp.Int("units_0", 4, 6, 1, default=5)
    hp.Int("units_1", 4, 6, 1, default=5)
    hp.Int("units_2", 4, 6, 1, default=5)
    hp.Choice("learning_rate", [0.01, 0.001])
    tuner = cls(
        build_model_static,
        objective="val_accuracy",
        directory=tmp_path,
        hyperparameters=hp,
        allow_new_entries=False,
        **SIZED[cls],
    )
    assert tuner.oracle.hyperparameters == hp
    _search(tuner)
    assert len(tuner.oracle.trials) == TRIALS


@TUNERS
def test_static_space_errors(tmp_path, cls):
    def build_model_static(hp):
        inputs = keras.Input(shape=(INPUT_DIM,))
        x = inputs
        for i in range(hp.get("num_layers")):
            x = keras.layers.Dense(units=hp.get(f"units_{str(i)}"), activation="relu")(x)
        outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-5, 1e-2)),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    hp = keras_tuner.HyperParameters()
    hp.Int("num_layers", 1, 3, 1, default=2)
    hp.Int("units_0", 4, 6, 1, default=5)
    hp.Int("units_1", 4, 6, 1, default=5)
    with pytest.raises(RuntimeError, match="`allow_new_entries` is `False`"):
        tuner = cls(
            build_model_static,
            objective="val_accuracy",
            directory=tmp_path,
            hyperparameters=hp,
            allow_new_entries=False,
            **SIZED[cls],
        )
        _search(tuner)


@TUNERS
def test_restricted_space_using_defaults(tmp_path, cls):
    hp = keras_tuner.HyperParameters()
    hp.Int("num_layers", 1, 5, 1, default=2)
    hp.Choice("learning_rate", [0.01, 0.001, 0.0001])
    tuner = cls(
        build_model,
        objective="val_accuracy",
        directory=tmp_path,
        hyperparameters=hp,
        allow_new_entries=True,
        tune_new_entries=False,
        **SIZED[cls],
    )
    assert len(tuner.oracle.hyperparameters.space) == 2
    new_lr = [p for p in tuner.oracle.hyperparameters.space if p.name == "learning_rate"][0]
    assert new_lr.values == [0.01, 0.001, 0.0001]
    _search(tuner)
    assert len(tuner.oracle.trials) == TRIALS
    assert len(tuner.oracle.hyperparameters.space) == 2  # Nothing added
    for trial in tuner.oracle.trials.values():
        assert len(trial.hyperparameters.space) >= 2


@TUNERS
def test_restricted_space_with_custom_defaults(tmp_path, cls):
    hp = keras_tuner.HyperParameters()
    hp.Int("num_layers", 1, 3, 1, default=2)
    hp.Choice("learning_rate", [0.01, 0.001, 0.0001])
    hp.Fixed("units_0", 4)
    hp.Fixed("units_1", 3)
    tuner = cls(
        build_model,
        objective="val_accuracy",
        directory=tmp_path,
        hyperparameters=hp,
        allow_new_entries=True,
        tune_new_entries=False,
        **SIZED[cls],
    )
    assert len(tuner.oracle.hyperparameters.space) == 4
    _search(tuner)
    assert len(tuner.oracle.trials) == TRIALS


@TUNERS
def test_reparameterized_space(tmp_path, cls):
    hp = keras_tuner.HyperParameters()
    hp.Int("num_layers", 1, 3, 1, default=3)
    hp.Choice("learning_rate", [0.01, 0.001, 0.0001])
    tuner = cls(
        build_model,
        seed=1337,
        objective="val_accuracy",
        directory=tmp_path,
        hyperparameters=hp,
        allow_new_entries=True,
        tune_new_entries=True,
        **SIZED[cls],
    )
    assert len(tuner.oracle.hyperparameters.space) == 5  # the initial build adds to the space
    _search(tuner)
    assert len(tuner.oracle.trials) == TRIALS
    assert len(tuner.oracle.hyperparameters.space) == 5


@TUNERS
def test_get_best_models(tmp_path, cls):
    tuner = cls(build_model, objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    _search(tuner)
    models = tuner.get_best_models(2)
    assert len(models) == 2
    assert isinstance(models[0], keras.Model)
    assert isinstance(models[1], keras.Model)


@TUNERS
def test_saving_and_reloading(tmp_path, cls):
    tuner = cls(build_model, objective="val_accuracy", executions_per_trial=2, directory=tmp_path, **SIZED[cls])
    _search(tuner)
    new_tuner = cls(build_model, objective="val_accuracy", executions_per_trial=2, directory=tmp_path, **SIZED[cls])
    new_tuner.reload()
    assert len(new_tuner.oracle.trials) == TRIALS
    _search(new_tuner)
    assert len(new_tuner.oracle.trials) == TRIALS  # not in KerasTuner's test: the finished search runs no more


@TUNERS
def test_subclass_model(tmp_path, cls):
    tuner = cls(build_subclass_model, objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    tuner.search_space_summary()
    _search(tuner)
    tuner.results_summary()
    assert len(tuner.oracle.trials) == TRIALS


@TUNERS
def test_subclass_model_loading(tmp_path, cls):
    tuner = cls(build_subclass_model, objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    tuner.search_space_summary()
    _search(tuner)
    best_trial_score = tuner.oracle.get_best_trials()[0].score
    best_model = tuner.get_best_models()[0]
    best_model_score = best_model.evaluate(VAL_INPUTS, VAL_TARGETS, verbose=0)[1]
    assert best_model_score == best_trial_score


@TUNERS
def test_get_best_hyperparameters(tmp_path, cls):
    hp1 = keras_tuner.HyperParameters()
    hp1.Fixed("a", 1)
    trial1 = keras_tuner.engine.trial.Trial(hyperparameters=hp1)
    trial1.status = "COMPLETED"
    trial1.score = 10
    hp2 = keras_tuner.HyperParameters()
    hp2.Fixed("a", 2)
    trial2 = keras_tuner.engine.trial.Trial(hyperparameters=hp2)
    trial2.status = "COMPLETED"
    trial2.score = 9
    tuner = cls(objective="val_accuracy", hypermodel=build_model, directory=tmp_path, **SIZED[cls])
    tuner.oracle.trials = {trial1.trial_id: trial1, trial2.trial_id: trial2}
    assert tuner.get_best_hyperparameters()[0]["a"] == 1


@TUNERS
def test_reloading_error_message(tmp_path, cls):
    tuner = cls(build_model, objective="val_accuracy", executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    _search(tuner)
    with pytest.raises(RuntimeError, match="pass `overwrite=True`"):
        keras_tuner.tuners.BayesianOptimization(
            build_model, objective="val_accuracy", max_trials=2, executions_per_trial=3, directory=tmp_path
        )
    # Not in KerasTuner's test: the other way round, and one of ktsearch's tuners over the other's project.
    other = search.ASHA if cls is search.BOHB else search.BOHB
    with pytest.raises(RuntimeError, match="pass `overwrite=True`"):
        other(build_model, objective="val_accuracy", directory=tmp_path, **SIZED[other])
    plain = tmp_path / "plain"
    keras_tuner.tuners.RandomSearch(build_model, objective="val_accuracy", max_trials=1, directory=plain).search(
        TRAIN_INPUTS, TRAIN_TARGETS, epochs=1, validation_data=(VAL_INPUTS, VAL_TARGETS), verbose=0
    )
    with pytest.raises(RuntimeError, match="pass `overwrite=True`"):
        cls(build_model, objective="val_accuracy", directory=plain, **SIZED[cls])


@TUNERS
def test_search_logging_verbosity(tmp_path, cls):
    tuner = cls(build_model, objective="val_accuracy", executions_per_trial=3, directory=tmp_path, **SIZED[cls])
    with patch("sys.stdout", new=StringIO()) as output:
        _search(tuner, verbose=0)
        assert output.getvalue().strip() == ""


@TUNERS
def test_tuning_correctness(tmp_path, cls):
    # KerasTuner's: keras_tuner.Tuner(oracle=RandomSearchOracle(objective="loss", max_trials=2, seed=1337), ...).
    tuner = cls(objective="loss", seed=1337, hypermodel=MockHyperModel(), directory=tmp_path, **SIZED[cls])
    tuner.search()
    assert len(tuner.oracle.trials) == 2
    m0_epochs = [float(np.average(x)) for x in MockHyperModel.mode_0]
    m1_epochs = [float(np.average(x)) for x in MockHyperModel.mode_1]
    first_trial, second_trial = sorted(tuner.oracle.trials.values(), key=lambda t: t.score)
    assert first_trial.score == min(m0_epochs)
    assert second_trial.score == min(m1_epochs)
    assert tuner.oracle.get_best_trials(1)[0].trial_id == first_trial.trial_id


def assert_found_best_score(tmp_path, hypermodel, tuner_class):
    # KerasTuner's takes `keras_tuner.Tuner` (or a subclass) over a RandomSearchOracle; here ktsearch's tuners.
    base = tuner_class if tuner_class in SIZED else tuner_class.__mro__[1]
    tuner = tuner_class(objective="loss", seed=1337, hypermodel=hypermodel, directory=tmp_path, **SIZED[base])
    tuner.search(callbacks=[])
    assert tuner.oracle.get_best_trials(1)[0].score == 3.0


@TUNERS
def test_hypermodel_fit_return_a_dict(tmp_path, cls):
    class MyHyperModel(MockHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            history = super().fit(hp, model, *args, **kwargs)
            return {"loss": min(history.history["loss"]), "other_metric": np.random.rand()}

    assert_found_best_score(tmp_path, MyHyperModel(), cls)


@TUNERS
def test_hypermodel_fit_return_a_float(tmp_path, cls):
    class MyHyperModel(MockHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            return min(super().fit(hp, model, *args, **kwargs).history["loss"])

    assert_found_best_score(tmp_path, MyHyperModel(), cls)


@TUNERS
def test_hypermodel_fit_return_an_int(tmp_path, cls):
    class MyHyperModel(MockHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            return int(min(super().fit(hp, model, *args, **kwargs).history["loss"]))

    assert_found_best_score(tmp_path, MyHyperModel(), cls)


@TUNERS
def test_run_trial_return_none_without_update_trial(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            self.hypermodel.build(trial.hyperparameters).fit(*fit_args, **fit_kwargs)

    with pytest.raises(errors.FatalTypeError, match="Did you forget"):
        assert_found_best_score(tmp_path, MockHyperModel(), MyTuner)


@TUNERS
def test_run_trial_return_none_with_update_trial(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            history = self.hypermodel.build(trial.hyperparameters).fit(*fit_args, **fit_kwargs)
            self.oracle.update_trial(trial.trial_id, {"loss": min(history.history["loss"])})

    with pytest.deprecated_call(match="Please remove the call"):
        assert_found_best_score(tmp_path, MockHyperModel(), MyTuner)


@TUNERS
def test_run_trial_return_history(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            return self.hypermodel.build(trial.hyperparameters).fit(*fit_args, **fit_kwargs)

    assert_found_best_score(tmp_path, MockHyperModel(), MyTuner)


@TUNERS
def test_run_trial_return_a_dict(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            history = self.hypermodel.build(trial.hyperparameters).fit(*fit_args, **fit_kwargs)
            return {"loss": min(history.history["loss"])}

    assert_found_best_score(tmp_path, MockHyperModel(), MyTuner)


@TUNERS
def test_run_trial_return_a_float(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            history = self.hypermodel.build(trial.hyperparameters).fit(*fit_args, **fit_kwargs)
            return min(history.history["loss"])

    assert_found_best_score(tmp_path, MockHyperModel(), MyTuner)


@TUNERS
def test_run_trial_return_float_list(tmp_path, cls):
    class MyTuner(cls):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            ret = []
            for _ in range(3):
                history = self.hypermodel.build(trial.hyperparameters).fit(*fit_args, **fit_kwargs)
                ret.append(min(history.history["loss"]))
            return ret

    assert_found_best_score(tmp_path, MockHyperModel(), MyTuner)


@TUNERS
def test_tuner_errors(tmp_path, cls):
    # KerasTuner's first case (an `oracle` that is not an Oracle) does not apply: these tuners build their own.
    # Its searches run 3 trials (max_trials=3), as many as the failures KerasTuner allows in a row.
    with pytest.raises(ValueError, match="`hypermodel` argument should be either"):
        cls(objective="val_accuracy", hypermodel="build_model", directory=tmp_path, **SIZED[cls])
    three = {"max_trials": 3} if cls is search.ASHA else {"hyperband_iterations": 3}
    with pytest.raises(RuntimeError, match="Oversized model"):
        tuner = cls(
            objective="val_accuracy",
            hypermodel=build_model,
            max_model_size=4,
            directory=tmp_path,
            **{**SIZED[cls], **three},
        )
        tuner.search(TRAIN_INPUTS, TRAIN_TARGETS, validation_data=(VAL_INPUTS, VAL_TARGETS))


@pytest.mark.parametrize("make", (BohbOracle, AshaOracle), ids=("BohbOracle", "AshaOracle"))
def test_metric_direction_inferred_from_objective(tmp_path, make):
    # KerasTuner's runs RandomSearchOracle(objective=..., max_trials=1); here ktsearch's oracles.
    for name, direction in (("untitled_project", "max"), ("untitled_project2", "min")):
        oracle = make(objective=keras_tuner.Objective("a", direction), max_epochs=1)
        private_api.attach_project(oracle, str(tmp_path), name)
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"a": 1})
        trial = oracle.get_trial(trial.trial_id)
        assert trial.metrics.get_direction("a") == direction


@TUNERS
def test_overwrite_true(tmp_path, cls):
    tuner = cls(hypermodel=build_model, objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    _search(tuner)
    assert len(tuner.oracle.trials) == TRIALS
    new_tuner = cls(hypermodel=build_model, objective="val_accuracy", directory=tmp_path, overwrite=True, **SIZED[cls])
    assert len(new_tuner.oracle.trials) == 0


@TUNERS
def test_correct_display_trial_number(tmp_path, cls):
    # KerasTuner's raises max_trials from 2 to 6 on the reload; here the search's size key (ASHA's max_trials,
    # BOHB's hyperband_iterations) from 2 to 6 trials.
    tuner = cls(hypermodel=build_model, objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    _search(tuner)
    more = {"max_trials": 6} if cls is search.ASHA else {"hyperband_iterations": 6}
    new_tuner = cls(
        hypermodel=build_model, objective="val_accuracy", directory=tmp_path, overwrite=False, **{**SIZED[cls], **more}
    )
    _search(new_tuner)
    assert len(new_tuner.oracle.trials) == 6  # not in KerasTuner's test
    assert len(new_tuner.oracle.trials) == max(new_tuner.oracle._display.trial_number.values())


@TUNERS
def test_error_on_unknown_objective_direction(tmp_path, cls):
    with pytest.raises(ValueError, match="Could not infer optimization direction"):
        cls(hypermodel=build_model, objective="custom_metric", directory=tmp_path, **SIZED[cls])


@TUNERS
def test_callbacks_run_each_execution(tmp_path, cls):
    callback_instances = set()

    class LoggingCallback(keras.callbacks.Callback):
        def on_train_begin(self, logs):
            callback_instances.add(id(self))

    tuner = cls(
        hypermodel=build_model, objective="val_accuracy", executions_per_trial=3, directory=tmp_path, **SIZED[cls]
    )
    _search(tuner, callbacks=[LoggingCallback()])
    # KerasTuner's allows 5 or 6 ("unknown reason"); each of the 2 trials runs 3 executions, each with its copy.
    assert len(callback_instances) in {5, 6}


@TUNERS
def test_build_and_fit_model(tmp_path, cls):
    class MyTuner(cls):
        def _build_and_fit_model(self, trial, *args, **kwargs):
            self.was_called = True
            return super()._build_and_fit_model(trial, *args, **kwargs)

    tuner = MyTuner(
        hypermodel=build_model, objective="val_accuracy", executions_per_trial=3, directory=tmp_path, **SIZED[cls]
    )
    tuner.run_trial(
        tuner.oracle.create_trial("tuner0"), TRAIN_INPUTS, TRAIN_TARGETS, validation_data=(VAL_INPUTS, VAL_TARGETS)
    )
    assert tuner.was_called


@TUNERS
def test_init_build_all_hps_in_all_conditions(tmp_path, cls):
    class ConditionalHyperModel(MockHyperModel):
        def build(self, hp):
            model_type = hp.Choice("model_type", ["cnn", "mlp"])
            with hp.conditional_scope("model_type", ["cnn"]):
                if model_type == "cnn":
                    sub_cnn = hp.Choice("sub_cnn", ["a", "b"])
                    with hp.conditional_scope("sub_cnn", ["a"]):
                        if sub_cnn == "a":
                            hp.Int("n_filters_a", 2, 4)
                    with hp.conditional_scope("sub_cnn", ["b"]):
                        if sub_cnn == "b":
                            hp.Int("n_filters_b", 6, 8)
            with hp.conditional_scope("model_type", ["mlp"]):
                if model_type == "mlp":
                    sub_mlp = hp.Choice("sub_mlp", ["a", "b"])
                    with hp.conditional_scope("sub_mlp", ["a"]):
                        if sub_mlp == "a":
                            hp.Int("n_units_a", 2, 4)
                    with hp.conditional_scope("sub_mlp", ["b"]):
                        if sub_mlp == "b":
                            hp.Int("n_units_b", 6, 8)
            more_block = hp.Boolean("more_block", default=False)
            with hp.conditional_scope("more_block", [True]):
                if more_block:
                    hp.Int("new_block_hp", 1, 3)
            return super().build(hp)

    def name_in_hp(name, hp):
        return any(name == single_hp.name for single_hp in hp.space)

    class MyTuner(cls):
        def _populate_initial_space(self):
            super()._populate_initial_space()
            hp = self.oracle.hyperparameters
            for name in ("model_type", "sub_cnn", "n_filters_a", "n_filters_b", "sub_mlp", "n_units_a", "n_units_b"):
                assert name_in_hp(name, hp)
            assert name_in_hp("more_block", hp)
            assert name_in_hp("new_block_hp", hp)
            self.checked = True

    tuner = MyTuner(objective="loss", seed=1337, hypermodel=ConditionalHyperModel(), directory=tmp_path, **SIZED[cls])
    assert tuner.checked  # not in KerasTuner's test: the override ran


@TUNERS
def test_populate_initial_space_with_hp_parent_arg(tmp_path, cls):
    def build_model(hp):
        hp.Boolean("parent", default=True)
        hp.Boolean("child", parent_name="parent", parent_values=[False])
        return keras.Sequential()

    tuner = cls(build_model, objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    assert "parent" in tuner.oracle.get_space().values  # not in KerasTuner's test


@TUNERS
def test_populate_initial_space_with_declare_hp(tmp_path, cls):
    class MyHyperModel(keras_tuner.HyperModel):
        def declare_hyperparameters(self, hp):
            hp.Boolean("bool")

        def build(self, hp):
            return keras.Sequential()

    tuner = cls(MyHyperModel(), objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    assert "bool" in tuner.oracle.get_space().values  # not in KerasTuner's test


@TUNERS
def test_build_did_not_return_keras_model(tmp_path, cls):
    tuner = cls(hypermodel=lambda hp: None, objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    with pytest.raises(errors.FatalTypeError, match="Expected the model-building function"):
        tuner.search()


@TUNERS
def test_callback_cannot_be_deep_copied(tmp_path, cls):
    tuner = cls(hypermodel=lambda hp: keras.Sequential(), objective="val_accuracy", directory=tmp_path, **SIZED[cls])
    with pytest.raises(errors.FatalValueError, match="All callbacks used during a search should be deep-copyable"):
        tuner.search(callbacks=[keras_tuner])
