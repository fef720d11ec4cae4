"""KerasTuner's own Hyperband tests, run with `search.BOHB` and `search.ASHA` in place of `kt.Hyperband`.

Source: `keras_tuner/tuners/hyperband_test.py` of keras-team/keras-tuner (Apache License 2.0, Copyright 2019
The KerasTuner Authors), as released with KerasTuner 1.4.7 and 1.4.8 (unchanged since October 2023). Each
test keeps its name, with what changed said where it changed: the tuner class, and for ASHA the sizes,
since ASHA's rungs are not Hyperband's brackets. Not applicable, and why:

* `test_hyperband_oracle_bracket_configs`, `test_hyperband_oracle_one_sweep_single_thread`,
  `test_hyperband_oracle_one_sweep_parallel`: Hyperband's bracket arithmetic (`_get_num_brackets`,
  `_get_size`, `_get_epochs`, `_brackets`). They run unchanged on BOHB's oracle, which keeps Hyperband's
  brackets and changes only where new configurations come from; ASHA has rungs filled asynchronously
  instead, with tests of its own (`tests/search/test_algorithms.py`), and an ASHA version of the parallel
  sweep is below (`test_asha_oracle_parallel_promotions`).
"""

from __future__ import annotations

import keras_tuner
import numpy as np
import pytest
from keras_tuner.src import utils
from keras_tuner.src.backend import keras
from keras_tuner.src.engine import tuner_utils

import search
from hypermodels import private_api
from search.algorithms.asha import AshaOracle
from search.algorithms.bohb import BohbOracle
from search.errors import ArgumentError, KtsearchError

# Small searches, about a minute on 2 cores together, with Keras's steps run eagerly (`eager_keras`).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("eager_keras")]


INPUT_DIM = 5
TUNERS = (search.BOHB, search.ASHA)


def build_model(hp):
    model = keras.Sequential()
    for i in range(hp.Int("layers", 1, 3)):
        model.add(keras.layers.Dense(hp.Int(f"units{str(i)}", 1, 5), activation="relu"))
        model.add(keras.layers.Lambda(lambda x: x + hp.Float(f"bias{str(i)}", -1, 1)))  # noqa: B023 (as KerasTuner wrote it)
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.compile("sgd", "mse")
    return model


def _attach(oracle, tmp_path):
    private_api.attach_project(oracle, str(tmp_path), "untitled")
    return oracle


def test_hyperband_oracle_bracket_configs(tmp_path):
    # BOHB's oracle in place of HyperbandOracle: its brackets are Hyperband's.
    oracle = _attach(
        BohbOracle(objective=keras_tuner.Objective("score", "max"), hyperband_iterations=1, max_epochs=8, factor=2),
        tmp_path,
    )
    assert oracle._get_num_brackets() == 4
    assert oracle._get_num_rounds(bracket_num=3) == 4
    assert oracle._get_size(bracket_num=3, round_num=0) == 8
    assert oracle._get_epochs(bracket_num=3, round_num=0) == 1
    assert oracle._get_size(bracket_num=3, round_num=3) == 1
    assert oracle._get_epochs(bracket_num=3, round_num=3) == 8
    assert oracle._get_num_rounds(bracket_num=0) == 1
    assert oracle._get_size(bracket_num=0, round_num=0) == 4
    assert oracle._get_epochs(bracket_num=0, round_num=0) == 8


def test_hyperband_oracle_one_sweep_single_thread(tmp_path):
    # BOHB's oracle; its model proposes from the second bracket on (2 dimensions: 5 results per budget).
    hp = keras_tuner.HyperParameters()
    hp.Float("a", -100, 100)
    hp.Float("b", -100, 100)
    oracle = _attach(
        BohbOracle(
            hyperparameters=hp,
            objective=keras_tuner.Objective("score", "max"),
            hyperband_iterations=1,
            max_epochs=9,
            factor=3,
        ),
        tmp_path,
    )
    score = 0
    for bracket_num in reversed(range(oracle._get_num_brackets())):
        for round_num in range(oracle._get_num_rounds(bracket_num)):
            for _ in range(oracle._get_size(bracket_num, round_num)):
                trial = oracle.create_trial("tuner0")
                assert trial.status == "RUNNING"
                score += 1
                oracle.update_trial(trial.trial_id, {"score": score})
                trial.status = "COMPLETED"
                oracle.end_trial(trial)
            assert len(oracle._brackets[0]["rounds"][round_num]) == oracle._get_size(bracket_num, round_num)
        assert len(oracle._brackets) == 1
    trial = oracle.create_trial("tuner0")
    assert trial.status == "STOPPED", oracle.hyperband_iterations
    assert len(oracle.ongoing_trials) == 0
    assert len(oracle._brackets) == 0
    assert oracle.get_best_trials()[0].score == score
    assert any(p["by"] == "model" for p in oracle.proposals.values())  # BOHB's model did propose


