"""Cost per architecture, the size and latency Pareto fronts of `report`, and `export --max-*`: real
CLI processes on a copy of the shared digits search, real models built, saved and timed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from search.production import costs
from search.runs import layout
from search.runtime import cpu_model
from tests.conftest import run_cli, tree_state

pytestmark = pytest.mark.slow  # every test here reads the shared digits search (`smoke_run`)


@pytest.fixture(scope="module")
def measured(smoke_run, tmp_path_factory) -> Path:
    """A copy of the shared digits search, its costs measured by `ktsearch costs`."""
    run_dir = tmp_path_factory.mktemp("costs") / "results" / "digits-smoke"
    shutil.copytree(smoke_run, run_dir, ignore=shutil.ignore_patterns(costs.COSTS_FILE, "report*", "best.yaml"))
    proc = run_cli("costs", str(run_dir), cwd=run_dir.parent.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir / "costs.stdout").write_text(proc.stdout)
    return run_dir


def _completed(run_dir: Path) -> list[dict]:
    return [t for t in layout.read_trials(run_dir) if t["status"] == "COMPLETED"]


def test_costs_are_measured_once_per_architecture_with_the_machine_recorded(measured):
    data = json.loads((measured / costs.COSTS_FILE).read_text())
    trials = _completed(measured)
    # digits_smoke fixes every model dimension: BatchNorm placement alone changes the network.
    placements = {t["hyperparameters"]["batchnorm.placement"] for t in trials}
    arch = data["architectures"]
    assert len(arch) == len(placements)
    assert set(data["trials"]) == {t["trial_id"] for t in trials}
    for t in trials:  # trials of one placement share one architecture, and only they do
        same = {
            u["trial_id"]
            for u in trials
            if u["hyperparameters"]["batchnorm.placement"] == t["hyperparameters"]["batchnorm.placement"]
        }
        assert set(arch[data["trials"][t["trial_id"]]]["trials"]) == same
    by_placement = {t["hyperparameters"]["batchnorm.placement"]: arch[data["trials"][t["trial_id"]]] for t in trials}
    assert "none" in by_placement and len(by_placement) > 1  # the smoke search tries each placement
    others = [c for p, c in by_placement.items() if p != "none"]  # BatchNorm adds parameters, and bytes to the file
    assert all(by_placement["none"]["params"] < c["params"] for c in others)
    assert all(by_placement["none"]["size_bytes"] < c["size_bytes"] for c in others)
    for cost in arch.values():
        assert cost["params"] > 1000 and cost["size_bytes"] > 10_000
        for batch in ("1", "32"):
            lat = cost["latency_ms"][batch]
            assert 0 < lat["median"] <= lat["p90"] and costs.MIN_REPEATS <= lat["repeats"] <= costs.REPEATS
        assert cost["latency_ms"]["32"]["median"] > cost["latency_ms"]["1"]["median"]  # 32 images take longer
    assert data["measured"]["cpu"] == cpu_model() and data["measured"]["device"] == "CPU"
    out = (measured / "costs.stdout").read_text()
    assert f"{len(arch)} architecture(s), {len(arch)} measured now" in out and f"on CPU ({cpu_model()}" in out


def test_costs_are_not_measured_twice_and_a_file_from_another_machine_is_never_mixed_nor_replaced_unasked(
    measured, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(measured, run_dir)
    before = json.loads((run_dir / costs.COSTS_FILE).read_text())
    again = run_cli("costs", str(run_dir), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 measured now" in again.stdout
    assert json.loads((run_dir / costs.COSTS_FILE).read_text())["architectures"] == before["architectures"]
    # Measured elsewhere (on the target device, say), and one architecture missing (the run was extended):
    # those latencies are never mixed with this machine's, nor replaced unasked.
    other = json.loads(json.dumps(before))
    other["measured"]["cpu"] = "Some Other CPU"
    dropped = sorted(other["architectures"])[0]
    del other["architectures"][dropped]
    (run_dir / costs.COSTS_FILE).write_text(json.dumps(other))
    kept = tree_state(run_dir)
    for argv in (["costs", str(run_dir)], ["export", str(run_dir), "--max-size-mb", "100"]):
        proc = run_cli(*argv, cwd=tmp_path)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert f"costs.json: was measured on CPU (Some Other CPU), this machine is CPU ({cpu_model()})" in proc.stderr
        assert "1 architecture(s) of the run are not in it" in proc.stderr and "--remeasure" in proc.stderr
    assert tree_state(run_dir) == kept
    proc = run_cli("costs", str(run_dir), "--remeasure", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((run_dir / costs.COSTS_FILE).read_text())
    assert after["measured"]["cpu"] == cpu_model() and set(after["architectures"]) == set(before["architectures"])
    assert f"{len(before['architectures'])} measured now" in proc.stdout
    (run_dir / costs.COSTS_FILE).write_text('{"format": 1, "archit')  # damaged: measured again, said so
    damaged = run_cli("costs", str(run_dir), cwd=tmp_path)
    assert damaged.returncode == 0, damaged.stderr
    assert "is not a costs file ktsearch can read: measuring every architecture again" in damaged.stdout
    assert set(json.loads((run_dir / costs.COSTS_FILE).read_text())["architectures"]) == set(before["architectures"])


def test_report_shows_both_pareto_fronts_and_marks_the_dominated_trials(measured):
    proc = run_cli("report", str(measured), cwd=measured.parent.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "measuring" not in proc.stdout  # the costs were measured already
    text = (measured / "report.md").read_text()
    assert "## Size and latency: Pareto fronts" in text
    for axis in ("size", "latency"):
        png = measured / "report" / f"pareto_{axis}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"](report/pareto_{axis}.png)" in text
    rows = [line for line in text.splitlines() if re.match(r"\| \d{4} \| 0\.\d{4} \|", line)]
    table = {}
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8:  # the fronts' table (the top-trials table has other columns)
            table[cells[0]] = {
                "score": float(cells[1]),
                "size": float(cells[3]),
                "latency": float(cells[4]),
                "size front": cells[6],
                "latency front": cells[7],
            }
    assert set(table) == {t["trial_id"] for t in _completed(measured)}
    best = max(table, key=lambda k: (table[k]["score"], -int(k)))
    for axis, front in (("size", "size front"), ("latency", "latency front")):
        assert table[best][front] == "**front**"  # the best score is never dominated
        for trial_id, row in table.items():
            mark = row[front]
            if mark == "**front**":  # nobody is at least as good and as cheap, better in one
                assert not any(
                    o["score"] >= row["score"]
                    and o[axis] <= row[axis]
                    and (o["score"] > row["score"] or o[axis] < row[axis])
                    for k, o in table.items()
                    if k != trial_id
                )
            else:  # the named trial does dominate it
                other = table[mark.removeprefix("dominated by ")]
                assert other["score"] >= row["score"] and other[axis] <= row[axis]
    csv = run_cli("report", str(measured), "--format", "csv", "-o", "-", cwd=measured.parent.parent)
    header = csv.stdout.splitlines()[0].split(",")
    assert {"cost.params", "cost.size_mb", "cost.latency_ms_batch1", "cost.latency_ms_batch32"} <= set(header)


def test_export_picks_the_best_trial_that_meets_every_constraint(measured, tmp_path):
    data = json.loads((measured / costs.COSTS_FILE).read_text())
    arch = data["architectures"]
    smallest = min(arch, key=lambda a: arch[a]["params"])
    limit = arch[smallest]["params"]
    out = tmp_path / "small.yaml"
    proc = run_cli("export", str(measured), "-o", str(out), "--max-params", str(limit), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    export = yaml.safe_load(out.read_text())
    prov = export["provenance"]
    fitting = [t for t in _completed(measured) if arch[data["trials"][t["trial_id"]]]["params"] <= limit]
    best = max(fitting, key=lambda t: (t["score"], -int(t["trial_id"])))
    assert prov["trial_id"] == best["trial_id"] and prov["constraints"] == {"max_params": limit}
    assert prov["costs"]["params"] <= limit and prov["costs"]["architecture"] == smallest
    assert f"constraints: trial {best['trial_id']} has {limit:,} params" in proc.stdout
    assert f"{len(fitting)} of {len(_completed(measured))} completed trials meet the constraints" in proc.stdout
    check = run_cli("validate", str(out), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    # Loose enough for every trial: the search's best, as without constraints.
    loose = run_cli("export", str(measured), "-o", str(tmp_path / "any.yaml"), "--max-size-mb", "100", cwd=tmp_path)
    assert loose.returncode == 0, loose.stderr
    search_best = layout.best_trial(layout.read_trials(measured), "val_accuracy")
    assert yaml.safe_load((tmp_path / "any.yaml").read_text())["provenance"]["trial_id"] == search_best["trial_id"]


def test_export_names_the_constraint_no_trial_meets_and_the_closest_trial(measured, tmp_path):
    before = tree_state(measured)
    proc = run_cli("export", str(measured), "-o", str(tmp_path / "x.yaml"), "--max-latency-ms", "0.0001", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    data = json.loads((measured / costs.COSTS_FILE).read_text())
    fastest = min(c["latency_ms"]["1"]["median"] for c in data["architectures"].values())
    assert "--max-latency-ms 0.0001: no trial of" in proc.stderr and "the fastest, trial" in proc.stderr
    assert f"{fastest:.3f} ms at batch 1" in proc.stderr
    assert not (tmp_path / "x.yaml").exists() and tree_state(measured) == before
    # Each constraint met by some trial, never both by one: the smallest architecture made the slowest.
    run_dir = tmp_path / "run"
    shutil.copytree(measured, run_dir)
    arch = data["architectures"]
    order = sorted(arch, key=lambda a: arch[a]["params"])
    for rank, a in enumerate(order):  # latency now falls as params rise
        arch[a]["latency_ms"]["1"]["median"] = 10.0 - rank
    (run_dir / costs.COSTS_FILE).write_text(json.dumps(data))
    small, fast = arch[order[0]]["params"], 10.0 - (len(order) - 1)
    both = run_cli("export", str(run_dir), "--max-params", str(small), "--max-latency-ms", str(fast), cwd=tmp_path)
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1, both.stderr
    assert f"--max-params {small} and --max-latency-ms {fast}: no trial of" in both.stderr
    assert "meets them together: the closest, trial" in both.stderr and "over --max-" in both.stderr
    assert not (run_dir / "best.yaml").exists()
