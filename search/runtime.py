"""TensorFlow in this process: imported without its C++ start-up chatter on stderr, the tf.data options of
every pipeline, the distribution strategy a model trains under, the CPU's name.

TensorFlow logs oneDNN and CUDA-probing lines from C++ straight to file
descriptor 2 when it starts (TF_CPP_MIN_LOG_LEVEL does not reach all of them),
which would bury ktsearch's own one-line errors. We silence fd 2 for the import
and the device probe only; Python exceptions still surface afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path


@contextlib.contextmanager
def _native_stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """Import TensorFlow (once) and probe its devices, quietly; returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
    # Every trial builds a new model, so tf.function retracing warnings are expected, not a problem.
    tf.get_logger().setLevel("ERROR")
    return tf


PREFETCH_BATCHES = 2


def tf_options():
    """tf.data options of ktsearch's pipelines: autotuning off.

    tf.data's autotuning runs a model thread per iterator, and dropping such an iterator can
    block for about a second. Keras drops its iterator after every epoch and every evaluation;
    about half of those drops stalled (measured: `python -m tests.benchmarks.pipeline`, TF 2.21
    on 2 CPU cores). So autotuning is off: the prefetch buffer is fixed (`PREFETCH_BATCHES`) and
    the streamed pipelines' parallel maps have fixed parallelism (`search.data.streaming`).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def cpu_model() -> str:
    """`lscpu`'s model name (from /proc/cpuinfo), or '' where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def strategy(config, log=print):
    """The configured tf.distribute strategy for each trial's model, or None (one device)."""
    d = config.distribution
    if d.strategy != "mirrored":
        return None
    import tensorflow as tf

    def key(name: str) -> tuple[str, int]:
        spec = tf.DeviceSpec.from_string(name)
        return (spec.device_type or "").upper(), spec.device_index or 0

    available = {key(device.name): device.name for device in tf.config.list_logical_devices()}
    for name in d.devices or []:
        try:
            known = key(name) in available
        except ValueError:
            known = False
        if not known:
            from search.errors import UserError

            raise UserError(
                config.source,
                "distribution.devices",
                f"expected devices of this machine ({', '.join(sorted(available.values()))}), got {name!r}",
            )
    mirrored = tf.distribute.MirroredStrategy(devices=d.devices)
    devices = ", ".join(mirrored.extended.worker_devices)
    log(
        f"each model trains on {mirrored.num_replicas_in_sync} replica(s) (MirroredStrategy over {devices}), "
        "one batch per call (Keras's steps_per_execution loop fails under MirroredStrategy: keras-team/keras#19246)"
    )
    return mirrored
