"""Linear reference: what a regularised linear model gets from simple utterance features, fold by fold.

Every row of Table 1 is a tuned neural network scored with five-fold speaker-independent cross-validation. This module
scores a plain linear model on the *same* folds, labels and normalised inputs, so that each network can be read against
it: a network well below the linear reference is undertrained (or mis-specified), not "the task is hard". The gender
reference (``gender_reference``) measures how much gender a linear model reads off the same voice statistics, which
checks that gender really lives in the acoustics that the adversary is meant to scrub.

Assumptions (the choices of this reference, not of the paper):

* **Acoustic features** (``utterance_statistics``): from privemo's per-speaker z-normalised log-Mel frames
  (``extract_acoustic(table).normalized(table, mode="speaker")``), per Mel band the mean, the standard deviation, the
  mean absolute first difference over frames (how fast the band moves: speaking rate, pitch movement) and the maximum,
  plus the log of the number of frames: ``4 * n_mels + 1`` values (161 for 40 bands). Frames are used as given: pass
  the uncapped view to describe whole utterances. Before the classifier they are standardised (``StandardScaler``)
  with statistics of the training rows only.
* **Lexical features**: a *binary* bag of words and word bigrams (``CountVectorizer(tokenizer=privemo.tokenize,
  ngram_range=(1, 2), binary=True)``) over the ``transcript`` column. The vocabulary is fitted on the training rows
  only (so on train + validation for the refit); n-grams unseen there are ignored. Binary rather than tf-idf because
  utterances are short (a word rarely occurs twice) and C is tuned anyway, which absorbs the overall feature scale that
  idf weighting would change.
* **Acoustic + lexical**: the standardised statistics, times a block weight, next to the bag of n-grams (sparse
  ``hstack``). The weight (``FUSION_WEIGHTS`` = 1, 0.3, 0.1) is chosen together with C on the validation speakers:
  with one C for both blocks, 161 dense unit-variance statistics otherwise outweigh the dozen or two active binary
  n-grams of an utterance, and the fused model fell below the lexical one (demo valence: 0.470 at weight 1, 0.498
  lexical alone, 0.523 with the weight tuned).
* **Classifier**: ``LogisticRegression(class_weight="balanced", max_iter=MAX_ITER)`` (lbfgs, multinomial); balanced
  class weights because the metric is UAR. C is chosen from ``C_GRID`` = (0.01, 0.1, 1, 10) by UAR on the fold's
  validation speakers, with the model trained on the fold's training speakers (ties go to the smaller C, the stronger
  regularisation; on the demo a wider grid, 0.001 to 10, moved no acoustic mean by more than 0.01). The model is then
  refitted with that C on training + validation speakers (features refitted too) and scored by UAR
  (``privemo.metrics.uar``) on the fold's test speakers. A fold without validation rows uses ``DEFAULT_C`` (1.0,
  scikit-learn's default) and records ``validation_uar`` as NaN.
* Rows whose label is negative (e.g. unknown gender, coded -1) are left out of training and scoring.
* Mean and std over folds: the std is the sample std (``ddof=1``, 0.0 for a single fold), as in ``privemo.experiment.reporting``.

Public functions: ``utterance_statistics``, ``linear_reference``, ``gender_reference``, ``reference_table`` and
``reference_frame``.

The features and their design matrix are ``privemo.experiment.reference_features``, the choice of C and the scoring
per fold ``privemo.experiment.reference_cv``; this module checks the arguments and holds the public functions (every
name of the other two is a name of this module too).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from privemo._util.validation import check_int, invalid
from privemo.experiment.reference_cv import DEFAULT_C, MAX_ITER, _cross_validate, _fit  # noqa: F401
from privemo.experiment.reference_features import (  # noqa: F401  (names of this module too)
    NGRAM_RANGE,
    _Design,
    _statistics,
    _transcripts,
    utterance_statistics,
)

MODALITIES: tuple[str, ...] = ("acoustic", "lexical", "acoustic+lexical")
TASKS: tuple[str, ...] = ("activation", "valence")
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
# Weights of the standardised acoustic statistics next to the bag of n-grams (acoustic+lexical only), chosen with C.
FUSION_WEIGHTS: tuple[float, ...] = (1.0, 0.3, 0.1)
GENDER_IDS = {"F": 0, "M": 1}
FRAME_COLUMNS: tuple[str, ...] = ("corpus", "modality", "task", "uar_mean", "uar_std", "n_folds")


# -- validation of the public arguments --------------------------------------------------------------------------------
def _check_table(table: Any) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise invalid("table", "a pandas DataFrame (an utterance table, see privemo.corpora)", type(table).__name__)
    if len(table) == 0:
        raise invalid("table", "a non-empty utterance table", "an empty DataFrame")
    return table


def _check_labels(labels: Any, n: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(
            f"Invalid value received for argument `labels`. Expected a 1-D int array with one class per table row ({n}), "
            f"e.g. privemo.bin_labels(table[task], corpus). Received: labels with shape {arr.shape}, dtype {arr.dtype}"
        )
    return arr.astype(np.int64)


def _check_folds(folds: Any, n: int) -> list:
    if isinstance(folds, (str, bytes)) or not isinstance(folds, Iterable):
        raise invalid("folds", "a list of folds with train / validation / test indices (privemo.speaker_folds)", folds)
    folds = list(folds)
    if not folds:
        raise invalid("folds", "at least one fold (privemo.speaker_folds(table))", folds)
    for k, fold in enumerate(folds):
        for name in ("train", "validation", "test"):
            if not hasattr(fold, name):
                raise ValueError(
                    f"Invalid value received for argument `folds`. Expected folds with train / validation / test "
                    f"indices (privemo.speaker_folds). Received: fold {k} of type {type(fold).__name__} without `{name}`"
                )
            idx = np.asarray(getattr(fold, name))
            if idx.ndim != 1 or (idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n)):
                raise ValueError(
                    f"Invalid value received for argument `folds`. Expected 1-D int table positions in [0, {n}). "
                    f"Received: fold {k} `{name}` with shape {idx.shape}, dtype {idx.dtype}"
                )
    return folds


def _check_c_grid(c_grid: Any) -> tuple[float, ...]:
    try:
        grid = tuple(sorted(float(c) for c in c_grid))
    except (TypeError, ValueError):
        raise invalid("c_grid", "a non-empty sequence of positive numbers", c_grid) from None
    if not grid or not all(np.isfinite(c) and c > 0 for c in grid):
        raise invalid("c_grid", "a non-empty sequence of positive numbers", c_grid)
    return grid


def _check_seed(seed: Any) -> int:
    return check_int("seed", seed, 0)


def _corpus(table: pd.DataFrame) -> str:
    return str(table.attrs.get("corpus", ""))


# -- public API -------------------------------------------------------------------------------------------------------
def linear_reference(
    table: pd.DataFrame,
    labels: np.ndarray,
    folds: Sequence,
    modality: str,
    *,
    acoustic: Sequence[np.ndarray] | np.ndarray | None = None,
    seed: int = 0,
    c_grid: Sequence[float] = C_GRID,
    refit: bool = True,
) -> dict:
    """Cross-validated UAR of the linear reference for one modality and one set of labels.

    Args:
        table: the utterance table (``transcript`` column for the lexical modalities).
        labels: int class per table row, e.g. ``privemo.bin_labels(table["activation"].to_numpy(float), corpus)``;
            negative values mean "unknown" and those rows are left out.
        folds: ``privemo.speaker_folds(table)`` (anything with ``train``, ``validation``, ``test`` position arrays).
        modality: "acoustic", "lexical" or "acoustic+lexical".
        acoustic: for the acoustic modalities, the per-speaker z-normalised log-Mel frames of every row
            (``extract_acoustic(table).normalized(table, mode="speaker")``), or their ``utterance_statistics`` (a 2-D
            float array) to avoid recomputing them. Ignored for "lexical".
        seed: ``random_state`` of the classifier (lbfgs is deterministic; kept for other solvers).
        c_grid: inverse regularisation strengths searched on each fold's validation speakers.
        refit: refit with the chosen C on training + validation speakers (default); False keeps the fit on the training
            speakers only, the data a network that early-stops on the validation speakers trains on.

    Returns:
        dict with ``corpus``, ``modality``, ``fold_uar`` (test UAR per fold), ``uar_mean``, ``uar_std`` (ddof=1),
        ``C`` (chosen per fold), ``acoustic_weight`` (chosen per fold; always 1.0 but for "acoustic+lexical"),
        ``validation_uar`` (of the chosen C, per fold), ``n_features`` (per fold, of the refit),
        ``converged`` (per fold: every fit within ``MAX_ITER``), ``n_folds``.

    Raises:
        ValueError: invalid arguments (Keras-style message), missing transcripts, a fold without training or test rows,
            training rows of a single class.
    """
    table = _check_table(table)
    if modality not in MODALITIES:
        raise invalid("modality", f"one of {list(MODALITIES)}", modality)
    labels = _check_labels(labels, len(table))
    folds = _check_folds(folds, len(table))
    seed = _check_seed(seed)
    grid = _check_c_grid(c_grid)
    stats = _statistics(table, acoustic) if "acoustic" in modality else None
    texts = _transcripts(table) if "lexical" in modality else None
    weights = FUSION_WEIGHTS if modality == "acoustic+lexical" else (1.0,)
    result = _cross_validate(stats, texts, labels, folds, seed, grid, weights, refit=bool(refit))
    return {"corpus": _corpus(table), "modality": modality, **result}


def gender_labels(table: pd.DataFrame) -> np.ndarray:
    """0 (F), 1 (M) or -1 (unknown) per table row, as the experiment codes them."""
    if "gender" not in table.columns:
        raise ValueError(f"table has no 'gender' column; columns: {list(table.columns)}")
    return np.array([GENDER_IDS.get(g, -1) if isinstance(g, str) else -1 for g in table["gender"]], dtype=np.int64)


def gender_reference(
    table: pd.DataFrame,
    folds: Sequence,
    *,
    acoustic: Sequence[np.ndarray] | np.ndarray,
    seed: int = 0,
    c_grid: Sequence[float] = C_GRID,
) -> dict:
    """Cross-validated gender UAR (F / M) of the linear reference on the utterance statistics of the voice.

    Same features, classifier, C selection and refit as ``linear_reference(..., modality="acoustic")``, with the labels
    from ``table["gender"]`` (rows of unknown gender are left out). Test speakers are unseen, so a high UAR means that
    gender is readable from per-speaker-normalised acoustics of new voices.

    Returns:
        ``linear_reference``'s dict with ``task="gender"`` added.
    """
    table = _check_table(table)
    result = linear_reference(table, gender_labels(table), folds, "acoustic", acoustic=acoustic, seed=seed, c_grid=c_grid)
    return {**result, "task": "gender"}


def reference_table(
    table: pd.DataFrame,
    folds: Sequence,
    *,
    acoustic: Sequence[np.ndarray] | np.ndarray | None = None,
    modalities: Sequence[str] = MODALITIES,
    tasks: Sequence[str] = TASKS,
    gender: bool = True,
    seed: int = 0,
    c_grid: Sequence[float] = C_GRID,
) -> pd.DataFrame:
    """The linear reference for every (modality, task) cell, plus gender if asked: ``reference_frame`` of the results.

    Labels are ``privemo.bin_labels(table[task].to_numpy(float), corpus)`` with the corpus's default thresholds, as in
    the experiment. ``acoustic`` (frames or their statistics) is needed when a modality uses acoustics or ``gender``.
    """
    from privemo.data.labels import bin_labels

    table = _check_table(table)
    for modality in modalities:
        if modality not in MODALITIES:
            raise invalid("modality", f"one of {list(MODALITIES)}", modality)
    for task in tasks:
        if task not in table.columns:
            raise invalid("tasks", f"columns of the table ({list(TASKS)})", task)
    needs_acoustic = gender or any("acoustic" in m for m in modalities)
    stats = _statistics(table, acoustic) if needs_acoustic else None
    rows = []
    for task in tasks:
        labels = bin_labels(table[task].to_numpy(float), _corpus(table))
        for modality in modalities:
            result = linear_reference(table, labels, folds, modality, acoustic=stats, seed=seed, c_grid=c_grid)
            rows.append({**result, "task": task})
    if gender:
        rows.append(gender_reference(table, folds, acoustic=stats, seed=seed, c_grid=c_grid))
    return reference_frame(rows)


def reference_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """A tidy table of reference results: columns ``corpus, modality, task, uar_mean, uar_std, n_folds``.

    Args:
        rows: dicts with ``corpus``, ``modality``, ``task`` and either ``uar_mean`` / ``uar_std`` / ``n_folds`` or
            ``fold_uar`` (per-fold UARs; mean and ddof=1 std are computed). ``linear_reference``'s result needs the
            ``task`` added: ``{**result, "task": "activation"}``.
    """
    if isinstance(rows, (dict, str, bytes)) or not isinstance(rows, Iterable):
        raise invalid("rows", "an iterable of result dicts", rows)
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise invalid("rows", "an iterable of result dicts", f"item {i} of type {type(row).__name__}")
        missing = [k for k in ("corpus", "modality", "task") if k not in row]
        if "uar_mean" not in row and "fold_uar" not in row:
            missing.append("uar_mean or fold_uar")
        if missing:
            raise ValueError(
                f"Invalid value received for argument `rows`. Expected dicts with keys {list(FRAME_COLUMNS)}. "
                f"Received: item {i} without {missing}"
            )
        if "fold_uar" in row and ("uar_mean" not in row or "uar_std" not in row or "n_folds" not in row):
            scores = np.asarray(row["fold_uar"], float)
            mean, std, n = float(scores.mean()), float(scores.std(ddof=1)) if len(scores) > 1 else 0.0, len(scores)
        else:
            mean, std, n = float(row["uar_mean"]), float(row.get("uar_std", float("nan"))), int(row.get("n_folds", 0))
        records.append({"corpus": row["corpus"], "modality": row["modality"], "task": row["task"],
                        "uar_mean": mean, "uar_std": std, "n_folds": n})
    return pd.DataFrame.from_records(records, columns=list(FRAME_COLUMNS))


__all__ = [
    "utterance_statistics",
    "linear_reference",
    "gender_reference",
    "gender_labels",
    "reference_table",
    "reference_frame",
    "MODALITIES",
    "C_GRID",
    "FUSION_WEIGHTS",
]
