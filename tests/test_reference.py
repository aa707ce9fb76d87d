"""The linear reference: known answers on small synthetic tables, argument checks, and one run on a tiny demo corpus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privemo.data.folds import Fold, speaker_folds
from privemo.experiment.reference import (
    C_GRID,
    gender_labels,
    gender_reference,
    linear_reference,
    reference_frame,
    reference_table,
    utterance_statistics,
)

N_MELS = 40
FILLER = ("the", "a", "meeting", "today", "was", "it", "we", "saw", "house", "car", "very", "then")
PLANTED = ("awful", "ordinary", "great")  # one word per class


def synthetic(n_speakers: int = 12, per_speaker: int = 18, *, seed: int = 0, acoustic_signal: float = 1.0,
              text_signal: bool = True):
    """A table of ``n_speakers`` (half F, half M) with 3-class labels, frames and transcripts.

    Class c shifts the means of bands 0-4 by ``acoustic_signal * (c - 1)``; male speakers have wider frames (std of
    bands 10-19 doubled, the gender cue); transcripts hold the class's planted word when ``text_signal``.
    """
    rng = np.random.default_rng(seed)
    rows, frames, labels = [], [], []
    for s in range(n_speakers):
        gender = "F" if s % 2 == 0 else "M"
        for u in range(per_speaker):
            c = (u + s) % 3
            t = int(rng.integers(20, 60))
            x = rng.normal(size=(t, N_MELS))
            x[:, :5] += acoustic_signal * (c - 1)
            if gender == "M":
                x[:, 10:20] *= 2.0
            words = list(rng.choice(FILLER, size=5))
            if text_signal:
                words.insert(int(rng.integers(0, 6)), PLANTED[c])
            rows.append({"utterance_id": f"spk{s:02d}_{u:03d}", "speaker": f"spk{s:02d}", "gender": gender,
                         "session": f"S{s // 2}", "transcript": " ".join(words).capitalize() + "."})
            frames.append(x.astype(np.float32))
            labels.append(c)
    table = pd.DataFrame(rows)
    table.attrs["corpus"] = "synthetic"
    folds = speaker_folds(table, n_folds=3, seed=0, strategy="speaker")
    return table, frames, np.array(labels, np.int64), folds


@pytest.fixture(scope="module")
def world():
    return synthetic()


# -- utterance statistics --------------------------------------------------------------------------------------------
def test_utterance_statistics_known_answer():
    x = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 4.0]])
    stats = utterance_statistics([x, np.array([[3.0, -1.0]])])
    assert stats.shape == (2, 9) and stats.dtype == np.float64
    np.testing.assert_allclose(stats[0, 0:2], [1.0, 2.0])  # mean
    np.testing.assert_allclose(stats[0, 2:4], x.std(axis=0))  # std
    np.testing.assert_allclose(stats[0, 4:6], [1.5, 1.5])  # mean |delta|: (2 + 1) / 2, (0 + 3) / 2
    np.testing.assert_allclose(stats[0, 6:8], [2.0, 4.0])  # max
    np.testing.assert_allclose(stats[0, 8], np.log(3))
    np.testing.assert_allclose(stats[1], [3.0, -1.0, 0, 0, 0, 0, 3.0, -1.0, 0.0])  # one frame: no spread, no motion


def test_utterance_statistics_has_161_columns_for_40_bands(world):
    _, frames, _, _ = world
    stats = utterance_statistics(frames)
    assert stats.shape == (len(frames), 161) and np.isfinite(stats).all()


@pytest.mark.parametrize("frames, message", [
    ([], "non-empty"),
    ([np.zeros((0, 4))], "at least one frame"),
    ([np.zeros(4)], r"frames\[0\] with shape \(4,\)"),
    ([np.zeros((3, 4)), np.zeros((3, 5))], "4 bands"),
])
def test_utterance_statistics_rejects_bad_frames(frames, message):
    with pytest.raises(ValueError, match=message):
        utterance_statistics(frames)


# -- known answers ---------------------------------------------------------------------------------------------------
def test_planted_acoustic_signal_is_found(world):
    table, frames, labels, folds = world
    result = linear_reference(table, labels, folds, "acoustic", acoustic=frames)
    assert result["uar_mean"] > 0.9 and min(result["fold_uar"]) > 0.8
    assert result["n_folds"] == len(folds) == len(result["fold_uar"]) == len(result["C"])
    assert all(c in C_GRID for c in result["C"])
    assert result["n_features"] == [161] * len(folds) and all(result["converged"])
    assert result["modality"] == "acoustic" and result["corpus"] == "synthetic"
    assert result["uar_std"] == pytest.approx(np.std(result["fold_uar"], ddof=1))


def test_shuffled_labels_give_chance(world):
    table, frames, labels, folds = world
    shuffled = np.random.default_rng(1).permutation(labels)
    result = linear_reference(table, shuffled, folds, "acoustic", acoustic=frames)
    assert abs(result["uar_mean"] - 1 / 3) < 0.12


def test_precomputed_statistics_give_the_same_result(world):
    table, frames, labels, folds = world
    a = linear_reference(table, labels, folds, "acoustic", acoustic=frames)
    b = linear_reference(table, labels, folds, "acoustic", acoustic=utterance_statistics(frames))
    assert a == b


def test_planted_words_are_found_and_vocabulary_comes_from_training_rows(world):
    table, _, labels, folds = world
    result = linear_reference(table, labels, folds, "lexical")
    assert result["uar_mean"] > 0.95
    # unigrams + bigrams of a 15-word vocabulary: far more features than words, bounded by what training rows contain
    assert all(len(FILLER) + len(PLANTED) < n < 15 + 15 * 15 for n in result["n_features"])


def test_lexical_without_planted_words_is_chance():
    table, _, labels, folds = synthetic(text_signal=False, seed=3)
    result = linear_reference(table, labels, folds, "lexical")
    assert abs(result["uar_mean"] - 1 / 3) < 0.12


def test_acoustic_plus_lexical_uses_both():
    # acoustic statistics nearly pure noise, words carry the labels: the fusion must not drown the words in the noise
    table, frames, labels, folds = synthetic(acoustic_signal=0.05, seed=2)
    acoustic = linear_reference(table, labels, folds, "acoustic", acoustic=frames)
    both = linear_reference(table, labels, folds, "acoustic+lexical", acoustic=frames)
    assert acoustic["uar_mean"] < 0.6 and both["uar_mean"] > 0.9
    assert all(n > 161 for n in both["n_features"])
    assert all(w < 1.0 for w in both["acoustic_weight"])  # the noisy statistics are weighted down on validation
    assert acoustic["acoustic_weight"] == [1.0] * len(folds)


def test_gender_reference_reads_the_voice(world):
    table, frames, _, folds = world
    result = gender_reference(table, folds, acoustic=frames)
    assert result["task"] == "gender" and result["modality"] == "acoustic"
    assert result["uar_mean"] > 0.95


def test_unknown_labels_are_left_out(world):
    table, frames, _, folds = world
    table = table.copy()
    table.loc[table.index[:6], "gender"] = None
    assert (gender_labels(table) == -1).sum() == 6
    assert gender_reference(table, folds, acoustic=frames)["uar_mean"] > 0.95


def test_fold_without_validation_uses_the_default_c(world):
    table, frames, labels, folds = world
    no_val = [Fold(np.union1d(f.train, f.validation), np.array([], np.int64), f.test) for f in folds]
    result = linear_reference(table, labels, no_val, "acoustic", acoustic=frames)
    assert result["C"] == [1.0] * len(folds) and all(np.isnan(result["validation_uar"]))


# -- argument checks ---------------------------------------------------------------------------------------------------
def test_invalid_arguments_are_reported_keras_style(world):
    table, frames, labels, folds = world
    with pytest.raises(ValueError, match=r"argument `modality`\. Expected one of .*Received: modality='audio'"):
        linear_reference(table, labels, folds, "audio", acoustic=frames)
    with pytest.raises(ValueError, match="argument `acoustic`.*Received: acoustic=None"):
        linear_reference(table, labels, folds, "acoustic+lexical")
    with pytest.raises(ValueError, match="argument `acoustic`.*Received: 3 items"):
        linear_reference(table, labels, folds, "acoustic", acoustic=frames[:3])
    with pytest.raises(ValueError, match="argument `labels`"):
        linear_reference(table, labels[:-1], folds, "lexical")
    with pytest.raises(ValueError, match="argument `labels`"):
        linear_reference(table, labels.astype(float), folds, "lexical")
    with pytest.raises(ValueError, match="argument `folds`"):
        linear_reference(table, labels, [(1, 2)], "lexical")
    with pytest.raises(ValueError, match="argument `folds`"):
        linear_reference(table, labels, [Fold(np.array([0, 10_000]), np.array([1]), np.array([2]))], "lexical")
    with pytest.raises(ValueError, match="argument `table`"):
        linear_reference(table.to_numpy(), labels, folds, "lexical")
    with pytest.raises(ValueError, match="argument `c_grid`"):
        linear_reference(table, labels, folds, "lexical", c_grid=(0.0, 1.0))
    with pytest.raises(ValueError, match="argument `seed`"):
        linear_reference(table, labels, folds, "lexical", seed=-1)


def test_missing_transcripts_are_named(world):
    table, _, labels, folds = world
    table = table.copy()
    table.loc[table.index[4], "transcript"] = None
    with pytest.raises(ValueError, match="1 of .* have no transcript"):
        linear_reference(table, labels, folds, "lexical")


# -- tables ----------------------------------------------------------------------------------------------------------
def test_reference_frame_columns_and_fold_scores():
    frame = reference_frame([
        {"corpus": "demo", "modality": "acoustic", "task": "activation", "fold_uar": [0.5, 0.7]},
        {"corpus": "demo", "modality": "lexical", "task": "valence", "uar_mean": 0.4, "uar_std": 0.1, "n_folds": 5},
    ])
    assert list(frame.columns) == ["corpus", "modality", "task", "uar_mean", "uar_std", "n_folds"]
    assert frame.uar_mean.tolist() == pytest.approx([0.6, 0.4])
    assert frame.uar_std.tolist() == pytest.approx([np.std([0.5, 0.7], ddof=1), 0.1])
    assert frame.n_folds.tolist() == [2, 5]
    with pytest.raises(ValueError, match="argument `rows`.*without \\['task'\\]"):
        reference_frame([{"corpus": "demo", "modality": "acoustic", "uar_mean": 0.5}])


def test_reference_table_runs_every_cell(world):
    table, frames, labels, folds = world
    table = table.assign(activation=1.0 + 2.0 * labels, valence=3.0)  # demo-like 1-5 ratings: 1 low, 3 mid, 5 high
    table.attrs["corpus"] = "demo"
    frame = reference_table(table, folds, acoustic=frames, tasks=("activation",), modalities=("acoustic", "lexical"))
    assert frame[["modality", "task"]].values.tolist() == [["acoustic", "activation"], ["lexical", "activation"],
                                                          ["acoustic", "gender"]]
    assert (frame.uar_mean > 0.9).all() and (frame.n_folds == 3).all()


# -- the real demo corpus, tiny --------------------------------------------------------------------------------------
def test_demo_corpus_reference(tmp_path_factory, monkeypatch):
    """8 utterances per speaker (80 in all, a few seconds to build): the voice gives gender away, activation beats
    chance from acoustics (the demo puts activation in prosody)."""
    import privemo
    from privemo.features.acoustic import extract_acoustic

    base = tmp_path_factory.mktemp("reference-demo")
    monkeypatch.setenv("PRIVEMO_DATA", str(base / "data"))
    monkeypatch.setenv("PRIVEMO_CACHE", str(base / "cache"))
    table = privemo.load_corpus("demo", n_per_speaker=8, progress=False)
    folds = privemo.speaker_folds(table, n_folds=5, seed=0)
    frames = extract_acoustic(table, progress=False, n_jobs=1).normalized(table, mode="speaker")
    stats = utterance_statistics(frames)
    assert stats.shape == (len(table), 161)
    gender = gender_reference(table, folds, acoustic=stats)
    labels = privemo.bin_labels(table["activation"].to_numpy(float), "demo")
    activation = linear_reference(table, labels, folds, "acoustic", acoustic=stats)
    assert gender["n_folds"] == activation["n_folds"] == 5
    assert gender["uar_mean"] > 0.8
    assert activation["uar_mean"] > 0.40  # chance 1/3; 0.51 when written (16 test utterances a fold: noisy)


def test_without_refit_the_model_is_fitted_on_the_training_speakers_only():
    """refit=False scores the fit on the training rows: labels of the validation rows then cannot change the result."""
    import privemo
    from privemo.data.folds import Fold

    rng = np.random.default_rng(0)
    n = 90
    frames = [rng.normal(size=(20, 4)) for _ in range(n)]
    labels = rng.integers(0, 3, n)
    for i, y in enumerate(labels):
        frames[i][:, 0] += 1.5 * y
    table = pd.DataFrame({"utterance_id": [f"u{i}" for i in range(n)], "transcript": ["a"] * n})
    fold = Fold(np.arange(0, 50), np.arange(50, 70), np.arange(70, 90))
    flipped = labels.copy()
    flipped[50:70] = (flipped[50:70] + 1) % 3  # wrong validation labels
    kw = dict(acoustic=frames, c_grid=(1.0,))
    a = privemo.linear_reference(table, labels, [fold], "acoustic", refit=False, **kw)
    b = privemo.linear_reference(table, flipped, [fold], "acoustic", refit=False, **kw)
    assert a["fold_uar"] == b["fold_uar"]
    c = privemo.linear_reference(table, flipped, [fold], "acoustic", refit=True, **kw)
    assert c["fold_uar"] != a["fold_uar"]  # the refit learns from the (here wrong) validation labels
