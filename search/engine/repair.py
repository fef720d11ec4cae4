"""Before a search resumes: rebuild its damaged files from what the run still holds (`search.runs.integrity`).

KerasTuner cannot reload a project whose `oracle.json` or a `trial.json` does not parse. Both can be
rebuilt: the oracle is seeded (`search.engine.seeding.oracle_seed`), so a fresh oracle that is handed the
recorded trials' results in their order proposes the same trials again. `replay` does that in a
scratch directory and checks every proposal against the recorded hyperparameters; a damaged
`trial.json` takes the proposal's hyperparameters and its result from the trial's `epochs.json`
(without one, the trial is handed out again and re-runs from its start). A replay that does not
reproduce the run (a hand-edited trial, a Bayesian run resumed before its random draws were
saved, a distributed run whose trials ended in another order) is refused with the file and what to do.

What cannot be rebuilt: a damaged `oracle.json` loses the trials' timeline (which worker ran what,
when); the time spent is re-counted from the trials' records.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from search.algorithms import ending, journal, trial_order
from search.errors import FailureLimitReached, UserError
from search.runs import integrity, layout


def repair(run, hypermodel) -> None:
    """Find a resuming search's damaged files; rebuild them or refuse, saying which and how (`run.log`)."""
    damage = integrity.scan(run.run_dir)
    if not damage:
        return
    log = run.log
    tuner_dir = run.run_dir / layout.TUNER_DIR
    oracle_file = tuner_dir / integrity.ORACLE_FILE
    broken_trials = {d.path.parent for d in damage if d.path.name == integrity.TRIAL_FILE}
    if any(d.path == oracle_file for d in damage) or broken_trials:
        _rebuild_by_replay(run, hypermodel, damage, broken_trials)
    for d in damage:
        if d.path.parent == tuner_dir and d.path != oracle_file:  # the tuner's own file: KerasTuner keeps {} there
            kept = integrity.set_aside(d.path)
            layout.write_json(d.path, {})
            log(f"warning: {d.line()}: rewritten (it holds nothing the search needs; the damaged file is {kept.name})")
        elif d.path.name == layout.RECORD_FILE:
            state, _ = layout.read_trial(d.path.parent / integrity.TRIAL_FILE)
            kept = integrity.set_aside(d.path)
            if state is not None and state["status"] == "COMPLETED":
                layout.write_json(d.path, layout.record_from_trial(state))
                log(
                    f"warning: {d.line()}: rebuilt from trial.json (best epoch and its metrics; the per-epoch "
                    f"history and timings are lost, TensorBoard keeps the curves); the damaged file is {kept.name}"
                )
            else:
                log(f"warning: {d.line()}: set aside as {kept.name}; the trial re-runs and writes it again")


def _rebuild_by_replay(run, hypermodel, damage: list, broken_trials: set[Path]) -> None:
    tuner_dir = run.run_dir / layout.TUNER_DIR
    oracle_file = tuner_dir / integrity.ORACLE_FILE
    first = next(d for d in damage if d.path == oracle_file or d.path.parent in broken_trials)
    recorded, records = {}, {}
    for trial_dir in layout.trial_dirs(tuner_dir):
        trial_id = trial_dir.name.removeprefix("trial_")
        state, _ = layout.read_trial(trial_dir / integrity.TRIAL_FILE)
        if state is not None:
            recorded[trial_id] = state
        elif trial_dir in broken_trials:
            recorded[trial_id] = None
        record, _ = layout.read_record(trial_dir / layout.RECORD_FILE)
        if record is not None:
            records[trial_id] = record
    try:
        state, rebuilt = replay(run.config, hypermodel, recorded, records)
    except _Mismatch as e:
        raise UserError(
            str(first.path),
            "",
            f"is damaged ({first.problem}) and cannot be rebuilt: {e}; restore it from a copy, or start the run "
            "over with --overwrite (its results are deleted); ktsearch report and export still read the "
            "completed trials",
        ) from None
    old, _ = integrity.read_oracle(oracle_file)
    state["ktsearch_budget"] = (old or {}).get("ktsearch_budget") or _budget_from_records(run.config, records)
    for trial_dir in sorted(broken_trials, key=lambda d: trial_order(d.name)):
        path = trial_dir / integrity.TRIAL_FILE
        kept = integrity.set_aside(path)
        trial = rebuilt[trial_dir.name.removeprefix("trial_")]
        layout.write_json(path, trial.get_state())
        how = "its result from epochs.json" if trial.status != "RUNNING" else "no result kept: it re-runs"
        run.log(
            f"warning: {path} was damaged: rebuilt by replaying the search ({how}); the damaged file is {kept.name}"
        )
    damaged_oracle = next((d for d in damage if d.path == oracle_file), None)
    if damaged_oracle is not None:
        problem = damaged_oracle.problem
        kept = integrity.set_aside(oracle_file)
        run.log(
            f"warning: {oracle_file} is damaged ({problem}): rebuilt by replaying the {len(recorded)} recorded "
            f"trials through a fresh oracle with the run's seed (the trials' timeline is lost; time spent is "
            f"re-counted from their records); the damaged file is {kept.name}"
        )
    state.pop(journal.STATE_KEY, None)  # the scratch oracle's count; the run's journal is set aside below
    layout.write_json(oracle_file, state)
    events = journal.journal_path(tuner_dir)
    if events.exists():  # its events continue the state the replay replaced
        kept = integrity.set_aside(events)
        run.log(f"warning: {events} set aside as {kept.name}: the rebuilt {oracle_file.name} holds the search")


