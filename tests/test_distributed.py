"""Distributed search: the concurrent GridSearch oracle (order, resume, concurrency over keras-tuner's gRPC chief), the
command line's errors, and (slow) a chief and two worker processes on loopback against a single-process run."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras_tuner as kt
import pytest

from privemo.experiment import distributed as D
from privemo.cli.distributed import main
from privemo.search.tuning import ConcurrentGridSearch

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVE = kt.Objective("val_objective", "max")


class Grid(kt.HyperModel):
    def declare_hyperparameters(self, hp):
        hp.Choice("a", [1, 2, 3])
        hp.Choice("b", [10, 20])

    def build(self, hp):
        return None


def _score(trial):
    values = trial.hyperparameters.values
    return {"val_objective": float(values["a"] + values["b"])}


class Fake(ConcurrentGridSearch):
    """A tuner whose trials are cheap (no network): run_trial returns a score; optional interruption and delay."""

    interrupt_in = None  # trial id whose run is interrupted (KeyboardInterrupt is not caught by keras-tuner)
    interrupt_after = None  # interrupt before creating a trial once this many trials exist
    delay = 0.0

    def pre_create_trial(self):
        if self.interrupt_after is not None and len(self.oracle.trials) == self.interrupt_after:
            raise KeyboardInterrupt

    def run_trial(self, trial, *args, **kwargs):
        if trial.trial_id == self.interrupt_in:
            raise KeyboardInterrupt
        time.sleep(self.delay)
        return _score(trial)


class StockFake(kt.GridSearch):
    def run_trial(self, trial, *args, **kwargs):
        return _score(trial)


def _trials(oracle):
    return {tid: (t.status, dict(t.hyperparameters.values)) for tid, t in oracle.trials.items()}


def test_same_trials_as_keras_tuner_gridsearch_in_one_process(tmp_path):
    stock = StockFake(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path, project_name="stock")
    stock.search(verbose=0)
    ours = Fake(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path, project_name="ours")
    ours.search(verbose=0)
    assert len(ours.oracle.trials) == 6
    assert _trials(ours.oracle) == _trials(stock.oracle)
    assert ours.oracle.start_order == stock.oracle.start_order


@pytest.mark.parametrize("where", ["inside a trial", "between trials"])
def test_an_interrupted_search_resumes_to_the_full_grid(tmp_path, where):
    first = Fake(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path, project_name="p")
    if where == "inside a trial":
        first.interrupt_in = "0002"
    else:
        first.interrupt_after = 2
    with pytest.raises(KeyboardInterrupt):
        first.search(verbose=0)
    again = Fake(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path, project_name="p", overwrite=False)
    again.search(verbose=0)
    trials = _trials(again.oracle)
    assert len(trials) == 6 and {s for s, _ in trials.values()} == {"COMPLETED"}
    assert len({json.dumps(v, sort_keys=True) for _, v in trials.values()}) == 6
    assert again.oracle.progress()["complete"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_hands_each_trial_to_exactly_one_of_two_concurrent_workers(tmp_path, monkeypatch):
    oracle = D.make_oracle(Grid(), tmp_path, "p", seed=0, overwrite=True)
    servicer = D._servicer_class()(oracle, "p", lambda message: None)
    port = _free_port()
    server = D._start_server(servicer, "127.0.0.1", port)
    try:
        workers = []
        for i in range(2):  # keras-tuner reads its environment when a tuner is made
            monkeypatch.setenv(D.ENV_TUNER_ID, f"tuner{i}")
            monkeypatch.setenv(D.ENV_ORACLE_IP, "127.0.0.1")
            monkeypatch.setenv(D.ENV_ORACLE_PORT, str(port))
            worker = Fake(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path, project_name="p", overwrite=False)
            worker.delay = 0.4
            workers.append(worker)
        assert all(type(w.oracle).__name__ == "OracleClient" for w in workers)
        started = time.perf_counter()
        threads = [threading.Thread(target=w.search, kwargs={"verbose": 0}) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.perf_counter() - started
    finally:
        server.stop(0)
    handed = servicer.handed
    assert sorted(handed) == ["tuner0", "tuner1"] and all(handed.values())  # both workers trained trials
    ran = [tid for ids in handed.values() for tid in ids]
    assert sorted(ran) == [f"{i:04d}" for i in range(6)]  # every trial exactly once
    assert {tid: n for tid, n in oracle._run_times.items()} == {f"{i:04d}": 1 for i in range(6)}
    assert servicer.stopped == {"tuner0", "tuner1"}
    assert elapsed < 6 * 0.4  # concurrent: keras-tuner's own GridSearchOracle would run them one after another
    for name in (D.ENV_TUNER_ID, D.ENV_ORACLE_IP, D.ENV_ORACLE_PORT):  # back to single-process tuners
        monkeypatch.delenv(name)
    # what the chief saved reloads as a finished project (no trial left "ongoing" to be rerun)
    reloaded = D.make_oracle(Grid(), tmp_path, "p", seed=0, overwrite=False)
    assert reloaded.progress() == {"trials": 6, "ongoing": 0, "retry": 0, "done": 6, "complete": True}
    stock = StockFake(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path / "single", project_name="p")
    stock.search(verbose=0)
    assert _trials(reloaded) == _trials(stock.oracle)


def test_command_line_errors(tmp_path, capsys, monkeypatch):
    """Each mistake is one stderr line, found before the corpus is read: nothing is synthesised into the (empty) data
    folder, so no progress bar comes first, warm cache or cold."""
    monkeypatch.delenv(D.ENV_TUNER_ID, raising=False)
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path / "data"))
    base = ["--out", str(tmp_path / "out"), "--modality", "acoustic", "--task", "activation", "--adversary", "none",
            "--only-fold", "0", "--quiet"]
    assert main(base) == 2
    assert "--role chief|worker is required" in capsys.readouterr().err
    assert main(base + ["--role", "worker", "--worker-id", "mychief"]) == 2
    assert "'chief'" in capsys.readouterr().err
    assert main(base + ["--role", "chief", "--port", "70000"]) == 2
    assert "--port must be between" in capsys.readouterr().err
    # five folds = five projects, one port each: 65534..65538 do not exist
    assert main([word for word in base if word not in ("--only-fold", "0")] + ["--role", "chief", "--port", "65534"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ports 65534..65538 are needed" in err[0], err
    # a worker whose flags differ from the running chief's plan stops with one line
    plan = D.plan_path(type("C", (), {"work_dir": None, "out_dir": str(tmp_path / "out")})())
    plan.parent.mkdir(parents=True)
    plan.write_text(json.dumps({"session": "x", "status": "running", "fingerprint": {"seed": 99}, "served": []}))
    assert main(base + ["--role", "worker", "--plan-wait", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ from the chief's" in err[0] and "seed: chief 99, worker 0" in err[0]
    assert not (tmp_path / "data").exists()


DRIVER = """
import sys
import privemo.privacy.grids as a
import privemo.search.grids as g
g.GRIDS["tiny"] = {"conv_layers": (1,), "conv_width": (2, 3), "conv_kernels": (8, 16), "gru_layers": (1,),
                   "gru_width": (8,), "dense_layers": (1,), "dense_width": (8,)}
