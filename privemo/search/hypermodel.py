"""The keras-tuner HyperModel of the paper's network: it builds one model from ``HyperParameters`` and trains it.

``EmotionPrivacyHyperModel`` declares one ``hp.Choice`` per grid key (one per group of layers: conv layers, conv width,
conv kernels, GRU layers, GRU width, dense layers, dense width, and the GRL lambda when an adversary is trained), so the
search space is exactly the grid: 384 configurations of ``PAPER_GRID`` with an adversary, 96 without. Its ``fit`` trains
with ``privemo.nn.training.fit`` (whole-set validation UAR, early stopping) and returns the best epoch's
``val_objective`` (the selection objective, see ``objective``), ``val_emotion_uar`` and the attribute's UAR.

``removal`` selects the attribute-removal method (a name of ``privemo.removal.REMOVALS``; "grl", the paper's gradient
reversal, is the default); the hypermodel asks its ``RemovalMethod`` (``privemo.removal.methods``) what to do. Methods
without a tuned strength (``RemovalMethod.lambda_tuned``) declare no ``grl_lambda``, so they train one trial per
architecture. The post-hoc methods (``RemovalMethod.posthoc``) erase the attribute after training: ``fit`` trains their
network -- "inlp" and "leace": the baseline architecture on emotion alone (as the baseline is trained);
"ensemble_leace": the ensemble as "ensemble" trains it -- then erases its representation with INLP or LEACE
(``EmotionPrivacyHyperModel.erase_post_hoc``, ``privemo.removal.posthoc``).

The tuners (``privemo.search.tuning``, ``privemo.search.packed_tuner``) call keras-tuner's HyperModel interface only:
``build(hp)`` and ``fit(hp, model, ...)``, whose scores (a ``TrialScores`` dict) carry the learning curve as their
``history``. What else a tuner uses is handed to it explicitly by ``privemo.search.factory.make_tuner``: the cached
network to load a checkpoint into (``cached_model``) and, to pack trials, ``fit_packed`` (where ``packable``).
"""

from __future__ import annotations

from functools import partial
from math import prod
from typing import Mapping, Sequence

import keras
import keras_tuner

from privemo._util.seed import set_seed
from privemo._util.validation import invalid
from privemo.search.selection import check_selection
from privemo.search.grids import PAPER_GRID
from privemo.nn.layers import check_lambda
from privemo.nn.models import check_int
from privemo.removal.grl import ScheduledGRLModel
from privemo.removal.methods import DEFAULT_REMOVAL, PACKABLE_REMOVALS, RemovalMethod, removal_method
from privemo.removal.networks import build_network
from privemo.removal.posthoc import erase_post_hoc
from privemo.search.packing import build_packed, fit_packed
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

__all__ = ["EmotionPrivacyHyperModel", "TrialScores", "check_grid", "trial_scores", "packable", "objective", "GRID_KEYS",
           "ARCHITECTURE_KEYS"]

GRID_KEYS = tuple(PAPER_GRID)  # the tunable build_model arguments, in declaration order
ARCHITECTURE_KEYS = tuple(k for k in GRID_KEYS if k != "grl_lambda")


