"""Three-class emotion labels: activation / valence ratings binned into low (0), mid (1) and high (2).

The paper bins activation and valence into three classes but does not give the cut points. privemo's default cut points
are an assumption (see the README assumptions table): on every scale the middle bin is the central quarter of the scale,
i.e. on 1-5 ``low <= 2.5 < mid < 3.5 <= high``. Averaged ratings such as IEMOCAP's (means of 2-4 integer ratings, e.g.
2.5, 3.3333) then split as one would read them: a rating pulled to the low or high half by at least one full point among
two raters counts as low or high; ratings around the neutral 3 are mid. The same proportions are used on the other scales
(1-7: 3.25 / 4.75; 1-9: 4 / 6). Pass ``thresholds=`` to use your own, or equal-frequency (tertile) thresholds computed on the
training data only (``equal_frequency_thresholds``) so no information leaks from the test speakers.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

LOW, MID, HIGH = 0, 1, 2

# Rating scale (min, max) of each corpus's consensus activation / valence.
RATING_SCALES: dict[str, tuple[float, float]] = {
    "iemocap": (1.0, 5.0),
    "demo": (1.0, 5.0),  # the synthesised corpus mimics IEMOCAP
    "msp-improv": (1.0, 5.0),
    "msp-podcast": (1.0, 7.0),
    "demo-podcast": (1.0, 7.0),  # the synthesised corpus mimics MSP-Podcast
    # assumption: see README assumptions table. MuSE's scale is unconfirmed (means up to 9 have been seen: 9-point SAM scale).
    "muse": (1.0, 9.0),
}

# assumption: see README assumptions table. The middle bin spans the central quarter of each scale:
# low = lo + 3/8 (hi - lo), high = lo + 5/8 (hi - lo); low bin is value <= low, high bin is value >= high.
MID_BIN_FRACTION: tuple[float, float] = (0.375, 0.625)


def _scale_thresholds(lo: float, hi: float) -> tuple[float, float]:
    return (lo + MID_BIN_FRACTION[0] * (hi - lo), lo + MID_BIN_FRACTION[1] * (hi - lo))


# (low_max, high_min) per corpus: value <= low_max -> 0 (low); value >= high_min -> 2 (high); otherwise 1 (mid).
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {name: _scale_thresholds(*scale) for name, scale in RATING_SCALES.items()}

# Tolerance when checking that ratings lie on the corpus's scale (floating-point means such as 4.99999).
_SCALE_TOLERANCE = 1e-6


def _corpus_key(corpus: str) -> str:
    key = str(corpus).lower().replace("_", "-")
    if key not in RATING_SCALES:
        raise ValueError(
            f"Invalid value received for argument `corpus`. Expected one of {sorted(RATING_SCALES)}. Received: corpus={corpus!r}"
        )
    return key


def _as_ratings(values: Iterable[float] | np.ndarray, name: str = "values") -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Invalid value received for argument `{name}`. Expected numeric ratings. ({exc})") from None
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 0 else arr
    if arr.ndim != 1:
        raise ValueError(f"Invalid value received for argument `{name}`. Expected a 1-D array of ratings. Received shape {arr.shape}")
    n_nan = int(np.isnan(arr).sum())
    if n_nan:
        raise ValueError(
            f"{name}: {n_nan} of {arr.size} rating(s) are NaN (missing). Drop those utterances before binning "
            f"(e.g. table.dropna(subset=['activation', 'valence']))."
        )
    if np.isinf(arr).any():
        raise ValueError(f"{name}: {int(np.isinf(arr).sum())} rating(s) are infinite.")
    return arr


def _check_thresholds(thresholds: object) -> tuple[float, float]:
    try:
        low, high = (float(t) for t in thresholds)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(
            "Invalid value received for argument `thresholds`. Expected a pair (low_max, high_min) of numbers. "
            f"Received: thresholds={thresholds!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            "Invalid value received for argument `thresholds`. Expected finite numbers with low_max < high_min. "
            f"Received: thresholds={thresholds!r}"
        )
    return low, high


def bin_labels(
    values: Iterable[float] | np.ndarray,
    corpus: str,
    thresholds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Bin activation or valence ratings into 0 (low), 1 (mid), 2 (high).

    Args:
        values: ratings on the corpus's own scale (``RATING_SCALES[corpus]``), e.g. ``table["activation"]``.
        corpus: "iemocap", "demo", "msp-improv", "msp-podcast", "demo-podcast" or "muse"; selects the default thresholds and scale.
        thresholds: ``(low_max, high_min)``: ``value <= low_max`` is low, ``value >= high_min`` is high, anything between
            is mid. ``None`` uses ``DEFAULT_THRESHOLDS[corpus]`` (an assumption, see the module docstring), and then
            ratings off the corpus's scale are an error (they point to a reader bug or the wrong ``corpus``).

    Returns:
        np.ndarray of int64 in {0, 1, 2}, same length as ``values``.

    Raises:
        ValueError: unknown corpus; NaN ratings (the message says how many); bad thresholds; with default
            thresholds, ratings outside the corpus's scale.
    """
    key = _corpus_key(corpus)
    arr = _as_ratings(values)
    if thresholds is None:
        low, high = DEFAULT_THRESHOLDS[key]
        lo, hi = RATING_SCALES[key]
        outside = (arr < lo - _SCALE_TOLERANCE) | (arr > hi + _SCALE_TOLERANCE)
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} rating(s) lie outside the {key} scale [{lo:g}, {hi:g}] "
                f"(range seen: {arr.min():g} to {arr.max():g}). Check `corpus`, or pass `thresholds=` explicitly."
            )
    else:
        low, high = _check_thresholds(thresholds)
    out = np.full(arr.shape, MID, dtype=np.int64)
    out[arr <= low] = LOW
    out[arr >= high] = HIGH
    return out


