"""The tuners of privemo's searches (keras-tuner's ``Tuner`` role): they run trials and record them.

``GridSearch`` is keras-tuner's GridSearch with one checkpoint per trial, the trial's learning curve kept beside it
(``history_path``, ``trial_history``), progress lines, and no session reset before a build (so cached networks keep their
traced functions); ``ConcurrentGridSearch`` runs it with ``privemo.search.oracle.ConcurrentGridSearchOracle``. Of the
HyperModel they call keras-tuner's interface only, ``build(hp)`` and ``fit(hp, model, ...)``: ``fit`` ends with the
best epoch's weights (its checkpoint is written once, after it), and a ``history`` on its result (``TrialScores``) is
the learning curve. A network cache to load checkpoints into is given explicitly (``cached_network``).
``privemo.search.factory.make_tuner`` sets one up (or ``privemo.search.packed_tuner.PackedGridSearch``).

The search's three roles live in three modules, as in keras-tuner: the HyperModel (``privemo.search.hypermodel``), the
oracle (``privemo.search.oracle``) and the tuners (here); this module also re-exports the first two's names.
"""

from __future__ import annotations

import contextlib
import os
import time
from math import prod
from pathlib import Path
from typing import Mapping

import keras
import keras_tuner
from keras_tuner.engine import trial as trial_module

from privemo.search._keras_tuner import tuner_module, tuner_utils
from privemo.search._tuner_io import AtomicStateTuner
from privemo._util.io import WriteError, atomic_write_json, read_json, write_error
from privemo.nn.training import OBJECTIVE, save_checkpoint
from privemo.search.hypermodel import (  # noqa: F401  (re-exported: the HyperModel's names)
    ARCHITECTURE_KEYS,
    GRID_KEYS,
    EmotionPrivacyHyperModel,
    TrialScores,
    objective,
    trial_scores,
)
from privemo.search.oracle import ConcurrentGridSearchOracle, GridSearchOracle

__all__ = ["objective", "EmotionPrivacyHyperModel", "search_space_size", "GridSearch", "EpochProgress",
           "ConcurrentGridSearch", "ConcurrentGridSearchOracle", "GridSearchOracle"]

#: searches with more trials than this report every finished trial (``GridSearch.trial_report``)
TRIAL_REPORT_MIN = 8


class EpochProgress(keras.callbacks.Callback):
    """Reports "<label> epoch e/E: val_objective ..., val_emotion_uar ..." at the end of every epoch (after the
    validation scores are in the logs)."""

    def __init__(self, report, label: str):
        super().__init__()
        self.report, self.label = report, label

    def on_epoch_end(self, epoch, logs=None):
        scores = ", ".join(f"{k} {v:.3f}" for k, v in (logs or {}).items() if k.startswith("val_") and k.endswith(
            ("_uar", "objective")))
        self.report(f"{self.label} epoch {epoch + 1}/{self.params.get('epochs', '?')}: {scores}")


def search_space_size(tuner: keras_tuner.Tuner) -> int:
    """Number of configurations in a tuner's search space (every hyper-parameter is a Choice)."""
    space = tuner.oracle.get_space().space
    return prod(len(hp.values) for hp in space)


class TrialWriteError(WriteError, keras_tuner.errors.FatalError):
    """A ``WriteError`` met inside a trial (a full disk, a quota, a read-only folder): also a keras-tuner ``FatalError``,
    so keras-tuner stops the search with it instead of recording the trial as INVALID and going on. The trial stays
    running in the oracle's state, so ``--resume`` trains it again once there is space."""


@contextlib.contextmanager
def stop_on_write_errors(path):
    """Inside the block (a trial), a ``WriteError``, or an ``OSError`` of the disk or folder
    (``privemo._util.io.write_error``; named by its own file name, else ``path``), is raised as a ``TrialWriteError``:
    one line naming the file."""
    try:
        yield
    except (WriteError, OSError) as exc:
        if isinstance(exc, keras_tuner.errors.FatalError):
            raise
        error = write_error(getattr(exc, "path", None) or getattr(exc, "filename", None) or path, exc)
        if error is None:
            raise
        fatal = TrialWriteError(str(error))
        fatal.path, fatal.errno = error.path, error.errno
        raise fatal from exc


