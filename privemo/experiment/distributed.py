"""Distributed hyper-parameter search on keras-tuner's chief/worker engine (gRPC), for the reproduce command.

keras-tuner runs one *oracle* (the object that hands out trials and records their results) per tuner project, and a
distributed search is one chief process serving that oracle over gRPC to worker processes that train the trials
(``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``). The reproduce command has one project
per (condition, outer fold): ``<out>/work/tuning/<condition.key>/fold<k>/``. privemo therefore runs

- one **chief** (``python -m privemo.distributed --role chief``), which opens one keras-tuner ``OracleServicer`` per
  project of the run, project ``i`` of the run's job list on port ``--port + i``, all at once, and waits until every
  trial of every project has ended; then (unless ``--search-only``) it runs the rest of the reproduce command
  (``privemo.experiment.run`` with resume: the tuned projects are reloaded, not retrained: selection, representations,
  attacks, tables);
- any number of **workers** (``python -m privemo.distributed --role worker --worker-id N``), each visiting the projects
  in the job list's order: it asks the project's oracle for a trial (keras-tuner's ``CreateTrial``), trains trials with
  the reproduce command's own data, hypermodel and ``privemo.search.tuning.make_tuner`` (a keras-tuner worker: its oracle is a
  gRPC client of the chief's) until the oracle says the project is handed out, then moves to the next project. Workers
  therefore also work on different projects at the same time: the quick grid (one configuration per project) spreads
  over workers too.

Every process takes the reproduce command's flags (the same flags on every machine: the chief writes
``<out>/work/distributed/plan.json`` with the job list and the settings that matter, and a worker whose flags differ
stops with an error before it reads the corpus). ``--removal`` is among them; with ``--tensorboard DIR`` each worker
writes the logs of the trials it trains under its own DIR. Ctrl-C or SIGTERM stops a process with one line that names
the command to continue (``privemo.cli._interrupt``). Example, one machine with 2 cores::

    python -m privemo.distributed --role chief --port 50051 --corpus demo &
    python -m privemo.distributed --role worker --worker-id 0 --port 50051 --corpus demo --threads 1 &
    python -m privemo.distributed --role worker --worker-id 1 --port 50051 --corpus demo --threads 1

Several machines: ``--out`` must be on a file system all machines share (NFS or similar: workers write the trial
checkpoints the chief's final phase loads, and read the plan), the chief binds ``--host 0.0.0.0`` and workers connect to
``--host <chief address>``; ports ``--port`` .. ``--port + jobs - 1`` must be reachable. keras-tuner's gRPC channel is
unauthenticated and unencrypted: use it on a trusted network only. The keras-tuner environment variables work as
defaults (``KERASTUNER_TUNER_ID=chief`` selects the chief role, any other value the worker role and its id;
``KERASTUNER_ORACLE_IP`` / ``KERASTUNER_ORACLE_PORT`` the host and base port).

The chief's oracles are ``ConcurrentGridSearchOracle``: keras-tuner 1.4.8's ``GridSearchOracle`` derives each new
combination from a *finished* trial, so after the first two trials it hands out one trial at a time (distributed
workers wait in an IDLE loop), and its linked list of tried combinations is not saved, so a project reloaded after an
interruption either stops early or fails with a KeyError. ``ConcurrentGridSearchOracle`` hands out the first untried
combination in GridSearch's own order (identical trial ids and values in a single process) and keeps only state that
keras-tuner saves.

Trial leases: a worker reports every epoch of its trial to the chief (a heartbeat: keras-tuner 1.4.8's
``Tuner.on_epoch_end`` reports nothing, so ``attach_chief_client`` adds one, a report without metrics that changes
nothing but the lease); a trial whose worker has not reported for ``--trial-timeout`` seconds (``TRIAL_TIMEOUT_S``) is
taken back and handed to the next worker that asks, with the same trial id and values, so it trains from the same seed
and gives the same result. Workers that have been through every project go through them again until the chief's plan
is no longer running, so the remaining workers pick such a trial up. A report that arrives for a trial already ended
(the lost worker was only slow) is ignored: the first end wins, and both trainings leave the same weights. A report on
a trial that waits for a retry and that no worker holds gives it back to the worker that reports (``_adopt``). A worker
started again with the same ``--worker-id`` still gets its unfinished trial back when its lease has not expired.

A chief killed and started again with ``--resume`` on the same ports: every call of a worker to the chief has a
deadline (``CALL_TIMEOUT_S``; keras-tuner's own is an hour) and, when the chief does not answer, is made again on a new
channel after 1, 2, 4 .. 30 s (``Backoff``, ``ChiefClient``), between trials and inside one (its heartbeats and its
final report), so workers carry on with the restarted chief, and a worker between projects adopts its new plan. The
reloaded project hands out again the trials that were running (keras-tuner's retry queue), except one whose worker
reports on it again (it stays with that worker), and also a trial whose ``trial.json`` was written just before the kill
but not yet the oracle's own state (``requeue_orphans``). A worker whose chief has not answered for ``--chief-timeout``
seconds (``CHIEF_TIMEOUT_S``) stops with one line (``ChiefUnreachable``), also inside a trial; that trial stays running
in the chief's saved state and is trained again after a restart. A chief that cannot write its state (a full disk:
``privemo._io.WriteError``) stops with that line, and its workers stop with it (``ChiefFailed``).

Trials are not split across machines (one trial = one training in one process), and the final phase (attacks) runs on
the chief's machine only (``--jobs`` processes). Nothing here needs a GPU; a worker uses one when TensorFlow sees one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from privemo._io import WriteError, atomic_write_json, atomic_write_text, read_json
from privemo._validation import UserError
from privemo.experiment.config import fold_seed, result_path, run_settings, work_dir
from privemo.nn.training import OBJECTIVE
from privemo.search.tuning import ConcurrentGridSearchOracle

# assumption (README assumptions table): default base port of the chief's oracles (the gRPC convention's 50051); project
# i of the job list is served on BASE_PORT + i. Change with --port / KERASTUNER_ORACLE_PORT.
BASE_PORT = 50051
DEFAULT_HOST = "127.0.0.1"
POLL_S = 0.2  # how often the chief checks its projects
PROBE_TIMEOUT_S = 10.0  # a worker re-reads the plan when a project's oracle does not answer within this time
PLAN_WAIT_S = 600.0  # how long a worker waits for a running chief's plan
LINGER_S = 120.0  # after the last trial, how long the chief waits for workers still walking through finished projects
# assumption (README assumptions table): a trial whose worker has not reported for this long is handed out again. A
# worker reports after every epoch; the slowest epoch measured (results/protocol_cost.csv, 2 CPU cores: a pack of four
# paper-grid networks on MSP-Podcast) takes 336 s, so an hour is about ten epochs of silence. Change with --trial-timeout.
TRIAL_TIMEOUT_S = 3600.0
REPASS_S = 1.0  # a worker that has been through every project looks again after this long, while the chief runs
CHIEF_TIMEOUT_S = 600.0  # a worker whose chief has not answered for this long stops (--chief-timeout)
CALL_TIMEOUT_S = 60.0  # deadline of one gRPC call of a worker to the chief (keras-tuner's own: an hour)
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 30.0  # a worker asks an unanswering chief again after 1, 2, 4, .. 30, 30 .. s
RETRIED_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")  # gRPC status codes of a chief that is gone
ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
# experiment.run_fold's tuner (no KERASTUNER_* variables) has the id "tuner0" and reloads a project only when that
# tuner's state file exists; the chief writes it for every project it serves.
SINGLE_PROCESS_TUNER_ID = "tuner0"


def make_oracle(hypermodel, directory: str | os.PathLike, project_name: str, *, seed: int = 0,
                overwrite: bool = False) -> ConcurrentGridSearchOracle:
    """The oracle of one tuner project, as ``privemo.search.tuning.make_tuner`` would set it up, without building a model.

    A project with saved state is reloaded unless ``overwrite`` (then it is deleted first); a new one gets the
    hypermodel's declared search space. The oracle saves itself to ``directory/project_name/oracle.json``.
    """
    oracle = ConcurrentGridSearchOracle(objective=keras_tuner.Objective(OBJECTIVE, direction="max"), seed=seed)
    oracle._set_project_dir(str(directory), project_name)
    project = Path(directory) / project_name
    if overwrite and project.exists():
        shutil.rmtree(project)
    if (project / "oracle.json").is_file():
        oracle.reload()
        requeue_orphans(oracle)
    else:
        space = oracle.get_space()
        hypermodel.declare_hyperparameters(space)
        oracle.update_space(space)
    oracle.verbose = 0
    oracle.save()
    return oracle


def requeue_orphans(oracle) -> list[str]:
    """Queue for a retry every trial whose state file says RUNNING but that a reloaded oracle neither holds nor will
    retry; returns their ids.

    keras-tuner writes a new trial's ``trial.json`` and then ``oracle.json``: a chief killed between the two reloads
    with a trial that no one runs (the search then never reaches its checkpoint, and the final phase fails on it) and
    whose values are not recorded as tried (they would be handed out again under a new id). Each such trial keeps its id
    and values, and is handed out first.
    """
    held = set(oracle._retry_queue) | {trial.trial_id for trial in oracle.ongoing_trials.values()}
    orphans = [trial_id for trial_id, trial in sorted(oracle.trials.items())
               if trial.status == trial_module.TrialStatus.RUNNING and trial_id not in held]
    for trial_id in orphans:
        oracle._record_values(oracle.trials[trial_id])
        oracle._retry_queue.append(trial_id)
    return orphans


# --------------------------------------------------------------------------------------------------------------------
# Jobs, ports and the plan


class Job(NamedTuple):
    """One tuner project of the run: its position in the job list (port = base port + index), condition and fold."""

    index: int
    condition: Any  # privemo.experiment.Condition
    fold: int

    @property
    def name(self) -> str:
        return f"{self.condition.key}/fold{self.fold}"


def job_list(config, fold_ids: Sequence[int] | None = None) -> list[Job]:
    """The run's full job list: conditions x folds in experiment.run_cross_validation's (condition-major) order.

    ``fold_ids`` default to the folds the flags ask for (``--only-fold``, else all ``--folds``), known before the corpus
    is read: a worker compares them with the chief's plan first, so one with other flags stops without loading
    anything. ``load_run`` passes the ones ``plan_run`` checked against the corpus.
    """
    if fold_ids is None:
        fold_ids = range(config.n_folds) if config.folds is None else config.folds
    pairs = [(k, c) for c in config.conditions() for k in fold_ids]
    return [Job(i, c, k) for i, (k, c) in enumerate(pairs)]


def load_run(config) -> tuple[Any, list, list[Job]]:
    """The corpus table, its folds and the run's full job list (``job_list``), after ``plan_run``'s checks."""
    from privemo.experiment.plan import plan_run

    table, folds, fold_ids, _ = plan_run(config)
    return table, folds, job_list(config, fold_ids)


def project_location(config, job: Job) -> tuple[Path, str]:
    """(directory, project name) of a job's tuner project, as ``experiment.run_fold`` names it."""
    return work_dir(config) / "tuning" / job.condition.key, f"fold{job.fold}"


