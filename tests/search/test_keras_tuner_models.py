"""A KerasTuner user's script through ktsearch, as it is: keras-io's getting-started `build_model(hp)` (loop
names, Boolean, log float, its own compile, one-hot labels, float inputs in [0, 1]) and a `kt.HyperModel`
with a `fit` override, on in-memory arrays, through tune -> report -> export -> CLI train -> plain-Keras
load, under Hyperband and ASHA; kill -9 and resume; a chief and two workers importing the function by
name; the bad-data cases. The runs are made once per module and shared (`scope="module"`)."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from search.errors import UserError
from tests.benchmarks import keras_tuner_guide
from tests.conftest import QUIET_ENV, TRIAL_LINE, run_cli, tensorboard_server, tree_state

pytestmark = pytest.mark.slow

# keras-io guides/keras_tuner/getting_started.py's model function and its HyperModel with a fit override,
# as the guide writes them (and a function whose name collides with one of ktsearch's dimensions).
GUIDE_FUNCTION = inspect.getsource(keras_tuner_guide.build_model)  # the benchmark holds the guide's function
MODELS = (
    "import keras\nimport keras_tuner\nfrom keras import layers\n\n\n"
    + GUIDE_FUNCTION
    + textwrap.dedent(
        """


    class MyHyperModel(keras_tuner.HyperModel):
        def build(self, hp):
            model = keras.Sequential()
            model.add(layers.Flatten())
            model.add(
                layers.Dense(
                    units=hp.Int("units", min_value=32, max_value=512, step=32),
                    activation="relu",
                )
            )
            model.add(layers.Dense(10, activation="softmax"))
            model.compile(
                optimizer="adam",
                loss="categorical_crossentropy",
                metrics=["accuracy"],
            )
            return model

        def fit(self, hp, model, *args, **kwargs):
            return model.fit(
                *args,
                # Tune whether to shuffle the data in each epoch.
                shuffle=hp.Boolean("shuffle"),
                **kwargs,
            )


    def build_collider(hp):
        hp.Float("schedule.initial_lr", 1e-4, 1e-2)
        return build_model(hp)
    """
    )
)
CONFIG = {"name": "gs", "seed": 1, "tuner": {"max_epochs": 3, "factor": 3}, "data": {"batch_size": 64}}


def digits_arrays():
    """scikit-learn's digits as a KerasTuner script holds MNIST: float32 in [0, 1], one-hot labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype("float32")
    y = np.eye(10, dtype="float32")[d.target]
    return x, y


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("keras-tuner-user")
    (cwd / "gs_models.py").write_text(MODELS)
    sys.path.insert(0, str(cwd))
    x, y = digits_arrays()
    yield cwd, x, y
    sys.path.remove(str(cwd))


@pytest.fixture(scope="module")
def function_run(workspace):
    """The getting-started function under Hyperband, data from Python (train + validation given)."""
    from search import tune

    cwd, x, y = workspace
    import gs_models

    data = {"train": (x[:1300], y[:1300]), "validation": (x[1300:1600], y[1300:1600]), "test": (x[1600:], y[1600:])}
    cfg = {**CONFIG, "results_dir": str(cwd / "results")}
    summary = tune(cfg, hypermodel=gs_models.build_model, data=data, log=lambda line: None)
    return cwd, Path(summary["run"]), summary


