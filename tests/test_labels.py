"""Binning ratings into low / mid / high: default thresholds per scale, custom and equal-frequency thresholds, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privemo import bin_labels, equal_frequency_thresholds
from privemo.data.labels import DEFAULT_THRESHOLDS, RATING_SCALES


def test_default_thresholds_on_the_1_to_5_scale():
    values = [1.0, 2.0, 2.5, 2.6667, 3.0, 3.3333, 3.5, 4.0, 5.0]
    expected = [0, 0, 0, 1, 1, 1, 2, 2, 2]  # low <= 2.5 < mid < 3.5 <= high
    for corpus in ("iemocap", "demo", "msp-improv", "MSP_IMPROV"):
        out = bin_labels(values, corpus)
        assert out.dtype == np.int64 and out.tolist() == expected


def test_other_scales_use_the_same_proportions():
    assert RATING_SCALES["msp-podcast"] == (1.0, 7.0)
    assert DEFAULT_THRESHOLDS["msp-podcast"] == (3.25, 4.75)
    assert bin_labels(pd.Series([1.0, 3.25, 3.4, 4.0, 4.75, 7.0]), "msp-podcast").tolist() == [0, 0, 1, 1, 2, 2]
    assert DEFAULT_THRESHOLDS["muse"] == (4.0, 6.0)
    assert bin_labels(np.array([1.0, 4.0, 5.0, 6.0, 9.0]), "muse").tolist() == [0, 0, 1, 2, 2]
    for name, (low, high) in DEFAULT_THRESHOLDS.items():
        lo, hi = RATING_SCALES[name]
        assert lo < low < (lo + hi) / 2 < high < hi


def test_custom_thresholds():
    assert bin_labels([1, 2, 3, 4, 5], "iemocap", thresholds=(2, 4)).tolist() == [0, 0, 1, 2, 2]
    assert bin_labels([1, 2, 3, 4, 5], "iemocap", thresholds=(1.5, 4.5)).tolist() == [0, 1, 1, 1, 2]
    # explicit thresholds skip the scale check (the user chose them for their data)
    assert bin_labels([0.0, 6.0], "iemocap", thresholds=(2, 4)).tolist() == [0, 2]
    with pytest.raises(ValueError, match="`thresholds`.*low_max < high_min"):
        bin_labels([1, 2], "iemocap", thresholds=(4, 2))
    with pytest.raises(ValueError, match="`thresholds`"):
        bin_labels([1, 2], "iemocap", thresholds=3)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="2 of 4 rating"):
        bin_labels([1.0, np.nan, 3.0, np.nan], "iemocap")
    with pytest.raises(ValueError, match=r"Expected one of \['demo', 'demo-podcast', 'iemocap', 'msp-improv', 'msp-podcast', 'muse'\]"):
        bin_labels([1.0], "ravdess")
    with pytest.raises(ValueError, match="1 rating.*outside the iemocap scale"):
        bin_labels([1.0, 6.5], "iemocap")
    with pytest.raises(ValueError, match="1 of 3 rating"):
        equal_frequency_thresholds([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="at least 3 distinct"):
        equal_frequency_thresholds([3.0, 3.0, 4.0, 4.0])


def test_equal_frequency_thresholds_from_training_data_only():
    rng = np.random.default_rng(0)
    train = np.round(rng.normal(3.0, 0.8, 3000).clip(1, 5) * 3) / 3  # tied, IEMOCAP-like means of 3 raters
    test = np.round(rng.normal(4.0, 0.5, 1000).clip(1, 5) * 3) / 3  # a shifted test population
    low, high = equal_frequency_thresholds(train)
    assert low < high
    shares = np.bincount(bin_labels(train, "iemocap", thresholds=(low, high)), minlength=3) / train.size
    assert np.all(np.abs(shares - 1 / 3) < 0.1), shares
    # the thresholds depend on the training values only: the test ratings are not consulted, so their bins are skewed
    test_shares = np.bincount(bin_labels(test, "iemocap", thresholds=(low, high)), minlength=3) / test.size
    assert test_shares[2] > 0.6
    # computed over train + test instead, the cut points would move (that is the leak this function avoids)
    assert equal_frequency_thresholds(np.concatenate([train, test])) != (low, high)

    # continuous values: plain tertiles
    x = rng.uniform(1, 7, 30000)
    low, high = equal_frequency_thresholds(x)
    assert abs(low - 3.0) < 0.1 and abs(high - 5.0) < 0.1
    assert bin_labels(x, "msp-podcast", thresholds=(low, high)).tolist().count(1) == pytest.approx(10000, abs=5)


def test_equal_frequency_with_heavy_ties_keeps_three_bins():
    values = np.array([3.0] * 60 + [2.0] * 10 + [4.0] * 10 + [1.0] * 10 + [5.0] * 10)
    low, high = equal_frequency_thresholds(values)
    counts = np.bincount(bin_labels(values, "iemocap", thresholds=(low, high)), minlength=3)
    assert counts.min() > 0 and counts.sum() == values.size