def plan_path(config) -> Path:
    return work_dir(config) / "distributed" / "plan.json"


def fingerprint(config, jobs: Sequence[Job]) -> dict:
    """The settings every process of a distributed run must share (compared by workers against the chief's plan)."""
    return {**run_settings(config), "jobs": [job.name for job in jobs]}


# --------------------------------------------------------------------------------------------------------------------
# The chief


_ENDED = (trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED, trial_module.TrialStatus.INVALID)


@keras_tuner.synchronized
def _take_back(oracle, tuner_id: str, trial_id: str) -> bool:
    """Move ``trial_id`` from ``tuner_id``'s ongoing trial to the oracle's retry queue (keras-tuner hands that queue out
    first, same trial id and values); False when the tuner no longer holds it."""
    held = oracle.ongoing_trials.get(tuner_id)
    if held is None or held.trial_id != trial_id:
        return False
    del oracle.ongoing_trials[tuner_id]
    oracle._retry_queue.append(trial_id)
    oracle.save()
    return True


@keras_tuner.synchronized
def _adopt(oracle, trial_id: str) -> str | None:
    """A trial that waits in the retry queue, held by no tuner, reported on by a worker (a chief restarted with
    ``--resume`` requeued it while its worker went on training it, or it was taken back from a worker that was only
    slow and no one has asked for it yet): it is that worker's again, under the key returned (the reports name no
    tuner), so it is not handed out a second time. None when the trial is not such a trial."""
    if trial_id not in oracle._retry_queue or trial_id not in oracle.trials:
        return None
    if any(trial.trial_id == trial_id for trial in oracle.ongoing_trials.values()):
        return None
    while trial_id in oracle._retry_queue:
        oracle._retry_queue.remove(trial_id)
    key = f"reconnected-{trial_id}"
    oracle.ongoing_trials[key] = oracle.trials[trial_id]
    oracle.save()
    return key


