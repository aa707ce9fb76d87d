"""Crash and resume (issue 6): SIGKILL ``python -m privemo.reproduce`` at four points, rerun with ``--resume``.

The run is tiny (60-utterance demo corpus, one outer fold, baseline + gender adversary, quick grid, one epoch, ``--jobs 1``
so the order of events is fixed). Kill points, detected by polling the cache and output folders:

1. during feature extraction (the feature store exists, the extraction has not finished);
2. inside a trial (keras-tuner's trial has started, its first epoch has not ended);
3. between folds (the first (condition, fold) result was just written, the next job's trial has not finished);
4. while writing results (the last result was just written; tables and manifest are written right after).

After each kill the next run is started with ``--resume``. Checked: no finished (condition, fold) JSON or finished tuner
trial is rewritten (same inode and mtime), nothing finished is lost, partial (temporary) files are never read as results,
the final tables exist, and the killed-and-resumed run gives exactly the tables and numbers of an uninterrupted run with
the same seed (determinism).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privemo.corpora.demo import demo_root, synthesize_demo

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMALL = 6  # utterances per speaker
ARGS = ["--demo-size", str(SMALL), "--modality", "acoustic", "--task", "activation", "--adversary", "none", "gender",
        "--only-fold", "0", "--epochs", "1", "--patience", "1", "--jobs", "1"]
BASELINE, GENDER = "acoustic-activation-baseline", "acoustic-activation-gender-fused"
TIMEOUT = 150  # seconds any one wait may take (a job takes ~15 s on 2 busy cores)


class Run:
    """One ``python -m privemo.reproduce`` process in its own process group (so SIGKILL takes any children too)."""

    def __init__(self, env: dict, out: Path, log: Path, *extra: str):
        self.log = log
        self.stdout = log.with_suffix(".out")
        with open(log, "w") as err, open(self.stdout, "w") as out_fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "privemo.reproduce", *ARGS, "--out", str(out), *extra],
                cwd=ROOT, env=env, stdout=out_fh, stderr=err, start_new_session=True)

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, condition, what: str, timeout: float = TIMEOUT, interval: float = 0.005):
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            value = condition()
            if value:
                return value
            if self.proc.poll() is not None:
                break
            time.sleep(interval)
        self.kill()
        pytest.fail(f"never reached: {what} (exit status {self.proc.returncode}); stderr tail:\n{self.stderr()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self) -> str:
        self.proc.wait(timeout=TIMEOUT * 2)
        assert self.proc.returncode == 0, self.stderr()[-3000:]
        return self.stdout.read_text(encoding="utf-8")


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def trial_status(trial_dir: Path) -> str | None:
    try:
        return json.loads((trial_dir / "trial.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def without_timings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timings"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", PRIVEMO_DATA=str(base / "data"),
               PRIVEMO_CACHE=str(base / "cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRIVEMO_DATA", env["PRIVEMO_DATA"])
        synthesize_demo(demo_root(), n_per_speaker=SMALL, progress=False)  # where the command will look for it
    return base, env


def test_kill_at_four_points_then_resume_matches_an_uninterrupted_run(env):
    base, environ = env
    out = base / "out"
    folds = out / "folds"
    tuning = out / "work" / "tuning"
    base_json, gender_json = folds / BASELINE / "fold0.json", folds / GENDER / "fold0.json"
    base_trial, gender_trial = tuning / BASELINE / "fold0" / "trial_0000", tuning / GENDER / "fold0" / "trial_0000"

    # 1. During feature extraction: the feature store has been created, the extraction is not done. The window is short
    #    (~0.5 s on this corpus), so a lost race is retried with a fresh cache rather than reported as a pass.
    for attempt in range(3):
        cache = base / f"cache{attempt}"
        environ["PRIVEMO_CACHE"] = str(cache)
        run = Run(environ, out, base / f"1-features-{attempt}.log")
        run.wait_for(lambda: list(cache.glob("features/*/logmfb-*/params.json")), "feature extraction started")
        run.kill()
        if "utterances," not in run.stderr():  # the line logged once features are ready
            break
    else:
        pytest.fail("could not kill the run during feature extraction in three attempts")
    assert not (out / "work" / "tuning").exists() and not folds.exists()  # work/settings.json: written before the features

    # 2. Inside a trial: keras-tuner's first trial is running, its epoch has not ended (no checkpoint yet).
    run = Run(environ, out, base / "2-trial.log", "--resume")
    run.wait_for(lambda: trial_status(base_trial) == "RUNNING", "first trial running")
    time.sleep(1.0)
    assert not (base_trial / "checkpoint.weights.h5").exists(), "the epoch ended before the kill: not inside the trial"
    run.kill()
    assert "utterances," in run.stderr() and "(0 already finished)" in run.stderr()
    assert not base_json.exists()

    # 3. Between folds: the first result was just written; the second job's trial has not finished.
    # A temporary file as a write killed half-way leaves it: it must never be read as the second job's result.
    junk = folds / GENDER / ".fold0.json.deadbeef.tmp"
    junk.parent.mkdir(parents=True)
    junk.write_text('{"corpus": "demo", "fold": 0, "test": {"emo')
    run = Run(environ, out, base / "3-between.log", "--resume")
    run.wait_for(base_json.is_file, "first fold result written")
    run.kill()
    assert "(0 already finished)" in run.stderr()
    assert trial_status(gender_trial) != "COMPLETED" and not gender_json.exists()
    assert trial_status(base_trial) == "COMPLETED"
    finished = {base_json: stamp(base_json), base_trial / "checkpoint.weights.h5": stamp(base_trial / "checkpoint.weights.h5"),
                base_trial / "trial.json": stamp(base_trial / "trial.json")}
    saved_model = out / "models" / BASELINE / "fold0.keras"  # the selected network, kept for privemo.cli.export
    if saved_model.exists():
        finished[saved_model] = stamp(saved_model)
    first = json.loads(base_json.read_text())

    # 4. While writing results: the last result was just written; folds.json, tables and manifest follow it.
    run = Run(environ, out, base / "4-results.log", "--resume")
    run.wait_for(gender_json.is_file, "second fold result written")
    run.kill()
    assert "(1 already finished)" in run.stderr()
    assert "[1/2]" not in run.stderr()  # the finished job was not run again
    finished[gender_json] = stamp(gender_json)
    for name in ("folds.json", "manifest.json"):  # whatever was written before the kill is complete, never half a file
        if (out / name).exists():
            json.loads((out / name).read_text())

    # The last resume trains nothing and writes the tables.
    run = Run(environ, out, base / "5-final.log", "--resume")
    summary = run.finish()
    assert "(2 already finished)" in run.stderr() and "fold 0:" not in run.stderr()
    assert "table1a" in summary
    for path, before in finished.items():
        assert stamp(path) == before, f"{path} was rewritten"
    assert json.loads(base_json.read_text()) == first
    for name in ("table1a.md", "table1a.csv", "manifest.json", "folds.json"):
        assert (out / name).is_file(), name
    records = json.loads((out / "folds.json").read_text())
    assert [r["condition"] for r in records] == [BASELINE, GENDER]
    assert records == [json.loads(base_json.read_text()), json.loads(gender_json.read_text())]
    # the killed trial was retried in place, not added as another one: one trial for the baseline, one per lambda
    assert [len(r["trials"]) for r in records] == [1, 4]
    assert not (tuning / BASELINE / "fold0" / "trial_0001").exists()
    assert junk.read_text().startswith('{"corpus"')  # left alone, never parsed
    junk.unlink()
    leftovers = [p for p in folds.rglob("*") if p.is_file() and p.name != "fold0.json"]
    assert leftovers == []

    # Determinism: an uninterrupted run with the same seed, in a fresh folder, gives the same tables and numbers.
    clean = base / "clean"
    Run(environ, clean, base / "6-clean.log").finish()
    assert (clean / "table1a.csv").read_bytes() == (out / "table1a.csv").read_bytes()
    again = json.loads((clean / "folds.json").read_text())
    assert [without_timings(r) for r in again] == [without_timings(r) for r in records]


def test_worker_processes_exit_when_the_main_process_is_killed(env):
    """With worker processes (--jobs 2), SIGKILL of the main process alone (a crash, ``kill -9 <pid>``) must not leave
    orphaned workers training on: a rerun with --resume would train the same jobs in the same tuner projects."""
    base, environ = env
    out = base / "orphans"
    run = Run(environ, out, base / "orphans.log", "--jobs", "2")
    run.wait_for(lambda: list((out / "work" / "tuning").glob("*/fold0/trial_0000/trial.json")), "workers training")
    group = run.proc.pid
    os.kill(run.proc.pid, signal.SIGKILL)  # the main process only
    run.proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                os.killpg(group, 0)  # is any process of the run left?
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                pytest.fail("worker processes outlived the killed main process by 10 s")
            time.sleep(0.1)
    finally:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not list(out.glob("folds/*/fold0.json"))  # they stopped, rather than finishing their jobs unsupervised
