"""`ktsearch simulate`: the clock and the accounting on tiny tables whose answers are worked out by
hand, the real oracle classes behind it, early stopping as Keras does it, and the command itself on
curves a real run recorded."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import yaml

from search.algorithms import oracles
from search.analysis import simulate
from search.config import load_config
from search.engine.seeding import oracle_seed
from search.runs import layout
from tests.conftest import CONFIGS, run_cli

TINY = {
    "name": "tiny",
    "seed": 1,
    "data": {"source": "digits", "image_size": None},
    "hypermodel": {"name": "cnn"},
    "search_space": {
        "augmentation": {"rotation_range": {"min": 0, "max": 20}},
        "batchnorm": {"placement": "none"},
        "schedule": {"kind": "constant", "initial_lr": 0.001},
        "model": {"filters": 8, "conv_blocks": 1, "dense_units": 32, "dropout": 0.1},
    },
    "tuner": {"algorithm": "hyperband", "objective": "val_accuracy", "max_epochs": 3, "factor": 3},
    "early_stopping": {"monitor": "val_loss", "patience": 3},
}


def _config(tmp_path, **changes):
    raw = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            raw[section][key] = value
        else:
            raw[section] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def _table(cfg, curves, overhead=0.5, trace=0.0, gap=0.0) -> simulate.CurveTable:
    return simulate.CurveTable(
        objective="val_accuracy",
        direction="max",
        monitor="val_loss",
        max_epochs=cfg.tuner.max_epochs,
        recorded=simulate.recorded_sections(cfg),
        curves=curves,
        overhead_s=overhead,
        trace_s=trace,
        gap_s=gap,
    )


def _curve(trial_id, values, epoch_s, epochs=3, score=0.9):
    return simulate.Curve(
        trial_id,
        values,
        [score + 0.01 * e for e in range(epochs)],  # improving: early stopping never fires
        [1.0 - 0.1 * e for e in range(epochs)],
        [epoch_s] * epochs,
    )


def _busy_never_overlaps_and_continuations_follow_parents(result) -> None:
    by_worker: dict[str, list] = {}
    ended = {}
    for t in result["schedule"]:
        by_worker.setdefault(t["worker"], []).append((t["start"], t["end"]))
        ended[t["trial_id"]] = t["end"]
    for spans in by_worker.values():
        spans.sort()
        assert all(
            a[1] <= b[0] + 1e-9 for a, b in zip(spans, spans[1:], strict=False)
        )  # one trial at a time per worker
    for t in result["schedule"]:
        parent = t["parent"]
        if parent is not None:
            assert ended[parent] <= t["start"] + 1e-9  # a continuation starts from a finished checkpoint


# -- the clock and the accounting, by hand ------------------------------------------------


def test_equal_durations_one_worker_is_the_sum_of_the_trials(tmp_path):
    cfg = _config(tmp_path)
    table = _table(cfg, [_curve("0", {"augmentation.rotation_range": 10.0}, 1.0)])
    result = simulate.simulate(cfg, table, 1, chief_service=0.0)
    # Hyperband, max_epochs 3, factor 3: bracket 1 = 3 trials x 1 epoch, then 1 x 2 more; bracket 0 = 2 x 3.
    assert (result["trials"], result["epochs"]) == (6, 11)
    assert result["wall_s"] == pytest.approx(11 * 1.0 + 6 * 0.5)
    assert result["utilisation"] == pytest.approx(1.0)
    assert result["oracle"] == "HyperbandSearch"


def test_equal_durations_two_workers_wait_at_hyperbands_last_round(tmp_path):
    """Worked by hand (1 s epochs, 0.5 s per trial):
    t=0    w0: bracket 1 round 0 (1.5 s)     w1: bracket 1 round 0 (1.5 s)
    t=1.5  w0: the third of round 0 (1.5 s)  w1: round 1 not ready (2 of 3 done): bracket 0 starts (3.5 s)
    t=3.0  w0: round 1, the best of 3 continues for 2 epochs (2.5 s)
    t=5.0                                    w1: bracket 0's second trial (3.5 s)
    t=5.5  w0: nothing left but the running trial: IDLE, asks again after 0.2, 0.4, 0.8, 1.6 s
    t=8.5  the last trial ends: both STOPPED. Busy 14 s of 2 x 8.5 s; every worker busy until 5.5 s."""
    cfg = _config(tmp_path)
    table = _table(cfg, [_curve("0", {"augmentation.rotation_range": 10.0}, 1.0)])
    result = simulate.simulate(cfg, table, 2, chief_service=0.0)
    assert result["wall_s"] == pytest.approx(8.5)
    assert result["trials"] == 6
    assert result["utilisation"] == pytest.approx(14 / 17, abs=1e-4)
    assert result["waiting"] == pytest.approx(3 / 17, abs=1e-4)
    assert result["done_early"] == 0
    assert result["all_busy_until"] == pytest.approx(5.5 / 8.5, abs=1e-4)
    starts = sorted((t["start"], t["worker"], t["epochs_run"]) for t in result["schedule"])
    assert starts == [
        (0.0, "worker0", 1),
        (0.0, "worker1", 1),
        (1.5, "worker0", 1),
        (1.5, "worker1", 3),
        (3.0, "worker0", 2),
        (5.0, "worker1", 3),
    ]
    _busy_never_overlaps_and_continuations_follow_parents(result)


def test_one_straggler_leaves_the_other_worker_done_early(tmp_path):
    """Random search of 2 trials over a 2-value choice: one trains 1 s epochs, the other 10 s ones."""
    cfg = _config(
        tmp_path,
        search_space__batchnorm={"placement": {"choice": ["none", "after_activation"]}},
        search_space__augmentation={"rotation_range": 0},
        tuner={"algorithm": "random", "objective": "val_accuracy", "max_epochs": 2, "max_trials": 2},
    )
    fixed = {"augmentation.rotation_range": 0.0}
    curves = [
        _curve("fast", {**fixed, "batchnorm.placement": "none"}, 1.0, epochs=2),
        _curve("slow", {**fixed, "batchnorm.placement": "after_activation"}, 10.0, epochs=2),
    ]
    table = _table(cfg, curves, overhead=0.0)
    two = simulate.simulate(cfg, table, 2, chief_service=0.0)
    assert two["wall_s"] == pytest.approx(20.0)  # the straggler alone decides the wall time
    assert two["utilisation"] == pytest.approx(22 / 40)
    assert two["done_early"] == pytest.approx(18 / 40)  # told STOPPED at 2 s: max_trials reached
    assert two["waiting"] == 0
    assert two["all_busy_until"] == pytest.approx(0.1)
    one = simulate.simulate(cfg, table, 1, chief_service=0.0)
    assert one["wall_s"] == pytest.approx(22.0) and one["utilisation"] == pytest.approx(1.0)


def test_tracing_overhead_and_the_gap_add_up_per_worker(tmp_path):
    """A worker traces a graph once (reuse_models keeps it), pays the overhead per trial and the gap between trials."""
    cfg = _config(
        tmp_path, tuner={"algorithm": "random", "objective": "val_accuracy", "max_epochs": 3, "max_trials": 4}
    )
    table = _table(cfg, [_curve("0", {"augmentation.rotation_range": 10.0}, 1.0)], overhead=0.5, trace=2.0, gap=0.25)
    result = simulate.simulate(cfg, table, 1, chief_service=0.0)
    # 4 trials x (3 epochs + 0.5) + one trace + 3 gaps between them.
    assert result["wall_s"] == pytest.approx(4 * 3.5 + 2.0 + 3 * 0.25)
    assert result["utilisation"] == pytest.approx(1.0)
    fresh = simulate.simulate(
        cfg.with_tuner(reuse_models=0), table, 1, chief_service=0.0
    )  # no pool: every trial traces
    assert fresh["wall_s"] == pytest.approx(4 * 5.5 + 3 * 0.25)


def test_time_to_target_is_when_the_best_so_far_first_reaches_it(tmp_path):
    cfg = _config(
        tmp_path, tuner={"algorithm": "random", "objective": "val_accuracy", "max_epochs": 3, "max_trials": 3}
    )
    low = _curve("0", {"augmentation.rotation_range": 0.0}, 1.0, score=0.5)
    high = _curve("1", {"augmentation.rotation_range": 20.0}, 1.0, score=0.9)
    table = _table(cfg, [low, high], overhead=0.0)
    result = simulate.simulate(cfg, table, 1, target=0.92, chief_service=0.0)
    bests = [score for _, score in result["best_over_time"]]
    assert bests == sorted(bests)
    hits = [t for t in result["schedule"] if t["score"] >= 0.92]
    assert result["time_to_target_s"] == (min(t["end"] for t in hits) if hits else None)
    assert simulate.simulate(cfg, table, 1, target=0.99, chief_service=0.0)["time_to_target_s"] is None


def test_a_busy_chief_answers_in_arrival_order_and_its_queue_is_the_workers_loss(tmp_path):
    """Random search of 2 trials, 2 s each, a chief that takes 1 s per request (worked by hand):
    t=0-1  w0's ask   1-2  w1's ask (waited 1 s)   w0 trains 1-3, w1 2-4
    t=3-4  w0's report   4-5  w1's report (arrived at 4)   4-6 w0's ask, STOPPED; 5-7 w1's ask, STOPPED
    Wall 5 s (the last report answered); busy 4 of 10 worker-seconds, the other 6 at the chief."""
    cfg = _config(
        tmp_path, tuner={"algorithm": "random", "objective": "val_accuracy", "max_epochs": 2, "max_trials": 2}
    )
    table = _table(cfg, [_curve("0", {"augmentation.rotation_range": 10.0}, 1.0, epochs=2)], overhead=0.0)
    result = simulate.simulate(cfg, table, 2, chief_service=1.0)
    assert sorted((t["worker"], t["start"], t["end"]) for t in result["schedule"]) == [
        ("worker0", 1.0, 3.0),
        ("worker1", 2.0, 4.0),
    ]
    assert result["wall_s"] == pytest.approx(5.0)
    assert result["utilisation"] == pytest.approx(0.4)
    assert result["at_chief"] == pytest.approx(0.6)
    assert result["waiting"] == 0 and result["done_early"] == 0
    assert result["chief_load"] == pytest.approx(4 / 5)  # answering 4 of the 5 s; the STOPPED answers come after
    at_once = simulate.simulate(cfg, table, 2, chief_service=0.0)
    assert (at_once["wall_s"], at_once["at_chief"]) == (2.0, 0.0)


# -- the real oracles -------------------------------------------------------------------------


def by_hand(cfg, tmp_path) -> tuple[list[dict], object]:
    """(the configurations `make_oracle`'s oracle for `cfg` proposes, driven by hand trial by trial with the shipped
    curves' scores as one simulated worker would see them; that oracle)."""
    table = simulate.load_table(CONFIGS / "curves_mnist5k.json")
    surrogate = simulate.Surrogate(
        table, simulate.search_space(cfg), cfg.early_stopping.patience, cfg.early_stopping.min_delta
    )
    oracle = oracles.make_oracle(cfg.tuner, _objective(), oracle_seed(cfg.seed))
    oracle.hyperparameters = simulate.search_space(cfg)
    oracle.verbose = 0
    from hypermodels import private_api

    private_api.attach_project(oracle, str(tmp_path), "by-hand")
    proposed = []
    while (trial := oracle.create_trial("tuner0")).status == "RUNNING":
        real, book = layout.split_values(trial.hyperparameters.values)
        curve, ran, _ = surrogate.trial(
            real, int(book.get("initial_epoch", 0)), int(book.get("epochs", cfg.tuner.max_epochs))
        )
        for epoch in ran:
            oracle.update_trial(
                trial.trial_id, {"val_accuracy": curve.scores[epoch], "val_loss": curve.monitor[epoch]}, epoch
            )
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        proposed.append(trial.hyperparameters.values)
    return proposed, oracle


def test_one_simulated_worker_gets_what_bohbs_model_proposes(tmp_path):
    """The simulator drives the real oracle (every algorithm: tests/search/test_algorithm_contract.py), BOHB's
    model included: with enough results for it, the simulated search proposes what the model proposes."""
    cfg = load_config(CONFIGS / "mnist5k.yaml").with_tuner(algorithm="bohb", hyperband_iterations=3)
    result = simulate.simulate(cfg, simulate.load_table(CONFIGS / "curves_mnist5k.json"), 1)
    assert result["oracle"] == type(oracles.make_oracle(cfg.tuner, _objective(), 1)).__name__
    proposed, oracle = by_hand(cfg, tmp_path)
    assert [t["values"] for t in result["schedule"]] == proposed
    assert "model" in {p["by"] for p in oracle.proposals.values()}  # BOHB's own model proposed some


def _objective():
    import keras_tuner as kt

    return kt.Objective("val_accuracy", "max")


@pytest.mark.parametrize("algorithm", ["hyperband", "asha"])
def test_many_workers_run_every_trial_once_and_continue_only_finished_parents(algorithm):
    cfg = load_config(CONFIGS / "mnist5k.yaml").with_tuner(algorithm=algorithm)
    cfg = simulate.sized(cfg, 10, 16)
    table = simulate.load_table(CONFIGS / "curves_mnist5k.json")
    result = simulate.simulate(cfg, table, 16)
    assert result["trials"] >= 160  # at least 10 trials per worker
    assert len({t["trial_id"] for t in result["schedule"]}) == result["trials"]
    _busy_never_overlaps_and_continuations_follow_parents(result)
    total = result["utilisation"] + result["waiting"] + result["at_chief"] + result["done_early"]
    assert total == pytest.approx(1.0, abs=1e-3)
    assert 0 < result["chief_load"] < 1  # the real seconds of the oracle's calls, a server busy part of the time


def test_sizing_gives_every_algorithm_at_least_k_trials_per_worker():
    from search.algorithms.schedule import make_plan

    base = load_config(CONFIGS / "mnist5k.yaml")
    for algorithm in ("hyperband", "bohb", "asha", "random"):
        for workers in (1, 4, 64):
            cfg = simulate.sized(base.with_tuner(algorithm=algorithm), 10, workers)
            assert make_plan(cfg)["trials"] >= 10 * workers
    assert simulate.sized(base, 0, 64) is base  # 0: the search as configured


# -- early stopping and the surrogate -----------------------------------------------------


@pytest.mark.parametrize("patience, min_delta", [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.05)])
def test_early_stopping_stops_where_kerass_callback_stops(patience, min_delta):
    """The simulator's early stopping against Keras's own EarlyStopping fed the same curves."""
    rng = np.random.default_rng(patience)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    cfg = load_config(CONFIGS / "mnist5k.yaml")
    table = simulate.load_table(CONFIGS / "curves_mnist5k.json")
    surrogate = simulate.Surrogate(table, simulate.search_space(cfg), patience, min_delta)
    for _ in range(40):
        monitor = list(np.round(rng.random(9), 2))
        curve = simulate.Curve("x", {}, [0.0] * 9, monitor, [1.0] * 9)
        initial = int(rng.integers(0, 5))
        callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, min_delta=min_delta)
        callback.set_model(model)
        model.stop_training = False
        callback.on_train_begin()
        ran = []
        for epoch in range(initial, 9):
            ran.append(epoch)
            callback.on_epoch_end(epoch, {"val_loss": monitor[epoch]})
            if model.stop_training:
                break
        assert surrogate.epochs_run(curve, initial, 9) == ran, (monitor, initial)


