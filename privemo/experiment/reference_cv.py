"""The linear reference's cross-validation: per fold, C (and the acoustic block's weight) chosen by UAR on the
validation speakers, the refit, and the test UAR. The assumptions are listed in ``privemo.experiment.reference``,
which re-exports every name.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from privemo.experiment.reference_features import _Design

DEFAULT_C = 1.0  # used only when a fold has no validation rows to choose C on
MAX_ITER = 10_000


# -- classifier ------------------------------------------------------------------------------------------------------
def _fit(x, y: np.ndarray, c: float, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        raise ValueError(
            f"linear reference: the training rows hold a single class ({int(y[0])}); a classifier needs at least two"
        )
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=MAX_ITER, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, converged


def _cross_validate(
    stats: np.ndarray | None, texts: np.ndarray | None, labels: np.ndarray, folds: list, seed: int, c_grid: Sequence[float],
    weights: Sequence[float] = (1.0,), refit: bool = True,
) -> dict:
    from privemo.metrics import uar

    fold_uar, chosen, chosen_weight, validation_uar, n_features, converged = [], [], [], [], [], []
    for k, fold in enumerate(folds):
        train, validation, test = (np.asarray(getattr(fold, name), np.int64) for name in ("train", "validation", "test"))
        train, validation, test = (rows[labels[rows] >= 0] for rows in (train, validation, test))
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"fold {k}: no labelled {'training' if len(train) == 0 else 'test'} rows")
        ok = True
        if len(validation):
            candidates, scores = [], []
            for weight in weights:
                design = _Design(stats, texts, train, weight)
                x_train, x_val = design(train), design(validation)
                for c in c_grid:
                    model, conv = _fit(x_train, labels[train], c, seed)
                    ok &= conv
                    candidates.append((float(c), float(weight)))
                    scores.append(uar(labels[validation], model.predict(x_val)))
            best = int(np.argmax(scores))  # first maximum: among ties the first weight, then the smallest C
            (c_best, w_best), val_score = candidates[best], float(scores[best])
        else:
            c_best, w_best, val_score = DEFAULT_C, float(weights[0]), float("nan")
        fit_rows = np.union1d(train, validation) if refit else train
        design = _Design(stats, texts, fit_rows, w_best)
        model, conv = _fit(design(fit_rows), labels[fit_rows], c_best, seed)
        fold_uar.append(uar(labels[test], model.predict(design(test))))
        chosen.append(c_best)
        chosen_weight.append(w_best)
        validation_uar.append(val_score)
        n_features.append(design.n_features)
        converged.append(bool(ok and conv))
    scores = np.asarray(fold_uar)
    return {
        "fold_uar": [float(s) for s in scores],
        "uar_mean": float(scores.mean()),
        "uar_std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
        "C": chosen,
        "acoustic_weight": chosen_weight,
        "validation_uar": validation_uar,
        "n_features": n_features,
        "converged": converged,
        "n_folds": len(scores),
    }