a.ATTACKER_GRIDS["tiny"] = {"dense_layers": (2,), "dense_width": (8,)}
from privemo.cli.distributed import main
from privemo.search.tuning import ConcurrentGridSearch
sys.exit(main(sys.argv[1:]))
"""
DEMO_SIZE = 12  # utterances per speaker of the synthesised demo corpus (120 in all): small, so that trials are quick
TINY_GRID = {"conv_layers": (1,), "conv_width": (2, 3), "conv_kernels": (8, 16), "gru_layers": (1,), "gru_width": (8,),
             "dense_layers": (1,), "dense_width": (8,)}


def _project_trials(out: Path) -> dict:
    project = out / "work" / "tuning" / "acoustic-activation-baseline" / "fold0"
    trials = {}
    for file in sorted(project.glob("trial_*/trial.json")):
        trial = json.loads(file.read_text())
        trials[trial["trial_id"]] = (trial["status"], trial["hyperparameters"]["values"])
    return trials


@pytest.mark.slow
def test_chief_and_two_workers_on_loopback_equal_a_single_process_run(tmp_path, monkeypatch):
    import privemo.privacy.grids as attacker_grids
    import privemo.search.grids as grids
    from privemo.nn.encoder import export_from_run
    from privemo.experiment import ExperimentConfig, run_cross_validation

    out = tmp_path / "distributed"
    port = _free_port()
    flags = ["--corpus", "demo", "--demo-size", str(DEMO_SIZE), "--modality", "acoustic", "--task", "activation",
             "--adversary", "none", "--only-fold", "0", "--grid", "tiny", "--epochs", "1", "--out",
             str(out), "--port", str(port)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    for name in (D.ENV_TUNER_ID, D.ENV_ORACLE_IP, D.ENV_ORACLE_PORT):
        env.pop(name, None)

    def start(*role):
        return subprocess.Popen([sys.executable, "-c", DRIVER, *role, *flags], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    chief = start("--role", "chief", "--search-only")
    workers = [start("--role", "worker", "--worker-id", str(i), "--threads", "1") for i in range(2)]
    try:
        results = [p.communicate(timeout=150) for p in (chief, *workers)]
    finally:
        for p in (chief, *workers):
            p.kill()
    for p, (stdout, stderr) in zip((chief, *workers), results):
        assert p.returncode == 0, stderr[-3000:]
    summaries = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in results]
    project = "acoustic-activation-baseline/fold0"
    by_workers = [tid for s in summaries[1:] for tid in s["trials"].get(project, [])]
    assert sorted(by_workers) == ["0000", "0001", "0002", "0003"]  # every trial ran exactly once, in some worker
    chief_view = summaries[0]["projects"][project]
    assert chief_view["run_times"] == {f"{i:04d}": 1 for i in range(4)} and chief_view["trials"] == 4
    assert {t: ids for t, ids in chief_view["by_tuner"].items()} == {
        s["tuner_id"]: s["trials"][project] for s in summaries[1:] if s["trials"].get(project)}
    plan = json.loads((out / "work" / "distributed" / "plan.json").read_text())
    assert plan["status"] == "finished"

    # the single-process run of the same project (the reproduce command's own tuner)
    monkeypatch.setitem(grids.GRIDS, "tiny", TINY_GRID)
    monkeypatch.setitem(attacker_grids.ATTACKER_GRIDS, "tiny", {"dense_layers": (2,), "dense_width": (8,)})

    def config(where, resume):
        return ExperimentConfig(modalities=("acoustic",), tasks=("activation",), adversaries=(None,),
                                folds=(0,), grid="tiny", epochs=1, out_dir=str(where),
                                resume=resume, n_jobs=1, attack_epochs=1, demo_per_speaker=DEMO_SIZE, verbose=0)

    single = run_cross_validation(config(tmp_path / "single", False)).records[0]
    distributed_trials = _project_trials(out)
    assert len(distributed_trials) == 4
    assert distributed_trials == _project_trials(tmp_path / "single")  # same hyper-parameter values and statuses

    # the chief's final phase (here called directly) reloads the searched project: nothing is trained again
    checkpoints = {p: p.stat().st_mtime_ns for p in (out / "work").rglob("trial_*/*")}
    record = run_cross_validation(config(out, True)).records[0]
    assert {p: p.stat().st_mtime_ns for p in (out / "work").rglob("trial_*/*")} == checkpoints
    assert len(record["trials"]) == 4 == len(single["trials"])
    assert record["best_hp"] in [values for _, values in distributed_trials.values()]
    # ... and keeps the selected network, which exports as a private encoder
    encoder = export_from_run(out, "acoustic-activation-baseline", 0)
    assert encoder.is_file() and (out / "models" / "acoustic-activation-baseline" / "fold0.keras").is_file()


# --------------------------------------------------------------------------------------------------------------------
# Workers outlive a chief restart (issue 27): back-off, deadlines, a chief killed or restarted in the middle of a trial


def test_backoff_doubles_from_one_second_to_thirty_and_gives_up_after_the_timeout():
    clock = [0.0]
    backoff = D.Backoff(100.0, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    while backoff.failed():
        pass
    assert backoff.waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 9.0]  # never past the timeout
    assert clock[0] == 100.0 and backoff.silent_s() == 100.0
    backoff.reset()
    assert backoff.failed() and backoff.waits[-1] == 1.0  # a success starts the sequence again


class Epochs(ConcurrentGridSearch):
    """A worker's tuner whose trials report ``epochs`` epochs (``on_epoch_end``, as keras-tuner's TunerCallback calls it:
    the heartbeat) ``epoch_s`` apart; ``epoch_hook(trial_id, epoch)`` runs after each."""

    epochs, epoch_s, epoch_hook = 3, 0.2, None

    def run_trial(self, trial, *args, **kwargs):
        for epoch in range(self.epochs):
            time.sleep(self.epoch_s)
            self.on_epoch_end(trial, None, epoch)
            if self.epoch_hook is not None:
                self.epoch_hook(trial.trial_id, epoch)
        return _score(trial)


def _serve_toy(directory, port, *, resume, trial_timeout_s=600.0, lines=None):
    oracle = D.make_oracle(Grid(), directory, "p", seed=0, overwrite=not resume)
    servicer = D._servicer_class()(oracle, "p", (lines if lines is not None else []).append, trial_timeout_s)
    return oracle, servicer, D._start_server(servicer, "127.0.0.1", port)


def test_a_worker_inside_a_trial_carries_on_with_a_chief_restarted_on_the_same_port(tmp_path, monkeypatch):
    """In one process, over keras-tuner's real gRPC: the chief stops while the worker is inside trial 0001; the
    worker's calls fail and are asked again with back-off; a chief reloaded from the project (--resume) on the same
    port answers them: trial 0001's reports give it back to its worker (not handed out a second time), the grid ends
    with every trial run once and equals a single-process search."""
    port = _free_port()
    lines = []
    oracle, servicer, server = _serve_toy(tmp_path, port, resume=False, lines=lines)
    monkeypatch.setenv(D.ENV_TUNER_ID, "tuner0")
    monkeypatch.setenv(D.ENV_ORACLE_IP, "127.0.0.1")
    monkeypatch.setenv(D.ENV_ORACLE_PORT, str(port))
    worker = Epochs(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path, project_name="p", overwrite=False)
    logged = []
    client = D.attach_chief_client(worker, "127.0.0.1", port, "tuner0", chief_timeout_s=60.0, log=logged.append)
    inside = threading.Event()
    worker.epoch_hook = lambda trial_id, epoch: inside.set() if (trial_id, epoch) == ("0001", 0) else None
    errors = []

    def search():
        try:
            worker.search(verbose=0)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=search)
    thread.start()
    second = None
    try:
        assert inside.wait(60)
        server.stop(0)  # the chief is gone in the middle of trial 0001
        time.sleep(1.5)  # the worker's next report finds nobody and backs off
        assert thread.is_alive()
        oracle2, servicer2, second = _serve_toy(tmp_path, port, resume=True, lines=lines)  # restarted with --resume
        assert oracle2._retry_queue == ["0001"]  # keras-tuner's reload: the trial that was running waits for a retry
        thread.join(60)
    finally:
        for s in (server, second):
            if s is not None:
                s.stop(0)
        client.close()
    assert not thread.is_alive() and not errors, errors
    assert servicer2.adopted == ["0001"] and "0001" not in servicer2.handed.get("tuner0", [])
    assert any("does not answer" in line for line in logged) and any("answers again" in line for line in logged)
    assert dict(oracle2._run_times) == {f"{i:04d}": 1 for i in range(6)}  # every trial ended once
    assert oracle2.progress() == {"trials": 6, "ongoing": 0, "retry": 0, "done": 6, "complete": True}
    for name in (D.ENV_TUNER_ID, D.ENV_ORACLE_IP, D.ENV_ORACLE_PORT):
        monkeypatch.delenv(name)
    stock = StockFake(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path / "single", project_name="p")
    stock.search(verbose=0)
    assert _trials(oracle2) == _trials(stock.oracle)


def test_heartbeats_keep_a_trial_longer_than_the_trial_timeout_with_its_worker(tmp_path, monkeypatch):
    """A trial that lasts several --trial-timeouts but reports every epoch is not taken back (keras-tuner 1.4.8 itself
    reports nothing until a trial ends); the heartbeat changes none of the trial's metrics."""
    port = _free_port()
    oracle, servicer, server = _serve_toy(tmp_path, port, resume=False, trial_timeout_s=0.5)
    stop = threading.Event()

    def expire():
        while not stop.is_set():
            servicer.expire()
            time.sleep(0.05)

    expiring = threading.Thread(target=expire)
    expiring.start()
    monkeypatch.setenv(D.ENV_TUNER_ID, "tuner0")
    monkeypatch.setenv(D.ENV_ORACLE_IP, "127.0.0.1")
    monkeypatch.setenv(D.ENV_ORACLE_PORT, str(port))
    try:
        worker = Epochs(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path, project_name="p", overwrite=False)
        worker.epochs, worker.epoch_s = 8, 0.2  # 1.6 s a trial, 0.5 s of lease
        client = D.attach_chief_client(worker, "127.0.0.1", port, "tuner0", chief_timeout_s=30.0)
        oracle.max_trials = 2  # (trial ids "0", "1")
        worker.search(verbose=0)
        client.close()
    finally:
        stop.set()
        expiring.join()
        server.stop(0)
    assert servicer.taken_back == [] and dict(oracle._run_times) == {"0": 1, "1": 1}
    for trial in oracle.trials.values():
        assert trial.status == "COMPLETED" and trial.score == _score(trial)["val_objective"]
        assert [o.step for o in trial.metrics.get_history("val_objective")] == [0]  # the final report only


