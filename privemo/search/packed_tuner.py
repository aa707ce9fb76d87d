"""The keras-tuner side of packed trials (``privemo.search.packing``): ``PackedGridSearch`` takes up to ``pack`` untried
combinations of one network shape from its oracle at a time, trains them packed and records each as its own finished
trial (metrics, history.json, checkpoint), exactly as ``privemo.search.tuning.GridSearch`` records a trial.
``privemo.search.factory.make_tuner(..., pack=K)`` returns one.
"""


from __future__ import annotations

import traceback
from typing import Sequence

import keras_tuner
from keras_tuner.engine import trial as trial_module

from privemo._util.io import atomic_write_json
from privemo._util.validation import check_int
from privemo.nn.training import save_checkpoint
from privemo.search._keras_tuner import dist_utils, tuner_utils
from privemo.search._keras_tuner import kt_config as tuner_config
from privemo.search.packing import architecture
from privemo.search.tuning import (
    stop_on_write_errors,
    ConcurrentGridSearch,
    ConcurrentGridSearchOracle,
    EpochProgress,
    history_path,
)


class PackedGridSearchOracle(ConcurrentGridSearchOracle):
    """A ``ConcurrentGridSearchOracle`` that can hand out several trials of one network shape at once
    (``create_pack``). Its state and its order are its parent's: a project made by either reloads in the other."""

    _shape: tuple | None = None  # only set inside create_pack

    def populate_space(self, trial_id: str) -> dict:
        if self._shape is None:
            return super().populate_space(trial_id)
        for values in self._combinations():
            if not self._duplicate(values) and architecture(values) == self._shape:
                return {"status": trial_module.TrialStatus.RUNNING, "values": values}
        return {"status": trial_module.TrialStatus.IDLE, "values": None}

    @keras_tuner.synchronized
    def create_pack(self, tuner_ids: Sequence[str], same_shape: bool = True) -> list:
        """Up to ``len(tuner_ids)`` trials, one per tuner id (keras-tuner keeps one ongoing trial per id): the first
        untried combination, then (``same_shape``) further untried combinations of its network shape in grid order,
        or (not ``same_shape``) the next untried combinations whatever their shape. A trial waiting for a retry is
        handed out first, as keras-tuner does. The list ends at the first id that gets no running trial."""
        first = self.create_trial(tuner_ids[0])
        trials = [first]
        if first.status != trial_module.TrialStatus.RUNNING:
            return trials
        self._shape = architecture(first.hyperparameters.values) if same_shape else None
        try:
            for tuner_id in tuner_ids[1:]:
                trial = self.create_trial(tuner_id)
                if trial.status != trial_module.TrialStatus.RUNNING:
                    self.tuner_ids.discard(tuner_id)
                    break
                trials.append(trial)
        finally:
            self._shape = None
        return trials


