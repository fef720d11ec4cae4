"""`ktsearch report`: tables, early stopping, importance on a synthetic objective, real PNGs, TensorBoard."""

import csv
import json

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from search.analysis.importance import importance
from tests.conftest import run_cli

PLACEMENTS = ["none", "before_activation", "after_activation"]


def _synthetic_trials(n: int, objective, seed: int = 0) -> list[dict]:
    """Trials shaped like `runs.read_trials`, scored by `objective(values) + noise`."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        values = {
            "augmentation.rotation_range": float(rng.uniform(0, 30)),
            "batchnorm.placement": PLACEMENTS[int(rng.integers(0, 3))],
            "schedule.initial_lr": float(10 ** rng.uniform(-4, -2)),
            "schedule.kind": ["constant", "step"][int(rng.integers(0, 2))],
        }
        values["schedule.drop_epoch"] = int(rng.integers(3, 8)) if values["schedule.kind"] == "step" else None
        epochs = int(rng.choice([1, 3, 9]))
        score = objective(values) + float(rng.normal(0, 0.01))
        trials.append(
            {
                "trial_id": f"{i:04d}",
                "status": "COMPLETED",
                "score": score,
                "hyperparameters": values,
                "tuner": {"bracket": 0, "round": 0},
                "record": {"epochs_granted": epochs, "initial_epoch": 0, "epochs_run": epochs},
            }
        )
    return trials


DIMS = [
    "augmentation.rotation_range",
    "batchnorm.placement",
    "schedule.initial_lr",
    "schedule.kind",
    "schedule.drop_epoch",
]


@pytest.mark.parametrize(
    ("decisive", "objective"),
    [
        ("batchnorm.placement", lambda v: 0.9 if v["batchnorm.placement"] == "after_activation" else 0.3),
        ("schedule.initial_lr", lambda v: 0.5 + 0.4 * np.log10(v["schedule.initial_lr"] / 1e-4) / 2),
        ("augmentation.rotation_range", lambda v: 0.9 - 0.02 * v["augmentation.rotation_range"]),
    ],
)
def test_importance_ranks_first_the_dimension_that_decides_the_objective(decisive, objective):
    result = importance(_synthetic_trials(40, objective), DIMS, "max")
    assert result["ranking"][0]["dimension"] == decisive
    assert result["ranking"][0]["importance"] > 3 * max(r["importance"] for r in result["ranking"][1:])
    assert result["r2"] > 0.5


def test_importance_needs_enough_completed_trials():
    trials = _synthetic_trials(4, lambda v: 0.5)
    assert importance(trials, DIMS, "max") == {"trials": 4, "method": None, "ranking": []}


@pytest.mark.slow
def test_report_writes_markdown_real_plots_and_tensorboard(smoke_run):
    proc = run_cli("report", str(smoke_run), cwd=smoke_run.parent.parent)
    assert proc.returncode == 0, proc.stderr
    text = (smoke_run / "report.md").read_text()
    summary = json.loads((smoke_run / "summary.json").read_text())
    for heading in ("## Top 6 trials", "## Brackets", "## Early stopping", "## Hyperparameter importance"):
        assert heading in text
    assert f"| {summary['best_trial']} | {summary['best_score']:.4f} |" in text  # the best trial heads the table
    granted = sum(t["epochs_granted"] for t in summary["trials"])
    ran = sum(t["epochs_run"] for t in summary["trials"])
    assert f"{ran} of {granted} granted epochs ran: **{granted - ran} epochs saved**" in text
    import matplotlib.image

    for name in ("importance", "objective_vs_dimensions", "top_learning_curves"):
        path = smoke_run / "report" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels[..., :3].std() > 0.05  # not blank
        assert f"]({path.relative_to(smoke_run)})" in text
    events = event_accumulator.EventAccumulator(
        str(smoke_run / "tensorboard" / "report"), size_guidance={event_accumulator.TENSORS: 0}
    ).Reload()
    tags = set(events.Tags()["tensors"])
    assert "report" in tags and {"report/importance", "report/top_learning_curves"} <= tags
    assert "## Early stopping" in events.Tensors("report")[0].tensor_proto.string_val[0].decode()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_report_tables_hold_every_trial(smoke_run, fmt):
    proc = run_cli("report", str(smoke_run), "--format", fmt, cwd=smoke_run.parent.parent)
    assert proc.returncode == 0, proc.stderr
    path = smoke_run / f"report.{fmt}"
    table = json.loads(path.read_text()) if fmt == "json" else list(csv.DictReader(path.open()))
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert [row["trial_id"] for row in table] == [t["trial_id"] for t in summary["trials"]]
    for row, trial in zip(table, summary["trials"], strict=True):
        assert row["status"] == trial["status"]
        assert str(row["epochs_run"]) == str(trial["epochs_run"])
        assert str(row["hp.batchnorm.placement"]) == str(trial["hyperparameters"]["batchnorm.placement"])
        assert "metric.val_accuracy" in row and "metric.loss" in row


@pytest.mark.slow
def test_report_table_to_standard_output(smoke_run, tmp_path):
    proc = run_cli("report", str(smoke_run), "--format", "json", "-o", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert [row["trial_id"] for row in table] == [t["trial_id"] for t in summary["trials"]]
    proc = run_cli("report", str(smoke_run), "--format", "csv", "-o", "-", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.splitlines()[0].startswith("trial_id,status,score")
    assert len(proc.stdout.splitlines()) == len(table) + 1
    assert not any(tmp_path.iterdir()) and not (smoke_run / "-").exists()  # no file named "-"


@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    """A plain `keras_tuner.RandomSearch` project of 3 trials on random data, objective `val_mse` (min), which
    ktsearch's own rule would take for a score to maximise."""
    import keras
    import keras_tuner as kt

    directory = tmp_path_factory.mktemp("kt")

    def build(hp):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(hp.Int("units", 2, 8)), keras.layers.Dense(1)])
        model.compile("adam", "mae", metrics=["mse"])
        return model

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4)), rng.random((32, 1))
    tuner = kt.RandomSearch(build, objective=kt.Objective("val_mse", "min"), max_trials=3, directory=directory, seed=1)
    tuner.search(x, y, epochs=1, validation_data=(x, y), verbose=0)
    return directory / "untitled_project"


def test_report_of_a_keras_tuner_project_as_tables(small_project, tmp_path):
    """csv into the view's own directory (-o DIR), json to standard output; the project's direction kept."""
    before = sorted(p.name for p in small_project.rglob("*"))
    done = run_cli("report", str(small_project), "--format", "csv", "-o", "view", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "view" / "report.csv").open()))
    assert len(rows) == 3 and {"hp.units", "metric.val_mse"} <= set(rows[0])
    assert "objective val_mse (min)" in done.stdout and "not in KerasTuner's files" in done.stdout
    out = run_cli("report", str(small_project), "--format", "json", "-o", "-", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    trials = json.loads(out.stdout)
    assert sorted(t["trial_id"] for t in trials) == sorted(r["trial_id"] for r in rows)
    assert sorted(p.name for p in small_project.rglob("*")) == before  # nothing written into the project
    md = run_cli("report", str(small_project), "-o", "md", cwd=tmp_path)
    assert md.returncode == 0, md.stderr[-2000:]
    text = (tmp_path / "md" / "report.md").read_text()
    best = min(trials, key=lambda t: t["score"])  # val_mse: lower is better, as the project's metrics record
    assert f"| {best['trial_id']} | {best['score']:.4f} |" in text.split("## Top")[1].splitlines()[4]
