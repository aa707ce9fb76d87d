"""Hyper-parameter search over the paper's grid with keras-tuner's GridSearch.

``EmotionPrivacyHyperModel`` declares one ``hp.Choice`` per grid key (one per group of layers: conv layers, conv width,
conv kernels, GRU layers, GRU width, dense layers, dense width, and the GRL lambda when an adversary is trained), so the
search space is exactly the grid: 384 configurations of ``PAPER_GRID`` with an adversary, 96 without. Its ``fit`` trains
with ``privemo.nn.training.fit`` (whole-set validation UAR, early stopping) and returns the best epoch's
``val_objective`` (the selection objective, see ``objective``), ``val_emotion_uar`` and the attribute's UAR.

``removal`` selects the attribute-removal method (a name of ``privemo.removal.REMOVALS``; "grl", the paper's gradient
reversal, is the default); the hypermodel asks its ``RemovalMethod`` (``privemo.removal.methods``) what to do. Methods
without a tuned strength (``RemovalMethod.lambda_tuned``) declare no ``grl_lambda``, so they train one trial per
architecture. The post-hoc methods (``RemovalMethod.posthoc``) erase the attribute after training: ``fit_with_history``
trains their network -- "inlp" and "leace": the baseline architecture on emotion alone (as the baseline is trained);
"ensemble_leace": the ensemble as "ensemble" trains it -- then erases its representation with INLP or LEACE
(``EmotionPrivacyHyperModel.erase_post_hoc``, ``privemo.removal.posthoc``).

``privemo.search.factory.make_tuner`` returns a ``GridSearch`` tuner (or the packed one) over this module's hypermodel.
"""

from __future__ import annotations

import os
import time
from functools import partial
from math import prod
from pathlib import Path
from typing import Mapping, Sequence

import keras
import keras_tuner
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src import utils as tuner_io
from keras_tuner.src.engine import tuner as tuner_module
from keras_tuner.src.engine import tuner_utils

from privemo.search import _tuner_io  # noqa: F401  (keras-tuner state files written atomically; damaged ones named)
from privemo._io import atomic_write_json, read_json
from privemo._seed import set_seed
from privemo.search.selection import check_selection
from privemo.search.grids import PAPER_GRID
from privemo.nn.layers import check_lambda
from privemo.nn.models import check_int
from privemo.removal.grl import ScheduledGRLModel
from privemo.removal.methods import DEFAULT_REMOVAL, RemovalMethod, removal_method
from privemo.removal.networks import build_network
from privemo.removal.posthoc import erase_post_hoc
from privemo.nn.training import (
    LEARNING_RATE,
    MAX_EPOCHS,
    OBJECTIVE,
    OBJECTIVE_WEIGHT,
    PATIENCE,
    best_epoch,
    compile_model,
    fit as train,
    objective,
)

__all__ = ["objective", "EmotionPrivacyHyperModel", "search_space_size", "GridSearch", "EpochProgress",
           "ConcurrentGridSearch", "ConcurrentGridSearchOracle"]

GRID_KEYS = tuple(PAPER_GRID)  # the tunable build_model arguments, in declaration order
ARCHITECTURE_KEYS = tuple(k for k in GRID_KEYS if k != "grl_lambda")
#: searches with more trials than this report every finished trial (``GridSearch.trial_report``)
TRIAL_REPORT_MIN = 8


def _check_grid(grid: Mapping[str, Sequence]) -> dict[str, tuple]:
    if not isinstance(grid, Mapping):
        raise ValueError(
            f"Invalid value received for argument `grid`. Expected a dict of tuples. Received: grid={grid!r}"
        )
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ValueError(
            f"Invalid value received for argument `grid`. Expected keys among {GRID_KEYS}. "
            f"Received unknown keys: {unknown}"
        )
    out = {}
    for key in GRID_KEYS:
        if key not in grid:
            continue
        values = grid[key]
        values = (values,) if isinstance(values, (int, float)) else tuple(values)
        if not values or len(set(values)) != len(values):
            raise ValueError(
                f"Invalid value received for grid key `{key}`. Expected a non-empty tuple of distinct values. "
                f"Received: {key}={grid[key]!r}"
            )
        check = (lambda v: check_lambda(v, key)) if key == "grl_lambda" else (lambda v: check_int(key, v))
        out[key] = tuple(check(v) for v in values)
    return out


