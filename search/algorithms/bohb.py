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

import math
from dataclasses import dataclass

import keras_tuner as kt
import numpy as np

from hypermodels import private_api

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
        """Densities of the rows of `x` (m, d)."""
        diff = x[:, None, :] - self.data[None, :, :]  # (m, n, d)
        cat = self.categories > 0
        k = np.empty_like(diff)
        cont = ~cat
        z = diff[..., cont] / self.bw[cont]
        k[..., cont] = np.exp(-0.5 * z**2) / (math.sqrt(2 * math.pi) * self.bw[cont])
        lam, c = self.bw[cat], self.categories[cat]
        same = np.abs(diff[..., cat]) < 0.5
        k[..., cat] = np.where(same, 1 - lam, lam / np.maximum(c - 1, 1))
        return k.prod(axis=2).mean(axis=1)

    def sample(self, rng: np.random.Generator, m: int, factor: float) -> np.ndarray:
        """`m` draws around random data points, continuous bandwidths widened by `factor` (truncated to [0, 1])."""
        centres = self.data[rng.integers(len(self.data), size=m)]
        out = centres.copy()
        for j, c in enumerate(self.categories):
            if c:
                switch = rng.random(m) >= 1 - self.bw[j]
                out[switch, j] = rng.integers(c, size=int(switch.sum()))
            else:
                out[:, j] = _truncated_normal(rng, centres[:, j], self.bw[j] * factor)
        return out


def _truncated_normal(rng: np.random.Generator, mean: np.ndarray, sd: float) -> np.ndarray:
    """Normal draws around `mean`, redrawn until in [0, 1] (clipped after 100 tries)."""
    out = rng.normal(mean, sd)
    for _ in range(100):
        bad = (out < 0) | (out > 1)
        if not bad.any():
            break
        out[bad] = rng.normal(mean[bad], sd)
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
        super().__init__(*args, **kwargs)

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
        by_budget: dict[int, tuple[list, list]] = {}
        sign = -1.0 if self.objective.direction == "max" else 1.0
        # In trial-id order (the model's draws index the rows), as `SearchOracle.set_state` keeps `trials`
        # after a reload, so a resumed search sees the rows as the uninterrupted one did.
        for trial in self.trials.values():
            values = trial.hyperparameters.values
            if trial.status != "COMPLETED" or trial.score is None or "tuner/epochs" not in values:
                continue
            row = [d.encode(values[d.hp.name]) if d.hp.name in values else np.nan for d in dims]
            configs, losses = by_budget.setdefault(int(values["tuner/epochs"]), ([], []))
            configs.append(row)
            losses.append(sign * float(trial.score))
        return {
            b: (np.array(c, dtype=float).reshape(len(c), len(dims)), np.array(losses))
            for b, (c, losses) in by_budget.items()
        }

    def model_budget(self, dims: list[Dimension]) -> tuple[int, np.ndarray, np.ndarray] | None:
        """The largest budget with enough observations for a model, with them; None while there is none."""
        needed = (self.min_points or len(dims) + 1) + 2
        for budget, (configs, losses) in sorted(self.observations(dims).items(), reverse=True):
            if len(losses) >= needed:
                return budget, configs, losses
        return None

    def _model_values(self, rng: np.random.Generator) -> tuple[dict, dict] | None:
        dims = self.dimensions()
        found = self.model_budget(dims) if dims else None
        if found is None:
            return None
        budget, configs, losses = found
        categories = [d.categories for d in dims]
        configs = impute(configs, categories, rng)
        good, bad = split_good_bad(losses, self.min_points or len(dims) + 1, self.top_fraction)
        l_kde = KDE(configs[good], categories, self.min_bandwidth)
        g_kde = KDE(configs[bad], categories, self.min_bandwidth)
        samples = l_kde.sample(rng, self.candidates, self.bandwidth_factor)
        ratio = np.maximum(l_kde.pdf(samples), 1e-32) / np.maximum(g_kde.pdf(samples), 1e-32)
        for index in np.argsort(-ratio, kind="stable"):
            values = self._values_of(dict(zip((d.hp.name for d in dims), samples[index], strict=True)))
            if not self.is_duplicate(values):
                return values, {"by": "model", "budget": budget, "observations": len(losses)}
        return None  # every candidate was tried before: a random draw

    def _values_of(self, vector: dict) -> dict:
        """Active values in KerasTuner's space order (conditions decide which are active)."""
        dims = {d.hp.name: d for d in self.dimensions()}
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                hps.values[hp.name] = dims[hp.name].decode(vector[hp.name]) if hp.name in dims else hp.value
        return hps.values

    OWN_PROPOSAL_STATE = ("model_draws", "proposals")  # a proposal the time budget refuses leaves no trace

    def get_state(self):
        return super().get_state() | {STATE_KEY: {"proposals": self.proposals, "model_draws": self.model_draws}}

    def set_state(self, state):
        super().set_state(state)
        saved = state.get(STATE_KEY) or {}
        self.proposals = dict(saved.get("proposals") or {})
        self.model_draws = int(saved.get("model_draws", 0))
