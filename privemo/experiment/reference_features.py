"""The linear reference's inputs: fixed-length utterance statistics of log-Mel frames, the checked transcripts, and the
design matrix (standardised statistics, a binary bag of n-grams, or both side by side) built with transformers fitted
on the training rows only. The assumptions are listed in ``privemo.experiment.reference``, which re-exports every name.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from privemo._util.validation import invalid

NGRAM_RANGE = (1, 2)


# -- features --------------------------------------------------------------------------------------------------------
def utterance_statistics(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Fixed-length statistics of variable-length log-Mel utterances: one row per utterance.

    Args:
        frames: a sequence of ``(n_frames_i, n_mels)`` arrays, e.g. ``extract_acoustic(table).normalized(table)``; every
            utterance needs at least one frame and all the same ``n_mels``.

    Returns:
        float64 array ``(len(frames), 4 * n_mels + 1)``: per band mean, std, mean absolute first difference over frames
        (0 for a one-frame utterance), max; then ``log(n_frames)``. Columns are band-major within each block:
        ``[mean_0..mean_{d-1}, std_0.., mean|delta|_0.., max_0.., log_frames]``.

    Raises:
        ValueError: empty sequence, an item that is not 2-D, an utterance without frames, differing band counts.
    """
    n = len(frames)
    if n == 0:
        raise invalid("frames", "a non-empty sequence of (n_frames, n_mels) arrays", "an empty sequence")
    out: np.ndarray | None = None
    for i in range(n):
        x = np.asarray(frames[i], dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(
                f"Invalid value received for argument `frames`. Expected (n_frames, n_mels) arrays. "
                f"Received: frames[{i}] with shape {x.shape}"
            )
        t, d = x.shape
        if out is None:
            out = np.empty((n, 4 * d + 1), np.float64)
            n_mels = d
        if d != n_mels:
            raise ValueError(
                f"Invalid value received for argument `frames`. Expected every utterance to have {n_mels} bands. "
                f"Received: frames[{i}] with shape {x.shape}"
            )
        if t == 0:
            raise ValueError(
                f"Invalid value received for argument `frames`. Expected at least one frame per utterance. "
                f"Received: frames[{i}] with shape {x.shape}"
            )
        delta = np.abs(np.diff(x, axis=0)).mean(axis=0) if t > 1 else np.zeros(d)
        out[i, :d] = x.mean(axis=0)
        out[i, d : 2 * d] = x.std(axis=0)
        out[i, 2 * d : 3 * d] = delta
        out[i, 3 * d : 4 * d] = x.max(axis=0)
        out[i, 4 * d] = np.log(t)
    assert out is not None
    return out


def _statistics(table: pd.DataFrame, acoustic: Any) -> np.ndarray:
    """Utterance statistics of every table row from ``acoustic`` (frames, or a precomputed 2-D statistics array)."""
    if acoustic is None:
        raise invalid(
            "acoustic",
            "the normalised log-Mel frames of every table row (extract_acoustic(table).normalized(table, mode='speaker')) "
            "for an acoustic modality",
            None,
        )
    if isinstance(acoustic, np.ndarray) and acoustic.ndim == 2 and acoustic.dtype != object:
        stats = np.asarray(acoustic, np.float64)  # precomputed utterance_statistics
    else:
        if not hasattr(acoustic, "__len__") or not hasattr(acoustic, "__getitem__"):
            raise invalid("acoustic", "a sequence of (n_frames, n_mels) arrays, one per table row", type(acoustic).__name__)
        if len(acoustic) != len(table):
            raise ValueError(
                f"Invalid value received for argument `acoustic`. Expected one frame array per table row ({len(table)}). "
                f"Received: {len(acoustic)} items"
            )
        stats = utterance_statistics(acoustic)
    if len(stats) != len(table):
        raise ValueError(
            f"Invalid value received for argument `acoustic`. Expected statistics for every table row ({len(table)}). "
            f"Received: {len(stats)} rows"
        )
    if not np.isfinite(stats).all():
        raise ValueError("Invalid value received for argument `acoustic`. Expected finite values. Received: NaN or inf")
    return stats


def _transcripts(table: pd.DataFrame) -> np.ndarray:
    from privemo.features.lexical import _transcripts as checked

    return np.asarray(checked(table, np.arange(len(table), dtype=np.int64)), dtype=object)


class _Design:
    """Builds the feature matrix of some rows with transformers fitted on ``fit_rows`` only."""

    def __init__(
        self, stats: np.ndarray | None, texts: np.ndarray | None, fit_rows: np.ndarray, weight: float = 1.0
    ) -> None:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import StandardScaler

        from privemo.features.lexical import tokenize

        self.stats, self.texts, self.weight = stats, texts, weight
        self.scaler = StandardScaler().fit(stats[fit_rows]) if stats is not None else None
        self.vectorizer = None
        if texts is not None:
            self.vectorizer = CountVectorizer(
                tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=NGRAM_RANGE, binary=True,
                dtype=np.float64,
            )
            try:
                self.vectorizer.fit(list(texts[fit_rows]))
            except ValueError as error:  # "empty vocabulary": no training transcript has a word
                raise ValueError(f"lexical reference: the training transcripts have no words ({error})") from None

    @property
    def n_features(self) -> int:
        n = 0
        if self.scaler is not None:
            n += self.scaler.n_features_in_
        if self.vectorizer is not None:
            n += len(self.vectorizer.vocabulary_)
        return n

    def __call__(self, rows: np.ndarray):
        from scipy import sparse

        parts = []
        if self.scaler is not None:
            parts.append(self.weight * self.scaler.transform(self.stats[rows]))
        if self.vectorizer is not None:
            parts.append(self.vectorizer.transform(list(self.texts[rows])))
        if len(parts) == 1:
            return parts[0]
        return sparse.hstack([sparse.csr_matrix(parts[0]), parts[1]], format="csr")
