"""KerasTuner tuners with ktsearch's per-trial bookkeeping.

The Oracle proposes, the HyperModel builds, the Tuner runs. We add, per trial:
a deterministic seed; a record of epochs granted, epochs run (EarlyStopping) and
the absolute best epoch; divergence (a non-finite loss) as a failed trial; and
the TensorBoard session of `search.tensorboard` in place of KerasTuner's hook.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
from keras.src.backend.common import global_state
from keras.src.random import seed_generator
from keras.src.utils import rng_utils
from keras_tuner.src import config as kt_config
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.engine import tuner_utils

from hypermodels import augment
from hypermodels.optimizers import FusedAdam, FusedSGD
from search import distributed, runs
from search import tensorboard as tb
from search.errors import UserError


class ModelPool:
    """Compiled models kept across trials, one per graph key, least recently used dropped first.

    Building a model is cheap; tracing and optimising its train and evaluation graphs on the
    first batch is not (about 2.5 s for the default CNN on 2 cores, more than an epoch). A trial
    whose graph key (`ImageHyperModel.graph_key`) matches a kept model still gets a freshly
    built model (same seeds, same initial weights, a Hyperband parent's checkpoint loaded
    into it), whose state is then copied into the kept model: its variables, random-seed
    states and a fresh optimizer's state (zeros and the trial's learning rate). The trial
    trains in the kept model and its already traced graphs, exactly as it would have
    trained in the fresh one.
    """

    def __init__(self, size: int):
        self.size = size
        self.models: OrderedDict[tuple, keras.Model] = OrderedDict()
        self.adopted = self.reused = 0

    def adopt(self, key: tuple, fresh: keras.Model) -> keras.Model:
        self.adopted += 1
        kept = self.models.get(key)
        if kept is not None and _copy_state(fresh, kept):
            self.models.move_to_end(key)
            self.reused += 1
            return kept
        self.models[key] = fresh
        self.models.move_to_end(key)
        if len(self.models) > self.size:
            self.models.popitem(last=False)
            gc.collect()  # a model's traced graphs sit in reference cycles
        return fresh


def _same_layout(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(a, b, strict=True))


# Optimizers whose every variable starts at zero, except the learning rate: a fresh one's state is
# set in place. Any other optimizer is built fresh on the fresh model and its state copied (~0.1 s).
ZERO_STATE_OPTIMIZERS = (keras.optimizers.Adam, keras.optimizers.SGD, keras.optimizers.RMSprop, FusedAdam, FusedSGD)


def _copy_state(fresh: keras.Model, kept: keras.Model) -> bool:
    """Give `kept` the state `fresh` starts training with; False (nothing copied) if they differ."""
    if type(fresh.optimizer) is not type(kept.optimizer) or not kept.optimizer.built:
        return False  # a kept model that never trained has no optimizer state to overwrite
    if not _same_layout(fresh.variables, kept.variables):
        return False
    optimizer = kept.optimizer
    if type(optimizer) in ZERO_STATE_OPTIMIZERS and not fresh.optimizer.built:
        if optimizer.use_ema or optimizer.gradient_accumulation_steps:
            return False
        rate = optimizer._learning_rate  # a variable, unless the rate is a schedule (then not among the variables)
        state = [
            (v, fresh.optimizer.learning_rate if v is rate else keras.ops.zeros(v.shape, v.dtype))
            for v in optimizer.variables
        ]
    else:
        if not fresh.optimizer.built:
            fresh.optimizer.build(fresh.trainable_variables)  # zero moments, iteration 0, the trial's rate
        if not _same_layout(fresh.optimizer.variables, optimizer.variables):
            return False
        state = list(zip(optimizer.variables, fresh.optimizer.variables, strict=True))
    for src, dst in zip(fresh.variables, kept.variables, strict=True):
        dst.assign(src)
    for dst, value in state:
        dst.assign(value)
    kept.stop_training = False
    return True


class BestEpochWeights(tuner_utils.SaveBestEpoch):
    """KerasTuner's best-epoch checkpoint, written once when training ends.

    KerasTuner's `SaveBestEpoch` writes the weights file at every epoch that improves the
    objective (about 90 ms a write for the default CNN on 2 cores, most epochs of a short
    trial). This keeps the best epoch's weights in memory and writes the same file, with the
    same weights, once at the end of training (also after EarlyStopping or TerminateOnNaN).
    """

    def __init__(self, objective, filepath, holds=None):
        super().__init__(objective, filepath)
        self.holds = holds or (lambda: True)

    def on_train_begin(self, logs=None):
        self._best = None

    def _save_model(self):
        self._best = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self._best is None or not self.holds():  # a distributed worker whose trial was handed on writes nothing
            return
        last = self.model.get_weights()
        self.model.set_weights(self._best)
        super()._save_model()
        self.model.set_weights(last)


class RecordingTuner:
    """Mixin for a KerasTuner Tuner; `run_seed`, `log`, `tensorboard_root`, `samples`, `keep_checkpoints` are ours."""

    def __init__(
        self,
        *args,
        run_seed: int = 0,
        log=print,
        tensorboard_root=None,
        samples=None,
        keep_checkpoints=None,
        reuse_models: int = 0,
        role=None,
        worker_timeout: float = 60.0,
        progress=None,
        **kwargs,
    ):
        self.run_seed = run_seed
        self.progress = progress  # search.progress.Progress: trial n of N, best, ETA (None: plain lines)
        self._granted: int | None = None  # epochs of the plan spent by ended trials
        self.keep_checkpoints = keep_checkpoints
        self.pool = ModelPool(reuse_models) if reuse_models else None
        self._in_trial = False  # the pool serves trials only, not load_model / get_best_models
        self.log = log
        self.tensorboard_root = Path(tensorboard_root) if tensorboard_root else None
        self.samples = samples
        self._started: dict[str, float] = {}
        self._records: dict[str, dict] = {}
        self.completed: list[str] = []  # trials this process ran to completion
        super().__init__(*args, **kwargs)
        if role is not None and role.kind == "worker":  # KerasTuner wrapped the oracle in its client: ours instead
            run_dir = Path(self.project_dir).parent
            self.oracle = distributed.worker_client(self.oracle._oracle, role, heartbeat(worker_timeout), log, run_dir)

    # -- running a trial ---------------------------------------------------------------

    def _build_and_fit_model(self, trial, *args, **kwargs):
        callbacks = kwargs.get("callbacks", [])
        holds = lambda: self._holds(trial.trial_id)  # noqa: E731
        kwargs["callbacks"] = [
            BestEpochWeights(c.objective, c.filepath, holds) if type(c) is tuner_utils.SaveBestEpoch else c
            for c in callbacks
        ]
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def _try_build(self, hp):
        if self.pool is None or not self._in_trial or not hasattr(self.hypermodel, "graph_key"):
            return super()._try_build(hp)
        # KerasTuner clears the Keras session and collects garbage before every build (0.3 s
        # a trial, and the session reset would not free a kept model anyway).
        model = self._build_hypermodel(hp)  # Hyperband: with the parent trial's weights loaded
        if not isinstance(model, keras.Model):
            raise kt.errors.FatalTypeError(f"HyperModel.build() must return a keras.Model, got {type(model)}")
        return self.pool.adopt(self.hypermodel.graph_key(hp), model)

    def run_trial(self, trial, *args, **kwargs):
        # Same trial id, same initial weights and augmentation stream: runs are reproducible.
        seed_keras(self.run_seed + int(trial.trial_id))
        _, book = runs.split_values(trial.hyperparameters.values)
        initial = int(book.get("initial_epoch", 0))
        total = int(book.get("epochs", kwargs.get("epochs", 1)))
        self._in_trial = True
        try:
            histories = super().run_trial(trial, *args, **kwargs)
        finally:
            self._in_trial = False
        if not self._holds(trial.trial_id):
            return histories  # handed to another worker while this one was silent: its files are the other's now
        record = self._records[trial.trial_id] = self._record(trial, histories[0], initial, total)
        runs.write_json(os.path.join(self.get_trial_dir(trial.trial_id), runs.RECORD_FILE), record)
        if record["diverged"]:
            raise kt.errors.FailedTrialError(record["diverged"])
        return histories

    def _holds(self, trial_id: str) -> bool:
        holds = getattr(self.oracle, "holds", None)  # only a distributed worker's oracle client can lose a trial
        return holds is None or holds(trial_id)

    def _record(self, trial, history, initial: int, total: int) -> dict:
        objective = self.oracle.objective
        series = history.history.get(objective.name, [])
        finite = [(v, i) for i, v in enumerate(series) if math.isfinite(v)]
        pick = max if objective.direction == "max" else min
        best_value, best_index = pick(finite, key=lambda p: p[0]) if finite else (None, None)
        _, book = runs.split_values(trial.hyperparameters.values)
        diverged = _divergence(history.history.get("loss", []), initial)
        return {
            "trial_id": trial.trial_id,
            "bracket": book.get("bracket"),
            "round": book.get("round"),
            "continues": book.get("trial_id"),
            "initial_epoch": initial,
            "epochs_granted": total - initial,
            "epochs_run": len(history.epoch),
            "stopped_early": len(history.epoch) < total - initial and diverged is None,
            "best_epoch": None if best_index is None else initial + best_index,
            "best_value": best_value,
            "best_metrics": None
            if best_index is None
            else {k: float(v[best_index]) for k, v in history.history.items()},
            "diverged": diverged,
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "seconds": round(time.time() - self._started.get(trial.trial_id, time.time()), 3),
        }

    # -- TensorBoard -------------------------------------------------------------------

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # Replaces KerasTuner's hook (which adds a second HParams writer with inferred domains):
        # the curves go into the trial's session directory.
        for callback in callbacks:
            if isinstance(callback, tb.EpochCurves):
                callback.log_dir = str(tb.trial_dir(self.tensorboard_root, trial.trial_id))

    def _chain(self, trial) -> list[str]:
        """Trial ids of this configuration's Hyperband chain, first to this one."""
        chain = [trial.trial_id]
        parent = trial.hyperparameters.values.get("tuner/trial_id")
        while parent is not None:
            chain.insert(0, parent)
            parent = self.oracle.get_trial(parent).hyperparameters.values.get("tuner/trial_id")
        return chain

    def _augmented_samples(self, trial):
        values = self.hypermodel.space.values(trial.hyperparameters)
        layer = augment.from_values(values, seed=self.run_seed)
        if layer is None:
            return self.samples
        return keras.ops.convert_to_numpy(layer(self.samples, training=True))

    def _session_start(self, trial) -> None:
        searched = set(self.hypermodel.space.searched())
        values = {k: v for k, v in trial.hyperparameters.values.items() if k in searched}
        augmented = None if self.samples is None else self._augmented_samples(trial)
        caption = tb.augmentation_caption(self.hypermodel.space.values(trial.hyperparameters))
        tb.start_trial(self.tensorboard_root, trial.trial_id, self._chain(trial)[0], values, augmented, caption)

    def _session_end(self, trial, reason: str | None) -> None:
        ok = trial.status == "COMPLETED"
        tb.end_trial(self.tensorboard_root, trial.trial_id, ok, reason)
        chain = self._chain(trial)
        records = [r for r in (self._chain_record(t) for t in chain) if r]
        objective = self.oracle.objective
        columns = tb.chain_columns(records, objective.name, objective.direction) if records else {}
        columns["trial/failed"] = 0.0 if ok else 1.0
        tb.write_columns(self.tensorboard_root, chain[0], len(chain) - 1, columns)

    def _chain_record(self, trial_id: str) -> dict | None:
        if trial_id in self._records:
            return self._records[trial_id]
        return runs.read_json(Path(self.get_trial_dir(trial_id)) / runs.RECORD_FILE)

    # -- hooks ----------------------------------------------------------------------------

    def on_trial_begin(self, trial):
        self._started[trial.trial_id] = time.time()
        super().on_trial_begin(trial)
        if self.tensorboard_root is not None:
            self._session_start(trial)

    def on_trial_end(self, trial):
        try:
            super().on_trial_end(trial)
        except RuntimeError as e:
            if "consecutive failures" not in str(e):
                raise
            self._save_after_failure_limit(trial)
            self._report_end(trial)
            raise
        self._report_end(trial)
        self.prune_checkpoints()

    def _save_after_failure_limit(self, trial) -> None:
        """KerasTuner raises its consecutive-failure error before saving the trial that hit the limit."""
        final = self.oracle.get_trial(trial.trial_id)
        final.save(os.path.join(self.get_trial_dir(trial.trial_id), "trial.json"))
        for tuner_id, ongoing in list(self.oracle.ongoing_trials.items()):
            if ongoing.trial_id == trial.trial_id:  # not ongoing: a resume must not re-run it
                del self.oracle.ongoing_trials[tuner_id]
        self.save()

    # -- disk --------------------------------------------------------------------------

    def prune_checkpoints(self, search_over: bool = False) -> None:
        """Keep the weights of the `keep_checkpoints` best trials only (None: keep all).

        KerasTuner writes a checkpoint per trial. A trial that a Hyperband bracket in progress
        may still continue keeps its checkpoint (the continuation starts from it) until the
        bracket is done, or the search is over.
        """
        if self.keep_checkpoints is None or self._is_worker():  # a worker has no oracle of its own: the chief prunes
            return
        objective = self.oracle.objective
        done = [t for t in self.oracle.trials.values() if t.status == "COMPLETED" and t.score is not None]
        done.sort(key=lambda t: t.score, reverse=objective.direction == "max")
        keep = {t.trial_id for t in done[: self.keep_checkpoints]}
        keep |= {t.trial_id for t in self.oracle.ongoing_trials.values()}
        if not search_over:
            keep |= self._continuable()
        for trial_id in self.oracle.trials:
            if trial_id not in keep:
                Path(self._get_checkpoint_fname(trial_id)).unlink(missing_ok=True)

    def _continuable(self) -> set[str]:
        # HyperbandOracle keeps the brackets still in progress (a private attribute, read only).
        brackets = getattr(self.oracle, "_brackets", [])
        return {info["id"] for bracket in brackets for round_ in bracket["rounds"] for info in round_}

    def _report_end(self, trial) -> None:
        if trial.trial_id in getattr(self.oracle, "dropped", ()):  # a worker that was silent too long
            self.log(
                f"trial {trial.trial_id}: handed to another worker while this one was silent; this result is dropped"
            )
            return
        final = self.oracle.get_trial(trial.trial_id)
        final.message = final.message or trial.message  # a distributed chief's copy comes without it
        reason = failure_reason(final)
        if self.tensorboard_root is not None:
            self._session_end(final, reason)
        self._records.pop(trial.trial_id, None)
        if final.status == "COMPLETED":
            self.completed.append(trial.trial_id)
        self.report_progress(trial.trial_id, self._trial_line(final, reason))

    def report_progress(self, trial_id: str, line: str) -> None:
        """Log a trial's end line; with a progress display, as trial n of N with the best so far and the ETA.

        Needs the oracle itself: a single process's or a distributed chief's (which calls this).
        """
        if self.progress is None:
            self.log(line)
            return
        record = self._chain_record(trial_id) or {}
        if self._granted is None:  # the first trial this session: what earlier sessions spent too
            ended = [t for t in self.oracle.trials.values() if t.status not in ("RUNNING", "IDLE")]
            self._granted = sum((self._chain_record(t.trial_id) or {}).get("epochs_granted", 0) for t in ended)
        else:
            self._granted += record.get("epochs_granted", 0)
        ended = sum(t.status not in ("RUNNING", "IDLE") for t in self.oracle.trials.values())
        best = self.oracle.get_best_trials(1)
        best_text = f"{best[0].score:.4f} ({best[0].trial_id})" if best and best[0].score is not None else "none yet"
        self.progress.trial(line, ended, self._granted, record.get("epochs_granted", 0), best_text)

    def _trial_line(self, trial, reason: str | None) -> str:
        record = self._chain_record(trial.trial_id) or {}
        where = f" bracket {record['bracket']} round {record['round']}" if record.get("bracket") is not None else ""
        epochs = f" epochs {record['epochs_run']}/{record['epochs_granted']}" if record else ""
        early = " (early stop)" if record.get("stopped_early") else ""
        score = (
            ""
            if trial.score is None or trial.status != "COMPLETED"
            else f" {self.oracle.objective.name} {trial.score:.4f}"
        )
        seconds = time.time() - self._started.pop(trial.trial_id, time.time())
        line = f"trial {trial.trial_id}{where}:{epochs}{early}{score} {trial.status.lower()} [{seconds:.1f}s]"
        return f"{line}: {reason}" if reason else line


