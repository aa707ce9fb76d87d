"""keras-tuner's state files written atomically, and a damaged one reported by name, by privemo's oracles and tuners.

keras-tuner 1.4.8 (``privemo.search._keras_tuner``) writes ``oracle.json``, every ``trial_*/trial.json``,
``build_config.json`` and ``<tuner_id>.json`` with keras-tuner's ``utils.save_json``, which opens the file for writing
(emptying it) and then writes: a run killed in between leaves an empty or truncated file, and ``--resume`` then fails
deep inside keras-tuner with a bare ``JSONDecodeError``. keras-tuner itself is left as it is: privemo's oracles
(``AtomicStateOracle``: ``privemo.search.oracle.GridSearchOracle`` and its subclasses, the distributed chief's
included) and tuners (``AtomicStateTuner``: ``privemo.search.tuning.GridSearch`` and its subclasses) override the
methods through which keras-tuner writes and reads that state:

* ``Oracle.save`` (``oracle.json``), ``Oracle._save_trial`` (``trial_*/trial.json``), ``Tuner.save``
  (``<tuner_id>.json``, and the oracle's save) and ``Tuner._build_and_fit_model`` (``build_config.json``; privemo's
  own ``run_trial`` writes it with ``save_json`` too) write with ``save_json``: a temporary file in the same folder,
  renamed into place (``privemo._util.io.atomic_write_text``), so a reader sees the old file or the new one, never half
  of one. Remote paths (``gs://...``, written through ``tf.io.gfile``) keep keras-tuner's own write, as a rename there
  is not atomic anyway.
* ``Oracle.reload``, ``Tuner.reload`` and ``Tuner.load_model`` read with ``load_json``, which raises
  ``TunerStateError`` naming the file, and what to do, when a file is not valid JSON (e.g. one written by an older
  privemo or by keras-tuner itself, or damaged on disk).

Each override does what keras-tuner 1.4.8's method does, with only the file access changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import keras_tuner

from privemo._util.io import atomic_write_text
from privemo._util.validation import UserError
from privemo.search._keras_tuner import kt_backend, kt_utils, tuner_module, tuner_utils

__all__ = ["TunerStateError", "save_json", "load_json", "damaged_message", "AtomicStateOracle", "AtomicStateTuner"]


class TunerStateError(UserError):
    """A keras-tuner state file that cannot be read. ``python -m privemo.reproduce`` reports it in one line (a user
    error: the fix is to rerun, not to change code)."""


def _remote(path: str) -> bool:
    return "://" in path


def save_json(path: str | os.PathLike, obj: Any) -> str:
    """keras-tuner's ``save_json`` (same JSON text, same return value: the text), written atomically."""
    path = os.fspath(path)
    if _remote(path):
        return kt_utils.save_json(path, obj)
    text = json.dumps(obj)
    atomic_write_text(path, text)
    return text


def load_json(path: str | os.PathLike) -> Any:
    """keras-tuner's ``load_json``; a file that is not valid JSON raises ``TunerStateError`` naming it."""
    try:
        return kt_utils.load_json(os.fspath(path))
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise TunerStateError(damaged_message(path, exc)) from None


def damaged_message(path: str | os.PathLike, exc: BaseException) -> str:
    """The error text for a damaged keras-tuner state file: the file, what is wrong, and how to go on."""
    path = Path(path)
    project = path.parent.parent if path.parent.name.startswith("trial_") else path.parent
    what = "it is empty" if isinstance(exc, json.JSONDecodeError) and not exc.doc.strip() else f"not valid JSON ({exc})"
    return (f"{path}: damaged keras-tuner state file: {what}; it was probably cut short when a run was killed. "
            f"Rerun without --resume to start over, or delete the tuner project folder {project} and rerun with "
            "--resume to redo only that project's trials.")


class AtomicStateOracle:
    """Put before a ``keras_tuner.Oracle`` subclass: ``oracle.json`` and ``trial_*/trial.json`` written with
    ``save_json`` and read with ``load_json`` (keras-tuner 1.4.8's ``Oracle.save``, ``_save_trial`` and ``reload``)."""

    def save(self):
        # keras-tuner: Stateful.save(self._get_oracle_fname()); the trials are saved in their own files
        save_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        save_json(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial.get_state())

    def reload(self):
        for fname in kt_backend.io.glob(os.path.join(self._project_dir, "trial_*", "trial.json")):
            trial = keras_tuner.engine.trial.Trial.from_state(load_json(fname))
            self.trials[trial.trial_id] = trial
        try:
            self.set_state(load_json(self._get_oracle_fname()))
        except KeyError as e:
            raise RuntimeError(
                "Error reloading `Oracle` from existing project. If you did not mean to reload from an existing "
                "project, change the `project_name` or pass `overwrite=True` when creating the `Tuner`. Found "
                f"existing project at: {self._project_dir}"
            ) from e
        # Empty the ongoing_trials and send them for retry.
        for trial in self.ongoing_trials.values():  # keyed by tuner id
            self._retry_queue.append(trial.trial_id)
        self.ongoing_trials = {}


class AtomicStateTuner:
    """Put before a ``keras_tuner.Tuner`` subclass: ``<tuner_id>.json`` and ``build_config.json`` written with
    ``save_json`` and read with ``load_json`` (keras-tuner 1.4.8's ``BaseTuner.save`` / ``reload``,
    ``Tuner._build_and_fit_model`` and ``Tuner.load_model``). Its oracle should be an ``AtomicStateOracle``."""

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        save_json(self._get_tuner_fname(), self.get_state())

    def reload(self):
        if not self._is_worker():
            self.oracle.reload()
        self.set_state(load_json(self._get_tuner_fname()))

    def save_build_config(self, trial_id: str, model) -> None:
        """Write ``trial_<id>/build_config.json`` (what ``load_model`` builds the network from) atomically."""
        save_json(self._get_build_config_fname(trial_id), model.get_build_config())

    def _build_and_fit_model(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        model = self._try_build(hp)
        results = self.hypermodel.fit(hp, model, *args, **kwargs)
        if kt_backend.config.multi_backend():
            self.save_build_config(trial.trial_id, model)
        tuner_utils.validate_trial_results(results, self.oracle.objective, "HyperModel.fit()")
        return results

    def load_model(self, trial):
        model = self._try_build(trial.hyperparameters)
        if kt_backend.config.multi_backend() and not model.built:
            model.build_from_config(load_json(self._get_build_config_fname(trial.trial_id)))
        with tuner_module.maybe_distribute(self.distribution_strategy):
            model.load_weights(self._get_checkpoint_fname(trial.trial_id))
        return model