def equal_frequency_thresholds(train_values: Iterable[float] | np.ndarray) -> tuple[float, float]:
    """Thresholds that split the *training* ratings into three bins as close to equal in size as possible.

    Use it with the training rows of a fold only, then bin every split with the result, so that the test speakers'
    ratings never shape the classes::

        thr = equal_frequency_thresholds(table.activation.to_numpy()[fold.train])
        y = bin_labels(table.activation, "iemocap", thresholds=thr)

    Averaged ratings are heavily tied (many utterances at exactly 3.0), so plain quantiles can put a whole tie on one
    side; the cut points are therefore chosen among the observed values, with the same semantics as ``bin_labels``
    (``value <= low`` is low, ``value >= high`` is high), to bring the low and high bins each closest to one third.

    Returns:
        ``(low_max, high_min)`` with ``low_max < high_min``, for ``bin_labels(..., thresholds=...)``.

    Raises:
        ValueError: NaN ratings (counted), or fewer than 3 distinct values (three bins cannot be formed).
    """
    arr = _as_ratings(train_values, "train_values")
    uniq = np.unique(arr)
    if uniq.size < 3:
        raise ValueError(
            f"train_values: need at least 3 distinct ratings to form 3 bins; found {uniq.size} distinct among {arr.size} value(s)."
        )
    n = arr.size
    sorted_arr = np.sort(arr)
    frac_le = np.searchsorted(sorted_arr, uniq, side="right") / n  # fraction <= u
    frac_ge = 1.0 - np.searchsorted(sorted_arr, uniq, side="left") / n  # fraction >= u
    cost_low = np.abs(frac_le - 1 / 3)
    cost_high = np.abs(frac_ge - 1 / 3)
    # low cut uniq[i], high cut uniq[j] with j >= i + 2, so the observed value uniq[i + 1] lands in the mid bin:
    # for every j, the best i is the running minimum of cost_low over 0..j-2.
    run_arg = np.zeros(uniq.size, dtype=np.int64)
    for k in range(1, uniq.size):
        run_arg[k] = k if cost_low[k] < cost_low[run_arg[k - 1]] else run_arg[k - 1]
    js = np.arange(2, uniq.size)
    totals = cost_high[js] + cost_low[run_arg[js - 2]]
    j = int(js[np.argmin(totals)])
    i = int(run_arg[j - 2])
    return float(uniq[i]), float(uniq[j])


__all__ = ["bin_labels", "equal_frequency_thresholds", "RATING_SCALES", "DEFAULT_THRESHOLDS", "MID_BIN_FRACTION", "LOW", "MID", "HIGH"]
