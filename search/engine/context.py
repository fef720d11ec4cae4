"""`SearchRun`: what one `tune` call carries from `tune` through the search to the tuner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.config import SearchConfig
from search.distributed.role import Role
from search.runs import layout


@dataclass
class SearchRun:
    """One run of a search in this process.

    Args:
        config: the validated search config.
        mode: "new", "resume" or "overwrite" (what `tune` found in the run directory).
        role: this process alone, the chief of a distributed search, or a worker.
        source: the config as the user gave it (a path, or a dict), for the hint that starts workers.
        log: where lines go.
        progress: the `search.engine.progress.Progress` display (None: plain lines, as workers print).
        samples: the run's sample images for the augmentation grids (None: none).
        splits: the data splits (`search.data.Splits` or `search.data.streaming.StreamedSplits`).
        strategy: the tf.distribute strategy each trial trains under (None: one device).
        keras_verbose: Keras's own per-epoch output in each trial (0 off, 2 a line per epoch).
        train_for: seed -> a fresh train pipeline (`search.data.sources.seeded_datasets`): each trial gets its own.
    """

    config: SearchConfig
    mode: str
    role: Role
    source: Any = None
    log: Callable[[str], None] = print
    progress: Any = None
    samples: Any = None
    splits: Any = None
    strategy: Any = None
    keras_verbose: int = 0
    train_for: Callable[[int], Any] | None = None

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    @property
    def tensorboard_root(self) -> Path:
        return self.run_dir / layout.TENSORBOARD_DIR