def test_a_recorded_configuration_maps_to_its_own_curve():
    cfg = load_config(CONFIGS / "mnist5k.yaml")
    table = simulate.load_table(CONFIGS / "curves_mnist5k.json")
    surrogate = simulate.Surrogate(table, simulate.search_space(cfg), 3, 0.0)
    assert all(surrogate.nearest(c.values) is c for c in table.curves)
    assert len(table.curves) == 64 and all(len(c.epoch_seconds) == 9 for c in table.curves)


# -- the command, on curves a real run recorded ----------------------------------------------


@pytest.mark.slow
def test_record_then_simulate_through_the_cli(tmp_path):
    """A real recording run (digits, random search, early stopping that never fires), then the
    simulator over its directory and over the JSON it wrote: same table, same predictions."""
    raw = yaml.safe_load((CONFIGS / "digits_smoke.yaml").read_text())
    recording = {
        **raw,
        "name": "rec",
        "tuner": {"algorithm": "random", "objective": "val_accuracy", "max_epochs": 3, "max_trials": 4},
        "early_stopping": {"monitor": "val_loss", "patience": 3},
    }
    (tmp_path / "rec.yaml").write_text(yaml.safe_dump(recording))
    (tmp_path / "search.yaml").write_text(yaml.safe_dump({**raw, "name": "search"}))
    tuned = run_cli("tune", "rec.yaml", "--quiet", cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    record = json.loads((tmp_path / "results/rec/tuner/trial_0/epochs.json").read_text())
    assert len(record["epoch_seconds"]) == 3 and all(s > 0 for s in record["epoch_seconds"])
    timeline = json.loads((tmp_path / "results/rec/tuner/oracle.json").read_text())["ktsearch_budget"]["timeline"]
    assert sorted(timeline) == ["0", "1", "2", "3"]
    assert all(end > start for _, start, end in timeline.values())

    args = ["--workers", "1,2", "--algorithms", "hyperband,asha"]
    first = run_cli(
        "simulate",
        "search.yaml",
        "--curves",
        "results/rec",
        *args,
        "-o",
        "sim",
        "--write-curves",
        "c.json",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "sim/simulation.png").stat().st_size > 10_000
    result = json.loads((tmp_path / "sim/simulation.json").read_text())
    assert [(c["algorithm"], c["workers"]) for c in result["cells"]] == [
        ("hyperband", 1),
        ("hyperband", 2),
        ("asha", 1),
        ("asha", 2),
    ]
    assert result["cells"][0]["utilisation"] == pytest.approx(1.0, abs=0.01)
    table = json.loads((tmp_path / "c.json").read_text())
    assert len(table["curves"]) == 4 and table["source"]["workers"] == 1
    again = run_cli("simulate", "search.yaml", "--curves", "c.json", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rows = lambda out: [line for line in out.splitlines() if line.startswith("| ")]  # noqa: E731
    assert rows(again.stdout) == rows(first.stdout)
    md = (tmp_path / "sim/simulation.md").read_text()
    assert all(line in md for line in rows(first.stdout))


def test_the_oracle_keeps_each_trials_timeline_across_a_reload(tmp_path):
    """Which worker ran each trial from when to when, in seconds of search: what a real run's
    utilisation is read from, as the simulator reads its own."""
    from hypermodels import private_api

    class Clock:
        now = 100.0

        def __call__(self):
            return self.now

    clock = Clock()
    cfg = load_config(CONFIGS / "mnist5k.yaml").with_tuner(algorithm="random", max_trials=3)

    def oracle():
        o = oracles.make_oracle(cfg.tuner, _objective(), 1, clock=clock)
        o.hyperparameters = simulate.search_space(cfg)
        o.verbose = 0
        private_api.attach_project(o, str(tmp_path), "timeline")
        return o

    first = oracle()
    a = first.create_trial("w0")
    clock.now += 1.0
    b = first.create_trial("w1")
    for trial, seconds in ((a, 3.0), (b, 1.0)):
        clock.now += seconds
        first.update_trial(trial.trial_id, {"val_accuracy": 0.5}, 0)
        trial.status = "COMPLETED"
        first.end_trial(trial)
    assert first.timeline == {a.trial_id: ["w0", 0.0, 4.0], b.trial_id: ["w1", 1.0, 5.0]}
    again = oracle()
    again.reload()
    assert again.timeline == first.timeline
    measured = layout.timeline_accounting(again.timeline)
    assert measured == {
        "wall_s": 5.0,
        "trials": 2,
        "workers": 2,
        "utilisation": pytest.approx(8 / 10),
    }  # (4 + 4) / (2 x 5)
