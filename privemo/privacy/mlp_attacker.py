"""The paper's attacker: an MLP trained afresh on frozen representations, as a scikit-learn classifier.

`MLPAttacker` is one configuration (``dense_layers`` x Dense(``dense_width``, relu) and a softmax); `train_attacker`
searches the paper's grid (dense layers {2, 3, 4} x width {32, 64}, `privemo.privacy.grids.ATTACKER_GRID`) and keeps
the configuration with the best validation UAR. The training choices the paper does not state are the constants
below (README, assumptions table). Where the attacker sits in the attack protocol: `privemo.privacy.attribute`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import ParameterGrid
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted

from privemo._util.validation import check_float, check_int, check_matrix, invalid
from privemo.metrics import uar
from privemo.privacy.checks import check_fit_inputs, check_labels, check_train_val
from privemo.privacy.sklearn_attacker import check_class_target
from privemo.privacy.grids import ATTACKER_GRID

__all__ = ["MLPAttacker", "train_attacker", "check_grid", "ATTACKER_LEARNING_RATE", "ATTACKER_BATCH_SIZE",
           "ATTACKER_MAX_EPOCHS", "ATTACKER_PATIENCE"]

# Assumptions (the paper does not state them): see README assumptions table.
ATTACKER_LEARNING_RATE = 1e-3  # Adam learning rate
ATTACKER_BATCH_SIZE = 64
ATTACKER_MAX_EPOCHS = 100  # upper bound; early stopping usually ends sooner
ATTACKER_PATIENCE = 10  # epochs without validation-UAR improvement

_PREDICT_CHUNK = 8192
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


class MLPAttacker(ClassifierMixin, BaseEstimator):
    """The paper's attacker: an MLP trained afresh on frozen representations to predict an attribute.

    ``dense_layers`` hidden Dense(``dense_width``, relu) layers and a softmax over the attribute's classes, trained with
    Adam on standardised inputs (the scaler is fitted on the training representations) with class-balanced sample
    weights. With ``validation_data`` it early-stops on the validation UAR over the whole validation set and restores
    the best epoch's weights; without, it trains for ``epochs`` epochs. Labels may be ints or strings (a continuous
    target is refused, `privemo.privacy.sklearn_attacker.check_class_target`); ``predict`` returns them unchanged;
    ``score`` is UAR. Seeded: the same seed and data give the same attacker, whatever ran before
    in the process (``privemo._util.seed.set_seed`` for the initial weights, a NumPy generator for the batch order). A
    scikit-learn estimator: arguments are checked by `fit`, so ``clone`` and ``GridSearchCV`` work;
    `tests/test_attackers.py` lists the estimator checks it fails, and why.

    Args:
        dense_layers: number of hidden Dense layers (paper grid {2, 3, 4}).
        dense_width: units per hidden layer (paper grid {32, 64}).
        learning_rate: Adam learning rate (assumption).
        batch_size: mini-batch size (assumption).
        epochs: maximum number of epochs (assumption).
        patience: epochs without validation-UAR improvement before stopping (assumption).
        seed: random seed (>= 0) for initialisation and shuffling.

    Fitted attributes:
        classes_: the training labels' classes (sorted).
        n_features_in_: width of the representations.
        scaler_: the StandardScaler of the training representations.
        model_: the trained Keras network (uncompiled; training runs on a per-process compiled copy, see `_trainer`).
        val_uar_: the best validation UAR (None without validation data).
        best_epoch_: the epoch (from 1) whose weights were kept; ``epochs`` without validation data.
        val_history_: validation UAR after every epoch (empty without validation data).
        config_: {"dense_layers", "dense_width", "best_epoch"}, as reported.
        search_: [(config, val_uar)] of the configurations compared: this one, or the grid `train_attacker` searched.
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
        self.dense_layers = dense_layers
        self.dense_width = dense_width
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.seed = seed

    def _checked_params(self) -> dict[str, Any]:
        params = {name: check_int(name, getattr(self, name), 1)
                  for name in ("dense_layers", "dense_width", "batch_size", "epochs", "patience")}
        params["learning_rate"] = check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        params["seed"] = check_int("seed", self.seed, 0)
        return params

    @staticmethod
    def _build(keras, n_features: int, n_classes: int, layers: int, width: int):
        inputs = keras.Input((n_features,), name="h")
        x = inputs
        for i in range(layers):
            x = keras.layers.Dense(width, activation="relu", name=f"attacker_dense_{i}")(x)
        outputs = keras.layers.Dense(n_classes, activation="softmax", name="attribute")(x)
        return keras.Model(inputs, outputs, name="attacker")

    def fit(self, X: np.ndarray, y: np.ndarray,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None) -> "MLPAttacker":
        """Train on representations ``X`` (n, features) with labels ``y`` (n,); early-stop on ``validation_data``.

        Mini-batches of ``batch_size`` in a new NumPy-seeded order every epoch, class-balanced sample weights, Adam;
        with validation data (h_val, y_val) the whole validation set is scored (UAR) after every epoch and the best
        epoch's weights kept.
        """
        p = self._checked_params()
        check_class_target("y", y)
        X, y_enc, encoder, val = check_fit_inputs(X, y, validation_data)
        import keras  # deferred: TensorFlow's import is slow and membership attacks do not need it

        from privemo._util.seed import set_seed

        self.classes_, self.n_features_in_ = encoder.classes_, X.shape[1]
        self.scaler_ = StandardScaler().fit(X)
        x = self.scaler_.transform(X).astype(np.float32)
        weights = compute_sample_weight("balanced", y_enc).astype(np.float32)
        set_seed(p["seed"])
        shape = (X.shape[1], len(self.classes_), p["dense_layers"], p["dense_width"])
        self.model_ = self._build(keras, *shape)  # fresh initial weights under the seed
        trainer = _trainer(keras, lambda: self._build(keras, *shape), (*shape, p["learning_rate"]))
        x_val = None if val is None else (self.scaler_.transform(val[0]).astype(np.float32), val[1])
        best, best_epoch, history = self._train(trainer, x, y_enc.astype(np.int32), weights, x_val, p)
        self.val_uar_ = None if val is None else float(best)
        self.best_epoch_, self.val_history_ = (best_epoch, history) if val is not None else (p["epochs"], [])
        self.config_ = {"dense_layers": p["dense_layers"], "dense_width": p["dense_width"],
                        "best_epoch": self.best_epoch_}
        self.search_ = [({"dense_layers": p["dense_layers"], "dense_width": p["dense_width"]}, self.val_uar_)]
        return self

    def _train(self, trainer, x, y, weights, val, p) -> tuple[float, int, list[float]]:
        """Run the epochs on the process's compiled copy; ``model_`` gets the best (or last) epoch's weights.

        Returns (best validation UAR, best epoch counted from 1, validation UAR per epoch).
        """
        network, optimizer, optimizer_state, run_epoch, predict = trainer
        network.set_weights(self.model_.get_weights())
        for variable, value in zip(optimizer.variables, optimizer_state):
            variable.assign(value)
        rng = np.random.default_rng(p["seed"])
        history: list[float] = []
        best, best_epoch, best_weights = -np.inf, 0, None
        for epoch in range(p["epochs"]):
            run_epoch(x, y, weights, rng.permutation(len(x)).astype(np.int32), p["batch_size"])
            if val is None:
                continue
            score = uar(val[1], np.asarray(predict(val[0])).argmax(axis=1))
            history.append(score)
            if score > best:
                best, best_epoch, best_weights = score, epoch + 1, network.get_weights()
            elif epoch + 1 - best_epoch >= p["patience"]:
                break
        self.model_.set_weights(best_weights if best_weights is not None else network.get_weights())
        return best, best_epoch, history

    def refit(self, X: np.ndarray, y: np.ndarray) -> "MLPAttacker":
        """A new attacker of this configuration trained on (X, y) for exactly ``best_epoch_`` epochs, same seed.

        Used to refit a selected attacker on training + validation data, where no held-out data are left to early-stop
        on: the epoch count is the one at which this attacker's validation UAR peaked (``best_epoch_`` counts epochs
        from 1, i.e. the best epoch's index + 1). Refitting on this attacker's own training data reproduces it exactly.
        """
        check_is_fitted(self)
        return clone(self).set_params(epochs=max(1, int(self.best_epoch_))).fit(X, y)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes), columns ordered as ``classes_``."""
        check_is_fitted(self)
        X = check_matrix("X", X, n_features=self.n_features_in_)
        return _predict_chunks(self.model_, self.scaler_.transform(X).astype(np.float32))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (n,), in the label space of the training ``y``."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """UAR of the attacker on (X, y)."""
        y = check_labels("y", y, len(np.asarray(X)))
        return uar(y, self.predict(X))


def check_grid(grid: Mapping[str, Sequence[int]]) -> list[dict[str, int]]:
    """The configurations of an attacker grid {"dense_layers": [...], "dense_width": [...]} (scikit-learn's
    ``ParameterGrid`` order: dense layers outer, width inner); a single int stands for a one-value axis."""
    if not isinstance(grid, Mapping) or set(grid) != {"dense_layers", "dense_width"}:
        raise invalid("grid", "a dict with exactly the keys 'dense_layers' and 'dense_width'", grid)
    axes = {}
    for key, values in grid.items():
        values = tuple(np.atleast_1d(values).tolist()) if not isinstance(values, (int, np.integer)) else (values,)
        if not values or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                                 for v in values):
            raise invalid("grid", f"a non-empty sequence of positive ints for '{key}'", received=f"{key}={grid[key]!r}")
        axes[key] = [int(v) for v in values]
    return list(ParameterGrid(axes))


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
    The returned attacker carries ``val_uar_``, ``config_`` and ``search_``: a list of (config, val_uar) over the grid.
    """
    configs = check_grid(grid)
    check_class_target("y_train", y_train)
    h_train, y_train, _, h_val, y_val = check_train_val(h_train, y_train, h_val, y_val)
    base = MLPAttacker(learning_rate=learning_rate, batch_size=batch_size, epochs=epochs, patience=patience, seed=seed)
    best, search = None, []
    for config in configs:
        attacker = clone(base).set_params(**config).fit(h_train, y_train, validation_data=(h_val, y_val))
        search.append((dict(config), attacker.val_uar_))
        if best is None or attacker.val_uar_ > best.val_uar_:
            best = attacker
    best.search_ = search
    return best