TOY_CHIEF = """
import json, sys
import privemo; privemo.quiet_tensorflow()
import keras_tuner as kt
from privemo.experiment import distributed as D

class Grid(kt.HyperModel):
    def declare_hyperparameters(self, hp):
        hp.Choice("a", [1, 2, 3])
        hp.Choice("b", [10, 20])

directory, port, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
say = lambda message: print(message, flush=True)
oracle = D.make_oracle(Grid(), directory, "p", seed=0, overwrite=not resume)
servicer = D._servicer_class()(oracle, "p", say)
server = D._start_server(servicer, "127.0.0.1", port)
say("serving")
D._wait_for_searches([servicer], 5.0, say)
server.stop(1)
say(json.dumps({"run_times": dict(oracle._run_times), "adopted": servicer.adopted, "handed": servicer.handed}))
"""

TOY_WORKER = """
import json, os, sys, time
import privemo; privemo.quiet_tensorflow()
import keras_tuner as kt
from privemo.cli.reproduce import run_command
from privemo.experiment import distributed as D
from privemo.search.tuning import ConcurrentGridSearch

class Grid(kt.HyperModel):
    def declare_hyperparameters(self, hp):
        hp.Choice("a", [1, 2, 3])
        hp.Choice("b", [10, 20])

    def build(self, hp):
        return None

directory, port, chief_timeout, epochs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])

class Worker(ConcurrentGridSearch):
    def run_trial(self, trial, *args, **kwargs):
        for epoch in range(epochs):
            time.sleep(0.2)
            self.on_epoch_end(trial, None, epoch)
            print(f"epoch {trial.trial_id} {epoch}", flush=True)
        values = trial.hyperparameters.values
        return {"val_objective": float(values["a"] + values["b"])}

def body():
    os.environ.update(KERASTUNER_TUNER_ID="tuner0", KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port))
    tuner = Worker(hypermodel=Grid(), objective=kt.Objective("val_objective", "max"), directory=directory,
                   project_name="p", overwrite=False)
    D.attach_chief_client(tuner, "127.0.0.1", port, "tuner0", chief_timeout, log=lambda m: print(m, flush=True))
    tuner.search(verbose=0)
    return "worker done"

sys.exit(run_command("privemo.distributed", body, "start this worker again"))
"""