class PackedGridSearch(ConcurrentGridSearch):
    """``privemo.search.tuning.ConcurrentGridSearch`` that trains up to ``pack`` trials at a time, packed.

    Each round takes up to ``pack`` untried combinations of one network shape from the oracle (``same_shape``; with
    ``same_shape=False`` the next untried combinations of any shape), under tuner ids ``<tuner id>``, ``<tuner id>-m1``
    ... (keras-tuner keeps one ongoing trial per tuner id), trains them with ``fit_pack`` and records every member as
    its own finished trial: the same metrics, ``history.json``, ``build_config.json`` and checkpoint as
    ``GridSearch.run_trial`` writes, so ``load_model``, ``trial_history`` and everything downstream read them as
    ordinary trials. The trial ids and values are those of the ordinary tuner (grid order). Without ``fit_pack`` (a
    hypermodel that cannot be packed), ``pack=1`` or ``executions_per_trial != 1`` it runs the ordinary search. With a
    keras-tuner oracle client (distributed worker) the round takes the next untried combinations one by one (any shape).

    Args: as ``ConcurrentGridSearch``, plus ``pack`` (integer >= 1, members per compiled model), ``same_shape`` and
    ``fit_pack``: the packed training, a function ``(hps, *fit_args, callbacks=[one list per member], **fit_kwargs)``
    returning per configuration (trained network, the scores ``HyperModel.fit`` returns, with their ``history``)
    (``EmotionPrivacyHyperModel.fit_packed``; ``make_tuner`` passes it where ``packable``).
    """

    def __init__(self, hypermodel=None, objective=None, max_trials=None, seed=None, hyperparameters=None,
                 tune_new_entries=True, allow_new_entries=True, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3, pack: int = 2, same_shape: bool = True, fit_pack=None,
                 cached_network=None, **kwargs):
        self.pack = check_int("pack", pack, 1)
        self.same_shape = bool(same_shape)
        self.fit_pack = fit_pack
        self.cached_network = cached_network
        oracle = PackedGridSearchOracle(
            objective=objective, max_trials=max_trials, seed=seed, hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries, allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial, max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        keras_tuner.Tuner.__init__(self, oracle, hypermodel, **kwargs)

    def search(self, *fit_args, **fit_kwargs):
        if (self.pack == 1 or self.executions_per_trial != 1 or self.fit_pack is None
                or dist_utils.is_chief_oracle()):
            return super().search(*fit_args, **fit_kwargs)
        if "verbose" in fit_kwargs and (not dist_utils.has_chief_oracle() or dist_utils.is_chief_oracle()):
            self.oracle.verbose = fit_kwargs.get("verbose")
        self.on_search_begin()
        while True:
            self.pre_create_trial()
            trials = self._create_trials()
            if trials[0].status == trial_module.TrialStatus.STOPPED:
                break  # the oracle triggered exit
            running = [t for t in trials if t.status == trial_module.TrialStatus.RUNNING]
            if not running:  # IDLE: the oracle is calculating, ask again
                continue
            for trial in running:
                self.on_trial_begin(trial)
            self._try_run_and_update_trials(running, *fit_args, **fit_kwargs)
            for trial in running:
                self.on_trial_end(trial)
        self.on_search_end()

    def _tuner_ids(self) -> list[str]:
        return [self.tuner_id] + [f"{self.tuner_id}-m{i}" for i in range(1, self.pack)]

    def _create_trials(self) -> list:
        ids = self._tuner_ids()
        if isinstance(self.oracle, PackedGridSearchOracle):
            return self.oracle.create_pack(ids, self.same_shape)
        trials = [self.oracle.create_trial(ids[0])]  # an oracle client: one trial at a time
        while trials[-1].status == trial_module.TrialStatus.RUNNING and len(trials) < len(ids):
            trial = self.oracle.create_trial(ids[len(trials)])
            if trial.status != trial_module.TrialStatus.RUNNING:
                break
            trials.append(trial)
        return trials

    def _try_run_and_update_trials(self, trials, *fit_args, **fit_kwargs):
        """keras-tuner's ``_try_run_and_update_trial`` for a pack: every member's metrics go to the oracle; an error
        marks every member of the pack as keras-tuner marks one trial (FAILED or INVALID, with the traceback)."""
        objective = self.oracle.objective
        try:
            with stop_on_write_errors(self.project_dir):  # a full disk stops the search (TrialWriteError), as one trial
                results = self.run_trials(trials, *fit_args, **fit_kwargs)
            for trial, result in zip(trials, results):
                tuner_utils.validate_trial_results(result, objective, "HyperModel.fit()")
                self.oracle.update_trial(trial.trial_id, tuner_utils.convert_to_metrics_dict(result, objective),
                                         step=tuner_utils.get_best_step(result, objective))
                trial.status = trial_module.TrialStatus.COMPLETED
        except Exception as exc:
            if isinstance(exc, keras_tuner.errors.FatalError):
                raise
            if tuner_config.DEBUG:
                traceback.print_exc()
            status = (trial_module.TrialStatus.FAILED if isinstance(exc, keras_tuner.errors.FailedTrialError)
                      else trial_module.TrialStatus.INVALID)
            message = traceback.format_exc()
            for trial in trials:
                if trial.status != trial_module.TrialStatus.COMPLETED:
                    trial.status, trial.message = status, message

    def run_trials(self, trials, *args, **kwargs) -> list[list[dict]]:
        """Train ``trials`` packed and write each one's history, build config and checkpoint; returns each trial's
        results as ``GridSearch.run_trial`` returns them ([best-epoch scores])."""
        callbacks = kwargs.pop("callbacks", [])
        per_member = []
        first_no = len(self.oracle.trials) - len(trials)
        for n, trial in enumerate(trials):
            member_callbacks = self._deepcopy_callbacks(callbacks)
            self._configure_tensorboard_dir(member_callbacks, trial, 0)
            if self.report is not None:
                label = f"{self.report_label}trial {first_no + n + 1}/{self.space_size}"
                member_callbacks.append(EpochProgress(self.report, label))
            per_member.append(member_callbacks)
        outcomes = self.fit_pack([t.hyperparameters for t in trials], *args, callbacks=per_member, **kwargs)
        results = []
        for trial, (member, scores) in zip(trials, outcomes):
            atomic_write_json(history_path(self, trial.trial_id), scores.history)
            model = self._try_build(trial.hyperparameters)  # the trial's own network (the cached one, when cached)
            model.set_weights(member.get_weights())
            self.save_build_config(trial.trial_id, model)
            save_checkpoint(model, self._get_checkpoint_fname(trial.trial_id))  # atomic: never a truncated checkpoint
            results.append([dict(scores)])
        return results
