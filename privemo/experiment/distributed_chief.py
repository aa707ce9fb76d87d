"""The chief: ``run_chief`` serves one oracle per pending tuner project of the run (project ``i`` on base port + ``i``),
writes the plan the workers read, takes back the trials of silent workers until every search is complete, and then runs
the rest of the reproduce command. ``privemo.experiment.distributed`` describes the engine and re-exports every name.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid

from privemo._util.io import WriteError, atomic_write_json, atomic_write_text
from privemo._util.validation import UserError
from privemo.experiment.config import fold_seed, result_path
from privemo.experiment.distributed_oracle import _release_if_held, make_oracle
from privemo.experiment.distributed_plan import (BASE_PORT, DEFAULT_HOST, LINGER_S, POLL_S, SINGLE_PROCESS_TUNER_ID,
                                                 TRIAL_TIMEOUT_S, Job, _read_plan, fingerprint, job_list, load_run,
                                                 plan_path, project_location)
from privemo.experiment.distributed_servicer import _servicer_class, _start_server


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
    served = _pending(config, jobs)
    servers, servicers = [], []
    session = uuid.uuid4().hex
    try:
        for job in served:
            servicer = _serve(config, job, log, trial_timeout_s)
            servers.append(_start_server(servicer, host, port + job.index))
            servicers.append(servicer)
        plan = _plan(config, session, host, port, jobs, served)
        atomic_write_json(plan_path(config), plan)
        log(f"[chief] serving {len(served)} of {len(jobs)} tuner projects on {host}:{port}.."
            f"{port + (served[-1].index if served else 0)}; start workers with the same flags and --role worker")
        _wait_for_searches(servicers, linger_s, log)
        search_s = time.perf_counter() - t0
        summary = {"role": "chief", "search_s": round(search_s, 3), "projects": _project_summaries(servicers)}
        atomic_write_json(plan_path(config), {**plan, "status": "finished", "summary": summary})
    except BaseException:
        _mark_interrupted(config, session)
        raise
    finally:
        for server in servers:
            server.stop(grace=1.0)
    log(f"[chief] search finished in {search_s:.1f} s")
    if not search_only:
        from privemo.experiment.protocol import run

        summary["reproduce"] = run(dataclasses.replace(config, resume=True))
    return summary


def _pending(config, jobs: list[Job]) -> list[Job]:
    """The jobs the chief serves: with ``--resume`` those without a result; else all, their old results deleted."""
    if config.resume:
        served = [job for job in jobs if not result_path(config, job.condition, job.fold).is_file()]
    else:
        served = list(jobs)
        for job in jobs:  # the final phase resumes: results of an earlier run in --out must not be taken as this one's
            result_path(config, job.condition, job.fold).unlink(missing_ok=True)
    return served


def _plan(config, session: str, host: str, port: int, jobs: list[Job], served: list[Job]) -> dict:
    """The plan the workers read (``plan_path``): the session, where each served project is, the run's fingerprint."""
    return {
        "session": session,
        "status": "running",
        "host": host,
        "base_port": port,
        "pid": os.getpid(),
        "fingerprint": fingerprint(config, jobs),
        "served": [{"name": job.name, "port": port + job.index} for job in served],
    }


def _project_summaries(servicers: list) -> dict:
    """Per project: trials done, which tuner ran which trial, run times, trials taken back, late reports ignored."""
    return {
        s.name: {"trials": s.oracle.progress()["done"], "by_tuner": s.handed,
                 "run_times": {k: int(v) for k, v in s.oracle._run_times.items()},
                 "taken_back": s.taken_back, "late_reports_ignored": s.ignored}
        for s in servicers
    }


def _mark_interrupted(config, session: str) -> None:
    """A chief stopped before the end of its search marks its plan "interrupted", so its workers stop too."""
    old = _read_plan(config)
    if old is not None and old.get("session") == session:  # tell this session's workers; leave other plans alone
        try:
            atomic_write_json(plan_path(config), {**old, "status": "interrupted"})
        except WriteError:  # a full disk: the error that stopped the chief is the one to report
            pass


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
