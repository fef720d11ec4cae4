"""BOHB (Falkner, Klein and Hutter, ICML 2018) on KerasTuner's Hyperband oracle.

Hyperband decides budgets and who is continued; BOHB only changes where a bracket's *new*
configurations come from. For each budget b (a trial's `tuner/epochs`) the completed trials give
observations (configuration, score). Once the largest budget with enough observations has
`min_points + 2` of them, a new configuration is, with probability `1 - random_fraction`, the one
of `candidates` samples that maximises l(x) / g(x), where l is a kernel density estimate over the
best `top_fraction` of that budget's results and g over the rest; otherwise it is KerasTuner's
random draw. Departures from the paper and from its reference code (hpbandster) are in
docs/algorithms.md.

The space is KerasTuner's: a `Float`, `Int` or ordered `Choice` is a continuous dimension on
[0, 1] (`value_to_prob`), an unordered `Choice` or a `Boolean` a categorical one
(Aitchison-Aitken kernel); a dimension a configuration leaves inactive is imputed from the active
values of the other observations, as hpbandster does. The model's draws come from a NumPy
generator seeded by (seed, proposals so far), a count saved with the oracle, and the random
draws are KerasTuner's own: the same seed gives the same proposals in one process, a resume
proposes what the uninterrupted run would have, and until the model has data BOHB proposes
exactly Hyperband's configurations.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import keras_tuner as kt
import numpy as np

from hypermodels import private_api
from search.algorithms import trial_order

STATE_KEY = "ktsearch_bohb"


@dataclass(frozen=True)
class Dimension:
    """A searched hyperparameter as BOHB models it."""

    hp: object  # the KerasTuner hyperparameter
    categories: int  # 0: continuous on [0, 1]; else the number of categories

    @classmethod
    def of(cls, hp) -> Dimension | None:
        if isinstance(hp, kt.engine.hyperparameters.Fixed):
            return None
        if isinstance(hp, kt.engine.hyperparameters.Boolean):
            return cls(hp, 2)
        if isinstance(hp, kt.engine.hyperparameters.Choice) and not hp.ordered:
            return cls(hp, len(hp.values))
        return cls(hp, 0)

    def encode(self, value) -> float:
        if not self.categories:
            return float(self.hp.value_to_prob(value))
        if isinstance(self.hp, kt.engine.hyperparameters.Boolean):
            return float(bool(value))
        return float(self.hp.values.index(value))

    def decode(self, x: float):
        if not self.categories:
            return self.hp.prob_to_value(min(max(float(x), 1e-9), 1 - 1e-9))
        index = int(round(x))
        if isinstance(self.hp, kt.engine.hyperparameters.Boolean):
            return bool(index)
        return self.hp.values[index]


class KDE:
    """A product kernel density: Gaussian on continuous dimensions, Aitchison-Aitken on categorical ones.

    Bandwidths by the normal reference rule (1.06 sd n^(-1/(4+d)), as statsmodels' `KDEMultivariate`
    that hpbandster uses), at least `min_bandwidth`; a categorical one at most (c-1)/c.
    """

    def __init__(self, data: np.ndarray, categories: list[int], min_bandwidth: float):
        self.data = data
        self.categories = np.array(categories)
        n, d = data.shape
        sd = data.std(axis=0, ddof=1) if n > 1 else np.zeros(d)
        bw = np.maximum(1.06 * sd * n ** (-1.0 / (4 + d)), min_bandwidth)
        cat = self.categories > 0
        bw[cat] = np.minimum(bw[cat], (self.categories[cat] - 1) / self.categories[cat])
        self.bw = bw

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Densities of the rows of `x` (m, d): the mean over the data of each kernel product, computed as
        exp(sum of log kernels) with two matrix products (m x n), not an (m, n, d) array."""
        cat = self.categories > 0
        cont = ~cat
        log_k = np.zeros((len(x), len(self.data)))
        if cont.any():
            bw = self.bw[cont]
            a, b = x[:, cont] / bw, self.data[:, cont] / bw
            squared = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
            log_k += -0.5 * np.maximum(squared, 0.0) - float(np.log(math.sqrt(2 * math.pi) * bw).sum())
        if cat.any():
            lam, c = self.bw[cat], self.categories[cat]
            log_same = np.log(1 - lam)
            log_other = np.where(c > 1, np.log(np.maximum(lam, 1e-300) / np.maximum(c - 1, 1)), 0.0)
            # One column per (dimension, category): x's row weighs its categories, the data's row marks them.
            offsets = np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int)
            xs = np.clip(np.rint(x[:, cat]), 0, c - 1).astype(int) + offsets
            ds = np.clip(np.rint(self.data[:, cat]), 0, c - 1).astype(int) + offsets
            weigh = np.zeros((len(x), int(c.sum())))
            np.put_along_axis(weigh, xs, np.broadcast_to(log_same - log_other, xs.shape), axis=1)
            mark = np.zeros((len(self.data), int(c.sum())))
            np.put_along_axis(mark, ds, 1.0, axis=1)
            log_k += float(log_other.sum()) + weigh @ mark.T
        return np.exp(log_k).mean(axis=1)

    def sample(self, rng: np.random.Generator, m: int, factor: float) -> np.ndarray:
        """`m` draws around random data points, continuous bandwidths widened by `factor` (truncated to [0, 1]):
        the categorical dimensions first, one after the other, then the continuous ones together."""
        centres = self.data[rng.integers(len(self.data), size=m)]
        out = centres.copy()
        for j, c in enumerate(self.categories):
            if c:
                switch = rng.random(m) >= 1 - self.bw[j]
                out[switch, j] = rng.integers(c, size=int(switch.sum()))
        cont = self.categories == 0
        if cont.any():
            out[:, cont] = _truncated_normal(
                rng, centres[:, cont], np.broadcast_to(self.bw[cont] * factor, (m, int(cont.sum())))
            )
        return out


