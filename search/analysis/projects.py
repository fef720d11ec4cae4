"""ktsearch's views of a plain KerasTuner project: `ktsearch report DIR/PROJECT`, `ktsearch tensorboard DIR/PROJECT`.

A project directory a KerasTuner tuner wrote (`directory/project_name`: `oracle.json`, `trial_*/trial.json`,
checkpoints; any tuner: `kt.Hyperband`, `kt.RandomSearch`, `kt.BayesianOptimization`, `search.BOHB`,
`search.ASHA`) holds no ktsearch records. `view` reads it and writes a view of it to a directory of its own,
never into the project: each trial's `trial.json` with the record ktsearch can rebuild from it
(`layout.record_from_trial`: the epochs granted, the best epoch and its metrics), and the TensorBoard
HParams view ktsearch writes for its own runs (every dimension with its declared domain, read from
`oracle.json`; one session group per configuration, its continuations inside it). `ktsearch report` then
works on it as on a run.

What KerasTuner's files do not hold is said once (`View.unknown`), not guessed: per-epoch curves (it keeps
each trial's best epoch only), the epochs a trial ran (so early stopping's savings), timings, and the
objective's name, which ktsearch finds as the metric every completed trial's score equals.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from search.algorithms import ALGORITHMS
from search.errors import UserError
from search.runs import layout

VIEW_FILE = "keras_tuner_project.json"  # in a view: which project it shows, and what it could not know
ORACLE_FILE = "oracle.json"


@dataclasses.dataclass
class View:
    """A KerasTuner project seen as a ktsearch run (in `run_dir`, a directory of the view's own)."""

    project: Path
    run_dir: Path
    config: object  # a SearchConfig: the algorithm, the objective and the space, as the project's files give them
    unknown: list[str]


def is_project(path: str | Path) -> bool:
    """Whether `path` is a plain KerasTuner project (its `oracle.json`, and no ktsearch run around it)."""
    path = Path(path)
    return (path / ORACLE_FILE).is_file() and not (path / layout.CONFIG_FILE).is_file()


def algorithm_of(state: dict) -> tuple[str, str]:
    """(ktsearch algorithm, what wrote it) from an `oracle.json`'s keys."""
    if "ktsearch_bohb" in state:
        return "bohb", "search.BOHB"
    if "max_configurations" in state and "grace_period" in state:
        return "asha", "search.ASHA"
    if "hyperband_iterations" in state:
        return "hyperband", "keras_tuner.Hyperband"
    if "num_initial_points" in state or "alpha" in state:
        return "bayesian", "keras_tuner.BayesianOptimization"
    return "random", "keras_tuner.RandomSearch (or another tuner that trains every trial for the same epochs)"


def objective_of(trials: list[dict]) -> list[tuple[str, str]]:
    """(name, direction) of the metrics whose best-step value every completed trial's score equals, validation
    ones first: one, or several that record the same values (a loss that is also a metric); none for a
    multi-objective or a `run_trial` that returns a number."""
    names = None
    for state in trials:
        if state.get("status") != "COMPLETED" or state.get("score") is None:
            continue
        metrics = (state.get("metrics") or {}).get("metrics") or {}
        matching = set()
        for name, history in metrics.items():
            for observation in (history or {}).get("observations") or []:
                value = observation.get("value") or []
                if observation.get("step") == state.get("best_step") and value and value[-1] == state["score"]:
                    matching.add((name, history.get("direction") or layout.direction(name)))
        names = matching if names is None else names & matching
    return sorted(names or (), key=lambda n: (not n[0].startswith("val_"), n[0]))


def _space(hyperparameters: dict):
    """The project's dimensions, as declared (`oracle.json`'s space), in a ktsearch SearchSpace."""
    import keras_tuner as kt

    from hypermodels.dimensions import USER_MODEL, SearchSpace
    from hypermodels.wrapped import dimension_of

    space = SearchSpace(None, USER_MODEL)
    for hp in kt.HyperParameters.from_config(hyperparameters).space:
        dim, spec = dimension_of(hp)
        if hp.name in space.specs:  # one of ktsearch's (`hypermodels.augmentation(hp)`): its table's Spec
            space.dims[hp.name] = dim
        else:
            space.add(hp.name, dim, spec)
    space.grown.clear()
    return space


def view(project: str | Path, output: str | Path | None = None, log=print) -> View:
    """Write the view of `project` to `output` (created; None: a new temporary directory) and return it."""
    project = Path(project).resolve()
    state, problem = layout.load_json(project / ORACLE_FILE)
    if not isinstance(state, dict) or "hyperparameters" not in state:
        raise UserError(str(project / ORACLE_FILE), "", f"expected KerasTuner's oracle.json ({problem or 'no space'})")
    out = Path(tempfile.mkdtemp(prefix="ktsearch-view-")) if output is None else Path(output).resolve()
    if out == project or project in out.parents:
        raise UserError(f"-o {output}", "", f"expected a directory outside the KerasTuner project {project}")
    if output is not None and out.exists() and not out.is_dir():
        raise UserError(f"-o {output}", "", "expected a directory for the view, got a file")
    if output is not None and out.exists() and any(out.iterdir()) and not (out / VIEW_FILE).is_file():
        raise UserError(
            f"-o {output}", "", "expected a new or empty directory (or an earlier view): it holds other files"
        )
    states = []
    for trial_dir in layout.trial_dirs(project):
        data, _ = layout.read_trial(trial_dir / "trial.json")
        if data is not None:
            states.append(data)
    algorithm, writer = algorithm_of(state)
    found = objective_of(states)
    objective, direction = found[0] if found else ("score", "min")
    config = _config(project, state, algorithm, objective)
    layout.declare_direction(objective, direction)
    tuner_dir = out / layout.TUNER_DIR
    shutil.rmtree(tuner_dir, ignore_errors=True)  # an earlier view of the same project: replaced
    shutil.rmtree(out / layout.TENSORBOARD_DIR, ignore_errors=True)
    for data in states:
        trial_dir = tuner_dir / f"trial_{data['trial_id']}"
        trial_dir.mkdir(parents=True)
        layout.write_json(trial_dir / "trial.json", data)
        layout.write_json(trial_dir / layout.RECORD_FILE, layout.record_from_trial(data))
    unknown = [
        "per-epoch curves (KerasTuner keeps each trial's best epoch only)",
        "the epochs each trial ran, so what early stopping saved",
        "each trial's time",
    ]
    if len(found) > 1:
        unknown.append(
            f"which of {', '.join(n for n, _ in found)} is the objective: every trial's score equals each of them "
            f"(the ranking is the same); shown as {objective}"
        )
    if not found:
        unknown.append(
            "the objective's name (no metric equals every trial's score: a multi-objective or a number "
            f"run_trial returns), so trials are ranked by their score, {direction}imised"
        )
    layout.write_json(
        out / VIEW_FILE,
        {"project": str(project), "tuner": writer, "objective": objective, "direction": direction, "unknown": unknown},
    )
    result = View(project, out, config, unknown)
    write_tensorboard(result, states)
    log(
        f"{project}: {len(states)} trials of {writer}, objective {objective} ({direction}); view in {out}\n"
        f"not in KerasTuner's files, so not shown: {'; '.join(unknown)}"
    )
    return result


def _config(project: Path, state: dict, algorithm: str, objective: str):
    """A SearchConfig carrying what the report reads: the algorithm and its sizes, the objective, the space."""
    from search.config import validate

    row = ALGORITHMS[algorithm]
    tuner = {"algorithm": algorithm, "max_epochs": int(state.get("max_epochs") or 1)}
    if "factor" in row.keys and state.get("factor"):
        tuner["factor"] = int(state["factor"])
    base = validate({"name": "keras-tuner-project", "data": {"source": "digits"}, "tuner": tuner}, str(project))
    return dataclasses.replace(base.with_tuner(objective=objective), space=_space(state["hyperparameters"]))


def write_tensorboard(v: View, states: list[dict]) -> None:
    """The HParams view: the experiment (declared domains) and one session per trial, grouped by configuration."""
    from search.runtime import import_tensorflow

    import_tensorflow()
    import keras_tuner as kt

    from search.engine import tensorboard as tb
    from search.engine.sessions import TrialSessions

    root = v.run_dir / layout.TENSORBOARD_DIR
    objective = kt.Objective(v.config.tuner.objective, layout.direction(v.config.tuner.objective))
    logged = tuple(sorted({m.removeprefix("val_") for s in states for m in _metric_names(s)}))
    tb.write_experiment(root, v.config.space, objective.name, logged, None)
    by_id = {s["trial_id"]: s for s in states}
    records = {s["trial_id"]: layout.record_from_trial(s) for s in states}

    def chain(trial_id: str) -> list[str]:
        ids = [trial_id]
        parent = (by_id.get(trial_id) or {}).get("hyperparameters", {}).get("values", {}).get("tuner/trial_id")
        while parent is not None and parent in by_id:
            ids.insert(0, parent)
            parent = by_id[parent]["hyperparameters"]["values"].get("tuner/trial_id")
        return ids

    sessions = TrialSessions(root, v.config.space, None, 0, objective, chain, records.get)
    for s in states:
        trial = _trial(s)
        sessions.start(trial)
        sessions.end(trial, s.get("message"), columns=False)
    # A configuration's columns once, from its whole chain: written in one go, a chain's successive rewrites
    # would land in event files of the same second, which TensorBoard may read out of step order.
    continued = {c for s in states if (c := s["hyperparameters"]["values"].get("tuner/trial_id")) is not None}
    for s in states:
        if s["trial_id"] not in continued:
            sessions.write_group(s["trial_id"], s["status"] == "COMPLETED")


def _trial(state: dict):
    import keras_tuner as kt

    trial = kt.engine.trial.Trial(kt.HyperParameters.from_config(state["hyperparameters"]), trial_id=state["trial_id"])
    trial.status = state["status"]
    return trial


def _metric_names(state: dict) -> list[str]:
    return list((state.get("metrics") or {}).get("metrics") or {})


def read_view(run_dir: str | Path) -> dict | None:
    """What `view` recorded in a view directory (None: not a view)."""
    path = Path(run_dir) / VIEW_FILE
    return json.loads(path.read_text()) if path.is_file() else None
