"""Real searches on digits through the real CLI: tune, resume, refuse, overwrite, export, train."""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_cli, tree_state

pytestmark = pytest.mark.slow
FAST = ["--set", "tuner.max_epochs=2", "--set", "tuner.factor=2"]


def _trials(run_dir: Path) -> dict:
    return {
        json.loads(p.read_text())["trial_id"]: json.loads(p.read_text())
        for p in (run_dir / "tuner").glob("trial_*/trial.json")
    }


def _hparams_sessions(logdir: Path) -> dict:
    """{trial dir: hparam names} from the HParams plugin's session-start summaries in the event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = {}
    for events in logdir.rglob("events.out.tfevents.*"):
        for event in EventFileLoader(str(events)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    continue
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                if data.HasField("session_start_info"):
                    found[events.parent.name] = set(data.session_start_info.hparams)
    return found


def _scalar_tags(logdir: Path) -> set:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return set(acc.Tags()["tensors"]) | set(acc.Tags()["scalars"])


def test_search_records_one_name_per_hyperparameter_everywhere(smoke_run):
    trials = _trials(smoke_run)
    assert len(trials) == 6  # Hyperband max_epochs=3, factor=3: brackets of 3+1 and 2 trials
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    names = set().union(*(t["hyperparameters"]["values"] for t in trials.values()))
    assert {"augmentation.rotation_range", "batchnorm.placement", "schedule.initial_lr", "schedule.kind"} <= names
    # Inactive conditional parameters are not recorded.
    for t in trials.values():
        values = t["hyperparameters"]["values"]
        if values["schedule.kind"] != "step":
            assert "schedule.drop_epoch" not in values
        if values["schedule.kind"] != "exponential":
            assert "schedule.decay_rate" not in values
    sessions = _hparams_sessions(smoke_run / "tensorboard")
    assert set(sessions) == {f"trial_{i}" for i in trials}
    for hparams in sessions.values():
        assert "augmentation.rotation_range" in hparams and not any(h.startswith("tuner/") for h in hparams)


def test_every_trial_has_train_and_validation_curves_and_the_learning_rate(smoke_run):
    for trial_dir in sorted((smoke_run / "tensorboard").glob("trial_*")):
        assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= _scalar_tags(trial_dir / "train")
        assert {"epoch_loss", "epoch_accuracy"} <= _scalar_tags(trial_dir / "validation")


def test_summary_and_final_report(smoke_run):
    summary = json.loads((smoke_run / "summary.json").read_text())
    best = max((t for t in summary["trials"]), key=lambda t: t["score"])
    assert summary["best_trial"] == best["trial_id"]
    for t in summary["trials"]:
        assert 1 <= t["epochs_run"] <= t["epochs_granted"]
    out = (smoke_run / "tune.stdout").read_text()
    assert f"best trial {best['trial_id']}: val_accuracy = {best['score']:.4f}" in out
    assert "ktsearch tensorboard results/digits-smoke" in out
    assert "ktsearch export results/digits-smoke" in out


def test_export_then_train_through_the_same_build_path(smoke_run, tmp_path):
    cwd = smoke_run.parent.parent
    proc = run_cli("export", "results/digits-smoke", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    text = (smoke_run / "best.yaml").read_text()
    assert "tuner/" not in text
    export = yaml.safe_load(text)
    summary = json.loads((smoke_run / "summary.json").read_text())
    best = next(t for t in summary["trials"] if t["trial_id"] == summary["best_trial"])
    prov = export["provenance"]
    assert prov["trial_id"] == best["trial_id"] and prov["score"] == best["score"] and prov["seed"] == 1
    assert prov["best_epoch"] == best["best_epoch"] and export["training"]["epochs"] == best["best_epoch"] + 1
    assert {"tensorflow", "keras", "keras-tuner", "ktsearch"} <= set(prov["versions"])
    flat = {f"{s}.{k}": v for s, keys in export["hyperparameters"].items() for k, v in keys.items()}
    assert flat == best["hyperparameters"]

    out = tmp_path / "prod"
    proc = run_cli("train", "results/digits-smoke/best.yaml", "-o", str(out), "--quiet", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["hyperparameters"] == best["hyperparameters"]  # the same HyperModel.build path
    assert (
        metrics["search"]["score"] == best["score"]
        and metrics["search"]["this_run"] == metrics["validation"]["accuracy"]
    )
    assert metrics["test"]["accuracy"] > 0.5 and metrics["data"]["test"] == 179
    assert "drift" in proc.stdout

    # The inference model loads in a process that never imports ktsearch, and has no augmentation.
    code = (
        "import sys, numpy as np, keras\n"
        f"m = keras.saving.load_model({str(out / 'model.keras')!r})\n"
        "p = m.predict(np.zeros((2, 8, 8, 1), 'float32'), verbose=0)\n"
        "assert p.shape == (2, 10) and abs(p.sum() - 2) < 1e-3\n"
        "assert not any('RandomAffine' in type(l).__name__ for l in m.layers)\n"
        "assert 'search' not in sys.modules and 'hypermodels' not in sys.modules\n"
        "print('loaded', len(m.layers))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0 and "loaded" in proc.stdout, proc.stderr[-2000:]

    proc = run_cli("train", "results/digits-smoke/best.yaml", "-o", str(out), cwd=cwd)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr


def test_early_stopping_stops_trials_before_their_budget(workdir):
    # min_delta 10 on val_loss: no epoch ever "improves" after the first, so patience 1 stops at epoch 2 of 3.
    args = ["--set", "early_stopping.min_delta=10", "--set", "early_stopping.patience=1", "--set", "tuner.max_epochs=3"]
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--name", "es", *args, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((workdir / "results/es/summary.json").read_text())
    stopped = [t for t in summary["trials"] if t["stopped_early"]]
    assert stopped and all(t["epochs_run"] == 2 < t["epochs_granted"] for t in stopped)
    assert all(not t["stopped_early"] for t in summary["trials"] if t["epochs_granted"] <= 2)
    assert "(early stop)" in proc.stdout


def test_resume_refuse_and_overwrite(workdir):
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--name", "r", *FAST, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    run_dir = workdir / "results" / "r"
    first = _trials(run_dir)
    old_events = set((run_dir / "tensorboard").rglob("events.out.tfevents.*"))

    # Same resolved config: resumes, runs nothing new.
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--name", "r", *FAST, cwd=workdir)
    assert proc.returncode == 0 and "resuming run" in proc.stdout
    assert _trials(run_dir) == first

    # Where decoded images are kept is not part of the search: data.cache may change, and a run
    # started before the key existed (its config.yaml has no data.cache) resumes too.
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    del saved["data"]["cache"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--name", "r", *FAST, "--set", "data.cache=none", cwd=workdir)
    assert proc.returncode == 0 and "resuming run" in proc.stdout, proc.stderr
    assert _trials(run_dir) == first

    # A different config is refused, naming the key, and nothing on disk changes.
    before = tree_state(run_dir)
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--name", "r", *FAST, "--set", "seed=2", cwd=workdir)
    assert proc.returncode == 2
    assert "config.yaml: seed: this run was started with 1, the config now gives 2" in proc.stderr
    assert tree_state(run_dir) == before

    # --overwrite replaces it: the old TensorBoard logs are gone, not mixed in.
    overwrite_started = time.time()
    proc = run_cli(
        "tune", "configs/digits_smoke.yaml", "--name", "r", *FAST, "--set", "seed=2", "--overwrite", cwd=workdir
    )
    assert proc.returncode == 0, proc.stderr
    new_events = set((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert new_events and not (old_events & new_events)
    assert all(p.stat().st_mtime >= overwrite_started for p in new_events)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == 2


NO_REUSE = [pytest.param("no-reuse", id="runs-no-reuse")]  # the tests that read it share one xdist worker


@pytest.fixture(scope="session")
def no_reuse_run(smoke_run, tmp_path_factory) -> tuple[Path, str]:
    """The smoke search again in a fresh process, without reusing compiled models: (run dir, its stdout)."""
    cwd = tmp_path_factory.mktemp("no-reuse")
    shutil.copytree(smoke_run.parent.parent / "configs", cwd / "configs")
    proc = run_cli("tune", "configs/digits_smoke.yaml", "--set", "tuner.reuse_models=0", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "results" / "digits-smoke", proc.stdout


@pytest.mark.parametrize("shared", NO_REUSE)
def test_same_seed_proposes_the_same_configurations(smoke_run, no_reuse_run, shared):
    """Two processes that never met, the same config and seed: the same configurations under the same ids."""
    a, b = _trials(smoke_run), _trials(no_reuse_run[0])
    assert len(a) == 6
    assert {k: t["hyperparameters"]["values"] for k, t in a.items()} == {
        k: t["hyperparameters"]["values"] for k, t in b.items()
    }


def test_seed_recipe_trains_directly(workdir):
    proc = run_cli("train", "configs/seed_recipe.yaml", "--epochs", "1", "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((workdir / "results/seed-recipe/train/metrics.json").read_text())
    assert metrics["epochs_run"] == 1
    assert metrics["data"] == {
        "train": 3500,
        "validation": 1000,
        "test": 500,
        "trained_on": ["train"],
        "training_images": 3500,
        "early_stopping_on": "validation",
        "held_out": "test",
    }
    assert metrics["hyperparameters"]["augmentation.rotation_range"] == 30
    assert metrics["hyperparameters"]["batchnorm.placement"] == "after_activation"
    assert metrics["history"]["learning_rate"] == [pytest.approx(0.001)]


@pytest.mark.parametrize("shared", NO_REUSE)
def test_reusing_compiled_models_changes_nothing_but_the_time(smoke_run, no_reuse_run, shared):
    """The smoke run reuses compiled models (the default); the same search without reuse scores the same."""
    reuse = re.search(r"(\d+) of (\d+) trials reused a compiled model", (smoke_run / "tune.stdout").read_text())
    assert reuse and 0 < int(reuse[1]) < int(reuse[2])
    run_dir, stdout = no_reuse_run
    assert "reused a compiled model" not in stdout
    reused = json.loads((smoke_run / "summary.json").read_text())["trials"]
    fresh = json.loads((run_dir / "summary.json").read_text())["trials"]
    assert [(t["trial_id"], t["hyperparameters"]) for t in reused] == [
        (t["trial_id"], t["hyperparameters"]) for t in fresh
    ]
    for a, b in zip(reused, fresh, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-6), a["trial_id"]


def test_nothing_in_a_run_directory_names_a_python_module(smoke_run):
    """A run holds JSON, YAML, weights and TensorBoard events, never a module path: moving code (the
    `search/` layout) never stops a run from resuming."""
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__").encode()
        for pkg in ("search", "hypermodels")
        for p in (ROOT / pkg).rglob("*.py")
    } - {b"search", b"hypermodels"}
    assert b"search.engine.tuners" in modules and b"hypermodels.notation" in modules
    named = {
        str(path.relative_to(smoke_run)): sorted(m.decode() for m in modules if m in path.read_bytes())
        for path in smoke_run.rglob("*")
        if path.is_file()
    }
    assert not {path: found for path, found in named.items() if found}
