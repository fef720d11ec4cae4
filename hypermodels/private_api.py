"""Every use ktsearch makes of a private Keras or KerasTuner API, and nothing else.

Pinned to the versions ktsearch installs: Keras 3.15 (``keras/src/...``) and KerasTuner 1.4.8
(``keras_tuner/src/...``); each entry names the file it depends on and why no public API does.
An upgrade that removes or renames one of them fails `tests/hypermodels/test_private_api.py`
with a message naming the attribute (`check()` lists the problems), instead of a search that
breaks halfway. Everything else in ktsearch uses public names only.

This module sits in `hypermodels`, the bottom layer, so that both packages can use it (imports
flow `search` -> `hypermodels`). Importing it imports Keras and KerasTuner (TensorFlow);
the gRPC pieces load on first use.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import threading
from collections.abc import Callable

import keras
import keras_tuner as kt

KERAS_PINNED = "3.15"
KERAS_TUNER_PINNED = "1.4.8"

# (module, attribute) pairs this module reaches; `check()` proves each still exists.
REQUIRED = (
    ("keras.src.backend.common.global_state", "set_global_attribute"),
    ("keras.src.utils.rng_utils", "GLOBAL_RANDOM_SEED"),
    ("keras.src.random.seed_generator", "GLOBAL_SEED_GENERATOR"),
    ("keras.src.optimizers.adam", "Adam._get_variable_index"),
    ("keras.src.optimizers.adam", "Adam.build"),
    ("keras_tuner.src.config", "DEBUG"),
    ("keras_tuner.src.utils", "save_json"),
    ("keras_tuner.src.engine.stateful", "Stateful.save"),
    ("keras_tuner.src.engine.oracle", "LOCKS"),
    ("keras_tuner.src.engine.oracle", "THREADS"),
    ("keras_tuner.src.engine.oracle", "Oracle._check_consecutive_failures"),
    ("keras_tuner.src.engine.oracle", "Oracle._check_objective_found"),
    ("keras_tuner.src.engine.oracle", "_maybe_infer_direction_from_objective"),
    ("keras_tuner.src.engine.metrics_tracking", "MetricHistory.update"),
    ("keras_tuner.src.engine.oracle", "Oracle._set_project_dir"),
    ("keras_tuner.src.engine.oracle", "Oracle._save_trial"),
    ("keras_tuner.src.engine.oracle", "Oracle._random_values"),
    ("keras_tuner.src.engine.oracle", "Oracle._duplicate"),
    ("keras_tuner.src.engine.oracle", "Oracle._compute_values_hash"),
    ("keras_tuner.src.tuners.hyperband", "HyperbandOracle._get_size"),
    ("keras_tuner.src.tuners.bayesian", "BayesianOptimizationOracle._random_populate_space"),
    ("keras_tuner.src.engine.tuner", "Tuner._try_build"),
    ("keras_tuner.src.engine.tuner", "Tuner._build_hypermodel"),
    ("keras_tuner.src.engine.tuner", "Tuner._build_and_fit_model"),
    ("keras_tuner.src.engine.tuner", "Tuner._configure_tensorboard_dir"),
    ("keras_tuner.src.engine.tuner", "Tuner._get_checkpoint_fname"),
    ("keras_tuner.src.engine.tuner_utils", "SaveBestEpoch._save_model"),
    ("keras_tuner.src.engine.conditions", "Parent.to_proto"),
    ("keras_tuner.src.protos", "get_proto"),
    ("keras_tuner.src.protos", "get_service"),
    ("keras_tuner.src.protos", "get_service_grpc"),
    ("keras_tuner.src.distribute.oracle_chief", "OracleServicer"),
    ("keras_tuner.src.distribute.oracle_client", "OracleClient"),
)
# Instance attributes, checked on real objects by the test (they do not exist on the classes).
REQUIRED_INSTANCE = {
    "keras.optimizers.Adam (built)": ("_momentums", "_velocities"),
    "keras.optimizers.SGD (built, momentum > 0)": ("momentums",),
    "keras_tuner Oracle": (
        "_retry_queue",
        "_project_dir",
        "_seed_state",
        "_tried_so_far",
        "_run_times",
        "_id_to_hash",
        "_display",
    ),
    "keras_tuner HyperbandOracle": ("_brackets", "_current_bracket", "_current_iteration"),
    "keras_tuner BayesianOptimizationOracle": ("_random_state",),
    "keras_tuner OracleClient": ("_oracle", "stub"),
    "keras_tuner OracleServicer": ("stop_triggered",),
    "keras.Model (compiled)": ("_compile_config",),
    "keras.optimizers.Optimizer (with a LearningRateSchedule)": ("_learning_rate",),
}


def check() -> list[str]:
    """Private names this module needs that the installed Keras/KerasTuner lack (empty: all there)."""
    problems = []
    for module_name, path in REQUIRED:
        try:
            obj = importlib.import_module(module_name)
        except ImportError as e:
            problems.append(f"{module_name}: cannot import ({e})")
            continue
        for part in path.split("."):
            if not hasattr(obj, part):
                problems.append(
                    f"{module_name}.{path}: missing (ktsearch pins Keras {KERAS_PINNED}, KerasTuner "
                    f"{KERAS_TUNER_PINNED}; installed Keras {keras.__version__}, KerasTuner {kt.__version__})"
                )
                break
            obj = getattr(obj, part)
    return problems


# -- Keras ------------------------------------------------------------------------------


def seed_keras(seed: int) -> None:
    """`keras.utils.set_random_seed` without its `tf.random.set_seed`.

    Setting TensorFlow's global seed also clears TensorFlow's kernel caches, so every compiled
    model re-creates its kernels on its next run (about 0.4 s a trial for the default CNN on
    2 CPU cores, with a reused model). Keras's layers, initializers and `keras.random` draw
    from Keras's own seed state, Python's `random` and NumPy, which this sets as Keras does
    (``keras/src/utils/rng_utils.py::set_random_seed``, minus its TensorFlow call); ktsearch's
    tf.data pipelines carry their own seeds. No public API sets Keras's seed alone.
    """
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def compile_arguments(model: keras.Model) -> dict:
    """The arguments `model.compile` was called with, as the objects the caller passed.

    A user's model compiled in their `build_model(hp)` is compiled again as ktsearch's wrapper
    (augmentation in front) with the same loss, metrics and optimizer. The public
    `get_compile_config()` serializes them, and deserializing fails for a user's own loss or
    metric function unless registered; Keras keeps the objects themselves in
    ``Model._compile_config.config`` (``keras/src/trainers/trainer.py::Trainer.compile``).
    """
    return dict(model._compile_config.config)


def learning_rate_schedule(optimizer):
    """The `LearningRateSchedule` an optimizer was given, or None (``keras/src/optimizers/base_optimizer.py``:
    `_learning_rate`; the public `learning_rate` evaluates the schedule at the current step instead of
    returning it): `hypermodels.helpers.continue_schedule` moves a continuation's curve to its start epoch."""
    schedule = getattr(optimizer, "_learning_rate", None)
    return schedule if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) else None


