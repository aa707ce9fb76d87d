"""Post-hoc attribute erasure inside a trial (the methods whose ``RemovalMethod.posthoc`` is true: "inlp", "leace",
"ensemble_leace", "mmd_leace", "ensemble3_leace"): after training, the attribute is erased from h and the emotion head
refitted, so that the trial's scores, checkpoint and every later use (selection, representation, attacks, saved model)
see the erased network. ``privemo.search.hypermodel.EmotionPrivacyHyperModel.fit`` runs it right after training.

1. h of every training row, read from the training dataset itself (the rows trained on; rows whose attribute sample
   weight is 0, e.g. unknown gender, are left out);
2. the method's eraser (``RemovalMethod.eraser``), fitted on them as an affine map ``h @ kernel + bias`` (``ERASERS``;
   only this step depends on it):
   - INLP (``privemo.removal.fit_inlp``; bias 0). Its stopping rule scores the validation speakers when ``val_data``
     are raw utterances and ``val_targets`` hold the attribute (gender); otherwise (speaker identity: the validation
     speakers are unseen) a seeded, stratified ``INLP_HOLDOUT`` of the training rows, left out of the fit;
   - LEACE (``privemo.removal.leace.LeaceEraser``, closed form, on every such row: gender ids, or the training
     speakers' ids for the speaker adversary; no stopping rule, so no held-out rows);
3. the map is written into the network's layer "h" (``NullspaceProjection`` for INLP, ``AffineErasure`` for LEACE;
   the checkpoint carries its weights);
4. the emotion head is refitted on the erased training h with the encoder frozen, as Ravfogel et al. retrain the
   main-task classifier (Adam at the trial's learning rate, batches of ``INLP_REFIT_BATCH_SIZE``, the trial's epoch
   budget, early stopping with ``patience`` on the validation emotion loss). The adversary heads of the methods trained
   with one are left as trained (privacy is judged by fresh attackers and the probe);
5. the validation scores are computed again on the erased network (``ValidationUAR``; with ``probe``, the probe on the
   erased h gives the privacy term).
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np

from privemo._util.validation import invalid
from privemo.nn.models import head_layers
from privemo.nn.training import OBJECTIVE, ValidationUAR, predict_sequences, with_representation
from privemo.removal.erasure import leace_affine
from privemo.removal.inlp import NullspaceProjection, fit_inlp
from privemo.removal.leace import LeaceEraser
from privemo.removal.methods import POST_HOC, RemovalMethod, removal_method

__all__ = ["erase_post_hoc", "training_representation", "refit_emotion_head", "inlp_eraser", "leace_eraser", "ERASERS",
           "INLP_HOLDOUT", "INLP_REFIT_BATCH_SIZE"]

# assumption (README assumptions table): INLP / LEACE inside the experiment. Share of the training rows that scores
# INLP's stopping rule when the validation speakers cannot (speaker identity: they are unseen), and the batch size of
# the emotion head's refit on the erased h (INLP and LEACE).
INLP_HOLDOUT = 0.25
INLP_REFIT_BATCH_SIZE = 32


def erase_post_hoc(model: keras.Model, train_ds, val_data, val_targets=None, *, method: str | RemovalMethod,
                   attribute: str, learning_rate: float, epochs: int, patience: int, seed: int = 0, probe=None,
                   objective=None) -> dict:
    """Steps 1-5 above for the post-hoc ``method`` on the trained ``model`` (changed in place).

    Args:
        model: the trained network, with the eraser's layer "h" (``privemo.removal.networks.build_network``).
        train_ds: the training dataset (its first-epoch rows are the rows the eraser is fitted on).
        val_data, val_targets: the validation data, as ``privemo.nn.training.ValidationUAR`` takes them.
        method: a post-hoc removal method (``RemovalMethod.posthoc``) or its name.
        attribute: the attribute erased ("gender" or "speaker"), a target of ``train_ds``.
        learning_rate, epochs, patience: the emotion head's refit (Adam, epoch budget, early stopping).
        seed: seeds INLP's held-out rows and the refit's shuffling.
        probe, objective: the trial's privacy probe and selection objective, for the new validation scores.

    Returns the new scores ("val_objective", "val_emotion_uar", "val_probe" with a probe) and the eraser's own:
    "inlp_rank_removed" (directions removed), "inlp_iterations"; or "leace_rank_removed" (rank of LEACE's edit)."""
    method = removal_method(method)
    if not method.posthoc:
        raise invalid("method", f"a post-hoc removal method (one of {tuple(POST_HOC)})", method.name)
    scorer = with_representation(model)
    data = training_representation(scorer, train_ds, attribute, method.name)
    known = data["w"] > 0
    h_val = predict_sequences(scorer, val_data)["h"] if isinstance(val_data, Mapping) else None
    val_labels = None
    if h_val is not None and val_targets is not None and attribute in val_targets:
        val_labels = np.asarray(val_targets[attribute])
    seed = int(seed)
    eraser = ERASERS[method.eraser]
    kernel, bias, info = eraser(data["h"][known], data["y"][known], h_val, val_labels, seed)
    layer = model.get_layer("h")
    if isinstance(layer, NullspaceProjection):
        layer.projection.assign(kernel)
    else:
        layer.set_affine(kernel, bias)
    validation = None
    if h_val is not None and val_targets is not None and "emotion" in val_targets:
        validation = (h_val @ kernel + bias, np.asarray(val_targets["emotion"]))
    refit_emotion_head(model, data, kernel, bias, validation, learning_rate=float(learning_rate),
                       epochs=int(epochs), patience=int(patience), seed=seed)
    scores = ValidationUAR(val_data, val_targets, objective=objective, probe=probe).scores(model)
    scores = {k: v for k, v in scores.items() if k in (OBJECTIVE, "val_probe", "val_emotion_uar")}
    return {**scores, **info}


def training_representation(scorer, train_ds, attribute: str, removal: str) -> dict[str, np.ndarray]:
    """h of every training row (in the dataset's first-epoch order) with its attribute label and weight, and its
    emotion label and weight: {"h", "y", "w", "emotion", "emotion_w"}."""
    import tensorflow as tf

    restart = getattr(train_ds, "privemo_restart_epochs", None)
    if restart is not None:  # a fixed row order, whatever ran before
        restart()
    parts: dict[str, list] = {}
    for element in train_ds:
        x, y = element[0], element[1]
        sw = element[2] if len(element) > 2 else {}
        key = attribute if attribute in y else next((k for k in y if k.startswith(f"{attribute}_")), None)
        if key is None or "emotion" not in y:
            raise ValueError(f"removal={removal!r} needs the training dataset's targets to hold 'emotion' and "
                             f"'{attribute}'. Received target keys: {sorted(y)}")
        ones = tf.ones_like(tf.cast(y[key], tf.float32))
        for name, value in (("h", scorer.predict_on_batch(x)["h"]), ("y", y[key]), ("w", sw.get(key, ones)),
                            ("emotion", y["emotion"]), ("emotion_w", sw.get("emotion", ones))):
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


def refit_emotion_head(model, data: dict, kernel: np.ndarray, bias: np.ndarray, validation, *, learning_rate: float,
                       epochs: int, patience: int, seed: int) -> None:
    """Refit ``model``'s emotion head (its own layers, so the network changes) on the erased training h; the encoder is
    not touched (h is computed once)."""
    import tensorflow as tf

    z = inputs = keras.Input(shape=(kernel.shape[0],), name="h_erased")
    for layer in head_layers(model, "emotion"):
        z = layer(z)
    head = keras.Model(inputs, z, name=f"{model.name}_emotion_head")
    head.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="sparse_categorical_crossentropy")
    rows = data["emotion_w"] > 0
    refit = tf.data.Dataset.from_tensor_slices(
        (data["h"][rows] @ kernel + bias, data["emotion"][rows], data["emotion_w"][rows].astype(np.float32)))
    refit = refit.shuffle(int(rows.sum()), seed=seed).batch(INLP_REFIT_BATCH_SIZE)  # seeded: op determinism
    head.fit(refit, epochs=epochs, validation_data=validation, verbose=0, shuffle=False,  # shuffled above
             callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss" if validation is not None else "loss",
                                                      patience=patience, restore_best_weights=True)])


