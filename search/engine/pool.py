"""`ModelPool`: compiled models kept across trials, so a trial need not trace its graphs again."""

from __future__ import annotations

import gc
from collections import OrderedDict

import keras

from hypermodels.optimizers import FusedAdam, FusedSGD

# Optimizers whose every variable starts at zero, except the learning rate: a fresh one's state is
# set in place. Any other optimizer is built fresh on the fresh model and its state copied (~0.1 s).
ZERO_STATE_OPTIMIZERS = (keras.optimizers.Adam, keras.optimizers.SGD, keras.optimizers.RMSprop, FusedAdam, FusedSGD)


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
        """The model the trial trains in: a kept one holding `fresh`'s state, else `fresh` (then kept)."""
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
        rate = optimizer.learning_rate  # the variable itself (a schedule's rate is not among the variables)
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