def test_the_getting_started_function_runs_with_its_own_dimensions_and_compile(function_run):
    cwd, run_dir, summary = function_run
    assert summary["best_score"] > 0.5  # 10 classes: chance is 0.1
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["hypermodel"]["name"] == "gs_models:build_model" and saved["data"]["source"] == "arrays"
    dims = json.loads((run_dir / "dimensions.json").read_text())
    assert dims["dropped"] == ["schedule.initial_lr"]  # their optimizer's rate starts the schedule
    d = dims["dimensions"]
    assert d["units_0"]["domain"] == {"min": 32, "max": 512, "step": 32, "sampling": "linear"}
    assert d["lr"]["domain"] == {"min": 1e-4, "max": 1e-2, "sampling": "log"}
    assert d["activation"]["domain"] == {"choice": ["relu", "tanh"]} and d["dropout"]["kind"] == "bool"
    for trial in summary["trials"]:
        values = trial["hyperparameters"]
        assert values["units_0"] % 32 == 0 and 1e-4 <= values["lr"] <= 1e-2
        layers = [f"units_{i}" for i in range(3) if f"units_{i}" in values]
        assert len(layers) >= values["num_layers"]  # a loop name exists once its layer was built
    # The trial's learning rate is the user's lr (schedule constant): their compile is kept.
    trial = summary["trials"][0]
    record = json.loads((run_dir / "tuner" / f"trial_{trial['trial_id']}" / "trial.json").read_text())
    rate = record["metrics"]["metrics"]["learning_rate"]["observations"][0]["value"][0]
    assert rate == pytest.approx(trial["hyperparameters"]["lr"], rel=1e-5)
    data = json.loads((run_dir / "data" / "data.json").read_text())
    assert data["label_form"] == "one_hot" and data["splits"]["train"]["x"]["dtype"] == "float32"


