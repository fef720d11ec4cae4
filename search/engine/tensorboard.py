"""What ktsearch writes for TensorBoard, and the `ktsearch tensorboard` server.

Layout under ``results/<name>/tensorboard/``:

* the root holds the experiment-level HParams config (every dimension with its
  *declared* domain, metrics with the objective first) and the un-augmented
  sample batch;
* ``trial_<id>/`` is one HParams session per trial: session start (values and
  group), session end (success or failure), an image grid of the sample batch
  augmented at the trial's strengths, the failure reason as text, and
  ``train/`` and ``validation/`` curves (loss, accuracy, learning rate);
  only searched dimensions are HParams (fixed values would fill every row alike);
* a configuration is one session *group*, named after the first trial of its
  Hyperband chain; its continuations are further sessions of that group.
  The group's columns (best-epoch metrics, bracket, round, epochs granted/run,
  best epoch, failed) are scalars in the *first* session only, one step per
  round, so the dashboard's per-group average is exactly the latest values.

This replaces KerasTuner's own HParams hook (a second writer per trial, with
domains inferred from sampled values) rather than stacking on it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hp_metadata
from tensorboard.plugins.hparams import summary as hp_summary
from tensorboard.plugins.hparams import summary_v2 as hp_summary_v2

from hypermodels.dimensions import condition_of
from hypermodels.notation import Choice, Fixed, Range

TRIAL_COLUMNS = (
    ("trial/bracket", "bracket", "Hyperband or BOHB bracket (ASHA: 0)"),
    ("trial/round", "round", "latest round this configuration reached (ASHA: its rung)"),
    ("trial/epochs_granted", "epochs granted", "epochs the tuner granted this configuration, all rounds"),
    ("trial/epochs_run", "epochs run", "epochs actually trained, all rounds (fewer: early stopping)"),
    ("trial/best_epoch", "best epoch", "absolute epoch of the best objective value"),
    ("trial/failed", "failed", "1 when the latest round failed or diverged (the reason is in the Text tab)"),
)
UNITS = {"rotation_range": "°", "shear_range": "°"}
# TensorBoard's HParams dashboard shows the first 5 hyperparameters as columns and hides the rest
# until ticked; its backend orders them by (`differs` first, name). ktsearch marks as `differs` the
# ones a reader came for (`headline`), so they are the ones shown, without renaming anything.
SHOWN_BY_DEFAULT = 5
FIRST_NUMERIC = ("schedule.initial_lr",)  # before any importance is known: the learning rate first


def trial_dir(root: Path, trial_id: str) -> Path:
    return Path(root) / f"trial_{trial_id}"


class EpochCurves(keras.callbacks.Callback):
    """Per-epoch curves in Keras's TensorBoard layout, without its per-batch cost.

    Writes what ``keras.callbacks.TensorBoard(write_graph=False)`` writes at its default
    ``update_freq="epoch"``: ``train/`` and ``validation/`` runs under `log_dir` with
    ``epoch_<metric>`` scalars (``val_`` metrics in ``validation/``, the learning rate in
    ``train/``) at the absolute epoch. Keras's callback also calls ``tf.summary.scalar`` for
    every metric of every batch (recording nothing at that frequency), about 1 ms a batch
    on 2 CPU cores, and its batch hook makes every step wait for its callbacks.
    """

    def __init__(self, log_dir: str | Path):
        super().__init__()
        self.log_dir = str(log_dir)
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def on_train_begin(self, logs=None):
        self._writers = {}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            split, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            if split not in self._writers:  # created on first use: no validation/ run without validation data
                self._writers[split] = tf.summary.create_file_writer(str(Path(self.log_dir) / split))
            with self._writers[split].as_default():
                tf.summary.scalar(f"epoch_{tag}", value, step=epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _domain(dim):
    if isinstance(dim, Range):
        return (
            hp.IntInterval(int(dim.min), int(dim.max))
            if dim.integer
            else hp.RealInterval(float(dim.min), float(dim.max))
        )
    values = dim.values if isinstance(dim, Choice) else (dim.value,)
    return hp.Discrete([v if isinstance(v, (bool, str)) else float(v) for v in values])


def _description(name: str, dim, spec) -> str:
    parts = [spec.doc] if spec.doc else []
    if isinstance(dim, Range):
        parts.append(f"{dim.sampling} sampling" + (", log-uniform over the interval" if dim.sampling == "log" else ""))
        if dim.step is not None:
            parts.append(f"step {dim.step:g}")
    elif isinstance(dim, Fixed):
        parts.append("fixed")
    kind = condition_of(name)
    if kind:
        parts.append(f"only when schedule.kind = {kind}")
    return "; ".join(parts)


def experiment_hparams(space) -> list:
    """Every searched dimension with its declared domain, in config order.

    Fixed values are left out on purpose: they are the same in every row, and the dashboard
    shows only the first few columns, alphabetically; config.yaml and the export hold them.
    """
    out = []
    for name in space.searched():
        dim = space.dims[name]
        unit = UNITS.get(name.partition(".")[2])
        display = f"{name} ({unit})" if unit else name
        out.append(
            hp.HParam(name, _domain(dim), display_name=display, description=_description(name, dim, space.specs[name]))
        )
    return out


def experiment_metrics(objective: str, logged: tuple[str, ...]) -> list:
    """Objective first (its best-epoch value), then the trial columns, then the other metrics at that epoch."""

    def best(m: str):
        return hp.Metric(
            f"best/{m}", display_name=f"{m} (best epoch)", description=f"{m} at the epoch the tuner ranked by"
        )

    others = [m for m in (*(f"val_{x}" for x in logged), *logged) if m != objective]
    columns = [hp.Metric(tag, display_name=display, description=doc) for tag, display, doc in TRIAL_COLUMNS]
    return [best(objective), *columns, *(best(m) for m in others)]


def headline(space, ranking: list[str] | None = None) -> list[str]:
    """The searched dimensions the HParams dashboard shows by default (at most `SHOWN_BY_DEFAULT`).

    The categorical choices (BatchNorm placement, schedule kind, ...), then the dimensions that
    mattered most by the report's importance (`ranking`, most important first) or, before a
    report exists, the learning rate and the others in config order.
    """
    searched = space.searched()
    choices = [n for n in searched if isinstance(space.dims[n], Choice)]
    ranked = [n for n in ranking or [] if n in searched]
    order = [*choices, *ranked, *(n for n in FIRST_NUMERIC if n in searched), *searched]
    return list(dict.fromkeys(order))[:SHOWN_BY_DEFAULT]


def _mark_headline(summary_pb, names: list[str]) -> bytes:
    """The experiment summary with `differs` set on exactly `names` (see `SHOWN_BY_DEFAULT`)."""
    value = summary_pb.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in names
    value.metadata.plugin_data.content = data.SerializeToString()
    return summary_pb.SerializeToString()


def _write(logdir: Path, fn) -> None:
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        fn()
    writer.close()


def write_experiment(root: Path, space, objective: str, logged: tuple[str, ...], samples: np.ndarray | None) -> None:
    """The experiment-level HParams config (and the sample batch, un-augmented), at run start."""
    config = hp_summary_v2.hparams_config_pb(experiment_hparams(space), experiment_metrics(objective, logged))
    config_pb = _mark_headline(config, headline(space))

    def body():
        with tf.summary.experimental.summary_scope("hparams_config"):
            tf.summary.experimental.write_raw_pb(config_pb, step=0)
        if samples is not None:
            tf.summary.image("augmentation/original", image_grid(samples)[None], step=0)

    _write(root, body)


def image_grid(images: np.ndarray, columns: int = 4, min_tile: int = 64) -> np.ndarray:
    """Tile 0-255 images into one uint8 grid, upscaled (nearest) so small digits stay visible."""
    images = np.asarray(images, dtype="float32")
    if images.size and images.max() <= 1.0:  # a user's [0, 1] floats: shown as pixels
        images = images * 255.0
    images = np.clip(images, 0, 255).astype("uint8")
    n, h, w, c = images.shape
    scale = max(1, -(-min_tile // max(h, w)))
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    rows = -(-n // columns)
    h, w = h * scale, w * scale
    grid = np.full((rows * (h + 2) + 2, columns * (w + 2) + 2, c), 128, dtype="uint8")
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + col * (w + 2) : 2 + col * (w + 2) + w] = image
    return grid


def augmentation_caption(values: dict) -> str:
    """'rotation_range 23.1, shear_range 12, ...' from a trial's dotted values."""
    parts = []
    for name, value in values.items():
        section, _, key = name.partition(".")
        if section == "augmentation":
            parts.append(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts)


