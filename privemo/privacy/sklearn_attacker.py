"""Attackers beyond the paper: logistic regression, an RBF support vector machine and gradient-boosted trees.

All three standardise the representations and weight classes as balanced, and pick their setting on validation UAR.
Their grids are privemo's assumptions (README, assumptions table): logistic regression over C in {0.01, 0.1, 1, 10};
the RBF SVM over C in {0.1, 1, 10} x gamma in {1/4, 1, 4} / n_features, trained on at most 10000 utterances (a
stratified seeded subsample beyond), with Platt-scaled probabilities; histogram gradient boosting in one small fixed
configuration (`HGB_PARAMS`). Where they sit in the attack protocol: `privemo.privacy.attribute`.
"""

from __future__ import annotations

import contextlib
from numbers import Real
from typing import Any, Iterable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import ParameterGrid, StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from privemo._util.validation import check_choice, check_int, check_matrix, invalid
from privemo.metrics import uar
from privemo.privacy.checks import check_fit_inputs, check_labels

__all__ = ["SklearnAttacker", "check_class_target", "train_logreg_attacker", "train_svm_attacker", "train_hgb_attacker",
           "LOGREG_CS", "SVM_CS", "SVM_GAMMA_SCALES", "SVM_MAX_TRAIN", "HGB_PARAMS"]

# Assumptions (not in the paper): see README assumptions table.
LOGREG_CS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
SVM_CS: tuple[float, ...] = (0.1, 1.0, 10.0)
SVM_GAMMA_SCALES: tuple[float, ...] = (0.25, 1.0, 4.0)  # x 1/n_features
SVM_MAX_TRAIN = 10000  # RBF SVM cost grows ~quadratically with n
HGB_PARAMS: dict[str, Any] = {  # one small fixed gradient-boosting configuration, no early stopping
    "max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 20, "l2_regularization": 1.0,
    "max_bins": 63,  # 63 bins instead of 255: ~4x faster on a few thousand utterances
}


def _positive_numbers(name: str, values: Any) -> tuple[float, ...]:
    expected = "a non-empty sequence of positive numbers"
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise invalid(name, expected, values)
    values = tuple(values)
    if not values or not all(isinstance(v, Real) and not isinstance(v, bool) and np.isfinite(v) and v > 0
                             for v in values):
        raise invalid(name, expected, values)
    return tuple(float(v) for v in values)


def check_class_target(name: str, y: Any) -> None:
    """Refuse a target that is not class labels: None, or continuous values (``type_of_target``), which an attacker
    would otherwise take as one class per distinct value. Other label problems are left to
    `privemo.privacy.checks.check_labels`, which names them."""
    expected = "class labels (a binary or multiclass target such as genders or speaker ids)"
    if y is None:
        raise invalid(name, f"{expected}; an attacker requires y to be passed, but the target y is None", None)
    arr = np.asarray(y)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return  # missing labels: check_labels names them
    try:
        kind = type_of_target(arr, input_name=name)
    except (TypeError, ValueError):
        return  # not a target type_of_target can read (e.g. None among strings): check_labels says what is wrong
    if kind.startswith("continuous"):
        raise invalid(name, expected, received=f"Unknown label type: {kind!r} (sklearn.utils.multiclass.type_of_target "
                                               "of float values that are not whole numbers)")