class EmotionPrivacyHyperModel(keras_tuner.HyperModel):
    """The paper's network as a keras-tuner HyperModel whose choices are exactly ``grid``.

    Args:
        grid: {build_model argument: tuple of values}; keys among ``PAPER_GRID``'s. Keys left out keep build_model's
            default. ``grl_lambda`` is only declared when ``adversary`` is set (a one-value tuple fixes lambda, e.g. for a
            lambda sweep).
        modalities, n_classes, adversary, n_speakers, grl_placement, acoustic_dim, lexical_dim: passed to ``build_model``.
        learning_rate, jit_compile: passed to ``compile_model``.
        epochs, patience: training budget per trial (``fit`` keyword arguments override them).
        objective_weight: weight of the attribute UAR's excess over chance in ``objective``.
        selection: "probe" (default: the attribute term comes from a fresh probe on h, ``privemo.search.selection``; ``fit``
            then needs ``probe=``) or "head" (the paper-literal rule: the adversary head's validation UAR, its distance
            from chance penalised in both directions).
        removal: the attribute-removal method, one of ``privemo.removal.REMOVALS`` or its ``RemovalMethod`` (needs an
            ``adversary`` where ``needs_adversary``, i.e. unless "grl"); the network is the method's
            (``privemo.removal.networks.build_network``: "grl" is ``build_model``, the paper's). Only the methods with
            a tuned strength ("grl", "grl_dann", "mmd", "mmd_leace") declare ``grl_lambda``. The post-hoc methods
            (``RemovalMethod.posthoc``; fused placement only) build their network ("inlp", "leace": the baseline
            architecture; "ensemble_leace": the ensemble) with the eraser's layer "h" holding the identity
            (``NullspaceProjection`` for "inlp", ``AffineErasure`` for LEACE), train it ("inlp", "leace": on emotion
            alone), then ``erase_post_hoc`` fits and applies the eraser (see there).
        seed: ``privemo._seed.set_seed(seed)`` (``keras.utils.set_random_seed`` without its kernel-cache flush) before
            every build, so every configuration starts from the same seed. Layers are created in the same order with
            and without an adversary (encoder, emotion head, then adversary heads), so a baseline and an adversarial
            hypermodel with the same seed start from identical weights in every layer they share (paired trials).
        model_cache: optional dict shared between hypermodels (e.g. across the folds a worker process runs). A network
            whose architecture is already in it is reused: the cached model receives the freshly initialised weights of
            this build (same seed, so the same values a new model would have) and its optimizer state is reset to the
            just-built state, so training is unchanged while TensorFlow does not trace a new training graph (seconds per
            model on a CPU). Lambda is a weight of the GRL, so models differing only in lambda share one entry.
    """

    def __init__(
        self,
        grid: Mapping[str, Sequence] = PAPER_GRID,
        *,
        modalities: Sequence[str] | str = ("acoustic",),
        n_classes: int = 3,
        adversary: str | None = None,
        n_speakers: int | None = None,
        grl_placement: str = "fused",
        acoustic_dim: int = 40,
        lexical_dim: int = 300,
        learning_rate: float = LEARNING_RATE,
        jit_compile: bool = False,
        epochs: int = MAX_EPOCHS,
        patience: int = PATIENCE,
        objective_weight: float = OBJECTIVE_WEIGHT,
        seed: int | None = 0,
        name: str | None = None,
        model_cache: dict | None = None,
        selection: str = "probe",
        removal: str | RemovalMethod = DEFAULT_REMOVAL,
    ):
        super().__init__(name=name, tunable=True)
        self.selection = check_selection(selection)
        method = removal_method(removal)
        removal = method.name
        if method.needs_adversary and adversary is None:
            raise ValueError(f"removal={removal!r} removes an attribute: it needs an `adversary` (one of 'gender', "
                             "'speaker'). Received: adversary=None")
        if method.fused_only and grl_placement != "fused":
            raise ValueError(f"removal={removal!r} erases the attribute from the fused representation h post hoc: it "
                             f"needs grl_placement='fused'. Received: grl_placement={grl_placement!r}")
        self.method = method
        self.removal = removal
        self.model_cache = model_cache
        self.grid = _check_grid(grid)
        if adversary is None or not method.lambda_tuned:
            self.grid.pop("grl_lambda", None)
        self.model_kwargs = dict(
            modalities=modalities,
            n_classes=n_classes,
            adversary=adversary,
            n_speakers=n_speakers,
            grl_placement=grl_placement,
            acoustic_dim=acoustic_dim,
            lexical_dim=lexical_dim,
        )
        self.adversary = adversary
        self.learning_rate = learning_rate
        self.jit_compile = jit_compile
        self.epochs = epochs
        self.patience = patience
        self.objective_weight = float(objective_weight)
        objective(0.5, 0.5, 0.5, self.objective_weight)  # validates the weight now rather than after the first trial
        self.seed = seed

    @property
    def size(self) -> int:
        """Number of configurations in this hypermodel's grid."""
        return prod(len(v) for v in self.grid.values())

    def declare_hyperparameters(self, hp: keras_tuner.HyperParameters) -> None:
        for key, values in self.grid.items():
            hp.Choice(key, list(values))

    def values(self, hp: keras_tuner.HyperParameters) -> dict:
        """The build_model arguments ``hp`` selects."""
        return {key: hp.Choice(key, list(values)) for key, values in self.grid.items()}

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """A built, compiled model for the configuration ``hp`` selects."""
        if self.seed is not None:
            set_seed(int(self.seed))
        values = self.values(hp)
        model = self._network(values)
        key = None
        if self._caching:
            key = self._cache_key(values)
            cached = self.model_cache.get(key)
            if cached is not None:
                reused, optimizer_state = cached
                reused.set_weights(model.get_weights())
                for variable, value in zip(reused.optimizer.variables, optimizer_state):
                    variable.assign(value)
                if isinstance(reused, ScheduledGRLModel):  # its lambda ramp's end is an attribute, not a weight
                    reused.lambda_max = model.lambda_max
                return reused
        compile_model(model, self.learning_rate, jit_compile=self.jit_compile)
        # Create the optimizer's slots now, so that a checkpoint (keras-tuner's best epoch) reloads completely.
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        if key is not None:
            self.model_cache[key] = (model, [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])
        return model

    def _network(self, values: dict) -> keras.Model:
        """The uncompiled network of ``values`` for this hypermodel's removal method (a post-hoc method's with its
        eraser's layer "h" at the identity until ``erase_post_hoc`` sets it)."""
        return build_network(self.method, {**self.model_kwargs, **values})

    @property
    def _caching(self) -> bool:
        return self.model_cache is not None and self.method.cacheable

    def _cache_key(self, values: dict) -> str:
        architecture = {**self.model_kwargs, **{k: v for k, v in values.items() if k != "grl_lambda"}}
        return (repr(sorted(architecture.items())) + f"|lr={self.learning_rate}|jit={self.jit_compile}"
                + ("" if self.method.paper else f"|removal={self.removal}"))

    def cached_model(self, hp: keras_tuner.HyperParameters) -> keras.Model | None:
        """The cached network of the configuration ``hp`` selects, as it is (weights of whatever it ran last), or None:
        for loading a checkpoint into, without building a network only to overwrite its weights."""
        if not self._caching:
            return None
        values = self.values(hp)
        cached = self.model_cache.get(self._cache_key(values))
        if cached is None:
            return None
        if isinstance(cached[0], ScheduledGRLModel) and "grl_lambda" in values:
            cached[0].lambda_max = float(values["grl_lambda"])
        return cached[0]

    def fit(
        self, hp, model, train_ds, val_data, val_targets=None, *, callbacks=(), verbose=0, epochs=None, patience=None,
        probe=None, **kwargs,
    ):
        """Train ``model`` with ``privemo.nn.training.fit`` and return the best epoch's scores:
        {"val_objective", "val_emotion_uar", "val_<attribute>_uar" (when scored), "val_probe" (probe selection with an
        adversary), "best_epoch", "epochs_run"}."""
        return self.fit_with_history(hp, model, train_ds, val_data, val_targets, callbacks=callbacks, verbose=verbose,
                                     epochs=epochs, patience=patience, probe=probe, **kwargs)[0]

    def training_setup(self, probe, epochs: int | None, patience: int | None):
        """(use the probe?, epochs, patience, objective) of a trial's training: the probe scores privacy when selection
        is by probe and there is an adversary (then ``probe`` is required); epochs and patience default to the
        hypermodel's."""
        use_probe = self.selection == "probe" and self.adversary is not None
        if use_probe and probe is None:
            raise ValueError("EmotionPrivacyHyperModel(selection='probe') with an adversary needs `probe=` (a "
                             "privemo.search.selection.PrivacyProbe) in fit / tuner.search.")
        epochs = self.epochs if epochs is None else epochs
        patience = self.patience if patience is None else patience
        weight = 0.0 if self.selection == "emotion" else self.objective_weight  # "emotion": the documented fallback
        return use_probe, epochs, patience, partial(objective, weight=weight, two_sided=self.selection == "head")

    def fit_with_history(
        self, hp, model, train_ds, val_data, val_targets=None, *, callbacks=(), verbose=0, epochs=None, patience=None,
        probe=None, **kwargs,
    ) -> tuple[dict, dict]:
        """``fit``'s best-epoch scores and the whole per-epoch history (the learning curve)."""
        if kwargs:
            raise TypeError(f"EmotionPrivacyHyperModel.fit() got unexpected keyword arguments: {sorted(kwargs)}")
        use_probe, epochs, patience, score = self.training_setup(probe, epochs, patience)
        # post hoc: the eraser comes after training; "inlp" / "leace" train on emotion alone, as the baseline does
        post_hoc, adversarial_training = self.method.posthoc, self.method.trains_adversary
        history = train(
            model,
            train_ds,
            val_data,
            val_targets,
            epochs=epochs,
            patience=patience,
            objective=score,
            callbacks=list(callbacks),
            verbose=verbose,
            probe=probe if use_probe and adversarial_training else None,
        )
        result = trial_scores(history)
        if post_hoc:
            result.update(self.erase_post_hoc(model, train_ds, val_data, val_targets, probe=probe if use_probe else None,
                                              objective=score, epochs=epochs, patience=patience))
        return result, history

    def erase_post_hoc(
        self, model, train_ds, val_data, val_targets=None, *, probe=None, objective=None, epochs=None, patience=None,
    ) -> dict:
        """The post-hoc erasure of the methods whose ``RemovalMethod.posthoc`` is true (``privemo.removal.posthoc``),
        run by ``fit_with_history`` right after training, so the trial's scores, checkpoint and every later use
        (selection, representation, attacks, saved model) see the erased network."""
        return erase_post_hoc(
            model, train_ds, val_data, val_targets, method=self.method, attribute=self.adversary,
            learning_rate=self.learning_rate, epochs=self.epochs if epochs is None else epochs,
            patience=self.patience if patience is None else patience, seed=int(self.seed or 0), probe=probe,
            objective=objective)


