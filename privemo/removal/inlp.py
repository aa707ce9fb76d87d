"""INLP, iterative nullspace projection (Ravfogel et al., ACL 2020), post hoc and linear: ``fit_inlp`` finds the
projection, ``NullspaceProjection`` carries it as a layer, ``apply_projection`` appends it to a trained network."""

from __future__ import annotations

import numpy as np
import keras
from keras import ops

from privemo._util.validation import check_float, check_int, check_matrix, invalid
from privemo.metrics import uar
from privemo.removal._common import INLP_C, INLP_ITERATIONS, INLP_TOLERANCE
from privemo.removal.erasure import apply_erasure, check_square_matrix

__all__ = ["fit_inlp", "NullspaceProjection", "apply_projection"]


def _check_y(y, n: int, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.shape != (n,):
        raise invalid(name, f"a 1-D label array of length {n}", received=f"array of shape {a.shape}")
    return a


def _check_data(h_train, y_train, h_val, y_val) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``fit_inlp``'s data as float64 / label arrays of matching sizes, with at least two training classes."""
    h_train = check_matrix("h_train", h_train, dtype=np.float64)
    h_val = check_matrix("h_val", h_val, n_features=h_train.shape[1], dtype=np.float64)
    y_train = _check_y(y_train, len(h_train), "y_train")
    y_val = _check_y(y_val, len(h_val), "y_val")
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise invalid("y_train", "labels of at least 2 classes", received=f"classes {classes.tolist()}")
    return h_train, y_train, h_val, y_val


def _nullspace(directions: list[np.ndarray], dim: int) -> np.ndarray:
    """The orthogonal projection onto the complement of the span of ``directions`` (each (r_i, dim))."""
    w = np.concatenate(directions, axis=0)
    u, s, _ = np.linalg.svd(w.T, full_matrices=False)
    basis = u[:, s > s.max() * 1e-10] if s.size and s.max() > 0 else u[:, :0]
    return np.eye(dim) - basis @ basis.T


def fit_inlp(
    h_train,
    y_train,
    h_val,
    y_val,
    *,
    n_iterations: int = INLP_ITERATIONS,
    seed: int = 0,
    C: float = INLP_C,
    tolerance: float = INLP_TOLERANCE,
    return_info: bool = False,
):
    """Iterative nullspace projection (Ravfogel et al., ACL 2020): a (d, d) projection P that removes the attribute's
    linearly decodable directions from representations h (rows), used as ``h @ P``.

    Each iteration fits a logistic regression (standardised inputs, balanced classes, L2 ``C``) to predict ``y`` from the
    currently projected training h, scores it on the projected validation h, and adds its weight vectors (in h's
    coordinates) to the removed directions; P is the orthogonal projection onto the complement of all removed directions.
    It stops after ``n_iterations`` or as soon as the validation UAR is within ``tolerance`` of chance (1 / n_classes).

    Returns:
        P as a float32 (d, d) symmetric matrix; with ``return_info=True``, ``(P, info)`` where info has "val_uar" (the
        validation UAR of each iteration's classifier, before its directions are removed), "rank_removed" and
        "iterations".
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    h_train, y_train, h_val, y_val = _check_data(h_train, y_train, h_val, y_val)
    d = h_train.shape[1]
    n_iterations = check_int("n_iterations", n_iterations, 1)
    C = check_float("C", C, 0, low_open=True)
    tolerance = check_float("tolerance", tolerance, 0)
    chance = 1.0 / len(np.unique(y_train))
    projection = np.eye(d)
    directions: list[np.ndarray] = []
    history: list[float] = []
    for _ in range(n_iterations):
        x_train, x_val = h_train @ projection, h_val @ projection
        scaler = StandardScaler().fit(x_train)
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=int(seed))
        clf.fit(scaler.transform(x_train), y_train)
        score = uar(y_val, clf.predict(scaler.transform(x_val)))
        history.append(float(score))
        if score <= chance + tolerance:
            break
        w = clf.coef_ / scaler.scale_  # weight vectors in h's coordinates
        w = w @ projection  # keep them inside the current nullspace (numerically)
        w = w[np.linalg.norm(w, axis=1) > 1e-12]
        if not len(w):
            break
        directions.append(w)
        projection = _nullspace(directions, d)
    p = projection.astype(np.float32)
    if not return_info:
        return p
    rank = int(round(d - np.trace(projection)))
    return p, {"val_uar": history, "rank_removed": rank, "iterations": len(history)}


@keras.saving.register_keras_serializable(package="privemo")
class NullspaceProjection(keras.layers.Layer):
    """Multiplies representations by a fixed projection matrix: ``outputs = inputs @ projection``.

    Appended after an encoder (``apply_projection``) it exports the INLP-cleaned representation. The matrix is a
    non-trainable weight (so ``save_weights`` / ``.keras`` files carry it) and is also returned by ``get_config`` as a
    nested list, so the layer rebuilds from its config alone.

    Args:
        projection: (d, d) array-like of finite floats, e.g. from ``fit_inlp``.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: Float tensor (..., d).
    """

    def __init__(self, projection, **kwargs):
        super().__init__(**kwargs)
        matrix = check_square_matrix("projection", projection)
        self.dim = int(matrix.shape[0])
        self.projection = self.add_weight(
            shape=matrix.shape,
            initializer=keras.initializers.Constant(matrix),
            trainable=False,
            name="projection",
        )
        self._build_at_init()

    def call(self, inputs):
        return ops.matmul(inputs, ops.cast(self.projection, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "projection": ops.convert_to_numpy(self.projection).tolist()}


def apply_projection(
    model: keras.Model, projection, *, layer: str = "h", freeze_encoder: bool = True, name: str | None = None
) -> keras.Model:
    """``apply_erasure`` with ``NullspaceProjection(projection)`` (e.g. from ``fit_inlp``) as the layer "h"; default name
    ``{model.name}_inlp``."""
    return apply_erasure(model, NullspaceProjection(projection, name="h"), layer=layer, freeze_encoder=freeze_encoder,
                         name=name or f"{model.name}_inlp")
