"""The on-disk feature cache: hits, misses on changed parameters or files, recovery from killed or partial writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from privemo.features import cache
from privemo.features.acoustic import extract_acoustic, log_mfb
from privemo.features.cache import FileDigests, ShardStore, default_cache_dir, file_digest

from test_acoustic import make_table

ROOT = Path(__file__).resolve().parents[1]


def _store_dir(feats) -> Path:
    return Path(feats._shard_paths[0]).parent


def _committed(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("shard-*.json"))


def _assert_exact(feats, table) -> None:
    for i, path in enumerate(table["wav_path"]):
        y, sr = sf.read(path, dtype="float32")
        np.testing.assert_array_equal(feats[i], log_mfb(y, sr))


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVEMO_CACHE", str(tmp_path / "pc"))
    assert default_cache_dir() == tmp_path / "pc" / "features"
    monkeypatch.delenv("PRIVEMO_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "privemo" / "features"


def test_second_run_is_a_hit(tmp_path):
    table = make_table(tmp_path)
    first = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert first.stats["n_computed"] == len(table) and first.stats["n_cached"] == 0
    files = {p: p.stat().st_mtime_ns for p in _store_dir(first).iterdir()}
    second = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert second.stats["n_computed"] == 0 and second.stats["n_cached"] == len(table)
    assert {p: p.stat().st_mtime_ns for p in _store_dir(second).iterdir()} == files  # nothing rewritten
    _assert_exact(second, table)


def test_parameter_change_misses(tmp_path):
    table = make_table(tmp_path)
    base = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    for kwargs in ({"hop_length_ms": 20.0}, {"n_mels": 24}, {"win_length_ms": 30.0}):
        other = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, **kwargs)
        assert other.stats["n_computed"] == len(table), kwargs
        assert _store_dir(other) != _store_dir(base)
    assert extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False).stats["n_computed"] == 0


def test_changed_file_misses_and_corpus_namespaces(tmp_path):
    table = make_table(tmp_path)
    extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    path = table.loc[3, "wav_path"]
    y, sr = sf.read(path, dtype="float32")
    sf.write(path, np.roll(y, 7), sr, subtype="FLOAT")  # same size, new content
    again = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert again.stats["n_computed"] == 1
    np.testing.assert_array_equal(again[3], log_mfb(np.roll(y, 7), sr))
    other = table.copy()
    other.attrs["corpus"] = "another"
    renamed = extract_acoustic(other, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert renamed.stats["n_computed"] == len(table)


def test_file_digests_rehash_only_changed_files(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"y" * 1000)
    memo = FileDigests(tmp_path / "digests.json")
    da, db = memo.digests([a, b])
    assert da == file_digest(a) and da != db
    b.write_bytes(b"z" * 1000)
    os.utime(b, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert FileDigests(tmp_path / "digests.json").digests([a, b]) == [da, file_digest(b)]
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        memo.digests([tmp_path / "nope.wav"])


def test_exception_mid_run_keeps_finished_chunks(tmp_path):
    table = make_table(tmp_path)  # 12 utterances, chunks of 2

    def fail_after_two(done: int) -> None:
        if done == 2:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, chunk_size=2,
                         after_chunk=fail_after_two)
    resumed = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, chunk_size=2)
    assert resumed.stats["n_cached"] == 4 and resumed.stats["n_computed"] == len(table) - 4
    _assert_exact(resumed, table)


_KILLED_RUN = """
import os, signal, sys, pandas as pd
sys.path.insert(0, {root!r})
from privemo.features.acoustic import extract_acoustic
table = pd.read_pickle({table!r})
def kill(done):
    if done == 3:
        os.kill(os.getpid(), signal.SIGKILL)
