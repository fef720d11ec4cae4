"""KerasTuner tuners with ktsearch's per-trial bookkeeping.

The Oracle proposes, the HyperModel builds, the Tuner runs: we only add, per
trial, a deterministic seed, a clean TensorBoard directory, and a record of
epochs granted, epochs run (EarlyStopping) and the absolute best epoch.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings

import keras
import keras_tuner as kt

from search import runs


class RecordingTuner:
    """Mixin for a KerasTuner Tuner; keyword args `run_seed` and `log` are ours."""

    def __init__(self, *args, run_seed: int = 0, log=print, **kwargs):
        self.run_seed = run_seed
        self.log = log
        self._started: dict[str, float] = {}
        self._records: dict[str, dict] = {}
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        # Same trial id, same initial weights and augmentation stream: runs are reproducible.
        keras.utils.set_random_seed(self.run_seed + int(trial.trial_id))
        _, book = runs.split_values(trial.hyperparameters.values)
        initial = int(book.get("initial_epoch", 0))
        total = int(book.get("epochs", kwargs.get("epochs", 1)))
        histories = super().run_trial(trial, *args, **kwargs)
        record = self._records[trial.trial_id] = self._record(trial, histories[0], initial, total)
        runs.write_json(os.path.join(self.get_trial_dir(trial.trial_id), runs.RECORD_FILE), record)
        return histories

    def _record(self, trial, history, initial: int, total: int) -> dict:
        objective = self.oracle.objective
        series = history.history.get(objective.name, [])
        finite = [(v, i) for i, v in enumerate(series) if math.isfinite(v)]
        pick = max if objective.direction == "max" else min
        best_value, best_index = pick(finite, key=lambda p: p[0]) if finite else (None, None)
        _, book = runs.split_values(trial.hyperparameters.values)
        return {
            "trial_id": trial.trial_id,
            "bracket": book.get("bracket"),
            "round": book.get("round"),
            "continues": book.get("trial_id"),
            "initial_epoch": initial,
            "epochs_granted": total - initial,
            "epochs_run": len(history.epoch),
            "stopped_early": len(history.epoch) < total - initial,
            "best_epoch": None if best_index is None else initial + best_index,
            "best_value": best_value,
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "seconds": round(time.time() - self._started.get(trial.trial_id, time.time()), 3),
        }

    def on_trial_begin(self, trial):
        self._started[trial.trial_id] = time.time()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.log(self._trial_line(self.oracle.get_trial(trial.trial_id)))

    def _trial_line(self, trial) -> str:
        record = self._records.pop(trial.trial_id, {})
        where = f" bracket {record['bracket']} round {record['round']}" if record.get("bracket") is not None else ""
        epochs = f" epochs {record['epochs_run']}/{record['epochs_granted']}" if record else ""
        early = " (early stop)" if record.get("stopped_early") else ""
        score = "" if trial.score is None else f" {self.oracle.objective.name} {trial.score:.4f}"
        seconds = time.time() - self._started.pop(trial.trial_id, time.time())
        line = f"trial {trial.trial_id}{where}:{epochs}{early}{score} {trial.status.lower()} [{seconds:.1f}s]"
        if trial.message:  # failed trials carry KerasTuner's traceback; its last line says why
            line += f": {trial.message.strip().splitlines()[-1]}"
        return line

    def _get_tensorboard_dir(self, logdir, trial_id, execution):
        # One directory per trial; a trial that is re-run (resume) starts its curves afresh.
        path = os.path.join(str(logdir), f"trial_{trial_id}")
        shutil.rmtree(path, ignore_errors=True)
        return path


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


def build_tuner(config, hypermodel, log=print):
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
        keras.callbacks.TensorBoard(log_dir=str(config.run_dir / runs.TENSORBOARD_DIR), write_graph=False),
    ]
