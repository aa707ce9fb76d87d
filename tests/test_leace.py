"""LEACE with known answers: after erasure the attribute's covariance with h is zero and a logistic regression on the
erased training h is at chance; the edit is smaller than projecting out the class-mean difference (another eraser with
the same guarantee); emotion information orthogonal to gender survives; the eraser equals a NumPy transcription of the
reference implementation's math (EleutherAI's concept-erasure ``leace.py``, no shrinkage); its tolerance is in
whitened, scale-free units, so refitting on erased h and erasing an uncorrelated attribute change nothing and the rank
stays at most k - 1; scikit-learn conventions (``check_estimator``, clone, fitted attributes) and input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

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
    assert clone(eraser).get_params() == {"tol": 1e-5} and not hasattr(clone(eraser), "matrix_")


def test_input_errors():
    h, gender, _ = planted(n=50)
    with pytest.raises(ValueError, match="at least two classes"):
        LeaceEraser().fit(h, np.zeros(50))
    with pytest.raises(ValueError, match="`tol`"):
        LeaceEraser(tol=0).fit(h, gender)
    with pytest.raises(ValueError, match="X has 5 features, but LeaceEraser is expecting 12 features"):
        LeaceEraser().fit(h, gender).transform(h[:, :5])
    with pytest.raises(ValueError, match=r"argument `y`. Expected class labels .* Unknown label type: 'continuous'"):
        LeaceEraser().fit(h, h[:, 0])  # a continuous target, not hundreds of classes
    with pytest.raises(ValueError, match="requires y to be passed"):
        LeaceEraser().fit(h, None)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LeaceEraser().transform(h)


# ------------------------------------------------------------------------------------- as the reference implementation


def reference_leace(h: np.ndarray, z: np.ndarray, svd_tol: float) -> np.ndarray:
    """The reference eraser's output on ``h`` (n, d) for concept columns ``z`` (n, c), transcribed to NumPy from the
    math of EleutherAI concept-erasure's ``LeaceFitter`` with ``shrinkage=False``, ``affine=True``: Bessel-corrected
    covariances, eigenvalues above ``d * eps`` times the largest whitened (``torch.linalg.pinv``'s cut), singular
    values of the whitened cross-covariance above the absolute ``svd_tol`` kept. Its trace constraint is left out:
    `test_equals_the_reference_math_on_the_data_it_is_fitted_on` checks that it would not act."""
    n, d = h.shape
    mean = h.mean(0)
    hc, zc = h - mean, z - z.mean(0)
    eigval, eigvec = np.linalg.eigh(hc.T @ hc / (n - 1))
    mask = eigval > eigval[-1] * d * np.finfo(float).eps
    root = np.sqrt(np.clip(eigval, 0.0, None))
    w = (eigvec * np.where(mask, 1.0 / np.where(mask, root, 1.0), 0.0)) @ eigvec.T
    w_inv = (eigvec * np.where(mask, root, 0.0)) @ eigvec.T
    u, s, _ = np.linalg.svd(w @ (hc.T @ zc / (n - 1)), full_matrices=False)
    u = u * (s > svd_tol)
    return h - (hc @ (u.T @ w).T) @ (w_inv @ u).T


def onehot(z: np.ndarray) -> np.ndarray:
    """The concept columns privemo erases: one 0/1 column for two classes, one-hot for more."""
    columns = np.eye(len(np.unique(z)))[np.unique(z, return_inverse=True)[1]]
    return columns[:, 1:] if columns.shape[1] == 2 else columns


@pytest.mark.parametrize("k", [2, 4])
def test_equals_the_reference_math_on_the_data_it_is_fitted_on(k):
    rng = np.random.default_rng(10 + k)
    h, _, _ = planted(n=500, d=16, seed=k)
    z = rng.integers(0, k, 500)
    h[:, :k] += 1.5 * np.eye(k)[z]
    eraser = LeaceEraser().fit(h, z)
    ours, reference = eraser.transform(h), reference_leace(h, onehot(z), svd_tol=eraser.tol)
    assert eraser.rank_ == k - 1 and np.abs(reference - h).max() > 1.0  # a real edit, compared
    assert np.abs(ours - reference).max() <= 1e-13 * np.abs(h).max()
    # the reference's trace constraint acts only when erasure would raise the total variance; LEACE lowers it
    assert np.trace(np.cov(ours.T)) < np.trace(np.cov(h.T))


def test_a_binary_singular_value_is_the_attributes_std_times_its_multiple_correlation():
    """Whitened units, known answer: for a 0/1 attribute the one singular value is std(z) * R, R the multiple
    correlation of z with h (ordinary least squares with an intercept); ``tol`` cuts exactly there, at any scale."""
    h, gender, _ = planted(n=400, seed=3)
    design = np.column_stack([np.ones(len(h)), h])
    residual = gender - design @ np.linalg.lstsq(design, gender, rcond=None)[0]
    r_squared = 1.0 - residual @ residual / np.sum((gender - gender.mean()) ** 2)
    expected = np.std(gender, ddof=1) * np.sqrt(r_squared)
    for scale in (1e-6, 1.0, 1e6):
        eraser = LeaceEraser().fit(scale * h, gender)
        assert eraser.singular_values_ == pytest.approx([expected], rel=1e-9)
        assert LeaceEraser(tol=expected * 1.001).fit(scale * h, gender).rank_ == 0
        assert LeaceEraser(tol=expected * 0.999).fit(scale * h, gender).rank_ == 1


@pytest.mark.parametrize("k", [2, 3])
def test_refitting_on_erased_h_changes_nothing(k):
    """The issue's report: with a relative tolerance the refit kept singular values of about 1e-15 and removed another
    full-variance direction (3 classes: rank 3, total variance 22.7 -> 2.6); the reference makes a zero edit."""
    rng = np.random.default_rng(20 + k)
    z = rng.integers(0, k, 600)
    h = rng.normal(size=(600, 6)) @ rng.normal(size=(6, 6)) + 2.0 * np.eye(k, 6)[z]
    erased = LeaceEraser().fit(h, z).transform(h)
    again = LeaceEraser().fit(erased, z)
    assert again.rank_ == 0 and again.singular_values_.max() < 1e-10
    np.testing.assert_array_equal(again.transform(erased), erased)  # the edit is exactly zero
    assert np.trace(np.cov(again.transform(erased).T)) == pytest.approx(np.trace(np.cov(erased.T)))


@pytest.mark.parametrize("seed", range(6))
def test_refit_is_a_no_op_on_ill_conditioned_and_rank_deficient_h(seed):
    """Condition numbers up to 1e12, scales from 1e-6 to 1e6, every third h rank-deficient (including h whose whole
    span is the attribute, which an erasure leaves as its mean plus rounding): the refit moves h by < 1e-6."""
    rng = np.random.default_rng(seed)
    d, k = int(rng.integers(3, 40)), int(rng.integers(2, 6))
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    z = rng.integers(0, k, 400)
    h = (rng.normal(size=(400, d)) * np.logspace(0, -6 * seed / 5, d) + 0.5 * np.eye(k, d)[z]) @ basis.T
    if seed % 3 == 0:
        h = h[:, : max(d // 2, 1)] @ rng.normal(size=(max(d // 2, 1), d))
    h *= 10.0 ** (4 * seed / 5 - 2)
    erased = LeaceEraser().fit(h, z).transform(h)
    change = np.abs(LeaceEraser().fit(erased, z).transform(erased) - erased).max()
    assert change < 1e-6 * np.abs(h).max()


def test_rank_is_at_most_k_minus_1_on_rank_deficient_h():
    rng = np.random.default_rng(5)
    z = rng.integers(0, 6, 500)
    low = rng.normal(size=(500, 3)) + np.eye(6, 3)[z] * 2.0  # rank 3 in 10 dimensions, 6 classes
    h = low @ rng.normal(size=(3, 10))
    eraser = LeaceEraser().fit(h, z)
    assert eraser.rank_ == 3  # all of h's span: min(rank h, k - 1)
    np.testing.assert_allclose(eraser.transform(h), np.broadcast_to(h.mean(0), h.shape), atol=1e-9 * np.abs(h).max())
    wide = rng.normal(size=(500, 8)) @ np.diag([1.0] * 6 + [0.0] * 2) + np.eye(4, 8)[z % 4]  # rank 6, 4 classes
    assert LeaceEraser().fit(wide, z % 4).rank_ == 3
    assert LeaceEraser().fit(LeaceEraser().fit(wide, z % 4).transform(wide), z % 4).rank_ == 0


def test_an_attribute_uncorrelated_with_h_removes_nothing():
    rng = np.random.default_rng(6)
    z = rng.integers(0, 3, 300)
    h = rng.normal(size=(300, 7)) * [1e3, 1, 1, 1, 1, 1, 1e-3]
    zc = onehot(z) - onehot(z).mean(0)
    hc = h - h.mean(0)
    h = h - zc @ np.linalg.lstsq(zc, hc, rcond=None)[0]  # residualised on z: covariance with z exactly 0
    eraser = LeaceEraser().fit(h, z)
    assert eraser.rank_ == 0 and eraser.singular_values_.max() < 1e-12
    np.testing.assert_array_equal(eraser.transform(h), h)


# ----------------------------------------------------------------------------------------------- scikit-learn contract


@parametrize_with_checks([LeaceEraser()])
def test_scikit_learn_estimator_checks(estimator, check):
    """scikit-learn's own estimator checks, all of them (none is expected to fail)."""
    check(estimator)


def test_fit_takes_x_and_y_by_name_and_keeps_feature_names():
    h, gender, _ = planted(n=120, d=4)
    by_name = LeaceEraser().fit(X=h, y=gender)
    np.testing.assert_array_equal(by_name.transform(X=h), LeaceEraser().fit(h, gender).transform(h))
    assert by_name.n_features_in_ == 4 and list(by_name.get_feature_names_out()) == ["x0", "x1", "x2", "x3"]
    frame = pd.DataFrame(h, columns=["f0", "f1", "f2", "f3"])
    fitted = LeaceEraser().fit(frame, np.where(gender == 1, "M", "F"))
    assert list(fitted.get_feature_names_out()) == ["f0", "f1", "f2", "f3"] and list(fitted.classes_) == ["F", "M"]
    erased = make_pipeline(LeaceEraser()).fit_transform(h, gender)  # y reaches fit through a pipeline
    np.testing.assert_array_equal(erased, by_name.transform(h))
