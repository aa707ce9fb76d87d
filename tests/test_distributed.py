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