class GridSearch(AtomicStateTuner, keras_tuner.GridSearch):
    """keras-tuner's GridSearch, minus its unconditional TensorBoard import, its session reset before every build and its
    checkpoint at every improving epoch (one per trial, after ``HyperModel.fit``, which ends with the best epoch's
    weights), with its state files written atomically and a damaged one named on reload (``privemo.search._tuner_io``:
    its oracle is ``privemo.search.oracle.GridSearchOracle``).

    keras-tuner 1.4.8 imports ``tensorboard`` in every trial on the TensorFlow backend, although it only uses it to patch a
    ``TensorBoard`` callback; TensorFlow 2.16+ no longer installs tensorboard. This subclass only does that patching when
    such a callback is present, so tensorboard stays optional.

    Args: as ``keras_tuner.GridSearch``, plus ``cached_network``: optional function of a trial's ``HyperParameters``
    returning an already built network of its configuration to load the trial's checkpoint into, or None to build one
    (``EmotionPrivacyHyperModel.cached_model``; ``make_tuner`` passes it).
    """

    def __init__(self, hypermodel=None, objective=None, max_trials=None, seed=None, hyperparameters=None,
                 tune_new_entries=True, allow_new_entries=True, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3, cached_network=None, **kwargs):
        # keras_tuner.GridSearch.__init__ with privemo's GridSearchOracle
        self.seed = seed
        oracle = GridSearchOracle(
            objective=objective, max_trials=max_trials, seed=seed, hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries, allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial, max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self.cached_network = cached_network
        keras_tuner.Tuner.__init__(self, oracle, hypermodel, **kwargs)

    def _try_build(self, hp):
        # keras-tuner calls keras.backend.clear_session() and gc.collect() before every build (trial and load_model).
        # clear_session also empties TensorFlow's kernel cache, so every traced function of the cached networks
        # (EmotionPrivacyHyperModel.model_cache) would be instantiated again: seconds per build on a CPU. Without a
        # model cache the networks of finished trials are unreferenced and freed as usual.
        model = self._build_hypermodel(hp)
        if not isinstance(model, keras.models.Model):
            raise keras_tuner.errors.FatalTypeError(
                "Expected the model-building function, or HyperModel.build() to return a valid Keras Model instance. "
                f"Received: {model} of type {type(model)}."
            )
        size = tuner_module.maybe_compute_model_size(model)
        if self.max_model_size and size > self.max_model_size:
            raise keras_tuner.errors.FailedTrialError(f"Oversized model: {size} parameters. Skip model.")
        return model

    def _run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        # keras-tuner's _try_run_and_update_trial records any other exception as an INVALID trial and goes on: a full
        # disk would leave trials silently missing from the search.
        with stop_on_write_errors(self.get_trial_dir(trial.trial_id)):
            return super()._run_and_update_trial(trial, *fit_args, **fit_kwargs)

    def load_model(self, trial):
        # The trial's checkpoint holds every weight (the GRL's lambda included), so a cached network of the same
        # architecture can take it directly.
        cached = None if self.cached_network is None else self.cached_network(trial.hyperparameters)
        if cached is None:
            return super().load_model(trial)
        cached.load_weights(self._get_checkpoint_fname(trial.trial_id))
        return cached

    #: set to a function of one line of text to get a progress line at the end of every epoch of every trial
    report = None
    #: set to a function of one line of text to get a line at the end of every trial (searches of more than
    #: TRIAL_REPORT_MIN trials only: the paper grid's hundreds of trials per (condition, fold))
    trial_report = None
    #: what those lines start with (e.g. the fold and condition)
    report_label = ""

    def _completed(self) -> int | None:
        """Finished trials, or None where the oracle is remote (a distributed worker's ``OracleClient``)."""
        trials = getattr(self.oracle, "trials", None)
        if not isinstance(trials, Mapping):
            return None
        return sum(t.status == trial_module.TrialStatus.COMPLETED for t in trials.values())

    @property
    def space_size(self) -> int:
        """Number of configurations in the search space (``search_space_size``), counted once."""
        if getattr(self, "_space_size", None) is None:
            self._space_size = search_space_size(self)
        return self._space_size

    def on_search_begin(self):
        super().on_search_begin()
        self._search_started, self._completed_before = time.perf_counter(), self._completed()

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.trial_report is None or self.space_size <= TRIAL_REPORT_MIN or self._completed() is None:
            return
        size = self.space_size
        done = self._completed()
        elapsed = time.perf_counter() - getattr(self, "_search_started", time.perf_counter())
        score = trial.metrics.get_best_value(OBJECTIVE) if trial.metrics.exists(OBJECTIVE) else None
        left = elapsed / max(1, done - (getattr(self, "_completed_before", 0) or 0)) * (size - done)
        self.trial_report(f"{self.report_label}trial {done}/{size} done"
                          + (f" ({OBJECTIVE} {score:.3f})" if score is not None else "")
                          + f", {elapsed / 60:.1f} min elapsed, about {left / 60:.0f} min left in this search")

    def run_trial(self, trial, *args, **kwargs):
        # keras-tuner writes the weights at every improving epoch (SaveBestEpoch); privemo.nn.training.fit ends with the best
        # epoch's weights restored, so one write after training leaves the same checkpoint (0.2 s per write on a CPU).
        if self.executions_per_trial != 1:
            return super().run_trial(trial, *args, **kwargs)
        callbacks = self._deepcopy_callbacks(kwargs.pop("callbacks", []))
        self._configure_tensorboard_dir(callbacks, trial, 0)
        callbacks.append(tuner_utils.TunerCallback(self, trial))
        if self.report is not None:
            trial_no = len(self.oracle.trials)
            callbacks.append(EpochProgress(self.report, f"{self.report_label}trial {trial_no}/{self.space_size}"))
        hp = trial.hyperparameters
        model = self._try_build(hp)
        results = self.hypermodel.fit(hp, model, *args, callbacks=callbacks, **kwargs)
        history = getattr(results, "history", None)
        if isinstance(history, Mapping):  # a TrialScores' learning curve (a keras History's, for another hypermodel)
            atomic_write_json(history_path(self, trial.trial_id), history)
        self.save_build_config(trial.trial_id, model)
        tuner_utils.validate_trial_results(results, self.oracle.objective, "HyperModel.fit()")
        save_checkpoint(model, self._get_checkpoint_fname(trial.trial_id))  # atomic: never a truncated checkpoint
        return [dict(results) if isinstance(results, dict) else results]

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        if any(cb.__class__.__name__ == "TensorBoard" for cb in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)

    def _get_tensorboard_dir(self, logdir, trial_id, execution):
        # A TensorBoard callback's logs go to <its log_dir>/trial_<id> (keras-tuner: <log_dir>/<id>/execution<k>; a
        # trial runs once here), with keras-tuner's HParams record beside them.
        if self.executions_per_trial != 1:
            return super()._get_tensorboard_dir(logdir, trial_id, execution)
        return os.path.join(str(logdir), f"trial_{trial_id}")


def history_path(tuner: keras_tuner.Tuner, trial_id: str) -> Path:
    """Where ``GridSearch.run_trial`` keeps a trial's per-epoch history (its learning curve) as JSON."""
    return Path(tuner.get_trial_dir(trial_id)) / "history.json"


def trial_history(tuner: keras_tuner.Tuner, trial_id: str) -> dict[str, list[float]] | None:
    """A finished trial's per-epoch history, or None when it was not recorded (e.g. a keras-tuner default trial)."""
    path = history_path(tuner, trial_id)
    return read_json(path) if path.is_file() else None


class ConcurrentGridSearch(GridSearch):
    """``privemo.search.tuning.GridSearch`` with a ``ConcurrentGridSearchOracle`` (arguments as ``keras_tuner.GridSearch``)."""

    def __init__(self, hypermodel=None, objective=None, max_trials=None, seed=None, hyperparameters=None,
                 tune_new_entries=True, allow_new_entries=True, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3, cached_network=None, **kwargs):
        oracle = ConcurrentGridSearchOracle(
            objective=objective, max_trials=max_trials, seed=seed, hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries, allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial, max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self.cached_network = cached_network
        keras_tuner.Tuner.__init__(self, oracle, hypermodel, **kwargs)