class SklearnAttacker(ClassifierMixin, BaseEstimator):
    """A scikit-learn attacker (standardisation + classifier, balanced class weights) tuned on validation UAR.

    ``kind`` is "logreg" (LogisticRegression over ``Cs``), "svm" (RBF SVC over ``Cs`` x ``gamma_scales`` / n_features)
    or "hgb" (HistGradientBoostingClassifier, the single fixed configuration ``HGB_PARAMS``, no early stopping).
    `fit` trains one pipeline per setting (scikit-learn's ``ParameterGrid`` order) on the training data and keeps the
    best on ``validation_data`` (ties to the earlier setting; without validation data the settings are compared on the
    training data). The kept SVM gets Platt-scaled probabilities (``calibrator_``, see `_calibrate`; its predictions
    stay the SVM's) so that every attacker has `predict_proba`. ``score`` is UAR. Labels are classes (ints or
    strings); a continuous target is refused (`check_class_target`). A scikit-learn estimator: arguments are checked
    by `fit`, so ``clone`` and ``GridSearchCV`` work; `tests/test_attackers.py` lists the estimator checks it fails,
    and why.

    Args:
        kind: "logreg", "svm" or "hgb".
        Cs: the inverse regularisation strengths to try (None: `LOGREG_CS` for "logreg", `SVM_CS` for "svm").
        gamma_scales: the SVM's RBF widths to try, in units of 1 / n_features.
        max_train: the SVM trains on at most this many utterances (None: all).
        seed: random seed (>= 0) of the classifiers, the SVM's subsample and its calibration folds.

    Fitted attributes:
        classes_: the training labels' classes (sorted).
        n_features_in_: width of the representations.
        estimator_: the kept pipeline (StandardScaler + classifier), trained on label indices into ``classes_``.
        calibrator_: the SVM's Platt scaling (a LogisticRegression on its decision values); None for other kinds.
        config_: the kept setting's classifier parameters, as reported.
        val_uar_: its validation UAR (None after `refit`).
        search_: [(setting, val_uar)] over the settings tried (empty after `refit`).
    """

    KINDS = ("logreg", "svm", "hgb")

    def __init__(
        self,
        kind: str = "logreg",
        *,
        Cs: Sequence[float] | None = None,
        gamma_scales: Sequence[float] = SVM_GAMMA_SCALES,
        max_train: int | None = SVM_MAX_TRAIN,
        seed: int = 0,
    ) -> None:
        self.kind = kind
        self.Cs = Cs
        self.gamma_scales = gamma_scales
        self.max_train = max_train
        self.seed = seed

    def _check_params(self) -> None:
        check_choice("kind", self.kind, self.KINDS)
        if self.Cs is not None:
            _positive_numbers("Cs", self.Cs)
        _positive_numbers("gamma_scales", self.gamma_scales)
        if self.max_train is not None:
            check_int("max_train", self.max_train, 1)
        check_int("seed", self.seed, 0)

    def _threads(self):
        """One OpenMP thread for gradient boosting: privemo runs one worker per core, and OpenMP threads competing for
        busy cores made a 1.3 s fit take 9.6 s (600 x 32 inputs, 255 bins, 2 busy cores)."""
        if self.kind != "hgb":
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        return threadpool_limits(limits=1, user_api="openmp")

    def _settings(self, n_features: int) -> list[dict[str, Any]]:
        if self.kind == "hgb":
            return [dict(HGB_PARAMS)]  # one setting, in HGB_PARAMS' key order (ParameterGrid would sort the keys)
        default = LOGREG_CS if self.kind == "logreg" else SVM_CS
        cs = _positive_numbers("Cs", default if self.Cs is None else self.Cs)
        if self.kind == "logreg":
            return list(ParameterGrid({"C": cs}))
        gammas = [g / n_features for g in _positive_numbers("gamma_scales", self.gamma_scales)]
        return list(ParameterGrid({"C": cs, "gamma": gammas}))  # C outer, gamma inner

    def _make(self, params: dict[str, Any]):
        seed = int(self.seed)
        if self.kind == "logreg":
            clf = LogisticRegression(C=params["C"], class_weight="balanced", max_iter=5000, random_state=seed)
        elif self.kind == "hgb":
            # class_weight exists since scikit-learn 1.2 (privemo needs >= 1.4)
            clf = HistGradientBoostingClassifier(**params, early_stopping=False, class_weight="balanced",
                                                 random_state=seed)
        else:
            clf = SVC(C=params["C"], gamma=params["gamma"], kernel="rbf", class_weight="balanced", random_state=seed)
        return make_pipeline(StandardScaler(), clf)

    def _calibrate(self, params: dict[str, Any], X: np.ndarray, y_enc: np.ndarray) -> LogisticRegression | None:
        """Platt scaling of the SVM: a logistic regression on its decision values (None for the other kinds).

        Fitted on out-of-fold decision values (seeded stratified k-fold, k = min(5, smallest class count)) so that the
        probabilities, and the validation log-loss they give, are not those of the SVM's own training points; only when
        a class has a single training utterance are the in-sample decision values used. Predictions stay the SVM's.

        Why not ``CalibratedClassifierCV(method="sigmoid", ensemble=False)``, scikit-learn's version of the same idea:
        it calibrates one-vs-rest with Platt's smoothed targets and renormalises, so the speaker attacks' tens of
        classes would get non-multinomial probabilities, and it refuses a class with fewer members than folds where this
        falls back to in-sample values. These probabilities feed the validation log-loss that selects the attacker
        family; keeping them keeps every committed selection (issue 26, item 4).
        """
        if self.kind != "svm":
            return None
        counts = np.bincount(y_enc)
        k = int(min(5, counts[counts > 0].min()))
        if k >= 2:
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(self.seed))
            d = cross_val_predict(self._make(params), X, y_enc, cv=folds, method="decision_function")
        else:
            d = self.estimator_.decision_function(X)
        return LogisticRegression(max_iter=5000).fit(np.reshape(d, (len(X), -1)), y_enc)

    def _subsample(self, X: np.ndarray, y_enc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The SVM's training set: at most ``max_train`` utterances, a stratified seeded subsample beyond that."""
        if self.kind == "svm" and self.max_train is not None and len(X) > self.max_train:
            counts = np.bincount(y_enc)
            stratify = y_enc if counts[counts > 0].min() >= 2 else None
            keep, _ = train_test_split(np.arange(len(X)), train_size=int(self.max_train), stratify=stratify,
                                       random_state=int(self.seed))
            X, y_enc = X[np.sort(keep)], y_enc[np.sort(keep)]
        return X, y_enc

    def fit(self, X: np.ndarray, y: np.ndarray,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None) -> "SklearnAttacker":
        """Fit every setting on (X, y) and keep the one with the best UAR on ``validation_data`` (h_val, y_val).

        Without ``validation_data`` the settings are compared on the training data (optimistic; used for a single
        setting or when there is nothing else to select on).
        """
        self._check_params()
        check_class_target("y", y)
        X, y_enc, encoder, val = check_fit_inputs(X, y, validation_data)
        self.classes_, self.n_features_in_ = encoder.classes_, X.shape[1]
        h_val, y_val = (X, y_enc) if val is None else val
        X, y_enc = self._subsample(X, y_enc)
        best, self.search_ = None, []
        for params in self._settings(X.shape[1]):
            with self._threads():
                est = self._make(params).fit(X, y_enc)
                score = uar(y_val, est.predict(h_val))
            self.search_.append((dict(params), score))
            if best is None or score > best[1]:
                best = (params, score, est)
        self.config_, self.val_uar_, self.estimator_ = dict(best[0]), float(best[1]), best[2]
        self.calibrator_ = self._calibrate(best[0], X, y_enc)
        return self

    def refit(self, X: np.ndarray, y: np.ndarray) -> "SklearnAttacker":
        """A new attacker with this one's kept setting (``config_``) fitted on (X, y), e.g. training + validation data.

        Nothing is selected again (``val_uar_`` is None, ``search_`` empty); the SVM keeps its ``max_train`` cap.
        """
        check_is_fitted(self)
        new = clone(self)
        new._check_params()
        check_class_target("y", y)
        X, y_enc, encoder, _ = check_fit_inputs(X, y, None)
        new.classes_, new.n_features_in_ = encoder.classes_, X.shape[1]
        X, y_enc = new._subsample(X, y_enc)
        with new._threads():
            new.estimator_ = new._make(self.config_).fit(X, y_enc)
        new.calibrator_ = new._calibrate(self.config_, X, y_enc)
        new.config_, new.val_uar_, new.search_ = dict(self.config_), None, []
        return new

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes), columns ordered as ``classes_`` (the SVM's are Platt-scaled)."""
        check_is_fitted(self)
        X = check_matrix("X", X, n_features=self.n_features_in_)
        if self.calibrator_ is not None:
            est = self.calibrator_
            raw = est.predict_proba(np.reshape(self.estimator_.decision_function(X), (len(X), -1)))
        else:
            est = self.estimator_
            with self._threads():
                raw = est.predict_proba(X)
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, est.classes_] = raw  # a class absent from the SVM's subsample gets probability 0
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (n,), in the label space of the training ``y``."""
        check_is_fitted(self)
        X = check_matrix("X", X, n_features=self.n_features_in_)
        with self._threads():
            return self.classes_[self.estimator_.predict(X)]

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """UAR of the attacker on (X, y)."""
        y = check_labels("y", y, len(np.asarray(X)))
        return uar(y, self.predict(X))


def train_logreg_attacker(h_train, y_train, h_val, y_val, *, seed: int = 0,
                          Cs: Sequence[float] = LOGREG_CS) -> SklearnAttacker:
    """Logistic-regression attacker (standardised, balanced), C picked on validation UAR."""
    return SklearnAttacker("logreg", Cs=Cs, seed=seed).fit(h_train, y_train, validation_data=(h_val, y_val))


def train_svm_attacker(h_train, y_train, h_val, y_val, *, seed: int = 0, Cs: Sequence[float] = SVM_CS,
                       gamma_scales: Sequence[float] = SVM_GAMMA_SCALES,
                       max_train: int | None = SVM_MAX_TRAIN) -> SklearnAttacker:
    """RBF-SVM attacker (standardised, balanced), C and gamma picked on validation UAR; Platt-scaled probabilities."""
    return SklearnAttacker("svm", Cs=Cs, gamma_scales=gamma_scales, max_train=max_train, seed=seed).fit(
        h_train, y_train, validation_data=(h_val, y_val))


def train_hgb_attacker(h_train, y_train, h_val, y_val, *, seed: int = 0) -> SklearnAttacker:
    """Histogram gradient-boosting attacker (balanced class weights, the fixed configuration ``HGB_PARAMS``).

    Nothing is tuned: the validation data only give the attacker's ``val_uar_`` (and, in `attack_representation`, its
    validation log-loss for the selection among attackers).
    """
    return SklearnAttacker("hgb", seed=seed).fit(h_train, y_train, validation_data=(h_val, y_val))
