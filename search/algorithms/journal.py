"""The oracle's journal: its state saved by appending one event per change, compacted now and then into
KerasTuner's `oracle.json`.

KerasTuner saves an oracle by rewriting `oracle.json` whole (every trial's id in the start and end
orders, its hash, its run count; ktsearch adds each trial's timeline and cost) after every trial's
start and end, and each trial's `trial.json` after every epoch it reports. A chief that serves
thousands of trials spends its time rewriting files that grow with them. With the journal
(`search.algorithms.base.SearchOracle`):

* **A state change is one line appended** to `oracle.journal` next to `oracle.json` (one `os.write`
  of a whole line: a `kill -9` never leaves half of it): the oracle's bounded state keys that
  changed since the last event (the trials in progress, Hyperband's brackets, the random state, the
  time spent), the entries of the per-trial collections for the trials the change touched
  (`PER_TRIAL`), the hashes added to or removed from `tried_so_far`, and, for an epoch's report or a
  retried trial, the trial's state (`trial.json` is written when a trial starts and when it ends).
* **Compaction**: after as many events as the search holds trials (at least `COMPACT_MIN`), at the
  end of every search, and when a project has no `oracle.json` yet, the oracle writes `oracle.json`
  as KerasTuner does (with the last event it holds, `STATE_KEY`) and the running trials'
  `trial.json`, then empties the journal. Its cost is spread over the events before it: a call
  costs the same however many trials the search holds.
* **Reading** (`merged_state`, `read`): `oracle.json`, then each event after the one it holds, in
  order. A crash between writing `oracle.json` and emptying the journal leaves events that
  `oracle.json` already holds: their sequence numbers skip them. A last line that is not a whole
  event (a machine that lost power mid-write) is dropped, and the reader says so.

`oracle.json` stays KerasTuner's file: KerasTuner (and ktsearch's readers, through `merged_state`)
read it; a finished search leaves no events after it. This module reads and writes files only (no
KerasTuner, no TensorFlow).
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

JOURNAL_FILE = "oracle.journal"
ORACLE_FILE = "oracle.json"
STATE_KEY = "ktsearch_journal"  # in oracle.json: {"seq": the last event it holds}
COMPACT_MIN = 500  # events between compactions, at least

# The state's collections with an entry per trial ("parent/child" for nested keys): an event carries only
# the touched trials' entries; the lists grow by appending.
PER_TRIAL = (
    "start_order",
    "end_order",
    "run_times",
    "id_to_hash",
    "tried_so_far",
    "display/trial_start",
    "display/trial_number",
    "ktsearch_budget/trial_costs",
    "ktsearch_budget/timeline",
    "ktsearch_bohb/proposals",
)
LISTS = ("start_order", "end_order")
SET = "tried_so_far"
# Bounded keys journaled as changes ({"set": {key: value}, "del": [key]}) instead of whole: the workers'
# trials in progress (one entry per worker).
FLAT_DICTS = ("ongoing_trials",)


def journal_path(project_dir: str | os.PathLike) -> Path:
    return Path(project_dir) / JOURNAL_FILE


def get(state: dict, path: str):
    node = state
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def put(state: dict, path: str, value) -> None:
    *parents, last = path.split("/")
    node = state
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def strip(state: dict) -> dict:
    """`state` without its per-trial collections (a shallow copy down to them)."""
    out = dict(state)
    for path in PER_TRIAL:
        parts = path.split("/")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                break
            node[part] = dict(node[part])
            node = node[part]
        else:
            node.pop(parts[-1], None)
    return out


class Events:
    """The events of one journal file: parsed, with what was wrong with its tail."""

    def __init__(self, events: list[dict], good_bytes: int, problem: str | None):
        self.events = events
        self.good_bytes = good_bytes  # the length of the whole events at its start
        self.problem = problem  # None, or what was dropped from its end


def read(path: str | os.PathLike) -> Events:
    """The journal's whole events; a last line that is not one (cut short) is left out, and said."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return Events([], 0, None)
    events, offset = [], 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        line = data[offset:] if end < 0 else data[offset:end]
        try:
            if end < 0:
                raise ValueError("no end of line")
            event = json.loads(line)
            if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
                raise ValueError("not an event")
        except ValueError:
            dropped = len(data) - offset
            what = "its last line is" if data.count(b"\n", offset) <= 1 else "its lines from here on are"
            return Events(
                events,
                offset,
                f"{what} not a whole event ({dropped} bytes from byte {offset}, cut short by a crash): dropped",
            )
        events.append(event)
        offset = end + 1
    return Events(events, offset, None)


