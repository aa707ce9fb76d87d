"""Alternating adversary / encoder updates without gradient reversal ("alternating"), and against an ensemble of
independently initialised adversary heads ("ensemble"): ``AlternatingAdversarialModel``, with the per-epoch fresh
re-training of its heads (``AdversaryRefresh``)."""

from __future__ import annotations

import numpy as np
import keras

from privemo._util.validation import check_choice, check_float, check_int, invalid
from privemo.nn.models import build_model
from privemo.removal._common import (
    ADVERSARY_STEPS,
    ADVERSARY_WEIGHT,
    ALTERNATING_LOSS,
    ALTERNATING_LOSSES,
    ENSEMBLE_SIZE,
    REFRESH_BATCH_SIZE,
    REFRESH_EPOCHS,
    REFRESH_LEARNING_RATE,
    AttributeHeadsModel,
    RemovalSettings,
    attach_heads,
    attribute_head_model,
    require_adversary,
    weighted_mean,
)
from privemo.removal.losses import confusion_loss, reverse_loss

__all__ = ["AlternatingAdversarialModel", "AdversaryRefresh", "adversary_head_model", "reinitialize",
           "build_alternating", "build_ensemble"]

#: one adversary head of the alternating model (``attribute_head_model``; the name it has always had here)
adversary_head_model = attribute_head_model


@keras.saving.register_keras_serializable(package="privemo")
class AlternatingAdversarialModel(AttributeHeadsModel):
    """Emotion network trained with alternating adversary / encoder updates (no gradient reversal).

    Each ``train_step``: (1) the representation is computed once; (2) the adversary heads take ``k`` optimiser steps of
    ordinary cross-entropy on the *frozen* representation (``adversary_optimizer``); (3) the encoder and the emotion head
    take one step on ``emotion CE + adversary_weight * mean over heads(privacy loss)`` against the updated heads
    (``optimizer``), the privacy loss being ``reverse_loss`` or ``confusion_loss``. ``k = 0`` keeps the heads fixed.

    A functional model (``privemo.removal._common.AttributeHeadsModel``): ``call`` returns the dict of ``build_model``
    ("emotion" and one output per adversary: the head's softmax, or the average over the ensemble's heads). Build it with
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
        n_adversaries = check_int("n_adversaries", kwargs.pop("n_adversaries", 1), 1)
        k = check_int("k", kwargs.pop("k", ADVERSARY_STEPS), 0)
        adversary_loss = check_choice("adversary_loss", kwargs.pop("adversary_loss", ALTERNATING_LOSS),
                                      ALTERNATING_LOSSES)
        adversary_weight = check_float("adversary_weight", kwargs.pop("adversary_weight", ADVERSARY_WEIGHT), 0)
        adversary_learning_rate = kwargs.pop("adversary_learning_rate", None)
        if adversary_learning_rate is not None:
            adversary_learning_rate = check_float("adversary_learning_rate", adversary_learning_rate, 0, low_open=True,
                                                  expected="a float > 0 or None")
        refresh_epochs = check_int("refresh_epochs", kwargs.pop("refresh_epochs", REFRESH_EPOCHS), 0)
        super().__init__(inputs, outputs, name=name, adversaries=adversaries, n_heads=n_adversaries,
                         trackers=("emotion_loss", "adversary_loss", "privacy_loss"), **kwargs)
        self.n_adversaries, self.k = n_adversaries, k
        self.adversary_loss, self.adversary_weight = adversary_loss, adversary_weight
        self.adversary_learning_rate = adversary_learning_rate
        self.refresh_epochs = refresh_epochs
        self.adversary_optimizer = None

    @staticmethod
    def head_name(output: str, index: int) -> str:
        """Layer name of the ``index``-th (1-based) head of adversary output ``output``."""
        return f"{output}_adversary{index}_head"

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

    def _adversary_ce(self, sources, targets, weights):
        total = 0.0
        for o, hs in self._heads.items():
            for head in hs:
                ce = keras.losses.sparse_categorical_crossentropy(targets[o], head(sources[o], training=True))
                total = total + weighted_mean(ce, weights[o])
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
                total = total + weighted_mean(per_sample, weights[o])
        return total / float(self.n_adversaries)

    def _adversary_steps(self, sources, targets, weights):
        """``k`` optimiser steps of the heads on the frozen ``sources``; the last adversary loss (0.0 when k = 0)."""
        import tensorflow as tf

        adversary_loss = 0.0
        frozen = {o: tf.stop_gradient(s) for o, s in sources.items()}
        for _ in range(self.k):
            with tf.GradientTape() as adversary_tape:
                adversary_loss = self._adversary_ce(frozen, targets, weights)
            grads = adversary_tape.gradient(adversary_loss, self._adversary_variables)
            self.adversary_optimizer.apply(grads, self._adversary_variables)
        return adversary_loss

    def train_step(self, data):
        import tensorflow as tf  # the train step is written for the TensorFlow backend

        if self.adversary_optimizer is None:
            raise RuntimeError("Compile the model first: model.compile(optimizer) or privemo.nn.training.compile_model(model).")
        x, targets, weights = self._training_data(data)
        with tf.GradientTape() as tape:
            view = self._view(x, training=True)
            sources = view["sources"]
            with tape.stop_recording():
                adversary_loss = self._adversary_steps(sources, targets, weights)
            emotion_loss = weighted_mean(
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
        return self._track(loss=loss, emotion_loss=emotion_loss, adversary_loss=adversary_loss,
                           privacy_loss=privacy_loss)

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
        self.epochs = check_int("epochs", epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.learning_rate = check_float("learning_rate", learning_rate, 0)
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
            x, y, sw = keras.utils.unpack_x_y_sample_weight(element)
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


def _build(build_kwargs: dict, settings: RemovalSettings, n_adversaries: int, removal: str):
    require_adversary(build_kwargs, removal)
    # build_model validates every argument and gives the encoder, the emotion head and the adversaries' names and sizes;
    # its GRL heads are left out of the new graph (the alternating model has its own, GRL-free heads).
    base = build_model(**build_kwargs)
    outputs, adversaries = attach_heads(base, build_kwargs, n_adversaries, AlternatingAdversarialModel.head_name,
                                        normalize=settings.normalize_adversary)
    suffix = "ensemble" if n_adversaries > 1 else "alternating"
    return AlternatingAdversarialModel(
        base.input,
        outputs,
        name=f"{base.name}_{suffix}",
        adversaries=adversaries,
        n_adversaries=n_adversaries,
        k=settings.k,
        adversary_loss=settings.adversary_loss,
        adversary_weight=settings.adversary_weight * float(build_kwargs.get("grl_lambda", 1.0)),  # the tuned strength
        adversary_learning_rate=settings.adversary_learning_rate,
        refresh_epochs=settings.refresh_epochs,
    )


def build_alternating(build_kwargs: dict, settings: RemovalSettings) -> AlternatingAdversarialModel:
    """"alternating": one adversary head per attribute output (``settings.n_adversaries``, default 1)."""
    n = 1 if settings.n_adversaries is None else settings.n_adversaries
    return _build(build_kwargs, settings, n, "alternating")


def build_ensemble(build_kwargs: dict, settings: RemovalSettings) -> AlternatingAdversarialModel:
    """"ensemble": ``settings.n_adversaries`` (default ``ENSEMBLE_SIZE``, at least 2) heads per attribute output."""
    n = ENSEMBLE_SIZE if settings.n_adversaries is None else settings.n_adversaries
    if n < 2:
        raise invalid("n_adversaries", "an integer >= 2 for removal='ensemble'", n)
    return _build(build_kwargs, settings, n, "ensemble")