class _Process:
    """A subprocess whose stdout lines are collected by a thread (``wait_for(text)``)."""

    def __init__(self, source: str, *args, cwd):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
        for name in (D.ENV_TUNER_ID, D.ENV_ORACLE_IP, D.ENV_ORACLE_PORT):
            env.pop(name, None)
        self.process = subprocess.Popen([sys.executable, "-c", source, *map(str, args)], cwd=cwd, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                        for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.errors))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, into):
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, (text, self.lines, self.errors[-30:])
            assert time.monotonic() < deadline, (text, self.lines)
            time.sleep(0.05)

    def finish(self, timeout: float) -> tuple[int, str]:
        self.process.wait(timeout)
        for reader in self.readers:
            reader.join(5)
        return self.process.returncode, "\n".join(self.errors)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_a_worker_whose_chief_is_killed_inside_a_trial_stops_after_chief_timeout_with_one_line(tmp_path):
    """Real processes: the chief is killed (SIGKILL) while the worker is inside a long trial; the worker asks again with
    back-off and stops after --chief-timeout (4 s) plus a small margin with one line, not after keras-tuner's hour."""
    port = _free_port()
    chief = _Process(TOY_CHIEF, tmp_path, port, "new", cwd=tmp_path)
    worker = None
    try:
        chief.wait_for("serving")
        worker = _Process(TOY_WORKER, tmp_path, port, 4, 1000, cwd=tmp_path)
        worker.wait_for("epoch 0000 1")
        chief.kill()
        killed = time.monotonic()
        status, stderr = worker.finish(timeout=60)
        took = time.monotonic() - killed
    finally:
        for p in (chief, worker):
            if p is not None:
                p.kill()
    assert status == 2, stderr[-3000:]
    assert 3.0 < took < 4.0 + 6.0, took  # the heartbeats every 0.2 s notice at once; margin for a loaded machine
    lines = stderr.strip().splitlines()
    assert lines == [f"privemo.distributed: error: the chief at 127.0.0.1:{port} has not answered for 4 s "
                     "(--chief-timeout) during trial 0000; start it again with --resume, then this worker"], lines
    assert any("does not answer (UpdateTrial: UNAVAILABLE)" in line for line in worker.lines), worker.lines[-5:]


