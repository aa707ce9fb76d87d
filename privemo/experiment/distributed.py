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

Trial leases: a worker reports every epoch of its trial to the chief (keras-tuner's per-epoch ``update_trial``); a trial
whose worker has not reported for ``--trial-timeout`` seconds (``TRIAL_TIMEOUT_S``) is taken back and handed to the
next worker that asks, with the same trial id and values, so it trains from the same seed and gives the same result.
Workers that have been through every project go through them again until the chief's plan is no longer running, so
the remaining workers pick such a trial up. A report that arrives for a trial already ended (the lost worker was only
slow) is ignored: the first end wins, and both trainings leave the same weights. A worker started again with the same
``--worker-id`` still gets its unfinished trial back when its lease has not expired.

A chief killed and started again with ``--resume`` on the same ports: workers blocked in keras-tuner's gRPC calls
(``wait_for_ready``) carry on with it, and workers between trials adopt its new plan. A reloaded project hands out again
the trials that were running (keras-tuner's retry queue), and also a trial whose ``trial.json`` was written just before
the kill but not yet the oracle's own state (``requeue_orphans``). Between trials a worker whose chief does not answer
stops after ``--chief-timeout`` seconds (``CHIEF_TIMEOUT_S``) with one line; inside a trial it waits in keras-tuner's
gRPC calls up to keras-tuner's one-hour timeout. Trials are not split across machines (one trial = one training in one
process), and the final phase (attacks) runs on the chief's machine only (``--jobs`` processes). Nothing here needs a
GPU; a worker uses one when TensorFlow sees one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from privemo._io import atomic_write_json, atomic_write_text, read_json
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
CHIEF_TIMEOUT_S = 600.0  # a worker between trials whose chief has not answered for this long stops (--chief-timeout)
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
def _unqueue(oracle, trial_id: str) -> None:
    """A trial taken back and not yet handed out again, now reported ended by its first worker: not to be run again."""
    while trial_id in oracle._retry_queue:
        oracle._retry_queue.remove(trial_id)


def _servicer_class():
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    class Servicer(OracleServicer):
        """keras-tuner's servicer, recording which tuner ran which trial and which tuners were told to stop, with trial
        leases (the module docstring): ``expire()`` takes back trials not reported for ``trial_timeout_s``."""

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

        def UpdateTrial(self, request, context):
            trial = self.oracle.trials.get(request.trial_id)
            if trial is not None and trial.status in _ENDED:  # a late heartbeat: leave the ended trial as it is
                return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
            if request.trial_id in self.leases:
                self.leases[request.trial_id] = (self.leases[request.trial_id][0], time.monotonic())
            return super().UpdateTrial(request, context)

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
            atomic_write_json(plan_path(config), {**old, "status": "interrupted"})
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
            s.expire()
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
    same trial back to the same tuner id), or None when the oracle does not answer within ``timeout``."""
    import grpc
    from keras_tuner.src import protos

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        stub = protos.get_service_grpc().OracleStub(channel)
        response = stub.CreateTrial(protos.get_service().CreateTrialRequest(tuner_id=tuner_id), wait_for_ready=True,
                                    timeout=timeout)
        return trial_module.Trial.from_proto(response.trial)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
            return None
        raise
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
    Between trials, a chief that does not answer is asked again (a chief restarted with ``--resume`` is found again)
    for ``chief_timeout_s``; then the worker stops with a ``UserError``.

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
    silent_since = None  # when the chief stopped answering this worker's probes
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
        trial = _probe(host, entry["port"], tuner_id, PROBE_TIMEOUT_S)
        silent_since = (silent_since or time.monotonic()) if trial is None else None
        if silent_since is not None and time.monotonic() - silent_since > chief_timeout_s:
            raise UserError(f"the chief at {host}:{entry['port']} has not answered for {chief_timeout_s:.0f} s "
                            "(--chief-timeout); start it again with --resume, then this worker")
        if trial is None:  # not (yet) served: the chief may still be starting, or a new chief has a new plan
            new = _read_plan(config)
            if new is None or new.get("status") != "running" or new.get("session") != plan["session"]:
                if new is not None and new.get("session") == plan["session"]:  # this chief finished or stopped
                    break
                plan = _wait_for_plan(config, plan_wait_s, log)
                _check_plan(plan, expected)
                position = 0
            continue
        if trial.status == trial_module.TrialStatus.IDLE:  # the oracle is waiting for something: ask again
            time.sleep(1.0)
            continue
        if trial.status != trial_module.TrialStatus.RUNNING:
            position += 1  # STOPPED: every trial of this project is handed out
            continue
        if "lexical" in job.condition.modalities and job.fold not in lexical:
            lexical[job.fold], _ = lexical_inputs(data, folds[job.fold].train, config)
        times = _search_project(config, job, data, folds[job.fold], lexical.get(job.fold), tuner_id, host,
                                entry["port"], log)
        ran.setdefault(job.name, {}).update(times)
        position += 1
    summary = {"role": "worker", "tuner_id": tuner_id, "trials": {name: list(times) for name, times in ran.items()},
               "trial_times": ran, "seconds": round(time.perf_counter() - t0, 3)}
    log(f"[worker {tuner_id}] done: {sum(map(len, ran.values()))} trials in {summary['seconds']:.1f} s")
    return summary


def _search_project(config, job: Job, data, fold, lexical, tuner_id: str, host: str, port: int,
                    log) -> dict[str, list[float]]:
    from privemo.search.factory import make_tuner

    from privemo.experiment.fold import search_setup

    setup = search_setup(data, job.fold, fold, job.condition, config, lexical)
    directory, project = project_location(config, job)
    os.environ.update({ENV_TUNER_ID: tuner_id, ENV_ORACLE_IP: host, ENV_ORACLE_PORT: str(port)})
    try:
        # A keras-tuner worker: its oracle is a gRPC client of the chief's; overwrite=False never deletes the project.
        tuner = make_tuner(setup.hypermodel, str(directory), project, seed=setup.seed, overwrite=False)
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
        tuner.search(setup.train_ds, setup.val_inputs, **setup.search_kwargs())
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
