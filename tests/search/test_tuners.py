"""The oracle's seeding, and the pool of compiled models reused across trials."""

import keras
import keras_tuner as kt
import numpy as np

from hypermodels.cnn import CNNHyperModel
from hypermodels.dimensions import CNN_MODEL, SearchSpace
from hypermodels.private_api import seed_keras
from search.algorithms import oracles
from search.config import DataConfig, load_config
from search.data.sources import load_splits, to_datasets
from search.distributed.role import Role
from search.engine.context import SearchRun
from search.engine.pool import ModelPool
from search.engine.seeding import oracle_seed
from search.engine.tuners import SingleRunTuner

SPACE = {"augmentation": {"rotation_range": {"min": 0, "max": 30}, "zoom_range": {"min": 0, "max": 0.2}}}


def _first_proposals(seed: int, n: int = 3) -> list[dict]:
    hp = kt.HyperParameters()
    SearchSpace(SPACE, CNN_MODEL).declare(hp)
    oracle = kt.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=n, seed=oracle_seed(seed), hyperparameters=hp
    )
    return [oracle.populate_space(str(i))["values"] for i in range(n)]


def test_same_seed_same_proposals_and_neighbouring_seeds_do_not_overlap():
    assert _first_proposals(1) == _first_proposals(1)
    one, two = _first_proposals(1), _first_proposals(2)
    # KerasTuner draws value k from Random(seed + k): raw seeds 1 and 2 would share all but one draw.
    searched = ("augmentation.rotation_range", "augmentation.zoom_range")
    drawn_one = {p[k] for p in one for k in searched}
    drawn_two = {p[k] for p in two for k in searched}
    assert drawn_one and not drawn_one & drawn_two
    assert oracle_seed(0) > 0  # KerasTuner would read 0 as "no seed"


POOL_SPACE = {
    "augmentation": {"rotation_range": {"min": 0, "max": 30}, "zoom_range": {"min": 0, "max": 0.2}},
    "batchnorm": {"placement": {"choice": ["none", "after_activation"]}},
    "schedule": {"kind": {"choice": ["constant", "cosine"]}, "initial_lr": {"min": 1e-4, "max": 1e-2}},
    "model": {"filters": 8, "dense_units": 16},
}


def _hp(hm, **values):
    hp = kt.HyperParameters()
    hm.build(hp)  # declares the space
    hp.values.update(values)
    return hp


def test_graph_key_ignores_runtime_values_and_keeps_structural_ones():
    hm = CNNHyperModel((8, 8, 1), 10, POOL_SPACE)
    base = {"augmentation.rotation_range": 20.0, "batchnorm.placement": "none", "schedule.kind": "constant"}
    key = hm.graph_key(_hp(hm, **base))
    runtime = {"augmentation.rotation_range": 3.0, "augmentation.zoom_range": 0.15, "schedule.initial_lr": 0.005}
    assert hm.graph_key(_hp(hm, **{**base, **runtime, "schedule.kind": "cosine", "tuner/epochs": 9})) == key
    assert hm.graph_key(_hp(hm, **{**base, "batchnorm.placement": "after_activation"})) != key
    # all ranges 0: no augmentation layer at all, another graph
    none = {"augmentation.rotation_range": 0.0, "augmentation.zoom_range": 0.0}
    assert hm.graph_key(_hp(hm, **{**base, **none})) != key