def start_trial(
    root: Path, trial_id: str, group: str, values: dict, augmented: np.ndarray | None, caption: str = ""
) -> None:
    """A fresh session directory: session start info (searched values) and the augmented sample batch."""
    logdir = trial_dir(root, trial_id)
    shutil.rmtree(logdir, ignore_errors=True)  # a trial re-run on resume starts afresh: logs never mix

    def body():
        hp.hparams(values, trial_id=group, start_time_secs=time.time())
        if augmented is not None:
            description = f"The run's sample images augmented at this trial's strengths: {caption}"
            tf.summary.image("augmentation/this_trial", image_grid(augmented)[None], step=0, description=description)

    _write(logdir, body)


def end_trial(root: Path, trial_id: str, ok: bool, reason: str | None) -> None:
    """Session end: success, or failure with the reason as text (Text tab)."""
    status = api_pb2.STATUS_SUCCESS if ok else api_pb2.STATUS_FAILURE
    pb = hp_summary.session_end_pb(status)

    def body():
        tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
        if reason:
            tf.summary.text("trial/failure", reason, step=0)

    _write(trial_dir(root, trial_id), body)


def write_columns(root: Path, first_trial_id: str, step: int, columns: dict) -> None:
    """A configuration's columns, on its first session, at step = Hyperband round (latest wins)."""

    def body():
        for tag, value in columns.items():
            if value is not None:
                tf.summary.scalar(tag, float(value), step=step)

    _write(trial_dir(root, first_trial_id), body)


