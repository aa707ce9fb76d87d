"""Acoustic features of a whole corpus: 40 log Mel filterbank energies (``privemo.features.logmel``), cached, in parallel.

``log_mfb`` is a pure function of one waveform. ``extract_acoustic`` wraps it for a whole utterance table: it runs
over the available cores in worker processes, shows a progress bar, and keeps the result in an on-disk cache
(``cache.py``) keyed by corpus, file content and every feature parameter; the result is memory-mapped, so an
IEMOCAP-sized corpus (~4.3 M frames, ~690 MB) is never held in memory. ``AcousticFeatures.normalized`` gives
z-normalised views (``privemo.features.normalization``: per speaker, per utterance, or global statistics fitted on
training rows only).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .._util.io import atomic_write_json
from .._util.processes import available_cpus, process_pool
from .normalization import NORMALIZATIONS, NormalizedFeatures, normalize  # noqa: F401  (importable from here)
from .cache import FileDigests, ShardStore, chunks, default_cache_dir, params_key, safe_name, write_shard
from .logmel import (  # noqa: F401  (the front end's names stay importable from here)
    FEATURE_VERSION,
    HOP_LENGTH_MS,
    LOG_FLOOR,
    MAX_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    STD_FLOOR,
    WIN_LENGTH_MS,
    _analysis,
    _check_positive,
    _set_analysis,
    feature_params,
    frame_count,
    load_audio,
    log_mfb,
)

CHUNK_SIZE = 64  # utterances per cache shard: a killed run loses at most one in-flight chunk per worker
SERIAL_BELOW_BYTES = 16 << 20  # with n_jobs=None, less audio than this (~9 min of 16-bit 16 kHz) is done in-process
COMPACT_ABOVE = 4  # a table spread over more shards than this is copied into one memory-mapped file


def _extract_chunk(root: str, items: list[tuple[str, str]], params: dict, mel: np.ndarray | None = None) -> dict:
    """Worker: features of ``items`` [(key, wav path)], committed as one shard; returns the shard manifest.

    ``mel`` is the parent's Mel filter bank (dense), so that the worker need not import librosa.
    """
    if mel is not None:
        _set_analysis((SAMPLE_RATE, params["n_mels"], params["win_length"], params["n_fft"]), mel)
    arrays = []
    seconds = 0.0
    for _, path in items:
        y, sr = load_audio(path)
        seconds += len(y) / sr
        try:
            arrays.append(
                log_mfb(
                    y,
                    sr,
                    n_mels=params["n_mels"],
                    win_length_ms=params["win_length_ms"],
                    hop_length_ms=params["hop_length_ms"],
                )
            )
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    manifest = write_shard(root, [k for k, _ in items], arrays, params["n_mels"])
    manifest["audio_seconds"] = seconds
    return manifest


def extract_acoustic(
    table: pd.DataFrame,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
    max_frames: int | None = None,
    n_mels: int = N_MELS,
    win_length_ms: float = WIN_LENGTH_MS,
    hop_length_ms: float = HOP_LENGTH_MS,
    chunk_size: int = CHUNK_SIZE,
    after_chunk: Callable[[int], None] | None = None,
) -> "AcousticFeatures":
    """Log-MFB features of every row of an utterance table, from the on-disk cache or computed in parallel.

    The cache is keyed by corpus (``table.attrs["corpus"]``), by the digest of each wav file's bytes and by every
    feature parameter: a changed file or parameter misses; a run killed mid-way keeps every chunk it had committed, and
    the next run computes only the rest (partially written files are never read). A table whose features are spread
    over more than ``COMPACT_ABOVE`` shards is compacted into one memory-mapped file.

    Args:
        table: utterance table (``privemo.corpora``); uses ``wav_path`` and ``utterance_id``.
        cache_dir: cache folder; default ``$PRIVEMO_CACHE/features`` or ``~/.cache/privemo/features``.
        n_jobs: worker processes; default all available cores (in-process when there is less than
            ``SERIAL_BELOW_BYTES`` of audio to compute); 1 computes in this process. Workers are forked, or started from a
            fork server once TensorFlow (or torch, jax) is loaded in this process (a second or two of start-up); they
            never re-run the caller's script, so no ``if __name__ == "__main__"`` guard is needed.
        progress: show a tqdm progress bar on stderr while computing.
        max_frames: keep at most this many frames of each utterance (the first ones) when indexing the result; None
            keeps all (the pipeline caps at ``MAX_FRAMES`` by default).
        n_mels, win_length_ms, hop_length_ms: feature parameters, see ``log_mfb``.
        chunk_size: utterances per cache shard (the unit of work and of recovery after a kill).
        after_chunk: called with the number of committed chunks after each one (progress hooks, fault-injection tests).

    Returns:
        AcousticFeatures: ``len``, ``feats[i]`` -> float32 (frames_i, n_mels), ``.lengths``, ``.normalized(...)``.
    """
    paths = _check_extraction(table, n_jobs, chunk_size, max_frames)
    params = feature_params(n_mels=n_mels, win_length_ms=win_length_ms, hop_length_ms=hop_length_ms)
    t_start = time.perf_counter()
    corpus = table.attrs.get("corpus") or "unnamed"
    corpus_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    corpus_dir = corpus_dir / safe_name(corpus)
    store = ShardStore(corpus_dir / f"logmfb-{params_key(params)}", width=params["n_mels"])
    params_file = store.root / "params.json"
    if not params_file.exists():
        atomic_write_json(params_file, params)
    auto_jobs = n_jobs is None
    n_jobs = int(n_jobs) if n_jobs is not None else available_cpus()
    keys = FileDigests(corpus_dir / "file_digests.json").digests(paths, n_threads=max(2, n_jobs))
    index = store.scan()

    todo: dict[str, str] = {}
    for key, path in zip(keys, paths):
        if key not in index and key not in todo:
            todo[key] = path
    stats = {"n_utterances": len(paths), "n_cached": sum(k in index for k in keys), "n_computed": 0}
    stats["audio_seconds"] = 0.0
    if todo:
        items = list(todo.items())
        if auto_jobs and sum(os.path.getsize(p) for _, p in items) < SERIAL_BELOW_BYTES:
            n_jobs = 1  # a few minutes of audio: computing it here is faster than starting worker processes
        # enough chunks to keep every worker busy, never more than chunk_size utterances each
        size = max(1, min(int(chunk_size), math.ceil(len(items) / (4 * n_jobs))))
        work = list(chunks(items, size))
        for manifest in _run_chunks(store.root, work, params, n_jobs, progress, len(items), after_chunk):
            stats["n_computed"] += len(manifest["keys"])
            stats["audio_seconds"] += manifest["audio_seconds"]
        index = store.scan()
    lost = [k for k in keys if k not in index]
    if lost:  # cannot happen unless the cache folder was edited while this ran
        raise RuntimeError(f"feature cache {store.root}: {len(lost)} utterance(s) vanished during extraction; rerun")
    if len({index[k][0] for k in keys}) > COMPACT_ABOVE:
        index = store.compact(keys, index)
    stats["seconds"] = time.perf_counter() - t_start
    ids = list(map(str, table["utterance_id"]))
    return AcousticFeatures._from_store(store, index, keys, ids, params, max_frames, stats)


def _check_extraction(table: pd.DataFrame, n_jobs, chunk_size, max_frames) -> list[str]:
    """The table's wav paths, after checking the arguments of ``extract_acoustic`` and that every row has a path."""
    if not isinstance(table, pd.DataFrame) or "wav_path" not in table or "utterance_id" not in table:
        raise ValueError(
            "Invalid value received for argument `table`. Expected an utterance table (pandas.DataFrame with columns "
            f"`utterance_id` and `wav_path`, see privemo.corpora). Received: {type(table).__name__}"
        )
    if n_jobs is not None:
        _check_positive("n_jobs", n_jobs, integer=True)
    _check_positive("chunk_size", chunk_size, integer=True)
    if max_frames is not None:
        _check_positive("max_frames", max_frames, integer=True)
    paths = [str(p) for p in table["wav_path"]]
    missing_path = [i for i, p in enumerate(paths) if not p or p == "None" or p == "nan"]
    if missing_path:
        ids = list(table["utterance_id"].iloc[missing_path[:3]])
        corpus = table.attrs.get("corpus") or "unnamed"
        raise ValueError(f"{corpus}: {len(missing_path)} row(s) have no wav_path, e.g. {ids}")
    return paths


