"""Checks of what every privacy attack receives: representation matrices and label vectors.

Representations h are checked by `privemo._util.validation.check_matrix` (finite 2-D float32, scikit-learn's
``check_array``); labels here, because attack labels are speakers or genders -- strings or ints, never missing -- and a
label the attacker never trained on must be named. Classes are scikit-learn ``LabelEncoder``'s (sorted unique labels).
Errors use the Keras wording of `privemo._util.validation.invalid`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import LabelEncoder

from privemo._util.validation import check_matrix, invalid

__all__ = ["check_labels", "fit_classes", "encode_labels", "check_train_val", "check_fit_inputs"]


def check_labels(name: str, y: Any, n_samples: int) -> np.ndarray:
    """``y`` as a 1-D array of ``n_samples`` labels of one type (ints or strings), none missing (None / NaN)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise invalid(name, "a 1-D array of labels", received=f"{name}.shape={arr.shape}")
    if arr.shape[0] != n_samples:
        raise invalid(name, f"{n_samples} labels, one per representation row", received=f"{arr.shape[0]} labels")
    missing = "no missing labels (drop utterances whose label is unknown first)"
    if arr.dtype == object:
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in arr):
            raise invalid(name, missing, received="None/NaN labels")
        kinds = {type(v) for v in arr}
        if len(kinds) > 1:
            raise invalid(name, "labels of a single type", received=f"types {sorted(k.__name__ for k in kinds)}")
        arr = arr.astype(str) if kinds == {str} else arr
    elif np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise invalid(name, missing, received="NaN labels")
    return arr


def fit_classes(name: str, y: np.ndarray) -> LabelEncoder:
    """A ``LabelEncoder`` fitted on checked labels ``y``, which must hold at least two classes."""
    encoder = LabelEncoder().fit(y)
    if encoder.classes_.size < 2:
        raise invalid(name, "at least 2 distinct classes to attack",
                      received=f"{encoder.classes_.size} class ({encoder.classes_.tolist()})")
    return encoder


def encode_labels(name: str, y: np.ndarray, encoder: LabelEncoder) -> np.ndarray:
    """Indices of ``y`` into ``encoder.classes_``; a label absent from the training labels is an error."""
    unseen = np.setdiff1d(np.unique(y), encoder.classes_)
    if unseen.size:
        shown = ", ".join(map(repr, unseen[:5].tolist())) + (" ..." if unseen.size > 5 else "")
        raise invalid(name, f"only labels present in the attacker's training labels {encoder.classes_.tolist()[:10]}",
                      received=f"unseen labels {shown}")
    return encoder.transform(y)


def check_train_val(h_train: Any, y_train: Any, h_val: Any, y_val: Any):
    """An attacker's training and validation sets checked: (h_train, y_train, encoder, h_val, y_val).

    ``encoder`` holds the training classes; every validation label must be one of them.
    """
    h_train = check_matrix("h_train", h_train)
    y_train = check_labels("y_train", y_train, len(h_train))
    encoder = fit_classes("y_train", y_train)
    h_val = check_matrix("h_val", h_val, n_features=h_train.shape[1])
    y_val = check_labels("y_val", y_val, len(h_val))
    encode_labels("y_val", y_val, encoder)
    return h_train, y_train, encoder, h_val, y_val


def check_fit_inputs(X: Any, y: Any, validation_data: Any):
    """What an attacker's ``fit(X, y, validation_data)`` receives, checked: (X, y_enc, encoder, val).

    ``y_enc`` are the indices of ``y`` into ``encoder.classes_``; ``val`` is None or (h_val, y_val_enc).
    """
    X = check_matrix("X", X)
    y = check_labels("y", y, len(X))
    encoder = fit_classes("y", y)
    y_enc = encoder.transform(y)
    if validation_data is None:
        return X, y_enc, encoder, None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise invalid("validation_data", "a tuple (h_val, y_val)", received=type(validation_data).__name__)
    h_val = check_matrix("h_val", validation_data[0], n_features=X.shape[1])
    y_val = check_labels("y_val", validation_data[1], len(h_val))
    return X, y_enc, encoder, (h_val, encode_labels("y_val", y_val, encoder))
