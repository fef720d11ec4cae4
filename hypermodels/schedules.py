"""Learning-rate schedules as pure functions of the absolute epoch (no TensorFlow).

Every kind shares one warmup: for ``epoch < warmup_epochs`` the rate climbs
linearly, ``initial_lr * (epoch + 1) / (warmup_epochs + 1)``. After warmup:

* ``constant``: ``initial_lr``
* ``step``: ``initial_lr * drop_factor`` from absolute epoch ``drop_epoch`` on,
  applied once (the classic recipe's "x0.1 after epoch 10")
* ``exponential``: ``initial_lr * decay_rate ** (epoch - warmup_epochs)``
* ``cosine``: from ``initial_lr`` down to ``initial_lr * min_lr_ratio`` over
  ``horizon - warmup_epochs`` epochs, then flat

The rate never depends on the optimizer's current rate, so a Hyperband
continuation that starts at ``initial_epoch`` follows the same curve as an
uninterrupted run, and nothing compounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    """A callable ``epoch -> learning rate`` (usable by keras LearningRateScheduler).

    Example:
        >>> LRSchedule("step", 0.01, drop_epoch=10)(12)
        0.001
    """

    kind: str
    initial_lr: float
    warmup_epochs: int = 0
    horizon: int = 1
    drop_epoch: int = 1
    drop_factor: float = 0.1
    decay_rate: float = 0.9
    min_lr_ratio: float = 0.0

    def __post_init__(self):
        if self.kind not in _DECAYS:
            raise ValueError(f"unknown schedule kind {self.kind!r}; expected one of {', '.join(_DECAYS)}")
        if self.warmup_epochs >= self.horizon:
            raise ValueError(f"warmup_epochs must be below the horizon, got {self.warmup_epochs=} >= {self.horizon=}")

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        """Rate for `epoch` (0-based, absolute); `lr` (the current rate) is ignored on purpose."""
        if epoch < self.warmup_epochs:
            return float(self.initial_lr * (epoch + 1) / (self.warmup_epochs + 1))
        return float(_DECAYS[self.kind](self, epoch))

    @classmethod
    def from_values(cls, values: dict, horizon: int) -> LRSchedule:
        """Build from dotted hyperparameter values (``schedule.*``)."""
        params = {k.partition(".")[2]: v for k, v in values.items() if k.startswith("schedule.")}
        return cls(horizon=horizon, **params)


def _constant(s: LRSchedule, epoch: int) -> float:
    return s.initial_lr


def _step(s: LRSchedule, epoch: int) -> float:
    return s.initial_lr * (s.drop_factor if epoch >= s.drop_epoch else 1.0)


def _exponential(s: LRSchedule, epoch: int) -> float:
    return s.initial_lr * s.decay_rate ** (epoch - s.warmup_epochs)


def _cosine(s: LRSchedule, epoch: int) -> float:
    span = s.horizon - s.warmup_epochs
    progress = min(epoch - s.warmup_epochs, span) / span
    return s.initial_lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


_DECAYS = {"constant": _constant, "step": _step, "exponential": _exponential, "cosine": _cosine}
