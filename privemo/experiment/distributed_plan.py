"""What every process of a distributed search shares: the settings (ports, timeouts, keras-tuner's environment
variables), the run's job list (one tuner project per (condition, outer fold), project ``i`` on base port + ``i``) and
the chief's plan (``<out>/work/distributed/plan.json``) with a worker's handshake against it (``_wait_for_plan``,
``_check_plan``). ``privemo.experiment.distributed`` describes the whole engine and re-exports every name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from privemo._util.io import read_json
from privemo._util.validation import UserError
from privemo.experiment.config import run_settings, work_dir

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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


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
# A worker's handshake with the chief's plan


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