@keras_tuner.synchronized
def _unqueue(oracle, trial_id: str) -> None:
    """A trial taken back and not yet handed out again, now reported ended by its first worker: not to be run again."""
    while trial_id in oracle._retry_queue:
        oracle._retry_queue.remove(trial_id)


def _release_if_held(oracle) -> None:
    """keras-tuner's ``synchronized`` releases an oracle's lock only when the call returns: after an exception (a full
    disk in ``oracle.save()``, an unknown trial id) the raising thread keeps it, and every later call of the oracle, from
    any thread, waits for ever (the chief would hang instead of stopping). Release it if this thread holds it."""
    from keras_tuner.src.engine import oracle as oracle_module

    if oracle_module.THREADS[oracle] == threading.current_thread().name:
        oracle_module.THREADS[oracle] = None
        oracle_module.LOCKS[oracle].release()


def _guarded(method):
    """A servicer call that raises leaves the oracle's lock free (``_release_if_held``); one that meets a ``UserError``
    (the chief cannot write its state: ``privemo._io.WriteError``) answers the worker with that line
    (FAILED_PRECONDITION; the worker stops with it) and keeps the error for the chief's main loop, which stops the chief
    with it (``_wait_for_searches``)."""

    @functools.wraps(method)
    def call(self, request, context):
        import grpc

        try:
            return method(self, request, context)
        except UserError as exc:
            _release_if_held(self.oracle)
            if self.failure is None:
                self.failure = exc
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _one_line(exc))
        except BaseException:
            _release_if_held(self.oracle)
            raise

    return call