class _Mismatch(Exception):
    pass


def replay(config, hypermodel, recorded: dict, records: dict) -> tuple[dict, dict]:
    """(the oracle's state, trial id -> its rebuilt `Trial`) after handing a fresh oracle the recorded
    trials (`recorded`: trial id -> `trial.json` state, None where damaged) in trial-id order."""
    import keras_tuner as kt

    from search.algorithms import oracles
    from search.engine.seeding import oracle_seed
    from search.runs import warmstart

    t = dataclasses.replace(config.tuner, time_budget=None)  # the replay proposes; it has no clock to watch
    objective = kt.Objective(t.objective, layout.direction(t.objective))
    oracle = oracles.make_oracle(t, objective, oracle_seed(config.seed), warm_start=warmstart.values(config.run_dir))
    oracle.verbose = 0
    oracle.id_width = min(map(len, recorded), default=None)  # the run's, which a run extended past it keeps
    with tempfile.TemporaryDirectory(prefix="ktsearch-replay-") as scratch:
        kt.Tuner(oracle=oracle, hypermodel=hypermodel, directory=scratch, project_name="replay")  # declares the space
        rebuilt = {}
        for i, trial_id in enumerate(sorted(recorded, key=trial_order)):
            trial = oracle.create_trial(f"replay-{i}")
            if trial.status != "RUNNING" or trial.trial_id != trial_id:
                raise _Mismatch(f"a fresh oracle does not propose trial {trial_id} at its place")
            state = recorded[trial_id]
            if state is not None and state["hyperparameters"]["values"] != trial.hyperparameters.values:
                raise _Mismatch(f"a fresh oracle proposes other hyperparameters for trial {trial_id}")
            rebuilt[trial_id] = trial
            if not _take_result(trial, state, records.get(trial_id)):
                continue  # was running: stays ongoing, so the resumed search hands it out again
            try:
                ending.end_trial(oracle, trial)
            except FailureLimitReached:
                pass  # the resumed search stops the same way
        state = oracle.get_state()
    # The trials left running are nobody's: queued, as KerasTuner's reload queues a project's running trials.
    state["retry_queue"] += [trial_id for trial_id in state["ongoing_trials"].values()]
    state["ongoing_trials"] = {}
    return state, rebuilt


def _take_result(trial, state: dict | None, record: dict | None) -> bool:
    """Give the replayed trial its recorded result: from `trial.json`, else from `epochs.json`.
    False when there is none (the trial was running)."""
    import keras_tuner as kt

    if state is not None:
        if state["status"] in ("RUNNING", "IDLE"):
            return False
        kept = kt.engine.trial.Trial.from_state(state)
        trial.metrics, trial.status, trial.message = kept.metrics, kept.status, kept.message
        return True
    if record is None:
        return False
    if record.get("diverged"):
        trial.status, trial.message = "FAILED", record["diverged"]
        return True
    if record.get("best_value") is None or not record.get("best_metrics"):
        return False
    step = record["best_epoch"] - (record.get("initial_epoch") or 0)
    for name, value in record["best_metrics"].items():
        trial.metrics.register(name, direction=layout.direction(name))
        trial.metrics.update(name, value, step=step)
    trial.status = "COMPLETED"
    return True


def _budget_from_records(config, records: dict) -> dict:
    costs = {
        trial_id: [r["epochs_run"], r["seconds"]]
        for trial_id, r in records.items()
        if r.get("epochs_run") and r.get("seconds") is not None
    }
    return {
        "time_budget_s": config.tuner.time_budget,
        "spent_s": round(sum(seconds for _, seconds in costs.values()), 3),
        "trial_costs": costs,
        "timeline": {},
        "stop": None,
    }