def adam_slots(optimizer: keras.optimizers.Adam, variable) -> tuple:
    """(first moment, second moment) of `variable` in a built Adam.

    ``keras/src/optimizers/adam.py``: `build` keeps them in `_momentums`/`_velocities`,
    indexed by `_get_variable_index`; Keras has no public accessor for an optimizer's slots.
    """
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def sgd_momentum(optimizer: keras.optimizers.SGD, variable):
    """The momentum slot of `variable` in a built SGD (``keras/src/optimizers/sgd.py``: `momentums`)."""
    return optimizer.momentums[optimizer._get_variable_index(variable)]


# -- KerasTuner: process-wide settings ----------------------------------------------------


def set_debug(enabled: bool) -> None:
    """KerasTuner prints every failed trial's traceback to stderr unless ``keras_tuner/src/config.py``'s
    `DEBUG` is off (no public switch). ktsearch prints one line per trial and keeps the traceback
    in trial.json; KTSEARCH_DEBUG=1 turns KerasTuner's printing back on."""
    from keras_tuner.src import config

    config.DEBUG = enabled


def route_json_writes(write: Callable[[str, str], None]) -> None:
    """Send KerasTuner's JSON writes (oracle.json, every trial.json) through `write(path, text)`.

    KerasTuner rewrites them in place (``keras_tuner/src/utils.py::save_json``), so a kill -9 in
    the middle of a write leaves a truncated file the next run cannot reload. `Stateful.save`
    (``keras_tuner/src/engine/stateful.py``) looks the function up on the module at call time,
    so replacing it covers every write; ktsearch routes it through temp file + rename.
    """
    import json

    from keras_tuner.src import utils

    def save_json(path, obj) -> str:
        text = json.dumps(obj)
        write(path, text)
        return text

    utils.save_json = save_json