extract_acoustic(table, cache_dir={cache!r}, n_jobs=1, progress=False, chunk_size=2, after_chunk=kill)
"""


def test_killed_process_resumes_without_redoing_work(tmp_path):
    table = make_table(tmp_path)
    table.to_pickle(tmp_path / "table.pkl")
    script = _KILLED_RUN.format(root=str(ROOT), table=str(tmp_path / "table.pkl"), cache=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = next((tmp_path / "cache" / "toy").glob("logmfb-*"))
    assert len(_committed(store)) == 3
    resumed = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, chunk_size=2)
    assert resumed.stats["n_cached"] == 6 and resumed.stats["n_computed"] == len(table) - 6
    _assert_exact(resumed, table)


def test_partial_files_are_never_read(tmp_path):
    table = make_table(tmp_path)
    first = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    store = _store_dir(first)
    keys = FileDigests(tmp_path / "cache" / "toy" / "file_digests.json").digests(list(table["wav_path"]))
    for p in _committed(store):  # start again from an empty store with only debris in it
        p.unlink()
    # 1. a data file killed during its write (temporary name) and 2. a renamed data file whose index never got written
    (store / ".shard-dead.npy.x1.tmp").write_bytes(b"\x93NUMPY partial")
    np.save(store / "shard-uncommitted.npy", np.full((5, 40), 7.0, np.float32))
    # 3. a committed index whose data file is damaged (truncated): must be discarded, not read
    np.save(store / "shard-truncated.npy", np.zeros((1000, 40), np.float32))
    with open(store / "shard-truncated.npy", "r+b") as fh:
        fh.truncate(2000)
    manifest = {"format": cache.SHARD_FORMAT, "keys": keys[:2], "lengths": [500, 500], "width": 40}
    (store / "shard-truncated.json").write_text(json.dumps(manifest))
    # 4. a committed index that is not valid JSON
    (store / "shard-badjson.json").write_text('{"format": 1, "keys": [')

    again = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert again.stats["n_computed"] == len(table)
    _assert_exact(again, table)
    assert not (store / "shard-truncated.json").exists() and not (store / "shard-badjson.json").exists()
    # young debris may belong to a run still writing, so it stays; once stale it is removed
    assert (store / ".shard-dead.npy.x1.tmp").exists() and (store / "shard-uncommitted.npy").exists()
    old = time.time() - cache.ORPHAN_AGE_S - 60
    for name in (".shard-dead.npy.x1.tmp", "shard-uncommitted.npy"):
        os.utime(store / name, (old, old))
    ShardStore(store, 40).scan()
    assert not (store / ".shard-dead.npy.x1.tmp").exists() and not (store / "shard-uncommitted.npy").exists()


def test_many_chunks_are_compacted_into_one_file(tmp_path):
    table = make_table(tmp_path)
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, chunk_size=1)
    store = _store_dir(feats)
    assert len(_committed(store)) == 1 and len(list(store.glob("*.npy"))) == 1
    assert len(set(feats._shard_paths)) == 1
    _assert_exact(feats, table)
    subset = table.iloc[:5].copy()
    subset.attrs["corpus"] = "toy"
    part = extract_acoustic(subset, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert part.stats["n_computed"] == 0
    _assert_exact(part, subset)


def test_shard_store_roundtrip(tmp_path):
    store = ShardStore(tmp_path / "s", width=3)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(9, dtype=np.float32).reshape(3, 3) + 100
    store.write(["ka", "kb"], [a, b])
    store.write(["kc"], [a * 2])
    index = store.scan()
    assert set(index) == {"ka", "kb", "kc"}
    name, start, length = index["kb"]
    np.testing.assert_array_equal(store.array(name)[start : start + length], b)
    compacted = store.compact(["kc", "ka", "kb"], index)
    assert len({v[0] for v in compacted.values()}) == 1 and len(list((tmp_path / "s").glob("*.npy"))) == 1
    name, start, length = compacted["kc"]
    np.testing.assert_array_equal(store.array(name)[start : start + length], a * 2)


@pytest.mark.parametrize("keep", [0, 60, "half"])  # emptied, cut inside the .npy header, cut inside the data
def test_a_truncated_cache_file_is_rebuilt_not_read(tmp_path, keep):
    table = make_table(tmp_path)
    first = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    data = sorted(_store_dir(first).glob("shard-*.npy"))[0]  # one committed shard of several
    n_keys = len(json.loads(data.with_suffix(".json").read_text())["keys"])
    with open(data, "r+b") as fh:
        fh.truncate(data.stat().st_size // 2 if keep == "half" else keep)
    again = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert again.stats["n_computed"] == n_keys and again.stats["n_cached"] == len(table) - n_keys
    _assert_exact(again, table)
    assert not data.exists() and not data.with_suffix(".json").exists()  # the damaged shard is gone, not read


def test_a_full_disk_stops_the_extraction_with_one_line_and_damages_nothing(tmp_path, monkeypatch):
    import errno

    import privemo._util.io
    from privemo._util.io import WriteError

    table = make_table(tmp_path)
    head = table.iloc[:4].copy()
    head.attrs["corpus"] = "toy"
    extract_acoustic(head, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, chunk_size=2)
    store = _store_dir(extract_acoustic(head, cache_dir=tmp_path / "cache", n_jobs=1, progress=False))
    before = {p.name: p.read_bytes() for p in store.iterdir()}
    real = np.save

    def disk_full(*args, **kwargs):  # the injected fault: the shard's data write finds no space
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache.np, "save", disk_full)
    with pytest.raises(WriteError) as info:
        extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, chunk_size=2)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(store / "shard-")) and "No space left on device" in message
    assert info.value.errno == errno.ENOSPC
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before  # no temporary file, nothing rewritten
    # the index written through privemo's atomic-write layer fails the same way, and leaves the store as it was
    monkeypatch.setattr(cache.np, "save", real)
    monkeypatch.setattr(privemo._util.io, "_write_file", lambda path, data: disk_full())
    with pytest.raises(WriteError, match=r"shard-.*\.json: cannot write: No space left on device"):
        extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, chunk_size=2)
    assert {p.name for p in store.iterdir() if p.suffix == ".json"} == {n for n in before if n.endswith(".json")}
    monkeypatch.undo()  # space again: the same call finishes, from what was committed
    feats = extract_acoustic(table, cache_dir=tmp_path / "cache", n_jobs=1, progress=False, chunk_size=2)
    assert feats.stats["n_cached"] == 4 and feats.stats["n_computed"] == len(table) - 4
    _assert_exact(feats, table)
