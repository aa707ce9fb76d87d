"""Distributed search speed-up: the same small grid searched by 1 and by 2 keras-tuner workers behind privemo's chief.

    python benchmarks/distributed.py [--configs 8] [--epochs 1] [--also-two-threads] [--json out.json]

Each run is the real thing: ``python -m privemo.distributed`` processes (one chief, N workers with one TensorFlow thread
each) on loopback, searching one (condition, fold) project of the demo corpus (acoustic, activation, no adversary,
fold 0) over a small grid of real networks. Reported per run:

- ``wall``: the chief's search time (from its start until every trial has ended; includes the workers' start-up:
  importing TensorFlow, loading the corpus and features);
- ``trials``: from the first trial's start to the last trial's end (the part distribution can speed up);
- the speed-up of 2 workers over 1 for both.

A second, CPU-free measurement (``engine``) runs the same chief/worker protocol in one process with trials that only
sleep, which shows the engine's own overhead and concurrency independently of how many cores are free.

On the 2-core development machine the goal of >= 1.8x needs both cores idle: each worker trains with one thread, so two
workers need two free cores; other processes on the machine, TensorFlow's own helper threads and each worker's start-up
take their share (see the printed load average).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AXES = [("conv_width", (2, 3)), ("conv_kernels", (8, 16)), ("dense_width", (8, 16)), ("gru_width", (8, 16))]


def grid(n_configs: int) -> dict:
    """A grid of tiny networks with ``n_configs`` (a power of two, 2..16) configurations."""
    base = {"conv_layers": (1,), "conv_width": (2,), "conv_kernels": (8,), "gru_layers": (1,), "gru_width": (8,),
            "dense_layers": (1,), "dense_width": (8,)}
    k = n_configs.bit_length() - 1
    if n_configs < 2 or 1 << k != n_configs or k > len(AXES):
        raise SystemExit(f"--configs must be 2, 4, 8 or 16 (got {n_configs})")
    for name, values in AXES[:k]:
        base[name] = values
    return base


DRIVER = """
import json, sys
import privemo.privacy.grids as a
import privemo.search.grids as g
g.GRIDS["bench"] = {k: tuple(v) for k, v in json.loads(sys.argv[1]).items()}
a.ATTACKER_GRIDS["bench"] = a.ATTACKER_GRIDS["quick"]
from privemo.cli.distributed import main
sys.exit(main(sys.argv[2:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(n_workers: int, threads: int, grid_values: dict, epochs: int, workdir: Path) -> dict:
    out = workdir / f"w{n_workers}t{threads}"
    shutil.rmtree(out, ignore_errors=True)
    port = free_port()
    flags = ["--corpus", "demo", "--modality", "acoustic", "--task", "activation", "--adversary", "none",
             "--only-fold", "0", "--grid", "bench", "--epochs", str(epochs), "--out", str(out), "--port", str(port)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    spec = json.dumps(grid_values)

    def start(*role):
        return subprocess.Popen([sys.executable, "-c", DRIVER, spec, *role, *flags], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    started = time.time()
    procs = [start("--role", "chief", "--search-only")]
    procs += [start("--role", "worker", "--worker-id", str(i), "--threads", str(threads)) for i in range(n_workers)]
    results = [p.communicate(timeout=3600) for p in procs]
    for p, (_, err) in zip(procs, results):
        if p.returncode:
            raise SystemExit(f"a benchmark process failed (exit {p.returncode}):\n{err[-3000:]}")
    chief, *workers = [json.loads(o.strip().splitlines()[-1]) for o, _ in results]
    spans = [t for w in workers for project in w["trial_times"].values() for t in project.values()]
    trials_s = max(end for _, end in spans) - min(begin for begin, _ in spans)
    return {"workers": n_workers, "threads": threads, "wall_s": chief["search_s"], "trials_s": round(trials_s, 3),
            "trials": len(spans), "per_worker": [sum(len(v) for v in w["trials"].values()) for w in workers],
            "processes_s": round(time.time() - started, 1)}


def engine(n_workers: int, n_trials: int = 8, trial_s: float = 0.5) -> float:
    """Wall time of ``n_trials`` sleeping trials over ``n_workers`` in-process workers (chief = privemo's servicer)."""
    import keras_tuner as kt

    from privemo.experiment import distributed as D

    class Space(kt.HyperModel):
        def declare_hyperparameters(self, hp):
            hp.Choice("a", list(range(n_trials)))

        def build(self, hp):
            return None

    class Sleeper(kt.GridSearch):
        def run_trial(self, trial, *args, **kwargs):
            time.sleep(trial_s)
            return {"val_objective": float(trial.hyperparameters.values["a"])}

    directory = tempfile.mkdtemp(prefix="privemo-engine-")
    try:
        oracle = D.make_oracle(Space(), directory, "p", overwrite=True)
        servicer = D._servicer_class()(oracle, "p", lambda message: None)
        port = free_port()
        server = D._start_server(servicer, "127.0.0.1", port)
        tuners = []
        for i in range(n_workers):
            os.environ.update({D.ENV_TUNER_ID: f"tuner{i}", D.ENV_ORACLE_IP: "127.0.0.1",
                               D.ENV_ORACLE_PORT: str(port)})
            tuners.append(Sleeper(hypermodel=Space(), objective=kt.Objective("val_objective", "max"),
                                  directory=directory, project_name="p"))
        t0 = time.perf_counter()
        threads = [threading.Thread(target=t.search, kwargs={"verbose": 0}) for t in tuners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        server.stop(0)
        assert oracle.progress()["done"] == n_trials
        return elapsed
    finally:
        for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
            os.environ.pop(name, None)
        shutil.rmtree(directory, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", type=int, default=8, help="grid size (2, 4, 8 or 16 configurations)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per trial")
    p.add_argument("--also-two-threads", action="store_true", help="also run 1 worker with 2 TensorFlow threads")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    grid_values = grid(args.configs)
    load = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores, load average {load[0]:.2f} before the runs; grid of {args.configs} configurations, "
          f"{args.epochs} epoch(s) per trial")
    work = Path(tempfile.mkdtemp(prefix="privemo-bench-"))
    rows = []
    try:
        for n_workers, threads in [(1, 1), (2, 1)] + ([(1, 2)] if args.also_two_threads else []):
            row = run(n_workers, threads, grid_values, args.epochs, work)
            row["load_after"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            print(f"{n_workers} worker(s) x {threads} thread(s): chief wall {row['wall_s']:.1f} s, trials "
                  f"{row['trials_s']:.1f} s ({row['trials']} trials, per worker {row['per_worker']}), "
                  f"load average after {row['load_after']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    one, two = rows[0], rows[1]
    figures = {"wall_speedup": one["wall_s"] / two["wall_s"], "trials_speedup": one["trials_s"] / two["trials_s"]}
    e1, e2 = engine(1), engine(2)
    figures["engine_speedup"] = e1 / e2
    print(f"speed-up 2 workers vs 1: {figures['wall_speedup']:.2f}x wall (start-up included), "
          f"{figures['trials_speedup']:.2f}x over the trials; engine alone (8 sleeping 0.5 s trials): "
          f"{e1:.2f} s vs {e2:.2f} s = {figures['engine_speedup']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": cores, "load_before": load[0], "runs": rows, **figures},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
