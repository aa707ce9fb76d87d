"""A small ctypes wrapper around eSpeak NG, as shipped by the ``espeakng-loader`` wheel.

The demo corpus is synthesised with it (see ``privemo.corpora.demo``). eSpeak NG keeps its state (voice, parameters, the
synth callback) in process-global variables, so one process holds one engine: this module initialises the library once
per process, in synchronous mode, and serialises every call behind a lock. To synthesise in parallel, use several worker
*processes* (each loads its own copy of the library), never threads.

Determinism: eSpeak NG (1.52) draws the noise of breathy voices from its own generator, seeded from the clock at start-up;
``synthesize`` reseeds it (``espeak_ng_SetRandSeed``) before every utterance. The engine also carries state from one
utterance to the next (glottal phase, gain control), so the samples of a call depend on the calls before it in the same
process: the same sequence of calls in a fresh process gives the same samples, byte for byte. The demo corpus therefore
synthesises each speaker in a fresh worker process.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_BUFFER_MS = 500  # length of the chunks handed to the synth callback

# Parameter ranges eSpeak NG accepts (speak_lib.h): words per minute, amplitude, base pitch, pitch range.
RATE_RANGE = (80, 450)
VOLUME_RANGE = (0, 200)
PITCH_RANGE = (0, 100)
RANGE_RANGE = (0, 100)

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded or refused a call."""


class _Engine:
    """The process's one eSpeak NG instance (library handle, sample rate, the buffer its callback fills)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - it is a runtime dependency
            raise EspeakError("The demo corpus needs the `espeakng-loader` package: pip install espeakng-loader") from exc
        lib_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
        try:
            self.lib = ctypes.CDLL(lib_path)
        except OSError as exc:
            raise EspeakError(f"Could not load eSpeak NG from {lib_path}: {exc}") from exc
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int

        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path.encode(), _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {self.sample_rate}); data folder: {data_path}")
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)

        # eSpeak NG >= 1.52 draws breath noise from its own generator, seeded from time() at start-up
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
            self._set_seed.restype = None

    def _collect(self, wav: Any, numsamples: int, events: Any) -> int:
        if wav and numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = carry on synthesising

    def _check(self, status: int, what: str) -> None:
        if status != _EE_OK:
            raise EspeakError(f"eSpeak NG refused {what} (status {status})")

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, volume: int) -> np.ndarray:
        self._check(self.lib.espeak_SetVoiceByName(voice.encode()), f"voice {voice!r}")
        for param, value, what in (
            (_PARAM_RATE, rate, "rate"),
            (_PARAM_VOLUME, volume, "volume"),
            (_PARAM_PITCH, pitch, "pitch"),
            (_PARAM_RANGE, pitch_range, "range"),
        ):
            self._check(self.lib.espeak_SetParameter(param, int(value), 0), f"{what}={value}")
        if self._set_seed is not None:
            self._set_seed(1)  # breath noise: same seed -> same samples
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        self._check(
            self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None), f"text {text[:40]!r}"
        )
        self._check(self.lib.espeak_Synchronize(), "synchronize")
        chunks, self._chunks = self._chunks, []
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return samples.astype(np.float32) / 32768.0


_ENGINE: _Engine | None = None
_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def sample_rate() -> int:
    """The engine's native output sample rate in Hz (22050 for eSpeak NG)."""
    with _LOCK:
        return _engine().sample_rate


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected an integer between {lo} and {hi}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def synthesize(
    text: str,
    voice: str = "en",
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    volume: int = 100,
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG and return ``(audio, sr)``.

    Args:
        text: UTF-8 text to speak.
        voice: an eSpeak NG voice name, optionally with a variant, e.g. ``"en"``, ``"en+f3"``, ``"en-us+m5"``.
        rate: speaking rate in words per minute, 80-450 (eSpeak's default 175).
        pitch: base pitch, 0-100 (default 50); the voice variant sets what 50 means in Hz.
        pitch_range: pitch range (intonation excursion), 0-100 (default 50; 0 is a monotone).
        volume: amplitude, 0-200 (default 100).

    Returns:
        ``audio``: float32 mono samples in [-1, 1], shape ``(n,)``; ``sr``: the native sample rate (22050 Hz).
        Reproducible: a fresh process making the same sequence of calls gets the same samples (see the module docstring).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"Invalid value received for argument `text`. Expected a non-empty string. Received: text={text!r}")
    if not isinstance(voice, str) or not voice:
        raise ValueError(f"Invalid value received for argument `voice`. Expected a voice name such as 'en+f3'. Received: voice={voice!r}")
    rate = _check_int("rate", rate, *RATE_RANGE)
    pitch = _check_int("pitch", pitch, *PITCH_RANGE)
    pitch_range = _check_int("pitch_range", pitch_range, *RANGE_RANGE)
    volume = _check_int("volume", volume, *VOLUME_RANGE)
    with _LOCK:
        engine = _engine()
        audio = engine.synthesize(text, voice, rate, pitch, pitch_range, volume)
        return audio, engine.sample_rate


__all__ = ["synthesize", "sample_rate", "EspeakError", "RATE_RANGE", "VOLUME_RANGE", "PITCH_RANGE", "RANGE_RANGE"]
