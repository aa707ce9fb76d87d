"""LEACE with known answers: after erasure the attribute's covariance with h is zero and a logistic regression on the
erased training h is at chance; the edit is smaller than projecting out the class-mean difference (another eraser with
the same guarantee); emotion information orthogonal to gender survives; scikit-learn conventions (clone, fitted
attributes) and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from privemo.removal.leace import LeaceEraser
from privemo.metrics import uar


def planted(n: int = 600, d: int = 12, seed: int = 0):
    """h with gender along a correlated, anisotropic direction and emotion along another."""
    rng = np.random.default_rng(seed)
    gender, emotion = rng.integers(0, 2, n), rng.integers(0, 3, n)
    mix = rng.normal(size=(d, d))
    h = rng.normal(size=(n, d)) @ mix  # correlated features
    h[:, 0] += 3.0 * (2 * gender - 1)
    h[:, 1] += 1.5 * (emotion - 1)
    return h, gender, emotion


def test_erased_h_has_no_linear_gender_and_keeps_emotion():
    h, gender, emotion = planted()
    erased = LeaceEraser().fit(h, gender).transform(h)
    zc = gender - gender.mean()
    np.testing.assert_allclose((erased - erased.mean(0)).T @ zc / len(h), 0.0, atol=1e-9)
    probe = LogisticRegression(max_iter=2000).fit(erased, gender)
    assert uar(gender, probe.predict(erased)) < 0.56  # before: near 1
    assert uar(gender, LogisticRegression(max_iter=2000).fit(h, gender).predict(h)) > 0.95
    before = uar(emotion, LogisticRegression(max_iter=2000).fit(h, emotion).predict(h))
    after = uar(emotion, LogisticRegression(max_iter=2000).fit(erased, emotion).predict(erased))
    assert before > 0.45 and after > before - 0.03  # chance 1/3: emotion is not erased with gender


def test_the_edit_is_smaller_than_projecting_out_the_mean_difference():
    h, gender, _ = planted(seed=1)
    leace = LeaceEraser().fit(h, gender).transform(h)
    w = h[gender == 1].mean(0) - h[gender == 0].mean(0)  # covariance direction: projecting it out also zeroes it
    mu = h.mean(0)
    projected = h - np.outer((h - mu) @ w, w) / (w @ w)
    assert np.mean(np.sum((leace - h) ** 2, 1)) <= np.mean(np.sum((projected - h) ** 2, 1)) + 1e-9


def test_multiclass_rank_and_sklearn_conventions():
    rng = np.random.default_rng(2)
    z = rng.integers(0, 4, 400)
    h = rng.normal(size=(400, 8))
    h[np.arange(400), z] += 2.0
    eraser = LeaceEraser().fit(h, z)
    assert eraser.rank_ == 3 and list(eraser.classes_) == [0, 1, 2, 3]
    erased = eraser.transform(h.astype(np.float32))
    assert erased.dtype == np.float32 and erased.shape == h.shape
    assert uar(z, LogisticRegression(max_iter=2000).fit(erased, z).predict(erased)) < 0.35  # chance 0.25
    assert clone(eraser).get_params() == {"tol": 1e-8} and not hasattr(clone(eraser), "matrix_")


def test_input_errors():
    h, gender, _ = planted(n=50)
    with pytest.raises(ValueError, match="at least two classes"):
        LeaceEraser().fit(h, np.zeros(50))
    with pytest.raises(ValueError, match="`tol`"):
        LeaceEraser(tol=0).fit(h, gender)
    with pytest.raises(ValueError, match="Expected 12 features"):
        LeaceEraser().fit(h, gender).transform(h[:, :5])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LeaceEraser().transform(h)