def _run_chunks(root, work, params, n_jobs, progress, total, after_chunk):
    """Compute chunks in this process (n_jobs=1 or one chunk) or in a process pool; yield manifests."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="log-MFB features", unit="utt", file=sys.stderr, disable=not progress, leave=False)
    done = 0
    try:
        if n_jobs == 1 or len(work) == 1:
            for items in work:
                manifest = _extract_chunk(str(root), items, params)
                done += 1
                bar.update(len(items))
                if after_chunk is not None:
                    after_chunk(done)
                yield manifest
            return
        # fork where it is safe (fast start); once a threaded ML runtime such as TensorFlow is loaded, a fork server
        # (spawn where unavailable). Either way no worker re-runs the caller's script (privemo._util.processes).
        with process_pool(min(n_jobs, len(work)), method="auto", preload=["privemo.features.acoustic"]) as pool:
            mel = _analysis(SAMPLE_RATE, params["n_mels"], params["win_length"], params["n_fft"])[1].toarray()
            pending = {pool.submit(_extract_chunk, str(root), items, params, mel) for items in work}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        manifest = future.result()
                        done += 1
                        bar.update(len(manifest["keys"]))
                        if after_chunk is not None:
                            after_chunk(done)
                        yield manifest
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    finally:
        bar.close()


class AcousticFeatures(Sequence):
    """Raw (un-normalised) log-MFB features of an utterance table, memory-mapped from the cache.

    ``feats[i]`` is a float32 (frames_i, n_mels) array for row ``i`` of the table (read-only view of the cache),
    truncated to its first ``max_frames`` frames when ``max_frames`` is set; ``lengths`` are the (truncated) frame
    counts, ``raw_lengths`` the full ones. ``stats`` reports how many utterances came from the cache and how many
    were computed.
    """

    def __init__(
        self,
        arrays: list[np.ndarray],
        shard_paths: list[str],
        row_shard: np.ndarray,
        row_offset: np.ndarray,
        raw_lengths: np.ndarray,
        utterance_ids: list[str],
        params: dict,
        max_frames: int | None = None,
        stats: dict | None = None,
    ) -> None:
        self._arrays = arrays
        self._shard_paths = shard_paths
        self._row_shard = np.asarray(row_shard, dtype=np.int32)
        self._row_offset = np.asarray(row_offset, dtype=np.int64)
        self.raw_lengths = np.asarray(raw_lengths, dtype=np.int64)
        self.utterance_ids = list(utterance_ids)
        self.params = dict(params)
        self.max_frames = max_frames
        self.stats = dict(stats or {})
        self.lengths = self.raw_lengths if max_frames is None else np.minimum(self.raw_lengths, int(max_frames))

    @classmethod
    def _from_store(cls, store: ShardStore, index, keys, utterance_ids, params, max_frames, stats):
        names: dict[str, int] = {}
        arrays, shard_paths = [], []
        row_shard = np.empty(len(keys), np.int32)
        row_offset = np.empty(len(keys), np.int64)
        lengths = np.empty(len(keys), np.int64)
        for i, key in enumerate(keys):
            name, offset, length = index[key]
            if name not in names:
                names[name] = len(arrays)
                arrays.append(store.array(name))
                shard_paths.append(str(store.path(name)))
            row_shard[i], row_offset[i], lengths[i] = names[name], offset, length
        return cls(arrays, shard_paths, row_shard, row_offset, lengths, utterance_ids, params, max_frames, stats)

    @property
    def n_mels(self) -> int:
        return int(self.params["n_mels"])

    def __len__(self) -> int:
        return len(self.raw_lengths)

    def raw(self, i: int) -> np.ndarray:
        """All frames of row ``i``, ignoring ``max_frames``."""
        i = self._check_index(i)
        start = self._row_offset[i]
        return np.asarray(self._arrays[self._row_shard[i]][start : start + self.raw_lengths[i]])

    def __getitem__(self, i: int) -> np.ndarray:
        i = self._check_index(i)
        start = self._row_offset[i]
        return np.asarray(self._arrays[self._row_shard[i]][start : start + self.lengths[i]])

    def _check_index(self, i) -> int:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"AcousticFeatures indices must be integers (table positions). Received: {i!r}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} utterances")
        return int(i) % n

    def with_max_frames(self, max_frames: int | None) -> "AcousticFeatures":
        """The same features with another truncation length (no copy)."""
        if max_frames is not None:
            _check_positive("max_frames", max_frames, integer=True)
        return AcousticFeatures(
            self._arrays, self._shard_paths, self._row_shard, self._row_offset, self.raw_lengths, self.utterance_ids,
            self.params, max_frames, self.stats,
        )

    def normalized(
        self, table: pd.DataFrame, mode: str = "speaker", train_indices: np.ndarray | None = None
    ) -> "NormalizedFeatures":
        """A z-normalised view (mean 0, std 1 per Mel band), computed lazily per item with the same indexing.

        Args:
            table: the utterance table these features were extracted from (checked by utterance id).
            mode: "speaker": each speaker's statistics over all of that speaker's audio (test speakers included: their
                unlabelled audio is used, as is standard; rows with unknown speaker use their own statistics);
                "utterance": each utterance's own statistics, as ``privemo.encode`` normalises a wav file in
                deployment (no speaker's other audio needed); "global": one mean/std fitted on ``train_indices`` only.
            train_indices: table positions of the training rows; required for "global", ignored for "speaker".

        Statistics use every frame of each utterance (not only the first ``max_frames``).
        """
        if not isinstance(table, pd.DataFrame) or len(table) != len(self) or list(
            map(str, table["utterance_id"])
        ) != self.utterance_ids:
            raise ValueError(
                "Invalid value received for argument `table`. Expected the utterance table these features were "
                f"extracted from ({len(self)} rows, same utterance ids in the same order). Received: a different table"
            )
        return normalize(self, table, mode, train_indices)

    def __reduce__(self):  # pickle by file name, not by the memory-mapped data
        return (
            _reopen,
            (self._shard_paths, self._row_shard, self._row_offset, self.raw_lengths, self.utterance_ids, self.params,
             self.max_frames, self.stats),
        )

    def __repr__(self) -> str:
        return (
            f"AcousticFeatures({len(self)} utterances, {int(self.raw_lengths.sum())} frames x {self.n_mels}, "
            f"max_frames={self.max_frames})"
        )


def _reopen(shard_paths, row_shard, row_offset, raw_lengths, utterance_ids, params, max_frames, stats):
    arrays = [np.load(p, mmap_mode="r", allow_pickle=False) for p in shard_paths]
    return AcousticFeatures(
        arrays, shard_paths, row_shard, row_offset, raw_lengths, utterance_ids, params, max_frames, stats
    )
