"""Worker processes of the fold loop: per-process set-up (threads, determinism, the corpus data, a cache of traced
networks), one job, and the queue that hands each worker networks it has already traced.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from privemo._util.io import atomic_write_json
from privemo.experiment.config import Condition, ExperimentConfig, log, result_path
from privemo.experiment.fold import run_fold
from privemo.experiment.inputs import CorpusData


@dataclass
class WorkerState:
    """What one process keeps between jobs: the corpus data, the networks it has traced (keyed by the hypermodel, see
    ``EmotionPrivacyHyperModel.model_cache``) and its thread limits."""

    data: CorpusData
    models: dict = field(default_factory=dict)
    thread_limits: Any = None


_STATE: list[WorkerState] = []  # this process's state, set by worker_init (a process pool's initializer)


def worker_init(data: CorpusData, threads: int, parallel: bool, parent: int | None = None) -> None:
    """Per-process setup: the shared corpus data, TensorFlow threads (one per worker when several run) and determinism.
    A worker process (``parent``: the main process's pid) first starts watching for the main process's death."""
    if parallel:
        exit_with_parent(parent if parent is not None else os.getppid())
    from privemo.nn.device import start_tensorflow

    # TensorFlow without its start-up log and Python warnings (e.g. retracing notices for new padded lengths) unless
    # PRIVEMO_VERBOSE, one thread pool size per worker when several run, op determinism
    start_tensorflow(threads if parallel else None, deterministic=True)
    if parallel and threads:
        # NumPy's OpenBLAS and scikit-learn's OpenMP start one thread per core in every worker, and their idle threads
        # spin: with a worker per core they take CPU time from the other workers' training.
        from threadpoolctl import threadpool_limits

        import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime, so the limit below covers it)

        limits = threadpool_limits(limits=threads)
    else:
        limits = None
    _STATE[:] = [WorkerState(data, thread_limits=limits)]


def exit_with_parent(parent: int) -> None:
    """Make this worker exit as soon as its parent (pid ``parent``) is gone (SIGKILL, crash), rather than finish its job
    unsupervised: a rerun with --resume would otherwise train the same (condition, fold) in the same tuner project at the
    same time. The pid comes from the parent itself, so a parent killed before this worker got here is noticed too."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="privemo-parent-watch", daemon=True).start()


def run_job(fold_index: int, fold, condition: Condition, config: ExperimentConfig, lexical) -> dict:
    """One (condition, fold) in this process (after ``worker_init``), written atomically to its result file."""
    state = _STATE[0]
    report = (lambda line: log(line, config)) if config.verbose >= 2 else None
    record = run_fold(state.data, fold_index, fold, condition, config, lexical, model_cache=state.models,
                      report=report)
    atomic_write_json(result_path(config, condition, fold_index), record)
    return record


def run_job_in_worker(fold_index: int, fold, condition: Condition, config: ExperimentConfig, lexical) -> tuple[dict, int]:
    return run_job(fold_index, fold, condition, config, lexical), os.getpid()


def network_key(condition: Condition) -> tuple:
    """What decides a condition's network (the task and a fixed lambda do not): conditions with the same key reuse one
    traced network within a worker process (see ``EmotionPrivacyHyperModel.model_cache``)."""
    return condition.modality, condition.adversary, condition.placement


class AffinityQueue:
    """Pending jobs handed to workers so that each tends to get networks it has already traced (tracing a new network
    costs seconds on a CPU). Only the order in which jobs run changes: every job has its own seed, so results do not."""

    def __init__(self, jobs: Sequence[tuple[int, Condition]]):
        self.jobs = list(jobs)
        self.traced: dict[int, set] = {}  # worker pid -> network keys it has run
        self.handed: set = set()  # network keys handed to any worker so far

    def take(self, pid: int | None) -> tuple[int, Condition] | None:
        """The next job for worker ``pid`` (None: a worker that has run nothing yet): one of its networks, else a
        network no worker has had, else the first pending job."""
        if not self.jobs:
            return None
        mine = self.traced.get(pid, set())
        for wanted in (lambda key: key in mine, lambda key: key not in self.handed, lambda key: True):
            for i, job in enumerate(self.jobs):
                if wanted(network_key(job[1])):
                    self.handed.add(network_key(job[1]))
                    return self.jobs.pop(i)
        return None  # pragma: no cover - the last rule takes anything

    def ran(self, pid: int, job: tuple[int, Condition]) -> None:
        self.traced.setdefault(pid, set()).add(network_key(job[1]))
