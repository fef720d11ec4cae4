"""Damaged run files (truncated, garbage, not UTF-8): named, rebuilt where the run holds what they held,
refused with what to do where it does not; through the real CLI on a real search's files."""

import json
import shutil
from pathlib import Path

import pytest

from search.runs import integrity, layout
from tests.conftest import ROOT, run_cli, tree_state

FAULTS = ROOT / "tests" / "faults"


def _copy(smoke_run: Path, tmp_path: Path) -> Path:
    """The shared smoke search, copied as `results/digits-smoke` under a working directory with the configs."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    run = tmp_path / "results" / "digits-smoke"
    shutil.copytree(smoke_run, run)
    return run


def _truncate(path: Path, keep: int = 200) -> bytes:
    damaged = path.read_bytes()[:keep]
    path.write_bytes(damaged)
    return damaged


def _state(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_damaged_oracle_trial_record_and_tuner_files_are_rebuilt_when_the_search_resumes(smoke_run, tmp_path):
    run = _copy(smoke_run, tmp_path)
    tuner = run / "tuner"
    before = {p.name: _state(tuner / p.name) for p in [tuner / "oracle.json"]}
    trial_before = _state(tuner / "trial_0002" / "trial.json")
    record_before = _state(tuner / "trial_0004" / "epochs.json")
    damaged = {
        tuner / "oracle.json": _truncate(tuner / "oracle.json", 300),
        tuner / "trial_0002" / "trial.json": _truncate(tuner / "trial_0002" / "trial.json"),
        tuner / "trial_0004" / "epochs.json": b"garbage\n",
        tuner / "tuner0.json": b"\xff\xfe{",
    }
    for path, content in damaged.items():
        path.write_bytes(content)

    proc = run_cli("tune", "configs/digits_smoke.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "search finished: 6 of 6 trials completed" in proc.stdout
    for path, content in damaged.items():  # each named, rebuilt, and the damaged copy kept
        shown = path.relative_to(tmp_path)  # as the config names the results directory
        assert f"{shown} is damaged" in proc.stdout or f"{shown} was damaged" in proc.stdout, shown
        assert path.with_name(path.name + ".damaged").read_bytes() == content
        json.loads(path.read_text())
    assert "not JSON" in proc.stdout and "not UTF-8" in proc.stdout

    oracle = _state(tuner / "oracle.json")
    for key in ("start_order", "end_order", "id_to_hash", "brackets", "seed_state", "current_bracket", "run_times"):
        assert oracle[key] == before["oracle.json"][key], key
    assert sorted(oracle["tried_so_far"]) == sorted(before["oracle.json"]["tried_so_far"])
    trial = _state(tuner / "trial_0002" / "trial.json")  # from the replay's proposal and epochs.json's result
    for key in ("trial_id", "status", "score", "best_step"):
        assert trial[key] == trial_before[key], key
    assert trial["hyperparameters"]["values"] == trial_before["hyperparameters"]["values"]
    record = _state(tuner / "trial_0004" / "epochs.json")  # from trial.json: the best epoch and its metrics
    assert record["rebuilt_from"] == "trial.json"
    for key in ("best_epoch", "best_value", "initial_epoch", "epochs_granted"):
        assert record[key] == record_before[key], key
    assert record["best_metrics"] == pytest.approx(record_before["best_metrics"])
    summary = _state(run / "summary.json")
    assert summary["best_trial"] == _state(smoke_run / "summary.json")["best_trial"]


@pytest.mark.slow
def test_report_and_export_name_damaged_files_and_go_on_without_writing_to_them(smoke_run, tmp_path):
    run = _copy(smoke_run, tmp_path)
    _truncate(run / "tuner" / "trial_0001" / "trial.json")
    (run / "tuner" / "trial_0004" / "epochs.json").write_text("{")
    tuner_files = tree_state(run / "tuner")

    report = run_cli("report", str(run), "--format", "json", "-o", "-", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    rows = {row["trial_id"]: row for row in json.loads(report.stdout)}
    assert "0001" not in rows and len(rows) == 5  # left out, and said so
    assert f"{run / 'tuner' / 'trial_0001' / 'trial.json'} is damaged" in report.stderr
    assert "trial 0001 is left out" in report.stderr and "rebuilds it" in report.stderr
    assert f"{run / 'tuner' / 'trial_0004' / 'epochs.json'} is damaged" in report.stderr
    assert rows["0004"]["best_epoch"] == _state(smoke_run / "tuner" / "trial_0004" / "epochs.json")["best_epoch"]

    export = run_cli("export", str(run), cwd=tmp_path)
    assert export.returncode == 0, export.stderr[-3000:]
    assert "trial 0001 is left out" in export.stderr
    assert tree_state(run / "tuner") == tuner_files  # read-only commands repair nothing


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"name: digits-smoke\nseed: 1\ndata: {source: dig", b"\xff\xfe\x00", b""])
def test_a_damaged_config_yaml_is_refused_by_name_with_what_to_do(smoke_run, tmp_path, content):
    run = _copy(smoke_run, tmp_path)
    (run / "config.yaml").write_bytes(content)
    state = tree_state(tmp_path)
    tune = run_cli("tune", "configs/digits_smoke.yaml", cwd=tmp_path)
    assert tune.returncode == 2, tune.stderr[-2000:]
    [line] = tune.stderr.strip().splitlines()
    assert (
        line.startswith(f"ktsearch: error: {run.relative_to(tmp_path) / 'config.yaml'}")
        and "damaged" in line
        and "--overwrite" in line
    )
    for command in ("report", "export"):
        proc = run_cli(command, str(run), cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert str(run / "config.yaml") in proc.stderr and "damaged" in proc.stderr
    assert tree_state(tmp_path) == state


@pytest.mark.slow
def test_an_oracle_that_cannot_be_replayed_is_refused_and_nothing_is_renamed(smoke_run, tmp_path):
    run = _copy(smoke_run, tmp_path)
    tuner = run / "tuner"
    _truncate(tuner / "oracle.json")
    trial = _state(tuner / "trial_0001" / "trial.json")  # a hand edit: no longer what the seeded oracle proposes
    trial["hyperparameters"]["values"]["schedule.initial_lr"] = 0.005
    (tuner / "trial_0001" / "trial.json").write_text(json.dumps(trial))
    state = tree_state(run)
    proc = run_cli("tune", "configs/digits_smoke.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("ktsearch: error:")]
    assert (
        str(tuner.relative_to(tmp_path) / "oracle.json") in line
        and "cannot be rebuilt" in line
        and "trial 0001" in line
    )
    assert "--overwrite" in line and "Traceback" not in proc.stderr
    assert tree_state(run) == state  # nothing renamed or written (the lock comes and goes beside the run)


@pytest.mark.slow
def test_a_continuation_whose_parent_checkpoint_is_damaged_trains_from_scratch(workdir):
    # Stop the search deterministically when trial 0003 (which continues 0000) writes its record.
    env = {"PYTHONPATH": f"{FAULTS}:{ROOT}", "KTSEARCH_FAULT_PATH": "*/trial_0003/epochs.json"}
    first = run_cli("tune", "configs/digits_smoke.yaml", cwd=workdir, env=env)
    assert first.returncode == 3, first.stderr[-2000:]
    tuner = workdir / "results" / "digits-smoke" / "tuner"
    parent = _state(tuner / "trial_0003" / "trial.json")["hyperparameters"]["values"]["tuner/trial_id"]
    checkpoint = tuner / f"trial_{parent}" / "checkpoint.weights.h5"
    shown = checkpoint.relative_to(workdir)
    _truncate(checkpoint, 4000)
    assert integrity.checkpoint_problem(checkpoint) is not None

    again = run_cli("tune", "configs/digits_smoke.yaml", cwd=workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"trial 0003: the checkpoint of trial {parent} it continues ({shown})" in again.stdout
    assert "training it from scratch for all 3 epochs instead" in again.stdout
    record = _state(tuner / "trial_0003" / "epochs.json")
    assert record["initial_epoch"] == 0 and record["epochs_granted"] == 3
    statuses = [_state(p)["status"] for p in sorted(tuner.glob("trial_*/trial.json"))]
    assert statuses == ["COMPLETED"] * 6


@pytest.mark.slow
def test_a_damaged_finalize_record_is_set_aside_and_its_trainings_run_again(smoke_run, tmp_path):
    run = _copy(smoke_run, tmp_path)
    first = run_cli("finalize", str(run), "--top", "1", "--seeds", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    results = run / "finalize" / "results.json"
    _truncate(results, 20)
    again = run_cli("finalize", str(run), "--top", "1", "--seeds", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{results} is damaged" in again.stdout and "run again" in again.stdout
    assert len(_state(results)) == 1 and results.with_name("results.json.damaged").exists()
    finalists = run / "finalize" / "finalists.json"
    finalists.write_text("[1, 2")  # export names it and falls back to the search's ranking
    export = run_cli("export", str(run), cwd=tmp_path)
    assert export.returncode == 0, export.stderr[-2000:]
    assert f"{finalists} is damaged" in export.stderr and "export ranks by the search instead" in export.stderr
    assert "ranking: the search's" in export.stdout


def test_load_json_tells_missing_from_damaged(tmp_path):
    path = tmp_path / "x.json"
    assert layout.load_json(path) == (None, None)
    for content, expected in [(b"", "empty"), (b"{", "not JSON"), (b"\xff", "not UTF-8"), (b'{"a": 1}', None)]:
        path.write_bytes(content)
        data, problem = layout.load_json(path)
        assert (problem is None) == (expected is None) and (expected is None or expected in problem)
    path.write_text("[]")
    assert layout.read_trial(path)[1] == "expected a JSON object, got list"


def test_a_trial_that_ended_just_before_a_kill_is_not_run_again(tmp_path):
    """KerasTuner saves oracle.json inside end_trial before it drops the trial from the ongoing ones:
    on disk, a trial that just ended can still be ongoing, and a reload would queue it to run again."""
    import keras_tuner as kt

    from hypermodels import private_api
    from search.algorithms.ending import forget_finished_retries

    def oracle():
        o = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"), max_trials=5, seed=1)
        private_api.attach_project(o, str(tmp_path), "project")
        hp = kt.HyperParameters()
        hp.Float("x", 0, 1)
        o.update_space(hp)
        return o

    first = oracle()
    ended, running = first.create_trial("w1"), first.create_trial("w2")
    first.update_trial(ended.trial_id, {"score": 0.5})
    ended.status = "COMPLETED"
    first.end_trial(ended)
    first.ongoing_trials["w1"] = ended  # the file as KerasTuner's end_trial left it, before its pop
    first.save()

    again = oracle()
    again.reload()
    assert sorted(private_api.retry_queue(again)) == sorted([ended.trial_id, running.trial_id])  # KerasTuner's
    assert forget_finished_retries(again) == [ended.trial_id]
    assert private_api.retry_queue(again) == [running.trial_id]  # the interrupted one still re-runs
