"""Machinery the two synthesised corpora (``demo`` and ``demo-podcast``) share: argument checks, word classes drawn
around a latent value (``level``), where a corpus lives, rendering an utterance with eSpeak NG into a wav (with a
per-utterance voice quality, ``spectral_tilt``, that eSpeak itself cannot vary), the manifest and its verification, the
lock, and the build step.

A corpus module describes itself with a ``CorpusSpec`` (generator, version, name, marker file, folder-name pattern)
and supplies its plan, its worker (one task per speaker) and its label files; everything else happens here, identically
for both, so that each corpus's bytes depend only on its own plan.

eSpeak NG keeps global state that carries over from one utterance to the next (glottal phase, gain control), so every
speaker is synthesised in a fresh worker process (a pool of ``n_jobs`` processes, one task per speaker): the sequence of
calls each engine sees, and therefore the audio, depends only on the seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .._util.processes import worker_pool
from ._schema import SAMPLE_RATE, CorpusFormatError

MANIFEST = "manifest.json"
MIN_DURATION_S = 1.0
MAX_DURATION_S = 4.0
# Voice quality (``spectral_tilt``): the gain turns by the utterance's dB per octave around 1 kHz, between 100 Hz and
# 7 kHz, as the spectral slope (eGeMAPS' alpha ratio / Hammarberg index) of a brighter or darker voice.
TILT_PIVOT_HZ = 1000.0
TILT_BAND_HZ = (100.0, 7000.0)


@dataclass(frozen=True)
class CorpusSpec:
    """What tells one synthesised corpus from the other on disk and in messages."""

    name: str  # "demo" / "demo-podcast": in messages, the marker text and the progress bar
    generator: str  # the generating module, recorded in the manifest
    version: int  # bump when the generator's output changes: the folder name and manifest carry it
    marker: str  # file that identifies a folder as such a corpus even if its manifest was deleted
    folder_pattern: str  # regular expression a default folder name matches in full


# ---------------------------------------------------------------------------------------------------------------------
# Arguments and location.


def check_int(name: str, value: Any, minimum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Invalid value received for argument `{name}`. Expected {what}. Received: {name}={value!r}")
    return int(value)


def check_seed(seed: Any) -> int:
    return check_int("seed", seed, 0, "a non-negative int")


def check_verify(verify: Any) -> str:
    if verify not in ("quick", "full", "none"):
        raise ValueError(f"Invalid value received for argument `verify`. Expected 'quick', 'full' or 'none'. Received: verify={verify!r}")
    return verify


def check_n_jobs(n_jobs: Any) -> int:
    """``None``: min(2, CPU count); otherwise a positive int."""
    if n_jobs is None:
        return min(2, os.cpu_count() or 1)
    return check_int("n_jobs", n_jobs, 1, "a positive int")


def data_folder() -> Path:
    """The folder that holds the synthesised corpora: ``$PRIVEMO_DATA``, else ``$XDG_CACHE_HOME/privemo`` or
    ``~/.cache/privemo``."""
    base = os.environ.get("PRIVEMO_DATA")
    if base:
        return Path(base).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "privemo"


def pick(rng: np.random.Generator, items: tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def level(rng: np.random.Generator, z: float, gain: float, neutral_logit: float) -> int:
    """A word class drawn around a latent value: 0 (low / negative), 1 (mid / neutral) or 2 (high / positive), with
    logits ``(-gain * z, neutral_logit, gain * z)`` for the latent ``z`` in [-1, 1]."""
    logits = np.array([-gain * z, neutral_logit, gain * z])
    probs = np.exp(logits - logits.max())
    return int(rng.choice(3, p=probs / probs.sum()))


def articles(text: str) -> str:
    """Replace each ``{art}`` placeholder by "a" or "an", as the next word asks ("an awful", "a lovely")."""
    return re.sub(r"\{art\} (\w)", lambda m: ("an " if m.group(1) in "aeiou" else "a ") + m.group(1), text)


# ---------------------------------------------------------------------------------------------------------------------
# Audio: 16 kHz PCM16 wavs, rendered in the worker processes.


# assumption (README assumptions table): unlabelled sentences each demo corpus ships as its word-vector pretraining text
# (the demo's stand-in for the external text the paper's pretrained word2vec vectors were trained on).
PRETRAINING_SENTENCES = 20000
PRETRAINING_TEXT = "pretraining_text.txt"


def write_pretraining_text(folder: Path, seed: int, sentence: Callable[[np.random.Generator, float, float], list[str]],
                           n: int = PRETRAINING_SENTENCES) -> None:
    """``folder/PRETRAINING_TEXT``: ``n`` unlabelled sentences of the corpus's grammar, one per line, with latent
    valence and activation drawn uniformly from their own random stream (seeded by ``seed``, independent of the
    corpus's utterances: a sentence may coincide with one by chance, but no label goes with it)."""
    rng = np.random.default_rng([seed, 7, 7])
    lines = [sentence(rng, float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)))[0] for _ in range(n)]
    (folder / PRETRAINING_TEXT).write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def pcm16_wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    pcm = np.clip(np.rint(audio * 32767.0), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def spectral_tilt(audio: np.ndarray, sr: int, db_per_octave: float) -> np.ndarray:
    """``audio`` with its spectrum tilted by ``db_per_octave`` around ``TILT_PIVOT_HZ`` (positive: brighter, more energy
    above the pivot; negative: darker, as a lax or breathy voice), flat outside ``TILT_BAND_HZ``; the RMS is kept, so the
    loudness of the utterance does not change. eSpeak has no per-call voice-quality parameter, hence this filter.

    Args:
        audio: float mono samples, shape ``(n,)``.
        sr: sample rate in Hz.
        db_per_octave: gain change per octave; 0 returns ``audio`` unchanged.

    Returns:
        float64 array, shape ``(n,)`` (``audio`` itself when ``db_per_octave`` is 0).
    """
    if db_per_octave == 0.0 or audio.size < 2:
        return audio
    from scipy import fft

    # zero-padded by a quarter second (the filter's response is far shorter: no circular wrap-around) to a fast length
    n_fft = fft.next_fast_len(audio.size + sr // 4, real=True)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    octaves = np.log2(np.clip(freqs, *TILT_BAND_HZ) / TILT_PIVOT_HZ)
    out = fft.irfft(fft.rfft(audio, n=n_fft) * 10.0 ** (db_per_octave * octaves / 20.0), n=n_fft)[: audio.size]
    power = float(np.mean(out ** 2))
    return out * np.sqrt(float(np.mean(audio ** 2)) / power) if power > 0 else out


def render(utt: dict, speaker: dict) -> tuple[np.ndarray, str]:
    """Synthesise one utterance: eSpeak -> trim -> 16 kHz -> spectral tilt (``utt["tilt"]`` dB per octave, if any) ->
    pad with the speaker's noise floor to 1-4 s."""
    import soxr

    from ._espeak import synthesize

    max_speech = MAX_DURATION_S - 0.6  # leaves room for the leading / trailing pauses below
    rate = utt["rate"]
    text = utt["texts"][-1]
    audio = np.zeros(0, dtype=np.float32)
    sr = 22050
    for attempt in range(12):
        text = utt["texts"][min(attempt, len(utt["texts"]) - 1)]
        if attempt >= len(utt["texts"]):
            rate = min(450, int(rate * 1.15))  # even the shortest wording is too long at this rate: speak faster
        audio, sr = synthesize(text, speaker["voice"], rate, utt["pitch"], utt["range"], utt["volume"])
        voiced = np.flatnonzero(np.abs(audio) > 0.004)
        audio = audio[max(voiced[0] - int(0.02 * sr), 0): voiced[-1] + int(0.05 * sr)] if voiced.size else audio[:0]
        if 0 < audio.size / sr <= max_speech:
            break
    else:  # pragma: no cover - the rates above always get there
        raise RuntimeError(f"demo: could not fit {utt['utterance_id']} into {MAX_DURATION_S} s")
    audio = soxr.resample(audio.astype(np.float64), sr, SAMPLE_RATE, quality="HQ")
    audio = spectral_tilt(audio, SAMPLE_RATE, float(utt.get("tilt", 0.0)))
    rng = np.random.default_rng(utt["noise_seed"])
    lead, tail = (int(rng.uniform(0.08, 0.3) * SAMPLE_RATE) for _ in range(2))
    total = audio.size + lead + tail
    min_total = int(MIN_DURATION_S * SAMPLE_RATE) + int(rng.uniform(0.0, 0.15) * SAMPLE_RATE)
    if total < min_total:
        extra = min_total - total
        lead += extra // 2
        tail += extra - extra // 2
    out = np.concatenate([np.zeros(lead), audio, np.zeros(tail)])
    out = out + rng.normal(0.0, 10 ** (speaker["noise_db"] / 20.0), size=out.size)
    return out.astype(np.float32), text


def render_wav(path: Path, utt: dict, speaker: dict) -> tuple[float, str]:
    """Render one utterance into the wav ``path`` (parents created); return its duration in seconds and the text spoken."""
    audio, text = render(utt, speaker)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pcm16_wav_bytes(audio, SAMPLE_RATE))
    return audio.size / SAMPLE_RATE, text


# ---------------------------------------------------------------------------------------------------------------------
# Manifest and verification.


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_files(folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            rel = Path(dirpath, name).relative_to(folder).as_posix()
            if rel != MANIFEST:
                out.append(rel)
    return sorted(out)


def files_digest(files: dict) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(spec: CorpusSpec, folder: Path, fields: dict[str, Any]) -> None:
    """``manifest.json``: generator, version, ``fields`` (seed, sizes, ...) and every file's size and SHA-256."""
    files = {rel: {"size": (folder / rel).stat().st_size, "sha256": sha256(folder / rel)} for rel in tree_files(folder)}
    manifest = {
        "generator": spec.generator,
        "version": spec.version,
        **fields,
        "files_sha256": files_digest(files),
        "files": files,
    }
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def verify_manifest(
    spec: CorpusSpec, root: str | os.PathLike, expect: Callable[[dict, Path], list[str]], full: bool
) -> list[str]:
    """The problems of a corpus folder against its manifest (empty: intact). ``expect(manifest, path)`` lists the
    corpus's own mismatches (seed, sizes); the text files are re-hashed, the wavs only with ``full``."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        return [f"{root}: folder not found"]
    if not path.is_file():
        return [f"{path}: manifest missing (corpus incomplete or not a privemo {spec.name} corpus)"]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{path}: unreadable manifest ({exc.__class__.__name__})"]
    problems = []
    if manifest.get("generator") != spec.generator or manifest.get("version") != spec.version:
        problems.append(f"{path}: generator/version {manifest.get('generator')}/{manifest.get('version')}, "
                        f"expected {spec.generator}/{spec.version}")
    problems.extend(expect(manifest, path))
    if files_digest(files) != manifest.get("files_sha256"):
        problems.append(f"{path}: manifest checksum mismatch (manifest edited)")
    present = set(tree_files(root))
    listed = set(files)
    for rel in sorted(listed - present)[:5]:
        problems.append(f"{root / rel}: missing")
    for rel in sorted(present - listed)[:5]:
        problems.append(f"{root / rel}: not in the manifest")
    for rel in sorted(listed & present):
        entry = files[rel]
        file = root / rel
        if file.stat().st_size != entry.get("size"):
            problems.append(f"{file}: size {file.stat().st_size}, expected {entry.get('size')}")
        elif (full or not rel.endswith(".wav")) and sha256(file) != entry.get("sha256"):
            problems.append(f"{file}: checksum mismatch")
        if len(problems) >= 20:
            break
    return problems


def manifest_matches(spec: CorpusSpec, root: Path, fields: dict[str, Any]) -> bool:
    """True if ``root`` has a manifest of this generator and version with these ``fields`` (nothing re-checked)."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest.get("generator") == spec.generator and manifest.get("version") == spec.version
            and all(manifest.get(k) == v for k, v in fields.items()))


# ---------------------------------------------------------------------------------------------------------------------
# Building.


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """An exclusive lock on ``<parent>/.<name>.lock`` so that two processes do not build the same corpus at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    lock_path = root.parent / f".{root.name}.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def is_ours(spec: CorpusSpec, root: Path) -> bool:
    """True if ``root`` may be (re)built: absent, empty, or recognisably such a corpus (manifest, marker, name)."""
    if not root.exists():
        return True
    if not root.is_dir():
        return False
    if (root / MANIFEST).is_file() or (root / spec.marker).is_file() or not any(root.iterdir()):
        return True
    return re.fullmatch(spec.folder_pattern, root.name) is not None


def build(
    spec: CorpusSpec,
    root: Path,
    *,
    seed: int,
    speakers: list[dict],
    worker: Callable[[tuple[dict, str]], list[dict]],
    write_text_files: Callable[[Path, dict[str, dict]], None],
    fields: dict[str, Any],
    progress: bool,
    n_jobs: int,
) -> None:
    """Synthesise the corpus into a temporary sibling of ``root`` and rename it into place when complete.

    ``speakers`` are the worker's tasks in the order they are handed out (each with its ``utterances``); ``worker``
    renders one of them under the folder it is given and returns one dict per utterance (``utterance_id`` first);
    ``write_text_files(folder, rendered)`` then writes the label files, and the manifest records ``fields`` and
    ``n_utterances``.
    """
    from tqdm import tqdm

    n_total = sum(len(sp["utterances"]) for sp in speakers)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / spec.marker).write_text(f"privemo {spec.name} corpus, seed {seed}, version {spec.version}\n",
                                       encoding="utf-8")
        rendered: dict[str, dict] = {}
        tasks = [(sp, str(tmp)) for sp in speakers]
        bar = tqdm(total=n_total, desc=f"privemo: synthesising {spec.name} corpus (seed {seed})", unit="utt",
                   file=sys.stderr, disable=not progress)
        try:
            # forkserver (spawn where unavailable): fresh processes without fork()ing a parent that may run threads
            # (TensorFlow); the server imports the worker's modules once, not every (per-speaker) child. The pool
            # never re-runs the caller's script (privemo._util.processes), so a script without a main guard works.
            with worker_pool(max(1, min(n_jobs, len(tasks))), method="forkserver", maxtasksperchild=1,
                             preload=[worker.__module__, "privemo.corpora._espeak", "soxr", "scipy.fft"]) as pool:
                for results in pool.imap_unordered(worker, tasks):
                    for r in results:
                        rendered[r["utterance_id"]] = r
                    bar.update(len(results))
        finally:
            bar.close()
        write_text_files(tmp, rendered)
        write_manifest(spec, tmp, {**fields, "n_utterances": n_total})
        old = None
        if root.exists():
            old = root.parent / f".{root.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(root, old)
        os.replace(tmp, root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure(
    spec: CorpusSpec,
    root: Path,
    *,
    verify: str,
    fields: dict[str, Any],
    check: Callable[[bool], list[str]],
    make: Callable[[], None],
) -> Path:
    """Make sure an intact corpus is at ``root``: checked as ``verify`` says ("none": the manifest names the same
    ``fields``; otherwise ``check(full)`` finds no problem), else (re)built by ``make`` under the lock."""

    def intact() -> bool:
        if verify == "none":
            return manifest_matches(spec, root, fields)
        return not check(verify == "full")

    if intact():
        return root
    if not is_ours(spec, root):
        raise CorpusFormatError(
            f"{spec.name}: {root} exists, is not empty and is not a privemo {spec.name} corpus (no {MANIFEST}); refusing "
            "to overwrite it. Pass another root, or remove the folder."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    with locked(root):
        if intact():  # another process built it while we waited for the lock
            return root
        make()
    return root
