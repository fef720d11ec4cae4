"""KerasTuner tuners wired to ktsearch's per-trial parts.

The Oracle proposes, the HyperModel builds, the Tuner runs. `RecordingTuner` adds, per trial,
through objects a reader can find by name:

* `search.engine.pool.ModelPool`: compiled models reused across trials;
* `search.engine.seeding.seed_trial`: a deterministic seed;
* `search.engine.records.TrialRecords`: epochs granted and run, the absolute best epoch, divergence
  (a non-finite loss) as a failed trial;
* `search.engine.sessions.TrialSessions`: the trial's TensorBoard session, in place of KerasTuner's hook;
* `search.engine.checkpoints.CheckpointRetention`: `tuner.keep_checkpoints`;
* `search.engine.progress.TrialReporter`: the trial's line with the search's progress;
* `search.algorithms.ending.end_trial`: KerasTuner's consecutive-failure limit as `FailureLimitReached`.

KerasTuner's private steps are reached only through `hypermodels.private_api.TunerHooks`.
"""

from __future__ import annotations

import copy
import os
import warnings

import keras
import keras_tuner as kt

from hypermodels import private_api
from search.algorithms import ALGORITHMS, SINGLE_RUN_TUNER, ending, oracles
from search.distributed.worker import WorkerClient
from search.engine import tensorboard as tb
from search.engine.checkpoints import CheckpointRetention
from search.engine.context import SearchRun
from search.engine.pool import ModelPool
from search.engine.progress import TrialReporter, trial_line
from search.engine.records import EpochClock, TrialRecords, failure_reason
from search.engine.seeding import oracle_seed, seed_trial
from search.engine.sessions import TrialSessions
from search.errors import FailureLimitReached, UserError, storage_error
from search.runs import integrity, layout, warmstart