def merge(state: dict, events: list[dict]) -> tuple[dict, dict[str, dict], int]:
    """`oracle.json`'s state with the events it does not hold applied in order.

    Returns (state, {trial id: its newest journaled state}, the last event's sequence number)."""
    held = int((state.get(STATE_KEY) or {}).get("seq", 0))
    tried = set(state.get(SET) or [])
    trials: dict[str, dict] = {}
    last = held
    for event in events:
        seq = event["seq"]
        _collect_trials(trials, event)  # trials' states are not in oracle.json: every event's count
        if seq <= held:
            continue
        last = max(last, seq)
        for key, change in (event.get("diff") or {}).items():
            current = dict(state.get(key) or {})
            for gone in change.get("del", []):
                current.pop(gone, None)
            current.update(change.get("set", {}))
            state[key] = current
        changed = event.get("state")
        if changed:
            kept = {path: get(state, path) for path in PER_TRIAL}
            state.update(changed)
            for path, value in kept.items():
                if value is not None:
                    put(state, path, value)
        for path, tail in (event.get("add") or {}).items():
            current = get(state, path)
            put(state, path, (current or []) + list(tail))
        for path, entries in (event.get("set") or {}).items():
            current = get(state, path)
            if not isinstance(current, dict):
                current = {}
                put(state, path, current)
            current.update(entries)
        for op, value in event.get("tried") or []:
            if op == "+":
                tried.add(value)
            else:
                tried.discard(value)
    state[SET] = sorted(tried)
    state[STATE_KEY] = {"seq": last}
    return state, trials, last


def _collect_trials(trials: dict[str, dict], event: dict) -> None:
    """The newest state of each trial an event holds. Not in `oracle.json`, so collected from every event, those
    a compaction's `oracle.json` already holds included (a kill between writing it and emptying the journal)."""
    for trial in event.get("trials") or []:  # a whole state (a worker's trial, a compaction's carried ones)
        trials[trial["trial_id"]] = trial
    for start in event.get("started") or []:  # a trial in the oracle's space: its values, status, metrics
        trials[start["trial_id"]] = start
    if event.get("update"):  # an epoch's report, as `Oracle.update_trial` was called
        trial_id, metrics, step = event["update"]
        trials.setdefault(trial_id, {"trial_id": trial_id}).setdefault("updates", []).append([metrics, step])


def merged_state(oracle_file: str | os.PathLike, state: dict | None = None) -> tuple[dict | None, str | None]:
    """(`oracle.json`'s state with its journal applied, what was wrong with the journal's tail or None).

    `state`: `oracle.json` already read (None: read it here; a missing or unreadable file gives None)."""
    oracle_file = Path(oracle_file)
    if state is None:
        try:
            state = json.loads(oracle_file.read_text())
        except (OSError, ValueError):
            return None, None
    events = read(oracle_file.parent / JOURNAL_FILE)
    if not events.events:
        return state, events.problem
    merged, _, _ = merge(state, events.events)
    return merged, events.problem


class Writer:
    """Appends events to a project's journal, one `os.write` of a whole line each."""

    def __init__(self, project_dir: str | os.PathLike, seq: int = 0):
        self.path = journal_path(project_dir)
        self.seq = seq
        self.since_compaction = 0
        self._fd: int | None = None

    def append(self, event: dict) -> None:
        self.seq += 1
        line = (json.dumps({"seq": self.seq, **event}, separators=(",", ":")) + "\n").encode()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        written = 0
        while written < len(line):  # a regular file takes the whole line in one write; a short one goes on
            written += os.write(self._fd, line[written:])
        self.since_compaction += 1

    def truncate(self, length: int = 0) -> None:
        """Cut the journal to `length` bytes (0: empty it, once `oracle.json` holds its events)."""
        if self._fd is None and not self.path.exists():
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, length)
        self.since_compaction = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Background:
    """Writes run on a thread of their own, in order (a chief's trial.json of a trial that ended: the journal
    already holds its end, so the call that ended it does not wait for the disk). `in_flight` says which are not
    written yet; `flush` waits for the queue to empty and raises the first write's error, as does the next
    `submit` after one failed."""

    def __init__(self, write: Callable[[object], None]):
        self.write = write
        self.queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.pending: dict[str, int] = {}  # key -> writes of it queued and not done
        self.thread = threading.Thread(target=self._run, name="ktsearch-trial-files", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            key, item = self.queue.get()
            try:
                if self.error is None:
                    self.write(item)
            except BaseException as e:  # raised in the caller's thread by the next submit or flush
                self.error = e
            finally:
                with self.lock:
                    self.pending[key] -= 1
                    if not self.pending[key]:
                        del self.pending[key]
                self.queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def submit(self, key: str, item) -> None:
        self._raise()
        with self.lock:
            self.pending[key] = self.pending.get(key, 0) + 1
        self.queue.put((key, item))

    def in_flight(self) -> set[str]:
        with self.lock:
            return set(self.pending)

    def flush(self) -> None:
        self.queue.join()
        self._raise()
