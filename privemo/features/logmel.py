"""Log Mel filterbank features of one waveform: 40 bands, 25 ms window, 10 ms hop, 16 kHz (the paper's front end).

``log_mfb`` is a pure function of one waveform; ``load_audio`` reads a sound file with errors that name it;
``feature_params`` is the full parameter set that keys the feature cache. The extraction of a whole corpus, cached and in
parallel, is ``privemo.features.acoustic``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._util.validation import check_float, check_int

SAMPLE_RATE = 16000  # the paper's rate; other rates are resampled to it
N_MELS = 40
WIN_LENGTH_MS = 25.0
HOP_LENGTH_MS = 10.0
# assumption (README assumptions table): natural log of the Mel power plus this floor, log(mel + 1e-6); with waveforms
# in [-1, 1] speech bands sit far above it, digital silence maps to log(1e-6) = -13.8 instead of -inf.
LOG_FLOOR = 1e-6
# assumption (README assumptions table): longest utterance fed to the model, 1000 frames = 10 s; longer ones keep their
# first MAX_FRAMES frames (head truncation). Applied by the pipeline (``privemo.data.pipeline``) or via ``max_frames``.
MAX_FRAMES = 1000
# assumption (README assumptions table): floor on per-band standard deviations in z-normalisation (constant bands).
STD_FLOOR = 1e-3
FEATURE_VERSION = 1  # bump when the computation changes, so old caches miss


def _check_positive(name: str, value, *, integer: bool = False) -> None:
    if integer:
        check_int(name, value, 1, expected="a positive integer")
    else:
        check_float(name, value, 0, low_open=True, expected="a positive number")


def feature_params(
    *, n_mels: int = N_MELS, win_length_ms: float = WIN_LENGTH_MS, hop_length_ms: float = HOP_LENGTH_MS
) -> dict:
    """Every parameter that determines the features (validated); its hash names the cache folder."""
    _check_positive("n_mels", n_mels, integer=True)
    _check_positive("win_length_ms", win_length_ms)
    _check_positive("hop_length_ms", hop_length_ms)
    win, hop, n_fft = _frame_sizes(SAMPLE_RATE, win_length_ms, hop_length_ms)
    return {
        "feature": "log_mfb",
        "version": FEATURE_VERSION,
        "sample_rate": SAMPLE_RATE,
        "n_mels": int(n_mels),
        "win_length_ms": float(win_length_ms),
        "hop_length_ms": float(hop_length_ms),
        "win_length": win,
        "hop_length": hop,
        "n_fft": n_fft,
        "window": "hann",
        "center": True,
        "fmin": 0.0,
        "fmax": SAMPLE_RATE / 2,
        "mel_scale": "slaney",
        "log_floor": LOG_FLOOR,
        "resample": "soxr_hq",
    }


def _frame_sizes(sr: int, win_length_ms: float, hop_length_ms: float) -> tuple[int, int, int]:
    win = int(round(sr * win_length_ms / 1000.0))
    hop = int(round(sr * hop_length_ms / 1000.0))
    if win < 1 or hop < 1:
        raise ValueError(
            f"Invalid value received for argument `win_length_ms`/`hop_length_ms`. Expected at least one sample at "
            f"{sr} Hz. Received: win_length_ms={win_length_ms}, hop_length_ms={hop_length_ms}"
        )
    n_fft = 1 << (win - 1).bit_length()  # next power of two >= window (512 for 400 samples)
    return win, hop, n_fft


def frame_count(n_samples: int, *, hop_length_ms: float = HOP_LENGTH_MS) -> int:
    """Frames ``log_mfb`` returns for ``n_samples`` samples at 16 kHz: ``1 + n_samples // hop`` (hop = 160 samples)."""
    hop = int(round(SAMPLE_RATE * hop_length_ms / 1000.0))
    return 1 + int(n_samples) // hop


_ANALYSIS: dict[tuple, tuple] = {}


def _analysis(sr: int, n_mels: int, win: int, n_fft: int) -> tuple[np.ndarray, Any]:
    """Periodic Hann window and librosa's Mel filter bank (as a sparse matrix), built once per parameter set.

    Worker processes receive these from the parent (``_extract_chunk``), so they never import librosa's filters module
    (which pulls in scipy.signal and numba: seconds per process).
    """
    key = (sr, n_mels, win, n_fft)
    if key not in _ANALYSIS:
        import librosa.filters

        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sr / 2, htk=False, norm="slaney")
        _set_analysis(key, mel)
    return _ANALYSIS[key]


def _set_analysis(key: tuple, mel: np.ndarray) -> None:
    import scipy.sparse

    win = key[2]
    # = scipy.signal.get_window("hann", win, fftbins=True), the window librosa uses
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)).astype(np.float32)
    _ANALYSIS[key] = (window, scipy.sparse.csr_array(np.asarray(mel, dtype=np.float32)))