def test_a_worker_reconnects_to_a_chief_killed_and_restarted_with_resume_inside_a_trial(tmp_path):
    """Real processes: chief killed (SIGKILL) in the middle of trial 0001 and started again with --resume on the same
    port 2 s later; the worker, still in that trial, reconnects, the restarted chief leaves the trial to it, and the grid
    ends with every trial ended once."""
    port = _free_port()
    first = _Process(TOY_CHIEF, tmp_path, port, "new", cwd=tmp_path)
    worker = second = None
    try:
        first.wait_for("serving")
        worker = _Process(TOY_WORKER, tmp_path, port, 120, 4, cwd=tmp_path)
        worker.wait_for("epoch 0001 0")
        first.kill()
        worker.wait_for("does not answer")
        second = _Process(TOY_CHIEF, tmp_path, port, "resume", cwd=tmp_path)
        status, stderr = worker.finish(timeout=120)
        assert status == 0, stderr[-3000:]
        chief_status, chief_stderr = second.finish(timeout=60)
        assert chief_status == 0, chief_stderr[-3000:]
    finally:
        for p in (first, worker, second):
            if p is not None:
                p.kill()
    summary = json.loads(second.lines[-1])
    assert summary["adopted"] == ["0001"] and "0001" not in summary["handed"].get("tuner0", [])
    assert summary["run_times"] == {f"{i:04d}": 1 for i in range(6)}
    assert any("answers again" in line for line in worker.lines)
    trained = [line.split()[1] for line in worker.lines if line.startswith("epoch ") and line.endswith(" 3")]
    assert trained == [f"{i:04d}" for i in range(6)]  # each trial trained to its end once, 0001 across the restart


