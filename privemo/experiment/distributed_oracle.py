"""The chief's oracles: ``make_oracle`` makes or reloads one tuner project's ``ConcurrentGridSearchOracle`` (with
``requeue_orphans`` after a kill), and the trial-lease operations the servicer makes on it under keras-tuner's lock:
take a trial back from a silent worker (``_take_back``), give a requeued trial back to the worker that reports on it
(``_adopt``), drop a taken-back trial that ended after all (``_unqueue``), and free the lock after an error
(``_release_if_held``). ``privemo.experiment.distributed`` describes the engine and re-exports every name.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import keras_tuner
from keras_tuner.engine import trial as trial_module

from privemo.nn.training import OBJECTIVE
from privemo.search.tuning import ConcurrentGridSearchOracle


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
    from privemo.search._keras_tuner import oracle_module

    if oracle_module.THREADS[oracle] == threading.current_thread().name:
        oracle_module.THREADS[oracle] = None
        oracle_module.LOCKS[oracle].release()
