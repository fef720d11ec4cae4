"""TensorBoard that tells the truth about a Hyperband search, checked through a real server's HTTP API."""

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CONFIGS, QUIET_ENV, ROOT, _free_port, run_cli, tensorboard_server

pytestmark = pytest.mark.slow
STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def _groups(tb) -> dict:
    query = {"experimentName": "", "allowedStatuses": STATUSES, "colParams": [], "startIndex": 0, "sliceSize": 1000}
    return {g["name"]: g for g in tb.post("/data/plugin/hparams/session_groups", query)["sessionGroups"]}


def _columns(group: dict) -> dict:
    return {m["name"]["tag"]: m["value"] for m in group["metricValues"]}


def _trials(run_dir: Path) -> dict:
    out = {}
    for path in (run_dir / "tuner").glob("trial_*/trial.json"):
        state = json.loads(path.read_text())
        record_file = path.parent / "epochs.json"
        state["record"] = json.loads(record_file.read_text()) if record_file.exists() else None
        out[state["trial_id"]] = state
    return out


def _chain_root(trials: dict, trial_id: str) -> str:
    parent = trials[trial_id]["hyperparameters"]["values"].get("tuner/trial_id")
    return trial_id if parent is None else _chain_root(trials, parent)


@pytest.fixture(scope="module")
def poisoned_run(tmp_path_factory) -> Path:
    """A digits search where half the configurations diverge on purpose (NaN predictions)."""
    cwd = tmp_path_factory.mktemp("poison")
    shutil.copytree(CONFIGS, cwd / "configs")
    args = [
        "--set",
        "hypermodel.name=tests.fixtures:PoisonedCNN",
        "--set",
        "search_space.model.poison={choice: [false, true]}",
    ]
    args += ["--set", "tuner.max_consecutive_failed_trials=20", "--name", "poison"]
    proc = run_cli("tune", "configs/digits_smoke.yaml", *args, cwd=cwd, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "failed" in proc.stdout and "diverged: loss became nan" in proc.stdout
    return cwd / "results" / "poison"


def test_declared_domains_exactly_as_configured(smoke_run):
    with tensorboard_server(smoke_run / "tensorboard") as tb:
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    interval = lambda name: (infos[name]["domainInterval"]["minValue"], infos[name]["domainInterval"]["maxValue"])  # noqa: E731
    assert interval("augmentation.rotation_range") == (0, 20)
    assert interval("augmentation.width_shift_range") == (0, 0.1)
    assert interval("schedule.initial_lr") == (0.001, 0.01) and "log" in infos["schedule.initial_lr"]["description"]
    assert interval("schedule.warmup_epochs") == (0, 1) and interval("schedule.drop_epoch") == (1, 2)
    assert infos["augmentation.shear_range"]["domainDiscrete"] == [0.0, 10.0]
    # Choices include values no trial sampled.
    assert sorted(infos["batchnorm.placement"]["domainDiscrete"]) == ["after_activation", "before_activation", "none"]
    assert sorted(infos["schedule.kind"]["domainDiscrete"]) == ["constant", "cosine", "exponential", "step"]
    assert "only when schedule.kind = step" in infos["schedule.drop_epoch"]["description"]
    assert infos["augmentation.rotation_range"]["displayName"] == "augmentation.rotation_range (°)"
    assert not any(name.startswith("tuner/") for name in infos)
    # Only what was searched: fixed values (zoom 0.1, filters 8, ...) would repeat in every row.
    searched = {"augmentation.rotation_range", "augmentation.width_shift_range", "augmentation.shear_range"}
    searched |= {"batchnorm.placement", "schedule.kind", "schedule.initial_lr", "schedule.warmup_epochs"}
    searched |= {"schedule.drop_epoch", "schedule.decay_rate"}
    assert set(infos) == searched
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert metrics[:3] == ["best/val_accuracy", "trial/bracket", "trial/round"]  # the objective first
    assert {"trial/bracket", "trial/round", "trial/epochs_granted", "trial/epochs_run", "trial/best_epoch"} <= set(
        metrics
    )


def test_one_group_per_configuration_with_its_rounds_as_sessions(smoke_run):
    trials = _trials(smoke_run)
    with tensorboard_server(smoke_run / "tensorboard") as tb:
        groups = _groups(tb)
    roots = {_chain_root(trials, t) for t in trials}
    assert set(groups) == roots and len(roots) < len(trials)  # the smoke run has a Hyperband continuation
    for trial_id in trials:
        sessions = [s["name"] for s in groups[_chain_root(trials, trial_id)]["sessions"]]
        assert f"trial_{trial_id}" in sessions
    for root, group in groups.items():
        chain = sorted((t for t in trials if _chain_root(trials, t) == root), key=int)
        records = [trials[t]["record"] for t in chain]
        best = max(chain, key=lambda t: trials[t]["score"])
        cols = _columns(group)
        # The objective column is the best epoch's value, the number the tuner ranked by.
        assert cols["best/val_accuracy"] == pytest.approx(trials[best]["score"])
        assert cols["trial/best_epoch"] == trials[best]["record"]["best_epoch"]
        assert cols["trial/bracket"] == records[-1]["bracket"] and cols["trial/round"] == records[-1]["round"]
        assert cols["trial/epochs_granted"] == sum(r["epochs_granted"] for r in records)
        assert cols["trial/epochs_run"] == sum(r["epochs_run"] for r in records)
        assert all(s["status"] == "STATUS_SUCCESS" for s in group["sessions"]) and cols["trial/failed"] == 0


def test_failed_trials_show_failure_and_reason(poisoned_run):
    trials = _trials(poisoned_run)
    failed = [t for t, s in trials.items() if s["status"] == "FAILED"]
    assert failed and len(failed) < len(trials)
    with tensorboard_server(poisoned_run / "tensorboard") as tb:
        groups = _groups(tb)
        for trial_id in failed:
            (session,) = groups[_chain_root(trials, trial_id)]["sessions"]
            assert session["status"] == "STATUS_FAILURE"
            assert _columns(groups[_chain_root(trials, trial_id)])["trial/failed"] == 1
            texts = tb.get(f"/data/plugin/text/text?run=trial_{trial_id}&tag=trial/failure")
            assert "diverged: loss became nan" in json.dumps(texts)
        ok = [t for t, s in trials.items() if s["status"] == "COMPLETED"]
        assert all(
            s["status"] == "STATUS_SUCCESS"
            for t in ok
            for s in groups[_chain_root(trials, t)]["sessions"]
            if s["name"] == f"trial_{t}"
        )


def _image(tb, run: str, tag: str) -> np.ndarray:
    import tensorflow as tf

    (entry,) = tb.get(f"/data/plugin/images/images?run={run}&tag={tag}&sample=0")
    with urllib.request.urlopen(f"{tb.url}/data/plugin/images/individualImage?{entry['query']}", timeout=30) as r:
        data = r.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return tf.io.decode_png(data).numpy()


def test_every_trial_shows_the_same_batch_augmented_at_its_strengths(smoke_run):
    trials = _trials(smoke_run)
    with tensorboard_server(smoke_run / "tensorboard") as tb:
        tags = tb.get("/data/plugin/images/tags")
        assert "augmentation/original" in tags["."]
        original = _image(tb, ".", "augmentation/original")
        for trial_id in trials:
            assert "augmentation/this_trial" in tags[f"trial_{trial_id}"]
            rotation = trials[trial_id]["hyperparameters"]["values"]["augmentation.rotation_range"]
            assert (
                f"rotation_range {rotation:.3g}" in tags[f"trial_{trial_id}"]["augmentation/this_trial"]["description"]
            )
            augmented = _image(tb, f"trial_{trial_id}", "augmentation/this_trial")
            assert augmented.shape == original.shape  # a 4x4 grid of the same 16 images
            assert not np.array_equal(augmented, original)  # digits_smoke always shifts and zooms


def test_tensorboard_command_serves_the_run_on_localhost(smoke_run):
    port = _free_port()
    cmd = [sys.executable, "-m", "search", "tensorboard", str(smoke_run), "--port", str(port)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **QUIET_ENV}
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line + proc.stderr.read() if proc.poll() is not None else line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugins_listing", timeout=30) as r:
            assert "hparams" in json.loads(r.read())
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


def test_tensorboard_command_rejects_a_missing_run(tmp_path):
    proc = run_cli("tensorboard", "results/none", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "results/none" in proc.stderr


def _shown_first(tb) -> list[str]:
    """The hyperparameters TensorBoard's HParams dashboard shows by default: it orders the backend's list
    (already sorted by `differs` first, then name) by `differs` and ticks the first 5."""
    infos = tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})["hparamInfos"]
    shown = [h for h in infos if h.get("differs")]
    assert infos[: len(shown)] == shown, "the backend must list the shown ones first"
    return [h["name"] for h in shown[:5]]


