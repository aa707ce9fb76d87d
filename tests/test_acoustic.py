"""privemo.features.acoustic: log-MFB values, frame counts, extraction over a table, normalisation."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from privemo.corpora._schema import COLUMNS
from privemo.features.acoustic import (
    MAX_FRAMES,
    AcousticFeatures,
    extract_acoustic,
    frame_count,
    log_mfb,
)

librosa = pytest.importorskip("librosa")


def _librosa_log_mfb(y: np.ndarray, sr: int = 16000) -> np.ndarray:
    """The reference: librosa's own melspectrogram with the documented settings."""
    if sr != 16000:
        y = librosa.resample(y, orig_sr=sr, target_sr=16000, res_type="soxr_hq")
    mel = librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=512, win_length=400, hop_length=160, window="hann", center=True,
        pad_mode="constant", power=2.0, n_mels=40,
    )
    return np.log(mel + 1e-6).T


def _known_signal(sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    chirp = np.sin(2 * np.pi * (200 * t + 900 * t**2))
    noise = np.random.default_rng(1).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.2 * chirp + 0.01 * noise).astype(np.float32)


def make_table(folder, n_speakers: int = 3, per_speaker: int = 4, corpus: str = "toy") -> pd.DataFrame:
    """A tiny utterance table with short synthetic wavs; each speaker has its own loudness."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(n_speakers):
        gain = 0.02 * (4**s)
        for u in range(per_speaker):
            n = int(16000 * rng.uniform(0.2, 0.9))
            y = (gain * rng.standard_normal(n)).clip(-1, 1).astype(np.float32)
            uid = f"S{s}_u{u:02d}"
            path = folder / f"{uid}.wav"
            sf.write(path, y, 16000, subtype="FLOAT")
            rows.append(
                dict(utterance_id=uid, speaker=f"spk{s}", gender="FM"[s % 2], session="1", wav_path=str(path),
                     transcript="hello", activation=3.0, valence=3.0)
            )
    table = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values("utterance_id").reset_index(drop=True)
    table.attrs["corpus"] = corpus
    return table


@pytest.mark.parametrize("n", [1, 159, 160, 400, 511, 512, 16000, 16161])
def test_frame_count_formula_and_shape(n):
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    feats = log_mfb(y)
    assert feats.shape == (1 + n // 160, 40) == (frame_count(n), 40)
    assert feats.dtype == np.float32 and feats.flags["C_CONTIGUOUS"]


def test_parameters_change_shape():
    y = np.zeros(16000, np.float32) + 0.01
    assert log_mfb(y, hop_length_ms=20.0).shape == (1 + 16000 // 320, 40) == (frame_count(16000, hop_length_ms=20), 40)
    assert log_mfb(y, n_mels=64).shape == (101, 64)


def test_equals_independent_librosa_computation():
    y = _known_signal(16000, 1.3)
    ours = log_mfb(y)
    ref = _librosa_log_mfb(y)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    # the 1 kHz tone dominates: the loudest band on average is the Mel band whose centre is nearest 1 kHz
    centres = librosa.mel_frequencies(n_mels=42, fmin=0, fmax=8000)[1:-1]
    assert abs(centres[ours.mean(axis=0).argmax()] - 1000) < 150


@pytest.mark.parametrize("sr", [8000, 22050, 44100])
def test_other_rates_are_resampled_to_16k(sr):
    y = _known_signal(sr, 0.7)
    ours = log_mfb(y, sr)
    ref = _librosa_log_mfb(y, sr)
    assert ours.shape == ref.shape == (frame_count(int(np.ceil(len(y) * 16000 / sr))), 40)
    np.testing.assert_allclose(ours, ref, atol=1e-3, rtol=0)


def test_silence_hits_the_floor_not_minus_infinity():
    feats = log_mfb(np.zeros(1600, np.float32))
    np.testing.assert_allclose(feats, np.log(1e-6), rtol=1e-6)


@pytest.mark.parametrize(
    "signal, kwargs",
    [
        (np.zeros((2, 100), np.float32), {}),
        (np.zeros(0, np.float32), {}),
        (np.array([0.0, np.nan, 0.1], np.float32), {}),
        (np.zeros(100, np.float32), {"n_mels": 0}),
        (np.zeros(100, np.float32), {"sr": -1}),
        (np.zeros(100, np.float32), {"hop_length_ms": 0}),
    ],
)
def test_invalid_inputs_are_rejected(signal, kwargs):
    with pytest.raises(ValueError, match="Invalid value received for argument"):
        log_mfb(signal, **kwargs)


def test_extract_matches_log_mfb_of_each_file(tmp_path):
    table = make_table(tmp_path)
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert isinstance(feats, AcousticFeatures) and len(feats) == len(table)
    for i, path in enumerate(table["wav_path"]):
        y, sr = sf.read(path, dtype="float32")
        expected = log_mfb(y, sr)
        np.testing.assert_array_equal(feats[i], expected)
        assert feats.lengths[i] == len(expected) == frame_count(len(y))
    assert feats.lengths.dtype == np.int64
    assert feats[-1].shape == feats[len(feats) - 1].shape
    with pytest.raises(IndexError):
        feats[len(feats)]


def test_parallel_extraction_equals_serial(tmp_path):
    table = make_table(tmp_path)
    serial = extract_acoustic(table, cache_dir=tmp_path / "c1", n_jobs=1, progress=False)
    parallel = extract_acoustic(table, cache_dir=tmp_path / "c2", n_jobs=2, progress=False)
    assert parallel.stats["n_computed"] == len(table)
    for i in range(len(table)):
        np.testing.assert_array_equal(serial[i], parallel[i])


def test_stereo_and_other_rate_files(tmp_path):
    table = make_table(tmp_path, n_speakers=1, per_speaker=2)
    y = _known_signal(22050, 0.5)
    sf.write(table.loc[0, "wav_path"], np.stack([y, 0.5 * y], axis=1), 22050, subtype="FLOAT")
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    np.testing.assert_allclose(feats[0], log_mfb(0.75 * y, 22050), atol=1e-4)


def test_max_frames_keeps_the_first_frames(tmp_path):
    table = make_table(tmp_path)
    full = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    capped = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, max_frames=30)
    assert capped.stats["n_computed"] == 0  # truncation is not a feature parameter: same cache
    assert (capped.lengths == np.minimum(full.raw_lengths, 30)).all() and (full.lengths > 30).any()
    for i in range(len(table)):
        np.testing.assert_array_equal(capped[i], full[i][:30])
    assert full.with_max_frames(MAX_FRAMES).max_frames == MAX_FRAMES


def test_per_speaker_normalisation_statistics(tmp_path):
    table = make_table(tmp_path)
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    raw_means = []
    norm = feats.normalized(table, mode="speaker")
    assert len(norm) == len(feats) and (norm.lengths == feats.lengths).all()
    for speaker, rows in table.groupby("speaker").groups.items():
        rows = list(rows)
        raw = np.concatenate([feats[i] for i in rows])
        z = np.concatenate([norm[i] for i in rows])
        raw_means.append(raw.mean())
        assert z.dtype == np.float32
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)
    assert np.ptp(raw_means) > 2.0  # the speakers really differ before normalisation


def test_global_normalisation_is_fitted_on_training_rows_only(tmp_path):
    table = make_table(tmp_path)
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    train = np.flatnonzero(table["speaker"] != "spk2")
    test = np.flatnonzero(table["speaker"] == "spk2")
    norm = feats.normalized(table, mode="global", train_indices=train)
    z_train = np.concatenate([norm[i] for i in train])
    np.testing.assert_allclose(z_train.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z_train.std(axis=0), 1.0, atol=1e-3)
    raw_train = np.concatenate([feats[i] for i in train]).astype(np.float64)
    np.testing.assert_allclose(norm.mean[0], raw_train.mean(axis=0), rtol=1e-5)
    z_test = np.concatenate([norm[i] for i in test])  # the loud test speaker is not centred by training statistics
    assert z_test.mean() > 0.5
    with pytest.raises(ValueError, match="train_indices"):
        feats.normalized(table, mode="global")
    with pytest.raises(ValueError, match="`mode`"):
        feats.normalized(table, mode="per-file")


def test_utterance_normalisation_is_what_encode_does_in_deployment(tmp_path):
    """mode="utterance": each utterance z-normalised with its own statistics, exactly as privemo.encode normalises a
    wav file (train as you ship); no other audio of the speaker is used."""
    from privemo.nn.encoder import _znorm

    table = make_table(tmp_path)
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    norm = feats.normalized(table, mode="utterance")
    assert norm.mode == "utterance" and len(set(norm.groups)) == len(table)
    for i in range(len(table)):
        np.testing.assert_allclose(norm[i].mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(norm[i], _znorm(feats.raw(i), None), atol=1e-4)
    speaker = feats.normalized(table, mode="speaker")
    assert max(np.abs(norm[i].mean(axis=0) - speaker[i].mean(axis=0)).max() for i in range(len(table))) > 0.1


def test_unknown_speakers_are_normalised_per_utterance(tmp_path):
    table = make_table(tmp_path)
    table.loc[0, "speaker"] = None
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    z = feats.normalized(table)[0]
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)


def test_normalized_rejects_another_table(tmp_path):
    table = make_table(tmp_path)
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    with pytest.raises(ValueError, match="`table`"):
        feats.normalized(table.iloc[::-1].reset_index(drop=True))


def test_pickles_by_reference(tmp_path):
    table = make_table(tmp_path)
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    blob = pickle.dumps(feats)
    assert len(blob) < 20_000  # file names and offsets, not the frames
    again = pickle.loads(blob)
    for i in range(len(feats)):
        np.testing.assert_array_equal(again[i], feats[i])


def test_missing_and_corrupt_audio_name_the_file(tmp_path):
    table = make_table(tmp_path, n_speakers=1, per_speaker=2)
    bad = tmp_path / "missing.wav"
    table.loc[1, "wav_path"] = str(bad)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    bad.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(ValueError, match="missing.wav"):
        extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)


def test_invalid_arguments(tmp_path):
    table = make_table(tmp_path, n_speakers=1, per_speaker=1)
    for kwargs in ({"n_jobs": 0}, {"max_frames": -5}, {"n_mels": 0}, {"chunk_size": 0}):
        with pytest.raises(ValueError, match="Invalid value received for argument"):
            extract_acoustic(table, cache_dir=tmp_path / "cache", progress=False, **kwargs)
    with pytest.raises(ValueError, match="`table`"):
        extract_acoustic(table[["utterance_id"]], cache_dir=tmp_path / "cache", progress=False)