def seed_keras(seed: int) -> None:
    """`keras.utils.set_random_seed` without its `tf.random.set_seed`.

    Setting TensorFlow's global seed also clears TensorFlow's kernel caches, so every compiled
    model re-creates its kernels on its next run (about 0.4 s a trial for the default CNN on
    2 CPU cores, with a reused model). Keras's layers, initializers and `keras.random` draw
    from Keras's own seed state, Python's `random` and NumPy, which this sets as Keras does;
    ktsearch's tf.data pipelines carry their own seeds.
    """
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def _divergence(losses: list, initial: int) -> str | None:
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            return f"diverged: loss became {loss} at epoch {initial + i}"
    return None


def failure_reason(trial) -> str | None:
    """One line saying why a trial did not complete (KerasTuner keeps the whole traceback)."""
    if trial.status == "COMPLETED":
        return None
    if not trial.message:
        return (
            "no objective value (NaN score)"
            if trial.score is not None and np.isnan(trial.score)
            else trial.status.lower()
        )
    last = trial.message.strip().splitlines()[-1]
    return last.partition(": ")[2] if last.startswith("keras_tuner.") else last


# KerasTuner prints every failed trial's traceback to stderr; ours is one line per trial, and the
# traceback stays in trial.json ("message"). KTSEARCH_DEBUG=1 brings KerasTuner's printing back.
kt_config.DEBUG = bool(os.environ.get("KTSEARCH_DEBUG"))