def _truncated_normal(rng: np.random.Generator, mean: np.ndarray, sd: np.ndarray, batch: int = 8) -> np.ndarray:
    """Normal draws around `mean` (sd per entry), each outside [0, 1] drawn again until inside (rejection
    sampling: `batch` tries per entry at a time, the first inside taken; clipped after 100 rounds)."""
    out = rng.normal(mean, sd)
    for _ in range(100):
        bad = np.flatnonzero((out < 0) | (out > 1))
        if not len(bad):
            break
        tries = rng.normal(mean.flat[bad][:, None], sd.flat[bad][:, None], size=(len(bad), batch))
        inside = (tries >= 0) & (tries <= 1)
        found = inside.any(axis=1)
        out.flat[bad[found]] = tries[found, inside[found].argmax(axis=1)]
    return np.clip(out, 0.0, 1.0)


def split_good_bad(losses: np.ndarray, min_points: int, top_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the good (lowest losses) and bad (highest) observations, as the paper sizes them:
    N_l = max(N_min, q N), N_b = max(N_min, N - N_l); with few observations the two overlap."""
    order = np.argsort(losses, kind="stable")
    n = len(losses)
    n_good = max(min_points, int(top_fraction * n))
    n_bad = max(min_points, n - n_good)
    return order[:n_good], order[n - n_bad :]


def impute(data: np.ndarray, categories: list[int], rng: np.random.Generator) -> np.ndarray:
    """Inactive entries (NaN): a random active value of the same dimension, or a random value if none is."""
    data = data.copy()
    for j, c in enumerate(categories):
        missing = np.isnan(data[:, j])
        if not missing.any():
            continue
        present = data[~missing, j]
        if len(present):
            data[missing, j] = rng.choice(present, size=int(missing.sum()))
        else:
            data[missing, j] = rng.integers(c, size=int(missing.sum())) if c else rng.random(int(missing.sum()))
    return data


class Observed:
    """The completed trials' rows per budget (`BohbOracle.observations`), kept in trial-id order as trials end:
    a proposal reads its budget's arrays as they are, not every trial encoded again (a row is inserted where
    its trial's id sorts: one array copy, in C)."""

    def __init__(self, dims: list[Dimension], sign: float):
        self.dims = dims
        self.names = tuple(d.hp.name for d in dims)
        self.sign = sign
        self.seen: set[str] = set()
        self.keys: dict[int, list] = {}  # budget -> its trials' sort keys, in order
        self.configs: dict[int, np.ndarray] = {}  # budget -> (n, d), NaN where inactive
        self.losses: dict[int, np.ndarray] = {}  # budget -> (n,)

    def add(self, trial) -> None:
        values = trial.hyperparameters.values
        if (
            trial.trial_id in self.seen
            or trial.status != "COMPLETED"
            or trial.score is None
            or "tuner/epochs" not in values
        ):
            return
        self.seen.add(trial.trial_id)
        budget = int(values["tuner/epochs"])
        row = [d.encode(values[d.hp.name]) if d.hp.name in values else np.nan for d in self.dims]
        keys = self.keys.setdefault(budget, [])
        key = trial_order(trial.trial_id)
        at = bisect.bisect(keys, key)
        keys.insert(at, key)
        configs = self.configs.get(budget, np.empty((0, len(self.dims))))
        self.configs[budget] = np.insert(configs, at, np.array(row, dtype=float).reshape(1, -1), axis=0)
        losses = self.losses.get(budget, np.empty(0))
        self.losses[budget] = np.insert(losses, at, self.sign * float(trial.score))

    def budgets(self) -> list[int]:
        return list(self.keys)

    def count(self, budget: int) -> int:
        return len(self.keys.get(budget, []))

    def arrays(self, budget: int) -> tuple[np.ndarray, np.ndarray]:
        return self.configs[budget], self.losses[budget]


class BohbOracle(private_api.OracleHooks, kt.oracles.HyperbandOracle):
    """KerasTuner's `HyperbandOracle`, its new configurations proposed by BOHB's model (see the module doc)."""

    def __init__(
        self,
        *args,
        random_fraction: float = 1 / 3,
        top_fraction: float = 0.15,
        min_points: int | None = None,
        candidates: int = 64,
        bandwidth_factor: float = 3.0,
        min_bandwidth: float = 1e-3,
        **kwargs,
    ):
        self.random_fraction = random_fraction
        self.top_fraction = top_fraction
        self.min_points = min_points
        self.candidates = candidates
        self.bandwidth_factor = bandwidth_factor
        self.min_bandwidth = min_bandwidth
        self.proposals: dict[str, dict] = {}  # trial id -> how its configuration was chosen
        self.model_draws = 0  # proposals so far: seeds the model's generator, saved with the oracle
        self._proposing: str | None = None
        self._observed: Observed | None = None  # the completed trials' rows per budget, kept as trials end
        self._fits: dict[int, tuple] = {}  # budget -> (its observations' count, the fitted model)
        super().__init__(*args, **kwargs)

    def end_trial(self, trial):
        try:
            super().end_trial(trial)
        finally:  # the failure limit raises after the trial has ended
            kept = self.trials.get(trial.trial_id)
            if kept is not None and self._observed is not None:
                self._observed.add(kept)

    def populate_space(self, trial_id):
        self._proposing = trial_id
        try:
            return super().populate_space(trial_id)
        finally:
            self._proposing = None

    def propose_values(self):
        # Its own stream: KerasTuner's random draws stay Hyperband's, so until the model has data BOHB
        # proposes exactly what Hyperband with the same seed would, and the difference is the model's.
        rng = np.random.default_rng([self.seed or 0, self.model_draws])
        self.model_draws += 1
        how = self._model_values(rng) if rng.random() >= self.random_fraction else None
        if how is None:
            self._note({"by": "random"})
            return None
        values, note = how
        self._note(note)
        return values

    def _note(self, note: dict) -> None:
        if self._proposing is not None:
            self.proposals[self._proposing] = note

    def dimensions(self) -> list[Dimension]:
        return [d for d in map(Dimension.of, self.hyperparameters.space) if d is not None]

    def observations(self, dims: list[Dimension]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{budget: (configurations (n, d) with NaN where inactive, losses (n,))} of the completed trials."""
        return {b: self._observed_now(dims).arrays(b) for b in self._observed_now(dims).budgets()}

    def _observed_now(self, dims: list[Dimension]) -> Observed:
        names = tuple(d.hp.name for d in dims)
        if self._observed is None or self._observed.names != names:  # the first call, a reload, a new dimension
            sign = -1.0 if self.objective.direction == "max" else 1.0
            self._observed = Observed(dims, sign)
            self._fits = {}
            # In trial-id order (the model's draws index the rows), as `SearchOracle.set_state` keeps `trials`
            # after a reload, so a resumed search sees the rows as the uninterrupted one did.
            for trial in self.trials.values():
                self._observed.add(trial)
        return self._observed

    def model_budget(self, dims: list[Dimension]) -> tuple[int, np.ndarray, np.ndarray] | None:
        """The largest budget with enough observations for a model, with them; None while there is none."""
        needed = (self.min_points or len(dims) + 1) + 2
        observed = self._observed_now(dims)
        for budget in sorted(observed.budgets(), reverse=True):
            if observed.count(budget) >= needed:
                return (budget, *observed.arrays(budget))
        return None

    def fitted(self, dims: list[Dimension], budget: int, configs: np.ndarray, losses: np.ndarray) -> tuple:
        """(good KDE, bad KDE) of a budget's observations, fitted again only when they changed. Inactive entries
        are imputed from a generator seeded by (seed, budget, observations): the fit is the same whenever
        it is made, so a resumed search (which fits afresh) proposes what the uninterrupted one did."""
        cached = self._fits.get(budget)
        if cached is not None and cached[0] == len(losses):
            return cached[1]
        categories = [d.categories for d in dims]
        configs = impute(configs, categories, np.random.default_rng([self.seed or 0, budget, len(losses)]))
        good, bad = split_good_bad(losses, self.min_points or len(dims) + 1, self.top_fraction)
        model = (KDE(configs[good], categories, self.min_bandwidth), KDE(configs[bad], categories, self.min_bandwidth))
        self._fits[budget] = (len(losses), model)
        return model

    def _model_values(self, rng: np.random.Generator) -> tuple[dict, dict] | None:
        dims = self.dimensions()
        found = self.model_budget(dims) if dims else None
        if found is None:
            return None
        budget, configs, losses = found
        l_kde, g_kde = self.fitted(dims, budget, configs, losses)
        samples = l_kde.sample(rng, self.candidates, self.bandwidth_factor)
        ratio = np.maximum(l_kde.pdf(samples), 1e-32) / np.maximum(g_kde.pdf(samples), 1e-32)
        for index in np.argsort(-ratio, kind="stable"):
            values = self._values_of(dict(zip((d.hp.name for d in dims), samples[index], strict=True)))
            if not self.is_duplicate(values):
                return values, {"by": "model", "budget": budget, "observations": len(losses)}
        return None  # every candidate was tried before: a random draw

    def _values_of(self, vector: dict) -> dict:
        """Active values in KerasTuner's space order (conditions decide which are active, as
        `HyperParameters.is_active` decides them: every condition of the hyperparameter holds for the values
        before it)."""
        dims = {d.hp.name: d for d in self.dimensions()}
        values: dict = {}
        for hp in self.hyperparameters.space:
            if all(condition.is_active(values) for condition in hp.conditions):
                values[hp.name] = dims[hp.name].decode(vector[hp.name]) if hp.name in dims else hp.value
        return values

    JOURNALED = {"ktsearch_bohb/proposals": "proposals"}  # per-trial: journaled by entry (`SearchOracle`)
    OWN_PROPOSAL_STATE = ("model_draws", "proposals")  # a proposal the time budget refuses leaves no trace

    def get_state(self):
        return super().get_state() | {STATE_KEY: {"proposals": self.proposals, "model_draws": self.model_draws}}

    def set_state(self, state):
        super().set_state(state)
        self._observed, self._fits = None, {}  # rebuilt from the reloaded trials
        saved = state.get(STATE_KEY) or {}
        self.proposals = dict(saved.get("proposals") or {})
        self.model_draws = int(saved.get("model_draws", 0))