def check_grid(grid: Mapping[str, Sequence]) -> dict[str, tuple]:
    """``grid`` as {key of ``PAPER_GRID``: tuple of distinct, valid values} (``EmotionPrivacyHyperModel``'s search space)."""
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
        seed: ``privemo._util.seed.set_seed(seed)`` (``keras.utils.set_random_seed`` without its kernel-cache flush)
            before every build, so every configuration starts from the same seed. Layers are created in the same order
            with and without an adversary (encoder, emotion head, then adversary heads), so a baseline and an
            adversarial hypermodel with the same seed start from identical weights in every layer they share (paired
            trials).
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
        self.grid = check_grid(grid)
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

    def fit(
        self, hp, model, train_ds, val_data, val_targets=None, *, callbacks=(), verbose=0, epochs=None, patience=None,
        probe=None, **kwargs,
    ) -> TrialScores:
        """Train ``model`` with ``privemo.nn.training.fit`` (it ends with the best epoch's weights) and return the best
        epoch's scores: {"val_objective", "val_emotion_uar", "val_<attribute>_uar" (when scored), "val_probe" (probe
        selection with an adversary), "best_epoch", "epochs_run"}, as a ``TrialScores`` whose ``history`` is the whole
        per-epoch history (the learning curve)."""
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
        return result

    def fit_packed(
        self, hps: Sequence[keras_tuner.HyperParameters], train_ds, val_data, val_targets=None, *,
        callbacks: Sequence[Sequence[keras.callbacks.Callback]] | None = None, verbose: int = 0,
        epochs: int | None = None, patience: int | None = None, probe=None,
    ) -> list[tuple[keras.Model, TrialScores]]:
        """``fit`` for several configurations at once, packed (``privemo.search.packing``; only where ``packable``):
        the members are this hypermodel's networks for ``hps`` (built under its seed, the packed model cached in its
        ``model_cache``), trained with its epochs, patience, objective and selection rule. Returns, per configuration,
        the trained member network and its ``TrialScores`` (with the member's history), as ``fit`` returns them."""
        if not packable(self):
            raise invalid("hypermodel", f"an EmotionPrivacyHyperModel whose removal method is packable "
                          f"{PACKABLE_REMOVALS}", received=f"removal={self.removal!r}")
        use_probe, epochs, patience, score = self.training_setup(probe, epochs, patience)
        builds = [{**self.model_kwargs, **self.values(hp)} for hp in hps]
        packed = build_packed(builds, seed=self.seed, learning_rate=self.learning_rate, jit_compile=self.jit_compile,
                              cache=self.model_cache)
        histories = fit_packed(packed, train_ds, val_data, val_targets, epochs=epochs, patience=patience,
                               objective=score, callbacks=callbacks, verbose=verbose,
                               probe=probe if use_probe else None)
        return [(member, trial_scores(history)) for member, history in zip(packed.members, histories)]

    def erase_post_hoc(
        self, model, train_ds, val_data, val_targets=None, *, probe=None, objective=None, epochs=None, patience=None,
    ) -> dict:
        """The post-hoc erasure of the methods whose ``RemovalMethod.posthoc`` is true (``privemo.removal.posthoc``),
        run by ``fit`` right after training, so the trial's scores, checkpoint and every later use
        (selection, representation, attacks, saved model) see the erased network."""
        return erase_post_hoc(
            model, train_ds, val_data, val_targets, method=self.method, attribute=self.adversary,
            learning_rate=self.learning_rate, epochs=self.epochs if epochs is None else epochs,
            patience=self.patience if patience is None else patience, seed=int(self.seed or 0), probe=probe,
            objective=objective)


class TrialScores(dict):
    """A trial's best-epoch scores (what keras-tuner records as the trial's metrics), with the whole per-epoch history
    of its training as ``history`` (the learning curve; not a metric)."""

    def __init__(self, scores: Mapping[str, float], history: Mapping[str, Sequence[float]]):
        super().__init__(scores)
        self.history = history


def trial_scores(history: Mapping[str, Sequence[float]]) -> TrialScores:
    """A trial's best-epoch scores from its history: "val_objective", "val_probe" (when logged), every "val_..._uar",
    "best_epoch" and "epochs_run"; ``history`` is kept as their ``history``."""
    best = best_epoch(history, OBJECTIVE)
    result = {k: v for k, v in best.items()
              if k in (OBJECTIVE, "val_probe") or (k.startswith("val_") and k.endswith("_uar"))}
    result["best_epoch"] = float(best["epoch"])
    result["epochs_run"] = float(len(history[OBJECTIVE]))
    return TrialScores(result, history)


def packable(hypermodel) -> bool:
    """Whether ``hypermodel``'s trials can be trained packed (``EmotionPrivacyHyperModel.fit_packed``): an
    ``EmotionPrivacyHyperModel`` whose removal method is ``packable`` (one ordinary Keras step of ``build_model``'s
    network)."""
    return isinstance(hypermodel, EmotionPrivacyHyperModel) and hypermodel.method.packable