def _atomic_save_json(path, obj) -> str:
    text = json.dumps(obj)
    runs.atomic_write(path, text)
    return text


# KerasTuner rewrites oracle.json and every trial.json in place; a kill -9 in the middle of a write
# would leave a truncated file that the next run cannot reload. Its Stateful.save looks up
# utils.save_json at call time, so routing it through temp file + rename makes every write atomic.
kt_utils.save_json = _atomic_save_json

# A Hyperband continuation loads its parent's weights into a model whose optimizer is not built
# yet, so Keras warns that optimizer variables are skipped: KerasTuner restarts the optimizer
# state by design, and the warning would repeat for every continuation.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")


class HyperbandTuner(RecordingTuner, kt.Hyperband):
    pass


class RandomTuner(RecordingTuner, kt.RandomSearch):
    pass


class BayesianTuner(RecordingTuner, kt.BayesianOptimization):
    pass


def oracle_seed(seed: int) -> int:
    """Spread config seeds far apart for KerasTuner's oracle.

    The oracle draws value k of a search from ``random.Random(seed + k)``, so seeds 1 and 2
    would propose the same values shifted by one dimension; it also reads 0 as "no seed".
    A multiplicative hash keeps the mapping deterministic and puts neighbours ~1e9 apart.
    """
    return 1 + (seed * 2654435761) % (2**31 - 2)


