"""Privacy attacks: fresh attackers on frozen representations, and membership identification.

Every privacy figure privemo reports comes from an attacker trained *afresh* after the emotion model is frozen (the
adversary head's own accuracy during training says little: a jointly trained gradient reversal layer can leave the
attribute in h while its head is fooled). Everything here works on plain NumPy arrays -- representations h of shape
(n_utterances, n_features) and the model's emotion probabilities of shape (n_utterances, n_classes) -- so it does not
depend on how h was produced. Linkage of unseen speakers (speaker verification, EER) is in `privemo.privacy.verification`.

Attribute attack protocol (gender, or speaker identity)
-------------------------------------------------------
- The paper's attacker (`MLPAttacker`, `train_attacker`): an MLP of ``dense_layers`` x Dense(``dense_width``, relu)
  and a softmax, one per configuration of the paper's grid (dense layers {2, 3, 4} x width {32, 64},
  `privemo.search.grids.ATTACKER_GRID`). Assumptions (not in the paper): inputs standardised with statistics of the attacker's
  training set; Adam (learning rate 1e-3), batch size 64, class-balanced sample weights; early stopping on the
  validation UAR computed on the whole validation set after every epoch (at most 100 epochs, patience 10), restoring
  the best epoch's weights; the configuration with the best validation UAR is kept.
- Beyond the paper: logistic regression (C picked on validation UAR from {0.01, 0.1, 1, 10}), an RBF support vector
  machine (C from {0.1, 1, 10} x gamma from {1/4, 1, 4} / n_features, picked on validation UAR; trained on at most
  10000 utterances, a stratified seeded subsample beyond that; probabilities by Platt scaling on out-of-fold decision
  values) and histogram gradient boosting (one small fixed configuration `HGB_PARAMS`, no early stopping), all on
  standardised inputs with balanced class weights.
- Data (default of `attack_representation`, design assumption): attackers are trained on the training speakers'
  representations and tuned / early-stopped on the validation speakers (within each attacker family, by validation
  UAR as above).
- Selection among the attackers: each family's tuned attacker gets its validation log-loss (scikit-learn ``log_loss``
  of its class probabilities, clipped to [1e-7, 1]); ``strongest`` is the one with the lowest (ties to the earlier
  name in ``attackers``). Log-loss uses every probability, so it separates attackers that UAR on a few hundred
  validation utterances cannot (selection by validation UAR can favour an attacker that fit the validation noise).
- Refit: the selected attacker is retrained with its chosen hyper-parameters on training + validation speakers (the
  MLP for its best epoch count, the epoch index + 1, without early stopping; sklearn attackers with their chosen
  setting) and then scored (UAR) on the test speakers: that test UAR is the reported leakage, with a seeded
  percentile bootstrap 95 % interval over the test utterances (1000 resamples; the attacker is not retrained, so it
  covers test-set sampling only). The training-only fit's test UAR is kept too. The other attackers are scored as
  trained on the training speakers; the highest test UAR over all attackers is reported, labelled an optimistic
  upper bound (it selects on the test set). Chance UAR is 1 / n_classes (0.5 for gender).
- Without validation data (``h_val`` None or empty) attackers are tuned and selected on the training data (optimistic)
  and the refit retrains on the same data, which reproduces the training fit exactly.
- Speaker identity (`speaker_attack`): test speakers are unseen in training, so speaker identity can only be attacked
  among a set's own speakers. The utterances of each speaker in the given set (by default the test speakers) are split
  at random (seeded, per speaker, so the split is stratified) into 50 % attacker-train / 25 % attacker-validation /
  25 % attacker-test, and the same attackers are trained, selected, refit and scored; chance UAR is 1 / n_speakers.
  Each speaker needs at least 3 utterances.

Membership identification (MI) protocol
---------------------------------------
Question: from the emotion model's output probabilities alone, can an attacker tell whether an utterance was in the
model's training set? (The paper reports an MI column without stating its protocol; this is privemo's assumption.)

- Members are training utterances; non-members are held-out utterances the model never trained on. The caller
  chooses them. Non-members of the *same* speakers measure memorisation of utterances: `holdout_split` holds out a
  fixed share (default 20 %, at least one) of every training speaker's utterances before training, and
  `membership_inference` attacks with them. Non-members from other speakers (privemo's experiment used the test
  speakers' utterances, `membership_attack`) add the shift between speakers to the figure. Both groups are scored by
  the frozen model and passed as probability matrices with their true emotion labels.
- Balanced sets: the larger group is subsampled (seeded) to the size n of the smaller, so chance accuracy is 0.5.
- Each group is split at random into two halves, giving two balanced halves A and B. Every attack is fitted on one
  half and evaluated on the other, in both directions (two-fold cross-fitting); accuracy is computed over all 2n
  predictions, AUC (scikit-learn ``roc_auc_score``) and TPR at 10 % FPR (the highest true-positive rate among
  thresholds with a false-positive rate of at most 0.10 on scikit-learn's ``roc_curve``) are the means over the two
  evaluation halves.
- Attacks: (a) loss threshold -- per-utterance cross-entropy of the true label, "member" when below a threshold picked
  to maximise accuracy on the fitting half; (b) confidence threshold -- the same on the maximum probability ("member"
  when above); (c) a learned attack -- a logistic regression (C = 1, standardised inputs) on the probability vector
  sorted in decreasing order, the loss, the one-hot true label and loss x one-hot label (a per-class loss threshold).
- Reported: accuracy, AUC and TPR at 10 % FPR per attack; ``auc`` = the highest AUC over the three attacks (0.5 =
  nothing leaks), with that attack's TPR at 10 % FPR and accuracy; and the best accuracy over the attacks (the max
  over three attacks evaluated on the same data is slightly optimistic, i.e. conservative for privacy), with the
  number of members and non-members used (and available). The standard deviation of accuracy at chance,
  0.5 / sqrt(2n), is given to judge whether a figure differs from 0.5.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight

from privemo.search.grids import ATTACKER_GRID
from privemo.metrics import uar

__all__ = [
    "MLPAttacker",
    "SklearnAttacker",
    "AttackReport",
    "MIReport",
    "train_attacker",
    "train_logreg_attacker",
    "train_svm_attacker",
    "train_hgb_attacker",
    "attack_representation",
    "speaker_attack",
    "split_by_speaker",
    "membership_attack",
    "membership_inference",
    "holdout_split",
    "bootstrap_uar_ci",
    "ATTACKERS",
    "DEFAULT_ATTACKERS",
]

# ---------------------------------------------------------------------------------------------------------------------
# Assumptions (the paper does not state them): see README assumptions table.
ATTACKER_LEARNING_RATE = 1e-3  # assumption: see README assumptions table (Adam learning rate of the MLP attacker)
ATTACKER_BATCH_SIZE = 64  # assumption: see README assumptions table
ATTACKER_MAX_EPOCHS = 100  # assumption: see README assumptions table (upper bound; early stopping usually ends sooner)
ATTACKER_PATIENCE = 10  # assumption: see README assumptions table (epochs without validation-UAR improvement)
LOGREG_CS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)  # assumption: see README assumptions table
SVM_CS: tuple[float, ...] = (0.1, 1.0, 10.0)  # assumption: see README assumptions table
SVM_GAMMA_SCALES: tuple[float, ...] = (0.25, 1.0, 4.0)  # assumption: see README assumptions table (x 1/n_features)
SVM_MAX_TRAIN = 10000  # assumption: see README assumptions table (RBF SVM cost grows ~quadratically with n)
SPEAKER_SPLIT: tuple[float, float, float] = (0.5, 0.25, 0.25)  # assumption: see README assumptions table
HGB_PARAMS: dict[str, Any] = {  # assumption: one small fixed gradient-boosting configuration, no early stopping
    "max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 20, "l2_regularization": 1.0,
    "max_bins": 63,  # 63 bins instead of 255: ~4x faster on a few thousand utterances
}
MI_CLASSIFIER_C = 1.0  # assumption: see README assumptions table (learned MI attack's logistic regression)
MI_LOW_FPR = 0.10  # the false-positive rate at which the membership attacks' true-positive rate is reported
DEFAULT_ATTACKERS: tuple[str, ...] = ("mlp", "logreg", "svm", "hgb")  # assumption: see README assumptions table
BOOTSTRAP_RESAMPLES = 1000  # resamples of the test utterances for the selected attacker's 95 % UAR interval
PROBA_CLIP = 1e-7  # probabilities are clipped to [PROBA_CLIP, 1] (rows renormalised) before the validation log-loss
HOLDOUT_SHARE = 0.2  # default share of every speaker's utterances held out as same-speaker non-members

_PREDICT_CHUNK = 8192
_EPS = 1e-12


# ---------------------------------------------------------------------------------------------------------------------
# Input validation


def _invalid(name: str, expected: str, received: str) -> ValueError:
    return ValueError(f"Invalid value received for argument `{name}`. Expected {expected}. Received: {received}")


def _check_h(h: Any, name: str, n_features: int | None = None) -> np.ndarray:
    """A finite 2-D float32 matrix (n_samples, n_features)."""
    arr = np.asarray(h)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise _invalid(name, "a non-empty 2-D array (n_samples, n_features)", f"{name}.shape={arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise _invalid(name, "a real numeric array", f"{name}.dtype={arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise _invalid(name, "finite values (no NaN or inf)", f"{int((~np.isfinite(arr)).sum())} non-finite values")
    if n_features is not None and arr.shape[1] != n_features:
        raise _invalid(name, f"{n_features} features, like the training representations", f"{name}.shape={arr.shape}")
    return arr


def _check_labels(y: Any, n: int, name: str) -> np.ndarray:
    """A 1-D label array of length n without missing values (ints or strings)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise _invalid(name, "a 1-D array of labels", f"{name}.shape={arr.shape}")
    if arr.shape[0] != n:
        raise _invalid(name, f"{n} labels, one per representation row", f"{arr.shape[0]} labels")
    if arr.dtype == object:
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in arr):
            raise _invalid(name, "no missing labels (drop utterances whose label is unknown first)", "None/NaN labels")
        kinds = {type(v) for v in arr}
        if len(kinds) > 1:
            raise _invalid(name, "labels of a single type", f"types {sorted(k.__name__ for k in kinds)}")
        arr = arr.astype(str) if kinds == {str} else arr
    elif np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise _invalid(name, "no missing labels (drop utterances whose label is unknown first)", "NaN labels")
    return arr


