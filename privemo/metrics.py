"""Metrics: unweighted average recall (UAR), the paper's emotion and privacy measure."""

from __future__ import annotations

import numpy as np

def uar(y_true, y_pred) -> float:
    """Unweighted average recall: the mean of per-class recalls (scikit-learn's balanced accuracy, same value).

    ``y_pred`` may be class indices or a (n, classes) score matrix, which is arg-maxed; ``y_true`` may be one-hot.
    The mean runs over the classes present in ``y_true``: a class that only ``y_pred`` contains has no recall. That is
    scikit-learn's definition too, but scikit-learn warns ("y_pred contains classes not in y_true") every time, and a
    bootstrap resample or a small validation fold lacks a rare class often, so privemo computes it here, silently.
    """
    from sklearn.utils.multiclass import type_of_target

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
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Invalid value received for argument `{name}`. Expected class labels (1-D) or a (n, "
                             f"classes) score matrix. Received: {name} of type {kind!r}, shape {y.shape}")
    classes, index = np.unique(y_true, return_inverse=True)
    index = index.reshape(-1)
    hits = np.bincount(index, weights=(y_true == y_pred).astype(np.float64), minlength=len(classes))
    return float(np.mean(hits / np.bincount(index, minlength=len(classes))))