def _servicer_class():
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    class Servicer(OracleServicer):
        """keras-tuner's servicer, recording which tuner ran which trial and which tuners were told to stop, with trial
        leases (the module docstring): ``expire()`` takes back trials not reported for ``trial_timeout_s``; a report
        without metrics is a worker's heartbeat; a report on a trial waiting for a retry gives it back to its worker
        (``_adopt``). A call that cannot write the chief's state sets ``failure``."""

        def __init__(self, oracle, name: str, log, trial_timeout_s: float = TRIAL_TIMEOUT_S):
            super().__init__(oracle)
            self.name = name
            self.log = log
            self.trial_timeout_s = float(trial_timeout_s)
            self.seen: set[str] = set()
            self.stopped: set[str] = set()
            self.handed: dict[str, list[str]] = {}
            self.leases: dict[str, tuple[str, float]] = {}  # trial id -> (tuner id, time of its last report)
            self.taken_back: list[str] = []  # trial ids, once per expiry
            self.ignored: list[str] = []  # trial ids of reports that came after the trial had ended
            self.adopted: list[str] = []  # trial ids given back to the worker that reported on them (_adopt)
            self.failure: UserError | None = None  # the first error that stops the chief (a call could not write)

        GetSpace = _guarded(OracleServicer.GetSpace)
        UpdateSpace = _guarded(OracleServicer.UpdateSpace)
        GetTrial = _guarded(OracleServicer.GetTrial)
        GetBestTrials = _guarded(OracleServicer.GetBestTrials)

        @_guarded
        def CreateTrial(self, request, context):
            response = super().CreateTrial(request, context)
            tuner_id = request.tuner_id
            self.seen.add(tuner_id)
            status = trial_module.TrialStatus.from_proto(response.trial.status)
            if status == trial_module.TrialStatus.STOPPED:
                self.stopped.add(tuner_id)
            elif status == trial_module.TrialStatus.RUNNING:
                trial_id = response.trial.trial_id
                self.leases[trial_id] = (tuner_id, time.monotonic())
                ids = self.handed.setdefault(tuner_id, [])
                if trial_id not in ids:
                    ids.append(trial_id)
                    self.log(f"[chief] {self.name}: trial {trial_id} -> {tuner_id}")
            return response

        @_guarded
        def UpdateTrial(self, request, context):
            trial_id = request.trial_id
            trial = self.oracle.trials.get(trial_id)
            if trial is not None and trial.status in _ENDED:  # a late report: leave the ended trial as it is
                return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
            key = _adopt(self.oracle, trial_id)
            if key is not None:
                self.adopted.append(trial_id)
                self.leases[trial_id] = (key, time.monotonic())
                self.log(f"[chief] {self.name}: trial {trial_id} reported on while waiting for a retry: "
                         "left to the worker that reports")
            if trial_id in self.leases:
                self.leases[trial_id] = (self.leases[trial_id][0], time.monotonic())
            if not request.metrics and trial is not None:  # a heartbeat (ChiefClient.heartbeat): the lease only
                return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
            return super().UpdateTrial(request, context)

        @_guarded
        def EndTrial(self, request, context):
            trial_id = request.trial.trial_id
            trial = self.oracle.trials.get(trial_id)
            if trial is not None and trial.status in _ENDED:
                self.ignored.append(trial_id)
                self.log(f"[chief] {self.name}: trial {trial_id} ended again (a worker it was taken back from): "
                         "report ignored")
                return protos.get_service().EndTrialResponse()
            _unqueue(self.oracle, trial_id)
            response = super().EndTrial(request, context)
            self.leases.pop(trial_id, None)
            trial = self.oracle.trials.get(trial_id)
            score = getattr(trial, "score", None)
            self.log(f"[chief] {self.name}: trial {trial_id} ended "
                     f"({trial.status if trial else '?'}{'' if score is None else f', val_objective {score:.4f}'})")
            return response

        def expire(self, now: float | None = None) -> list[str]:
            """Take back every trial whose worker has not reported for ``trial_timeout_s``; returns their ids."""
            now = time.monotonic() if now is None else now
            expired = []
            for trial_id, (tuner_id, seen) in list(self.leases.items()):
                if now - seen <= self.trial_timeout_s:
                    continue
                del self.leases[trial_id]
                if _take_back(self.oracle, tuner_id, trial_id):
                    expired.append(trial_id)
                    self.taken_back.append(trial_id)
                    self.log(f"[chief] {self.name}: trial {trial_id}: no report from {tuner_id} for "
                             f"{now - seen:.0f} s; handed out again")
            return expired

    return Servicer


def _start_server(servicer, host: str, port: int):
    import concurrent.futures

    import grpc
    from keras_tuner.src import protos

    # so_reuseport off: a port another process already serves must fail here, not share its traffic.
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise UserError(f"cannot serve on {host}:{port} (port in use or address not on this machine); "
                          "choose another --port")
    server.start()
    return server


