"""A KerasTuner user's model as a ktsearch HyperModel (`hypermodels.wrapped`): its `hp` calls as dimensions, its
compile kept, the schedule on its learning rate, labels in either form. Real Keras models, no search."""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import pytest

from hypermodels.dimensions import USER_MODEL, SearchSpace
from hypermodels.notation import Choice, Fixed, Range, SpaceError
from hypermodels.wrapped import UserHyperModel, dimension_of, discover, is_user_model


def build_model(hp):
    model = keras.Sequential([keras.layers.Flatten()])
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            keras.layers.Dense(hp.Int(f"units_{i}", 32, 512, step=32), activation=hp.Choice("act", ["relu", "tanh"]))
        )
    model.add(keras.layers.Dense(4, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, sampling="log"), beta_1=0.8),
        loss="categorical_crossentropy",
        metrics=["mae"],
    )
    return model


def uncompiled(hp):
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(hp.Int("units", 4, 8)), keras.layers.Dense(4)])


def _wrapped(fn, raw=None, label_form="one_hot", **kw) -> UserHyperModel:
    return UserHyperModel(fn, (6, 6, 1), 4, SearchSpace(raw, USER_MODEL), label_form=label_form, lr_horizon=4, **kw)


def test_what_counts_as_a_users_model():
    assert is_user_model(build_model) and is_user_model(kt.HyperModel) and is_user_model(kt.HyperModel())
    from hypermodels.cnn import CNNHyperModel

    assert not is_user_model(CNNHyperModel) and not is_user_model(3)


def test_keras_tuner_hyperparameters_become_dimensions_with_their_domains():
    hp = kt.HyperParameters()
    hp.Int("a", 32, 512, step=32)
    hp.Float("b", 1e-4, 1e-2, sampling="log")
    hp.Float("c", 1e-4, 1e-2, sampling="reverse_log")
    hp.Choice("d", ["relu", "tanh"])
    hp.Boolean("e")
    hp.Fixed("f", 3)
    hp.Int("g", 1, 3)
    dims = {h.name: dimension_of(h) for h in hp.space}
    assert dims["a"][0] == Range(32, 512, 32, "linear", integer=True)
    assert dims["b"][0] == Range(1e-4, 1e-2, None, "log") and dims["c"][0] == Range(1e-4, 1e-2, None, "log")
    assert dims["d"][0] == Choice(("relu", "tanh")) and dims["d"][1].kind == "enum"
    assert dims["e"][0] == Choice((False, True)) and dims["e"][1].kind == "bool"
    assert dims["f"][0] == Fixed(3) and dims["g"][0] == Range(1, 3, None, "linear", integer=True)
    space = SearchSpace(None, USER_MODEL)
    assert discover(space, hp) == list("abcdefg") and discover(space, hp) == []
    again = SearchSpace(None, USER_MODEL)
    again.extend(space.user_records())  # what a run keeps, read back
    assert again.user_records() == space.user_records()
    assert space.notation()["model"]["a"] == {"min": 32, "max": 512, "step": 32, "sampling": "linear"}


def test_yaml_narrows_or_fixes_a_users_dimension_and_its_kind_comes_from_the_notation():
    space = SearchSpace({"model": {"units_0": {"min": 32, "max": 64, "step": 32}, "act": "relu"}}, USER_MODEL)
    assert space.dims["units_0"] == Range(32, 64, 32, "linear", integer=True) and space.dims["act"] == Fixed("relu")
    with pytest.raises(SpaceError, match="model.units_0"):
        SearchSpace({"model": {"units_0": {"min": 64, "max": 32}}}, USER_MODEL)
    hm = _wrapped(build_model, {"model": {"units_0": {"min": 32, "max": 64, "step": 32}, "act": "tanh"}})
    hp = kt.HyperParameters()
    hm.build(hp)
    declared = {h.name: h.get_config() for h in hp.space}
    assert (declared["units_0"]["min_value"], declared["units_0"]["max_value"]) == (32, 64)  # not the function's 512
    assert hp.values["act"] == "tanh" and declared["act"]["value"] == "tanh"  # fixed, over its Choice


def test_a_compiled_model_keeps_its_compile_and_the_schedule_starts_from_its_rate():
    hm = _wrapped(build_model, {"schedule": {"kind": "step", "drop_epoch": 2, "drop_factor": 0.5}})
    assert hm.compiles and "schedule.initial_lr" not in hm.space.dims  # their lr starts the schedule
    hp = kt.HyperParameters()
    model = hm.build(hp)
    assert isinstance(model.optimizer, keras.optimizers.Adam) and model.optimizer.beta_1 == pytest.approx(0.8)
    assert model.loss == "categorical_crossentropy"
    schedule = hm.schedule(hp)
    assert [schedule(e) for e in range(4)] == pytest.approx([1e-4, 1e-4, 5e-5, 5e-5])  # lr's default: its min
    x, y = np.random.rand(8, 6, 6, 1).astype("float32"), np.eye(4)[np.arange(8) % 4]
    history = hm.fit(hp, model, x, y, epochs=3, verbose=0)
    assert history.history["learning_rate"] == pytest.approx([1e-4, 1e-4, 5e-5])
    assert {"accuracy", "mae"} <= set(history.history)  # theirs, and the accuracy ktsearch ranks by
    assert hm.inference_model(model).layers[0].__class__.__name__ == "Flatten"  # theirs, no augmentation


def test_an_uncompiled_model_gets_the_loss_its_labels_need():
    for form, loss in (("index", "sparse_categorical_crossentropy"), ("one_hot", "categorical_crossentropy")):
        hm = _wrapped(uncompiled, label_form=form)
        assert not hm.compiles and "schedule.initial_lr" in hm.space.dims
        model = hm.build(kt.HyperParameters())
        assert model.loss == loss


def test_the_default_build_checks_output_width_labels_and_names():
    def wide(hp):
        return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(7)])

    with pytest.raises(ValueError, match="output has 7 values per image, but the data has 4 classes"):
        _wrapped(wide).check()
    x = np.zeros((2, 6, 6, 1), "float32")
    with pytest.raises(ValueError, match="do not fit labels given as class indices"):
        _wrapped(build_model, label_form="index").check((x, np.array([0, 1])))
    _wrapped(build_model).check((x, np.eye(4)[[0, 1]]))

    def collides(hp):
        hp.Float("augmentation.rotation_range", 0, 10)
        return build_model(hp)

    with pytest.raises(ValueError, match="declares augmentation.rotation_range, which is one of ktsearch's own"):
        _wrapped(collides).check()
    searched = _wrapped(build_model, {"batchnorm": {"placement": {"choice": ["none", "after_activation"]}}})
    assert "batchnorm.placement" in searched.unused() and not _wrapped(build_model).unused()


def test_an_optimizer_with_its_own_schedule_keeps_it():
    def scheduled(hp):
        model = uncompiled(hp)
        rate = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=10, decay_rate=0.5)
        model.compile(optimizer=keras.optimizers.Adam(rate), loss="categorical_crossentropy")
        return model

    hm = _wrapped(scheduled, {"schedule": {"kind": "cosine"}})
    hp = kt.HyperParameters()
    model = hm.build(hp)
    assert hm.compiles and hm.schedule(hp) is None  # no LearningRateScheduler over theirs
    x, y = np.random.rand(8, 6, 6, 1).astype("float32"), np.eye(4)[np.arange(8) % 4]
    hm.fit(hp, model, x, y, epochs=1, verbose=0)
    assert isinstance(model.optimizer.get_config()["learning_rate"], dict)
