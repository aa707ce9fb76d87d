"""Faults a long run survives (issue 27): no progress bar before a one-line error, ``--resume`` with other settings
refused before any feature is extracted, a saved network never left half-written, and a small version of
``benchmarks/faults.py`` (SIGINT, a full disk, a truncated cache file; each then ``--resume``) whose final tables equal
those of an uninterrupted run."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from privemo._io import WriteError, atomic_write_json
from privemo._validation import UserError
from privemo.experiment import ExperimentConfig
from privemo.experiment.config import run_settings, work_dir

ROOT = Path(__file__).resolve().parents[1]


def test_quiet_run_synthesises_the_demo_corpus_without_a_progress_bar(tmp_path, monkeypatch, capfd):
    from privemo.experiment.plan import plan_run

    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path / "data"))  # empty: the corpus is synthesised now
    config = ExperimentConfig(demo_per_speaker=2, n_folds=2, verbose=0, out_dir=str(tmp_path / "out"))
    table = plan_run(config)[0]
    assert len(table) == 20
    assert capfd.readouterr().err == ""


def test_resume_with_other_settings_fails_before_the_features(tmp_path, monkeypatch):
    """The settings check comes before feature extraction: with an empty feature cache nothing is computed."""
    from privemo.experiment.protocol import run_cross_validation

    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PRIVEMO_CACHE", str(tmp_path / "cache"))
    common = dict(demo_per_speaker=2, n_folds=2, folds=(0,), modalities=("acoustic",), tasks=("activation",),
                  adversaries=(None,), verbose=0, out_dir=str(tmp_path / "out"))
    earlier = ExperimentConfig(epochs=1, **common)
    atomic_write_json(work_dir(earlier) / "settings.json", run_settings(earlier))
    with pytest.raises(UserError, match=r"settings\.json: cannot resume: .*epochs: 1 there, 2 now"):
        run_cross_validation(ExperimentConfig(epochs=2, resume=True, **common))
    assert not (tmp_path / "cache" / "features").exists()


@pytest.mark.parametrize("fault", ["disk full", "interrupted"])
def test_a_saved_network_is_never_left_half_written(tmp_path, fault):
    import keras

    from privemo.experiment.fold import save_model

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    saved = tmp_path / "models" / "c" / "fold0.keras"
    save_model(model, saved)
    before = saved.read_bytes()
    real_save = model.save

    def cut_short(path, *args, **kwargs):  # the injected fault: the save writes part of the file, then fails
        real_save(path, *args, **kwargs)
        with open(path, "r+b") as fh:
            fh.truncate(100)
        if fault == "disk full":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise KeyboardInterrupt

    model.save = cut_short
    with pytest.raises(WriteError if fault == "disk full" else KeyboardInterrupt) as info:
        save_model(model, saved)
    if fault == "disk full":
        assert str(info.value).startswith(f"{saved}: cannot write: No space left on device.")
    assert [p.name for p in saved.parent.iterdir()] == ["fold0.keras"]  # no partial file beside it
    assert saved.read_bytes() == before


def _benchmark():
    """benchmarks/faults.py as a module (the table comparison the benchmark reports)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("faults_benchmark", ROOT / "benchmarks" / "faults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_fault_run_a_full_disk_then_resume_on_a_damaged_cache_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """benchmarks/faults.py's (d) and (e), small and in one process: from the middle of the run every write through
    privemo's atomic-write layer fails with ENOSPC (the injected fault); the run stops with one WriteError naming the
    file and leaves no temporary file; a feature shard is then truncated; ``--resume`` with space again rebuilds the
    shard, trains only what had not finished and writes tables byte-identical to an uninterrupted run's."""
    import shutil

    import privemo._io
    from privemo.experiment import run

    bench = _benchmark()
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PRIVEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")

    def config(out, **kw):
        return ExperimentConfig(modalities=("acoustic",), tasks=("activation",), adversaries=(None,), folds=(0,),
                                epochs=1, patience=1, n_jobs=1, attack_epochs=2, demo_per_speaker=6, verbose=0,
                                out_dir=str(out), **kw)

    real, writes = privemo._io._write_file, []

    def counted(path, data):
        writes.append(path)
        return real(path, data)

    monkeypatch.setattr(privemo._io, "_write_file", counted)
    run(config(tmp_path / "reference"))
    limit = len(writes) // 2  # the disk fills up half-way through the run's writes
    writes.clear()

    def disk_full_from_the_middle(path, data):  # the injected fault
        writes.append(path)
        if len(writes) >= limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    out = tmp_path / "faulted"
    monkeypatch.setattr(privemo._io, "_write_file", disk_full_from_the_middle)
    with pytest.raises(WriteError) as info:
        run(config(out))
    assert str(info.value).startswith(f"{writes[limit - 1]}: cannot write: No space left on device.")
    assert "\n" not in str(info.value) and not list(out.rglob("*.tmp"))
    completed = bench.completed_trials(out)

    # a truncated cache file, then the resume
    [shard, *_] = sorted((tmp_path / "cache" / "features").glob("*/logmfb-*/shard-*.npy"))
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)
    monkeypatch.setattr(privemo._io, "_write_file", real)
    run(config(out, resume=True))
    assert not shard.exists()  # rebuilt, not read
    assert bench.lost_trials(completed, out) == 0
    assert bench.tables(out) and bench.differing(out, tmp_path / "reference") == []
