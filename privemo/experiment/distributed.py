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
``privemo._util.io.WriteError``) stops with that line, and its workers stop with it (``ChiefFailed``).

Trials are not split across machines (one trial = one training in one process), and the final phase (attacks) runs on
the chief's machine only (``--jobs`` processes). Nothing here needs a GPU; a worker uses one when TensorFlow sees one.

The code, by role: ``distributed_plan`` (the settings, the job list and the chief's plan, shared by both roles),
``distributed_oracle`` (the chief's oracles and the lease operations on them), ``distributed_servicer`` (the chief's
gRPC servicer with its trial leases), ``distributed_chief`` (``run_chief``), ``distributed_client`` (a worker's link
to the chief: ``Backoff``, ``ChiefClient``, heartbeats) and ``distributed_worker`` (``run_worker``). This module
re-exports every name it defined before they were split off; a setting changed for a test is changed in the module that
reads it (e.g. ``distributed_worker.PROBE_TIMEOUT_S``).
"""

from __future__ import annotations

from privemo.experiment.distributed_chief import _serve, _wait_for_searches, run_chief  # noqa: F401
from privemo.experiment.distributed_client import (  # noqa: F401
    Backoff,
    ChiefFailed,
    ChiefUnreachable,
    _oracle_client_class,
    _unreachable,
    attach_chief_client,
)
from privemo.experiment.distributed_oracle import (  # noqa: F401
    _ENDED,
    _adopt,
    _release_if_held,
    _take_back,
    _unqueue,
    make_oracle,
    requeue_orphans,
)
from privemo.experiment.distributed_plan import (  # noqa: F401
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    BASE_PORT,
    CALL_TIMEOUT_S,
    CHIEF_TIMEOUT_S,
    DEFAULT_HOST,
    ENV_ORACLE_IP,
    ENV_ORACLE_PORT,
    ENV_TUNER_ID,
    LINGER_S,
    PLAN_WAIT_S,
    POLL_S,
    PROBE_TIMEOUT_S,
    REPASS_S,
    RETRIED_CODES,
    SINGLE_PROCESS_TUNER_ID,
    TRIAL_TIMEOUT_S,
    Job,
    _check_plan,
    _one_line,
    _read_plan,
    _wait_for_plan,
    fingerprint,
    job_list,
    load_run,
    plan_path,
    project_location,
)
from privemo.experiment.distributed_servicer import _guarded, _servicer_class, _start_server  # noqa: F401
from privemo.experiment.distributed_worker import (  # noqa: F401
    _configure_threads,
    _probe,
    _search_project,
    run_worker,
    tuner_id_for,
)
