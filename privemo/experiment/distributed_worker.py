"""A worker: ``run_worker`` checks its flags against the chief's plan, prepares the corpus, and walks through the
chief's projects in the job list's order (``_Walk``), asking each project's oracle for trials (``_probe``) and training
them with the reproduce command's own data, hypermodel and tuner (``_search_project``) until the chief's plan is no
longer running. ``privemo.experiment.distributed`` describes the engine and re-exports every name.
"""

from __future__ import annotations

import os
import sys
import time

from keras_tuner.engine import trial as trial_module

from privemo._util.validation import UserError
from privemo.experiment.distributed_client import Backoff, ChiefFailed, _unreachable, attach_chief_client
from privemo.experiment.distributed_plan import (CHIEF_TIMEOUT_S, DEFAULT_HOST, ENV_ORACLE_IP, ENV_ORACLE_PORT,
                                                 ENV_TUNER_ID, PLAN_WAIT_S, PROBE_TIMEOUT_S, REPASS_S, RETRIED_CODES,
                                                 Job, _check_plan, _one_line, _read_plan, _wait_for_plan, fingerprint,
                                                 job_list, load_run, project_location)


def _probe(host: str, port: int, tuner_id: str, timeout: float):
    """keras-tuner's CreateTrial for ``tuner_id`` (the trial is then this tuner's ongoing trial; keras-tuner hands the
    same trial back to the same tuner id), or None when nothing answers on the port (at once) or the oracle does not
    answer within ``timeout``. The caller waits with ``Backoff`` before asking again."""
    import grpc
    from privemo.search._keras_tuner import protos

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
    from privemo.experiment.inputs import prepare_corpus

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
    # the features before the first trial is taken: its lease then covers training only (a cold feature cache of a
    # large corpus could outlast --trial-timeout)
    data = prepare_corpus(table, config)
    walk = _Walk(config, expected, plan, tuner_id, host, plan_wait_s, chief_timeout_s, log, jobs, data, folds)
    ran = walk.run()
    summary = {"role": "worker", "tuner_id": tuner_id, "trials": {name: list(times) for name, times in ran.items()},
               "trial_times": ran, "seconds": round(time.perf_counter() - t0, 3)}
    log(f"[worker {tuner_id}] done: {sum(map(len, ran.values()))} trials in {summary['seconds']:.1f} s")
    return summary


class _Walk:
    """One worker's way through the chief's projects (``run_worker``): the plan it follows, its position in the plan's
    projects, the back-off while the chief does not answer, and the trials it trained (``ran``)."""

    def __init__(self, config, expected: dict, plan: dict, tuner_id: str, host: str, plan_wait_s: float,
                 chief_timeout_s: float, log, jobs: list[Job], data, folds):
        self.config, self.expected, self.plan, self.tuner_id, self.host = config, expected, plan, tuner_id, host
        self.plan_wait_s, self.chief_timeout_s, self.log = plan_wait_s, chief_timeout_s, log
        self.by_name = {job.name: job for job in jobs}
        self.data, self.folds = data, folds
        self.lexical: dict[int, list] = {}
        self.ran: dict[str, dict[str, list[float]]] = {}
        self.position = 0
        self.backoff = Backoff(chief_timeout_s)  # while the chief does not answer this worker's probes

    def run(self) -> dict[str, dict[str, list[float]]]:
        """Project after project until the chief's plan is no longer running; returns ``ran``: {project name: {trial
        id: [start, end]}}."""
        while True:
            if self.position >= len(self.plan["served"]):  # through every project: again while a chief runs
                if not self._again():
                    break
            elif not self._visit(self.plan["served"][self.position]):
                break
        return self.ran

    def _again(self) -> bool:
        """Through every project: go through them again (trial leases) while a chief runs, after ``REPASS_S``, with a
        restarted chief's plan; False when the plan is no longer running."""
        new = _read_plan(self.config)
        if new is None or new.get("status") != "running":
            return False
        if new.get("session") != self.plan["session"]:  # a restarted chief
            _check_plan(new, self.expected)
            self.plan = new
        time.sleep(REPASS_S)
        self.position = 0
        return True

    def _visit(self, entry: dict) -> bool:
        """Ask the project at ``entry`` for a trial and train it, or move on; False when this worker is done."""
        job = self.by_name[entry["name"]]
        began = self.backoff.begin()
        trial = _probe(self.host, entry["port"], self.tuner_id, PROBE_TIMEOUT_S)
        if trial is None:  # not (yet) served: the chief may still be starting, or a new chief has a new plan
            return self._unanswered(entry, began)
        self.backoff.reset()
        if trial.status == trial_module.TrialStatus.IDLE:  # the oracle is waiting for something: ask again
            time.sleep(1.0)
            return True
        if trial.status == trial_module.TrialStatus.RUNNING:  # else STOPPED: every trial of this project is handed out
            self._train(job, entry["port"])
        self.position += 1
        return True

    def _unanswered(self, entry: dict, began: float) -> bool:
        """A project that did not answer: follow a new chief's plan, stop when this chief is done (False), else ask
        again after the back-off's wait (``ChiefUnreachable`` once ``chief_timeout_s`` have passed)."""
        new = _read_plan(self.config)
        if new is None or new.get("status") != "running" or new.get("session") != self.plan["session"]:
            if new is not None and new.get("session") == self.plan["session"]:  # this chief finished or stopped
                return False
            self.plan = _wait_for_plan(self.config, self.plan_wait_s, self.log)
            _check_plan(self.plan, self.expected)
            self.position = 0
            self.backoff.reset()
            return True
        if self.backoff.since is None:
            self.log(f"[worker {self.tuner_id}] the chief at {self.host}:{entry['port']} does not answer; asking again "
                     f"for up to {self.chief_timeout_s:.0f} s")
        if not self.backoff.failed(began):
            raise _unreachable(self.host, entry["port"], self.chief_timeout_s)
        return True

    def _train(self, job: Job, port: int) -> None:
        """Train the trials this worker gets from ``job``'s project (its search), with the fold's lexical inputs."""
        from privemo.experiment.inputs import lexical_inputs

        if "lexical" in job.condition.modalities and job.fold not in self.lexical:
            self.lexical[job.fold], _ = lexical_inputs(self.data, self.folds[job.fold].train, self.config)
        times = _search_project(self.config, job, self.data, self.folds[job.fold], self.lexical.get(job.fold),
                                self.tuner_id, self.host, port, self.log, self.chief_timeout_s)
        self.ran.setdefault(job.name, {}).update(times)


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
