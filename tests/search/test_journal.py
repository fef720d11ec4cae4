"""The oracle's journal (`search.algorithms.journal`): what it holds is what the oracle holds, a call appends
instead of rewriting `oracle.json`, and a chief killed with SIGKILL at any point of the journal's life (in an
append, after one, in a compaction) resumes to the state of the search that was never interrupted; a cut-short
last line is dropped and said; a run made before the journal resumes as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras_tuner as kt
import numpy as np
import pytest

from hypermodels import private_api
from search.algorithms import journal, oracles
from search.analysis.simulate import search_space
from search.config import load_config
from search.runs import integrity
from tests.conftest import CONFIGS, ROOT

ALGORITHMS = ("hyperband", "bohb", "asha", "random", "bayesian")


def _oracle(directory, algorithm: str, **changes):
    from search.engine.tuners import configure_keras_tuner

    configure_keras_tuner()  # a chief's writes: temp file + rename
    cfg = load_config(CONFIGS / "mnist5k.yaml").with_tuner(algorithm=algorithm, **changes)
    oracle = oracles.make_oracle(cfg.tuner, kt.Objective("val_accuracy", "max"), seed=3)
    oracle.hyperparameters = search_space(cfg)
    oracle.verbose = 0
    private_api.attach_project(oracle, str(directory), "chief")
    return oracle


def _drive(oracle, trials: int, workers: int = 8, seed: int = 0) -> list:
    """`workers` workers, their trials ending in a shuffled order, each epoch reported; stops with `trials`
    trials handed out and the rest still running. Returns the running trials."""
    rng = np.random.default_rng(seed)
    running: list = []
    names = iter(range(10**6))
    while len(oracle.trials) < trials:
        if len(running) < workers:
            trial = oracle.create_trial(f"w{next(names)}")
            if trial.status == "RUNNING":
                running.append(trial)
                continue
            if trial.status == "STOPPED":
                break
        done = running.pop(int(rng.integers(len(running))))
        values = done.hyperparameters.values
        for epoch in range(int(values.get("tuner/initial_epoch", 0)), int(values.get("tuner/epochs", 2))):
            oracle.update_trial(done.trial_id, {"val_accuracy": float(rng.uniform(0.5, 0.99))}, step=epoch)
        done.status = "COMPLETED"
        oracle.end_trial(done)
    for trial in running[:2]:  # two running trials have reported an epoch
        oracle.update_trial(
            trial.trial_id, {"val_accuracy": 0.5}, step=int(trial.hyperparameters.values.get("tuner/initial_epoch", 0))
        )
    return running


def _comparable(state: dict) -> dict:
    state = json.loads(json.dumps(state, default=str))
    state["tried_so_far"] = sorted(state["tried_so_far"])
    state.pop(journal.STATE_KEY, None)
    budget = state.get("ktsearch_budget") or {}
    budget.pop("spent_s", None)
    return state


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_oracle_json_and_the_journal_hold_what_the_oracle_holds(tmp_path, algorithm):
    oracle = _oracle(tmp_path, algorithm, max_epochs=9, hyperband_iterations=8, max_trials=80)
    running = _drive(oracle, 70)
    lines = (tmp_path / "chief" / journal.JOURNAL_FILE).read_text().splitlines()
    assert lines, "the calls since the last compaction are in the journal"
    live = _comparable(oracle.get_state())
    # The newest trial's timeline entry is set after KerasTuner's save in `create_trial`: the next event holds it.
    newest = max(oracle.trials)
    live["ktsearch_budget"]["timeline"].pop(newest)
    merged, problem = integrity.read_oracle(tmp_path / "chief" / "oracle.json")
    assert problem is None and _comparable(merged) == live
    reloaded = _oracle(tmp_path, algorithm, max_epochs=9, hyperband_iterations=8, max_trials=80)
    reloaded.reload()
    again = _comparable(reloaded.get_state())
    # KerasTuner's reload hands the running trials out again (`Oracle.reload`: ongoing -> retry queue).
    assert sorted(again.pop("retry_queue")) == sorted(t.trial_id for t in running)
    assert again.pop("ongoing_trials") == {}
    live.pop("retry_queue"), live.pop("ongoing_trials")
    assert again == live
    for trial_id, trial in oracle.trials.items():  # running ones with the epochs they reported
        assert reloaded.trials[trial_id].get_state() == trial.get_state(), trial_id


def test_a_call_appends_a_line_and_oracle_json_is_rewritten_only_at_compactions(tmp_path):
    oracle = _oracle(tmp_path, "asha", max_epochs=9, max_trials=2000)
    oracle.write_in_background()  # as a chief serves it: a trial's trial.json written by a thread, at its end
    _drive(oracle, 40)
    oracle_file, journal_file = tmp_path / "chief" / "oracle.json", tmp_path / "chief" / journal.JOURNAL_FILE
    written, length = oracle_file.stat().st_mtime_ns, len(journal_file.read_text().splitlines())
    trial = oracle.create_trial("another")
    oracle.update_trial(trial.trial_id, {"val_accuracy": 0.7}, step=0)
    lines = journal_file.read_text().splitlines()
    assert len(lines) == length + 2 and oracle_file.stat().st_mtime_ns == written
    start, update = json.loads(lines[-2]), json.loads(lines[-1])
    assert [t["trial_id"] for t in start["started"]] == [trial.trial_id]  # its values: the space is the oracle's
    assert trial.trial_id in start["add"]["start_order"] and start["diff"]["ongoing_trials"]["set"] == {
        "another": trial.trial_id
    }
    assert update["update"] == [trial.trial_id, {"val_accuracy": 0.7}, 0]  # the report, as it was made
    assert not (tmp_path / "chief" / f"trial_{trial.trial_id}" / "trial.json").exists()  # written at its end
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    oracle.wait_for_files()
    assert json.loads((tmp_path / "chief" / f"trial_{trial.trial_id}" / "trial.json").read_text())["status"] == (
        "COMPLETED"
    )
    # After as many events as the search holds trials (at least COMPACT_MIN), oracle.json holds them all.
    while oracle_file.stat().st_mtime_ns == written:
        _drive(oracle, len(oracle.trials) + 5)
    held = json.loads(oracle_file.read_text())[journal.STATE_KEY]["seq"]
    assert held >= journal.COMPACT_MIN
    assert [json.loads(line)["seq"] for line in journal_file.read_text().splitlines()][:1] in ([], [held + 1])


def test_a_cut_short_last_line_is_dropped_and_said(tmp_path, capsys):
    oracle = _oracle(tmp_path, "hyperband", max_epochs=9, hyperband_iterations=8)
    _drive(oracle, 30)
    journal_file = tmp_path / "chief" / journal.JOURNAL_FILE
    data = journal_file.read_bytes()
    whole = data[: data.rfind(b"\n", 0, len(data) - 1) + 1]  # every line but the last
    journal_file.write_bytes(whole)
    expected, _ = integrity.read_oracle(tmp_path / "chief" / "oracle.json")
    journal_file.write_bytes(data[:-7])  # the last event without its end
    reloaded = _oracle(tmp_path, "hyperband", max_epochs=9, hyperband_iterations=8)
    reloaded.reload()
    err = capsys.readouterr().err
    assert f"warning: {journal_file}: its last line is not a whole event" in err and "dropped" in err
    assert journal_file.read_bytes() == whole  # cut back to whole events: the next append starts a line
    state = _comparable(reloaded.get_state())
    expected = _comparable(expected)
    queued = state["retry_queue"]
    for key in ("retry_queue", "ongoing_trials"):
        state.pop(key), expected.pop(key)
    assert state == expected
    trial = reloaded.create_trial("w-after")  # a trial that was running: handed out again
    assert trial.status == "RUNNING" and trial.trial_id in queued
    last = json.loads(journal_file.read_text().splitlines()[-1])
    assert last["seq"] == json.loads(whole.splitlines()[-1])["seq"] + 1
    assert last["diff"]["ongoing_trials"]["set"] == {"w-after": trial.trial_id}


def _driver(directory, algorithm: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "tests.search.journal_driver", str(directory), algorithm, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


KILLS = ("torn:5", "append:9", "compaction:1", "torn:14", "append:3", "compaction:2", "torn:31")


@pytest.mark.parametrize(
    "algorithm",
    [
        "asha",
        pytest.param("hyperband", marks=pytest.mark.slow),
        pytest.param("bohb", marks=pytest.mark.slow),
        pytest.param("random", marks=pytest.mark.slow),
    ],
)
def test_a_chief_killed_in_appends_and_compactions_ends_as_the_uninterrupted_search(tmp_path, algorithm):
    whole = _driver(tmp_path / "whole", algorithm)
    assert whole.returncode == 0, whole.stderr
    expected = json.loads(whole.stdout)
    cut = tmp_path / "cut"
    for kill in KILLS:
        run = _driver(cut, algorithm, "--kill", kill)
        assert run.returncode == -9, (kill, run.stderr[-2000:])  # it died where it was told to
        if kill.startswith("torn") and (cut / "chief" / journal.JOURNAL_FILE).exists():
            again = _driver(cut, algorithm, "--kill", "append:1")  # the resume says what it dropped
            assert "not a whole event" in again.stderr and "dropped" in again.stderr
    last = _driver(cut, algorithm)
    assert last.returncode == 0, last.stderr[-2000:]
    assert json.loads(last.stdout) == expected
    assert (cut / "chief" / journal.JOURNAL_FILE).read_bytes() == b""  # the search's end compacted it


def test_a_run_made_before_the_journal_resumes_to_the_same_end(tmp_path):
    whole = _driver(tmp_path / "whole", "hyperband")
    old = tmp_path / "old"
    assert _driver(old, "hyperband", "--stop-after", "7").returncode == 0
    # What a run of an earlier ktsearch holds: oracle.json alone, without the journal's count.
    (old / "chief" / journal.JOURNAL_FILE).unlink()
    state = json.loads((old / "chief" / "oracle.json").read_text())
    del state[journal.STATE_KEY]
    (old / "chief" / "oracle.json").write_text(json.dumps(state))
    resumed = _driver(old, "hyperband")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout) == json.loads(whole.stdout)