def heartbeat(worker_timeout: float) -> float:
    """Seconds between a worker's heartbeats: several per timeout, at most every 10 s."""
    return min(10.0, worker_timeout / 4)


def strategy(config, log=print):
    """The configured tf.distribute strategy for each trial's model, or None (one device)."""
    d = config.section("distribution")
    if d["strategy"] != "mirrored":
        return None
    import tensorflow as tf

    def key(name: str) -> tuple[str, int]:
        spec = tf.DeviceSpec.from_string(name)
        return (spec.device_type or "").upper(), spec.device_index or 0

    available = {key(device.name): device.name for device in tf.config.list_logical_devices()}
    for name in d["devices"] or []:
        try:
            known = key(name) in available
        except ValueError:
            known = False
        if not known:
            raise UserError(
                config.source,
                "distribution.devices",
                f"expected devices of this machine ({', '.join(sorted(available.values()))}), got {name!r}",
            )
    mirrored = tf.distribute.MirroredStrategy(devices=d["devices"])
    devices = ", ".join(mirrored.extended.worker_devices)
    log(
        f"each trial trains on {mirrored.num_replicas_in_sync} replica(s) (MirroredStrategy over {devices}), "
        "one batch per call (Keras's steps_per_execution loop fails under MirroredStrategy: keras-team/keras#19246)"
    )
    return mirrored


