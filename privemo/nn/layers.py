"""Layers: the gradient reversal layer (GRL) that turns an attribute classifier into an adversary, and its schedules.

The GRL (Ganin & Lempitsky, 2015) is the identity in the forward pass and multiplies the gradient flowing back through it
by -lambda. Placed between the representation h and an attribute head, it lets the head learn to predict the attribute while
the encoder below it is pushed to make that prediction harder (Jaiswal & Mower Provost, AAAI 2020).

The module also holds two small helpers the model factory needs to respect zero padding: ``FrameMask`` (frames up to the
last one with any non-zero value) and ``ApplyMask`` (zero the padded frames again after a layer that does not propagate
masks, such as Conv1D).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Iterable

import keras
import numpy as np
from keras import ops

DANN_GAMMA = 10.0  # gamma of the DANN ramp 2 / (1 + exp(-gamma p)) - 1 (Ganin et al., 2016)
SCHEDULES = ("constant", "dann")


def check_lambda(value, name: str = "lambda_") -> float:
    """Return ``value`` as a float, or raise a Keras-style ValueError if it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a finite float >= 0. Received: {name}={value!r}"
        )
    return float(value)


@keras.saving.register_keras_serializable(package="privemo")
class GradientReversal(keras.layers.Layer):
    """Identity in the forward pass; multiplies the upstream gradient by ``-lambda_`` in the backward pass.

    Put it between a representation and an adversary head: the head learns to predict the attribute, while the layers
    below receive the reversed gradient and learn to hide it. ``lambda_`` lives in a non-trainable scalar variable, so it
    can be changed between epochs or batches (``layer.lambda_ = 0.5``, ``set_lambda``, or the ``LambdaSchedule`` callback)
    without rebuilding the model and inside an already compiled ``tf.function`` / XLA training step.

    The reversal is written with a stop-gradient, ``sg(x) + lambda * (sg(x) - x)``, so it is backend-agnostic: its value is
    exactly ``x`` (``sg(x) - x`` is exactly zero) and its gradient is exactly ``-lambda`` times the upstream gradient.

    Args:
        lambda_: Float >= 0, the strength of the reversal. 0 blocks the gradient; 1 reverses it unscaled.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: A tensor of any shape.
        mask: Passed through unchanged (``supports_masking = True``).
    """

    def __init__(self, lambda_: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        lambda_ = check_lambda(lambda_)
        self.supports_masking = True
        self._lambda = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(lambda_),
            dtype="float32",
            trainable=False,
            autocast=False,
            name="lambda",
        )
        self._build_at_init()

    @property
    def lambda_(self) -> float:
        """The current reversal strength, read from the variable (its float32 value as the shortest decimal: 0.3)."""
        return float(str(np.float32(self._lambda.numpy())))

    @lambda_.setter
    def lambda_(self, value: float) -> None:
        self._lambda.assign(check_lambda(value))

    def set_lambda(self, value: float) -> None:
        """Set the reversal strength; takes effect at the next training step, compiled or not."""
        self.lambda_ = value

    def call(self, inputs):
        x = inputs
        lam = ops.cast(self._lambda.value, x.dtype)
        x_stop = ops.stop_gradient(x)
        # value: x + lam * 0 == x exactly; gradient: -lam * upstream.
        return x_stop + lam * (x_stop - x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        base_config = super().get_config()
        return {**base_config, "lambda_": self.lambda_}


def gradient_reversal_layers(model: keras.Model) -> list[GradientReversal]:
    """All GradientReversal layers of ``model``, nested sub-models included."""
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, GradientReversal)]


def dann_lambda(progress: float, lambda_max: float, gamma: float = DANN_GAMMA) -> float:
    """The DANN ramp: ``lambda_max * (2 / (1 + exp(-gamma * p)) - 1)`` for training progress p in [0, 1]."""
    p = min(max(float(progress), 0.0), 1.0)
    return float(lambda_max) * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


