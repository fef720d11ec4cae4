"""Config validation: defaults, locked keys, clear errors naming file and key, --set."""

from pathlib import Path

import pytest
import yaml

from search.config import load_config, load_export, parse_overrides
from search.errors import UserError
from tests.conftest import CONFIGS

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def _error(config, overrides=None) -> UserError:
    with pytest.raises(UserError) as err:
        load_config(config, overrides)
    return err.value


@pytest.mark.parametrize("name", ["mnist5k.yaml", "digits_smoke.yaml", "resnet.yaml"])
def test_shipped_search_configs_validate(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.space.searched(), "a shipped search config should search something"


def test_seed_recipe_is_the_classic_recipe():
    cfg = load_export(ROOT / "configs" / "seed_recipe.yaml")
    hp = cfg.resolved["hyperparameters"]
    assert hp["augmentation"] == {
        "rotation_range": 30,
        "width_shift_range": 0.2,
        "height_shift_range": 0.2,
        "shear_range": 0.2,
        "zoom_range": 0.2,
        "horizontal_flip": True,
        "vertical_flip": False,
        "fill_mode": "nearest",
        "cval": 0.0,
    }
    assert hp["batchnorm"]["placement"] == "after_activation"
    assert hp["schedule"] | {} == {
        "kind": "step",
        "initial_lr": 0.001,
        "warmup_epochs": 0,
        "drop_epoch": 10,
        "drop_factor": 0.1,
    }
    assert cfg.resolved["early_stopping"] == {"monitor": "val_loss", "patience": 3, "min_delta": 0.0}


def test_defaults_fill_every_key():
    cfg = load_config({"name": "x"})
    r = cfg.resolved
    assert r["tuner"] == {
        "algorithm": "hyperband",
        "objective": "val_accuracy",
        "max_epochs": 9,
        "factor": 3,
        "hyperband_iterations": 1,
        "time_budget": None,
        "max_consecutive_failed_trials": 3,
        "keep_checkpoints": None,
        "reuse_models": 4,
    }
    assert r["search_space"]["augmentation"]["fill_mode"] == "nearest"
    assert cfg.run_dir == Path("results/x")


@pytest.mark.parametrize(
    "text, key, fragment",
    [
        ("name: x\ntunner: {}\n", "tunner", "did you mean 'tuner'"),
        ("name: x\ndata: {sorce: digits}\n", "data.sorce", "did you mean 'source'"),
        ("name: x\ntuner: {max_epoch: 3}\n", "tuner.max_epoch", "did you mean 'max_epochs'"),
        (
            "name: x\nsearch_space: {schedule: {initial_rl: 0.1}}\n",
            "search_space.schedule.initial_rl",
            "did you mean 'initial_lr'",
        ),
        ("name: x\ntuner: {max_epochs: 0}\n", "tuner.max_epochs", "expected an integer in [1, 10000], got 0"),
        ("name: x\ntuner: {factor: 1}\n", "tuner.factor", "expected an integer in [2, 100], got 1"),
        ("name: x\ntuner: {max_epochs: three}\n", "tuner.max_epochs", "got 'three'"),
        (
            "name: x\ntuner: {algorithm: grid}\n",
            "tuner.algorithm",
            "expected one of hyperband, bohb, asha, random, bayesian",
        ),
        (
            "name: x\ntuner: {objective: val_f1}\n",
            "tuner.objective",
            "expected one of loss, accuracy, val_loss, val_accuracy",
        ),
        ("name: x\nearly_stopping: {monitor: val_acc}\n", "early_stopping.monitor", "did you mean 'val_accuracy'"),
        ("name: x\ndata: {source: imagenet}\n", "data.source", "expected one of digits, mnist5k"),
        ("name: x\ndata: {source: npz}\n", "data.path", "expected a path"),
        ("name: x\ndata: {source: directory, path: /nonexistent/x, image_size: [8, 8]}\n", "data.path", "not found"),
        ("name: x\nhypermodel: {name: vgg}\n", "hypermodel.name", "expected one of cnn, resnet"),
        ("name: x\nhypermodel: {steps_per_execution: 0}\n", "hypermodel.steps_per_execution", "in [1, 10000]"),
        ("name: x\ntuner: {reuse_models: -1}\n", "tuner.reuse_models", "in [0, 64]"),
        ("name: ../escape\n", "name", "no path separators"),
        ("name: a/b\n", "name", "no path separators"),
        (
            "name: x\nsearch_space: {augmentation: {rotation_range: {min: 30, max: 10}}}\n",
            "search_space.augmentation.rotation_range",
            "min <= max",
        ),
        (
            "name: x\nsearch_space: {schedule: {initial_lr: {min: 0, max: 1, sampling: log}}}\n",
            "search_space.schedule.initial_lr.min",
            "> 0",
        ),
        (
            "name: x\nsearch_space: {batchnorm: {placement: {choice: []}}}\n",
            "search_space.batchnorm.placement.choice",
            "non-empty list",
        ),
        (
            "name: x\nsearch_space: {schedule: {kind: polynomial}}\n",
            "search_space.schedule.kind",
            "expected one of constant, step",
        ),
        (
            "name: x\nsearch_space: {schedule: {warmup_epochs: 9}}\n",
            "search_space.schedule.warmup_epochs",
            "below the schedule horizon",
        ),
        ("name: x\ntuner: {algorithm: random, factor: 3}\n", "tuner.factor", "only used by hyperband"),
        ("name: x\ndata: {validation_split: 1.5}\n", "data.validation_split", "< 1"),
        ("- a\n- b\n", "", "expected a YAML mapping"),
        ("name: x\ndata: [1, 2\n", "", "invalid YAML at line"),
    ],
)
def test_bad_configs_name_file_key_and_expectation(tmp_path, text, key, fragment):
    path = _write(tmp_path, text)
    err = _error(path)
    assert err.source == str(path)
    assert err.key == key
    assert fragment in err.message
    assert "\n" not in err.line()


def test_overrides_parse_yaml_values_and_win():
    cfg = load_config(
        {"name": "x"},
        [
            "tuner.max_epochs=3",
            "data.image_size=[24, 24]",
            "search_space.augmentation.rotation_range={min: 0, max: 10}",
        ],
    )
    assert cfg.resolved["tuner"]["max_epochs"] == 3
    assert cfg.resolved["data"]["image_size"] == [24, 24]
    assert cfg.resolved["search_space"]["augmentation"]["rotation_range"] == {
        "min": 0.0,
        "max": 10.0,
        "sampling": "linear",
    }


def test_switching_algorithm_from_the_command_line_clears_hyperband_keys_with_null():
    raw = {"name": "x", "tuner": {"algorithm": "hyperband", "factor": 3}}
    with pytest.raises(UserError, match="only used by hyperband"):
        load_config(raw, ["tuner.algorithm=random"])
    cfg = load_config(raw, ["tuner.algorithm=random", "tuner.factor=null", "tuner.max_trials=4"])
    assert cfg.resolved["tuner"]["max_trials"] == 4 and "factor" not in cfg.resolved["tuner"]


def test_errors_from_overrides_blame_the_override():
    err = _error({"name": "x"}, ["tuner.max_epochs=0"])
    assert err.source == "--set tuner.max_epochs" and err.key == "tuner.max_epochs"


@pytest.mark.parametrize("item", ["tuner.max_epochs", "=3", "tuner..x=1", "a b=1"])
def test_malformed_set_is_rejected(item):
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_overrides([item])


def test_exports_must_be_fixed_and_search_configs_are_not_exports(tmp_path):
    with pytest.raises(UserError, match="not an export"):
        load_export(ROOT / "configs" / "mnist5k.yaml")
    recipe = yaml.safe_load((ROOT / "configs" / "seed_recipe.yaml").read_text())
    recipe["hyperparameters"]["augmentation"]["rotation_range"] = {"min": 0, "max": 30}
    with pytest.raises(UserError, match="expected a fixed value in an export"):
        load_export(recipe)


def _numeric_leaves(mapping: dict, prefix: str = ""):
    for key, value in mapping.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _numeric_leaves(value, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield path


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), True, False], ids=str)
@pytest.mark.parametrize("name", ["digits_smoke.yaml", "mnist5k.yaml", "seed_recipe.yaml", "transfer.yaml"])
def test_no_number_anywhere_takes_a_non_finite_value_or_a_boolean(name, value):
    """Every number a resolved config or export holds (sections, search-space bounds, fixed values):
    `.nan`, `.inf` and YAML's `true`/`false` (ints to Python) are refused, naming the key."""
    from search.config import load_any

    resolved = load_any(CONFIGS / name).to_dict()
    keys = [k for k in _numeric_leaves(resolved) if not k.startswith("provenance.")]
    assert len(keys) > 10
    accepted = []
    for key in keys:
        try:
            load_any(
                CONFIGS / name, [f"{key}={value if not isinstance(value, float) else yaml.safe_dump(value).split()[0]}"]
            )
        except UserError as e:
            assert key in str(e), (key, str(e))
        else:
            accepted.append(key)
    assert accepted == []