def quiet_conditions() -> None:
    """KerasTuner 1.4.8's ``keras_tuner/src/engine/conditions.py::Parent.to_proto`` prints its first
    value on every call (a debug print left in): every trial sent between chief and workers would
    print a line per condition. The same conversion, without the print."""
    from keras_tuner.src.engine import conditions

    proto = protos().proto

    def to_proto(self):
        first = self.values[0]
        field = (
            "string_value"
            if isinstance(first, str)
            else "boolean_value"
            if isinstance(first, bool)
            else "int_value"
            if isinstance(first, int)
            else "float_value"
        )
        values = [proto.Value(**{field: v}) for v in self.values]
        return proto.Condition(parent=proto.Condition.Parent(name=self.name, values=values))

    conditions.Parent.to_proto = to_proto


# -- KerasTuner: the tuner's hooks ----------------------------------------------------------


def _save_best_epoch():
    from keras_tuner.src.engine import tuner_utils

    return tuner_utils.SaveBestEpoch


class DeferredBestEpoch(_save_best_epoch()):
    """KerasTuner's best-epoch checkpoint (``keras_tuner/src/engine/tuner_utils.py::SaveBestEpoch``),
    written once when training ends instead of at every improving epoch.

    `SaveBestEpoch` writes through its private `_save_model` whenever the objective improves
    (about 90 ms a write for the default CNN on 2 cores, most epochs of a short trial). This keeps
    the best epoch's weights in memory and writes the same file, with the same weights, once in
    `on_train_end` (also after EarlyStopping or TerminateOnNaN), if `holds()` (a distributed
    worker whose trial was handed on writes nothing).
    """

    def __init__(self, objective, filepath, holds: Callable[[], bool] | None = None):
        super().__init__(objective, filepath)
        self.holds = holds or (lambda: True)

    def on_train_begin(self, logs=None):
        self._best = None

    def _save_model(self):
        self._best = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self._best is None or not self.holds():
            return
        last = self.model.get_weights()
        self.model.set_weights(self._best)
        super()._save_model()
        self.model.set_weights(last)


class TunerHooks:
    """A KerasTuner `Tuner` mixin: its private per-trial steps, as hooks with names of ours.

    ``keras_tuner/src/engine/tuner.py`` (1.4.8) runs a trial as `run_trial` -> `_build_and_fit_model`
    -> `_try_build` (`clear_session()`, `gc.collect()`, `_build_hypermodel`) and points TensorBoard
    callbacks at a directory in `_configure_tensorboard_dir`, adding a second HParams writer; none
    of these has a public override point. A subclass implements:

    * `build_trial_model(hp)`: the model of a trial (default: KerasTuner's own `_try_build`);
    * `checkpoint_holds(trial_id)`: whether to write the trial's best-epoch checkpoint;
    * `configure_trial_callbacks(callbacks, trial)`: replaces KerasTuner's TensorBoard step.
    """

    def _try_build(self, hp):
        return self.build_trial_model(hp)

    def build_trial_model(self, hp):
        return super()._try_build(hp)

    def build_model_in_scope(self, hp):
        """`HyperModel.build(hp)` under the tuner's distribution strategy, without KerasTuner's session reset."""
        return self._build_hypermodel(hp)

    def checkpoint_holds(self, trial_id: str) -> bool:
        return True

    def _build_and_fit_model(self, trial, *args, **kwargs):
        save_best = _save_best_epoch()
        holds = lambda: self.checkpoint_holds(trial.trial_id)  # noqa: E731
        kwargs["callbacks"] = [
            DeferredBestEpoch(c.objective, c.filepath, holds) if type(c) is save_best else c
            for c in kwargs.get("callbacks", [])
        ]
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        self.configure_trial_callbacks(callbacks, trial)

    def configure_trial_callbacks(self, callbacks, trial) -> None:
        pass

    def checkpoint_path(self, trial_id: str) -> str:
        return self._get_checkpoint_fname(trial_id)


