"""ktsearch inside a plain KerasTuner script, end to end on digits: `search.BOHB` and `search.ASHA` (search, best
model, resume after kill -9, KerasTuner's distributed mode), the `hp` helpers inside `kt.RandomSearch`, and
`ktsearch report` / `ktsearch tensorboard` on a real `kt.Hyperband` project (a real TensorBoard server).

The script is `keras_tuner_script.py`, run as a user runs one: a subprocess of its own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import QUIET_ENV, ROOT, _free_port, run_cli, tensorboard_server, tree_state

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("keras_tuner_script.py")
ENV = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT)}
STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def _start(tuner: str, cwd: Path, project: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), tuner, "kt_dir", project],
        cwd=cwd,
        env={**ENV, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return {"result": json.loads(out.strip().splitlines()[-1]), "stdout": out}


def _trials(project: Path) -> dict[str, dict]:
    out = {}
    for path in project.glob("trial_*/trial.json"):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # being written
    return out


def _killed_and_resumed(tuner: str, cwd: Path) -> dict:
    """The script SIGKILLed once 2 trials completed, then run again (overwrite=False: KerasTuner reloads)."""
    project = cwd / "kt_dir" / tuner
    proc = _start(tuner, cwd, tuner)
    deadline = time.monotonic() + 300
    while sum(t["status"] == "COMPLETED" for t in _trials(project).values()) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {k: v for k, v in _trials(project).items() if v["status"] == "COMPLETED"}
    resumed = _finish(_start(tuner, cwd, tuner))
    return {**resumed, "before_kill": before, "after": _trials(project)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("script")
    out = {"cwd": cwd}
    for tuner in ("BOHB", "ASHA"):
        out[tuner] = _killed_and_resumed(tuner, cwd)
    for tuner in ("Hyperband", "RandomSearch"):
        out[tuner] = _finish(_start(tuner, cwd, tuner))
        out[tuner]["after"] = _trials(cwd / "kt_dir" / tuner)
    return out


@pytest.mark.parametrize("tuner", ("BOHB", "ASHA"))
def test_each_tuner_searches_resumes_after_kill_9_and_gives_its_best_model(runs, tuner):
    run = runs[tuner]
    assert "Reloading Tuner" in run["stdout"]
    assert run["result"]["best_val_accuracy"] > 0.8  # a real model, trained (chance: 0.1)
    after = run["after"]
    assert run["result"]["trials"] == len(after) and all(t["status"] == "COMPLETED" for t in after.values())
    # The trials that had ended before the kill are kept as they were, not trained again.
    for name, state in run["before_kill"].items():
        assert after[name]["score"] == state["score"]
        assert after[name]["hyperparameters"]["values"] == state["hyperparameters"]["values"]
    continued = [t for t in after.values() if "tuner/trial_id" in t["hyperparameters"]["values"]]
    assert continued, "a continuation trains on from its parent's checkpoint"
    if tuner == "BOHB":
        assert len(after) == 6  # Hyperband's plan for max_epochs 3, factor 3: 3 + 1 and 2 trials
    else:
        values = [t["hyperparameters"]["values"] for t in after.values()]
        new = [v for v in values if v["tuner/round"] == 0]
        spent = sum(v["tuner/epochs"] - v["tuner/initial_epoch"] for v in values)
        # By default Hyperband's planned epochs for the same arguments (3 x 1 + 1 x 2 + 2 x 3 = 11), over as many
        # new configurations as they hold (7 x 1 + 2 x 2 on rungs at 1 and 3 epochs).
        assert len(new) <= 7 and 11 - 2 < spent <= 11, (len(new), spent)


def test_helpers_inside_keras_tuner_random_search(runs):
    after = runs["RandomSearch"]["after"]
    assert len(after) == 4 and runs["RandomSearch"]["result"]["best_val_accuracy"] > 0.8
    space = {p["config"]["name"]: p for p in next(iter(after.values()))["hyperparameters"]["space"]}
    # ktsearch's names and domains, as its configs declare them.
    rotation = space["augmentation.rotation_range"]
    assert rotation["class_name"] == "Float" and (rotation["config"]["min_value"], rotation["config"]["max_value"]) == (
        0,
        15,
    )
    assert space["augmentation.zoom_range"]["class_name"] == "Fixed"
    assert space["batchnorm.placement"]["config"]["values"] == ["none", "before_activation", "after_activation"]
    assert space["schedule.kind"]["config"]["values"] == ["constant", "step", "exponential", "cosine"]
    assert space["schedule.drop_epoch"]["config"]["conditions"]  # only when schedule.kind is step
    assert space["schedule.initial_lr"]["config"]["sampling"] == "log"
    for state in after.values():
        values = state["hyperparameters"]["values"]
        assert 0 <= values["augmentation.rotation_range"] <= 15 and values["schedule.warmup_epochs"] in (0, 1)


def test_report_on_a_plain_keras_tuner_project_writes_its_own_directory(runs):
    cwd = runs["cwd"]
    project = cwd / "kt_dir" / "Hyperband"
    untouched = tree_state(project)
    proc = run_cli("report", "kt_dir/Hyperband", "-o", "view", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree_state(project) == untouched
    text = (cwd / "view" / "report.md").read_text()
    trials = runs["Hyperband"]["after"]
    best = max(trials.values(), key=lambda t: t["score"])
    assert f"| {best['trial_id']} | {best['score']:.4f} |" in text  # the top trial first, by the project's scores
    assert "## Brackets" in text and "## Hyperparameter importance" in text and "augmentation.rotation_range" in text
    assert text.count("per-epoch curves") == 1 and "## Early stopping" not in text  # said once, not guessed
    assert (cwd / "view" / "report" / "importance.png").is_file()
    # Never into the project, not even by accident.
    inside = run_cli("report", "kt_dir/Hyperband", "-o", "kt_dir/Hyperband/view", cwd=cwd)
    assert inside.returncode == 2 and len(inside.stderr.strip().splitlines()) == 1 and "outside" in inside.stderr
    assert tree_state(project) == untouched
    # Nor over a directory of other files.
    (cwd / "mine").mkdir()
    (cwd / "mine" / "notes.txt").write_text("mine")
    taken = run_cli("report", "kt_dir/Hyperband", "-o", "mine", cwd=cwd)
    assert taken.returncode == 2 and "new or empty directory" in taken.stderr
    assert tree_state(cwd / "mine") == {"notes.txt": tree_state(cwd / "mine")["notes.txt"]}
    # No -o: a temporary directory of its own, named on the output.
    default = run_cli("report", "kt_dir/Hyperband", "--format", "csv", cwd=cwd)
    assert default.returncode == 0, default.stderr[-2000:]
    written = Path(default.stdout.strip().splitlines()[-1].removeprefix("wrote "))
    assert written.is_file() and project not in written.parents and written.read_text().count("\n") == len(trials) + 1


def test_tensorboard_on_a_plain_keras_tuner_project(runs, tmp_path):
    from search.analysis.projects import view

    cwd = runs["cwd"]
    project = cwd / "kt_dir" / "Hyperband"
    untouched = tree_state(project)
    shown = view(project, tmp_path / "view", log=lambda line: None)
    assert tree_state(project) == untouched
    trials = runs["Hyperband"]["after"]
    with tensorboard_server(shown.run_dir / "tensorboard") as tb:
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})
        query = {"experimentName": "", "allowedStatuses": STATUSES, "colParams": [], "startIndex": 0, "sliceSize": 99}
        groups = {g["name"]: g for g in tb.post("/data/plugin/hparams/session_groups", query)["sessionGroups"]}
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    # Declared domains, from the project's oracle.json (values no trial drew included).
    interval = infos["augmentation.rotation_range"]["domainInterval"]
    assert (interval["minValue"], interval["maxValue"]) == (0, 15)
    assert sorted(infos["batchnorm.placement"]["domainDiscrete"]) == ["after_activation", "before_activation", "none"]
    assert sorted(infos["schedule.kind"]["domainDiscrete"]) == ["constant", "cosine", "exponential", "step"]
    units = infos["units"]["domainInterval"]
    assert (units["minValue"], units["maxValue"]) == (16, 64)
    assert not any(name.startswith("tuner/") for name in infos)
    # One row per configuration: a continuation is a session of its parent's group.
    roots = {t for t, s in trials.items() if "tuner/trial_id" not in s["hyperparameters"]["values"]}
    assert set(groups) == {r.removeprefix("trial_") for r in roots} and len(roots) < len(trials)
    for group in groups.values():
        columns = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        chain = [s["name"].removeprefix("trial_") for s in group["sessions"]]
        assert columns["best/val_accuracy"] == pytest.approx(max(trials[f"trial_{t}"]["score"] for t in chain))
        assert "trial/epochs_run" not in columns  # not known from KerasTuner's files: left out, not 0


def test_tensorboard_command_serves_a_plain_project(runs, tmp_path):
    cwd = runs["cwd"]
    port = _free_port()
    cmd = [sys.executable, "-m", "search", "tensorboard", "kt_dir/Hyperband", "--port", str(port), "-o", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert any(f"http://127.0.0.1:{port}/" in line for line in lines), lines
        assert "not in KerasTuner's files" in "".join(lines)
        query = json.dumps({"experimentName": ""}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/data/plugin/hparams/experiment", query, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert "augmentation.rotation_range" in {h["name"] for h in json.loads(r.read())["hparamInfos"]}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    assert (tmp_path / "tensorboard").is_dir()


@pytest.mark.parametrize("tuner", ("BOHB", "ASHA"))
def test_keras_tuner_distributed_mode(tmp_path, tuner):
    """KerasTuner's own distributed mode: a chief (the oracle, by gRPC) and two workers, by its environment."""
    port = str(_free_port())
    env = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port}
    chief = _start(tuner, tmp_path, "dist", {**env, "KERASTUNER_TUNER_ID": "chief"})
    time.sleep(3)
    workers = [_start(tuner, tmp_path, "dist", {**env, "KERASTUNER_TUNER_ID": f"tuner{i}"}) for i in range(2)]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        outputs.append(out)
    result = _finish(chief)["result"]
    trials = _trials(tmp_path / "kt_dir" / "dist")
    assert result["trials"] == len(trials) >= 6 and all(t["status"] == "COMPLETED" for t in trials.values())
    assert all("val_accuracy:" in out for out in outputs)  # both workers trained (Keras's lines; the chief trains none)
    assert result["best_val_accuracy"] > 0.8


def test_the_docs_page_runs_as_shown(tmp_path):
    """docs/in-your-script.md: its Python blocks, in order, as one script; then its `ktsearch report` line."""
    page = (ROOT / "docs" / "in-your-script.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", page, flags=re.S | re.M)
    commands = re.findall(r"^```bash\n(.*?)^```$", page, flags=re.S | re.M)
    assert len(blocks) == 4 and len(commands) == 1
    (tmp_path / "page.py").write_text("\n".join(blocks), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "page.py"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Search space summary" in proc.stdout and "Best val_accuracy So Far" not in proc.stderr
    report_line = commands[0].strip().splitlines()[0].split()
    assert report_line[:2] == ["ktsearch", "report"]
    done = run_cli(*report_line[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (tmp_path / "my_report" / "report.md").read_text()
    assert "augmentation.rotation_range" in text and "batchnorm.placement" in text and "schedule.kind" in text
