"""ktsearch's dimensions as `hp` helpers (`hypermodels.augmentation`, `lr_schedule`, `conv_bn_act`), and the
arguments `search.BOHB` / `search.ASHA` refuse: names, domains, the curve, one-line errors."""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import pytest
import yaml

import hypermodels
import search
from hypermodels.dimensions import SCRIPT_DEFAULTS, SearchSpace
from hypermodels.notation import KtsearchError, SpaceError
from hypermodels.schedules import LRSchedule
from search.errors import ArgumentError
from tests.conftest import CONFIGS


def _space(hp) -> dict:
    return {p.name: p for p in hp.space}


def test_defaults_are_the_default_search_space():
    config = yaml.safe_load((CONFIGS / "mnist5k.yaml").read_text())["search_space"]
    for section, values in SCRIPT_DEFAULTS.items():
        assert values == config[section], section


def test_helpers_declare_ktsearch_names_and_domains_as_its_configs_do():
    hp = kt.HyperParameters()
    inputs = keras.Input((8, 8, 1))
    layer = hypermodels.augmentation(hp, rotation_range=(0, 30), zoom_range=0.1, horizontal_flip=[False, True])
    x = hypermodels.conv_bn_act(layer(inputs), 4, hp)
    schedule = hypermodels.lr_schedule(hp, steps_per_epoch=10, epochs=9)
    # The same declarations a ktsearch config of these ranges makes.
    config = SearchSpace(
        {
            "augmentation": {
                **SCRIPT_DEFAULTS["augmentation"],
                "rotation_range": {"min": 0, "max": 30},
                "zoom_range": 0.1,
            }
            | {"horizontal_flip": {"choice": [False, True]}},
            "batchnorm": SCRIPT_DEFAULTS["batchnorm"],
            "schedule": SCRIPT_DEFAULTS["schedule"],
        },
        {},
    )
    expected = kt.HyperParameters()
    config.declare(expected, ("augmentation", "batchnorm", "schedule"))
    assert {n: p.get_config() for n, p in _space(hp).items()} == {
        n: p.get_config() for n, p in _space(expected).items()
    }
    assert isinstance(layer, hypermodels.RandomAffine)  # zoom 0.1 is fixed: never the identity
    assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    assert keras.Model(inputs, x).count_params() > 0
    # A second block shares the model's placement, as in ktsearch's HyperModels.
    before = len(hp.space)
    hypermodels.conv_bn_act(x, 8, hp)
    assert len(hp.space) == before


def test_augmentation_is_the_identity_at_zero_strengths_and_random_affine_otherwise():
    hp = kt.HyperParameters()
    assert isinstance(
        hypermodels.augmentation(
            hp, rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0, zoom_range=0
        ),
        keras.layers.Identity,
    )
    hp = kt.HyperParameters()
    hp.Fixed("augmentation.rotation_range", 20.0)
    layer = hypermodels.augmentation(hp)
    assert isinstance(layer, hypermodels.RandomAffine) and layer.get_config()["rotation_range"] == 20.0