class HyperbandWithOracle(kt.Hyperband):
    """KerasTuner's Hyperband tuner (a continuation starts from its parent's checkpoint, trains from
    `tuner/initial_epoch` to `tuner/epochs`) over an oracle of ours.

    `kt.Hyperband.__init__` (``keras_tuner/src/tuners/hyperband.py``, 1.4.8) only builds its own
    `HyperbandOracle` and hands it to `Tuner.__init__`; no argument takes another oracle. This
    calls `Tuner.__init__` with the given one: BOHB's and ASHA's oracles emit the same
    `tuner/*` values, so the rest of the tuner serves them unchanged.
    """

    def __init__(self, oracle, hypermodel=None, **kwargs):
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


# (oracle attribute) -> what proposing a trial may change: `OracleHooks.proposal_state` saves them.
PROPOSAL_STATE = ("_seed_state", "_brackets", "_current_bracket", "_current_iteration", "_random_state")


class TrialCap(int):
    """An oracle's `max_trials` whose `str()` is `width` characters long: the trial-id width
    `Oracle.create_trial` derives from it (see `OracleHooks.create_trial`). Arithmetic, `repr` and
    formatting are the int's."""

    def __new__(cls, value: int, width: int):
        cap = super().__new__(cls, value)
        cap.width = width
        return cap

    def __str__(self) -> str:
        return "9" * self.width

    def __format__(self, spec: str) -> str:
        return format(int(self), spec)


class SharedSpace(kt.HyperParameters):
    """HyperParameters whose `copy` shares the declared hyperparameter objects (``hyperparameters.py``:
    `_hps`, `_space`) instead of serializing and rebuilding every one of them: `HyperParameters.copy` is
    `from_config(get_config())`, 0.4 ms for the default search's space, on every trial a chief hands out.
    Declared hyperparameters are not changed in place (`merge` registers copies), so sharing them gives
    the same copy: its own space lists and values."""

    def copy(self):
        hps = SharedSpace()
        for hp in self._space:
            hps._hps[hp.name].append(hp)
            hps._space.append(hp)
        hps.values = dict(self.values)
        return hps


class ProposedValues(dict):
    """A proposed configuration, true even when empty (the one configuration of a space with no dimension
    yet): see `OracleHooks._random_values`."""

    def __bool__(self) -> bool:
        return True


