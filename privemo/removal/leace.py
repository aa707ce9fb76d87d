"""LEACE: closed-form linear concept erasure (Belrose et al., "LEACE: Perfect linear concept erasure in closed form",
NeurIPS 2023), as a scikit-learn transformer on frozen representations h.

Why: a jointly trained adversary can be fooled, and iterative nullspace projection (INLP, ``privemo.removal``) removes
whole directions, more than it needs to. LEACE edits h so that its covariance with the attribute is exactly zero on the
data it was fitted on -- then no linear classifier predicts the attribute better than a constant (linear guardedness)
-- and among all affine edits with that property it moves h the least, in every norm induced by an inner product
(Euclidean included). Non-linear attackers may still recover what LEACE leaves; privemo's privacy figures come from
fresh attackers, so a LEACE'd h is judged like any other.

With h centred on its mean ``mu``, ``W = Sigma_hh^{-1/2}`` (the whitening map, pseudo-inverse on rank-deficient
covariances) and ``P`` the orthogonal projection onto the column space of ``W Sigma_hz``, the eraser is

    r(h) = h - W^+ P W (h - mu)

where z is the attribute as one-hot columns (binary: one 0/1 column). Fit it on the training speakers' h, apply it to
every utterance's h.

Ranks are decided as in the reference implementation (EleutherAI's concept-erasure, ``leace.py``, without its
covariance shrinkage). Singular values of the whitened cross-covariance ``W Sigma_hz`` at or below an absolute ``tol``
are zero. In whitened units a singular value is scale-free (for a binary attribute it is the standard deviation of z
times its multiple correlation with h), and rounding leaves at most about 1e-7 of it after an erasure (1e-15 on
well-conditioned h, 1e-7 at condition number 1e12): refitting on erased h, or on an attribute uncorrelated with h,
removes nothing, and ``rank_`` is at most k - 1 for k classes. Eigenvalues of ``Sigma_hh`` at or below ``d * eps``
times the largest (the reference's cut, ``torch.linalg.pinv``'s) are zero, and so are those below ``eps`` times the
mean squared norm of h: h that an erasure left as its mean plus rounding has nothing left to whiten.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from privemo._util.validation import check_float, invalid

__all__ = ["LeaceEraser"]


class AffineEraser(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """What every fitted affine eraser shares: ``transform`` applies h -> h - (h - mean_) matrix_^T (``mean_`` and
    ``matrix_`` set by the subclass's ``fit``), and its scikit-learn tags (a required target: the attribute)."""

    def transform(self, X: Any) -> np.ndarray:
        """The erased representations (same shape and floating dtype as ``X``; other dtypes become float64)."""
        check_is_fitted(self, "matrix_")
        dtype = np.asarray(X).dtype if np.issubdtype(np.asarray(X).dtype, np.floating) else np.float64
        x = validate_data(self, X, dtype=np.float64, reset=False)
        return (x - (x - self.mean_) @ self.matrix_.T).astype(dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # the attribute to erase
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class LeaceEraser(AffineEraser):
    """Least-squares concept erasure of a categorical attribute (e.g. gender) from representations.

    Args:
        tol: singular values of the whitened cross-covariance ``Sigma_hh^{-1/2} Sigma_hz`` at or below ``tol`` are
            treated as zero (an absolute threshold in whitened, scale-free units, as in the reference implementation;
            a float > 0). The reference's default, 0.01, leaves an attribute whose multiple correlation with h is under
            about 0.02; privemo's default erases down to numerical noise.

    Fitted attributes:
        mean_: (d,) mean of the fitted h.
        matrix_: (d, d) the edit ``W^+ P W``; ``transform(X) = X - (X - mean_) @ matrix_.T``.
        rank_: rank of ``P`` (at most the number of attribute classes - 1).
        singular_values_: the singular values of the whitened cross-covariance, largest first (``rank_`` of them
            above ``tol``).
        classes_: the attribute's classes.
        n_features_in_: width of h; ``feature_names_in_`` too when h was a DataFrame with string column names.

    A scikit-learn transformer: ``fit(X, y)``, ``transform(X)``, ``get_feature_names_out()`` (the input's feature
    names: erasure keeps every feature); arguments are checked by `fit`, so ``clone`` and pipelines work.
    """

    def __init__(self, tol: float = 1e-5) -> None:
        self.tol = tol

    def fit(self, X: Any, y: Any) -> "LeaceEraser":
        """Fit on representations ``X`` (n, d) and attribute labels ``y`` (n,) with at least two classes."""
        tol = check_float("tol", self.tol, 0.0, low_open=True)
        h, z = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        kind = type_of_target(z, input_name="y")
        if kind not in ("binary", "multiclass"):
            raise invalid("y", "class labels of a categorical attribute (ints or strings)",
                          received=f"Unknown label type: {kind!r} (sklearn.utils.multiclass.type_of_target)")
        self.classes_, codes = np.unique(z, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("LeaceEraser.fit needs an attribute with at least two classes. "
                             f"Received one class: {self.classes_.tolist()}")
        onehot = np.eye(len(self.classes_))[codes]
        onehot = onehot[:, 1:] if len(self.classes_) == 2 else onehot  # binary: one column carries everything
        self.mean_ = h.mean(axis=0)
        hc, zc = h - self.mean_, onehot - onehot.mean(axis=0)
        n = len(h)  # Bessel's correction, as the reference: the singular values are the reference's
        sigma_hh = hc.T @ hc / max(n - 1, 1)
        sigma_hz = hc.T @ zc / max(n - 1, 1)
        values, vectors = np.linalg.eigh(sigma_hh)
        eps = np.finfo(np.float64).eps  # cuts: the reference's, and rounding of h's magnitude (its mean included)
        cut = max(len(values) * eps * values.max(), eps * np.mean(np.sum(h * h, axis=1)), np.finfo(float).tiny)
        keep = values > cut
        v, s = vectors[:, keep], values[keep]
        whiten = (v / np.sqrt(s)) @ v.T
        unwhiten = (v * np.sqrt(s)) @ v.T
        u, self.singular_values_, _ = np.linalg.svd(whiten @ sigma_hz, full_matrices=False)
        u = u[:, : min(int(np.sum(self.singular_values_ > tol)), len(self.classes_) - 1)]
        self.rank_ = int(u.shape[1])
        self.matrix_ = unwhiten @ (u @ u.T) @ whiten
        return self

