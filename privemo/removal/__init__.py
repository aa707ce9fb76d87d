"""Attribute-removal methods beyond the paper's jointly trained gradient reversal layer, selectable with one option.

Why: a GRL trained jointly with its adversary can leave the attribute in h and teach the adversary head to be confidently
wrong (its own UAR below chance), while a *fresh* attacker trained on the frozen h recovers the attribute perfectly (see
``benchmarks/leakage.py`` and the README). The methods here share privemo.nn.models' encoder and heads, so every result is
comparable with the paper's set-up; privacy is always judged by fresh attackers (``privemo.privacy.attacks``).

``build_removal_model(removal=..., **build_model_kwargs, **method_kwargs)`` is the one entry point:

- ``"grl"``: the paper's joint training, exactly ``privemo.nn.models.build_model`` (the default; reproduces Table 1).
- ``"grl_dann"``: the same network; lambda ramps from 0 to ``grl_lambda`` over training with the DANN schedule
  (``privemo.nn.layers.LambdaSchedule``), which the returned ``ScheduledGRLModel`` adds to every ``fit`` call itself.
- ``"alternating"``: ``AlternatingAdversarialModel``: at each training step the adversary heads are first trained for ``k``
  steps on the frozen representation (ordinary cross-entropy), then the encoder and emotion head take one step on
  ``emotion loss + adversary_weight * privacy loss`` against the updated heads, the privacy loss being the reversed
  cross-entropy (``adversary_loss="reverse"``: make the heads wrong) or the confusion loss (``"confusion"``: push the
  heads' softmax toward uniform, i.e. the cross-entropy to the uniform distribution). No GRL is involved. Each head
  standardises h first (``normalize_adversary``), as a fresh attacker's scaler does, so the encoder cannot hide the
  attribute by shrinking its scale; ``refresh_epochs > 0`` also re-initialises and retrains the heads on the frozen h at
  every epoch start (``AdversaryRefresh``).
- ``"ensemble"``: ``"alternating"`` with ``n_adversaries`` (default ``ENSEMBLE_SIZE``) independently initialised heads
  per adversary output; the encoder must fool all of them, and the output is their averaged softmax.
- ``"inlp"``: post hoc. Builds the baseline (no adversary); after training, ``fit_inlp`` finds the iterative nullspace
  projection (Ravfogel et al., ACL 2020) that removes every direction of h a linear classifier uses to predict the
  attribute, and ``apply_projection`` appends it (``NullspaceProjection``, a registered layer named "h") so the projected
  representation is exported and the emotion head can be refitted on it. A linear reference point: non-linear attackers
  may still recover what INLP leaves.
- ``"leace"``: post hoc, like "inlp", with LEACE (``privemo.removal.leace.LeaceEraser``, Belrose et al., NeurIPS 2023) as the
  eraser: the closed-form affine edit ``h -> h - (h - mean) A^T`` that makes h's covariance with the attribute exactly
  zero on the rows it is fitted on (no linear classifier beats a constant there) while moving h the least.
  ``apply_leace`` appends it as an ``AffineErasure`` layer named "h" (``apply_erasure``).
- ``"ensemble_leace"``: ``"ensemble"``'s network and training, then LEACE post hoc on its h (the network keeps its
  adversary heads, which now read the erased h; ``apply_erasure`` copies them).

``POST_HOC`` maps each post-hoc method to (the network it trains: "baseline" or another method, its eraser).

Every returned model has the same dict outputs as ``build_model`` ("emotion", and "gender" / "speaker" or the per-modality
"gender_acoustic" ... for adversarial methods) and a layer named "h", so ``privemo.nn.models.representation_model``,
``privemo.nn.training.fit`` / ``ValidationUAR`` and ``privemo.data.pipeline.predict`` work unchanged. Under
``keras.utils.set_random_seed(seed)`` (or ``seed=``) building and training are deterministic.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Mapping, Sequence

import numpy as np
import keras
from keras import ops

from privemo._seed import set_seed
from privemo.nn.layers import LambdaSchedule, check_lambda
from privemo.metrics import uar
from privemo.nn.models import ADVERSARIES, build_model, classifier_head, representation_model

__all__ = [
    "REMOVALS",
    "ALTERNATING_LOSSES",
    "build_removal_model",
    "ScheduledGRLModel",
    "AlternatingAdversarialModel",
    "confusion_loss",
    "reverse_loss",
    "fit_inlp",
    "NullspaceProjection",
    "apply_projection",
    "POST_HOC",
    "AffineErasure",
    "apply_erasure",
    "apply_leace",
    "leace_affine",
    "AdversaryRefresh",
]

REMOVALS = ("grl", "grl_dann", "alternating", "ensemble", "inlp", "leace", "ensemble_leace")
#: post-hoc methods: {removal: (the network trained first -- "baseline" (no adversary) or a method of REMOVALS -- and the
#: eraser fitted on its h afterwards: "inlp" or "leace")}
POST_HOC = {"inlp": ("baseline", "inlp"), "leace": ("baseline", "leace"), "ensemble_leace": ("ensemble", "leace")}
ALTERNATING_LOSSES = ("reverse", "confusion")
SCHEDULE_UPDATES = ("epoch", "batch")

# Assumptions (the paper has only the jointly trained GRL): see README assumptions table.
ADVERSARY_STEPS = 3  # assumption: see README assumptions table (k: adversary updates per encoder update)
ENSEMBLE_SIZE = 3  # assumption: see README assumptions table (heads per adversary output for removal="ensemble")
ADVERSARY_WEIGHT = 1.0  # assumption: see README assumptions table (weight of the privacy loss against the emotion loss)
NORMALIZE_ADVERSARY = True  # assumption: see README assumptions table (adversary heads standardise h, like fresh attackers)
ALTERNATING_LOSS = "confusion"  # assumption: see README assumptions table (default privacy loss of alternating updates)
DANN_UPDATE = "batch"  # assumption: see README assumptions table (the DANN ramp advances every batch)
REFRESH_EPOCHS = 0  # assumption: see README assumptions table (passes of a fresh re-training of the heads each epoch; 0 = off)
REFRESH_BATCH_SIZE = 128  # assumption: see README assumptions table
REFRESH_LEARNING_RATE = 3e-3  # assumption: see README assumptions table (Adam, for the per-epoch fresh re-training)
INLP_ITERATIONS = 20  # assumption: see README assumptions table (maximum nullspace projections)
INLP_C = 1.0  # assumption: see README assumptions table (inverse L2 strength of INLP's logistic regressions)
INLP_TOLERANCE = 0.02  # assumption: see README assumptions table (stop once validation UAR <= chance + tolerance)

_EPS = 1e-7


def _invalid(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"Invalid value received for argument `{name}`. Expected {expected}. Received: {name}={value!r}")


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < low:
        raise _invalid(name, f"an integer >= {low}", value)
    return int(value)


def _check_weight(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(float(value)) or float(value) < 0:
        raise _invalid(name, "a finite float >= 0", value)
    return float(value)


# ---------------------------------------------------------------------------------------------------------------------
# Privacy losses of the encoder step (per sample; the heads' softmax outputs as input)


def confusion_loss(probs):
    """Cross-entropy from the uniform distribution to ``probs`` (batch, classes): ``-mean_c log p_c`` per sample.

    Minimal (= log K) exactly when the adversary's output is uniform, so minimising it pushes the adversary toward
    maximum entropy instead of toward the wrong class. Returns a (batch,) tensor.
    """
    probs = ops.clip(probs, _EPS, 1.0)
    return -ops.mean(ops.log(probs), axis=-1)


def reverse_loss(y_true, probs):
    """The reversed cross-entropy ``log p_y`` per sample (the negative of the adversary's loss): the encoder is rewarded
    for making the adversary wrong, without bound other than the probability clip (a confidently wrong adversary scores
    best, which is why this loss can leave the attribute decodable). Returns a (batch,) tensor."""
    return -keras.losses.sparse_categorical_crossentropy(y_true, probs)


def _weighted_mean(values, weights=None):
    """Keras' "sum_over_batch_size" reduction: mean of ``weights * values`` over the batch."""
    if weights is None:
        return ops.mean(values)
    return ops.mean(values * ops.cast(weights, values.dtype))


def _unpack(data):
    if isinstance(data, (list, tuple)):
        if len(data) == 1:
            return data[0], None, None
        if len(data) == 2:
            return data[0], data[1], None
        return data[0], data[1], data[2]
    return data, None, None


def _attribute_of(output: str) -> str:
    for attribute in ADVERSARIES:
        if output == attribute or output.startswith(attribute + "_"):
            return attribute
    return output


# ---------------------------------------------------------------------------------------------------------------------
# GRL with the DANN lambda ramp


@keras.saving.register_keras_serializable(package="privemo")
class ScheduledGRLModel(keras.Model):
    """``build_model``'s network whose GradientReversal layers follow a lambda schedule during every ``fit``.

    A functional model (same inputs, outputs and layer names as ``build_model``) that adds a
    ``privemo.nn.layers.LambdaSchedule`` to the callbacks of each ``fit`` call (unless one is passed), so
    ``privemo.nn.training.fit`` and keras-tuner drive the DANN ramp without knowing about it.

    Args (keyword, besides the functional ``inputs``, ``outputs``, ``name``):
        lambda_max: Float >= 0, the lambda reached at the end of the ramp.
        schedule: "dann" (ramp ``lambda_max * (2 / (1 + exp(-10 p)) - 1)``) or "constant".
        update: "batch" (the ramp advances every batch) or "epoch".
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        lambda_max = check_lambda(kwargs.pop("lambda_max", 1.0), "lambda_max")
        schedule = kwargs.pop("schedule", "dann")
        update = kwargs.pop("update", DANN_UPDATE)
        if schedule not in ("dann", "constant"):
            raise _invalid("schedule", "one of ('dann', 'constant')", schedule)
        if update not in SCHEDULE_UPDATES:
            raise _invalid("update", f"one of {SCHEDULE_UPDATES}", update)
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.lambda_max, self.schedule, self.update = lambda_max, schedule, update

    def schedule_callback(self) -> LambdaSchedule:
        """A fresh LambdaSchedule for this model's GRLs."""
        return LambdaSchedule(lambda_max=self.lambda_max, schedule=self.schedule, update=self.update)

    def fit(self, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or [])
        if not any(isinstance(c, LambdaSchedule) for c in callbacks):
            callbacks.insert(0, self.schedule_callback())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(lambda_max=self.lambda_max, schedule=self.schedule, update=self.update)
        return config


# ---------------------------------------------------------------------------------------------------------------------
# Alternating updates (reverse / confusion), ensembles of adversaries


@keras.saving.register_keras_serializable(package="privemo")
class AlternatingAdversarialModel(keras.Model):
    """Emotion network trained with alternating adversary / encoder updates (no gradient reversal).

    Each ``train_step``: (1) the representation is computed once; (2) the adversary heads take ``k`` optimiser steps of
    ordinary cross-entropy on the *frozen* representation (``adversary_optimizer``); (3) the encoder and the emotion head
    take one step on ``emotion CE + adversary_weight * mean over heads(privacy loss)`` against the updated heads
    (``optimizer``), the privacy loss being ``reverse_loss`` or ``confusion_loss``. ``k = 0`` keeps the heads fixed.

    A functional model: ``call`` returns the dict of ``build_model`` ("emotion" and one output per adversary: the head's
    softmax, or the average over the ensemble's heads), and the layers "h" / "h_acoustic" / "h_lexical" exist, so
    ``representation_model``, ``ValidationUAR`` and prediction code work unchanged. Build it with
    ``build_removal_model(removal="alternating" | "ensemble", ...)``; train it with ``privemo.nn.training.fit`` or
    ``model.fit`` after ``compile`` (the compiled losses are only used by ``evaluate``). The adversary heads are the
    nested models ``{output}_adversary{i}_head``.

    Args (keyword, besides the functional ``inputs``, ``outputs``, ``name``):
        adversaries: {adversary output name: name of the layer it reads ("h", "h_acoustic", "h_lexical")}.
        n_adversaries: heads per adversary output (> 1: an ensemble).
        k: adversary steps per encoder step (>= 0).
        adversary_loss: "reverse" or "confusion".
        adversary_weight: float >= 0, weight of the privacy loss.
        adversary_learning_rate: learning rate of the heads' optimiser created by ``compile`` (None: the same as the
            main optimiser's).
        refresh_epochs: if > 0, ``fit`` adds an ``AdversaryRefresh`` callback: at the start of every epoch the heads are
            re-initialised and trained afresh for this many passes over the frozen representation of the whole
            training set, so the encoder always faces a freshly trained, attacker-like adversary (co-adapted heads can
            be fooled while the attribute stays decodable).
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        adversaries = kwargs.pop("adversaries", None)
        n_adversaries = _check_int("n_adversaries", kwargs.pop("n_adversaries", 1), 1)
        k = _check_int("k", kwargs.pop("k", ADVERSARY_STEPS), 0)
        adversary_loss = kwargs.pop("adversary_loss", ALTERNATING_LOSS)
        adversary_weight = _check_weight("adversary_weight", kwargs.pop("adversary_weight", ADVERSARY_WEIGHT))
        adversary_learning_rate = kwargs.pop("adversary_learning_rate", None)
        refresh_epochs = _check_int("refresh_epochs", kwargs.pop("refresh_epochs", REFRESH_EPOCHS), 0)
        if adversary_learning_rate is not None:
            adversary_learning_rate = _check_weight("adversary_learning_rate", adversary_learning_rate)
            if adversary_learning_rate == 0:
                raise _invalid("adversary_learning_rate", "a float > 0 or None", adversary_learning_rate)
        if adversary_loss not in ALTERNATING_LOSSES:
            raise _invalid("adversary_loss", f"one of {ALTERNATING_LOSSES}", adversary_loss)
        if not isinstance(adversaries, Mapping) or not adversaries:
            raise _invalid("adversaries", "a non-empty dict {adversary output: representation layer name}", adversaries)
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.adversaries = {str(o): str(s) for o, s in adversaries.items()}
        self.n_adversaries, self.k = n_adversaries, k
        self.adversary_loss, self.adversary_weight = adversary_loss, adversary_weight
        self.adversary_learning_rate = adversary_learning_rate
        self.refresh_epochs = refresh_epochs
        self.adversary_optimizer = None
        out = self._outputs_struct
        if not isinstance(out, dict) or "emotion" not in out or any(o not in out for o in self.adversaries):
            raise ValueError(
                f"AlternatingAdversarialModel needs dict outputs with 'emotion' and {sorted(self.adversaries)}. "
                f"Received outputs: {sorted(out) if isinstance(out, dict) else type(out).__name__}"
            )
        heads = {o: [self.get_layer(self.head_name(o, i)) for i in range(1, n_adversaries + 1)] for o in self.adversaries}
        view = keras.Model(
            self._inputs_struct,
            {"emotion": out["emotion"], "sources": {o: self.get_layer(s).output for o, s in self.adversaries.items()}},
            name=f"{self.name}_view",
        )
        # Plain (untracked) attributes: the view and the head lists share the model's layers and weights; tracking them
        # would list those layers twice.
        object.__setattr__(self, "_view", view)
        object.__setattr__(self, "_heads", heads)
        self._trackers = {
            name: keras.metrics.Mean(name=name) for name in ("loss", "emotion_loss", "adversary_loss", "privacy_loss")
        }

    @staticmethod
    def head_name(output: str, index: int) -> str:
        """Layer name of the ``index``-th (1-based) head of adversary output ``output``."""
        return f"{output}_adversary{index}_head"

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compile(self, optimizer="adam", loss=None, *, adversary_optimizer=None, **kwargs):
        """Keras ``compile`` plus the heads' own optimiser (default: a fresh copy of ``optimizer``'s configuration)."""
        super().compile(optimizer=optimizer, loss=loss, **kwargs)
        if adversary_optimizer is None:
            config = self.optimizer.get_config()
            if self.adversary_learning_rate is not None:
                config["learning_rate"] = self.adversary_learning_rate
            adversary_optimizer = self.optimizer.__class__.from_config(config)
        else:
            adversary_optimizer = keras.optimizers.get(adversary_optimizer)
        self.adversary_optimizer = adversary_optimizer
        # The two variable groups, as trainable at compile time (like Keras, recompile after changing `trainable`).
        heads = [h for hs in self._heads.values() for h in hs]
        adversary_variables = [v for h in heads for v in h.trainable_variables]
        ids = {id(v) for v in adversary_variables}
        object.__setattr__(self, "_adversary_variables", adversary_variables)
        object.__setattr__(self, "_main_variables", [v for v in self.trainable_variables if id(v) not in ids])
        # Build both optimisers on their own variables now: variables cannot be created inside the traced train step.
        if not self.optimizer.built:
            self.optimizer.build(self._main_variables)
        if not self.adversary_optimizer.built:
            self.adversary_optimizer.build(self._adversary_variables)

    def fit(self, x=None, y=None, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or [])
        if self.refresh_epochs and not any(isinstance(c, AdversaryRefresh) for c in callbacks):
            callbacks.insert(0, AdversaryRefresh(x if y is None else (x, y), epochs=self.refresh_epochs))
        return super().fit(x, y, *args, callbacks=callbacks, **kwargs)

    def compile_from_config(self, config):
        """Recompile from ``get_compile_config`` when a saved model is loaded (the adversary optimiser is rebuilt as a
        copy of the main one; its saved state, if any, is loaded afterwards by Keras)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def _targets(self, y, sw) -> tuple[dict, dict]:
        targets, weights = {}, {}
        for o in ("emotion", *self.adversaries):
            key = o if o in y else _attribute_of(o)
            if key not in y:
                raise ValueError(f"The training data has no targets for output '{o}'. Received target keys: {sorted(y)}")
            targets[o] = y[key]
            weights[o] = None if not sw else sw.get(o, sw.get(key))
        return targets, weights

    def _adversary_ce(self, sources, targets, weights):
        total = 0.0
        for o, hs in self._heads.items():
            for head in hs:
                ce = keras.losses.sparse_categorical_crossentropy(targets[o], head(sources[o], training=True))
                total = total + _weighted_mean(ce, weights[o])
        return total / float(self.n_adversaries)

    def _privacy(self, sources, targets, weights):
        total = 0.0
        for o, hs in self._heads.items():
            for head in hs:
                probs = head(sources[o], training=True)
                if self.adversary_loss == "confusion":
                    per_sample = confusion_loss(probs)
                else:
                    per_sample = reverse_loss(targets[o], probs)
                total = total + _weighted_mean(per_sample, weights[o])
        return total / float(self.n_adversaries)

    def train_step(self, data):
        import tensorflow as tf  # the train step is written for the TensorFlow backend

        if self.adversary_optimizer is None:
            raise RuntimeError("Compile the model first: model.compile(optimizer) or privemo.nn.training.compile_model(model).")
        x, y, sw = _unpack(data)
        if not isinstance(y, Mapping):
            raise ValueError("AlternatingAdversarialModel needs targets as a dict {output name: labels}.")
        targets, weights = self._targets(y, sw)
        with tf.GradientTape() as tape:
            view = self._view(x, training=True)
            sources = view["sources"]
            adversary_loss = 0.0
            with tape.stop_recording():
                frozen = {o: tf.stop_gradient(s) for o, s in sources.items()}
                for _ in range(self.k):
                    with tf.GradientTape() as adversary_tape:
                        adversary_loss = self._adversary_ce(frozen, targets, weights)
                    grads = adversary_tape.gradient(adversary_loss, self._adversary_variables)
                    self.adversary_optimizer.apply(grads, self._adversary_variables)
            emotion_loss = _weighted_mean(
                keras.losses.sparse_categorical_crossentropy(targets["emotion"], view["emotion"]), weights["emotion"]
            )
            privacy_loss = self._privacy(sources, targets, weights)
            loss = emotion_loss + self.adversary_weight * privacy_loss
        grads = tape.gradient(loss, self._main_variables)
        self.optimizer.apply(grads, self._main_variables)
        if self.k == 0:
            adversary_loss = self._adversary_ce(
                {o: tf.stop_gradient(s) for o, s in sources.items()}, targets, weights
            )
        for name, value in (
            ("loss", loss),
            ("emotion_loss", emotion_loss),
            ("adversary_loss", adversary_loss),
            ("privacy_loss", privacy_loss),
        ):
            self._trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def method_settings(self) -> dict:
        """The method's constructor arguments (beyond the functional graph): what ``get_config`` adds and what a model
        rebuilt around a new graph (``apply_erasure``) takes over."""
        return dict(
            adversaries=dict(self.adversaries),
            n_adversaries=self.n_adversaries,
            k=self.k,
            adversary_loss=self.adversary_loss,
            adversary_weight=self.adversary_weight,
            adversary_learning_rate=self.adversary_learning_rate,
            refresh_epochs=self.refresh_epochs,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(self.method_settings())
        return config


_INITIALIZED = (
    ("kernel", "kernel_initializer"),
    ("bias", "bias_initializer"),
    ("gamma", "gamma_initializer"),
    ("beta", "beta_initializer"),
    ("moving_mean", "moving_mean_initializer"),
    ("moving_variance", "moving_variance_initializer"),
)


def reinitialize(model: keras.Model) -> None:
    """Draw fresh values for every weight of ``model``'s Dense / BatchNormalization layers from their initialisers
    (seeded by Keras' global seed)."""
    for layer in model._flatten_layers(include_self=False):
        for attr, init in _INITIALIZED:
            variable, initializer = getattr(layer, attr, None), getattr(layer, init, None)
            if variable is not None and initializer is not None:
                variable.assign(initializer(variable.shape, dtype=variable.dtype))


class AdversaryRefresh(keras.callbacks.Callback):
    """Re-initialises the adversary heads of an ``AlternatingAdversarialModel`` at the start of every epoch and trains
    them afresh (Adam, ``learning_rate``, mini-batches of ``batch_size``, ``epochs`` passes, cross-entropy weighted by the
    data's sample weights if any) on the *frozen* representation of the whole training set, like a fresh attacker.

    Args:
        data: the training data: a ``tf.data.Dataset`` of (x, y[, sw]), or a tuple (x, y[, sw]) of arrays / dicts.
        epochs: passes over the training representations per refresh.
        batch_size: mini-batch size of the refresh.
        learning_rate: Adam learning rate of the refresh.
    """

    def __init__(self, data, epochs: int = 5, batch_size: int = REFRESH_BATCH_SIZE,
                 learning_rate: float = REFRESH_LEARNING_RATE):
        super().__init__()
        self.data = data
        self.epochs = _check_int("epochs", epochs, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.learning_rate = _check_weight("learning_rate", learning_rate)
        self._trainers: dict = {}
        self._encode = None

    def _batches(self):
        import tensorflow as tf

        data = self.data
        if not isinstance(data, tf.data.Dataset):
            data = tf.data.Dataset.from_tensor_slices(tuple(data)).batch(256)
        return data

    def _collect(self):
        import tensorflow as tf

        model = self.model
        if self._encode is None:
            self._encode = tf.function(lambda x: model._view(x, training=False)["sources"], reduce_retracing=True)
        sources: dict = {o: [] for o in model.adversaries}
        targets: dict = {o: [] for o in model.adversaries}
        weights: dict = {o: [] for o in model.adversaries}
        for element in self._batches():
            x, y, sw = _unpack(element)
            t, w = model._targets(y, sw)
            values = self._encode(x)
            for o in model.adversaries:
                sources[o].append(np.asarray(values[o]))
                targets[o].append(np.asarray(t[o]))
                weights[o].append(np.ones(len(targets[o][-1]), np.float32) if w[o] is None else np.asarray(w[o]))
        return ({o: np.concatenate(v) for o, v in sources.items()}, {o: np.concatenate(v) for o, v in targets.items()},
                {o: np.concatenate(v) for o, v in weights.items()})

    def _trainer(self, head: keras.Model) -> keras.Model:
        if head.name not in self._trainers:
            x = keras.Input(shape=head.input.shape[1:], name=f"{head.name}_refresh_input")
            trainer = keras.Model(x, head(x), name=f"{head.name}_refresh")
            trainer.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="sparse_categorical_crossentropy")
            self._trainers[head.name] = trainer
        return self._trainers[head.name]

    def on_epoch_begin(self, epoch, logs=None):
        sources, targets, weights = self._collect()
        for o, heads in self.model._heads.items():
            for head in heads:
                reinitialize(head)
                trainer = self._trainer(head)
                for variable in trainer.optimizer.variables:  # restart Adam's moments (not its learning rate)
                    if "learning_rate" not in variable.path:
                        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
                trainer.fit(sources[o], targets[o], sample_weight=weights[o], batch_size=self.batch_size,
                            epochs=self.epochs, shuffle=True, verbose=0)


def adversary_head_model(
    input_dim: int, n_classes: int, *, name: str, normalize: bool = NORMALIZE_ADVERSARY, dense_layers: int = 1,
    dense_width: int = 32,
) -> keras.Model:
    """One adversary head of the alternating model, a nested model named ``name``: optionally
    ``BatchNormalization(center=False, scale=False)`` (standardises each feature of h, as a fresh attacker's scaler does,
    so the encoder cannot hide the attribute by shrinking it), then ``privemo.nn.models.classifier_head``."""
    x = keras.Input(shape=(int(input_dim),), name=f"{name}_input")
    z = keras.layers.BatchNormalization(center=False, scale=False, name=f"{name}_norm")(x) if normalize else x
    y = classifier_head(z, n_classes, dense_layers=dense_layers, dense_width=dense_width, name=name.removesuffix("_head"))
    return keras.Model(x, y, name=name)


def _build_alternating(
    build_kwargs: dict,
    *,
    n_adversaries: int,
    k: int,
    adversary_loss: str,
    adversary_weight: float,
    adversary_learning_rate: float | None,
    refresh_epochs: int,
    normalize: bool,
) -> AlternatingAdversarialModel:
    if build_kwargs.get("adversary") is None:
        raise _invalid("adversary", f"one of {ADVERSARIES} for alternating / ensemble removal", build_kwargs.get("adversary"))
    # build_model validates every argument and gives the encoder, the emotion head and the adversaries' names and sizes;
    # its GRL heads are left out of the new graph (the alternating model has its own, GRL-free heads).
    base = build_model(**build_kwargs)
    emotion = base.output["emotion"]
    dense = dict(dense_layers=build_kwargs.get("dense_layers", 1), dense_width=build_kwargs.get("dense_width", 32))
    placement = build_kwargs.get("grl_placement", "fused")
    outputs, adversaries = {"emotion": emotion}, {}
    for o in base.output:
        if o == "emotion":
            continue
        source = "h" if placement == "fused" else "h_" + o.split("_", 1)[1]
        adversaries[o] = source
        h = base.get_layer(source).output
        n_attr = int(base.output[o].shape[-1])
        probs = [
            adversary_head_model(
                int(h.shape[-1]), n_attr, name=AlternatingAdversarialModel.head_name(o, i), normalize=normalize, **dense
            )(h)
            for i in range(1, n_adversaries + 1)
        ]
        outputs[o] = keras.layers.Average(name=o)(probs) if len(probs) > 1 else keras.layers.Identity(name=o)(probs[0])
    suffix = "ensemble" if n_adversaries > 1 else "alternating"
    return AlternatingAdversarialModel(
        base.input,
        outputs,
        name=f"{base.name}_{suffix}",
        adversaries=adversaries,
        n_adversaries=n_adversaries,
        k=k,
        adversary_loss=adversary_loss,
        adversary_weight=adversary_weight,
        adversary_learning_rate=adversary_learning_rate,
        refresh_epochs=refresh_epochs,
    )


def build_removal_model(
    removal: str = "grl",
    *,
    seed: int | None = None,
    k: int = ADVERSARY_STEPS,
    adversary_loss: str = ALTERNATING_LOSS,
    n_adversaries: int | None = None,
    adversary_weight: float = ADVERSARY_WEIGHT,
    adversary_learning_rate: float | None = None,
    refresh_epochs: int = REFRESH_EPOCHS,
    normalize_adversary: bool = NORMALIZE_ADVERSARY,
    schedule_update: str = DANN_UPDATE,
    **build_model_kwargs,
) -> keras.Model:
    """Build the emotion network with the attribute-removal method ``removal`` (uncompiled; train with
    ``privemo.nn.training.fit``, which compiles it).

    Args:
        removal: one of ``REMOVALS``: "grl" (``build_model`` as is), "grl_dann" (``ScheduledGRLModel``: DANN lambda ramp
            up to ``grl_lambda``), "alternating" / "ensemble" (``AlternatingAdversarialModel``; ``grl_lambda`` is not used),
            "inlp" (the baseline without adversary; apply ``fit_inlp`` + ``apply_projection`` after training), "leace"
            (the same baseline; apply ``apply_leace`` with a fitted ``privemo.removal.leace.LeaceEraser`` after training),
            "ensemble_leace" (the "ensemble" network; ``apply_leace`` after training).
        seed: if given, ``privemo._seed.set_seed(seed)`` (as ``keras.utils.set_random_seed``) before building.
        k: adversary steps per encoder step (alternating / ensemble).
        adversary_loss: "reverse" or "confusion" (alternating / ensemble).
        n_adversaries: heads per adversary output; default 1 for "alternating", ``ENSEMBLE_SIZE`` for "ensemble".
        adversary_weight: weight of the privacy loss (alternating / ensemble).
        adversary_learning_rate: learning rate of the adversary heads' optimiser (None: the main one's).
        refresh_epochs: > 0: re-initialise and retrain the heads on the frozen h for this many passes at the start of
            every epoch (``AdversaryRefresh``; alternating / ensemble).
        normalize_adversary: standardise h (batch statistics) at the input of every alternating adversary head.
        schedule_update: "batch" or "epoch": when the DANN ramp advances ("grl_dann").
        **build_model_kwargs: ``privemo.nn.models.build_model`` arguments (modalities, adversary, n_speakers, grl_lambda,
            grl_placement, conv_layers, ...).

    Returns:
        A ``keras.Model`` with ``build_model``'s dict outputs and its layer "h".
    """
    if removal not in REMOVALS:
        raise _invalid("removal", f"one of {REMOVALS}", removal)
    if seed is not None:
        set_seed(int(seed))
    if removal == "grl":
        return build_model(**build_model_kwargs)
    if removal in POST_HOC:  # the network trained before the post-hoc erasure
        removal = POST_HOC[removal][0]
        if removal == "baseline":
            return build_model(**{**build_model_kwargs, "adversary": None})
    if removal == "grl_dann":
        if build_model_kwargs.get("adversary") is None:
            raise _invalid("adversary", f"one of {ADVERSARIES} for removal='grl_dann'", build_model_kwargs.get("adversary"))
        if schedule_update not in SCHEDULE_UPDATES:
            raise _invalid("schedule_update", f"one of {SCHEDULE_UPDATES}", schedule_update)
        base = build_model(**build_model_kwargs)
        return ScheduledGRLModel(
            base.input,
            base.output,
            name=f"{base.name}_dann",
            lambda_max=build_model_kwargs.get("grl_lambda", 1.0),
            schedule="dann",
            update=schedule_update,
        )
    n = n_adversaries if n_adversaries is not None else (ENSEMBLE_SIZE if removal == "ensemble" else 1)
    n = _check_int("n_adversaries", n, 1)
    if removal == "ensemble" and n < 2:
        raise _invalid("n_adversaries", "an integer >= 2 for removal='ensemble'", n_adversaries)
    return _build_alternating(
        dict(build_model_kwargs),
        n_adversaries=n,
        k=_check_int("k", k, 0),
        adversary_loss=adversary_loss,
        adversary_weight=_check_weight("adversary_weight", adversary_weight),
        adversary_learning_rate=adversary_learning_rate,
        refresh_epochs=_check_int("refresh_epochs", refresh_epochs, 0),
        normalize=bool(normalize_adversary),
    )


# ---------------------------------------------------------------------------------------------------------------------
# INLP: iterative nullspace projection (post hoc, linear)


def _check_matrix(h, name: str, n_features: int | None = None) -> np.ndarray:
    a = np.asarray(h, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or (n_features is not None and a.shape[1] != n_features) or not np.isfinite(a).all():
        cols = "d" if n_features is None else str(n_features)
        raise _invalid(name, f"a finite 2-D array (n > 0, {cols} features)", f"array of shape {a.shape}")
    return a


def _check_y(y, n: int, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.shape != (n,):
        raise _invalid(name, f"a 1-D label array of length {n}", f"array of shape {a.shape}")
    return a


def _nullspace(directions: list[np.ndarray], dim: int) -> np.ndarray:
    """The orthogonal projection onto the complement of the span of ``directions`` (each (r_i, dim))."""
    w = np.concatenate(directions, axis=0)
    u, s, _ = np.linalg.svd(w.T, full_matrices=False)
    basis = u[:, s > s.max() * 1e-10] if s.size and s.max() > 0 else u[:, :0]
    return np.eye(dim) - basis @ basis.T


def fit_inlp(
    h_train,
    y_train,
    h_val,
    y_val,
    *,
    n_iterations: int = INLP_ITERATIONS,
    seed: int = 0,
    C: float = INLP_C,
    tolerance: float = INLP_TOLERANCE,
    return_info: bool = False,
):
    """Iterative nullspace projection (Ravfogel et al., ACL 2020): a (d, d) projection P that removes the attribute's
    linearly decodable directions from representations h (rows), used as ``h @ P``.

    Each iteration fits a logistic regression (standardised inputs, balanced classes, L2 ``C``) to predict ``y`` from the
    currently projected training h, scores it on the projected validation h, and adds its weight vectors (in h's
    coordinates) to the removed directions; P is the orthogonal projection onto the complement of all removed directions.
    It stops after ``n_iterations`` or as soon as the validation UAR is within ``tolerance`` of chance (1 / n_classes).

    Returns:
        P as a float32 (d, d) symmetric matrix; with ``return_info=True``, ``(P, info)`` where info has "val_uar" (the
        validation UAR of each iteration's classifier, before its directions are removed), "rank_removed" and
        "iterations".
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    h_train = _check_matrix(h_train, "h_train")
    d = h_train.shape[1]
    h_val = _check_matrix(h_val, "h_val", d)
    y_train = _check_y(y_train, len(h_train), "y_train")
    y_val = _check_y(y_val, len(h_val), "y_val")
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise _invalid("y_train", "labels of at least 2 classes", f"classes {classes.tolist()}")
    n_iterations = _check_int("n_iterations", n_iterations, 1)
    C = _check_weight("C", C)
    if C == 0:
        raise _invalid("C", "a float > 0", C)
    tolerance = _check_weight("tolerance", tolerance)
    chance = 1.0 / len(classes)
    projection = np.eye(d)
    directions: list[np.ndarray] = []
    history: list[float] = []
    for _ in range(n_iterations):
        x_train, x_val = h_train @ projection, h_val @ projection
        scaler = StandardScaler().fit(x_train)
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=int(seed))
        clf.fit(scaler.transform(x_train), y_train)
        score = uar(y_val, clf.predict(scaler.transform(x_val)))
        history.append(float(score))
        if score <= chance + tolerance:
            break
        w = clf.coef_ / scaler.scale_  # weight vectors in h's coordinates
        w = w @ projection  # keep them inside the current nullspace (numerically)
        w = w[np.linalg.norm(w, axis=1) > 1e-12]
        if not len(w):
            break
        directions.append(w)
        projection = _nullspace(directions, d)
    p = projection.astype(np.float32)
    if not return_info:
        return p
    rank = int(round(d - np.trace(projection)))
    return p, {"val_uar": history, "rank_removed": rank, "iterations": len(history)}


@keras.saving.register_keras_serializable(package="privemo")
class NullspaceProjection(keras.layers.Layer):
    """Multiplies representations by a fixed projection matrix: ``outputs = inputs @ projection``.

    Appended after an encoder (``apply_projection``) it exports the INLP-cleaned representation. The matrix is a
    non-trainable weight (so ``save_weights`` / ``.keras`` files carry it) and is also returned by ``get_config`` as a
    nested list, so the layer rebuilds from its config alone.

    Args:
        projection: (d, d) array-like of finite floats, e.g. from ``fit_inlp``.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: Float tensor (..., d).
    """

    def __init__(self, projection, **kwargs):
        super().__init__(**kwargs)
        try:
            matrix = np.asarray(projection, dtype=np.float32)
        except (TypeError, ValueError):
            matrix = None
        if matrix is None or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1 or not np.isfinite(matrix).all():
            shape = None if matrix is None else matrix.shape
            raise _invalid("projection", "a finite square 2-D matrix (d, d)", f"array of shape {shape}")
        self.dim = int(matrix.shape[0])
        self.projection = self.add_weight(
            shape=matrix.shape,
            initializer=keras.initializers.Constant(matrix),
            trainable=False,
            name="projection",
        )
        self._build_at_init()

    def call(self, inputs):
        return ops.matmul(inputs, ops.cast(self.projection, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "projection": ops.convert_to_numpy(self.projection).tolist()}


def apply_projection(
    model: keras.Model, projection, *, layer: str = "h", freeze_encoder: bool = True, name: str | None = None
) -> keras.Model:
    """``apply_erasure`` with ``NullspaceProjection(projection)`` (e.g. from ``fit_inlp``) as the layer "h"; default name
    ``{model.name}_inlp``."""
    return apply_erasure(model, NullspaceProjection(projection, name="h"), layer=layer, freeze_encoder=freeze_encoder,
                         name=name or f"{model.name}_inlp")


# ---------------------------------------------------------------------------------------------------------------------
# LEACE (post hoc, linear): an affine layer that carries a fitted privemo.removal.leace.LeaceEraser


def _check_affine(kernel, bias) -> tuple[np.ndarray, np.ndarray]:
    try:
        matrix = np.asarray(kernel, dtype=np.float32)
    except (TypeError, ValueError):
        matrix = None
    if (matrix is None or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1
            or not np.isfinite(matrix).all()):
        shape = None if matrix is None else matrix.shape
        raise _invalid("kernel", "a finite square 2-D matrix (d, d)", f"array of shape {shape}")
    try:
        offset = np.asarray(bias, dtype=np.float32)
    except (TypeError, ValueError):
        offset = None
    if offset is None or offset.shape != (matrix.shape[0],) or not np.isfinite(offset).all():
        shape = None if offset is None else offset.shape
        raise _invalid("bias", f"a finite 1-D array of length {matrix.shape[0]}", f"array of shape {shape}")
    return matrix, offset


def leace_affine(eraser) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a fitted ``privemo.removal.leace.LeaceEraser`` as an affine map on rows: ``transform(h) = h - (h - mean)
    A^T = h @ (I - A^T) + mean @ A^T``, so kernel = ``I - A^T`` and bias = ``mean @ A^T`` (float32)."""
    matrix = getattr(eraser, "matrix_", None)
    mean = getattr(eraser, "mean_", None)
    if matrix is None or mean is None:
        raise _invalid("eraser", "a fitted privemo.removal.leace.LeaceEraser (with matrix_ and mean_)", eraser)
    matrix, mean = np.asarray(matrix, np.float64), np.asarray(mean, np.float64)
    return _check_affine(np.eye(len(mean)) - matrix.T, mean @ matrix.T)


@keras.saving.register_keras_serializable(package="privemo")
class AffineErasure(keras.layers.Layer):
    """A fixed affine map of representations: ``outputs = inputs @ kernel + bias``, e.g. a LEACE eraser
    (``AffineErasure.from_eraser``; ``privemo.removal.leace.LeaceEraser``).

    Appended after an encoder (``apply_erasure`` / ``apply_leace``) it exports the erased representation. Kernel and bias
    are non-trainable weights (so checkpoints and ``.keras`` files carry them; ``set_affine`` writes new values) and are
    also returned by ``get_config`` as nested lists, so the layer rebuilds from its config alone.

    Args:
        kernel: (d, d) array-like of finite floats.
        bias: (d,) array-like of finite floats.
        **kwargs: Base layer keyword arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: Float tensor (..., d).
    """

    def __init__(self, kernel, bias, **kwargs):
        super().__init__(**kwargs)
        matrix, offset = _check_affine(kernel, bias)
        self.dim = int(matrix.shape[0])
        self.kernel = self.add_weight(shape=matrix.shape, initializer=keras.initializers.Constant(matrix),
                                      trainable=False, name="kernel")
        self.bias = self.add_weight(shape=offset.shape, initializer=keras.initializers.Constant(offset),
                                    trainable=False, name="bias")
        self._build_at_init()

    @classmethod
    def identity(cls, dim: int, **kwargs) -> "AffineErasure":
        """The identity map of ``dim`` features (a placeholder until an eraser is fitted)."""
        dim = _check_int("dim", dim, 1)
        return cls(np.eye(dim, dtype=np.float32), np.zeros(dim, np.float32), **kwargs)

    @classmethod
    def from_eraser(cls, eraser, **kwargs) -> "AffineErasure":
        """The layer applying a fitted ``privemo.removal.leace.LeaceEraser`` (``leace_affine``)."""
        return cls(*leace_affine(eraser), **kwargs)

    def set_affine(self, kernel, bias) -> None:
        """Write a new (kernel, bias) of the same size."""
        matrix, offset = _check_affine(kernel, bias)
        if matrix.shape[0] != self.dim:
            raise _invalid("kernel", f"a ({self.dim}, {self.dim}) matrix, as the layer's",
                           f"array of shape {matrix.shape}")
        self.kernel.assign(matrix)
        self.bias.assign(offset)

    def call(self, inputs):
        return ops.matmul(inputs, ops.cast(self.kernel, inputs.dtype)) + ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel": ops.convert_to_numpy(self.kernel).tolist(),
                "bias": ops.convert_to_numpy(self.bias).tolist()}


def apply_leace(
    model: keras.Model, eraser, *, layer: str = "h", freeze_encoder: bool = True, name: str | None = None
) -> keras.Model:
    """``apply_erasure`` with ``AffineErasure.from_eraser(eraser)`` (a ``privemo.removal.leace.LeaceEraser`` fitted on
    ``representation_model(model, layer)``'s output) as the layer "h"; default name ``{model.name}_leace``."""
    return apply_erasure(model, AffineErasure.from_eraser(eraser, name="h"), layer=layer, freeze_encoder=freeze_encoder,
                         name=name or f"{model.name}_leace")


# ---------------------------------------------------------------------------------------------------------------------
# Appending an eraser to a trained network


def _copy_layer(layer: keras.layers.Layer, x):
    """A copy of ``layer`` (same configuration, copied weights) called on ``x``."""
    if isinstance(layer, keras.Model):
        copy = keras.models.clone_model(layer)
    else:
        copy = layer.__class__.from_config(layer.get_config())
    y = copy(x)
    copy.set_weights(layer.get_weights())
    return y


def apply_erasure(
    model: keras.Model, erasure: keras.layers.Layer, *, layer: str = "h", freeze_encoder: bool = True,
    name: str | None = None,
) -> keras.Model:
    """A new model: ``model``'s encoder up to ``layer`` (a nested sub-model sharing its weights), then ``erasure`` (a
    layer named "h" mapping (..., d) to (..., d): ``NullspaceProjection``, ``AffineErasure``), then a copy of ``model``'s
    emotion head (same configuration, copied weights). Outputs {"emotion"}; ``representation_model(result)`` gives the
    erased representation.

    An ``AlternatingAdversarialModel`` (removal "alternating" / "ensemble", fused placement: its heads read ``layer``)
    gives an ``AlternatingAdversarialModel`` with the same settings whose adversary heads (copies) read the erased h, and
    its adversary outputs.

    With ``freeze_encoder`` (default) the encoder is not trainable, so ``privemo.nn.training.fit(result, ...)`` refits only
    the heads on the erased representation (as Ravfogel et al. retrain the main-task classifier).
    """
    if not isinstance(erasure, keras.layers.Layer) or erasure.name != "h":
        raise _invalid("erasure", 'a Keras layer named "h"', erasure)
    alternating = isinstance(model, AlternatingAdversarialModel)
    if alternating and set(model.adversaries.values()) != {layer}:
        raise _invalid("model", f"an AlternatingAdversarialModel whose adversaries all read layer '{layer}' (fused "
                                "placement)", f"adversaries reading {model.adversaries}")
    encoder = representation_model(model, layer)
    encoder.trainable = not freeze_encoder
    inputs = {k: keras.Input(shape=t.shape[1:], name=k, dtype=t.dtype) for k, t in model.input.items()}
    h = erasure(encoder(inputs))
    x = h
    i = 1
    while True:
        try:
            dense = model.get_layer(f"emotion_dense{i}")
        except ValueError:
            break
        x = _copy_layer(dense, x)
        i += 1
    outputs = {"emotion": _copy_layer(model.get_layer("emotion"), x)}
    name = name or f"{model.name}_erased"
    if not alternating:
        return keras.Model(inputs, outputs, name=name)
    for o, heads in model._heads.items():
        probs = [_copy_layer(head, h) for head in heads]
        outputs[o] = keras.layers.Average(name=o)(probs) if len(probs) > 1 else keras.layers.Identity(name=o)(probs[0])
    return AlternatingAdversarialModel(inputs, outputs, name=name, **model.method_settings())
