"""On-disk feature cache: content digests of audio files and a store of feature shards that survives being killed.

Layout under the cache folder (``default_cache_dir()``)::

    <corpus>/file_digests.json          path -> [size, mtime_ns, digest]; a changed size or mtime means re-hashing
    <corpus>/<feature-key>/params.json  the feature parameters behind <feature-key> (for people; the key is their hash)
    <corpus>/<feature-key>/<shard>.npy  float32 (rows, width): the frames of several utterances, one after the other
    <corpus>/<feature-key>/<shard>.json {"keys": [digest, ...], "lengths": [...]}: the shard's index and commit marker

Every file is written under a temporary name and renamed into place, and a shard's ``.json`` is written only after its
``.npy``. A process killed at any point therefore leaves either a committed shard or files that readers ignore
(temporary names, or an ``.npy`` without its ``.json``); those are deleted once they are older than ``ORPHAN_AGE_S``.
A full disk or an unwritable cache folder stops the extraction with ``privemo._util.io.WriteError`` naming the file,
after removing its temporary file. A shard damaged on disk (its data file truncated, emptied or of another shape than
its index says) is found when the store is scanned, deleted, and its utterances computed again; it is never read.
Utterances are keyed by the digest of their file's bytes, so a changed file misses, a renamed or copied one hits, and
the feature parameters select the folder, so a changed parameter misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._util.io import atomic_write_json, writing

CACHE_ENV = "PRIVEMO_CACHE"
SHARD_FORMAT = 1
# Temporary and uncommitted files younger than this may belong to a run still writing them; older ones are removed.
ORPHAN_AGE_S = 3600.0
_DIGEST_BLOCK = 1 << 20


def default_cache_dir() -> Path:
    """``$PRIVEMO_CACHE/features``, or ``~/.cache/privemo/features`` when the variable is unset."""
    root = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "privemo")
    return Path(root).expanduser() / "features"


def safe_name(name: str) -> str:
    """A folder name made from ``name`` (corpus names such as "msp-podcast" pass unchanged)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return cleaned or "unnamed"


