"""The attacker families privemo trains afresh on frozen representations, by name.

"mlp" is the paper's grid-searched MLP (`privemo.privacy.mlp_attacker`); "logreg", "svm" and "hgb" go beyond the paper
(`privemo.privacy.sklearn_attacker`). Every entry of `ATTACKERS` is called as
``train(h_train, y_train, h_val, y_val, *, seed=...)`` and returns a fitted scikit-learn classifier with ``classes_``,
``val_uar_``, ``config_``, ``predict_proba``, ``predict``, ``score`` (UAR) and ``refit(X, y)``. The attack protocol
that runs them is `privemo.privacy.attribute`.
"""

from __future__ import annotations

from typing import Any, Callable

from privemo.privacy.mlp_attacker import (
    ATTACKER_BATCH_SIZE,
    ATTACKER_LEARNING_RATE,
    ATTACKER_MAX_EPOCHS,
    ATTACKER_PATIENCE,
    MLPAttacker,
    train_attacker,
)
from privemo.privacy.sklearn_attacker import (
    HGB_PARAMS,
    LOGREG_CS,
    SVM_CS,
    SVM_GAMMA_SCALES,
    SVM_MAX_TRAIN,
    SklearnAttacker,
    train_hgb_attacker,
    train_logreg_attacker,
    train_svm_attacker,
)

__all__ = ["ATTACKERS", "DEFAULT_ATTACKERS", "MLPAttacker", "SklearnAttacker", "train_attacker",
           "train_logreg_attacker", "train_svm_attacker", "train_hgb_attacker", "ATTACKER_LEARNING_RATE",
           "ATTACKER_BATCH_SIZE", "ATTACKER_MAX_EPOCHS", "ATTACKER_PATIENCE", "LOGREG_CS", "SVM_CS",
           "SVM_GAMMA_SCALES", "SVM_MAX_TRAIN", "HGB_PARAMS"]

ATTACKERS: dict[str, Callable[..., Any]] = {
    "mlp": train_attacker,
    "logreg": train_logreg_attacker,
    "svm": train_svm_attacker,
    "hgb": train_hgb_attacker,
}
DEFAULT_ATTACKERS: tuple[str, ...] = ("mlp", "logreg", "svm", "hgb")  # assumption: see README assumptions table