def run_chief(config, *, host: str = DEFAULT_HOST, port: int = BASE_PORT, search_only: bool = False,
              linger_s: float = LINGER_S, trial_timeout_s: float = TRIAL_TIMEOUT_S, log=None) -> dict:
    """Serve every pending project of the run until all trials have ended; then run the reproduce command's remaining
    steps unless ``search_only``. A trial not reported for ``trial_timeout_s`` is handed out again. Returns a summary
    (per project: trials, which tuner ran which trial, trials taken back and late reports ignored).
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True) if config.verbose else None)
    t0 = time.perf_counter()
    jobs = job_list(config)
    if port + len(jobs) - 1 > 65535:  # checked before the corpus is read (and synthesised, with a progress bar)
        raise UserError(f"--port {port}: the run has {len(jobs)} projects, so ports {port}..{port + len(jobs) - 1} "
                          "are needed; choose a lower --port")
    _, _, jobs = load_run(config)
    if config.resume:
        served = [job for job in jobs if not result_path(config, job.condition, job.fold).is_file()]
    else:
        served = list(jobs)
        for job in jobs:  # the final phase resumes: results of an earlier run in --out must not be taken as this one's
            result_path(config, job.condition, job.fold).unlink(missing_ok=True)
    servers, servicers = [], []
    session = uuid.uuid4().hex
    try:
        for job in served:
            servicer = _serve(config, job, log, trial_timeout_s)
            servers.append(_start_server(servicer, host, port + job.index))
            servicers.append(servicer)
        plan = {
            "session": session,
            "status": "running",
            "host": host,
            "base_port": port,
            "pid": os.getpid(),
            "fingerprint": fingerprint(config, jobs),
            "served": [{"name": job.name, "port": port + job.index} for job in served],
        }
        atomic_write_json(plan_path(config), plan)
        log(f"[chief] serving {len(served)} of {len(jobs)} tuner projects on {host}:{port}.."
            f"{port + (served[-1].index if served else 0)}; start workers with the same flags and --role worker")
        _wait_for_searches(servicers, linger_s, log)
        search_s = time.perf_counter() - t0
        summary = {
            "role": "chief",
            "search_s": round(search_s, 3),
            "projects": {
                s.name: {"trials": s.oracle.progress()["done"], "by_tuner": s.handed,
                         "run_times": {k: int(v) for k, v in s.oracle._run_times.items()},
                         "taken_back": s.taken_back, "late_reports_ignored": s.ignored}
                for s in servicers
            },
        }
        atomic_write_json(plan_path(config), {**plan, "status": "finished", "summary": summary})
    except BaseException:
        old = _read_plan(config)
        if old is not None and old.get("session") == session:  # tell this session's workers; leave other plans alone
            try:
                atomic_write_json(plan_path(config), {**old, "status": "interrupted"})
            except WriteError:  # a full disk: the error that stopped the chief is the one to report
                pass
        raise
    finally:
        for server in servers:
            server.stop(grace=1.0)
    log(f"[chief] search finished in {search_s:.1f} s")
    if not search_only:
        from privemo.experiment.protocol import run

        summary["reproduce"] = run(dataclasses.replace(config, resume=True))
    return summary


def _serve(config, job: Job, log, trial_timeout_s: float = TRIAL_TIMEOUT_S):
    """The servicer of one project: its oracle, made (or reloaded with --resume) from the job's hypermodel."""
    from privemo.experiment.fold import hypermodel_for

    seed = fold_seed(config, job.condition, job.fold)
    directory, project = project_location(config, job)
    hypermodel = hypermodel_for(job.condition, config, {}, seed, 300)  # only its grid matters to the oracle
    oracle = make_oracle(hypermodel, directory, project, seed=seed, overwrite=not config.resume)
    # experiment.run_fold's single-process tuner (id "tuner0") reloads a project only when this state file exists;
    # without it, `reproduce --resume` would start these projects afresh.
    state = directory / project / f"{SINGLE_PROCESS_TUNER_ID}.json"
    if not state.is_file():
        atomic_write_text(state, "{}")
    return _servicer_class()(oracle, job.name, log, trial_timeout_s)


def _wait_for_searches(servicers: list, linger_s: float, log) -> None:
    """Until every project's search is complete and the workers have stopped asking (at most ``linger_s`` more)."""
    done_at = None
    reported: set[str] = set()
    while True:
        for s in servicers:
            if s.failure is not None:  # a call could not write the chief's state: stop with its line
                raise s.failure
            try:
                s.expire()
            except BaseException:
                _release_if_held(s.oracle)  # the servers' threads must not wait for it while the chief stops
                raise
        states = [s.oracle.progress() for s in servicers]
        for s, state in zip(servicers, states):
            if state["complete"] and s.name not in reported:
                reported.add(s.name)
                log(f"[chief] {s.name}: search complete ({state['done']} trials)")
        if all(state["complete"] for state in states):
            done_at = done_at or time.monotonic()
            seen = set().union(*(s.seen for s in servicers)) if servicers else set()
            if not servicers or seen <= servicers[-1].stopped or time.monotonic() - done_at > linger_s:
                return
        time.sleep(POLL_S)


# --------------------------------------------------------------------------------------------------------------------
# A worker's link to the chief: every call with a deadline, asked again with back-off until --chief-timeout


class ChiefUnreachable(UserError, keras_tuner.errors.FatalError):
    """The chief has not answered a worker for ``--chief-timeout`` seconds: one line. A keras-tuner ``FatalError`` too,
    so a trial that meets it stops the worker instead of being recorded as a failed (INVALID) trial."""


class ChiefFailed(UserError, keras_tuner.errors.FatalError):
    """The chief answered a worker's call with an error (e.g. it could not write its state: a full disk): one line with
    the chief's own message; the worker stops (a ``FatalError``, as ``ChiefUnreachable``)."""


class Backoff:
    """Waits between the tries of something that does not answer: ``first_s``, then twice as long each time up to
    ``max_s``, for at most ``timeout_s`` from the first failure. ``failed()`` after each failure: False once
    ``timeout_s`` has passed (give up), else it sleeps (never past the timeout) and returns True; ``reset()`` after a
    success. ``silent_s()`` is how long it has been failing."""

    def __init__(self, timeout_s: float, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S, *,
                 clock=time.monotonic, sleep=time.sleep):
        self.timeout_s, self.first_s, self.max_s = float(timeout_s), float(first_s), float(max_s)
        self.clock, self.sleep = clock, sleep
        self.since: float | None = None  # when the first failed try began
        self.delay = self.first_s
        self.waits: list[float] = []  # every sleep (for the tests)

    def reset(self) -> None:
        self.since, self.delay = None, self.first_s

    def begin(self) -> float:
        """Call before a try; returns the time it began (the silence counts from the first failed try's start)."""
        return self.clock()

    def silent_s(self) -> float:
        return 0.0 if self.since is None else self.clock() - self.since

    def left_s(self) -> float:
        return self.timeout_s - self.silent_s()

    def failed(self, began: float | None = None) -> bool:
        if self.since is None:
            self.since = self.clock() if began is None else began
        left = self.left_s()
        if left <= 0:
            return False
        wait = min(self.delay, left)
        self.waits.append(wait)
        self.sleep(wait)
        self.delay = min(self.delay * 2, self.max_s)
        return True


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _unreachable(host: str, port: int, timeout_s: float, where: str = "") -> ChiefUnreachable:
    return ChiefUnreachable(f"the chief at {host}:{port} has not answered for {timeout_s:.0f} s (--chief-timeout)"
                            f"{where}; start it again with --resume, then this worker")


