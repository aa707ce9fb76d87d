"""Faults a long run survives (issue 27): no progress bar before a one-line error, ``--resume`` with other settings
refused before any feature is extracted, a saved network never left half-written, and a small version of
``benchmarks/faults.py`` (SIGINT, a full disk, a truncated cache file; each then ``--resume``) whose final tables equal
those of an uninterrupted run."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from privemo._util.io import WriteError, atomic_write_json
from privemo._util.validation import UserError
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

    import privemo._util.io
    from privemo.experiment import run

    bench = _benchmark()
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PRIVEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")

    def config(out, **kw):
        return ExperimentConfig(modalities=("acoustic",), tasks=("activation",), adversaries=(None,), folds=(0,),
                                epochs=1, patience=1, n_jobs=1, attack_epochs=2, demo_per_speaker=6, verbose=0,
                                out_dir=str(out), **kw)

    real, writes = privemo._util.io._write_file, []

    def counted(path, data):
        writes.append(path)
        return real(path, data)

    monkeypatch.setattr(privemo._util.io, "_write_file", counted)
    run(config(tmp_path / "reference"))
    limit = len(writes) // 2  # the disk fills up half-way through the run's writes
    writes.clear()

    def disk_full_from_the_middle(path, data):  # the injected fault
        writes.append(path)
        if len(writes) >= limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    out = tmp_path / "faulted"
    monkeypatch.setattr(privemo._util.io, "_write_file", disk_full_from_the_middle)
    with pytest.raises(WriteError) as info:
        run(config(out))
    assert str(info.value).startswith(f"{writes[limit - 1]}: cannot write: No space left on device.")
    assert "\n" not in str(info.value) and not list(out.rglob("*.tmp"))
    completed = bench.completed_trials(out)

    # a truncated cache file, then the resume
    [shard, *_] = sorted((tmp_path / "cache" / "features").glob("*/logmfb-*/shard-*.npy"))
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)
    monkeypatch.setattr(privemo._util.io, "_write_file", real)
    run(config(out, resume=True))
    assert not shard.exists()  # rebuilt, not read
    assert bench.lost_trials(completed, out) == 0
    assert bench.tables(out) and bench.differing(out, tmp_path / "reference") == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras-tuner, when the late worker finds its trial scored
def test_a_trial_whose_worker_stops_reporting_is_handed_to_another_worker_and_the_late_report_is_ignored(
        tmp_path, monkeypatch):
    """Trial leases over keras-tuner's real gRPC chief: worker tuner0 takes a trial and falls silent (a dead worker,
    as far as the chief can tell); after the trial timeout the chief hands the same trial to tuner1, which finishes
    the grid alone; tuner0's report, when it comes at last, is ignored. The trials equal a single-process search's."""
    import socket
    import threading
    import time

    import keras_tuner as kt
    from test_distributed import OBJECTIVE as objective, Grid, _score as score  # the distributed tests' toy grid

    from privemo.experiment import distributed as D
    from privemo.search.tuning import ConcurrentGridSearch

    silent, lost = threading.Event(), []

    class Worker(ConcurrentGridSearch):
        def run_trial(self, trial, *args, **kwargs):
            if self.tuner_id == "tuner0" and not lost:  # the injected fault: no report until released
                lost.append(trial.trial_id)
                silent.wait(60)
            return score(trial)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    oracle = D.make_oracle(Grid(), tmp_path, "p", seed=0, overwrite=True)
    lines = []
    servicer = D._servicer_class()(oracle, "p", lines.append, trial_timeout_s=1.0)
    server = D._start_server(servicer, "127.0.0.1", port)
    chief = threading.Thread(target=D._wait_for_searches, args=([servicer], 30.0, lines.append))
    chief.start()
    try:
        workers = {}
        for tuner_id in ("tuner0", "tuner1"):
            monkeypatch.setenv(D.ENV_TUNER_ID, tuner_id)
            monkeypatch.setenv(D.ENV_ORACLE_IP, "127.0.0.1")
            monkeypatch.setenv(D.ENV_ORACLE_PORT, str(port))
            workers[tuner_id] = Worker(hypermodel=Grid(), objective=objective, directory=tmp_path, project_name="p",
                                       overwrite=False)
        first = threading.Thread(target=workers["tuner0"].search, kwargs={"verbose": 0})
        first.start()
        deadline = time.monotonic() + 60
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        # tuner1 goes through the project again while the chief runs, as run_worker does
        while not oracle.progress()["complete"] and time.monotonic() < deadline:
            workers["tuner1"].search(verbose=0)
            time.sleep(0.2)
        assert oracle.progress()["complete"], lines
        assert servicer.taken_back == lost and lost[0] in servicer.handed["tuner1"]
        assert any(f"trial {lost[0]}: no report from tuner0" in line and "handed out again" in line for line in lines)
        scores = {tid: t.score for tid, t in oracle.trials.items()}
        silent.set()  # the lost worker reports at last
        first.join(60)
        chief.join(60)
    finally:
        silent.set()
        server.stop(0)
    assert servicer.ignored == lost
    assert {tid: t.score for tid, t in oracle.trials.items()} == scores  # the late report changed nothing
    assert sorted(oracle.end_order) == [f"{i:04d}" for i in range(6)] and oracle._run_times[lost[0]] == 1
    for name in (D.ENV_TUNER_ID, D.ENV_ORACLE_IP, D.ENV_ORACLE_PORT):
        monkeypatch.delenv(name)
    single = kt.GridSearch(hypermodel=Grid(), objective=objective, directory=tmp_path / "single", project_name="p")
    single.run_trial = lambda trial, *a, **k: score(trial)
    single.search(verbose=0)
    assert ({tid: (t.status, t.hyperparameters.values, t.score) for tid, t in oracle.trials.items()}
            == {tid: (t.status, t.hyperparameters.values, t.score) for tid, t in single.oracle.trials.items()})


def test_a_worker_whose_chief_is_gone_stops_after_chief_timeout_with_one_line(tmp_path):
    """A running chief's plan, but nothing answers on its port (the chief was killed): the worker asks again until
    --chief-timeout, then stops with one line (not keras-tuner's hour of silence)."""
    import socket
    import subprocess
    import sys

    from privemo.experiment import distributed as D

    flags = ["--demo-size", "2", "--folds", "2", "--only-fold", "0", "--modality", "acoustic", "--task", "activation",
             "--adversary", "none", "--quiet", "--out", str(tmp_path / "out")]
    config = ExperimentConfig(demo_per_speaker=2, n_folds=2, folds=(0,), modalities=("acoustic",),
                              tasks=("activation",), adversaries=(None,), out_dir=str(tmp_path / "out"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    jobs = D.job_list(config)
    atomic_write_json(D.plan_path(config), {"session": "gone", "status": "running", "host": "127.0.0.1",
                                            "base_port": port, "fingerprint": D.fingerprint(config, jobs),
                                            "served": [{"name": job.name, "port": port + job.index} for job in jobs]})
    driver = ("import sys, privemo; privemo.quiet_tensorflow()\n"  # as the command's main() does, before the import
              "import privemo.experiment.distributed_worker as W; W.PROBE_TIMEOUT_S = 0.5  # quicker, for the test\n"
              "from privemo.cli.distributed import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", PRIVEMO_DATA=str(tmp_path / "data"),
               PRIVEMO_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", driver, "--role", "worker", "--port", str(port), "--chief-timeout",
                           "2", *flags], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"privemo.distributed: error: the chief at 127.0.0.1:{port} has not "
                                                   "answered for 2 s (--chief-timeout); start it again with --resume")


def test_a_chief_killed_between_a_trials_file_and_its_own_reloads_with_that_trial_queued_not_lost(tmp_path):
    """keras-tuner writes a new trial's trial.json, then oracle.json: the chief killed between the two (found by
    benchmarks/faults.py's fault b) left a RUNNING trial that nobody would run, its values free to be handed out again
    under a new id. Reloaded, that trial is handed out first, under its own id, and the grid has no duplicate."""
    import shutil

    import keras_tuner as kt

    from privemo.experiment import distributed as D

    class Grid(kt.HyperModel):
        def declare_hyperparameters(self, hp):
            hp.Choice("a", [1, 2, 3])

        def build(self, hp):
            return None

    oracle = D.make_oracle(Grid(), tmp_path, "p", seed=0, overwrite=True)
    first = oracle.create_trial("tuner0")
    oracle.update_trial(first.trial_id, {"val_objective": 1.0})
    first.status = "COMPLETED"
    oracle.end_trial(first)
    saved = tmp_path / "oracle-before.json"
    shutil.copy(tmp_path / "p" / "oracle.json", saved)
    second = oracle.create_trial("tuner1")  # trial.json written ...
    shutil.copy(saved, tmp_path / "p" / "oracle.json")  # ... and the oracle's own state never saved: killed here
    reloaded = D.make_oracle(Grid(), tmp_path, "p", seed=0, overwrite=False)
    assert reloaded._retry_queue == [second.trial_id]
    again = reloaded.create_trial("tuner0")
    assert again.trial_id == second.trial_id and again.hyperparameters.values == second.hyperparameters.values
    last = reloaded.create_trial("tuner1")
    values = [first.hyperparameters.values, again.hyperparameters.values, last.hyperparameters.values]
    assert sorted(v["a"] for v in values) == [1, 2, 3]  # every value once, none twice
    assert reloaded.create_trial("tuner2").status == "STOPPED" and len(reloaded.trials) == 3


@pytest.mark.parametrize("fault", ["privemo's write layer", "a raw OSError"])
def test_a_full_disk_inside_a_trial_stops_the_search_with_one_line_and_resume_trains_that_trial(tmp_path, monkeypatch,
                                                                                                  fault):
    """A write that fails with ENOSPC inside trial 0002 (through privemo._util.io, or an OSError of another writer such
    as h5py, with its file name) stops the search with one WriteError line naming the file; the trial is not recorded as
    INVALID (it stays running in the oracle's state) and a resumed search trains it: six trials, each ended once, equal
    to an uninterrupted search."""
    import keras_tuner as kt
    from test_distributed import OBJECTIVE as objective, Grid, _score as score  # the distributed tests' toy grid

    import privemo._util.io
    from privemo.search.tuning import ConcurrentGridSearch

    full = []

    class Writes(ConcurrentGridSearch):
        def run_trial(self, trial, *args, **kwargs):
            target = Path(self.get_trial_dir(trial.trial_id)) / "history.json"
            if fault == "a raw OSError" and trial.trial_id == "0002" and not full:  # the injected fault
                full.append(target)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
            atomic_write_json(target, {"epochs": 1})
            return score(trial)

    real = privemo._util.io._write_file

    def disk_full(path, data):  # the injected fault
        if fault == "privemo's write layer" and path.parent.name == "trial_0002" and path.name == "history.json" \
                and not full:
            full.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(privemo._util.io, "_write_file", disk_full)
    first = Writes(hypermodel=Grid(), objective=objective, directory=tmp_path, project_name="p")
    with pytest.raises(WriteError) as info:
        first.search(verbose=0)
    target = tmp_path / "p" / "trial_0002" / "history.json"
    assert full == [target]
    assert str(info.value).startswith(f"{target}: cannot write: No space left on device.")
    assert "\n" not in str(info.value)
    assert first.oracle.trials["0002"].status == "RUNNING" and "0002" not in first.oracle.end_order
    again = Writes(hypermodel=Grid(), objective=objective, directory=tmp_path, project_name="p", overwrite=False)
    again.search(verbose=0)
    assert dict(again.oracle._run_times) == {f"{i:04d}": 1 for i in range(6)}
    single = kt.GridSearch(hypermodel=Grid(), objective=objective, directory=tmp_path / "single", project_name="p")
    single.run_trial = lambda trial, *a, **k: score(trial)
    single.search(verbose=0)
    assert ({tid: (t.status, t.hyperparameters.values, t.score) for tid, t in again.oracle.trials.items()}
            == {tid: (t.status, t.hyperparameters.values, t.score) for tid, t in single.oracle.trials.items()})
