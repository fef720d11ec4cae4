"""Keras's Adam and SGD, updating each variable with TensorFlow's fused kernel.

Keras 3 writes an optimizer's update as a dozen backend-neutral ops per variable. On
TensorFlow that costs graph-tracing time for every new model (a third of the ~1.2 s it takes
to trace the default CNN's train step on 2 CPU cores) and a dozen kernel launches per variable
per step. `FusedAdam` and `FusedSGD` make the same update with one TensorFlow kernel per
variable (`ResourceApplyAdam`, `ResourceApplyKerasMomentum`, `ResourceApplyGradientDescent`):
the same formulas in the same order, tested to give Keras's results within float rounding.
They keep Keras's variables, so checkpoints and the optimizer's state are interchangeable
with Keras's classes. Variants the kernels do not cover (AMSGrad, a tf.distribute strategy
in scope) run Keras's own update.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from hypermodels.private_api import adam_slots, sgd_momentum


def _fused() -> bool:
    # Under a distribution strategy the optimizer's slots are distributed variables; Keras's
    # update handles them, the raw kernels would need the per-replica components.
    return not tf.distribute.has_strategy()


@keras.saving.register_keras_serializable(package="ktsearch")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with TensorFlow's fused `ResourceApplyAdam` per variable."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or not _fused():
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        momentum, velocity = adam_slots(self, variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.handle,
            v=velocity.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


@keras.saving.register_keras_serializable(package="ktsearch")
class FusedSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` (momentum, Nesterov) with TensorFlow's fused kernels per variable."""

    def update_step(self, gradient, variable, learning_rate):
        if not _fused():
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rate, gradient = tf.cast(learning_rate, dtype), tf.cast(gradient, dtype)
        if self.momentum == 0:
            tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=rate, delta=gradient)
            return
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle,
            accum=sgd_momentum(self, variable).handle,
            lr=rate,
            grad=gradient,
            momentum=tf.cast(self.momentum, dtype),
            use_nesterov=self.nesterov,
        )