def _oracle_client_class():
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_client import OracleClient

    class ChiefClient(OracleClient):
        """keras-tuner's ``OracleClient`` (a worker's view of the chief's oracle) with a deadline on every call
        (``call_timeout_s``, keras-tuner's is an hour) and, when the chief does not answer (``RETRIED_CODES``), the
        same call again on a new channel after 1, 2, 4, .. 30 s (``Backoff``) until ``chief_timeout_s`` have passed:
        then ``ChiefUnreachable``, one line. A chief started again with ``--resume`` on the same port answers the next
        try, also in the middle of a trial (the trial's reports reach the reloaded oracle, which gives the trial back
        to this worker). Any other error from the chief is ``ChiefFailed`` with the chief's message. Every call is
        safe to repeat (keras-tuner hands a tuner id its ongoing trial again; an ended trial's reports are ignored).
        ``heartbeat(trial_id, step)`` tells the chief the trial is alive (a report without metrics: the trial lease).
        """

        def __init__(self, oracle, host: str, port: int, tuner_id: str, chief_timeout_s: float = CHIEF_TIMEOUT_S,
                     call_timeout_s: float = CALL_TIMEOUT_S, log=None, *, sleep=time.sleep):
            self._oracle = oracle
            self.host, self.port, self.tuner_id = host, int(port), tuner_id
            self.chief_timeout_s, self.call_timeout_s = float(chief_timeout_s), float(call_timeout_s)
            self.log = log or (lambda message: None)
            self.sleep = sleep
            self.multi_worker, self.should_report = False, True
            self.channel = self.stub = None
            self.trial_id: str | None = None  # the trial this worker is in (for the error message)
            self._connect()

        def _connect(self) -> None:
            if self.channel is not None:
                self.channel.close()
            self.channel = grpc.insecure_channel(f"{self.host}:{self.port}")
            self.stub = protos.get_service_grpc().OracleStub(self.channel)

        def close(self) -> None:
            if self.channel is not None:
                self.channel.close()
                self.channel = None

        def _call(self, method: str, request):
            backoff = Backoff(self.chief_timeout_s, sleep=self.sleep)
            while True:
                began = backoff.begin()
                timeout = self.call_timeout_s if backoff.since is None else max(1.0, min(self.call_timeout_s,
                                                                                         backoff.left_s()))
                try:
                    response = getattr(self.stub, method)(request, timeout=timeout)
                except grpc.RpcError as exc:
                    code = exc.code()
                    if code is None or code.name not in RETRIED_CODES:
                        raise ChiefFailed(f"the chief at {self.host}:{self.port} answered {method} with "
                                          f"{getattr(code, 'name', code)}: {_one_line(exc.details())}") from None
                    first = backoff.since is None
                    if not backoff.failed(began):
                        where = f" during trial {self.trial_id}" if self.trial_id else ""
                        raise _unreachable(self.host, self.port, self.chief_timeout_s, where) from None
                    if first:
                        self.log(f"[worker {self.tuner_id}] the chief at {self.host}:{self.port} does not answer "
                                 f"({method}: {code.name}); asking again for up to {self.chief_timeout_s:.0f} s")
                    self._connect()  # a new channel: no wait in gRPC's own reconnection back-off
                    continue
                if backoff.since is not None:
                    self.log(f"[worker {self.tuner_id}] the chief at {self.host}:{self.port} answers again after "
                             f"{backoff.silent_s():.0f} s")
                return response

        def get_space(self):
            from keras_tuner.src.engine import hyperparameters as hp_module

            response = self._call("GetSpace", protos.get_service().GetSpaceRequest())
            return hp_module.HyperParameters.from_proto(response.hyperparameters)

        def update_space(self, hyperparameters):
            if self.should_report:
                self._call("UpdateSpace",
                           protos.get_service().UpdateSpaceRequest(hyperparameters=hyperparameters.to_proto()))

        def create_trial(self, tuner_id):
            response = self._call("CreateTrial", protos.get_service().CreateTrialRequest(tuner_id=tuner_id))
            trial = trial_module.Trial.from_proto(response.trial)
            if trial.status == trial_module.TrialStatus.RUNNING:
                self.trial_id = trial.trial_id
            return trial

        def update_trial(self, trial_id, metrics, step=0):
            if self.should_report:
                response = self._call("UpdateTrial", protos.get_service().UpdateTrialRequest(
                    trial_id=trial_id, metrics=metrics, step=step))
                if not self.multi_worker:
                    return trial_module.Trial.from_proto(response.trial)
            return trial_module.Trial(self.get_space(), status="RUNNING")

        def heartbeat(self, trial_id: str, step: int = 0) -> None:
            """A report without metrics: the chief renews the trial's lease and changes nothing else."""
            if self.should_report:
                self._call("UpdateTrial", protos.get_service().UpdateTrialRequest(trial_id=trial_id, step=step))

        def end_trial(self, trial):
            if self.should_report:
                self._call("EndTrial", protos.get_service().EndTrialRequest(trial=trial.to_proto()))
            self.trial_id = None

        def get_trial(self, trial_id):
            response = self._call("GetTrial", protos.get_service().GetTrialRequest(trial_id=trial_id))
            return trial_module.Trial.from_proto(response.trial)

        def get_best_trials(self, num_trials=1):
            response = self._call("GetBestTrials", protos.get_service().GetBestTrialsRequest(num_trials=num_trials))
            return [trial_module.Trial.from_proto(trial) for trial in response.trials]

    return ChiefClient