@pytest.mark.parametrize("kind", ("constant", "step", "exponential", "cosine"))
def test_lr_schedule_is_ktsearchs_curve_by_epoch(kind):
    hp = kt.HyperParameters()
    extra = {"drop_epoch": 4} if kind == "step" else {}
    schedule = hypermodels.lr_schedule(hp, steps_per_epoch=5, epochs=9, kind=kind, warmup_epochs=2, **extra)
    curve = LRSchedule.from_values(hp.values, horizon=9)
    got = [float(schedule(step)) for step in range(60)]
    want = [curve(step // 5) for step in range(60)]  # constant within an epoch, as ktsearch's own searches apply it
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # A continuation from epoch 3 (what search.BOHB and search.ASHA set) goes on along the same curve.
    schedule.start_epoch = 3
    np.testing.assert_allclose(
        [float(schedule(s)) for s in range(0, 30, 5)], [curve(3 + e) for e in range(6)], rtol=1e-6
    )
    restored = hypermodels.EpochSchedule.from_config(schedule.get_config())
    assert float(restored(7)) == pytest.approx(float(schedule(7)))


@pytest.mark.parametrize(
    "call, line",
    [
        (
            lambda hp: hypermodels.augmentation(hp, rotation_range=(0, 400)),
            "hypermodels.augmentation: augmentation.rotation_range.max: expected a value >= 0 and <= 180, got 400",
        ),
        (
            lambda hp: hypermodels.augmentation(hp, zoom_range=(0, 0.1, 0.2)),
            "hypermodels.augmentation(zoom_range=...): expected a (min, max) pair, got (0, 0.1, 0.2)",
        ),
        (
            lambda hp: hypermodels.augmentation(hp, fill_mode="mirror"),
            "hypermodels.augmentation: augmentation.fill_mode: expected one of constant, nearest, reflect, wrap, got 'mirror'",
        ),
        (
            lambda hp: hypermodels.lr_schedule(hp, steps_per_epoch=0, epochs=9),
            "hypermodels.lr_schedule(steps_per_epoch=...): expected an integer >= 1, got 0",
        ),
        (
            lambda hp: hypermodels.lr_schedule(hp, steps_per_epoch=5, epochs=2),
            "hypermodels.lr_schedule: schedule.warmup_epochs: expected warmup epochs below epochs=2",
        ),
        (
            lambda hp: hypermodels.lr_schedule(hp, steps_per_epoch=5, epochs=9, kind="cosine", drop_epoch=3),
            "hypermodels.lr_schedule: schedule.drop_epoch: set, but schedule.kind never takes 'step'",
        ),
        (
            lambda hp: hypermodels.lr_schedule(hp, steps_per_epoch=5, epochs=9, initial_lr=(0, 0.1)),
            "hypermodels.lr_schedule: schedule.initial_lr.min: expected a value > 0",
        ),
        (
            lambda hp: hypermodels.conv_bn_act(keras.Input((8, 8, 1)), 0, hp),
            "hypermodels.conv_bn_act(filters=...): expected an integer >= 1, got 0",
        ),
        (
            lambda hp: hypermodels.conv_bn_act(keras.Input((8, 8, 1)), 4, hp, placement="middle"),
            "hypermodels.conv_bn_act: batchnorm.placement: expected one of none, before_activation, after_activation",
        ),
    ],
)
def test_helpers_refuse_bad_arguments_in_one_line(call, line):
    with pytest.raises(SpaceError) as caught:
        call(kt.HyperParameters())
    assert str(caught.value).startswith(line) and "\n" not in str(caught.value)
    assert isinstance(caught.value, KtsearchError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "cls, kwargs, line",
    [
        (search.BOHB, {"factor": 1}, "search.BOHB: factor: expected an integer >= 2, got 1"),
        (search.BOHB, {"max_epochs": 0}, "search.BOHB: max_epochs: expected an integer >= 1, got 0"),
        (search.BOHB, {"hyperband_iterations": 1.5}, "search.BOHB: hyperband_iterations: expected an integer >= 1"),
        (search.BOHB, {"seed": -1}, "search.BOHB: seed: expected an integer >= 0, got -1"),
        (search.BOHB, {"random_fraction": 2}, "search.BOHB: random_fraction: expected a number >= 0 and <= 1, got 2"),
        (search.BOHB, {"top_fraction": 0}, "search.BOHB: top_fraction: expected a number > 0 and <= 1, got 0"),
        (search.ASHA, {"max_trials": 0}, "search.ASHA: max_trials: expected an integer >= 1, got 0"),
        (
            search.ASHA,
            {"grace_period": 20, "max_epochs": 9},
            "search.ASHA: grace_period: expected at most max_epochs (9)",
        ),
        (search.ASHA, {"max_consecutive_failed_trials": 0}, "search.ASHA: max_consecutive_failed_trials: expected"),
        (search.ASHA, {"hypermodel": None}, "search.ASHA: hypermodel: expected a function hp -> keras.Model"),
    ],
)
def test_tuners_refuse_bad_arguments_in_one_line(tmp_path, cls, kwargs, line):
    arguments = {"hypermodel": lambda hp: keras.Sequential(), "objective": "val_accuracy", "directory": tmp_path}
    with pytest.raises(ArgumentError) as caught:
        cls(**{**arguments, **kwargs})
    assert str(caught.value).startswith(line) and "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError) and not any(tmp_path.iterdir())  # nothing written