def _encode(classes: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    """Map labels to indices into ``classes``; a label absent from the training labels is an error."""
    unseen = np.setdiff1d(np.unique(y), classes)
    if unseen.size:
        shown = ", ".join(map(repr, unseen[:5].tolist())) + (" ..." if unseen.size > 5 else "")
        raise _invalid(name, f"only labels present in the attacker's training labels {classes.tolist()[:10]}",
                       f"unseen labels {shown}")
    return np.searchsorted(classes, y)


def _fit_classes(y: np.ndarray, name: str) -> np.ndarray:
    classes = np.unique(y)
    if classes.size < 2:
        raise _invalid(name, "at least 2 distinct classes to attack", f"{classes.size} class ({classes.tolist()})")
    return classes


def _check_train_val(h_train, y_train, h_val, y_val):
    """Validate an attacker's training and validation sets; returns them as arrays plus the training classes."""
    h_train = _check_h(h_train, "h_train")
    y_train = _check_labels(y_train, len(h_train), "y_train")
    classes = _fit_classes(y_train, "y_train")
    h_val = _check_h(h_val, "h_val", h_train.shape[1])
    y_val = _check_labels(y_val, len(h_val), "y_val")
    _encode(classes, y_val, "y_val")
    return h_train, y_train, classes, h_val, y_val


def _check_grid(grid: Mapping[str, Sequence[int]]) -> list[dict[str, int]]:
    if not isinstance(grid, Mapping) or set(grid) != {"dense_layers", "dense_width"}:
        raise _invalid("grid", "a dict with exactly the keys 'dense_layers' and 'dense_width'", f"grid={grid!r}")
    for key, values in grid.items():
        values = tuple(values) if not isinstance(values, (int, np.integer)) else (values,)
        if not values or not all(isinstance(v, (int, np.integer)) and v > 0 for v in values):
            raise _invalid("grid", f"a non-empty sequence of positive ints for '{key}'", f"{key}={grid[key]!r}")
    layers = tuple(np.atleast_1d(grid["dense_layers"]).tolist())
    widths = tuple(np.atleast_1d(grid["dense_width"]).tolist())
    return [{"dense_layers": int(l), "dense_width": int(w)} for l, w in itertools.product(layers, widths)]


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise _invalid(name, "a positive integer", f"{name}={value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------------------------------
# The paper's MLP attacker


_TRAINERS: dict[tuple, tuple] = {}  # compiled attacker networks of this process, see _trainer
_TRAINERS_MAX = 16


def _trainer(keras, build: Callable[[], Any], key: tuple):
    """A network ``build()`` makes, with an Adam optimizer and a compiled one-epoch training function, reused within the
    process for the same architecture (key: n_features, n_classes, layers, width, learning rate).

    Tracing a training function costs seconds on a CPU, more than training a small MLP; a reused network gets the new
    attacker's initial weights and a freshly reset optimizer, so training is the same as on a new network. Returns
    (network, optimizer, initial optimizer state, run_epoch, predict) where ``run_epoch(x, y, w, order, batch_size)``
    takes one Adam step per mini-batch of ``order`` on the class-weighted cross-entropy (Keras' "sum_over_batch_size"
    reduction, as ``model.fit`` with ``sample_weight``) and ``predict(x)`` returns the network's probabilities.
    """
    cached = _TRAINERS.get(key)
    if cached is None:
        import tensorflow as tf

        if len(_TRAINERS) >= _TRAINERS_MAX:
            _TRAINERS.pop(next(iter(_TRAINERS)))
        model = build()
        optimizer = keras.optimizers.Adam(learning_rate=key[-1])
        variables = model.trainable_variables
        optimizer.build(variables)

        @tf.function(reduce_retracing=True)
        def run_epoch(x, y, w, order, batch_size):
            n = tf.shape(order)[0]
            for start in tf.range(0, n, batch_size):
                rows = order[start : start + batch_size]
                with tf.GradientTape() as tape:
                    probs = model(tf.gather(x, rows), training=True)
                    losses = keras.losses.sparse_categorical_crossentropy(tf.gather(y, rows), probs)
                    loss = tf.reduce_sum(losses * tf.gather(w, rows)) / tf.cast(tf.shape(rows)[0], losses.dtype)
                optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

        predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        state = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]
        cached = _TRAINERS[key] = (model, optimizer, state, run_epoch, predict)
    return cached


def _predict_chunks(model, x: np.ndarray) -> np.ndarray:
    from keras import ops

    parts = [
        ops.convert_to_numpy(model(x[i : i + _PREDICT_CHUNK], training=False)) for i in range(0, len(x), _PREDICT_CHUNK)
    ]
    return np.concatenate(parts, axis=0)


class MLPAttacker:
    """The paper's attacker: an MLP trained afresh on frozen representations to predict an attribute.

    ``dense_layers`` hidden Dense(``dense_width``, relu) layers and a softmax over the attribute's classes, trained with
    Adam on standardised inputs (the scaler is fitted on the training representations) with class-balanced sample
    weights. With ``validation_data`` it early-stops on the validation UAR over the whole validation set and restores
    the best epoch's weights; without, it trains for ``epochs`` epochs. Labels may be ints or strings; ``predict``
    returns them unchanged. Seeded: the same seed and data give the same attacker, whatever ran before in the process
    (``privemo._seed.set_seed`` for the initial weights, a NumPy generator for the batch order). ``model_`` is the
    trained network (uncompiled; training runs on a per-process compiled copy, see ``_trainer``).

    Args:
        dense_layers: number of hidden Dense layers (paper grid {2, 3, 4}).
        dense_width: units per hidden layer (paper grid {32, 64}).
        learning_rate: Adam learning rate (assumption).
        batch_size: mini-batch size (assumption).
        epochs: maximum number of epochs (assumption).
        patience: epochs without validation-UAR improvement before stopping (assumption).
        seed: random seed for initialisation and shuffling.

    Attributes after `fit`: ``classes_``, ``scaler_``, ``model_``, ``val_uar`` (None without validation data),
    ``best_epoch_``, ``val_history_`` (validation UAR per epoch), ``config`` (the constructor's grid values and the best
    epoch).
    """

    def __init__(
        self,
        dense_layers: int = 2,
        dense_width: int = 32,
        *,
        learning_rate: float = ATTACKER_LEARNING_RATE,
        batch_size: int = ATTACKER_BATCH_SIZE,
        epochs: int = ATTACKER_MAX_EPOCHS,
        patience: int = ATTACKER_PATIENCE,
        seed: int = 0,
    ) -> None:
        self.dense_layers = _check_positive_int(dense_layers, "dense_layers")
        self.dense_width = _check_positive_int(dense_width, "dense_width")
        if not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise _invalid("learning_rate", "a positive float", f"learning_rate={learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        self.epochs = _check_positive_int(epochs, "epochs")
        self.patience = _check_positive_int(patience, "patience")
        self.seed = int(seed)
        self.val_uar: float | None = None

    @property
    def config(self) -> dict[str, Any]:
        return {
            "dense_layers": self.dense_layers,
            "dense_width": self.dense_width,
            "best_epoch": getattr(self, "best_epoch_", None),
        }

    def _build(self, keras, n_features: int, n_classes: int):
        inputs = keras.Input((n_features,), name="h")
        x = inputs
        for i in range(self.dense_layers):
            x = keras.layers.Dense(self.dense_width, activation="relu", name=f"attacker_dense_{i}")(x)
        outputs = keras.layers.Dense(n_classes, activation="softmax", name="attribute")(x)
        return keras.Model(inputs, outputs, name="attacker")

    def fit(
        self, h: np.ndarray, y: np.ndarray, validation_data: tuple[np.ndarray, np.ndarray] | None = None
    ) -> "MLPAttacker":
        """Train on representations ``h`` (n, features) with labels ``y`` (n,); early-stop on ``validation_data``.

        Mini-batches of ``batch_size`` in a new NumPy-seeded order every epoch, class-balanced sample weights, Adam; with
        validation data the whole validation set is scored (UAR) after every epoch and the best epoch's weights kept.
        """
        h = _check_h(h, "h")
        y = _check_labels(y, len(h), "y")
        self.classes_ = _fit_classes(y, "y")
        y_enc = _encode(self.classes_, y, "y").astype(np.int32)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise _invalid("validation_data", "a tuple (h_val, y_val)", f"{type(validation_data).__name__}")
            h_val = _check_h(validation_data[0], "h_val", h.shape[1])
            y_val = _check_labels(validation_data[1], len(h_val), "y_val")
            val = (h_val, _encode(self.classes_, y_val, "y_val"))

        import keras  # deferred: TensorFlow's import is slow and membership attacks do not need it

        from privemo._seed import set_seed

        self.scaler_ = StandardScaler().fit(h)
        x = self.scaler_.transform(h).astype(np.float32)
        weights = compute_sample_weight("balanced", y_enc).astype(np.float32)
        set_seed(self.seed)
        n_classes = len(self.classes_)
        self.model_ = self._build(keras, h.shape[1], n_classes)  # fresh initial weights under the seed
        key = (h.shape[1], n_classes, self.dense_layers, self.dense_width, self.learning_rate)
        trainer, optimizer, optimizer_state, run_epoch, predict = _trainer(
            keras, lambda: self._build(keras, h.shape[1], n_classes), key)
        trainer.set_weights(self.model_.get_weights())
        for variable, value in zip(optimizer.variables, optimizer_state):
            variable.assign(value)
        x_val = None if val is None else self.scaler_.transform(val[0]).astype(np.float32)
        rng = np.random.default_rng(self.seed)
        history: list[float] = []
        best, best_epoch, best_weights = -np.inf, 0, None
        for epoch in range(self.epochs):
            run_epoch(x, y_enc, weights, rng.permutation(len(x)).astype(np.int32), self.batch_size)
            if x_val is None:
                continue
            score = uar(val[1], np.asarray(predict(x_val)).argmax(axis=1))
            history.append(score)
            if score > best:
                best, best_epoch, best_weights = score, epoch + 1, trainer.get_weights()
            elif epoch + 1 - best_epoch >= self.patience:
                break
        self.model_.set_weights(best_weights if best_weights is not None else trainer.get_weights())
        if val is not None:
            self.val_uar, self.best_epoch_, self.val_history_ = float(best), best_epoch, history
        else:
            self.val_uar, self.best_epoch_, self.val_history_ = None, self.epochs, []
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("This MLPAttacker is not fitted yet: call fit(h, y, validation_data=...) first.")

    def refit(self, h: np.ndarray, y: np.ndarray) -> "MLPAttacker":
        """A new attacker of this configuration trained on (h, y) for exactly ``best_epoch_`` epochs, same seed.

        Used to refit a selected attacker on training + validation data, where no held-out data are left to early-stop
        on: the epoch count is the one at which this attacker's validation UAR peaked (``best_epoch_`` counts epochs
        from 1, i.e. the best epoch's index + 1). Refitting on this attacker's own training data reproduces it exactly.
        """
        self._check_fitted()
        new = MLPAttacker(self.dense_layers, self.dense_width, learning_rate=self.learning_rate,
                          batch_size=self.batch_size, epochs=max(1, int(self.best_epoch_)), patience=self.patience,
                          seed=self.seed)
        return new.fit(h, y)

    def predict_proba(self, h: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes), columns ordered as ``classes_``."""
        self._check_fitted()
        h = _check_h(h, "h", self.scaler_.n_features_in_)
        return _predict_chunks(self.model_, self.scaler_.transform(h).astype(np.float32))

    def predict(self, h: np.ndarray) -> np.ndarray:
        """Predicted labels (n,), in the label space of the training ``y``."""
        proba = self.predict_proba(h)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, h: np.ndarray, y: np.ndarray) -> float:
        """UAR of the attacker on (h, y)."""
        y = _check_labels(y, len(np.asarray(h)), "y")
        return uar(y, self.predict(h))

    def __repr__(self) -> str:
        return f"MLPAttacker(dense_layers={self.dense_layers}, dense_width={self.dense_width}, val_uar={self.val_uar})"


def train_attacker(
    h_train: np.ndarray,
    y_train: np.ndarray,
    h_val: np.ndarray,
    y_val: np.ndarray,
    grid: Mapping[str, Sequence[int]] = ATTACKER_GRID,
    *,
    seed: int = 0,
    epochs: int = ATTACKER_MAX_EPOCHS,
    patience: int = ATTACKER_PATIENCE,
    learning_rate: float = ATTACKER_LEARNING_RATE,
    batch_size: int = ATTACKER_BATCH_SIZE,
) -> MLPAttacker:
    """Grid-search the paper's MLP attacker; return the configuration with the best validation UAR.

    One `MLPAttacker` per configuration of ``grid`` (default: the paper's dense layers {2, 3, 4} x width {32, 64}),
    each trained on (h_train, y_train) and early-stopped on (h_val, y_val). Ties go to the earlier configuration.
    The returned attacker carries ``.val_uar``, ``.config`` and ``.search``: a list of (config, val_uar) over the grid.
    """
    configs = _check_grid(grid)
    h_train, y_train, classes, h_val, y_val = _check_train_val(h_train, y_train, h_val, y_val)
    best, search = None, []
    for cfg in configs:
        attacker = MLPAttacker(**cfg, learning_rate=learning_rate, batch_size=batch_size, epochs=epochs,
                               patience=patience, seed=seed)
        attacker.fit(h_train, y_train, validation_data=(h_val, y_val))
        search.append((dict(cfg), attacker.val_uar))
        if best is None or attacker.val_uar > best.val_uar:
            best = attacker
    best.search = search
    return best


# ---------------------------------------------------------------------------------------------------------------------
# scikit-learn attackers (beyond the paper)


class SklearnAttacker:
    """A scikit-learn attacker (standardisation + classifier, balanced class weights) tuned on validation UAR.

    ``kind`` is "logreg" (LogisticRegression over ``Cs``), "svm" (RBF SVC over ``Cs`` x ``gamma_scales`` / n_features)
    or "hgb" (HistGradientBoostingClassifier, the single fixed configuration ``HGB_PARAMS``, no early stopping).
    `fit` trains one pipeline per parameter setting on the training data and keeps the best on ``validation_data``
    (ties to the earlier setting; without validation data the settings are compared on the training data). The kept SVM
    gets Platt-scaled probabilities (``calibrator_``, see `_calibrate`; its predictions stay the SVM's) so that every
    attacker has `predict_proba`. Attributes after `fit`: ``classes_``, ``estimator_``, ``val_uar``, ``config``,
    ``search`` (list of (params, val_uar)).
    """

    KINDS = ("logreg", "svm", "hgb")

    def __init__(
        self,
        kind: str = "logreg",
        *,
        Cs: Sequence[float] | None = None,
        gamma_scales: Sequence[float] = SVM_GAMMA_SCALES,
        max_train: int | None = SVM_MAX_TRAIN,
        seed: int = 0,
    ) -> None:
        if kind not in self.KINDS:
            raise _invalid("kind", "one of 'logreg', 'svm', 'hgb'", f"kind={kind!r}")
        self.kind = kind
        self.Cs = tuple(Cs) if Cs is not None else (LOGREG_CS if kind == "logreg" else SVM_CS)
        self.gamma_scales = tuple(gamma_scales)
        for name, values in (("Cs", self.Cs), ("gamma_scales", self.gamma_scales)):
            if not values or not all(isinstance(v, (int, float)) and v > 0 for v in values):
                raise _invalid(name, "a non-empty sequence of positive numbers", f"{name}={values!r}")
        self.max_train = None if max_train is None else _check_positive_int(max_train, "max_train")
        self.seed = int(seed)
        self.val_uar: float | None = None
        self.config: dict[str, Any] | None = None

    def _threads(self):
        """One OpenMP thread for gradient boosting: privemo runs one worker per core, and OpenMP threads competing for
        busy cores made a 1.3 s fit take 9.6 s (600 x 32 inputs, 255 bins, 2 busy cores)."""
        if self.kind != "hgb":
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        return threadpool_limits(limits=1, user_api="openmp")

    def _settings(self, n_features: int) -> list[dict[str, Any]]:
        if self.kind == "logreg":
            return [{"C": float(c)} for c in self.Cs]
        if self.kind == "hgb":
            return [dict(HGB_PARAMS)]
        return [{"C": float(c), "gamma": float(g) / n_features} for c in self.Cs for g in self.gamma_scales]

    def _make(self, params: dict[str, Any]):
        if self.kind == "logreg":
            clf = LogisticRegression(C=params["C"], class_weight="balanced", max_iter=5000, random_state=self.seed)
        elif self.kind == "hgb":
            # class_weight exists since scikit-learn 1.2 (privemo needs >= 1.4)
            clf = HistGradientBoostingClassifier(**params, early_stopping=False, class_weight="balanced",
                                                 random_state=self.seed)
        else:
            clf = SVC(C=params["C"], gamma=params["gamma"], kernel="rbf", class_weight="balanced",
                      random_state=self.seed)
        return make_pipeline(StandardScaler(), clf)

    def _calibrate(self, params: dict[str, Any], h: np.ndarray, y_enc: np.ndarray) -> None:
        """Platt scaling of the SVM (``calibrator_``): a logistic regression on its decision values.

        Fitted on out-of-fold decision values (seeded stratified k-fold, k = min(5, smallest class count)) so that the
        probabilities, and the validation log-loss they give, are not those of the SVM's own training points; only when
        a class has a single training utterance are the in-sample decision values used. Predictions stay the SVM's.
        """
        counts = np.bincount(y_enc)
        k = int(min(5, counts[counts > 0].min()))
        if k >= 2:
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=self.seed)
            d = cross_val_predict(self._make(params), h, y_enc, cv=folds, method="decision_function")
        else:
            d = self.estimator_.decision_function(h)
        self.calibrator_ = LogisticRegression(max_iter=5000).fit(np.reshape(d, (len(h), -1)), y_enc)

    def _subsample(self, h: np.ndarray, y_enc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The SVM's training set: at most ``max_train`` utterances, a stratified seeded subsample beyond that."""
        if self.kind == "svm" and self.max_train is not None and len(h) > self.max_train:
            counts = np.bincount(y_enc)
            stratify = y_enc if counts[counts > 0].min() >= 2 else None
            keep, _ = train_test_split(np.arange(len(h)), train_size=self.max_train, stratify=stratify,
                                       random_state=self.seed)
            h, y_enc = h[np.sort(keep)], y_enc[np.sort(keep)]
        return h, y_enc

    def fit(self, h: np.ndarray, y: np.ndarray,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None) -> "SklearnAttacker":
        """Fit every parameter setting on (h, y) and keep the one with the best UAR on ``validation_data``.

        Without ``validation_data`` the settings are compared on the training data (optimistic; used for a single
        setting or when there is nothing else to select on).
        """
        h = _check_h(h, "h")
        y = _check_labels(y, len(h), "y")
        self.classes_ = _fit_classes(y, "y")
        y_enc = _encode(self.classes_, y, "y")
        if validation_data is None:
            h_val, y_val = h, y_enc
        else:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise _invalid("validation_data", "a tuple (h_val, y_val)", f"{type(validation_data).__name__}")
            h_val = _check_h(validation_data[0], "h_val", h.shape[1])
            y_val = _encode(self.classes_, _check_labels(validation_data[1], len(h_val), "y_val"), "y_val")
        h, y_enc = self._subsample(h, y_enc)
        settings = self._settings(h.shape[1])
        best, self.search = None, []
        for params in settings:
            with self._threads():
                est = self._make(params).fit(h, y_enc)
                score = uar(y_val, est.predict(h_val))
            self.search.append((dict(params), score))
            if best is None or score > best[1]:
                best = (params, score, est)
        self.config, self.val_uar, self.estimator_ = dict(best[0]), float(best[1]), best[2]
        if self.kind == "svm":
            self._calibrate(best[0], h, y_enc)
        return self

    def refit(self, h: np.ndarray, y: np.ndarray) -> "SklearnAttacker":
        """A new attacker with this one's kept setting (``config``) fitted on (h, y), e.g. training + validation data.

        Nothing is selected again (``val_uar`` is None, ``search`` empty); the SVM keeps its ``max_train`` cap.
        """
        if self.config is None:
            raise RuntimeError("This SklearnAttacker is not fitted yet: call fit(h, y, validation_data=...) first.")
        new = SklearnAttacker(self.kind, Cs=self.Cs, gamma_scales=self.gamma_scales, max_train=self.max_train,
                              seed=self.seed)
        h = _check_h(h, "h")
        y = _check_labels(y, len(h), "y")
        new.classes_ = _fit_classes(y, "y")
        x, y_enc = new._subsample(h, _encode(new.classes_, y, "y"))
        with new._threads():
            new.estimator_ = new._make(self.config).fit(x, y_enc)
        if new.kind == "svm":
            new._calibrate(self.config, x, y_enc)
        new.config, new.val_uar, new.search = dict(self.config), None, []
        return new

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            raise RuntimeError("This SklearnAttacker is not fitted yet: call fit(h, y, validation_data=...) first.")

    def predict_proba(self, h: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes), columns ordered as ``classes_`` (the SVM's are Platt-scaled)."""
        self._check_fitted()
        h = _check_h(h, "h", self.estimator_.n_features_in_)
        if self.kind == "svm":
            est = self.calibrator_
            raw = est.predict_proba(np.reshape(self.estimator_.decision_function(h), (len(h), -1)))
        else:
            est = self.estimator_
            with self._threads():
                raw = est.predict_proba(h)
        proba = np.zeros((len(h), len(self.classes_)))
        proba[:, est.classes_] = raw  # a class absent from the SVM's subsample gets probability 0
        return proba

    def predict(self, h: np.ndarray) -> np.ndarray:
        """Predicted labels (n,), in the label space of the training ``y``."""
        self._check_fitted()
        h = _check_h(h, "h", self.estimator_.n_features_in_)
        with self._threads():
            return self.classes_[self.estimator_.predict(h)]

    def score(self, h: np.ndarray, y: np.ndarray) -> float:
        """UAR of the attacker on (h, y)."""
        y = _check_labels(y, len(np.asarray(h)), "y")
        return uar(y, self.predict(h))

    def __repr__(self) -> str:
        return f"SklearnAttacker(kind={self.kind!r}, config={self.config}, val_uar={self.val_uar})"


def train_logreg_attacker(h_train, y_train, h_val, y_val, *, seed: int = 0,
                          Cs: Sequence[float] = LOGREG_CS) -> SklearnAttacker:
    """Logistic-regression attacker (standardised, balanced), C picked on validation UAR."""
    return SklearnAttacker("logreg", Cs=Cs, seed=seed).fit(h_train, y_train, validation_data=(h_val, y_val))


def train_svm_attacker(h_train, y_train, h_val, y_val, *, seed: int = 0, Cs: Sequence[float] = SVM_CS,
                       gamma_scales: Sequence[float] = SVM_GAMMA_SCALES,
                       max_train: int | None = SVM_MAX_TRAIN) -> SklearnAttacker:
    """RBF-SVM attacker (standardised, balanced), C and gamma picked on validation UAR; Platt-scaled probabilities."""
    return SklearnAttacker("svm", Cs=Cs, gamma_scales=gamma_scales, max_train=max_train, seed=seed).fit(
        h_train, y_train, validation_data=(h_val, y_val))


def train_hgb_attacker(h_train, y_train, h_val, y_val, *, seed: int = 0) -> SklearnAttacker:
    """Histogram gradient-boosting attacker (balanced class weights, the fixed configuration ``HGB_PARAMS``).

    Nothing is tuned: the validation data only give the attacker's ``val_uar`` (and, in `attack_representation`, its
    validation log-loss for the selection among attackers).
    """
    return SklearnAttacker("hgb", seed=seed).fit(h_train, y_train, validation_data=(h_val, y_val))


ATTACKERS: dict[str, Callable[..., Any]] = {
    "mlp": train_attacker,
    "logreg": train_logreg_attacker,
    "svm": train_svm_attacker,
    "hgb": train_hgb_attacker,
}


# ---------------------------------------------------------------------------------------------------------------------
# Reports


@dataclass
class AttackReport:
    """Result of attacking one representation for one attribute (protocol in the module docstring).

    ``results[name]`` = {"val_uar", "val_log_loss", "test_uar", "config", "refit"} per attacker. ``strongest`` is the
    attacker with the lowest validation log-loss (honest selection; ``selection`` says on which data), refit on training
    + validation data (``refit_on``, ``n_refit`` utterances) before it is scored: ``strongest_test_uar`` is the refit
    attacker's test UAR -- the reported leakage -- also in ``results[strongest]["test_uar"]``, with the training-only
    fit's test UAR in ``strongest_test_uar_before_refit`` (and ``results[strongest]["test_uar_before_refit"]``).
    ``test_uar_ci`` = [low, high] is a percentile bootstrap interval (``test_uar_ci_level``, ``n_bootstrap`` resamples
    of the test utterances) for ``strongest_test_uar``. ``max_test_uar`` / ``max_test_attacker`` is the best test UAR
    over all attackers (the others are training-only fits): an optimistic upper bound. ``fitted`` holds the fitted
    attackers, the strongest one refit (not serialised by `to_dict`).
    """

    results: dict[str, dict[str, Any]]
    strongest: str
    strongest_val_uar: float
    strongest_test_uar: float
    max_test_attacker: str
    max_test_uar: float
    chance: float
    n_classes: int
    n_train: int
    n_val: int
    n_test: int
    protocol: str = "train/val/test"
    selection: str = "validation log-loss"
    strongest_val_log_loss: float | None = None
    strongest_test_uar_before_refit: float | None = None
    refit_on: str = "train+validation"
    n_refit: int = 0
    test_uar_ci: list[float] | None = None
    test_uar_ci_level: float = 0.95
    n_bootstrap: int = 0
    fitted: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (without the fitted attackers)."""
        import copy

        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "fitted"}


@dataclass
class MIReport:
    """Result of a membership-identification attack (see the module docstring for the protocol).

    ``attacks[name]`` = {"accuracy", "auc", "tpr_at_10fpr", ...} per attack. ``auc`` is the highest AUC over attacks
    (0.5 = nothing leaks), ``auc_attack`` that attack, and ``tpr_at_10fpr`` / ``accuracy`` are the same attack's.
    ``best_attack`` / ``best_accuracy`` is the max accuracy over attacks (kept for the tables). ``chance_std`` =
    0.5 / sqrt(n_members + n_nonmembers) is accuracy's standard deviation at chance.
    """

    attacks: dict[str, dict[str, Any]]
    best_attack: str
    best_accuracy: float
    n_members: int
    n_nonmembers: int
    n_members_available: int
    n_nonmembers_available: int
    chance: float = 0.5
    chance_std: float = float("nan")
    auc: float = float("nan")
    auc_attack: str = ""
    tpr_at_10fpr: float = float("nan")
    accuracy: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (``auc`` at the top level)."""
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------------------
# Attribute attacks


def _val_log_loss(attacker, h: np.ndarray, y: np.ndarray) -> float:
    """Log-loss (scikit-learn's ``log_loss``) of an attacker's probabilities on (h, y), clipped to [PROBA_CLIP, 1]."""
    proba = np.clip(np.asarray(attacker.predict_proba(h), dtype=np.float64), PROBA_CLIP, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    y_enc = _encode(attacker.classes_, y, "y")
    return float(log_loss(y_enc, proba, labels=np.arange(len(attacker.classes_))))


def bootstrap_uar_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the UAR of fixed predictions, resampling utterances with replacement.

    Each of ``n_resamples`` seeded resamples draws len(y_true) utterances with replacement and computes UAR over the
    classes present in the resample (as `privemo.metrics.uar`, i.e. scikit-learn's balanced accuracy, does; vectorised
    here because 1000 calls would cost more than the attack). Returns the (1 - level) / 2 and (1 + level) / 2 quantiles.
    The attacker is not retrained, so the interval covers test-set sampling only.
    """
    y_true = _check_labels(y_true, len(np.asarray(y_true)), "y_true")
    if y_true.size == 0:
        raise _invalid("y_true", "at least one label", "an empty array")
    y_pred = _check_labels(y_pred, len(y_true), "y_pred")
    n_resamples = _check_positive_int(n_resamples, "n_resamples")
    if not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise _invalid("level", "a coverage in (0, 1)", f"level={level!r}")
    _, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    t, p = codes[: len(y_true)], codes[len(y_true):]
    k, n = int(codes.max()) + 1, len(t)
    correct = (t == p).astype(np.float64)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = (np.arange(b)[:, None] * k + t[idx]).ravel()
        support = np.bincount(flat, minlength=b * k).reshape(b, k)
        hits = np.bincount(flat, weights=correct[idx].ravel(), minlength=b * k).reshape(b, k)
        recall = np.divide(hits, support, out=np.full((b, k), np.nan), where=support > 0)
        stats[start : start + b] = np.nanmean(recall, axis=1)
    low, high = np.quantile(stats, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def _absent(h: Any) -> bool:
    return h is None or (np.ndim(h) >= 1 and np.shape(h)[0] == 0)


def _run_attackers(h_train, y_train, h_val, y_val, h_test, y_test, *, seed, grid, attackers, epochs, patience,
                   learning_rate, batch_size, protocol, refit=True, n_bootstrap=BOOTSTRAP_RESAMPLES) -> AttackReport:
    if isinstance(attackers, str) or not attackers:
        raise _invalid("attackers", f"a non-empty sequence of names from {sorted(ATTACKERS)}",
                       f"attackers={attackers!r}")
    attackers = tuple(attackers)
    unknown = [a for a in attackers if a not in ATTACKERS]
    if unknown or len(set(attackers)) != len(attackers):
        raise _invalid("attackers", f"distinct names from {sorted(ATTACKERS)}", f"attackers={attackers!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise _invalid("n_bootstrap", "a non-negative integer (0 = no interval)", f"n_bootstrap={n_bootstrap!r}")
    has_val = not _absent(h_val)
    if has_val:
        h_train, y_train, classes, h_val, y_val = _check_train_val(h_train, y_train, h_val, y_val)
        h_sel, y_sel = h_val, y_val
    else:  # no validation speakers: select on the training data; the refit then retrains on the same data
        if not _absent(y_val):
            raise _invalid("y_val", "no labels (or None) when `h_val` is absent or empty",
                           f"{np.shape(y_val)[0]} labels")
        h_train = _check_h(h_train, "h_train")
        y_train = _check_labels(y_train, len(h_train), "y_train")
        classes = _fit_classes(y_train, "y_train")
        h_val, y_val = h_train[:0], y_train[:0]
        h_sel, y_sel = h_train, y_train
    h_test = _check_h(h_test, "h_test", h_train.shape[1])
    y_test = _check_labels(y_test, len(h_test), "y_test")
    _encode(classes, y_test, "y_test")

    results, fitted = {}, {}
    for name in attackers:
        if name == "mlp":
            att = train_attacker(h_train, y_train, h_sel, y_sel, grid, seed=seed, epochs=epochs, patience=patience,
                                 learning_rate=learning_rate, batch_size=batch_size)
        else:
            att = ATTACKERS[name](h_train, y_train, h_sel, y_sel, seed=seed)
        fitted[name] = att
        results[name] = {
            "val_uar": float(att.val_uar),
            "val_log_loss": _val_log_loss(att, h_sel, y_sel),
            "test_uar": att.score(h_test, y_test),
            "config": dict(att.config),
            "refit": False,
        }
    # lowest validation log-loss; ties to the earlier name in `attackers`
    strongest = min(attackers, key=lambda a: (results[a]["val_log_loss"], attackers.index(a)))
    before = results[strongest]["test_uar"]
    n_refit = len(h_train)
    if refit:
        h_all, y_all = (np.concatenate([h_train, h_val]), np.concatenate([y_train, y_val])) if has_val \
            else (h_train, y_train)
        chosen = fitted[strongest].refit(h_all, y_all)
        fitted[strongest] = chosen
        n_refit = len(h_all)
        results[strongest].update(test_uar=chosen.score(h_test, y_test), test_uar_before_refit=before, refit=True,
                                  refit_config=dict(chosen.config))
    ci = None
    if n_bootstrap:
        low, high = bootstrap_uar_ci(_encode(classes, y_test, "y_test"),
                                     _encode(classes, fitted[strongest].predict(h_test), "y_pred"),
                                     n_resamples=n_bootstrap, seed=seed)
        ci = [low, high]
    upper = max(attackers, key=lambda a: results[a]["test_uar"])
    return AttackReport(
        results=results,
        strongest=strongest,
        strongest_val_uar=results[strongest]["val_uar"],
        strongest_test_uar=results[strongest]["test_uar"],
        max_test_attacker=upper,
        max_test_uar=results[upper]["test_uar"],
        chance=1.0 / len(classes),
        n_classes=int(len(classes)),
        n_train=len(h_train),
        n_val=len(h_val),
        n_test=len(h_test),
        protocol=protocol if has_val else f"{protocol} (no validation data: selected on the training data)",
        selection="validation log-loss" if has_val else "training log-loss (no validation data)",
        strongest_val_log_loss=results[strongest]["val_log_loss"],
        strongest_test_uar_before_refit=before,
        refit_on=("train+validation" if has_val else "train (no validation data)") if refit else "not refit",
        n_refit=n_refit,
        test_uar_ci=ci,
        test_uar_ci_level=0.95,
        n_bootstrap=int(n_bootstrap),
        fitted=fitted,
    )


def attack_representation(
    h_train: np.ndarray,
    y_train: np.ndarray,
    h_val: np.ndarray | None,
    y_val: np.ndarray | None,
    h_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int = 0,
    grid: Mapping[str, Sequence[int]] = ATTACKER_GRID,
    attackers: Sequence[str] = DEFAULT_ATTACKERS,
    epochs: int = ATTACKER_MAX_EPOCHS,
    patience: int = ATTACKER_PATIENCE,
    learning_rate: float = ATTACKER_LEARNING_RATE,
    batch_size: int = ATTACKER_BATCH_SIZE,
    refit: bool = True,
    n_bootstrap: int = BOOTSTRAP_RESAMPLES,
) -> AttackReport:
    """Attack an attribute (e.g. gender) in frozen representations with several fresh attackers.

    Each attacker is trained on (h_train, y_train) and tuned / early-stopped on (h_val, y_val); the attacker with the
    lowest validation log-loss is selected, refit with its chosen hyper-parameters on training + validation data
    (``refit=False`` skips this) and scored (UAR) on (h_test, y_test), with a seeded percentile bootstrap 95 % interval
    over the test utterances (``n_bootstrap`` resamples, 0 = none). ``attackers`` names entries of `ATTACKERS` ("mlp"
    = the paper's grid-searched MLP, "logreg", "svm", "hgb"). ``h_val`` / ``y_val`` may be None or empty: attackers are
    then tuned and selected on the training data and the refit retrains on the same data (it changes nothing).
    Validation and test labels must all occur in the training labels. ``grid``, ``epochs``, ``patience``,
    ``learning_rate`` and ``batch_size`` configure the MLP. See `AttackReport` for the fields.
    """
    return _run_attackers(h_train, y_train, h_val, y_val, h_test, y_test, seed=seed, grid=grid, attackers=attackers,
                          epochs=epochs, patience=patience, learning_rate=learning_rate, batch_size=batch_size,
                          protocol="train/val/test", refit=refit, n_bootstrap=n_bootstrap)


def split_by_speaker(
    speakers: np.ndarray, *, seed: int = 0, split: tuple[float, float, float] = SPEAKER_SPLIT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split utterance indices per speaker into (train, val, test) index arrays with the given fractions.

    Every speaker gets at least one utterance in each part (so each needs at least 3); the split is seeded.
    """
    speakers = _check_labels(speakers, len(np.asarray(speakers)), "speakers")
    if (len(split) != 3 or not all(isinstance(f, (int, float)) and f > 0 for f in split)
            or abs(sum(split) - 1.0) > 1e-6):
        raise _invalid("split", "three positive fractions (train, val, test) summing to 1", f"split={split!r}")
    names, inverse, counts = np.unique(speakers, return_inverse=True, return_counts=True)
    if names.size < 2:
        raise _invalid("speakers", "at least 2 distinct speakers", f"{names.size} speaker")
    small = names[counts < 3]
    if small.size:
        raise _invalid("speakers", "at least 3 utterances per speaker (one each for attacker train/val/test)",
                       f"speakers with fewer: {small.tolist()[:10]}")
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for k in range(names.size):
        idx = rng.permutation(np.flatnonzero(inverse == k))
        n = idx.size
        n_val = max(1, int(round(n * split[1])))
        n_test = max(1, int(round(n * split[2])))
        n_train = n - n_val - n_test
        if n_train < 1:  # only for tiny speakers: give train one utterance from the larger of val/test
            if n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
            n_train = 1
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)  # type: ignore[return-value]


def speaker_attack(
    h: np.ndarray,
    speakers: np.ndarray,
    *,
    seed: int = 0,
    grid: Mapping[str, Sequence[int]] = ATTACKER_GRID,
    attackers: Sequence[str] = DEFAULT_ATTACKERS,
    split: tuple[float, float, float] = SPEAKER_SPLIT,
    epochs: int = ATTACKER_MAX_EPOCHS,
    patience: int = ATTACKER_PATIENCE,
    learning_rate: float = ATTACKER_LEARNING_RATE,
    batch_size: int = ATTACKER_BATCH_SIZE,
    refit: bool = True,
    n_bootstrap: int = BOOTSTRAP_RESAMPLES,
) -> AttackReport:
    """Speaker-identity attack among the speakers of one set (e.g. the test speakers).

    Protocol (assumption, see README): test speakers are unseen by the emotion model and by any attacker trained on the
    training speakers, so identity leakage is measured within the set itself. Each speaker's utterances are split at
    random (seeded) into attacker-train / -validation / -test by ``split`` (default 50/25/25 %, at least one utterance
    per part, so at least 3 per speaker); the same attackers as `attack_representation` are trained, selected on the
    validation part (log-loss), refit on train + validation parts and scored by UAR over speakers on the test part.
    Chance UAR = 1 / n_speakers. For identity linkage across speakers unseen by the attacker see
    `privemo.privacy.verification.speaker_verification_attack`.
    """
    h = _check_h(h, "h")
    speakers = _check_labels(speakers, len(h), "speakers")
    train, val, test = split_by_speaker(speakers, seed=seed, split=split)
    return _run_attackers(h[train], speakers[train], h[val], speakers[val], h[test], speakers[test], seed=seed,
                          grid=grid, attackers=attackers, epochs=epochs, patience=patience,
                          learning_rate=learning_rate, batch_size=batch_size,
                          protocol=f"within-set per-speaker split {split}", refit=refit, n_bootstrap=n_bootstrap)


# ---------------------------------------------------------------------------------------------------------------------
# Membership identification


def _check_probs(probs: Any, labels: Any, pname: str, lname: str, n_classes: int | None = None):
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise _invalid(pname, "a 2-D array (n_utterances, n_classes >= 2) of model output probabilities",
                       f"{pname}.shape={p.shape}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise _invalid(pname, f"{n_classes} classes, like the members' probabilities", f"{pname}.shape={p.shape}")
    if not np.all(np.isfinite(p)) or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise _invalid(pname, "finite non-negative rows summing to 1 (softmax outputs, not logits)",
                       f"row sums in [{np.nanmin(p.sum(axis=1)):.4g}, {np.nanmax(p.sum(axis=1)):.4g}]")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise _invalid(lname, f"a 1-D array of {p.shape[0]} class indices", f"{lname}.shape={y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise _invalid(lname, "integer class indices into the probability columns", f"{lname}.dtype={y.dtype}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise _invalid(lname, f"class indices in [0, {p.shape[1] - 1}]", f"values in [{y.min()}, {y.max()}]")
    return p, y.astype(np.int64)


def _mi_features(p: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    loss = -np.log(np.clip(p[np.arange(len(y)), y], _EPS, None))
    onehot = np.eye(p.shape[1])[y]
    learned = np.column_stack([-np.sort(-p, axis=1), loss, onehot, onehot * loss[:, None]])
    return {"loss": loss, "confidence": p.max(axis=1), "learned": learned}


def _fit_threshold(scores: np.ndarray, member: np.ndarray) -> float:
    """Threshold t maximising accuracy of 'member iff score > t' (ties in score never straddle t)."""
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], member[order].astype(np.int64)
    n = s.size
    tp = np.concatenate([[0], np.cumsum(m)])
    fp = np.concatenate([[0], np.cumsum(1 - m)])
    correct = tp + ((1 - m).sum() - fp)  # top-k predicted members, k = 0..n
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[:-1] != s[1:]
    k = int(np.argmax(np.where(valid, correct, -1)))
    if k == 0:
        return float("inf")
    if k == n:
        return float("-inf")
    return float((s[k - 1] + s[k]) / 2.0)


def _safe_auc(member: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(member, scores)) if np.unique(member).size == 2 else float("nan")


def _tpr_at_fpr(member: np.ndarray, scores: np.ndarray, max_fpr: float = MI_LOW_FPR) -> float:
    """Highest true-positive rate among the score thresholds whose false-positive rate is at most ``max_fpr``.

    An operating point an attacker can actually pick (no interpolation between ROC points).
    """
    if np.unique(member).size != 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(member, scores)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


_MI_ATTACKS = ("loss_threshold", "confidence_threshold", "learned")


def _membership(pm, ym, pn, yn, seed: int) -> MIReport:
    n = min(len(pm), len(pn))
    rng = np.random.default_rng(seed)
    sel_m = np.sort(rng.choice(len(pm), n, replace=False))
    sel_n = np.sort(rng.choice(len(pn), n, replace=False))
    p = np.concatenate([pm[sel_m], pn[sel_n]])
    y = np.concatenate([ym[sel_m], yn[sel_n]])
    member = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    # two balanced halves: each group split in two at random
    half = np.zeros(2 * n, dtype=np.int64)
    for group in (np.arange(n), np.arange(n, 2 * n)):
        perm = rng.permutation(group)
        half[perm[: n // 2]] = 1
    feats = _mi_features(p, y)

    preds = {name: np.zeros(2 * n, dtype=np.int64) for name in _MI_ATTACKS}
    aucs: dict[str, list[float]] = {name: [] for name in preds}
    tprs: dict[str, list[float]] = {name: [] for name in preds}
    thresholds: dict[str, list[float]] = {"loss_threshold": [], "confidence_threshold": []}
    for fit_half in (0, 1):
        fit, ev = half == fit_half, half != fit_half
        for name, score in (("loss_threshold", -feats["loss"]), ("confidence_threshold", feats["confidence"])):
            t = _fit_threshold(score[fit], member[fit])
            preds[name][ev] = score[ev] > t
            aucs[name].append(_safe_auc(member[ev], score[ev]))
            tprs[name].append(_tpr_at_fpr(member[ev], score[ev]))
            thresholds[name].append(-t if name == "loss_threshold" else t)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=MI_CLASSIFIER_C, max_iter=5000, random_state=seed))
        clf.fit(feats["learned"][fit], member[fit])
        preds["learned"][ev] = clf.predict(feats["learned"][ev])
        score = clf.predict_proba(feats["learned"][ev])[:, 1]
        aucs["learned"].append(_safe_auc(member[ev], score))
        tprs["learned"].append(_tpr_at_fpr(member[ev], score))

    attacks: dict[str, dict[str, Any]] = {}
    for name, pred in preds.items():
        attacks[name] = {
            "accuracy": float(np.mean(pred == member)),
            "auc": float(np.nanmean(aucs[name])),
            "tpr_at_10fpr": float(np.nanmean(tprs[name])),
        }
        if name in thresholds:
            key = "loss_thresholds" if name == "loss_threshold" else "confidence_thresholds"
            # one threshold per fitting half; None where the best rule was "everyone" / "no one" is a member
            attacks[name][key] = [float(t) if np.isfinite(t) else None for t in thresholds[name]]
    best = max(attacks, key=lambda a: attacks[a]["accuracy"])  # first among ties, in _MI_ATTACKS order
    strongest = max(attacks, key=lambda a: attacks[a]["auc"])
    return MIReport(
        attacks=attacks,
        best_attack=best,
        best_accuracy=attacks[best]["accuracy"],
        n_members=n,
        n_nonmembers=n,
        n_members_available=len(pm),
        n_nonmembers_available=len(pn),
        chance=0.5,
        chance_std=float(0.5 / np.sqrt(2 * n)),
        auc=attacks[strongest]["auc"],
        auc_attack=strongest,
        tpr_at_10fpr=attacks[strongest]["tpr_at_10fpr"],
        accuracy=attacks[strongest]["accuracy"],
    )


def _check_mi_inputs(pm, ym, pn, yn, names: tuple[str, str, str, str]):
    pm, ym = _check_probs(pm, ym, names[0], names[1])
    pn, yn = _check_probs(pn, yn, names[2], names[3], pm.shape[1])
    if min(len(pm), len(pn)) < 4:
        raise _invalid(names[0], "at least 4 members and 4 non-members (two per half after balancing)",
                       f"{len(pm)} members and {len(pn)} non-members")
    return pm, ym, pn, yn


def membership_attack(
    member_probs: np.ndarray,
    member_labels: np.ndarray,
    nonmember_probs: np.ndarray,
    nonmember_labels: np.ndarray,
    *,
    seed: int = 0,
) -> MIReport:
    """Membership identification from the model's output probabilities (protocol in the module docstring).

    Args:
        member_probs: (n_m, n_classes) emotion probabilities of utterances the model trained on.
        member_labels: (n_m,) their true class indices.
        nonmember_probs: (n_n, n_classes) probabilities of held-out utterances (e.g. the test speakers, or the training
            speakers' own held-out utterances, see `holdout_split` and `membership_inference`).
        nonmember_labels: (n_n,) their true class indices.
        seed: seeds the balancing subsample, the half split and the learned attack.

    Returns an `MIReport`: accuracy (over all cross-fitted predictions), AUC and TPR at 10 % FPR per attack
    ("loss_threshold", "confidence_threshold", "learned"), the best accuracy, the highest AUC (``auc``) and the numbers
    of members / non-members used.
    """
    pm, ym, pn, yn = _check_mi_inputs(member_probs, member_labels, nonmember_probs, nonmember_labels,
                                      ("member_probs", "member_labels", "nonmember_probs", "nonmember_labels"))
    return _membership(pm, ym, pn, yn, seed)


def membership_inference(
    probs_members: np.ndarray,
    y_members: np.ndarray,
    probs_nonmembers: np.ndarray,
    y_nonmembers: np.ndarray,
    *,
    seed: int = 0,
) -> MIReport:
    """Membership inference against non-members of the *same* speakers (the attack of `membership_attack`).

    Intended use: hold out a share of every training speaker's utterances before training (`holdout_split`), train
    on the rest, and pass the model's probabilities of its training utterances as members and of the held-out
    utterances as non-members. Members and non-members then come from the same speakers, so the figure measures
    memorisation of utterances, not the shift between speakers that test-speaker non-members add. Each attack (loss
    threshold, confidence threshold, learned logistic regression) is fitted on one balanced half and tested on the
    other, both ways; the report gives per attack ROC AUC, TPR at 10 % FPR and accuracy, and at the top level the
    highest AUC over attacks (``auc``; 0.5 = nothing leaks) with that attack's ``tpr_at_10fpr`` and ``accuracy``.

    Args:
        probs_members: (n_m, n_classes) output probabilities of the utterances the model trained on.
        y_members: (n_m,) their true class indices.
        probs_nonmembers: (n_n, n_classes) output probabilities of held-out utterances.
        y_nonmembers: (n_n,) their true class indices.
        seed: seeds the balancing subsample, the half split and the learned attack.
    """
    pm, ym, pn, yn = _check_mi_inputs(probs_members, y_members, probs_nonmembers, y_nonmembers,
                                      ("probs_members", "y_members", "probs_nonmembers", "y_nonmembers"))
    return _membership(pm, ym, pn, yn, seed)


def holdout_split(
    speakers: np.ndarray, share: float = HOLDOUT_SHARE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a fixed share of every speaker's utterances, e.g. as same-speaker non-members (`membership_inference`).

    For each speaker with c >= 2 utterances, max(1, round(share * c)) of them (at most c - 1, so every speaker keeps
    one) are drawn at random without replacement; a speaker with a single utterance keeps it. Deterministic per
    ``seed`` (one NumPy generator, speakers in sorted order). Returns (kept_idx, heldout_idx): sorted int64 positions
    into ``speakers``, disjoint and together covering every position. Every label is a speaker, including "" -- drop
    utterances of unknown speakers first.
    """
    arr = np.asarray(speakers)
    speakers = _check_labels(arr, len(arr) if arr.ndim == 1 else -1, "speakers")
    if speakers.size == 0:
        raise _invalid("speakers", "a non-empty 1-D array of speaker labels", "an empty array")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 < share < 1.0:
        raise _invalid("share", "a fraction in (0, 1) of every speaker's utterances to hold out", f"share={share!r}")
    _, inverse = np.unique(speakers, return_inverse=True)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for k in range(int(inverse.max()) + 1):
        idx = np.flatnonzero(inverse == k)
        if idx.size < 2:
            continue
        n_out = min(idx.size - 1, max(1, int(round(share * idx.size))))
        held.append(rng.choice(idx, n_out, replace=False))
    heldout = np.sort(np.concatenate(held)).astype(np.int64) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(speakers.size, dtype=np.int64), heldout)
    return kept, heldout
