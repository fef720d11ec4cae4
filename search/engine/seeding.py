"""Seeds of a search: the oracle's, and each trial's (initial weights, augmentation stream)."""

from __future__ import annotations

from hypermodels.private_api import seed_keras


def oracle_seed(seed: int) -> int:
    """Spread config seeds far apart for KerasTuner's oracle.

    The oracle draws value k of a search from ``random.Random(seed + k)``, so seeds 1 and 2
    would propose the same values shifted by one dimension; it also reads 0 as "no seed".
    A multiplicative hash keeps the mapping deterministic and puts neighbours ~1e9 apart.
    """
    return 1 + (seed * 2654435761) % (2**31 - 2)


def seed_trial(run_seed: int, trial_id: str) -> None:
    """Same trial id, same initial weights and augmentation stream: runs are reproducible.

    Seeds Keras, Python and NumPy with ``run_seed + trial number``, but not TensorFlow's global
    seed, which would clear TensorFlow's kernel caches (`hypermodels.private_api.seed_keras`).
    """
    seed_keras(run_seed + int(trial_id))