def trial_scores(history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """A trial's best-epoch scores from its history: "val_objective", "val_probe" (when logged), every "val_..._uar",
    "best_epoch" and "epochs_run"."""
    best = best_epoch(history, OBJECTIVE)
    result = {k: v for k, v in best.items()
              if k in (OBJECTIVE, "val_probe") or (k.startswith("val_") and k.endswith("_uar"))}
    result["best_epoch"] = float(best["epoch"])
    result["epochs_run"] = float(len(history[OBJECTIVE]))
    return result


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


class GridSearch(keras_tuner.GridSearch):
    """keras-tuner's GridSearch, minus its unconditional TensorBoard import, its session reset before every build and its
    checkpoint at every improving epoch (one per trial instead).

    keras-tuner 1.4.8 imports ``tensorboard`` in every trial on the TensorFlow backend, although it only uses it to patch a
    ``TensorBoard`` callback; TensorFlow 2.16+ no longer installs tensorboard. This subclass only does that patching when
    such a callback is present, so tensorboard stays optional.
    """

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

    def load_model(self, trial):
        # The trial's checkpoint holds every weight (the GRL's lambda included), so a cached network of the same
        # architecture can take it directly.
        cached = self.hypermodel.cached_model(trial.hyperparameters) if isinstance(
            self.hypermodel, EmotionPrivacyHyperModel) else None
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

    def on_search_begin(self):
        super().on_search_begin()
        self._search_started, self._completed_before = time.perf_counter(), self._completed()

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        size = getattr(self.hypermodel, "size", 0)
        if self.trial_report is None or size <= TRIAL_REPORT_MIN or self._completed() is None:
            return
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
        if self.executions_per_trial != 1 or not isinstance(self.hypermodel, EmotionPrivacyHyperModel):
            return super().run_trial(trial, *args, **kwargs)
        callbacks = self._deepcopy_callbacks(kwargs.pop("callbacks", []))
        self._configure_tensorboard_dir(callbacks, trial, 0)
        callbacks.append(tuner_utils.TunerCallback(self, trial))
        if self.report is not None:
            trial_no = len(self.oracle.trials)
            callbacks.append(EpochProgress(self.report, f"{self.report_label}trial {trial_no}/{self.hypermodel.size}"))
        hp = trial.hyperparameters
        model = self._try_build(hp)
        results, history = self.hypermodel.fit_with_history(hp, model, *args, callbacks=callbacks, **kwargs)
        atomic_write_json(history_path(self, trial.trial_id), history)
        tuner_io.save_json(self._get_build_config_fname(trial.trial_id), model.get_build_config())
        tuner_utils.validate_trial_results(results, self.oracle.objective, "HyperModel.fit()")
        model.save_weights(self._get_checkpoint_fname(trial.trial_id))
        return [results]

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


class ConcurrentGridSearchOracle(keras_tuner.oracles.GridSearchOracle):
    """A GridSearch oracle that hands out the first untried combination at once (keras-tuner 1.4.8's GridSearchOracle walks the grid from its last trial, so a project interrupted between trials reloads as finished, and one interrupted inside a trial fails on reload; this oracle always hands out the first untried combination).

    The order is GridSearchOracle's (defaults first, then its own successor function), so a single process gets the same
    trial ids with the same values as with ``keras_tuner.GridSearch``; with several workers every combination is handed
    out exactly once, and the search ends (STOPPED) as soon as every combination has been handed out and no interrupted
    trial waits for a retry. Its state is keras-tuner's ``Oracle`` state (tried-value hashes, trials, retry queue), so a
    reloaded project continues where it stopped.
    """

    def populate_space(self, trial_id: str) -> dict:
        values = self._first_untried()
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _combinations(self):
        space = self.get_space()
        values: dict | None = {hp.name: hp.default for hp in space.space if space.is_active(hp)}
        while values is not None:
            yield values
            values = self._get_next_combination(values)

    def _first_untried(self) -> dict | None:
        for values in self._combinations():
            if not self._duplicate(values):
                return values
        return None

    @keras_tuner.synchronized
    def end_trial(self, trial) -> None:
        super().end_trial(trial)
        # keras-tuner saves the oracle before it drops the trial from its ongoing trials, and relies on the tuner's
        # next save; a distributed worker's tuner never saves the chief's oracle, so a reloaded project would rerun
        # its last trial. Save again now that the trial is no longer ongoing.
        self.save()

    @keras_tuner.synchronized
    def progress(self) -> dict:
        """{"trials", "ongoing", "retry", "done" (ended trials), "complete" (nothing left to hand out or wait for)}."""
        exhausted = self._first_untried() is None or bool(self.max_trials and len(self.trials) >= self.max_trials)
        return {
            "trials": len(self.trials),
            "ongoing": len(self.ongoing_trials),
            "retry": len(self._retry_queue),
            "done": len(self.end_order),
            "complete": exhausted and not self.ongoing_trials and not self._retry_queue,
        }


class ConcurrentGridSearch(GridSearch):
    """``privemo.search.tuning.GridSearch`` with a ``ConcurrentGridSearchOracle`` (arguments as ``keras_tuner.GridSearch``)."""

    def __init__(self, hypermodel=None, objective=None, max_trials=None, seed=None, hyperparameters=None,
                 tune_new_entries=True, allow_new_entries=True, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3, **kwargs):
        oracle = ConcurrentGridSearchOracle(
            objective=objective, max_trials=max_trials, seed=seed, hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries, allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial, max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        keras_tuner.Tuner.__init__(self, oracle, hypermodel, **kwargs)