class RecordingTuner(private_api.TunerHooks):
    """Mixin for a KerasTuner Tuner: wires the per-trial parts listed in the module doc.

    Args:
        run: the `SearchRun` (config, role, log, progress, samples); the other arguments are
            KerasTuner's.
    """

    def __init__(self, *args, run: SearchRun, **kwargs):
        self.run = run
        reuse = run.config.tuner.reuse_models
        self.pool = ModelPool(reuse) if reuse else None
        self._in_trial = False  # the pool serves trials only, not load_model / get_best_models
        self.completed: list[str] = []  # trials this process ran to completion
        super().__init__(*args, **kwargs)
        if run.role.kind == "worker":  # KerasTuner wrapped the oracle in its client: ours instead
            timeout = run.config.distribution.worker_timeout
            local = private_api.wrapped_oracle(self.oracle)
            self.oracle = WorkerClient(local, run.role, heartbeat(timeout), run.run_dir)
        self.records = TrialRecords(self.oracle.objective, self.get_trial_dir)
        self.sessions = TrialSessions(
            run.tensorboard_root,
            self.hypermodel.space,
            run.samples,
            run.config.seed,
            self.oracle.objective,
            self._chain,
            self.records.get,
        )
        self.retention = CheckpointRetention(run.config.tuner.keep_checkpoints, self.checkpoint_path)
        self.reporter = TrialReporter(self.oracle, self.records.get, run.log, run.progress)

    # -- running a trial (TunerHooks) ---------------------------------------------------

    def build_trial_model(self, hp):
        if self.pool is None or not self._in_trial or not hasattr(self.hypermodel, "graph_key"):
            return super().build_trial_model(hp)
        # KerasTuner clears the Keras session and collects garbage before every build (0.3 s
        # a trial, and the session reset would not free a kept model anyway).
        model = self.build_model_in_scope(hp)  # Hyperband: with the parent trial's weights loaded
        if not isinstance(model, keras.Model):
            raise kt.errors.FatalTypeError(f"HyperModel.build() must return a keras.Model, got {type(model)}")
        return self.pool.adopt(self.hypermodel.graph_key(hp), model)

    def checkpoint_holds(self, trial_id: str) -> bool:
        holds = getattr(self.oracle, "holds", None)  # only a distributed worker's oracle client can lose a trial
        return holds is None or holds(trial_id)

    def configure_trial_callbacks(self, callbacks, trial) -> None:
        self.sessions.point_curves(callbacks, trial.trial_id)
        self.records.clock(trial.trial_id, callbacks)

    def run_trial(self, trial, *args, **kwargs):
        try:
            return self._run_trial(trial, *args, **kwargs)
        except kt.errors.FatalError:
            raise
        except Exception as e:  # a full or failing disk is not the trial's fault: stop, count nothing
            problem = storage_error(e, where=self.get_trial_dir(trial.trial_id))
            if problem is not None:
                raise StorageFault(problem) from None
            raise

    def _run_trial(self, trial, *args, **kwargs):
        seed_trial(self.run.config.seed, trial.trial_id)
        _, book = layout.split_values(trial.hyperparameters.values)
        initial = int(book.get("initial_epoch", 0))
        total = int(book.get("epochs", kwargs.get("epochs", 1)))
        run_as = trial
        if book.get("trial_id") is not None:  # a Hyperband continuation starts from its parent's checkpoint
            path = self.checkpoint_path(book["trial_id"])
            problem = integrity.checkpoint_problem(path)
            if problem is not None:
                self.run.log(
                    f"warning: trial {trial.trial_id}: the checkpoint of trial {book['trial_id']} it continues "
                    f"({path}) is {problem}: training it from scratch for all {total} epochs instead"
                )
                run_as, initial = from_scratch(trial), 0
        if self.run.train_for is not None and args:
            # A fresh pipeline with the run's seed: every trial reads the same batches in the same order,
            # whichever process runs it and whatever ran there before (a resume, another worker).
            args = (self.run.train_for(self.run.config.seed), *args[1:])
        self._in_trial = True
        try:
            histories = super().run_trial(run_as, *args, **kwargs)
        except Exception as e:
            problem = data_file_problem(self.run.splits, e)
            if problem is not None:  # not the trial's fault: stop the search, naming the file
                raise DataFileError(problem) from None
            raise
        finally:
            self._in_trial = False
        if not self.checkpoint_holds(trial.trial_id):
            return histories  # handed to another worker while this one was silent: its files are the other's now
        record = self.records.write(trial, histories[0], initial, total)
        if record["diverged"]:
            raise kt.errors.FailedTrialError(record["diverged"])
        return histories

    def _chain(self, trial_id: str) -> list[str]:
        """Trial ids of this configuration's Hyperband chain, first to this one."""
        chain = [trial_id]
        parent = self.oracle.get_trial(trial_id).hyperparameters.values.get("tuner/trial_id")
        while parent is not None:
            chain.insert(0, parent)
            parent = self.oracle.get_trial(parent).hyperparameters.values.get("tuner/trial_id")
        return chain

    # -- trial begin and end ------------------------------------------------------------

    def on_trial_begin(self, trial):
        self.records.started(trial.trial_id)
        super().on_trial_begin(trial)
        self.sessions.start(trial)

    def on_trial_end(self, trial):
        """KerasTuner's `on_trial_end` (end the trial on the oracle, save the tuner), then ours."""
        try:
            ending.end_trial(self.oracle, trial)
            self.save()
        except FailureLimitReached:
            self.save()
            self._trial_ended(trial)
            raise
        self._trial_ended(trial)
        if not self.is_worker:  # a worker has no oracle of its own: the chief prunes
            self.retention.prune(self.oracle)
            self.keep_dimensions()

    def keep_dimensions(self) -> None:
        """A user's model: the dimensions its builds (and its `fit`) declared so far, found in the oracle's space
        (`end_trial` merged the trial's in), recorded in the run (`dimensions.json`) and, when new ones appeared,
        declared in the HParams experiment."""
        space = getattr(self.hypermodel, "space", None)
        if space is None or not space.open or self.is_worker:
            return
        from hypermodels.wrapped import discover

        discover(space, self.oracle.hyperparameters)
        if space.grown or not (self.run.run_dir / layout.DIMENSIONS_FILE).is_file():
            layout.keep_dimensions(self.run.run_dir, space)
        if space.grown:
            logged = tuple(getattr(self.hypermodel, "logged_metrics", ()))
            tb.grow_experiment(self.run.tensorboard_root, space, self.oracle.objective.name, logged)
            space.grown.clear()

    @property
    def is_worker(self) -> bool:
        return self.run.role.kind == "worker"

    def prune_checkpoints(self, search_over: bool = False) -> None:
        if not self.is_worker:
            self.retention.prune(self.oracle, search_over)

    def _trial_ended(self, trial) -> None:
        if trial.trial_id in getattr(self.oracle, "dropped", ()):  # a worker that was silent too long
            self.run.log(
                f"trial {trial.trial_id}: handed to another worker while this one was silent; this result is dropped"
            )
            return
        final = self.oracle.get_trial(trial.trial_id)
        final.message = final.message or trial.message  # a distributed chief's copy comes without it
        reason = failure_reason(final)
        self.sessions.end(final, reason)
        seconds = self.records.seconds(trial.trial_id)
        line = trial_line(final, self.records.get(trial.trial_id) or {}, self.oracle.objective.name, reason, seconds)
        self.records.forget(trial.trial_id)
        if final.status == "COMPLETED":
            self.completed.append(trial.trial_id)
        self.reporter.trial_ended(trial.trial_id, line)