def _total(values) -> int | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def chain_columns(records: list[dict], objective: str, direction: str) -> dict:
    """Columns of one configuration from the records of its trials (first to latest)."""
    done = [r for r in records if r.get("best_metrics") and not r.get("diverged")]
    latest = records[-1]
    columns = {
        "trial/bracket": latest.get("bracket"),
        "trial/round": latest.get("round"),
        "trial/epochs_granted": _total(r["epochs_granted"] for r in records),
        "trial/epochs_run": _total(r["epochs_run"] for r in records),  # None: not known (a KerasTuner project's)
    }
    if done:
        pick = max if direction == "max" else min
        best = pick(done, key=lambda r: r["best_metrics"][objective])
        columns["trial/best_epoch"] = best["best_epoch"]
        columns.update({f"best/{k}": v for k, v in best["best_metrics"].items() if k != "learning_rate"})
    return columns


def write_report(logdir: Path, text: str, images: list[Path]) -> None:
    """`ktsearch report`'s text (Text tab) and PNG plots (Images tab) in a fresh log directory."""
    shutil.rmtree(logdir, ignore_errors=True)  # a report replaces the previous one

    def body():
        tf.summary.text("report", text, step=0)
        for path in images:
            image = tf.io.decode_png(tf.io.read_file(str(path)), channels=3)
            tf.summary.image(f"report/{path.stem}", image[None], step=0)

    _write(logdir, body)


def set_headline(root: Path, names: list[str]) -> bool:
    """Show `names` by default in the run's HParams dashboard (`ktsearch report`, by importance).

    TensorBoard keeps the first experiment config it reads for a run, so the run's root event
    files are rewritten (`_rewrite_experiment`) with the experiment's `differs` flags set to
    `names`. Returns False when the run has no experiment.
    """
    return _rewrite_experiment(root, lambda summary: _mark_headline(summary, names))


def grow_experiment(root: Path, space, objective: str, logged: tuple[str, ...]) -> bool:
    """Declare dimensions a user's model added mid-search (`units_2` once `num_layers` reached 3), with their
    domains, in the run's experiment; the dimensions shown by default stay as they were."""

    def grown(summary) -> bytes:
        value = summary.value[0]
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        shown = [info.name for info in data.experiment.hparam_infos if info.differs]
        config = hp_summary_v2.hparams_config_pb(experiment_hparams(space), experiment_metrics(objective, logged))
        return _mark_headline(config, shown or headline(space))

    return _rewrite_experiment(root, grown)


def _rewrite_experiment(root: Path, change) -> bool:
    """Every root event copied into a new file with the experiment summary replaced by `change(summary)`
    (serialized), then the old files removed. False when the run has no experiment."""
    from tensorboard.compat.proto import event_pb2

    old = sorted(p for p in Path(root).glob("*tfevents*") if p.is_file())
    events, found = [], False
    for path in old:
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == hp_metadata.EXPERIMENT_TAG:
                    summary = type(event.summary)(value=[value])
                    value.CopyFrom(type(event.summary).FromString(change(summary)).value[0])
                    found = True
            events.append(event.SerializeToString())
    if not found:
        return False
    name = f"events.out.tfevents.{int(time.time())}.ktsearch-report.{len(old)}"
    tmp = Path(root) / f".{name}.tmp"
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for event in events:
            writer.write(event)
    tmp.replace(Path(root) / name)
    for path in old:
        if path.name != name:
            path.unlink(missing_ok=True)
    return True


def serve(logdir: Path, host: str, port: int) -> str:
    """Start TensorBoard on `logdir` in a background thread; returns its URL."""
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(logdir), "--host", host, "--port", str(port), "--reload_interval", "5"])
    return board.launch()