def test_hyperband_oracle_one_sweep_parallel(tmp_path):
    # BOHB's oracle, unchanged otherwise.
    hp = keras_tuner.HyperParameters()
    hp.Float("a", -100, 100)
    hp.Float("b", -100, 100)
    oracle = _attach(
        BohbOracle(
            hyperparameters=hp,
            objective=keras_tuner.Objective("score", "max"),
            hyperband_iterations=1,
            max_epochs=4,
            factor=2,
        ),
        tmp_path,
    )
    round0_trials = []
    for i in range(10):
        t = oracle.create_trial(f"tuner{str(i)}")
        assert t.status == "RUNNING"
        round0_trials.append(t)
    assert len(oracle._brackets) == 3
    assert oracle.create_trial("tuner10").status == "IDLE"
    for t in round0_trials:
        oracle.update_trial(t.trial_id, {"score": 1})
        t.status = "COMPLETED"
        oracle.end_trial(t)
    round1_trials = []
    for i in range(4):
        t = oracle.create_trial(f"tuner{str(i)}")
        assert t.status == "RUNNING"
        round1_trials.append(t)
    assert len(oracle._brackets) == 2
    assert oracle.create_trial("tuner10").status == "IDLE"
    for t in round1_trials:
        oracle.update_trial(t.trial_id, {"score": 1})
        t.status = "COMPLETED"
        oracle.end_trial(t)
    round2_trial = oracle.create_trial("tuner0")
    assert len(oracle._brackets) == 1
    assert oracle.create_trial("tuner10").status == "IDLE"
    oracle.update_trial(round2_trial.trial_id, {"score": 1})
    round2_trial.status = "COMPLETED"
    oracle.end_trial(round2_trial)
    assert oracle.create_trial("tuner10").status == "STOPPED"


def test_asha_oracle_parallel_promotions(tmp_path):
    # Not in KerasTuner: the parallel sweep above, for ASHA's rungs (max_epochs 4, factor 2: rungs 1, 2, 4 epochs).
    hp = keras_tuner.HyperParameters()
    hp.Float("a", -100, 100)
    oracle = _attach(
        AshaOracle(
            hyperparameters=hp, objective=keras_tuner.Objective("score", "max"), max_epochs=4, factor=2, max_trials=4
        ),
        tmp_path,
    )
    assert oracle.rungs == [1, 2, 4]
    first = [oracle.create_trial(f"tuner{i}") for i in range(4)]
    assert all(t.status == "RUNNING" for t in first)
    assert oracle.create_trial("tuner9").status == "IDLE"  # no new configuration left; none to promote yet
    for score, t in zip((1, 4, 2, 3), first, strict=True):
        oracle.update_trial(t.trial_id, {"score": score})
        t.status = "COMPLETED"
        oracle.end_trial(t)
    promoted = [oracle.create_trial(f"tuner{i}") for i in range(2)]  # the top half of rung 0: scores 4 and 3
    assert [p.hyperparameters.values["tuner/trial_id"] for p in promoted] == [first[1].trial_id, first[3].trial_id]
    assert all(p.hyperparameters.values["tuner/epochs"] == 2 for p in promoted)
    for score, t in zip((5, 6), promoted, strict=True):
        oracle.update_trial(t.trial_id, {"score": score})
        t.status = "COMPLETED"
        oracle.end_trial(t)
    top = oracle.create_trial("tuner0")
    assert top.hyperparameters.values["tuner/trial_id"] == promoted[1].trial_id
    assert top.hyperparameters.values["tuner/epochs"] == 4
    oracle.update_trial(top.trial_id, {"score": 7})
    top.status = "COMPLETED"
    oracle.end_trial(top)
    assert oracle.create_trial("tuner0").status == "STOPPED"


@pytest.mark.parametrize("cls", TUNERS, ids=lambda c: c.__name__)
def test_hyperband_integration(tmp_path, cls):
    # ASHA takes the same arguments; `hyperband_iterations` sizes its new configurations as Hyperband's.
    tuner = cls(
        objective="val_loss",
        hypermodel=build_model,
        hyperband_iterations=2,
        max_epochs=6,
        factor=3,
        directory=tmp_path,
    )
    x, y = np.ones((2, INPUT_DIM)), np.ones((2, 1))
    tuner.search(x, y, validation_data=(x, y))
    updated_hps = tuner.oracle.get_space().values
    assert "units1" in updated_hps
    assert "bias1" in updated_hps
    best_score = tuner.oracle.get_best_trials()[0].score
    best_model = tuner.get_best_models()[0]
    assert best_model.evaluate(x, y) == best_score
    continued = [t for t in tuner.oracle.trials.values() if "tuner/trial_id" in t.hyperparameters.values]
    assert continued  # not in KerasTuner's test: continuations ran