def attach_chief_client(tuner, host: str, port: int, tuner_id: str, chief_timeout_s: float = CHIEF_TIMEOUT_S,
                        log=None, **kwargs):
    """Give a keras-tuner worker tuner (made with the ``KERASTUNER_*`` variables set: its oracle is keras-tuner's
    ``OracleClient``) a ``ChiefClient`` instead, and a heartbeat at the end of every epoch of its trials (keras-tuner
    1.4.8's ``Tuner.on_epoch_end`` reports nothing, so without it a healthy trial longer than ``--trial-timeout`` would
    be taken back). keras-tuner's tuner makes no call to the chief before its search, so nothing has used the old
    client. Returns the new client (``kwargs``: ``ChiefClient``'s)."""
    local = getattr(tuner.oracle, "_oracle", tuner.oracle)
    client = _oracle_client_class()(local, host, port, tuner_id, chief_timeout_s, log=log, **kwargs)
    tuner.oracle = client
    on_epoch_end = tuner.on_epoch_end

    def heartbeat(trial, model, epoch, logs=None):
        on_epoch_end(trial, model, epoch, logs=logs)
        client.heartbeat(trial.trial_id, int(epoch))

    tuner.on_epoch_end = heartbeat
    return client


# --------------------------------------------------------------------------------------------------------------------
# The workers


def _read_plan(config) -> dict | None:
    try:
        return read_json(plan_path(config))
    except (OSError, ValueError):
        return None


def _wait_for_plan(config, wait_s: float, log) -> dict:
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        plan = _read_plan(config)
        if plan is not None and plan.get("status") == "running":
            return plan
        if time.monotonic() > deadline:
            raise UserError(f"no running chief: {plan_path(config)} "
                              f"{'is ' + repr(plan.get('status')) if plan else 'does not exist'} after {wait_s:.0f} s; "
                              "start the chief (--role chief) with the same --out")
        if not announced:
            log(f"[worker] waiting for the chief's plan {plan_path(config)}")
            announced = True
        time.sleep(1.0)


def _check_plan(plan: dict, expected: dict) -> None:
    theirs = plan.get("fingerprint", {})
    diff = sorted(k for k in set(theirs) | set(expected) if theirs.get(k) != expected.get(k))
    if diff:
        details = "; ".join(f"{k}: chief {theirs.get(k)!r}, worker {expected.get(k)!r}" for k in diff if k != "jobs")
        if "jobs" in diff:
            details = (details + "; " if details else "") + "the job lists differ (--modality/--task/--adversary/..)"
        raise UserError(f"this worker's flags differ from the chief's ({details}); use the same flags everywhere")


def _probe(host: str, port: int, tuner_id: str, timeout: float):
    """keras-tuner's CreateTrial for ``tuner_id`` (the trial is then this tuner's ongoing trial; keras-tuner hands the
    same trial back to the same tuner id), or None when nothing answers on the port (at once) or the oracle does not
    answer within ``timeout``. The caller waits with ``Backoff`` before asking again."""
    import grpc
    from keras_tuner.src import protos

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        stub = protos.get_service_grpc().OracleStub(channel)
        response = stub.CreateTrial(protos.get_service().CreateTrialRequest(tuner_id=tuner_id), timeout=timeout)
        return trial_module.Trial.from_proto(response.trial)
    except grpc.RpcError as exc:
        if exc.code().name in RETRIED_CODES:
            return None
        raise ChiefFailed(f"the chief at {host}:{port} answered CreateTrial with {exc.code().name}: "
                          f"{_one_line(exc.details())}") from None
    finally:
        channel.close()


def tuner_id_for(worker_id) -> str:
    """keras-tuner's tuner id of worker ``worker_id``: "tuner<N>" for an integer, else the string itself."""
    text = str(worker_id).strip()
    tuner_id = f"tuner{text}" if text.isdigit() else text
    if not tuner_id or "chief" in tuner_id or any(c.isspace() for c in tuner_id):
        raise UserError(f"--worker-id {worker_id!r}: expected an integer or a name without spaces and without "
                          "'chief' (keras-tuner treats any id containing 'chief' as the chief)")
    return tuner_id