class OracleHooks:
    """A KerasTuner `Oracle` mixin: its private proposal steps, under names of ours.

    ``keras_tuner/src/engine/oracle.py`` (1.4.8) draws a new configuration in `_random_values`
    (seeded by `_seed_state`, which every draw advances and `oracle.json` keeps), checks it against
    earlier ones with `_duplicate`, and hashes values in `_compute_values_hash`; Hyperband keeps its
    brackets in `_brackets`/`_current_bracket`/`_current_iteration`, Bayesian optimisation its
    `_random_state`. A subclass may implement:

    * `propose_values()`: the values of a new configuration, or None for KerasTuner's random draw
      (BOHB's model);
    * `HASH_IGNORES`: `tuner/*` keys left out of the duplicate check (ASHA's rung budgets).
    """

    HASH_IGNORES: tuple[str, ...] = ()
    id_width: int | None = None  # digits of the run's trial ids, when known before its trials are (a replay)
    _first_width: int | None = None  # the width of its shortest id, once it has trials (never changes after)
    _failure_scan: tuple = (None, 0, 0, None)  # (end order scanned, its length, failures in a row, the limit's)

    def create_trial(self, tuner_id):
        if type(self.hyperparameters) is kt.HyperParameters:  # `Oracle.create_trial` copies it for each trial
            self.hyperparameters.__class__ = SharedSpace
        # `Oracle.create_trial` pads a new trial id to `len(str(self.max_trials))` digits, so a run extended
        # from 9 to 12 trials would number '7', '8', '09', '10'. Its ids keep the width of its shortest one
        # (trial 0's): '8', '9', '10'; `search.runs.layout.trial_order` sorts them.
        if self._first_width is None and self.trials:
            self._first_width = min(len(trial_id) for trial_id in self.trials)
        width = self.id_width or self._first_width
        if self.max_trials and width:
            self.max_trials = TrialCap(int(self.max_trials), width)
        return super().create_trial(tuner_id)

    def _check_consecutive_failures(self):
        # `Oracle._check_consecutive_failures` scans every ended trial at each trial's end; this goes on from
        # where the last check stopped (the trials ended before keep their status), with the same answer.
        order, scanned, run, hit = self._failure_scan
        if order is not self.end_order or scanned > len(self.end_order):
            scanned, run, hit = 0, 0, None
        for trial_id in self.end_order[scanned:]:
            trial = self.trials[trial_id]
            run = run + 1 if trial.status == "FAILED" else 0
            if run == self.max_consecutive_failed_trials and hit is None:
                hit = trial_id
        self._failure_scan = (self.end_order, len(self.end_order), run, hit)
        if hit is not None:
            trial = self.trials[hit]
            raise RuntimeError(
                f"Number of consecutive failures exceeded the limit of {self.max_consecutive_failed_trials}.\n"
                + (trial.message or "")
            )

    @kt.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        # `Oracle.update_trial` (``oracle.py``), its metrics applied by `apply_metrics`.
        trial = self.trials[trial_id]
        self._check_objective_found(metrics)
        apply_metrics(self, trial, metrics, step)
        self._save_trial(trial)
        return trial

    def _save_trial(self, trial):
        self.trial_changed(trial)

    def trial_changed(self, trial) -> None:
        """KerasTuner saves a trial (its start, an epoch's report, its end): by default its `trial.json`."""
        self.write_trial_file(trial)

    def write_trial_file(self, trial) -> None:
        super()._save_trial(trial)

    def _random_values(self):
        values = self.propose_values()
        values = values if values is not None else super()._random_values()
        # Hyperband's `_random_trial` takes an empty configuration for an exhausted space (`if values:`), so a
        # search whose dimensions are all declared later (in `run_trial`, or by a build that declares none yet)
        # would stop before its first trial; KerasTuner's other oracles test `is None`, as this keeps meaning.
        return None if values is None else ProposedValues(values)

    def propose_values(self):
        return None

    def new_values(self):
        """A new configuration as KerasTuner's oracles draw one: `propose_values`' (a warm start, BOHB's
        model), else KerasTuner's random draw; None when the space is exhausted (an oracle that decides
        its own trials, ASHA, calls this for a new one)."""
        return self._random_values()

    def random_values(self):
        """KerasTuner's random draw (the model's fallback), or None when the space is exhausted."""
        return super()._random_values()

    def is_duplicate(self, values: dict) -> bool:
        return self._duplicate(values)

    def _compute_values_hash(self, values):
        values = {k: v for k, v in values.items() if k not in self.HASH_IGNORES}
        return super()._compute_values_hash(values)

    OWN_PROPOSAL_STATE: tuple[str, ...] = ()  # a subclass's own attributes that proposing changes

    def set_state(self, state):
        self._first_width = None
        # `HyperbandOracle.set_state` (``keras_tuner/src/tuners/hyperband.py``) restores the saved
        # `hyperband_iterations`; the caller's wins, so that a finished search given more iterations goes on,
        # as a `RandomSearch` given more `max_trials` does (a ktsearch run is extended this way; a plain
        # script's `search.BOHB(..., hyperband_iterations=6, overwrite=False)` too).
        given = getattr(self, "hyperband_iterations", None)
        super().set_state(state)
        if given is not None:
            self.hyperband_iterations = given

    def proposal_state(self) -> dict:
        """A copy of everything proposing a trial may change, for `restore_proposal_state`."""
        names = (*PROPOSAL_STATE, *self.OWN_PROPOSAL_STATE)
        return copy.deepcopy({name: getattr(self, name) for name in names if hasattr(self, name)})

    def restore_proposal_state(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def hyperband_round(self, trial_id: str) -> tuple[int, int, int, int] | None:
        """(bracket, round, trials the round plans, trials of it started so far) of a trial in a Hyperband
        bracket in progress (`_brackets`, `_get_size`); None outside Hyperband."""
        for bracket in getattr(self, "_brackets", []):
            for round_num, round_ in enumerate(bracket["rounds"]):
                if any(info["id"] == trial_id for info in round_):
                    size = self._get_size(bracket["bracket_num"], round_num)
                    return bracket["bracket_num"], round_num, size, len(round_)
        return None


# -- KerasTuner: oracles ----------------------------------------------------------------------


def brackets_in_progress(oracle) -> list:
    """Hyperband's brackets still running (``keras_tuner/src/tuners/hyperband.py``: `_brackets`;
    `[]` for other oracles): read only, to keep the checkpoints a continuation will start from."""
    return getattr(oracle, "_brackets", [])


def random_proposal(oracle) -> dict:
    """A Bayesian oracle's proposal from `_random_values` (``keras_tuner/src/tuners/bayesian.py``:
    `_random_populate_space`, what it does for its initial points), whether or not it has enough
    results for its Gaussian process: a warm start's configurations come first however many they are."""
    return oracle._random_populate_space()


def draw_state(oracle) -> list:
    """The random state a Bayesian oracle draws the acquisition's starting points from, as JSON
    (``keras_tuner/src/tuners/bayesian.py``: `_random_state`, seeded in `__init__` and not saved by
    `get_state`, so a resumed search would draw its first points again)."""
    kind, keys, position, has_gauss, cached = oracle._random_state.get_state()
    return [kind, keys.tolist(), int(position), int(has_gauss), float(cached)]


def set_draw_state(oracle, saved: list) -> None:
    import numpy as np

    kind, keys, position, has_gauss, cached = saved
    oracle._random_state.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


def retry_queue(oracle) -> list:
    """The oracle's queue of trial ids to hand out again (``keras_tuner/src/engine/oracle.py``:
    `_retry_queue`, KerasTuner's mechanism for trials interrupted by a chief restart)."""
    return oracle._retry_queue


def attach_project(oracle, directory: str, project_name: str) -> None:
    """Give an oracle no Tuner owns its project directory, as `Tuner.__init__` does (``oracle.py``:
    `_set_project_dir`, no public setter): `search.analysis.simulate` drives oracles without a tuner."""
    oracle._set_project_dir(directory, project_name)


def keep_in_memory(oracle) -> None:
    """Stop an oracle writing `oracle.json` and the trials' `trial.json` (``oracle.py``: `save`,
    `_save_trial`): a simulated search never reloads, and thousands of trials would rewrite an
    ever longer `oracle.json` twice each."""
    oracle.save = lambda *args, **kwargs: None
    oracle._save_trial = lambda trial: None


@contextlib.contextmanager
def files_off(oracle):
    """`keep_in_memory` for a while: the oracle writes nothing inside, and its files as before after
    (a benchmark grows a search in memory, then times the calls of a chief that writes them)."""
    keep_in_memory(oracle)
    try:
        yield oracle
    finally:
        del oracle.save, oracle._save_trial


class LoggedSet(set):
    """A set that records its additions and removals in order (`drain`): the oracle's `tried_so_far`,
    journaled as changes instead of whole."""

    def __init__(self, *args):
        super().__init__(*args)
        self.log: list = []

    def add(self, value):
        super().add(value)
        self.log.append(["+", value])

    def remove(self, value):
        super().remove(value)
        self.log.append(["-", value])

    def discard(self, value):
        if value in self:
            self.log.append(["-", value])
        super().discard(value)

    def drain(self) -> list:
        log, self.log = self.log, []
        return log


def track_tried(oracle) -> None:
    """Make the oracle's set of tried configurations' hashes (``oracle.py``: `_tried_so_far`, which
    `__init__` and `set_state` assign) record its changes."""
    if not isinstance(oracle._tried_so_far, LoggedSet):
        oracle._tried_so_far = LoggedSet(oracle._tried_so_far)


def tried_changes(oracle) -> list:
    """[["+" or "-", hash], ...] since the last call (`track_tried`)."""
    tried = oracle._tried_so_far
    return tried.drain() if isinstance(tried, LoggedSet) else []


def per_trial_containers(oracle) -> dict[str, tuple[object, str]]:
    """{state path (`search.algorithms.journal.PER_TRIAL`): (object, attribute)} of KerasTuner's per-trial
    collections in `Oracle.get_state` (``oracle.py``: `start_order`, `end_order`, `_run_times`,
    `_id_to_hash`, `_tried_so_far`; its `Display`'s `trial_start` and `trial_number`)."""
    return {
        "ongoing_trials": (oracle, "ongoing_trials"),  # not per trial: per worker, journaled as changes
        "start_order": (oracle, "start_order"),
        "end_order": (oracle, "end_order"),
        "run_times": (oracle, "_run_times"),
        "id_to_hash": (oracle, "_id_to_hash"),
        "tried_so_far": (oracle, "_tried_so_far"),
        "display/trial_start": (oracle._display, "trial_start"),
        "display/trial_number": (oracle._display, "trial_number"),
    }


class _SpaceConfig:
    """Stands in for an oracle's HyperParameters while `get_state` runs: the config `Oracle.get_state` saves
    (``oracle.py``: `self.hyperparameters.get_config()`), made again only when the space grew."""

    def __init__(self, config: dict):
        self.config = config

    def get_config(self) -> dict:
        return self.config


@contextlib.contextmanager
def emptied(oracle, containers: dict[str, tuple[object, str]]):
    """The containers replaced by empty ones of their type for a while (`get_state` without them costs what
    the bounded state costs) and the oracle's space by its config, made once per size of the space (declared
    hyperparameters are only ever added); then put back."""
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in containers.values()]
    space = oracle.hyperparameters
    key = (id(space), len(space.space), len(space.values))
    cached = oracle.__dict__.get("_space_config")
    if cached is None or cached[0] != key:
        cached = oracle.__dict__["_space_config"] = (key, _SpaceConfig(space.get_config()))
    try:
        for obj, attr, value in saved:
            setattr(obj, attr, type(value)())
        oracle.hyperparameters = cached[1]
        yield
    finally:
        oracle.hyperparameters = space
        for obj, attr, value in saved:
            setattr(obj, attr, value)


