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
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

__all__ = ["LeaceEraser"]


class LeaceEraser(TransformerMixin, BaseEstimator):
    """Least-squares concept erasure of a categorical attribute (e.g. gender) from representations.

    Args:
        tol: eigenvalues of the covariance (and singular values of the whitened cross-covariance) below ``tol`` times
            the largest are treated as zero.

    Fitted attributes:
        mean_: (d,) mean of the fitted h.
        matrix_: (d, d) the edit ``W^+ P W``; ``transform(h) = h - (h - mean_) @ matrix_.T``.
        rank_: rank of ``P`` (at most the number of attribute classes - 1).
        classes_: the attribute's classes.
    """

    def __init__(self, tol: float = 1e-8):
        self.tol = tol

    def fit(self, h, z) -> "LeaceEraser":
        """Fit on representations ``h`` (n, d) and attribute labels ``z`` (n,) with at least two classes."""
        h, z = check_X_y(h, z, dtype=np.float64, y_numeric=False)
        if not float(self.tol) > 0:
            raise ValueError(f"Invalid value received for argument `tol`. Expected a float > 0. Received: tol={self.tol!r}")
        self.classes_, codes = np.unique(z, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("LeaceEraser.fit needs an attribute with at least two classes. "
                             f"Received one class: {self.classes_.tolist()}")
        onehot = np.eye(len(self.classes_))[codes]
        onehot = onehot[:, 1:] if len(self.classes_) == 2 else onehot  # binary: one column carries everything
        self.mean_ = h.mean(axis=0)
        hc, zc = h - self.mean_, onehot - onehot.mean(axis=0)
        n = len(h)
        sigma_hh = hc.T @ hc / n
        sigma_hz = hc.T @ zc / n
        values, vectors = np.linalg.eigh(sigma_hh)
        keep = values > self.tol * max(values.max(), np.finfo(float).tiny)
        v, s = vectors[:, keep], values[keep]
        whiten = (v / np.sqrt(s)) @ v.T
        unwhiten = (v * np.sqrt(s)) @ v.T
        u, sing, _ = np.linalg.svd(whiten @ sigma_hz, full_matrices=False)
        u = u[:, sing > self.tol * max(sing.max(initial=0.0), np.finfo(float).tiny)]
        self.rank_ = int(u.shape[1])
        self.matrix_ = unwhiten @ (u @ u.T) @ whiten
        return self

    def transform(self, h) -> np.ndarray:
        """The erased representations (same shape and dtype as ``h``)."""
        check_is_fitted(self, "matrix_")
        dtype = np.asarray(h).dtype if np.issubdtype(np.asarray(h).dtype, np.floating) else np.float64
        x = check_array(h, dtype=np.float64)
        if x.shape[1] != len(self.mean_):
            raise ValueError(f"Invalid value received for argument `h`. Expected {len(self.mean_)} features, as in fit. "
                             f"Received: {x.shape[1]}")
        return (x - (x - self.mean_) @ self.matrix_.T).astype(dtype, copy=False)