def test_a_chief_that_cannot_write_its_state_stops_and_so_does_its_worker_each_with_one_line(tmp_path, monkeypatch):
    """The chief's disk fills up while a worker ends a trial (the injected fault: ENOSPC on every write through
    privemo._util.io): the worker's call is answered with the chief's WriteError line and the worker stops with it (not
    an INVALID trial); the chief's loop stops with the same WriteError."""
    import errno

    import privemo._util.io
    from privemo._util.io import WriteError

    port = _free_port()
    oracle, servicer, server = _serve_toy(tmp_path, port, resume=False)
    monkeypatch.setenv(D.ENV_TUNER_ID, "tuner0")
    monkeypatch.setenv(D.ENV_ORACLE_IP, "127.0.0.1")
    monkeypatch.setenv(D.ENV_ORACLE_PORT, str(port))
    worker = Epochs(hypermodel=Grid(), objective=OBJECTIVE, directory=tmp_path, project_name="p", overwrite=False)
    worker.epochs, worker.epoch_s = 1, 0.0
    client = D.attach_chief_client(worker, "127.0.0.1", port, "tuner0", chief_timeout_s=30.0)

    def disk_full(trial_id, epoch):
        if trial_id == "0001":
            monkeypatch.setattr(privemo._util.io, "_write_file", lambda path, data: (_ for _ in ()).throw(
                OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))

    worker.epoch_hook = disk_full
    try:
        with pytest.raises(D.ChiefFailed) as info:
            worker.search(verbose=0)
        with pytest.raises(WriteError) as stopped:
            D._wait_for_searches([servicer], 1.0, lambda message: None)
    finally:
        client.close()
        server.stop(0)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"the chief at 127.0.0.1:{port} answered UpdateTrial with "
                                                      "FAILED_PRECONDITION: ")
    assert str(stopped.value) in message and "cannot write: No space left on device" in message
    assert oracle.trials["0001"].status == "RUNNING"  # not recorded as ended: a restarted chief hands it out again
    asked = threading.Thread(target=oracle.progress, daemon=True)  # the oracle's lock was not left held by the failure
    asked.start()
    asked.join(10)
    assert not asked.is_alive()