class LambdaSchedule(keras.callbacks.Callback):
    """Sets the lambda of the model's GradientReversal layers during training.

    ``schedule="dann"`` ramps lambda from 0 towards ``lambda_max`` (``lambda_max * (2 / (1 + exp(-10 p)) - 1)``, p = the
    fraction of training done, Ganin et al. 2016); ``"constant"`` keeps it at ``lambda_max``. With ``update="batch"`` p
    advances every batch (needs a known number of steps per epoch, otherwise it falls back to per-epoch updates); with
    ``update="epoch"`` it advances at each epoch start. lambda is a (non-trainable) weight of the model, so
    ``EarlyStopping(restore_best_weights=True)`` also restores the lambda of the best epoch.

    Args:
        lambda_max: Float >= 0, the final (or constant) lambda.
        schedule: "dann" or "constant".
        update: "epoch" or "batch".
        layers: The GradientReversal layers to drive; default all of the model's.
    """

    def __init__(
        self,
        lambda_max: float = 1.0,
        schedule: str = "dann",
        update: str = "epoch",
        layers: Iterable[GradientReversal] | None = None,
    ):
        super().__init__()
        self.lambda_max = check_lambda(lambda_max, "lambda_max")
        if schedule not in SCHEDULES:
            raise ValueError(
                f"Invalid value received for argument `schedule`. Expected one of {SCHEDULES}. "
                f"Received: schedule={schedule!r}"
            )
        if update not in ("epoch", "batch"):
            raise ValueError(
                "Invalid value received for argument `update`. Expected one of ('epoch', 'batch'). "
                f"Received: update={update!r}"
            )
        self.schedule = schedule
        self.update = update
        self._layers = list(layers) if layers is not None else None
        self._epoch = 0
        self.history: list[float] = []  # lambda set at each update, for inspection

    def value(self, progress: float) -> float:
        """The lambda this schedule gives at training progress p in [0, 1]."""
        if self.schedule == "constant":
            return self.lambda_max
        return dann_lambda(progress, self.lambda_max)

    def _set(self, progress: float) -> None:
        lam = self.value(progress)
        layers = self._layers if self._layers is not None else gradient_reversal_layers(self.model)
        for layer in layers:
            layer.lambda_ = lam
        self.history.append(lam)

    def _steps(self):
        return (self.params or {}).get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        epochs = max(int((self.params or {}).get("epochs") or 1), 1)
        if self.update == "epoch" or not self._steps():
            self._set(epoch / epochs)

    def on_train_batch_begin(self, batch, logs=None):
        steps = self._steps()
        if self.update != "batch" or not steps:
            return
        epochs = max(int((self.params or {}).get("epochs") or 1), 1)
        self._set((self._epoch * steps + batch) / (epochs * steps))


@keras.saving.register_keras_serializable(package="privemo")
class FrameMask(keras.layers.Layer):
    """Boolean mask of the real frames of right-zero-padded sequences.

    A sequence's length is the position of its last frame with any non-zero value, plus one: the trailing all-zero
    frames are padding, while an all-zero frame inside the sequence (a silent frame, an out-of-vocabulary word vector) is
    kept. So the mask is always right-padded, as the cuDNN GRU kernel requires. An all-zero sequence keeps its first
    frame (length 1): cuDNN rejects fully masked sequences.

    Call arguments:
        inputs: Float tensor (batch, time, features), zero-padded at the end.

    Returns:
        Bool tensor (batch, time).
    """

    def call(self, inputs):
        nonzero = ops.any(ops.not_equal(inputs, ops.cast(0, inputs.dtype)), axis=-1)
        positions = ops.expand_dims(ops.arange(ops.shape(inputs)[1], dtype="int32"), 0)
        lengths = ops.max(ops.where(nonzero, positions + 1, ops.zeros_like(positions)), axis=1)
        lengths = ops.maximum(lengths, 1)
        return ops.less(positions, ops.expand_dims(lengths, 1))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(tuple(inputs.shape[:-1]), dtype="bool")


@keras.saving.register_keras_serializable(package="privemo")
class ApplyMask(keras.layers.Layer):
    """Zero the masked frames of a sequence: ``inputs * mask[..., None]``.

    Conv1D with ``padding="same"`` lets the padded frames become non-zero (bias, and the taps reaching back into the real
    frames), so the next convolution would see them at the end of the utterance. Zeroing them after each convolution
    makes the output for an utterance independent of how much zero padding follows it.

    Call arguments:
        inputs: Float tensor (batch, time, channels).
        frame_mask: Bool tensor (batch, time).
    """

    def call(self, inputs, frame_mask):
        return inputs * ops.expand_dims(ops.cast(frame_mask, inputs.dtype), -1)

    def compute_output_shape(self, inputs_shape, frame_mask_shape):
        return inputs_shape


@keras.saving.register_keras_serializable(package="privemo")
class PoolMask(keras.layers.Layer):
    """The frame mask after ``MaxPooling1D(pool_size, padding="same")``: a pooled frame is real when its window holds a
    real frame, so a right-padded mask of length L becomes one of length ceil(L / pool_size).

    Args:
        pool_size: Integer >= 1, the pooling window and stride.

    Call arguments:
        inputs: Bool tensor (batch, time), right-padded (``FrameMask``).

    Returns:
        Bool tensor (batch, ceil(time / pool_size)).
    """

    def __init__(self, pool_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(
                f"Invalid value received for argument `pool_size`. Expected an integer >= 1. Received: pool_size={pool_size!r}"
            )
        self.pool_size = pool_size

    def call(self, inputs):
        p = self.pool_size
        lengths = ops.sum(ops.cast(inputs, "int32"), axis=1)
        pooled = (lengths + p - 1) // p
        steps = (ops.shape(inputs)[1] + p - 1) // p
        positions = ops.expand_dims(ops.arange(steps, dtype="int32"), 0)
        return ops.less(positions, ops.expand_dims(pooled, 1))

    def compute_output_spec(self, inputs):
        t = inputs.shape[1]
        return keras.KerasTensor((inputs.shape[0], None if t is None else -(-t // self.pool_size)), dtype="bool")

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}