def _resample(y: np.ndarray, sr: int) -> np.ndarray:
    """= librosa.resample(y, orig_sr=sr, target_sr=16000, res_type="soxr_hq"): soxr HQ, length ceil(n * ratio)."""
    import soxr

    n_out = int(np.ceil(len(y) * SAMPLE_RATE / sr))
    out = np.asarray(soxr.resample(y, sr, SAMPLE_RATE, quality="soxr_hq"), dtype=np.float32)
    if len(out) >= n_out:
        return out[:n_out]
    return np.pad(out, (0, n_out - len(out)))


def log_mfb(
    signal: np.ndarray,
    sr: int = SAMPLE_RATE,
    *,
    n_mels: int = N_MELS,
    win_length_ms: float = WIN_LENGTH_MS,
    hop_length_ms: float = HOP_LENGTH_MS,
) -> np.ndarray:
    """Log Mel filterbank energies of one waveform.

    The values are those of ``log(librosa.feature.melspectrogram(y, sr=16000, n_fft=512, win_length=400,
    hop_length=160, window="hann", center=True, pad_mode="constant", power=2.0, n_mels=40) + LOG_FLOOR).T`` (checked
    by the tests), computed with librosa's Mel filter bank (Slaney scale, 0-8 kHz), a periodic Hann window and a real
    FFT, which is about twice as fast as librosa's own path. Signals at another rate are first resampled to 16 kHz as
    ``librosa.resample(res_type="soxr_hq")`` does (soxr HQ, ``ceil(n * 16000 / sr)`` samples).

    Frames are centred (``center=True``: the signal is zero-padded by n_fft/2 on both sides), so frame ``t`` is
    centred on sample ``t * hop`` and a signal of ``n`` samples (after resampling) gives ``1 + n // hop`` frames
    (``frame_count``): 1 + n // 160 at the default 10 ms hop.

    Args:
        signal: np.ndarray [shape=(n,)], a mono float waveform (typically in [-1, 1]); not modified.
        sr: sample rate of ``signal`` in Hz.
        n_mels: number of Mel bands.
        win_length_ms: analysis window in milliseconds (n_fft is the next power of two of the window in samples).
        hop_length_ms: frame shift in milliseconds.

    Returns:
        np.ndarray [shape=(frames, n_mels), dtype=float32].
    """
    _check_positive("sr", sr, integer=True)
    y = np.asarray(signal)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.number) or np.iscomplexobj(y):
        raise ValueError(
            f"Invalid value received for argument `signal`. Expected a 1-D real waveform (mono). "
            f"Received: signal with shape {y.shape} and dtype {y.dtype}"
        )
    if y.size == 0:
        raise ValueError(
            "Invalid value received for argument `signal`. Expected at least one sample. Received: 0 samples"
        )
    y = y.astype(np.float32, copy=False)
    if not np.isfinite(y).all():
        raise ValueError("Invalid value received for argument `signal`. Expected finite samples. Received: NaN or inf")
    params = feature_params(n_mels=n_mels, win_length_ms=win_length_ms, hop_length_ms=hop_length_ms)
    if int(sr) != SAMPLE_RATE:
        y = _resample(y, int(sr))
    win, hop, n_fft = params["win_length"], params["hop_length"], params["n_fft"]
    window, mel = _analysis(SAMPLE_RATE, params["n_mels"], win, n_fft)
    import scipy.fft

    padded = np.pad(y, (n_fft // 2, n_fft // 2))
    n_frames = 1 + len(y) // hop
    lpad = (n_fft - win) // 2  # librosa centres the shorter window inside the n_fft frame
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[lpad::hop][:n_frames]
    # The power spectrum does not depend on where the window sits inside the n_fft-point frame, so the FFT zero-pads at
    # the end instead of both sides (same |X|^2 as librosa's centred window).
    buffer = np.zeros((n_frames, n_fft), np.float32)
    np.multiply(frames, window, out=buffer[:, :win])
    spec = scipy.fft.rfft(buffer, axis=1)
    power = spec.real**2 + spec.imag**2
    energies = (mel @ power.T).T  # sparse filter bank: no BLAS thread pool for a tiny matrix product
    return np.ascontiguousarray(np.log(energies + np.float32(LOG_FLOOR)), dtype=np.float32)


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 mono (channels averaged) and its sample rate; errors name the file."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for missing or corrupt files
        raise ValueError(f"{path}: unreadable audio ({exc.__class__.__name__}: {str(exc).strip()[:160]})") from None
    if data.ndim == 2:
        data = data.mean(axis=1, dtype=np.float32)
    if data.size == 0:
        raise ValueError(f"{path}: audio file has no samples")
    return data, int(sr)