def from_scratch(trial):
    """A copy of a Hyperband continuation that trains from epoch 0 instead of its parent's checkpoint
    (the oracle's trial keeps its values: the search goes on as planned)."""
    clone = copy.copy(trial)
    clone.hyperparameters = trial.hyperparameters.copy()
    values = {k: v for k, v in trial.hyperparameters.values.items() if k != "tuner/trial_id"}
    clone.hyperparameters.values = values | {"tuner/initial_epoch": 0}
    return clone


class StorageFault(kt.errors.FatalError):
    """A write of the trial failed for want of storage: KerasTuner must stop, not count a failed trial."""

    def __init__(self, problem):
        super().__init__(str(problem))
        self.problem = problem


class DataFileError(kt.errors.FatalError):
    """A streamed image that passed the quick check but does not decode: KerasTuner stops the search."""

    def __init__(self, problem: UserError):
        super().__init__(str(problem))
        self.problem = problem


def data_file_problem(splits, error: Exception) -> UserError | None:
    """When a trial failed reading a streamed source without a cache: the file that does not decode, if any."""
    from search.data import streaming

    if not isinstance(splits, streaming.StreamedSplits) or splits.stores:
        return None  # in memory, or decoded into the cache before the search started
    import tensorflow as tf

    if not isinstance(error, tf.errors.OpError):
        return None
    import numpy as np

    chosen = np.concatenate([splits.indices("train"), splits.indices("validation")])
    return streaming.decode_failure(splits, chosen, error)


def configure_keras_tuner() -> None:
    """Process-wide KerasTuner settings for a search (done when this module is imported)."""
    # One line per failed trial; the traceback stays in trial.json. KTSEARCH_DEBUG=1 prints KerasTuner's too.
    private_api.set_debug(bool(os.environ.get("KTSEARCH_DEBUG")))
    # oracle.json and every trial.json through temp file + rename: a kill -9 never leaves one half-written.
    private_api.route_json_writes(layout.atomic_write)
    # A Hyperband continuation loads its parent's weights into a model whose optimizer is not built
    # yet, so Keras warns that optimizer variables are skipped: KerasTuner restarts the optimizer
    # state by design, and the warning would repeat for every continuation.
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")


configure_keras_tuner()


class BracketTuner(RecordingTuner, private_api.HyperbandWithOracle):
    """Hyperband, BOHB and ASHA: trials that continue a parent's checkpoint for more epochs."""


class SingleRunTuner(RecordingTuner, kt.Tuner):
    """Random and Bayesian search: every trial trains from scratch for `max_epochs`."""


def heartbeat(worker_timeout: float) -> float:
    """Seconds between a worker's heartbeats: several per timeout, at most every 10 s."""
    return min(10.0, worker_timeout / 4)


def build_tuner(run: SearchRun, hypermodel):
    """The configured tuner over `hypermodel`, reloading an existing project in the run dir."""
    t = run.config.tuner
    objective = kt.Objective(t.objective, layout.direction(t.objective))
    warm = warmstart.values(run.run_dir) if run.role.kind != "worker" else []  # a worker's oracle proposes nothing
    oracle = oracles.make_oracle(t, objective, oracle_seed(run.config.seed), warm_start=warm)
    cls = SingleRunTuner if ALGORITHMS[t.algorithm].tuner == SINGLE_RUN_TUNER else BracketTuner
    if run.mode == "resume" and run.role.kind != "worker":  # the chief or a single process reloads the project
        from search.engine.repair import repair

        repair(run, hypermodel)  # damaged oracle.json, trial.json, epochs.json: rebuilt, or refused by name
    tuner = cls(
        oracle=oracle,
        hypermodel=hypermodel,
        directory=str(run.run_dir),
        project_name=layout.TUNER_DIR,
        overwrite=False,  # ktsearch decides about overwriting, before the tuner exists
        distribution_strategy=run.strategy,
        run=run,
    )
    if run.mode == "resume" and run.role.kind != "worker":
        ending.forget_finished_retries(tuner.oracle)
    return tuner


def search_callbacks(config) -> list:
    """Callbacks every trial gets (KerasTuner deep-copies them per trial)."""
    es = config.early_stopping
    return [
        keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta),
        tb.EpochCurves(config.run_dir / layout.TENSORBOARD_DIR),
        EpochClock(),
    ]
