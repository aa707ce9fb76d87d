"""Privacy losses of the alternating encoder step (per sample; the adversary heads' softmax outputs as input)."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["confusion_loss", "reverse_loss"]

_EPS = 1e-7


def confusion_loss(probs):
    """Cross-entropy from the uniform distribution to ``probs`` (batch, classes): ``-mean_c log p_c`` per sample.

    Minimal (= log K) exactly when the adversary's output is uniform, so minimising it pushes the adversary toward
    maximum entropy instead of toward the wrong class. Returns a (batch,) tensor.
    """
    probs = ops.clip(probs, _EPS, 1.0)
    return -ops.mean(ops.log(probs), axis=-1)


def reverse_loss(y_true, probs):
    """The reversed cross-entropy ``log p_y`` per sample (the negative of the adversary's loss): the encoder is rewarded
    for making the adversary wrong, without bound other than the probability clip (a confidently wrong adversary scores
    best, which is why this loss can leave the attribute decodable). Returns a (batch,) tensor."""
    return -keras.losses.sparse_categorical_crossentropy(y_true, probs)
