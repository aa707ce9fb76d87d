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


def test_speaker_uar_interval_resamples_whole_speakers_within_gender():
    from privemo.metrics import paired_speaker_difference, speaker_resamples, speaker_uar_interval

    rng = np.random.default_rng(0)
    speakers = np.repeat([f"s{i}" for i in range(8)], 50)
    gender = np.repeat([0, 1] * 4, 50)
    y = rng.integers(0, 3, speakers.size)
    # half the speakers are recognised perfectly, half at chance: the speaker is the unit of variation
    good = np.isin(speakers, ["s0", "s1", "s2", "s3"])
    pred = np.where(good, y, rng.integers(0, 3, speakers.size))
    spk = speaker_uar_interval(y, pred, speakers, gender, n_classes=3, seed=1)
    utt_low, utt_high = bootstrap_utterances(y, pred)
    low, high = spk["ci"]
    assert low < utt_low and high > utt_high  # speaker-level intervals are wider than utterance-level ones
    assert spk["n_speakers"] == 8 and spk["method"].startswith("cluster bootstrap over test speakers")
    idx = speaker_resamples(np.array([0, 1, 0, 1]), 100, seed=0)
    assert set(np.unique(idx[:, [0, 2]])) <= {0, 2} and set(np.unique(idx[:, [1, 3]])) <= {1, 3}
    # one speaker per gender (the demo's test folds): stratifying would freeze every resample, so it is not done
    one_each = speaker_resamples(np.array([0, 1]), 200, seed=0)
    assert {tuple(sorted(r)) for r in one_each} == {(0, 0), (0, 1), (1, 1)}
    two = speaker_uar_interval(y[150:250], pred[150:250], speakers[150:250], gender[150:250], n_classes=3, seed=1)
    assert two["ci"][0] < two["ci"][1]
    # a network against itself: the paired difference is exactly 0 in every resample
    assert np.all(paired_speaker_difference(spk["per_speaker"], spk["per_speaker"]) == 0.0)


def bootstrap_utterances(y, pred):
    from privemo.privacy.attribute import bootstrap_uar_ci

    return bootstrap_uar_ci(y, pred, seed=1)
