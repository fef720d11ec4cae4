"""A real chief under load (`tests.benchmarks.chief_load`, at a small size): a `ktsearch tune --chief` process on
loopback and 16 workers with their own authenticated channels that run fake trials. Every trial ends exactly
once, by the workers' count and in the chief's results, and the simulator's prediction of the search's wall
time holds."""

from __future__ import annotations

import pytest

from tests.benchmarks import chief_load


@pytest.mark.slow
def test_sixteen_fake_workers_end_every_trial_once_and_the_simulator_predicts_the_wall_time():
    result = chief_load.run_one("asha", workers=16, trials_per_worker=3, epoch_s=0.1, timeout=240)
    assert result["errors"] == [] and result["chief_exit"] == 0, result["chief_tail"]
    assert result["trials"] >= 48 and result["ended_once"] and result["chief_completed_match"]
    assert result["requests"] >= 2 * result["trials"]  # each trial asked for and ended, epochs reported
    simulated = chief_load.predicted("asha", result["overrides"], 16, 0.1)
    assert simulated["trials"] >= 48
    assert 0.5 * simulated["wall_s"] <= result["wall_s"] <= 2.0 * simulated["wall_s"]
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"]