def apply_metrics(oracle, trial, metrics: dict, step) -> None:
    """What `Oracle.update_trial` does to a trial's metrics (``oracle.py``: register a new metric with the
    direction `_maybe_infer_direction_from_objective` gives, then `update`): a journal's report replayed."""
    from keras_tuner.src.engine import oracle as oracle_module

    for name, value in metrics.items():
        if not trial.metrics.exists(name):
            direction = oracle_module._maybe_infer_direction_from_objective(oracle.objective, name)
            trial.metrics.register(name, direction=direction)
        # `MetricsTracker.update` without the best value before and after (np.mean over every observation,
        # twice) that it computes only to return whether the report improved it, which nothing here reads.
        trial.metrics.metrics[name].update(float(value), step=step)


def project_dir(oracle) -> str:
    """The oracle's project directory (``oracle.py``: `_project_dir`, set by `_set_project_dir`)."""
    return oracle._project_dir


def release_lock(oracle) -> None:
    """Free the oracle's lock if this thread holds it.

    ``keras_tuner/src/engine/oracle.py::synchronized`` (1.4.8) releases `LOCKS[oracle]` only when
    the call returns: an error raised inside (the consecutive-failure limit in `end_trial`) leaves
    it held, and every later call from another thread (a chief's gRPC threads) would hang.
    """
    from keras_tuner.src.engine import oracle as oracle_module

    if oracle_module.THREADS[oracle] == threading.current_thread().name:
        oracle_module.THREADS[oracle] = None
        oracle_module.LOCKS[oracle].release()