def run_worker(config, *, worker_id=0, host: str = DEFAULT_HOST, threads: int | None = None,
               plan_wait_s: float = PLAN_WAIT_S, chief_timeout_s: float = CHIEF_TIMEOUT_S, log=None) -> dict:
    """Train trials of the chief's projects, in the job list's order, going through them again (every ``REPASS_S``)
    until the chief's plan is no longer running, so trials taken back from a lost worker are trained (trial leases).
    A chief that does not answer, between trials or inside one, is asked again after 1, 2, 4, .. 30 s (``Backoff``; a
    chief restarted with ``--resume`` is found again) for ``chief_timeout_s``; then the worker stops with one line
    (``ChiefUnreachable``, a ``UserError``).

    Returns {"role": "worker", "tuner_id", "trials": {project name: [trial ids this worker trained]},
    "trial_times": {project name: {trial id: [start, end] (time.time())}}, "seconds"}.
    """
    from privemo.experiment.inputs import lexical_inputs, prepare_corpus

    log = log or (lambda message: print(message, file=sys.stderr, flush=True) if config.verbose else None)
    tuner_id = tuner_id_for(worker_id)
    t0 = time.perf_counter()
    # The chief's plan first: a worker whose flags differ stops with one line, before it reads (or synthesises) the
    # corpus or starts TensorFlow.
    expected = fingerprint(config, job_list(config))
    plan = _wait_for_plan(config, plan_wait_s, log)
    _check_plan(plan, expected)
    _configure_threads(threads)
    table, folds, jobs = load_run(config)
    by_name = {job.name: job for job in jobs}
    # the features before the first trial is taken: its lease then covers training only (a cold feature cache of a
    # large corpus could outlast --trial-timeout)
    data = prepare_corpus(table, config)
    lexical: dict[int, list] = {}
    ran: dict[str, dict[str, list[float]]] = {}
    position = 0
    backoff = Backoff(chief_timeout_s)  # while the chief does not answer this worker's probes
    while True:
        if position >= len(plan["served"]):  # through every project: again while a chief runs (trial leases)
            new = _read_plan(config)
            if new is None or new.get("status") != "running":
                break
            if new.get("session") != plan["session"]:  # a restarted chief
                _check_plan(new, expected)
                plan = new
            time.sleep(REPASS_S)
            position = 0
            continue
        entry = plan["served"][position]
        job = by_name[entry["name"]]
        began = backoff.begin()
        trial = _probe(host, entry["port"], tuner_id, PROBE_TIMEOUT_S)
        if trial is None:  # not (yet) served: the chief may still be starting, or a new chief has a new plan
            new = _read_plan(config)
            if new is None or new.get("status") != "running" or new.get("session") != plan["session"]:
                if new is not None and new.get("session") == plan["session"]:  # this chief finished or stopped
                    break
                plan = _wait_for_plan(config, plan_wait_s, log)
                _check_plan(plan, expected)
                position = 0
                backoff.reset()
                continue
            if backoff.since is None:
                log(f"[worker {tuner_id}] the chief at {host}:{entry['port']} does not answer; asking again for up "
                    f"to {chief_timeout_s:.0f} s")
            if not backoff.failed(began):
                raise _unreachable(host, entry["port"], chief_timeout_s)
            continue
        backoff.reset()
        if trial.status == trial_module.TrialStatus.IDLE:  # the oracle is waiting for something: ask again
            time.sleep(1.0)
            continue
        if trial.status != trial_module.TrialStatus.RUNNING:
            position += 1  # STOPPED: every trial of this project is handed out
            continue
        if "lexical" in job.condition.modalities and job.fold not in lexical:
            lexical[job.fold], _ = lexical_inputs(data, folds[job.fold].train, config)
        times = _search_project(config, job, data, folds[job.fold], lexical.get(job.fold), tuner_id, host,
                                entry["port"], log, chief_timeout_s)
        ran.setdefault(job.name, {}).update(times)
        position += 1
    summary = {"role": "worker", "tuner_id": tuner_id, "trials": {name: list(times) for name, times in ran.items()},
               "trial_times": ran, "seconds": round(time.perf_counter() - t0, 3)}
    log(f"[worker {tuner_id}] done: {sum(map(len, ran.values()))} trials in {summary['seconds']:.1f} s")
    return summary


def _search_project(config, job: Job, data, fold, lexical, tuner_id: str, host: str, port: int,
                    log, chief_timeout_s: float = CHIEF_TIMEOUT_S) -> dict[str, list[float]]:
    from privemo.search.factory import make_tuner

    from privemo.experiment.fold import search_setup

    setup = search_setup(data, job.fold, fold, job.condition, config, lexical)
    directory, project = project_location(config, job)
    os.environ.update({ENV_TUNER_ID: tuner_id, ENV_ORACLE_IP: host, ENV_ORACLE_PORT: str(port)})
    try:
        # A keras-tuner worker: its oracle is a gRPC client of the chief's; overwrite=False never deletes the project.
        tuner = make_tuner(setup.hypermodel, str(directory), project, seed=setup.seed, overwrite=False)
        # every call to the chief with a deadline and back-off up to --chief-timeout, and a heartbeat every epoch
        client = attach_chief_client(tuner, host, port, tuner_id, chief_timeout_s, log=log)
        ran: dict[str, list[float]] = {}  # trial id -> [start, end] (seconds since the epoch)
        begin, end = tuner.on_trial_begin, tuner.on_trial_end

        def on_trial_begin(trial):
            ran[trial.trial_id] = [time.time()]
            log(f"[worker {tuner_id}] {job.name}: trial {trial.trial_id} {dict(trial.hyperparameters.values)}")
            begin(trial)

        def on_trial_end(trial):
            end(trial)
            ran[trial.trial_id].append(time.time())

        tuner.on_trial_begin, tuner.on_trial_end = on_trial_begin, on_trial_end
        # The reproduce command's own search arguments: validation targets, the privacy probe (probe selection with an
        # adversary) and the trial callbacks (--tensorboard).
        try:
            tuner.search(setup.train_ds, setup.val_inputs, **setup.search_kwargs())
        finally:
            client.close()
    finally:
        for name in (ENV_TUNER_ID, ENV_ORACLE_IP, ENV_ORACLE_PORT):
            os.environ.pop(name, None)
    return ran


def _configure_threads(threads: int | None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already initialised in this process
            pass
    tf.config.experimental.enable_op_determinism()