def test_the_hparams_dashboard_declares_the_user_dimensions_with_their_domains(function_run):
    _, run_dir, summary = function_run
    with tensorboard_server(run_dir / "tensorboard") as tb:
        infos = {
            h["name"]: h for h in tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})["hparamInfos"]
        }
        query = {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"], "colParams": [], "startIndex": 0}
        groups = tb.post("/data/plugin/hparams/session_groups", {**query, "sliceSize": 1000})["sessionGroups"]
    interval = lambda name: (infos[name]["domainInterval"]["minValue"], infos[name]["domainInterval"]["maxValue"])  # noqa: E731
    assert interval("units_0") == (32, 512) and interval("num_layers") == (1, 3)
    assert interval("lr") == pytest.approx((1e-4, 1e-2)) and "log" in infos["lr"]["description"]
    assert infos["activation"]["domainDiscrete"] == ["relu", "tanh"]
    assert sorted(infos["dropout"]["domainDiscrete"]) == [False, True]
    seen = {k for t in summary["trials"] for k in t["hyperparameters"]}
    assert "units_1" in seen  # a name that appeared mid-search (a trial built 2 layers) ...
    for name in ("units_1", "units_2"):
        assert (name in infos) == (name in seen)  # ... is declared, with its domain
        if name in infos:
            assert interval(name) == (32, 512)
    # One row per configuration: Hyperband's continuations are sessions of their first trial's group.
    from tests.search.test_tensorboard import _chain_root, _trials

    trials = _trials(run_dir)
    assert {g["name"] for g in groups} == {_chain_root(trials, t) for t in trials} and len(groups) < len(trials)


def test_report_export_and_cli_train_rebuild_it_through_the_function(function_run):
    cwd, run_dir, _ = function_run
    for args in (("report", str(run_dir)), ("export", str(run_dir))):
        proc = run_cli(*args, cwd=cwd)
        assert proc.returncode == 0, proc.stderr[-2000:]
    report = (run_dir / "report.md").read_text()
    ranked = [line.split("|")[2].strip() for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert {"units_0", "lr", "num_layers", "activation", "dropout"} <= set(ranked)  # the importance table
    assert (run_dir / "costs.json").is_file()  # `costs` built the architectures through the function
    export = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert export["hypermodel"]["name"] == "gs_models:build_model"
    assert {"num_layers", "units_0", "activation", "dropout", "lr"} <= set(export["hyperparameters"]["model"])
    assert export["provenance"]["model"]["import"] == "gs_models:build_model"
    proc = run_cli("validate", str(run_dir / "best.yaml"), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("train", str(run_dir / "best.yaml"), cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "saved_model" in proc.stdout and "OK" in proc.stdout
    metrics = json.loads((run_dir / "train" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5
    proc = run_cli("finalize", str(run_dir), "--top", "2", "--seeds", "2", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    finalists = json.loads((run_dir / "finalize" / "finalists.json").read_text())["finalists"]
    assert len(finalists) == 2 and all("units_0" in f["hyperparameters"] for f in finalists)
    # The user's model alone, loadable by plain Keras in a process that never imports ktsearch.
    code = (
        "import keras, numpy as np; m = keras.saving.load_model('model.keras'); "
        "print(type(m).__name__, [l.__class__.__name__ for l in m.layers][0], m.predict(np.zeros((1, 8, 8, 1)), verbose=0).shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=run_dir / "train",
        capture_output=True,
        text=True,
        env={**os.environ, **QUIET_ENV, "PYTHONPATH": ""},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ["Sequential", "Flatten"] and "(1, 10)" in out.stdout


def test_a_keras_tuner_hypermodel_with_a_fit_override_runs_under_asha_by_name(workspace):
    from search import tune

    cwd, x, y = workspace
    cfg = {
        **CONFIG,
        "name": "asha",
        "results_dir": str(cwd / "results"),
        "hypermodel": {"name": "gs_models:MyHyperModel"},
        "tuner": {"algorithm": "asha", "max_epochs": 3, "max_trials": 4, "grace_period": 1},
    }
    summary = tune(cfg, data=(x, y), log=lambda line: None)  # one (x, y): ktsearch makes the validation split
    assert len(summary["trials"]) >= 4 and summary["best_score"] > 0.3
    dims = json.loads((Path(summary["run"]) / "dimensions.json").read_text())
    assert dims["dimensions"]["shuffle"]["kind"] == "bool"  # declared in the user's fit, found at the trial's end
    assert dims["dimensions"]["units"]["domain"]["step"] == 32 and dims["dropped"] == ["schedule.initial_lr"]
    data = json.loads((Path(summary["run"]) / "data" / "data.json").read_text())
    assert data["label_form"] == "one_hot" and set(data["splits"]) == {"train"}  # the rest split by ktsearch
    # Extension: a larger max_trials goes on from the trials already run.
    more = tune({**cfg, "tuner": {**cfg["tuner"], "max_trials": 5}}, data=(x, y), log=lambda line: None)
    ids = [t["trial_id"] for t in summary["trials"]]
    assert [t["trial_id"] for t in more["trials"]][: len(ids)] == ids and len(more["trials"]) > len(ids)


def test_a_warm_start_proposes_the_earlier_runs_best_configurations_first(function_run):
    from search import tune
    from search.runs.layout import distinct_top, read_trials

    cwd, run_dir, first = function_run
    x, y = digits_arrays()
    import gs_models

    data = {"train": (x[:1300], y[:1300]), "validation": (x[1300:1600], y[1300:1600]), "test": (x[1600:], y[1600:])}
    cfg = {**CONFIG, "name": "warm", "results_dir": str(cwd / "results")}
    warm = tune(cfg, hypermodel=gs_models.build_model, data=data, warm_start=str(run_dir), top=2, log=lambda line: None)
    best = distinct_top(read_trials(run_dir), "val_accuracy", 2)
    proposed = [t["hyperparameters"] for t in warm["trials"][:2]]
    for earlier, now in zip(best, proposed, strict=True):
        mine = {k: v for k, v in earlier["hyperparameters"].items() if not k.startswith("tuner/")}
        assert {k: now[k] for k in mine} == mine  # the user's own dimensions (units_0, lr, ...) included


def test_a_resume_with_other_arrays_is_refused_naming_what_differs(function_run):
    from search import tune

    cwd, run_dir, _ = function_run
    x, y = digits_arrays()
    data = {"train": (x[:1200], y[:1200]), "validation": (x[1300:1600], y[1300:1600]), "test": (x[1600:], y[1600:])}
    before = tree_state(run_dir)
    import gs_models

    with pytest.raises(UserError) as e:
        tune({**CONFIG, "results_dir": str(cwd / "results")}, hypermodel=gs_models.build_model, data=data)
    assert "train x: shape (1300, 8, 8, 1) before, (1200, 8, 8, 1) now" in str(e.value)
    assert tree_state(run_dir) == before


@pytest.mark.parametrize(
    "data, expected",
    [
        ((np.zeros((10, 8, 8), "float32"), np.zeros(9, "int64")), "expected 10 labels (one per image in x), got 9"),
        ((np.zeros((4, 8, 8), "float32"), np.array([[0.5, 0.5]] * 4)), "expected class indices"),
        ((np.full((4, 8, 8), np.nan, "float32"), np.array([0, 1, 0, 1])), "image 0 has NaN or infinite pixel values"),
        ((np.zeros((4, 8, 8), "float32"), np.array([3, 3, 3, 3])), "expected at least 2 classes, found only class 3"),
        ({"train": (np.zeros((4, 8, 8)), [0, 1, 0, 1]), "tests": None}, "tests: unknown split"),
    ],
    ids=["lengths", "labels", "nan", "one-class", "split-name"],
)
def test_bad_data_from_python_is_one_line_and_nothing_is_written(tmp_path, data, expected):
    from search import tune

    with pytest.raises(UserError) as e:
        tune({**CONFIG, "results_dir": str(tmp_path / "results")}, data=data, log=lambda line: None)
    assert expected in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "results").exists()


def _yaml_run(cwd: Path, name: str, extra: dict | None = None) -> str:
    """A YAML config naming the function, over the arrays the function run saved (`source: arrays`)."""
    raw = {
        **CONFIG,
        "name": name,
        "hypermodel": {"name": "gs_models:build_model"},
        "data": {"source": "arrays", "path": str(cwd / "results" / "gs" / "data")},
        **(extra or {}),
    }
    (cwd / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    return f"{name}.yaml"


def test_kill_9_and_resume_ends_with_the_uninterrupted_search(function_run):
    cwd, _, _ = function_run
    whole = run_cli("tune", _yaml_run(cwd, "whole"), cwd=cwd)
    assert whole.returncode == 0, whole.stderr[-2000:]
    config = _yaml_run(cwd, "cut")
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "tune", config],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **QUIET_ENV},
    )
    ended = 0
    while ended < 3:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        ended += bool(TRIAL_LINE.match(line))
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert ended == 3
    resumed = run_cli("tune", config, cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    runs = {n: json.loads((cwd / "results" / n / "summary.json").read_text()) for n in ("whole", "cut")}
    values = {n: [(t["trial_id"], t["hyperparameters"]) for t in s["trials"]] for n, s in runs.items()}
    assert values["cut"] == values["whole"]
    assert [t["score"] for t in runs["cut"]["trials"]] == pytest.approx(
        [t["score"] for t in runs["whole"]["trials"]], abs=1e-6
    )


def test_a_chief_and_two_workers_import_the_function_by_name(function_run):
    from tests.search.test_distributed import run_with_two_workers

    cwd, _, _ = function_run
    chief, ran, summary = run_with_two_workers(cwd, _yaml_run(cwd, "digits-smoke"))  # the name it reads
    assert all(ids for ids in ran.values()) and summary["best_score"] > 0.5
    dims = json.loads((cwd / "results" / "digits-smoke" / "dimensions.json").read_text())["dimensions"]
    assert {"num_layers", "units_0", "lr"} <= set(dims)


def test_validate_lists_the_model_dimensions_and_says_what_has_no_effect(function_run):
    cwd, _, _ = function_run
    config = _yaml_run(
        cwd,
        "checked",
        {
            "search_space": {
                "model": {"units_0": {"min": 32, "max": 64, "step": 32}, "unitz_1": 64},
                "batchnorm": {"placement": {"choice": ["none", "before_activation"]}},
                "schedule": {"initial_lr": {"min": 1e-3, "max": 1e-2, "sampling": "log"}},
            }
        },
    )
    proc = run_cli("validate", config, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert "int in [32, 64], step 32" in rows["units_0"]  # narrowed by the YAML
    assert "int in [1, 3]" in rows["num_layers"] and "choice of {relu, tanh}" in rows["activation"]
    assert "log sampling" in rows["lr"] and "schedule.initial_lr" not in rows
    assert "joins the search when a trial first builds it" in proc.stdout
    warnings = proc.stderr
    assert "search_space.batchnorm.placement: has no effect on gs_models:build_model" in warnings
    assert "search_space.schedule.initial_lr: has no effect" in warnings
    assert "search_space.model.unitz_1: a build at default values never declares it" in warnings
    proc = run_cli("plan", config, cwd=cwd)  # with its one-epoch calibration, through the function
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(line for line in proc.stdout.splitlines() if "dimensions of the model:" in line)
    assert {"num_layers", "units_0", "activation", "dropout", "lr"} <= set(
        line.split(": ")[1].split("; ")[0].split(", ")
    )


def test_a_name_that_collides_with_a_ktsearch_dimension_is_one_line(function_run):
    cwd, _, _ = function_run
    config = _yaml_run(cwd, "collide", {"hypermodel": {"name": "gs_models:build_collider"}})
    before = tree_state(cwd / "results")
    proc = run_cli("tune", config, cwd=cwd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "declares schedule.initial_lr, which is one of ktsearch's own dimensions" in line
    assert tree_state(cwd / "results") == before


SCRIPT = """
import sys

import numpy as np

from gs_models import build_model as imported
from search import export_best, train, tune
from search.errors import UserError

def build_model(hp):  # defined in this script's __main__, as in a notebook
    return imported(hp)

from sklearn.datasets import load_digits

d = load_digits()
x, y = (d.images / 16.0).astype("float32"), np.eye(10, dtype="float32")[d.target]
quiet = lambda line: None
summary = tune({"name": "main", "tuner": {"max_epochs": 2, "factor": 2}}, hypermodel=build_model, data=(x, y), log=quiet)
path = export_best(summary["run"])
print("HEADER", [line for line in path.read_text().splitlines() if line.startswith("# __main__")][0])
metrics = train(path, hypermodel=build_model, log=quiet, verbose=0, serving=False)
print("TRAINED", metrics["test"]["accuracy"])
"""


def test_a_function_defined_in_main_is_said_so_and_trains_when_passed_from_python(function_run):
    cwd, _, _ = function_run
    (cwd / "script.py").write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, "script.py"], cwd=cwd, capture_output=True, text=True, env={**os.environ, **QUIET_ENV}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = next(line for line in proc.stdout.splitlines() if line.startswith("HEADER"))
    assert "__main__:build_model is defined in a script's __main__ or a notebook" in header
    assert "search.train(export, hypermodel=...)" in header
    assert float(proc.stdout.split("TRAINED")[1].split()[0]) > 0.3
    # From the command line, in another process: one line saying why, nothing written.
    before = tree_state(cwd / "results" / "main")
    cli = run_cli("train", "results/main/best.yaml", cwd=cwd)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert "__main__:build_model is defined in a script's __main__" in cli.stderr.strip().splitlines()[-1]
    assert tree_state(cwd / "results" / "main") == before


ALGORITHM_TUNERS = {
    # BOHB's density models from the second iteration on (min_points 2, no random share): over a space that grows.
    "bohb": {
        "algorithm": "bohb",
        "max_epochs": 3,
        "factor": 3,
        "hyperband_iterations": 3,
        "bohb": {"min_points": 2, "random_fraction": 0.0},
    },
    "random": {"algorithm": "random", "max_trials": 8, "max_epochs": 1},
    "bayesian": {"algorithm": "bayesian", "max_trials": 8, "max_epochs": 1},
}


@pytest.mark.parametrize("algorithm", list(ALGORITHM_TUNERS))
def test_every_algorithm_searches_the_names_that_appear_mid_search(workspace, algorithm):
    from search import tune

    cwd, x, y = workspace
    import gs_models

    cfg = {**CONFIG, "name": algorithm, "results_dir": str(cwd / "results"), "tuner": ALGORITHM_TUNERS[algorithm]}
    summary = tune(cfg, hypermodel=gs_models.build_model, data=(x[:900], y[:900]), log=lambda line: None)
    trials = summary["trials"]
    assert all(t["status"] == "COMPLETED" for t in trials) and len(trials) >= 8
    first = next(i for i, t in enumerate(trials) if "units_1" in t["hyperparameters"])
    later = [t["hyperparameters"]["units_1"] for t in trials[first + 1 :] if "units_1" in t["hyperparameters"]]
    assert len(set(later)) > 1  # once it appeared, it is searched: not its default every time
    dims = json.loads((Path(summary["run"]) / "dimensions.json").read_text())["dimensions"]
    assert dims["units_1"]["domain"] == {"min": 32, "max": 512, "step": 32, "sampling": "linear"}
    if algorithm == "bohb":
        state = json.loads((Path(summary["run"]) / "tuner" / "oracle.json").read_text())["ktsearch_bohb"]
        assert any(p["by"] == "model" for p in state["proposals"].values())
