"""Distributed search on KerasTuner's chief/worker engine.

KerasTuner's distributed mode: a chief process holds the oracle and serves it over gRPC;
workers (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`) ask it
for trials, run them, and report back; all share one results directory. ktsearch uses
KerasTuner's oracle, servicer, protocol and client, and adds what a search needs to survive
real clusters:

* **Lost workers.** KerasTuner keeps a trial "ongoing" for its worker until that worker
  reports, so a worker killed mid-trial stalls the search for good (Hyperband waits for
  the trial's round; the chief never exits) unless the same worker ID comes back. Workers
  here send a heartbeat; a worker silent for `distribution.worker_timeout` seconds loses
  its trial, which goes back to the oracle's retry queue for the next worker that asks
  (KerasTuner's own mechanism for trials interrupted by a chief restart).
* **Fencing.** A worker that was only paused and reports later would end the same trial
  twice; the chief remembers which worker holds each trial and drops reports from any other.
* **Waiting without spinning.** KerasTuner's workers re-ask at once while Hyperband waits
  for a round to finish (status IDLE), a busy loop against the chief; they back off here.
* **A chief that ends.** The chief exits when the oracle has no more trials and every
  worker has been told so, or has gone silent; it then writes the run's summary.
* **Nobody else.** Every call carries the run's secret, and TLS is required off loopback (`auth`).

Modules: `role` (this process's role and the shared constants), `auth` (the secret, TLS, the
server's check), `handshake` (a worker's first contact; what a refusal means), `chief`
(`ChiefServicer`, `serve`), `worker` (`WorkerClient`). `role`, `auth` and `handshake` import no
TensorFlow; `chief` and `worker` import KerasTuner.
"""
