"""Warm start: a new search whose first trials are an earlier run's best configurations.

`tune --from RUN_DIR [--top K]` reads the earlier run's completed trials, ranks them by its own
objective, keeps the best K distinct configurations and checks each against the new search space
before anything is written: a value outside it, a dimension the new space does not have, or one
the earlier run never set is an error naming the trial, the dimension and the new domain. The
configurations are saved as `RUN_DIR/warm_start.json` of the new run; its oracle proposes them as
its first new configurations (`search.algorithms.base.SearchOracle.propose_values`, whatever the algorithm),
then goes on as usual. A resume keeps them; how many were proposed is saved with the oracle.

TensorFlow-free (config and JSON only), so a bad `--from` fails fast.
"""

from __future__ import annotations

from pathlib import Path

from hypermodels.notation import contains
from search.config import SearchConfig
from search.errors import UserError, arg
from search.runs import integrity, layout
from search.runs.layout import distinct_top

WARM_FILE = "warm_start.json"
TOP = 3


def _from(source=None) -> str:
    """`--from RUN_DIR` as its caller gave it (`warm_start=` from Python)."""
    if source is None:
        return arg("--from", "warm_start")
    return arg(f"--from {source}", f"warm_start={str(source)!r}")


def _top(top=None) -> str:
    return arg("--top" if top is None else f"--top {top}", "top" if top is None else f"top={top}")


def _name() -> str:
    return arg("--name", "name")


def top_configurations(run_dir: Path, top: int) -> tuple[SearchConfig, list[dict]]:
    """(the run's config, its best `top` distinct configurations: trial id, score, values), best first."""
    flag = _from(run_dir)
    if not (run_dir / layout.CONFIG_FILE).is_file():
        raise UserError(flag, "", "expected a run directory written by ktsearch tune (with config.yaml)")
    old = integrity.saved_config(run_dir)[1]
    best = distinct_top(layout.read_trials(run_dir), old.tuner.objective, top)  # Hyperband's continuations: once
    picked = [{"trial_id": t["trial_id"], "score": t["score"], "values": t["hyperparameters"]} for t in best]
    if not picked:
        raise UserError(flag, "", "has no completed trial to start from")
    return old, picked


def adapt(values: dict, trial_id: str, old: SearchConfig, new: SearchConfig, flag: str) -> dict:
    """`values` of the earlier run's trial as the new space's values (its dimensions that are not off);
    UserError naming the first value that the new space cannot take."""
    from hypermodels.dimensions import condition_of, is_user_name

    def users(name: str) -> bool:  # a KerasTuner user's own `hp` name: the model declares it as it builds
        return new.space.open and old.space.open and is_user_name(name)

    out = {name: value for name, value in values.items() if users(name) and name not in new.space.dims}
    kind = values.get("schedule.kind")
    for name in values:
        if name not in new.space.dims and condition_of(name) is None and not users(name):
            raise UserError(
                flag,
                name,
                f"trial {trial_id} sets it, but the new search space has no such dimension "
                f"(hypermodel {new.hypermodel.name}); warm-start from a run of the same hypermodel",
            )
    for name, dim in new.space.dims.items():
        cond = condition_of(name)
        if cond is not None and cond != kind:
            continue  # a schedule parameter of another kind: the trial does not use it
        if name in values:
            value = values[name]
        elif name in old.space.dims and old.space.dims[name] is None:
            value = old.space.specs[name].off  # the earlier run had it off
        elif users(name) or name in getattr(old.space, "dropped", ()):
            continue  # a name the model declares only for some values, or one its compile made unused
        else:
            raise UserError(
                flag,
                name,
                f"the new search space has this dimension, but trial {trial_id} of the earlier run (hypermodel "
                f"{old.hypermodel.name}) never set it; fix it to one value in both, or start without {_from()}",
            )
        domain = "off" if dim is None else dim.describe()
        if dim is None:
            if value != new.space.specs[name].off:
                raise UserError(
                    flag, name, f"trial {trial_id} has {value!r}, outside the new search space (off); widen the space"
                )
            continue
        if not contains(dim, value):
            raise UserError(
                flag,
                name,
                f"trial {trial_id} has {value!r}, outside the new search space ({domain}); widen the space or "
                f"lower {_top()}",
            )
        out[name] = value
    return out


def plan(config: SearchConfig, source: str | Path, top: int | None) -> dict:
    """The checked warm start of a new run of `config` from the run `source` (what `warm_start.json` holds)."""
    top = TOP if top is None else top
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise UserError(_top(), "", f"expected a positive integer (configurations to start from), got {top!r}")
    run_dir = Path(source)
    flag = _from(source)
    if run_dir.resolve() == config.run_dir.resolve():
        raise UserError(flag, "", f"expected another run than the one this search writes; pass {_name()}")
    old, picked = top_configurations(run_dir, top)
    configs = [
        {"trial_id": p["trial_id"], "score": p["score"], "values": adapt(p["values"], p["trial_id"], old, config, flag)}
        for p in picked
    ]
    return {"from": str(run_dir), "top": top, "objective": old.tuner.objective, "configurations": configs}


def check_resume(config: SearchConfig, source: str | Path | None, top: int | None) -> None:
    """A resumed run keeps the warm start it began with: `--from`/`--top` may repeat it, not change it."""
    values(config.run_dir)  # a damaged warm_start.json is refused before the data loads
    if source is None:
        if top is not None:
            raise UserError(_top(), "", f"only used with {_from('RUN_DIR')}")
        return
    saved = read(config.run_dir)
    given = {"from": str(Path(source)), "top": TOP if top is None else top}
    if saved is None or {k: saved.get(k) for k in given} != given:
        began = f"without {_from()}" if saved is None else f"with {_from(saved['from'])} {_top(saved['top'])}"
        raise UserError(
            _from(source),
            "",
            f"run {config.run_dir} exists and began {began}; a warm start applies when a run starts: "
            f"resume it as it began, or pass {_name()} to start another",
        )


def write(run_dir: Path, warm: dict) -> None:
    layout.write_json(run_dir / WARM_FILE, warm)


def read(run_dir: Path) -> dict | None:
    """The run's warm start, or None (a run started without --from)."""
    data, _ = layout.load_json(Path(run_dir) / WARM_FILE)
    return data if isinstance(data, dict) and isinstance(data.get("configurations"), list) else None


def values(run_dir: Path) -> list[dict]:
    """The configurations the run's oracle proposes first, in order ([] without a warm start); UserError when
    the run's warm_start.json is damaged (without it a resume would propose other trials than the run did)."""
    warm = read(run_dir)
    path = Path(run_dir) / WARM_FILE
    if warm is None and path.exists():
        raise UserError(
            str(path),
            "",
            "is damaged (not the warm start tune --from wrote); restore it from a copy, or start the "
            "run over with --overwrite",
        )
    return [c["values"] for c in warm["configurations"]] if warm else []


def describe(warm: dict) -> str:
    ids = ", ".join(f"{c['trial_id']} ({c['score']:.4f})" for c in warm["configurations"])
    n = len(warm["configurations"])
    short = f" (only {n} completed configurations there)" if n < warm["top"] else ""
    return (
        f"warm start: the first {n} new configurations are {warm['from']}'s best by {warm['objective']}{short}: "
        f"trials {ids}"
    )
