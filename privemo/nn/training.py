"""Training: compile a privemo model, score the whole validation set each epoch, early-stop on the selection objective.

Keras 3 does not log per-output validation losses usable for early stopping, and a batch-averaged accuracy is not UAR. So the
``ValidationUAR`` callback predicts the entire validation set at each epoch end and writes

- ``val_emotion_uar``;
- ``val_gender_uar`` or ``val_speaker_uar`` when the model has an adversary and the validation targets hold that
  attribute (per-modality adversaries: the max over heads, plus ``val_gender_acoustic_uar`` / ``val_gender_lexical_uar``);
- ``val_objective``: the selection objective (``objective`` below: emotion UAR, minus the attribute UAR's excess over
  chance when there is one),

into the epoch logs, where ``EarlyStopping``, keras-tuner and ``History`` see them. ``fit`` wires it together.
``save_checkpoint`` writes a trained network's weights file (a tuner trial's checkpoint) atomically.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
import keras

from privemo._util.io import atomic_output
from privemo.metrics import uar
from privemo.nn.models import attribute_of, output_names

LEARNING_RATE = 1e-3  # assumption: see README assumptions table (Adam; the paper does not state optimiser or rate)
PATIENCE = 5  # assumption: see README assumptions table (early-stopping patience in epochs on val_objective)
MAX_EPOCHS = 30  # assumption: see README assumptions table (epoch cap per grid configuration)
# assumption (README assumptions table, "Selection never keeps an untrained network"): early stopping and the trial's
# best epoch ignore epoch indices below this (after one or two epochs a network may still sit at its initialisation)
MIN_KEPT_EPOCH = 2
OBJECTIVE_WEIGHT = 1.0  # assumption: see README assumptions table (weight of the attribute UAR's excess over chance)
VAL_BATCH_SIZE = 64  # validation prediction batch size (no effect on results, only speed/memory)
OBJECTIVE = "val_objective"  # the selection objective's log key (ValidationUAR writes it; early stopping reads it)


def objective(
    emotion_uar: float,
    attribute_uar: float | None = None,
    chance: float = 0.5,
    weight: float = OBJECTIVE_WEIGHT,
    *,
    two_sided: bool = False,
) -> float:
    """The model-selection objective (higher is better).

    The paper selects the configuration that "maximises validation emotion performance while minimising validation gender
    performance" without a formula. privemo uses one number::

        objective = emotion_uar - weight * max(0, attribute_uar - chance)

    An attribute recognised at or below chance costs nothing; every point of attribute UAR above chance costs ``weight``
    points of emotion UAR. Without an adversary (``attribute_uar=None``, the baseline) it is the emotion UAR alone.
    ``chance`` is 1/K for K attribute classes (0.5 for gender).

    Where the attribute UAR comes from decides whether the rule can be gamed. privemo's default takes it from a *fresh
    probe* fitted on the training speakers' h each epoch (``privemo.search.selection.PrivacyProbe``), which cannot be fooled the
    way a jointly trained head can. The paper-literal rule scores the adversary head itself; a head driven below chance
    is confidently wrong and still leaks, so with ``two_sided=True`` its distance from chance costs in both directions:
    ``emotion_uar - weight * |attribute_uar - chance|``.

    Args:
        emotion_uar: Validation emotion UAR in [0, 1].
        attribute_uar: Validation gender / speaker UAR in [0, 1], or None.
        chance: The attribute's chance UAR.
        weight: Float >= 0, the trade-off (0: emotion only).
        two_sided: penalise the distance from chance in both directions (the head-based rule).
    """
    for name, value in (("emotion_uar", emotion_uar), ("chance", chance)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(
                f"Invalid value received for argument `{name}`. Expected a float in [0, 1]. Received: {name}={value!r}"
            )
    if float(weight) < 0:
        raise ValueError(f"Invalid value received for argument `weight`. Expected a float >= 0. Received: weight={weight!r}")
    if attribute_uar is None:
        return float(emotion_uar)
    if not 0.0 <= float(attribute_uar) <= 1.0:
        raise ValueError(
            f"Invalid value received for argument `attribute_uar`. Expected a float in [0, 1] or None. "
            f"Received: attribute_uar={attribute_uar!r}"
        )
    excess = float(attribute_uar) - float(chance)
    return float(emotion_uar) - float(weight) * (abs(excess) if two_sided else max(0.0, excess))


_default_objective = objective


def compile_model(
    model: keras.Model,
    learning_rate: float = LEARNING_RATE,
    *,
    jit_compile: bool | str = False,
    loss_weights: Mapping[str, float] | None = None,
) -> keras.Model:
    """Compile ``model`` in place (and return it): Adam(learning_rate), one sparse categorical cross-entropy per output,
    summed with weight 1 (the GradientReversal layer supplies the adversary's sign). No metrics: UAR is computed on the
    whole validation set by ``ValidationUAR``.

    ``jit_compile=False`` by default: XLA cannot compile the cuDNN GRU kernel, and on CPU it gains little.
    """
    if not float(learning_rate) > 0:
        raise ValueError(
            "Invalid value received for argument `learning_rate`. Expected a float > 0. "
            f"Received: learning_rate={learning_rate!r}"
        )
    names = output_names(model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)),
        loss={name: keras.losses.SparseCategoricalCrossentropy(name=f"{name}_loss") for name in names},
        loss_weights=dict(loss_weights) if loss_weights is not None else None,
        jit_compile=jit_compile,
    )
    return model


def _target_for(output: str, targets: Mapping[str, np.ndarray]):
    """Targets of ``output``; a per-modality head ("gender_acoustic") falls back to its attribute's key ("gender")."""
    if output in targets:
        return targets[output]
    attribute = attribute_of(output)
    if attribute is not None and attribute in targets:
        return targets[attribute]
    return None


def _input_names(model: keras.Model) -> list[str]:
    inp = model.input
    return list(inp) if isinstance(inp, dict) else [t.name for t in model.inputs]


def predict_sequences(
    model: keras.Model, inputs: Mapping[str, Sequence[np.ndarray]], batch_size: int = VAL_BATCH_SIZE
) -> dict[str, np.ndarray]:
    """Predict utterances given as {modality: [array (frames_i, dim), ...]} (all of them, in order) with
    ``privemo.data.pipeline.predict``: length-sorted zero-padded batches, results in the original order."""
    from privemo.data.pipeline import predict

    keys = _input_names(model)
    absent = [k for k in keys if k not in inputs]
    if absent:
        raise ValueError(f"Missing input(s) {absent} for model '{model.name}'. Received keys: {sorted(inputs)}")
    n = len(inputs[keys[0]])
    return predict(model, {k: inputs[k] for k in keys}, np.arange(n), batch_size=batch_size)


def predict_dataset(
    model: keras.Model, dataset: tf.data.Dataset
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """Predict every batch of ``dataset`` (elements x, or (x, y[, sw])). Returns (predictions, targets or None), both
    concatenated in the dataset's order, so bucketed / reordered datasets stay aligned with their labels."""
    preds: dict[str, list] = {}
    targets: dict[str, list] | None = None
    for element in dataset:
        if isinstance(element, tuple):
            x = element[0]
            y = element[1] if len(element) > 1 else None
        else:
            x, y = element, None
        batch = model.predict_on_batch(x)
        for name, value in batch.items():
            preds.setdefault(name, []).append(np.asarray(value))
        if y is not None:
            targets = targets if targets is not None else {}
            for name, value in y.items():
                targets.setdefault(name, []).append(np.asarray(value))
    return (
        {k: np.concatenate(v) for k, v in preds.items()},
        None if targets is None else {k: np.concatenate(v) for k, v in targets.items()},
    )


class ValidationUAR(keras.callbacks.Callback):
    """Scores the whole validation set at each epoch end and logs ``val_emotion_uar``, ``val_<attribute>_uar`` (max over
    per-modality heads, plus each head's ``val_<head>_uar``) and ``val_objective``.

    Args:
        val_data: a ``tf.data.Dataset`` yielding (x, y[, sw]) (targets taken from it, any order) or x only (then
            ``val_targets`` must follow the dataset's order), or a dict {modality: [array (frames_i, dim)]} of raw
            utterances (predicted with ``predict_sequences``), or a callable ``model -> {output: scores}``.
        val_targets: {output name or attribute: int labels}; a per-modality head falls back to its attribute's key. An
            output without targets is not scored (e.g. a speaker head on unseen validation speakers).
        objective: ``f(emotion_uar, attribute_uar_or_None, chance) -> float``; default ``objective`` (weight 1).
        batch_size: prediction batch size for raw utterances.
        probe: a ``privemo.search.selection.PrivacyProbe``: the attribute term of the objective then comes from a fresh probe
            fitted on the training speakers' h each epoch (logged as ``val_probe``), not from the adversary head (whose
            UAR is still logged). Needs raw-utterance ``val_data`` and a model with an "h" layer.
    """

    def __init__(
        self,
        val_data,
        val_targets: Mapping[str, np.ndarray] | None = None,
        *,
        objective: Callable[[float, float | None, float], float] | None = None,
        batch_size: int = VAL_BATCH_SIZE,
        probe=None,
    ):
        super().__init__()
        if probe is not None and (isinstance(val_data, tf.data.Dataset) or callable(val_data)):
            raise ValueError("ValidationUAR with a `probe` needs the validation utterances as {modality: [arrays]}.")
        self.probe = probe
        self.val_data = val_data
        self.val_targets = None if val_targets is None else {k: np.asarray(v) for k, v in val_targets.items()}
        self.objective = objective if objective is not None else _default_objective
        self.batch_size = batch_size
        self.last: dict[str, float] = {}

    def _predict(self, model):
        data = self.val_data
        if self.probe is not None:
            scorer = with_representation(model)
            preds = predict_sequences(scorer, data, self.batch_size)
            h_train = predict_sequences(scorer, self.probe.train_inputs, self.batch_size)["h"]
            preds["probe"] = self.probe.score(h_train, preds.pop("h"))
            return preds, self.val_targets
        if isinstance(data, tf.data.Dataset):
            preds, targets = predict_dataset(model, data)
        elif callable(data):
            preds, targets = data(model), None
        else:
            preds, targets = predict_sequences(model, data, self.batch_size), None
        if targets is None:
            targets = self.val_targets
        if targets is None:
            raise ValueError("ValidationUAR needs validation targets: pass `val_targets`, or a dataset yielding (x, y).")
        return preds, targets

    def scores(self, model: keras.Model | None = None) -> dict[str, float]:
        """Compute the validation logs of ``model`` (default: the model being trained) with its current weights."""
        preds, targets = self._predict(self.model if model is None else model)
        logs: dict[str, float] = {}
        if "emotion" not in preds or _target_for("emotion", targets) is None:
            raise ValueError("ValidationUAR needs an 'emotion' output and 'emotion' validation targets.")
        emotion = uar(_target_for("emotion", targets), preds["emotion"])
        logs["val_emotion_uar"] = emotion
        probe = preds.pop("probe", None)
        per_attribute: dict[str, list[tuple[float, float]]] = {}
        for name, scores in preds.items():
            attribute = attribute_of(name)
            y = _target_for(name, targets)
            if attribute is None or y is None:
                continue
            value = uar(y, scores)
            if name != attribute:
                logs[f"val_{name}_uar"] = value
            per_attribute.setdefault(attribute, []).append((value, 1.0 / np.asarray(scores).shape[-1]))
        attribute_uar, chance = None, 0.5
        for attribute, values in per_attribute.items():
            best = max(values)
            logs[f"val_{attribute}_uar"] = best[0]
            attribute_uar, chance = best
        if probe is not None:
            logs["val_probe"] = attribute_uar = float(probe)
            chance = 0.5
        logs[OBJECTIVE] = float(self.objective(emotion, attribute_uar, chance))
        return logs

    def on_epoch_end(self, epoch, logs=None):
        self.last = self.scores()
        if logs is not None:
            logs.update(self.last)


_SCORERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def with_representation(model: keras.Model) -> keras.Model:
    """``model`` with its representation h (layer "h") as one more output, sharing its weights; one per model, so
    its prediction function is traced once however many epochs and trials score it."""
    scorer = _SCORERS.get(model)
    if scorer is None:
        outputs = dict(model.output) if isinstance(model.output, dict) else {"emotion": model.get_layer("emotion").output}
        outputs["h"] = model.get_layer("h").output
        scorer = _SCORERS[model] = keras.Model(model.inputs, outputs, name=f"{model.name}_with_h")
    return scorer


def align_dataset(dataset: tf.data.Dataset, model: keras.Model) -> tf.data.Dataset:
    """Make a (x, y[, sw]) dataset match the model's outputs: per-modality heads take their attribute's targets
    ("gender" -> "gender_acoustic", "gender_lexical"), targets of outputs the model lacks are dropped, and missing sample
    weights become ones (Keras needs one weight entry per output when any is given)."""
    names = output_names(model)
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2 or not isinstance(spec[1], dict):
        return dataset
    y_keys = set(spec[1])
    missing = [n for n in names if n not in y_keys and (attribute_of(n) not in y_keys)]
    if missing:
        raise ValueError(
            f"The training dataset has no targets for output(s) {missing} of model '{model.name}'. "
            f"Received target keys: {sorted(y_keys)}"
        )
    has_sw = len(spec) > 2 and spec[2] is not None
    if set(names) == y_keys and (not has_sw or set(spec[2]) == y_keys):
        return dataset

    def pick(d):
        return {n: d[n] if n in d else d[attribute_of(n)] for n in names}

    def fix(x, y, sw=None):
        y2 = pick(y)
        if sw is None:
            return x, y2
        sw2 = {}
        for n in names:
            key = n if n in sw else attribute_of(n)
            sw2[n] = sw[key] if key in sw else tf.ones_like(tf.cast(y2[n], tf.float32))
        return x, y2, sw2

    return dataset.map(fix, num_parallel_calls=tf.data.AUTOTUNE)


def first_kept_epoch(epochs: int) -> int:
    """The first epoch index early stopping may keep: ``MIN_KEPT_EPOCH``, or the last epoch of a shorter run."""
    return max(0, min(MIN_KEPT_EPOCH, int(epochs) - 1))


def early_stopping(patience: int, epochs: int, monitor: str = OBJECTIVE) -> keras.callbacks.EarlyStopping:
    """Keras' EarlyStopping on ``monitor`` (mode max, best weights restored) that never keeps an epoch before
    ``first_kept_epoch(epochs)``: patience counts from there."""
    return keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=int(patience),
                                         restore_best_weights=True, start_from_epoch=first_kept_epoch(epochs))


def best_epoch(history: Mapping[str, Sequence[float]], monitor: str = OBJECTIVE) -> dict[str, float]:
    """The logs of the best epoch (first maximum of ``monitor`` from ``first_kept_epoch`` on, as ``early_stopping``
    keeps it), with its index as "epoch"."""
    values = history.get(monitor)
    if not values:
        raise ValueError(f"The history has no '{monitor}' values. Received keys: {sorted(history)}")
    start = first_kept_epoch(len(values))
    i = start + int(np.argmax(values[start:]))
    out = {k: float(v[i]) for k, v in history.items() if len(v) > i}
    out["epoch"] = i
    return out


def fit(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_data,
    val_targets: Mapping[str, np.ndarray] | None = None,
    *,
    epochs: int = MAX_EPOCHS,
    patience: int = PATIENCE,
    objective: Callable[[float, float | None, float], float] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 0,
    learning_rate: float = LEARNING_RATE,
    probe=None,
) -> dict[str, list[float]]:
    """Train ``model`` on ``train_ds`` (a dataset of (x, y[, sw]); see ``align_dataset``) with whole-set validation UAR
    and early stopping on ``val_objective`` (mode max, ``patience`` epochs, best weights restored at the end).

    The model is compiled with ``compile_model(model, learning_rate)`` if it is not compiled yet. ``val_data`` /
    ``val_targets``: see ``ValidationUAR``. Extra ``callbacks`` run after the validation scoring, so they see
    ``val_objective``. ``probe``: see ``ValidationUAR``. Returns the history dict (one list per log key, one value per
    epoch run).
    """
    for name, value, low in (("epochs", epochs, 1), ("patience", patience, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(
                f"Invalid value received for argument `{name}`. Expected an integer >= {low}. Received: {name}={value!r}"
            )
    if not model.compiled:
        compile_model(model, learning_rate)
    restart = getattr(train_ds, "privemo_restart_epochs", None)
    if restart is not None:  # every training run starts from epoch 0 of the pipeline's shuffle (see make_dataset)
        restart()
    validation = ValidationUAR(val_data, val_targets, objective=objective, probe=probe)
    stopper = early_stopping(patience, epochs)
    history = model.fit(
        align_dataset(train_ds, model),
        epochs=int(epochs),
        callbacks=[validation, stopper, *callbacks],
        verbose=verbose,
        shuffle=False,  # a tf.data pipeline shuffles itself
    )
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def save_checkpoint(model: keras.Model, path: str | os.PathLike) -> Path:
    """``model.save_weights(path)`` (a ``.weights.h5`` file), written atomically: Keras writes a temporary file in the same
    folder, which is flushed and renamed to ``path`` (``privemo._util.io.atomic_output``). A run killed or stopped
    during the write leaves the old checkpoint (or none), never a truncated one under ``path``; a full disk or an
    unwritable folder is a ``privemo._util.io.WriteError`` naming ``path``. Returns ``path``."""
    path = Path(path)
    with atomic_output(path) as tmp:
        model.save_weights(str(tmp))
    return path