def is_failure_limit(error: BaseException) -> bool:
    """Whether `error` is KerasTuner's consecutive-failure limit.

    ``oracle.py::Oracle._check_consecutive_failures`` (called from `end_trial`) raises a plain
    `RuntimeError` ("Number of consecutive failures exceeded the limit of N."): no class of its
    own, so the message is the only way to tell it from other errors.
    """
    return isinstance(error, RuntimeError) and "consecutive failures exceeded" in str(error)


# -- KerasTuner: distributed mode ------------------------------------------------------------


class _Protos:
    """KerasTuner's gRPC protocol (``keras_tuner/src/protos``): messages, service, stubs."""

    @property
    def proto(self):
        from keras_tuner.src import protos as p

        return p.get_proto()

    @property
    def service(self):
        from keras_tuner.src import protos as p

        return p.get_service()

    @property
    def service_grpc(self):
        from keras_tuner.src import protos as p

        return p.get_service_grpc()


def protos() -> _Protos:
    return _Protos()


def oracle_servicer_class() -> type:
    """KerasTuner's chief-side gRPC servicer (``keras_tuner/src/distribute/oracle_chief.py``)."""
    from keras_tuner.src.distribute import oracle_chief

    return oracle_chief.OracleServicer


def servicer_stopped(servicer) -> bool:
    """Whether the servicer has told a worker the search is over (`OracleServicer.stop_triggered`)."""
    return servicer.stop_triggered


def oracle_client_class() -> type:
    """KerasTuner's worker-side oracle proxy (``keras_tuner/src/distribute/oracle_client.py``).

    Its methods call the chief through its `stub` attribute (replace it to change how calls are
    made) and keep the local oracle it wraps in `_oracle` (see `wrapped_oracle`).
    """
    from keras_tuner.src.distribute import oracle_client

    return oracle_client.OracleClient


def wrapped_oracle(client):
    """The local oracle a worker's `OracleClient` wraps (`OracleClient._oracle`)."""
    return client._oracle
