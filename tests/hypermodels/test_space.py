import keras_tuner as kt
import pytest

from hypermodels.dimensions import AUGMENTATION, CNN_MODEL, SCHEDULE, SearchSpace
from hypermodels.notation import Choice, Fixed, Range, SpaceError, Spec, declare, parse_dimension

ROT = AUGMENTATION["rotation_range"]
WARMUP = SCHEDULE["warmup_epochs"]


@pytest.mark.parametrize(
    "raw, spec, expected",
    [
        (30, ROT, Fixed(30.0)),
        ({"min": 0, "max": 30}, ROT, Range(0.0, 30.0)),
        ({"min": 0, "max": 30, "step": 5}, ROT, Range(0.0, 30.0, 5)),
        ({"min": 1.0e-4, "max": 1.0e-2, "sampling": "log"}, SCHEDULE["initial_lr"], Range(1e-4, 1e-2, None, "log")),
        ({"min": 0, "max": 2}, WARMUP, Range(0, 2, integer=True)),
        ({"choice": [False, True]}, AUGMENTATION["horizontal_flip"], Choice((False, True))),
        (
            {"choice": ["none", "after_activation"]},
            Spec("enum", "none", options=("none", "after_activation")),
            Choice(("none", "after_activation")),
        ),
        (None, ROT, None),
        ({"min": 5, "max": 5}, ROT, Fixed(5.0)),
    ],
)
def test_notation_parses(raw, spec, expected):
    assert parse_dimension(raw, spec, "k") == expected


@pytest.mark.parametrize(
    "raw, spec, fragment",
    [
        ({"min": 30, "max": 0}, ROT, "min <= max"),
        ({"min": 0, "max": 30, "sampling": "log"}, ROT, "log sampling needs min > 0"),
        ({"choice": []}, ROT, "non-empty list"),
        ({"mni": 0, "max": 3}, ROT, "did you mean 'min'"),
        ("thirty", ROT, "expected a number"),
        (1.5, WARMUP, "expected an integer"),
        (-1, ROT, ">= 0"),
        (None, SCHEDULE["kind"], "cannot be switched off"),
        ({"min": 0, "max": 1, "sampling": "logarithmic"}, ROT, "expected linear or log"),
        ([0, 30], ROT, "got a list"),
        ({"choice": [1, 1]}, ROT, "distinct"),
        ("cosin", SCHEDULE["kind"], "did you mean 'cosine'"),
    ],
)
def test_bad_notation_names_the_problem(raw, spec, fragment):
    with pytest.raises(SpaceError) as err:
        parse_dimension(raw, spec, "section.key")
    assert fragment in str(err.value)
    assert err.value.key.startswith("section.key")


def test_declare_maps_to_keras_tuner_types():
    hp = kt.HyperParameters()
    declare(hp, "a.int", Range(0, 4, integer=True))
    declare(hp, "a.float", Range(0.0, 1.0, sampling="linear"))
    declare(hp, "a.bool", Choice((False, True)))
    declare(hp, "a.enum", Choice(("x", "y")))
    declare(hp, "a.fixed", Fixed(0.5))
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {"a.int": "Int", "a.float": "Float", "a.bool": "Boolean", "a.enum": "Choice", "a.fixed": "Fixed"}
    assert hp.values["a.bool"] is False  # not 0: booleans stay booleans in trial.json and exports


def test_schedule_parameters_are_conditional_on_kind():
    space = SearchSpace(
        {"schedule": {"kind": {"choice": ["constant", "step"]}, "drop_epoch": {"min": 2, "max": 4}}},
        CNN_MODEL,
    )
    hp = kt.HyperParameters()
    hp.values["schedule.kind"] = "constant"
    values = space.declare(hp)
    assert "schedule.drop_epoch" not in values
    assert not hp.is_active("schedule.drop_epoch")
    conditional = {p.name: [c.values for c in p.conditions] for p in hp.space if p.conditions}
    assert conditional == {"schedule.drop_epoch": [["step"]], "schedule.drop_factor": [["step"]]}
    hp.values.update({"schedule.kind": "step", "schedule.drop_epoch": 3, "schedule.drop_factor": 0.1})
    assert hp.is_active("schedule.drop_epoch")
    assert space.values(hp)["schedule.drop_epoch"] == 3


def test_parameters_of_a_kind_never_chosen_are_rejected():
    with pytest.raises(SpaceError, match="schedule.kind never takes 'exponential'"):
        SearchSpace({"schedule": {"kind": "constant", "decay_rate": 0.5}}, CNN_MODEL)


def test_step_without_drop_epoch_is_rejected():
    with pytest.raises(SpaceError, match="schedule.drop_epoch: missing"):
        SearchSpace({"schedule": {"kind": "step"}}, CNN_MODEL)


def test_unknown_section_and_key_get_a_hint():
    with pytest.raises(SpaceError, match="did you mean 'augmentation'"):
        SearchSpace({"augmentaton": {}}, CNN_MODEL)
    with pytest.raises(SpaceError, match=r"augmentation.rotation_rang: unknown key \(did you mean 'rotation_range'"):
        SearchSpace({"augmentation": {"rotation_rang": 3}}, CNN_MODEL)
