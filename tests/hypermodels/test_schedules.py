"""Exact learning rates per kind at chosen epochs, and continuation behaviour in real Keras fits."""

import keras
import numpy as np
import pytest

from hypermodels.schedules import LRSchedule

CASES = [
    # kind, params, {epoch: expected lr}
    ("constant", {}, {0: 0.01, 5: 0.01, 50: 0.01}),
    ("constant", {"warmup_epochs": 3}, {0: 0.0025, 1: 0.005, 2: 0.0075, 3: 0.01, 8: 0.01}),
    # The classic recipe: x0.1 from epoch 10 on, once (never compounding).
    ("step", {"drop_epoch": 10, "drop_factor": 0.1}, {0: 0.01, 9: 0.01, 10: 0.001, 11: 0.001, 30: 0.001}),
    (
        "step",
        {"drop_epoch": 4, "drop_factor": 0.5, "warmup_epochs": 1},
        {0: 0.005, 1: 0.01, 3: 0.01, 4: 0.005, 8: 0.005},
    ),
    ("exponential", {"decay_rate": 0.5}, {0: 0.01, 1: 0.005, 3: 0.00125}),
    ("exponential", {"decay_rate": 0.5, "warmup_epochs": 1}, {0: 0.005, 1: 0.01, 2: 0.005, 4: 0.00125}),
    ("cosine", {"horizon": 10}, {0: 0.01, 5: 0.005, 10: 0.0, 20: 0.0}),
    ("cosine", {"horizon": 10, "min_lr_ratio": 0.1}, {0: 0.01, 5: 0.0055, 10: 0.001}),
    ("cosine", {"horizon": 6, "warmup_epochs": 2}, {0: 0.01 / 3, 1: 0.02 / 3, 2: 0.01, 4: 0.005, 6: 0.0}),
]


@pytest.mark.parametrize("kind, params, expected", CASES)
def test_learning_rate_table(kind, params, expected):
    schedule = LRSchedule(kind, 0.01, **{"horizon": 100, **params})
    for epoch, lr in expected.items():
        assert schedule(epoch) == pytest.approx(lr, abs=1e-12), (kind, epoch)


def test_current_rate_is_ignored_so_nothing_compounds():
    schedule = LRSchedule("step", 0.01, horizon=20, drop_epoch=10)
    # Keras passes the optimizer's current rate; feeding back the dropped rate must not drop it again.
    lr = 0.01
    for epoch in range(20):
        lr = schedule(epoch, lr)
    assert lr == pytest.approx(0.001)


def test_invalid_schedules_are_caught_up_front():
    with pytest.raises(ValueError, match="unknown schedule kind"):
        LRSchedule("linear", 0.01)
    with pytest.raises(ValueError, match="warmup_epochs must be below the horizon"):
        LRSchedule("cosine", 0.01, warmup_epochs=5, horizon=5)


def _fit_rates(schedule, initial_epoch, epochs):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x, y = np.ones((8, 2), "float32"), np.ones((8, 1), "float32")
    cb = keras.callbacks.LearningRateScheduler(schedule)
    history = model.fit(x, y, epochs=epochs, initial_epoch=initial_epoch, callbacks=[cb], verbose=0)
    return history.history["learning_rate"]


@pytest.mark.parametrize(
    "kind, extra", [("cosine", {}), ("exponential", {"decay_rate": 0.7}), ("step", {"drop_epoch": 4})]
)
def test_a_continuation_follows_the_full_runs_curve(kind, extra):
    """Hyperband resumes at initial_epoch: epochs 3..8 must get the rates of an uninterrupted 0..8 run."""
    schedule = LRSchedule(kind, 0.01, warmup_epochs=1, horizon=9, **extra)
    full = _fit_rates(schedule, 0, 9)
    continued = _fit_rates(schedule, 3, 9)
    np.testing.assert_allclose(continued, full[3:], rtol=1e-6)
    np.testing.assert_allclose(full, [schedule(e) for e in range(9)], rtol=1e-6)