def test_dashboard_opens_on_the_choices_and_the_learning_rate(tmp_path):
    from hypermodels import registry
    from hypermodels.dimensions import SearchSpace
    from search.engine.tensorboard import write_experiment

    raw = {
        "augmentation": {n: {"min": 0, "max": 0.2} for n in ("width_shift_range", "height_shift_range", "zoom_range")},
        "batchnorm": {"placement": {"choice": ["none", "after_activation"]}},
        "schedule": {"kind": {"choice": ["constant", "cosine"]}, "initial_lr": {"min": 1e-4, "max": 1e-2}},
    }
    raw["augmentation"]["rotation_range"] = {"min": 0, "max": 30}
    write_experiment(
        tmp_path, SearchSpace(raw, registry.model_space("cnn")), "val_accuracy", ("loss", "accuracy"), None
    )
    with tensorboard_server(tmp_path) as tb:
        shown = _shown_first(tb)
    # Alphabetically, the four augmentation strengths and zoom would fill the view; the choices and the rate do not.
    assert set(shown) == {
        "batchnorm.placement",
        "schedule.kind",
        "schedule.initial_lr",
        "augmentation.rotation_range",
        "augmentation.width_shift_range",
    }


def test_report_puts_the_most_important_dimensions_in_the_dashboard(smoke_run, tmp_path):
    from search.analysis.importance import importance
    from search.analysis.report import load_run
    from search.engine.tensorboard import headline

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    proc = run_cli("report", str(run), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config, trials = load_run(run)
    imp = importance(trials, config.space.searched(), "max")
    expected = headline(config.space, [r["dimension"] for r in imp["ranking"] if r["importance"] > 0])
    choices = ["augmentation.shear_range", "batchnorm.placement", "schedule.kind"]
    assert expected[:3] == choices and len(expected) == 5
    assert len(list((run / "tensorboard").glob("*tfevents*"))) == 1  # rewritten, not stacked
    with tensorboard_server(run / "tensorboard") as tb:
        assert set(_shown_first(tb)) == set(expected)
        assert "augmentation/original" in tb.get("/data/plugin/images/tags")["."]  # the rest of the file kept