def build_tuner(config, hypermodel, log=print, samples=None, role=None, distribution_strategy=None, progress=None):
    """The configured tuner over `hypermodel`, reloading an existing project in the run dir."""
    t = config.section("tuner")
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(t["objective"], runs.direction(t["objective"])),
        seed=oracle_seed(config.resolved["seed"]),
        max_consecutive_failed_trials=t["max_consecutive_failed_trials"],
        directory=str(config.run_dir),
        project_name=runs.TUNER_DIR,
        overwrite=False,  # ktsearch decides about overwriting, before the tuner exists
        run_seed=config.resolved["seed"],
        log=log,
        tensorboard_root=config.run_dir / runs.TENSORBOARD_DIR,
        samples=samples,
        keep_checkpoints=t["keep_checkpoints"],
        reuse_models=t["reuse_models"],
        progress=progress,
        role=role,
        worker_timeout=config.section("distribution")["worker_timeout"],
        distribution_strategy=distribution_strategy,
    )
    if t["algorithm"] == "hyperband":
        return HyperbandTuner(
            max_epochs=t["max_epochs"], factor=t["factor"], hyperband_iterations=t["hyperband_iterations"], **common
        )
    cls = RandomTuner if t["algorithm"] == "random" else BayesianTuner
    return cls(max_trials=t["max_trials"], **common)


def search_callbacks(config) -> list:
    """Callbacks every trial gets (KerasTuner deep-copies them per trial)."""
    es = config.section("early_stopping")
    return [
        keras.callbacks.EarlyStopping(monitor=es["monitor"], patience=es["patience"], min_delta=es["min_delta"]),
        tb.EpochCurves(config.run_dir / runs.TENSORBOARD_DIR),
    ]