@pytest.mark.parametrize("cls", TUNERS, ids=lambda c: c.__name__)
def test_hyperband_save_and_restore(tmp_path, cls):
    tuner = cls(
        objective="val_loss",
        hypermodel=build_model,
        hyperband_iterations=1,
        max_epochs=7,
        factor=2,
        directory=tmp_path,
    )
    x, y = np.ones((2, INPUT_DIM)), np.ones((2, 1))
    tuner.search(x, y, validation_data=(x, y))
    num_trials = len(tuner.oracle.trials)
    assert num_trials > 0
    if cls is search.BOHB:  # Hyperband's iteration counter; ASHA has none (its state is its trials)
        assert tuner.oracle._current_iteration == 0
    before = {t.trial_id: t.score for t in tuner.oracle.trials.values()}
    tuner.save()
    tuner.trials = {}
    if cls is search.BOHB:
        tuner.oracle._current_iteration = 0
    tuner.reload()
    assert len(tuner.oracle.trials) == num_trials
    assert {t.trial_id: t.score for t in tuner.oracle.trials.values()} == before
    if cls is search.BOHB:
        assert tuner.oracle._current_iteration == 0


@pytest.mark.parametrize("cls", TUNERS, ids=lambda c: c.__name__)
def test_hyperband_load_weights(tmp_path, cls):
    tuner = cls(
        objective="val_loss",
        hypermodel=build_model,
        hyperband_iterations=1,
        max_epochs=2,
        factor=2,
        directory=tmp_path,
    )
    x, y = np.ones((2, INPUT_DIM)), np.ones((2, 1))
    if cls is search.BOHB:
        assert tuner.oracle._get_num_brackets() == 2
        nb_models_round_0 = tuner.oracle._get_size(bracket_num=1, round_num=0)
    else:  # ASHA: rungs of 1 and 2 epochs; the best of 2 completed is promoted before a new one starts
        assert tuner.oracle.rungs == [1, 2]
        nb_models_round_0 = 2
    assert nb_models_round_0 == 2
    for _ in range(nb_models_round_0):
        trial = tuner.oracle.create_trial("tuner0")
        result = tuner.run_trial(trial, x, y, validation_data=(x, y))
        tuner.oracle.update_trial(
            trial.trial_id,
            tuner_utils.convert_to_metrics_dict(result, tuner.oracle.objective),
            tuner_utils.get_best_step(result, tuner.oracle.objective),
        )
        trial.status = "COMPLETED"
        tuner.oracle.end_trial(trial)
    trial = tuner.oracle.create_trial("tuner0")
    hp = trial.hyperparameters
    assert "tuner/trial_id" in hp
    new_model = tuner._try_build(hp)
    assert new_model.predict(x).shape == y.shape
    new_model_weights = new_model.weights.copy()
    best_trial_round_0_id = hp["tuner/trial_id"]
    best_hp_round_0 = tuner.oracle.trials[best_trial_round_0_id].hyperparameters
    best_model_round_0 = tuner._try_build(best_hp_round_0)
    best_model_round_0.build_from_config(utils.load_json(tuner._get_build_config_fname(best_trial_round_0_id)))
    best_model_round_0.load_weights(tuner._get_checkpoint_fname(best_trial_round_0_id))
    assert best_model_round_0.predict(x).shape == y.shape
    best_model_round_0_weights = best_model_round_0.weights.copy()
    assert len(new_model_weights) == len(best_model_round_0_weights)
    assert all(
        np.all(np.array(new_weight) == np.array(best_old_weight))
        for new_weight, best_old_weight in zip(new_model_weights, best_model_round_0_weights, strict=True)
    )


@pytest.mark.parametrize("cls", TUNERS, ids=lambda c: c.__name__)
def test_factor_less_than_2_error(cls):
    # KerasTuner's oracle raises a ValueError "factor needs to be ..."; ktsearch's tuners an ArgumentError
    # (a ValueError too) naming the call and the argument.
    with pytest.raises(ArgumentError, match=f"search.{cls.__name__}: factor: expected an integer >= 2, got 1"):
        cls(objective=keras_tuner.Objective("score", "max"), hyperband_iterations=1, max_epochs=8, factor=1)
    assert issubclass(ArgumentError, ValueError) and issubclass(ArgumentError, KtsearchError)


def test_exhausted_values_during_init_bracket(tmp_path):
    # BOHB's oracle, unchanged otherwise; ASHA below.
    oracle = _attach(
        BohbOracle(objective=keras_tuner.Objective("score", "max"), hyperband_iterations=1, max_epochs=8, factor=3),
        tmp_path,
    )
    _exhaust(oracle)


def test_exhausted_values_asha(tmp_path):
    oracle = _attach(
        AshaOracle(objective=keras_tuner.Objective("score", "max"), max_epochs=8, factor=3, max_trials=5), tmp_path
    )
    _exhaust(oracle)


def _exhaust(oracle):
    hp = oracle.get_space()
    hp.Boolean("bool")
    oracle.update_space(hp)
    trial_1 = oracle.create_trial("a")
    trial_2 = oracle.create_trial("b")
    trial_3 = oracle.create_trial("c")
    assert trial_3.status == "IDLE"
    oracle.update_trial(trial_id=trial_1.trial_id, metrics={oracle.objective.name: np.random.rand()})
    oracle.end_trial(trial_1)
    oracle.update_trial(trial_id=trial_2.trial_id, metrics={oracle.objective.name: np.random.rand()})
    oracle.end_trial(trial_2)
    trial_1 = oracle.create_trial("a")
    assert trial_1.status == "STOPPED"