def test_a_trial_trained_in_a_reused_model_trains_exactly_as_in_a_fresh_one():
    splits = load_splits(DataConfig(source="digits"), seed=1)
    hm = CNNHyperModel(splits.input_shape, splits.num_classes, POOL_SPACE, lr_horizon=2, seed=0)
    first = _hp(hm, **{"augmentation.rotation_range": 25.0, "batchnorm.placement": "after_activation"})
    second = _hp(
        hm,
        **{
            "augmentation.rotation_range": 5.0,
            "augmentation.zoom_range": 0.2,
            "batchnorm.placement": "after_activation",
            "schedule.initial_lr": 0.005,
        },
    )

    def train(model, hp):
        train_ds, val_ds, _ = to_datasets(splits, 64, 0)  # a new pipeline: the same batch order each time
        return hm.fit(hp, model, train_ds, validation_data=val_ds, epochs=2, verbose=0).history

    pool = ModelPool(size=2)
    keras.utils.set_random_seed(11)
    kept = pool.adopt(hm.graph_key(first), hm.build(first))
    train(kept, first)

    keras.utils.set_random_seed(12)
    fresh = hm.build(second)
    initial = [np.array(v) for v in fresh.variables]
    reused = pool.adopt(hm.graph_key(second), fresh)
    assert reused is kept and pool.reused == 1
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(initial, reused.variables, strict=True))
    assert reused.get_layer("augmentation").rotation_range == 5.0
    assert int(reused.optimizer.iterations) == 0
    assert float(reused.optimizer.learning_rate) == np.float32(0.005)
    history = train(reused, second)

    keras.utils.set_random_seed(12)
    reference = train(hm.build(second), second)
    for metric, values in reference.items():
        np.testing.assert_allclose(history[metric], values, rtol=1e-5, err_msg=metric)


def test_pool_keeps_at_most_size_models_and_drops_the_least_recently_used():
    hm = CNNHyperModel((8, 8, 1), 10, POOL_SPACE)
    pool = ModelPool(size=1)
    a = _hp(hm, **{"batchnorm.placement": "none"})
    b = _hp(hm, **{"batchnorm.placement": "after_activation"})
    pool.adopt(hm.graph_key(a), hm.build(a))
    pool.adopt(hm.graph_key(b), hm.build(b))
    assert list(pool.models) == [hm.graph_key(b)]
    # a kept model that never trained has no optimizer state to overwrite: the fresh one is used
    fresh = hm.build(b)
    assert pool.adopt(hm.graph_key(b), fresh) is fresh and pool.reused == 0


def test_steps_per_execution_gives_the_same_training():
    splits = load_splits(DataConfig(source="digits"), seed=1)
    histories = []
    for steps in (1, 8):
        hm = CNNHyperModel(
            splits.input_shape, splits.num_classes, POOL_SPACE, lr_horizon=2, seed=0, steps_per_execution=steps
        )
        hp = _hp(hm, **{"batchnorm.placement": "after_activation"})
        keras.utils.set_random_seed(5)
        model = hm.build(hp)
        train_ds, val_ds, _ = to_datasets(splits, 64, 0)
        histories.append(hm.fit(hp, model, train_ds, validation_data=val_ds, epochs=2, verbose=0).history)
    assert len(splits.y_train) % (64 * 8)  # the last execution holds fewer batches
    for metric, values in histories[0].items():
        np.testing.assert_allclose(histories[1][metric], values, rtol=1e-5, err_msg=metric)


def test_trial_seeding_builds_the_weights_keras_seeding_builds():
    hm = CNNHyperModel((8, 8, 1), 10, POOL_SPACE)
    hp = _hp(hm, **{"batchnorm.placement": "after_activation"})

    def initial(seed, how):
        how(seed)
        model = hm.build(hp)
        return [np.array(v) for v in model.variables]  # weights and random-seed states

    ours, keras_own = initial(3, seed_keras), initial(3, keras.utils.set_random_seed)
    assert all(np.array_equal(a, b) for a, b in zip(ours, keras_own, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(ours, initial(4, seed_keras), strict=True))


def test_models_built_outside_a_trial_do_not_come_from_the_pool(tmp_path):
    hm = CNNHyperModel((8, 8, 1), 10, POOL_SPACE)
    run = SearchRun(
        load_config(
            {
                "name": "p",
                "results_dir": str(tmp_path),
                "tuner": {"reuse_models": 2, "algorithm": "random", "max_trials": 1},
            }
        ),
        "new",
        Role(),
    )
    oracle = oracles.make_oracle(run.config.tuner, kt.Objective("val_accuracy", "max"), seed=1)
    tuner = SingleRunTuner(oracle=oracle, hypermodel=hm, directory=str(tmp_path), run=run)
    hp = _hp(hm, **{"batchnorm.placement": "none"})
    # KerasTuner's load_model / get_best_models build through _try_build: each must get its own model
    assert tuner.build_trial_model(hp) is not tuner.build_trial_model(hp)
    assert tuner.pool.adopted == 0
