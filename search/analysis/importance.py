"""Which knobs mattered: permutation importance of each searched dimension over a run's trials.

A random forest fitted on the completed trials (hyperparameters, plus the epochs each trial
trained, to the objective), then permutation importance per dimension: how much the forest's held-out fit (R², 5-fold) worsens when one dimension's values
are shuffled across trials, its one-hot columns together. Why this method: the dimensions mix
floats, integers and categories, act through interactions (a learning rate matters differently
per schedule), and a search has tens of trials, not thousands; a forest needs no linearity and no
scaling, and permutation importance is not biased towards high-cardinality dimensions as the
forest's own impurity importance is. Hyperband trains trials for different numbers of epochs;
the epochs are a feature of their own, so the budget's effect is not credited to a
hyperparameter. With few trials the ranking is noisy: the report says how many it used, and the
spread over repeats of the shuffle.
"""

from __future__ import annotations

import math

import numpy as np

MIN_TRIALS_FOR_IMPORTANCE = 6


def importance(trials: list[dict], dims: list[str], direction: str, repeats: int = 20, seed: int = 0) -> dict:
    """Permutation importance of each searched dimension on the completed trials (see module doc)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold

    done = [t for t in trials if t["status"] == "COMPLETED" and t["score"] is not None and math.isfinite(t["score"])]
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return {"trials": len(done), "method": None, "ranking": []}
    columns: list[np.ndarray] = []
    groups: dict[str, list[int]] = {}
    features = [*dims, "epochs"]
    for name in features:
        values = [
            ((t.get("record") or {}).get("epochs_granted") or 0) + ((t.get("record") or {}).get("initial_epoch") or 0)
            if name == "epochs"
            else t["hyperparameters"].get(name)
            for t in done
        ]
        start = len(columns)
        given = [v for v in values if v is not None]  # None: a conditional dimension this trial did not use
        if given and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
            columns.append(np.array([np.nan if v is None else v for v in values], dtype=float))
        else:  # categories (and booleans): one column per value
            for level in sorted({str(v) for v in values}):
                columns.append(np.array([str(v) == level for v in values], dtype=float))
        groups[name] = list(range(start, len(columns)))
    x = np.stack(columns, axis=1)
    y = np.array([t["score"] for t in done], dtype=float)
    if direction == "min":
        y = -y
    # Held-out predictions (5-fold): the forest is judged on trials it did not see, intact and with
    # one dimension's values shuffled across all trials.
    folds = KFold(n_splits=min(5, len(done)), shuffle=True, random_state=seed)
    rng = np.random.default_rng(seed)
    shuffles = {name: [rng.permutation(len(x)) for _ in range(repeats)] for name in groups}
    base = np.zeros(len(y))
    shuffled = {name: np.zeros((repeats, len(y))) for name in groups}
    for train, test in folds.split(x):
        forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed)
        forest.fit(x[train], y[train])
        # Every shuffled copy of the held-out rows in one matrix, predicted in one call: the forest predicts
        # row by row, so one call gives what a call per copy would, without 200 trees' overhead per call.
        batch = [x[test]]
        for name, cols in groups.items():
            for order in shuffles[name]:
                permuted = x[test].copy()
                permuted[:, cols] = x[order][test][:, cols]
                batch.append(permuted)
        predicted = forest.predict(np.concatenate(batch)).reshape(len(batch), len(test))
        base[test] = predicted[0]
        at = 1
        for name in groups:
            shuffled[name][:, test] = predicted[at : at + repeats]
            at += repeats
    r2 = _r2(y, base)
    scores = {}
    for name in groups:
        drops = [r2 - _r2(y, shuffled[name][r]) for r in range(repeats)]
        scores[name] = (float(np.mean(drops)), float(np.std(drops)))
    ranking = sorted(scores.items(), key=lambda kv: -kv[1][0])
    return {
        "trials": len(done),
        "method": "random forest + permutation importance (5-fold held-out R²)",
        "r2": r2,
        "ranking": [{"dimension": k, "importance": m, "spread": s} for k, (m, s) in ranking],
    }


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / total if total > 0 else 0.0
