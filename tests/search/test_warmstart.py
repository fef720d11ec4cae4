"""Searches that build on earlier ones: warm start (`tune --from RUN --top K`) and extension (raising
`tuner.hyperband_iterations` or `tuner.max_trials` of a finished run). Real searches in real CLI
processes on digits; the oracles' part also driven directly, as KerasTuner drives them."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import keras_tuner as kt
import pytest
import yaml

from hypermodels import private_api
from search.algorithms import oracles, trial_order
from search.config import load_config
from search.engine.repair import replay
from search.engine.seeding import oracle_seed
from search.runs import layout, warmstart
from search.runs.layout import distinct_top
from tests.conftest import CONFIGS, run_cli, tree_state
from tests.search.test_algorithms import OBJECTIVE, _finish, _oracle, _run_sequentially, _space, _tuner, synthetic
from tests.search.test_reliability import _outcome

SMOKE = "configs/digits_smoke.yaml"


def _tune(workdir: Path, *args: str):
    proc = run_cli("tune", SMOKE, *args, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# -- warm start --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_warm_started_search_begins_with_the_earlier_runs_best_configurations(smoke_run, workdir):
    first = _tune(workdir, "--name", "warm", "--from", str(smoke_run), "--top", "3")
    run_dir = workdir / "results" / "warm"
    best = distinct_top(layout.read_trials(smoke_run), "val_accuracy", 3)
    trials = layout.read_trials(run_dir)
    assert [t["hyperparameters"] for t in trials[:3]] == [b["hyperparameters"] for b in best]
    assert all(
        t["hyperparameters"] not in [b["hyperparameters"] for b in best]
        for t in trials[3:]
        if not t["tuner"].get("trial_id")
    )
    ids = ", ".join(f"{b['trial_id']} ({b['score']:.4f})" for b in best)
    assert (
        f"warm start: the first 3 new configurations are {smoke_run}'s best by val_accuracy: trials {ids}"
        in first.stdout
    )
    saved = json.loads((run_dir / warmstart.WARM_FILE).read_text())
    assert saved["from"] == str(smoke_run) and saved["top"] == 3 and len(saved["configurations"]) == 3
    assert json.loads((run_dir / "tuner" / "oracle.json").read_text())["ktsearch_warm_start"] == {"used": 3}
    assert len(trials) == 6 and all(t["status"] == "COMPLETED" for t in trials)
    # The same command again resumes the finished run; another --top is refused, naming how it began.
    again = _tune(workdir, "--name", "warm", "--from", str(smoke_run), "--top", "3")
    assert "resuming run" in again.stdout and layout.read_trials(run_dir) == trials
    before = tree_state(workdir)
    other = run_cli("tune", SMOKE, "--name", "warm", "--from", str(smoke_run), "--top", "2", cwd=workdir)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert f"began with --from {smoke_run} --top 3" in other.stderr and tree_state(workdir) == before
    (run_dir / warmstart.WARM_FILE).write_text('{"from": "cut off')  # damaged: the resume is refused by name
    before = tree_state(workdir)
    damaged = run_cli("tune", SMOKE, "--name", "warm", cwd=workdir)
    assert damaged.returncode == 2 and len(damaged.stderr.strip().splitlines()) == 1, damaged.stderr
    assert f"results/warm/{warmstart.WARM_FILE}: is damaged" in damaged.stderr
    assert tree_state(workdir) == before


@pytest.mark.slow
def test_a_warm_start_outside_the_new_space_names_the_trial_and_the_dimension(smoke_run, workdir):
    best = distinct_top(layout.read_trials(smoke_run), "val_accuracy", 1)[0]
    rotation = best["hyperparameters"]["augmentation.rotation_range"]
    narrow = f"search_space.augmentation.rotation_range={{min: 0, max: {rotation / 2}}}"
    before = tree_state(workdir)
    proc = run_cli("tune", SMOKE, "--name", "w", "--from", str(smoke_run), "--set", narrow, cwd=workdir)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    line = proc.stderr.strip()
    assert f"--from {smoke_run}: augmentation.rotation_range: trial {best['trial_id']} has {rotation!r}" in line
    assert f"outside the new search space (float in [0, {rotation / 2:g}]" in line
    assert tree_state(workdir) == before


@pytest.mark.parametrize("algorithm", ["hyperband", "bohb", "asha", "random", "bayesian"])
def test_every_oracle_proposes_the_warm_start_first_and_keeps_count_across_a_reload(tmp_path, algorithm):
    changes = {"algorithm": algorithm, "max_trials": 6}
    warm = [{"x": 0.8, "y": 0.2, "kind": "b"}, {"x": 0.1, "y": 0.9, "kind": "c"}]
    oracle = _oracle(tmp_path, "w", **changes)
    oracle.warm_start = list(warm)  # as make_oracle(warm_start=...) sets it
    for wanted in warm:  # one tuner: a trial ends before the next is asked for
        trial = oracle.create_trial("tuner0")
        assert {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")} == wanted
        _finish(oracle, trial, synthetic(trial.hyperparameters.values, 1))
    # A resumed search reloads the oracle: the warm start is spent, the search goes on with its own proposals.
    reloaded = oracles.make_oracle(_tuner(**changes), OBJECTIVE, seed=7, warm_start=warm)
    reloaded.hyperparameters, reloaded.verbose = oracle.hyperparameters, 0
    reloaded._set_project_dir(str(tmp_path), "w")
    reloaded.reload()
    assert reloaded.warm_used == 2
    third = reloaded.create_trial("tuner0")
    assert third.status == "RUNNING"
    assert {k: v for k, v in third.hyperparameters.values.items() if not k.startswith("tuner/")} not in warm


def test_warm_start_values_are_checked_against_each_kind_of_dimension():
    from hypermodels.notation import Choice, Fixed, Range, contains

    assert contains(Range(0, 20), 12.5) and not contains(Range(0, 20), 20.5)
    assert contains(Range(1, 9, 2, integer=True), 3) and not contains(Range(1, 9, 2, integer=True), 4)
    assert contains(Choice(("none", "before_activation")), "none") and not contains(Choice((0, 10)), 5)
    assert not contains(Choice((False, True)), 0) and contains(Choice((0, 10)), 10.0)
    assert contains(Fixed(0.1), 0.1) and not contains(Fixed(0.1), 0.2)


# -- extension -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_raising_hyperband_iterations_continues_a_finished_run_as_one_run_would_have(smoke_run, workdir):
    run_dir = workdir / "results" / "digits-smoke"
    shutil.copytree(smoke_run, run_dir, ignore=shutil.ignore_patterns("report*", "costs.json", "best.yaml"))
    kept = _outcome(run_dir)
    assert len(kept) == 6
    grown = _tune(workdir, "--set", "tuner.hyperband_iterations=2")
    assert (
        "extending run results/digits-smoke: tuner.hyperband_iterations 1 -> 2; its 6 trials so far are kept"
        in grown.stdout
    )
    after = _outcome(run_dir)
    assert len(after) == 12 and {k: after[k] for k in kept} == kept
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["tuner"]["hyperband_iterations"] == 2
    _tune(workdir, "--name", "whole", "--set", "tuner.hyperband_iterations=2")
    assert after == _outcome(workdir / "results" / "whole")  # the same trials, values and scores
    before = tree_state(workdir)
    shrink = run_cli("tune", SMOKE, "--set", "tuner.hyperband_iterations=1", cwd=workdir)
    assert shrink.returncode == 2 and len(shrink.stderr.strip().splitlines()) == 1, shrink.stderr
    assert "tuner.hyperband_iterations: this run was started with 2, the config now gives 1" in shrink.stderr
    assert "can be extended (raise it), not shortened" in shrink.stderr and tree_state(workdir) == before


@pytest.mark.parametrize(
    "algorithm, key, old, new",
    [("hyperband", "hyperband_iterations", 1, 2), ("bohb", "hyperband_iterations", 1, 2), ("asha", "max_trials", 4, 7)],
)
def test_an_extended_oracle_goes_on_where_a_reloaded_one_stops(tmp_path, algorithm, key, old, new):
    oracle = _oracle(tmp_path, "x", algorithm=algorithm, **{key: old})
    done = _run_sequentially(oracle)
    assert oracle.create_trial("tuner0").status == "STOPPED"

    if algorithm != "asha":  # oracle.json keeps the old count, which KerasTuner's reload would restore
        saved = json.loads((tmp_path / "x" / "oracle.json").read_text())
        assert saved["hyperband_iterations"] == old
    grown = oracles.make_oracle(_tuner(algorithm=algorithm, **{key: new}), OBJECTIVE, seed=7)
    grown.hyperparameters, grown.verbose = oracle.hyperparameters, 0
    grown._set_project_dir(str(tmp_path), "x")
    grown.reload()
    if algorithm != "asha":
        assert grown.hyperband_iterations == new and grown._current_iteration == old - 1  # reloaded, extended
    more = _run_sequentially(grown)
    assert more and all(t.trial_id not in {d.trial_id for d in done} for t in more)
    assert set(grown.trials) >= {d.trial_id for d in done}  # the old trials are kept
    if algorithm == "asha":
        assert sum(t.hyperparameters.values["tuner/round"] == 0 for t in grown.trials.values()) == new
    if algorithm != "asha":  # Hyperband's brackets (and BOHB's model) run as they would have in one search
        whole = _oracle(tmp_path, "whole", algorithm=algorithm, **{key: new})
        assert [t.hyperparameters.values for t in _run_sequentially(whole)] == [
            grown.trials[t].hyperparameters.values for t in sorted(grown.trials, key=trial_order)
        ]


class _Declares(kt.HyperModel):
    """A hypermodel that declares the synthetic space, for `repair.replay`'s fresh tuner."""

    def build(self, hp):
        for declared in _space().space:
            hp.merge([declared])
        return None


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_trials_added_past_the_id_width_keep_their_numbering_order_and_replay(tmp_path, algorithm):
    # KerasTuner pads ids to len(str(max_trials)) digits: raised from 9 to 12, its next id would be '09'.
    config = load_config(CONFIGS / "digits_smoke.yaml").with_tuner(algorithm=algorithm, objective="score")
    config = dataclasses.replace(config, results_dir=str(tmp_path / "results"))

    def oracle(max_trials: int, name: str = "x"):
        made = oracles.make_oracle(config.with_tuner(max_trials=max_trials).tuner, OBJECTIVE, oracle_seed(config.seed))
        made.hyperparameters, made.verbose = _space(), 0
        made._set_project_dir(str(tmp_path), name)
        return made

    previous = oracle(9)
    done = _run_sequentially(previous)
    for extended in (11, 12):  # twice: the second reload comes after Bayesian optimisation's first proposals
        grown = oracle(extended)
        grown.reload()
        if algorithm == "bayesian":  # where its acquisition's starting points are drawn from, which KerasTuner resets
            assert private_api.draw_state(grown) == private_api.draw_state(previous)
        done += _run_sequentially(grown)
        previous = grown
    ids = [t.trial_id for t in done]
    assert ids == [str(i) for i in range(12)]
    assert sorted(ids, key=trial_order) == ids
    listed = layout.trial_dirs(tmp_path / "x")
    assert [d.name for d in listed] == [f"trial_{i}" for i in ids]
    whole = _run_sequentially(oracle(12, "whole"))  # the same proposals as a search started with 12
    assert [t.hyperparameters.values for t in whole] == [t.hyperparameters.values for t in done]

    # the replay that rebuilds a damaged oracle.json when tune resumes proposes the same trials under the same ids
    recorded = {d.name.removeprefix("trial_"): json.loads((d / "trial.json").read_text()) for d in listed}
    state, rebuilt = replay(config.with_tuner(max_trials=12), _Declares(), recorded, {})
    assert list(rebuilt) == ids and state["ongoing_trials"] == {} and not state["retry_queue"]