def inlp_eraser(h, labels, h_val, val_labels, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """INLP's projection as (kernel, zero bias, scores), stopped on (h_val, val_labels) when given, else on a seeded,
    stratified ``INLP_HOLDOUT`` of the rows, left out of the fit."""
    if h_val is not None and val_labels is not None:
        fit_rows, check = np.arange(len(labels)), (h_val, val_labels)
    else:
        from sklearn.model_selection import train_test_split

        rows = np.arange(len(labels))
        try:
            fit_rows, held = train_test_split(rows, test_size=INLP_HOLDOUT, random_state=seed, stratify=labels)
        except ValueError:  # a class with a single row cannot be stratified
            fit_rows, held = train_test_split(rows, test_size=INLP_HOLDOUT, random_state=seed)
        check = (h[held], labels[held])
    projection, info = fit_inlp(h[fit_rows], labels[fit_rows], *check, seed=seed, return_info=True)
    return projection, np.zeros(projection.shape[0], np.float32), {
        "inlp_rank_removed": float(info["rank_removed"]), "inlp_iterations": float(info["iterations"])}


def leace_eraser(h, labels, h_val, val_labels, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """LEACE fitted on every row (closed form: no validation data, no seed) as (kernel, bias, scores)."""
    eraser = LeaceEraser().fit(h, labels)
    kernel, bias = leace_affine(eraser)
    return kernel, bias, {"leace_rank_removed": float(eraser.rank_)}


def gradient_eraser(h, labels, h_val, val_labels, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """``GradientSubspaceEraser`` (non-linear probes, cross-fitted on the training rows; its stopping rule needs no
    validation data) as (kernel, bias, scores). Without speaker groups, its probes may also read the attribute through
    speaker identity, so it may remove more directions than a speaker-grouped fit would."""
    from threadpoolctl import threadpool_limits

    from privemo.removal.gradient_erasure import GradientSubspaceEraser

    with threadpool_limits(1):  # the trees' OpenMP threads slow it 10-20x on shared cores
        eraser = GradientSubspaceEraser(random_state=seed).fit(h, labels)
    kernel, bias = leace_affine(eraser)
    return kernel, bias, {"gradient_rank_removed": float(eraser.rank_), "gradient_rounds": float(eraser.n_iter_),
                          "gradient_converged": float(eraser.converged_)}


#: the eraser of each post-hoc method (``RemovalMethod.eraser``): (h, labels, h_val, val_labels,
#: seed) -> (kernel, bias, scores) of the affine map ``h @ kernel + bias``
ERASERS = {"inlp": inlp_eraser, "leace": leace_eraser, "gradient": gradient_eraser}
