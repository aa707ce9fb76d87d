import numpy as np
import pytest

from privemo.metrics import uar


def test_uar_is_mean_of_per_class_recalls():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    # recalls: class 0 3/4, class 1 1/2, class 2 2/2
    assert uar(y_true, y_pred) == pytest.approx((0.75 + 0.5 + 1.0) / 3)


def test_uar_accepts_score_matrices_and_one_hot():
    y_true = np.array([1, 0, 1])
    scores = np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4]])
    assert uar(y_true, scores) == pytest.approx((1.0 + 0.5) / 2)
    assert uar(np.eye(2)[y_true], scores) == pytest.approx(0.75)


def test_uar_majority_class_predictor_is_chance():
    y_true = np.array([0] * 90 + [1] * 10)
    assert uar(y_true, np.zeros(100, int)) == pytest.approx(0.5)


def test_uar_rejects_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="same length"):
        uar([0, 1], [0])
    with pytest.raises(ValueError, match="at least one"):
        uar([], [])


def test_uar_equals_balanced_accuracy_without_its_warning():
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    for n_classes in (2, 3, 7):
        y_true, y_pred = rng.integers(0, n_classes, 50), rng.integers(0, n_classes, 50)
        assert uar(y_true, y_pred) == balanced_accuracy_score(y_true, y_pred)  # the same float, not just close
    y_true, y_pred = np.array([0, 0, 1, 1, 1]), np.array([0, 2, 1, 1, 0])  # class 2 only predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert uar(y_true, y_pred) == pytest.approx((0.5 + 2 / 3) / 2)
    assert uar(np.array(["F", "M", "M"]), np.array(["F", "F", "M"])) == pytest.approx(0.75)


def test_uar_rejects_continuous_values():
    with pytest.raises(ValueError, match=r"argument `y_true`.*'continuous'"):
        uar([0.5, 1.2], [0, 1])
