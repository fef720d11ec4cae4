"""Every private Keras/KerasTuner name ktsearch relies on still exists (fails loudly on an upgrade)."""

import keras
import keras_tuner as kt
import pytest

from hypermodels import private_api


def test_every_private_name_ktsearch_uses_exists():
    problems = private_api.check()
    assert not problems, "private APIs ktsearch depends on are gone:\n" + "\n".join(problems)


def test_a_missing_name_is_reported_with_module_attribute_and_versions(monkeypatch):
    monkeypatch.setattr(private_api, "REQUIRED", (("keras_tuner.src.engine.oracle", "Oracle._gone"),))
    (problem,) = private_api.check()
    assert problem.startswith("keras_tuner.src.engine.oracle.Oracle._gone: missing")
    assert private_api.KERAS_TUNER_PINNED in problem and kt.__version__ in problem


def _has(obj, names, what):
    missing = [n for n in names if not hasattr(obj, n)]
    assert not missing, f"{what} lacks {', '.join(missing)} (hypermodels/private_api.py depends on it)"


def _variables():
    return [keras.Variable(keras.ops.zeros((3,)), name="w"), keras.Variable(keras.ops.zeros((2, 2)), name="k")]


def test_instance_attributes_exist_on_real_objects(tmp_path, monkeypatch):
    adam = keras.optimizers.Adam()
    variables = _variables()
    adam.build(variables)
    _has(adam, private_api.REQUIRED_INSTANCE["keras.optimizers.Adam (built)"], "Adam")
    m, v = private_api.adam_slots(adam, variables[1])
    assert m.shape == v.shape == (2, 2)
    sgd = keras.optimizers.SGD(momentum=0.9)
    sgd.build(variables)
    _has(sgd, private_api.REQUIRED_INSTANCE["keras.optimizers.SGD (built, momentum > 0)"], "SGD")
    assert private_api.sgd_momentum(sgd, variables[0]).shape == (3,)

    model = keras.Sequential([keras.layers.Dense(2)])
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    model.compile(optimizer="sgd", loss=loss, metrics=["mae"])
    _has(model, private_api.REQUIRED_INSTANCE["keras.Model (compiled)"], "Model")
    arguments = private_api.compile_arguments(model)
    assert arguments["loss"] is loss and arguments["metrics"] == ["mae"] and arguments["optimizer"] is model.optimizer
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    scheduled = keras.optimizers.Adam(schedule)
    _has(scheduled, private_api.REQUIRED_INSTANCE["keras.optimizers.Optimizer (with a LearningRateSchedule)"], "Adam")
    assert private_api.learning_rate_schedule(scheduled) is schedule
    assert private_api.learning_rate_schedule(adam) is None and private_api.learning_rate_schedule(None) is None

    hp = kt.HyperParameters()
    hp.Int("x", 0, 9)
    oracle = kt.oracles.HyperbandOracle(objective="val_accuracy", max_epochs=3, hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "p")
    _has(oracle, private_api.REQUIRED_INSTANCE["keras_tuner Oracle"], "Oracle")
    _has(oracle, private_api.REQUIRED_INSTANCE["keras_tuner HyperbandOracle"], "HyperbandOracle")
    assert private_api.project_dir(oracle) == str(tmp_path / "p")
    assert private_api.retry_queue(oracle) == []
    assert isinstance(private_api.brackets_in_progress(oracle), list)
    bayesian = kt.oracles.BayesianOptimizationOracle(objective="val_accuracy", max_trials=2, hyperparameters=hp)
    _has(
        bayesian, private_api.REQUIRED_INSTANCE["keras_tuner BayesianOptimizationOracle"], "BayesianOptimizationOracle"
    )

    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "1")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker-test")
    client = private_api.oracle_client_class()(oracle)  # makes a channel; connects lazily, never here
    _has(client, private_api.REQUIRED_INSTANCE["keras_tuner OracleClient"], "OracleClient")
    assert private_api.wrapped_oracle(client) is oracle
    servicer = private_api.oracle_servicer_class()(oracle)
    _has(servicer, private_api.REQUIRED_INSTANCE["keras_tuner OracleServicer"], "OracleServicer")
    assert private_api.servicer_stopped(servicer) is False


def test_failure_limit_is_told_apart_from_other_runtime_errors():
    hp = kt.HyperParameters()
    hp.Int("x", 0, 9)
    oracle = kt.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=5, hyperparameters=hp)
    oracle.max_consecutive_failed_trials = 1
    trial = kt.engine.trial.Trial(hp, trial_id="0", status="FAILED")
    oracle.trials["0"] = trial
    oracle.end_order.append("0")
    with pytest.raises(RuntimeError) as raised:
        oracle._check_consecutive_failures()
    assert private_api.is_failure_limit(raised.value)
    assert not private_api.is_failure_limit(RuntimeError("something else"))
    assert not private_api.is_failure_limit(ValueError("consecutive failures exceeded"))
