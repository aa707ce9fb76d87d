"""Metrics: unweighted average recall (UAR), the paper's emotion and privacy measure."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score

CHANCE_UAR_GENDER = 0.5


def uar(y_true, y_pred) -> float:
    """Unweighted average recall: the mean of per-class recalls (scikit-learn's balanced accuracy).

    ``y_pred`` may be class indices or a (n, classes) score matrix, which is arg-maxed.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(axis=1)
    if y_true.ndim == 2:
        y_true = y_true.argmax(axis=1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length. Received: {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("uar() needs at least one sample. Received: empty arrays")
    return float(balanced_accuracy_score(y_true, y_pred))
