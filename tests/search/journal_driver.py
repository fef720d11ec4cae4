"""A chief's oracle in a process of its own, for tests/search/test_journal.py: one worker runs fake trials
(each epoch's score a function of the trial's values and the epoch) until the oracle says STOPPED,
resuming the project in DIR when there is one, as `ktsearch tune` resumes a run. Optionally it dies by
SIGKILL at a chosen point of the journal's life, and prints the search's end state as JSON when it ends.

    python -m tests.search.journal_driver DIR ALGORITHM [--kill append:N | torn:N | compaction:N]
        [--compact-min K] [--stop-after T]

`append:N` dies right after the N-th event of this process is appended, `torn:N` while appending the N-th
(half of its line written), `compaction:N` in the N-th compaction after `oracle.json` is written and
before the journal is emptied. `--stop-after T` compacts and exits once T trials ended (an old run's
files are made from that). No TensorFlow model is built."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from tests.benchmarks.chief_load import score  # a trial's epoch score from its values (no model)

EPOCHS = 3


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(kill: str | None) -> None:
    from search.algorithms import journal

    if not kill:
        return
    what, _, n = kill.partition(":")
    target = int(n)
    count = [0]
    if what in ("append", "torn"):
        append = journal.Writer.append

        def killing_append(self, event):
            count[0] += 1
            if count[0] == target and what == "torn":
                self.seq += 1
                line = (json.dumps({"seq": self.seq, **event}) + "\n").encode()
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.write(self._fd, line[: len(line) // 2])
                _die()
            append(self, event)
            if count[0] == target:
                _die()

        journal.Writer.append = killing_append
    elif what == "compaction":
        truncate = journal.Writer.truncate

        def killing_truncate(self, length=0):
            if length == 0:
                count[0] += 1
                if count[0] == target:
                    _die()
            truncate(self, length)

        journal.Writer.truncate = killing_truncate
    else:
        raise SystemExit(f"unknown kill point {kill}")


def end_state(oracle) -> dict:
    """What an interrupted search must end with as the uninterrupted one did (clocks and display left out)."""
    state = json.loads(json.dumps(oracle.get_state(), default=str))
    keep = ("start_order", "end_order", "run_times", "tried_so_far", "id_to_hash", "seed_state", "retry_queue")
    out = {k: state.get(k) for k in keep}
    out["tried_so_far"] = sorted(out["tried_so_far"])
    for key in ("brackets", "current_bracket", "current_iteration", "ktsearch_bohb"):
        if key in state:
            out[key] = state[key]
    out["trials"] = {
        t.trial_id: {"values": t.hyperparameters.values, "status": t.status, "score": t.score}
        for t in oracle.trials.values()
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("algorithm")
    parser.add_argument("--kill")
    parser.add_argument("--compact-min", type=int, default=8)
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args()

    import keras_tuner as kt

    from hypermodels import private_api
    from search.algorithms import ending, journal, oracles
    from search.analysis.simulate import search_space
    from search.config import load_config
    from search.engine.tuners import configure_keras_tuner
    from tests.conftest import CONFIGS

    configure_keras_tuner()
    journal.COMPACT_MIN = args.compact_min
    _arm(args.kill)
    cfg = load_config(CONFIGS / "digits_smoke.yaml").with_tuner(
        algorithm=args.algorithm, max_epochs=EPOCHS, factor=3, hyperband_iterations=3, max_trials=24
    )
    oracle = oracles.make_oracle(cfg.tuner, kt.Objective("val_accuracy", "max"), seed=7)
    oracle.hyperparameters = search_space(cfg)
    oracle.verbose = 0
    private_api.attach_project(oracle, args.directory, "chief")
    if os.path.exists(os.path.join(args.directory, "chief", journal.ORACLE_FILE)):
        oracle.reload()
        ending.forget_finished_retries(oracle)
    ended = 0
    while (trial := oracle.create_trial("worker0")).status == "RUNNING":
        values = trial.hyperparameters.values
        first, last = int(values.get("tuner/initial_epoch", 0)), int(values.get("tuner/epochs", EPOCHS))
        for epoch in range(first, last):
            oracle.update_trial(trial.trial_id, {"val_accuracy": score(values, epoch)}, step=epoch)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        oracle.save()  # as KerasTuner's Tuner.on_trial_end does
        ended += 1
        if args.stop_after is not None and ended >= args.stop_after:
            oracle.compact()
            return
    json.dump(end_state(oracle), sys.stdout)


if __name__ == "__main__":
    main()
