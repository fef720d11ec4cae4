"""The Python API shows what it takes and says what was wrong in the caller's own terms (no TensorFlow here:
every call below fails on its arguments before anything loads or is written)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import search
from search import KtsearchError, UserError
from tests.conftest import CONFIGS, ROOT, tree_state


@pytest.mark.parametrize(
    "function, parameters",
    [
        (search.tune, ["config", "overrides", "name", "results_dir", "overwrite", "budget", "warm_start", "top"]),
        (search.train, ["export", "output_dir", "epochs", "seed", "full_data", "quantize", "serving", "overwrite"]),
        (search.finalize, ["run_dir", "top", "seeds"]),
        (search.export_best, ["run_dir", "output", "ranking", "constraints"]),
        (search.register_hypermodel, ["name", "cls"]),
    ],
)
def test_help_and_editors_see_the_real_parameters(function, parameters):
    signature = inspect.signature(function)
    assert set(parameters) <= set(signature.parameters), signature
    assert "*args" not in str(signature) and "**kwargs" not in str(signature)
    assert function.__doc__ and function.__module__.startswith("search.")


def test_importing_the_api_imports_no_tensorflow():
    code = "import sys, search; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def _message(call) -> str:
    with pytest.raises(UserError) as raised:
        call()
    return str(raised.value)


def test_errors_of_a_python_call_name_its_parameters_not_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = tree_state(tmp_path)
    recipe = CONFIGS / "seed_recipe.yaml"
    line = _message(lambda: search.train(recipe, quantize=True, serving=False))
    assert line == "quantize=True: writes a TFLite file, which serving=False turns off; drop one of the two"
    assert _message(lambda: search.train(recipe, epochs=0)).startswith("epochs: expected an integer >= 1")
    assert _message(lambda: search.finalize(tmp_path, top=0)).startswith("top: expected an integer in [1, 1000]")
    assert _message(lambda: search.export_best(tmp_path, ranking="best")).startswith("ranking: expected one of")
    assert _message(lambda: search.export_best(tmp_path, constraints={"max_params": -1})).startswith(
        "max_params: expected a positive integer"
    )
    smoke = CONFIGS / "digits_smoke.yaml"
    assert _message(lambda: search.tune(smoke, threads=0)).startswith("threads: expected a thread count")
    assert _message(lambda: search.tune(smoke, budget="soon")).startswith("budget: tuner.time_budget: expected a dur")
    assert _message(lambda: search.tune(smoke, name="../x")).startswith("name: name: expected a run name")
    assert _message(lambda: search.tune(smoke, top=2)) == "top: only used with warm_start"
    for line in (
        _message(lambda: search.train(recipe, quantize=True, serving=False)),
        _message(lambda: search.tune(smoke, top=2)),
    ):
        assert "--" not in line
    assert tree_state(tmp_path) == before


def test_every_error_raised_on_purpose_is_a_ktsearch_error():
    class Mine:
        pass

    with pytest.raises(KtsearchError, match="built-in HyperModel name"):
        search.register_hypermodel("cnn", Mine)
    with pytest.raises(KtsearchError, match="module:Class is imported"):
        search.register_hypermodel("pkg:Mine", Mine)
    with pytest.raises(KtsearchError, match="expected a HyperModel class"):
        search.register_hypermodel("mine", Mine())