def params_key(params: dict) -> str:
    """A short stable hash of a JSON-serialisable parameter dict (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b-128 hex digest of a file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(_DIGEST_BLOCK):
            h.update(block)
    return h.hexdigest()


class FileDigests:
    """Content digests of files, remembered with each file's size and mtime so unchanged files are not read again.

    A file whose size or modification time differs from the remembered one is hashed again, so an edited file gets a new
    digest (and misses the feature cache) even when its path is the same.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._memo: dict[str, list] = {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                loaded = json.load(fh)
            if isinstance(loaded, dict):
                self._memo = loaded
        except (OSError, ValueError):
            self._memo = {}

    def digests(self, paths: Sequence[str | os.PathLike], *, n_threads: int = 4) -> list[str]:
        """Digest of each path (in order). Raises FileNotFoundError naming the first missing file."""
        keys = [os.path.abspath(p) for p in paths]
        stats: dict[str, tuple[int, int]] = {}
        for key in dict.fromkeys(keys):
            try:
                st = os.stat(key)
            except FileNotFoundError:
                raise FileNotFoundError(f"{key}: audio file not found") from None
            stats[key] = (st.st_size, st.st_mtime_ns)
        todo = [k for k, (size, mtime) in stats.items() if self._memo.get(k, [None, None])[:2] != [size, mtime]]
        if todo:
            # hashlib releases the GIL on large buffers, so threads hash files in parallel.
            with ThreadPoolExecutor(max_workers=max(1, n_threads)) as pool:
                for key, digest in zip(todo, pool.map(file_digest, todo)):
                    self._memo[key] = [*stats[key], digest]
            atomic_write_json(self.path, self._memo)
        return [self._memo[k][2] for k in keys]


class ShardStore:
    """A folder of committed feature shards; maps an utterance key (content digest) to where its frames are.

    Args:
        root: the folder for one feature-parameter set.
        width: values per frame (e.g. 40 Mel bands); shards of another width are rejected.
    """

    def __init__(self, root: str | os.PathLike, width: int) -> None:
        self.root = Path(root)
        self.width = int(width)
        with writing(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
        self._arrays: dict[str, np.ndarray] = {}

    # -- reading ---------------------------------------------------------------------------------------------------
    def scan(self) -> dict[str, tuple[str, int, int]]:
        """key -> (shard name, first row, number of rows) over every committed, readable shard.

        Removes stale orphans (see ``ORPHAN_AGE_S``) and shards whose data file does not match its index.
        """
        self._remove_orphans()
        index: dict[str, tuple[str, int, int]] = {}
        for manifest_path in sorted(self.root.glob("*.json")):
            if manifest_path.name == "params.json":
                continue
            name = manifest_path.stem
            manifest = self._read_manifest(manifest_path)
            if manifest is None or self.array(name) is None:
                continue
            offset = 0
            for key, length in zip(manifest["keys"], manifest["lengths"]):
                index.setdefault(key, (name, offset, int(length)))
                offset += int(length)
        return index

    def array(self, name: str) -> np.ndarray | None:
        """The memory-mapped data of shard ``name``; None (and the shard removed) if it is missing or damaged."""
        if name in self._arrays:
            return self._arrays[name]
        manifest = self._read_manifest(self.root / f"{name}.json")
        if manifest is None:
            return None
        try:
            data = np.load(self.root / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):  # missing, truncated (shorter than its header says) or empty
            data = None
        rows = int(sum(manifest["lengths"]))
        if data is None or data.dtype != np.float32 or data.shape != (rows, self.width):
            self._discard(name)
            return None
        self._arrays[name] = data
        return data

    def path(self, name: str) -> Path:
        return self.root / f"{name}.npy"

    def _read_manifest(self, path: Path) -> dict | None:
        try:
            with open(path, encoding="utf-8") as fh:
                manifest = json.load(fh)
            if manifest.get("format") != SHARD_FORMAT or len(manifest["keys"]) != len(manifest["lengths"]):
                raise ValueError("bad manifest")
            return manifest
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._discard(path.stem)
            return None

    def _discard(self, name: str) -> None:
        self._arrays.pop(name, None)
        for suffix in (".json", ".npy"):  # the index first: without it the data file is ignored
            try:
                (self.root / f"{name}{suffix}").unlink(missing_ok=True)
            except OSError:  # e.g. still memory-mapped on Windows; removed as an orphan later
                pass

    def _remove_orphans(self) -> None:
        now = time.time()
        committed = {p.stem for p in self.root.glob("*.json")}
        for path in self.root.iterdir():
            stale = path.name.endswith(".tmp") or (path.suffix == ".npy" and path.stem not in committed)
            if not stale:
                continue
            try:
                if now - path.stat().st_mtime > ORPHAN_AGE_S:
                    path.unlink()
            except FileNotFoundError:
                pass

    # -- writing ---------------------------------------------------------------------------------------------------
    def write(self, keys: Sequence[str], arrays: Sequence[np.ndarray]) -> dict:
        """Commit one shard holding ``arrays`` (each (frames_i, width)) under ``keys``; returns its manifest."""
        return write_shard(self.root, keys, arrays, self.width)

    def compact(self, keys: Sequence[str], index: dict[str, tuple[str, int, int]]) -> dict[str, tuple[str, int, int]]:
        """Copy the frames of ``keys`` (each once, in order) into one new shard; delete the shards this makes redundant.

        Keeps memory bounded: rows are copied one utterance at a time into a memory-mapped output file.
        Returns the updated index.
        """
        unique = list(dict.fromkeys(keys))
        lengths = [index[k][2] for k in unique]
        name = _new_name()
        final = self.root / f"{name}.npy"
        tmp = None
        try:
            with writing(final):
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.npy.", suffix=".tmp", dir=self.root)
                os.close(fd)
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(int(sum(lengths)), self.width))
                row = 0
                for key, length in zip(unique, lengths):
                    shard, start, _ = index[key]
                    out[row : row + length] = self.array(shard)[start : start + length]
                    row += length
                out.flush()
                del out
                _fsync(tmp)
                os.replace(tmp, final)
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise
        manifest = {"format": SHARD_FORMAT, "keys": unique, "lengths": lengths, "width": self.width}
        atomic_write_json(self.root / f"{name}.json", manifest)
        covered = set(unique)
        old = {index[k][0] for k in unique}
        for shard in old:
            shard_manifest = self._read_manifest(self.root / f"{shard}.json")
            if shard_manifest is not None and set(shard_manifest["keys"]) <= covered:
                self._discard(shard)
        return self.scan()


def write_shard(root: str | os.PathLike, keys: Sequence[str], arrays: Sequence[np.ndarray], width: int) -> dict:
    """Write one shard atomically: the ``.npy`` under a temporary name, renamed, then its ``.json`` (the commit)."""
    root = Path(root)
    if len(keys) != len(arrays):
        raise ValueError(f"write_shard: {len(keys)} keys for {len(arrays)} arrays")
    data = np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1, width) for a in arrays], axis=0)
    name = _new_name()
    tmp = None
    try:
        with writing(root / f"{name}.npy"):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.npy.", suffix=".tmp", dir=root)
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, data, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, root / f"{name}.npy")
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    manifest = {"format": SHARD_FORMAT, "keys": list(keys), "lengths": [int(len(a)) for a in arrays], "width": width}
    atomic_write_json(root / f"{name}.json", manifest)
    manifest["name"] = name
    return manifest


def _new_name() -> str:
    return f"shard-{time.time_ns():x}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
