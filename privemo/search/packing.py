"""Packed trials: several grid configurations of one hypermodel trained side by side in one compiled Keras step.

A hyper-parameter search trains many small networks on the same batches. A training step of one such network is small:
on a GPU it leaves the device mostly idle, and every step pays Python and ``tf.function`` dispatch. Packing puts K
**members** into one functional model: the inputs are shared, member ``i`` is the network ``build_model`` gives for its
configuration (run by one ``privemo.nn.lockstep.Lockstep`` layer), and its outputs are ``m{i}_emotion``, ``m{i}_gender`` ...
(``member_output``). The compiled loss is the sum of every member's losses; members share no parameter, so the gradient
of that sum with respect to member ``i``'s weights is member ``i``'s own gradient, and Adam updates each weight from its
own gradient alone. Every member therefore goes through exactly the steps it would go through alone, on the same batches
(one ``fit`` over the training dataset, restarted at epoch 0 as ``privemo.nn.training.fit`` restarts it), from the same
initial weights (each member is built after ``set_seed(seed)``, as ``EmotionPrivacyHyperModel.build`` builds a trial, so
members that share layers, e.g. the four lambda values of one architecture, start from identical weights in them).

What a separate training does per model, ``fit_packed`` does per member:

- at every epoch end, the whole validation set (and, with a ``probe``, the probe's training utterances) is predicted
  once by the packed scorer, split by member, and scored for each member still training by
  ``privemo.nn.training.ValidationUAR`` (same objective, same probe on the member's own h);
- each member has its own ``keras.callbacks.EarlyStopping`` (``privemo.nn.training.early_stopping``: monitor
  ``val_objective``, mode max, ``patience``, ``restore_best_weights``, no epoch before ``MIN_KEPT_EPOCH``) set on the member's network, its own history (its losses, read from the packed logs, and
  its validation scores) and its own callbacks, called at epoch granularity;
- a stopped member is no longer scored and its history ends; it still trains with the others (its gradients are
  part of the traced step: skipping it would need a new trace, and a ``tf.cond`` around a member halved the speed of
  the whole step on a CPU) and gets its best epoch's weights back when training ends.
  Training ends when every member has stopped, or at ``epochs``.

``unpack(packed, i)`` returns member ``i`` as an ordinary privemo model (``build_model``'s layers and outputs,
compiled), to save or use like a separately trained one. ``privemo.search.packed_tuner.PackedGridSearch`` is the
keras-tuner side: it takes up to
``pack`` untried combinations of one network shape from its oracle at a time, trains them packed and records each as its
own finished trial (metrics, history.json, checkpoint), exactly as ``privemo.search.tuning.GridSearch`` records a trial.

The packed model runs the members through ``privemo.nn.lockstep.Lockstep``: each member's own layers on its own tensors,
except that the members' GRUs at one position run as **one** loop over time (stacked kernels, one batched matmul per
step). On a CPU most of a small network's step is the GRU loop's per-op dispatch, which is then paid once instead of K
times: with one TensorFlow thread (as each experiment worker runs) a pack of 5 quick-grid networks trains about 1.9x
faster per epoch than 5 separate trainings (``benchmarks/protocol_cost.py --quick``). Tracing a pack costs about twice
one network's trace, and a pack runs until its last member stops (on the committed demo runs the last of four lambda
trials ran 19.6 epochs, their mean 14.7); the cost model (``privemo.experiment.cost``) prices both. On a GPU the GRUs
are not merged (Keras runs each as a cuDNN kernel) and packing fills the device instead.

Equality with separate training holds to float rounding: on this project's CPU the weights after packed training
(GRUs merged) and separate training agree in the tests (``tests/test_packing.py`` checks to 1e-5). The merged GRU's
gradients differ from Keras' in the last bits, and over a long training that can change an early-stopping decision, so
a packed run is an equivalent rerun rather than a bit-identical one (README, "What the full protocol costs"). Packing
covers the removal methods whose ``RemovalMethod.packable`` is true (the paper's GRL); the others train with their own
steps (alternating heads, schedules, post-hoc erasure) and run unpacked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import partial
from typing import Callable, Sequence

import numpy as np
import keras

from privemo._util.seed import set_seed
from privemo._util.validation import check_int, invalid
from privemo.nn.lockstep import Lockstep
from privemo.nn.models import build_model, output_names
from privemo.removal.methods import PACKABLE_REMOVALS  # noqa: F401  (re-exported: RemovalMethod.packable)
from privemo.nn.training import (
    LEARNING_RATE,
    MAX_EPOCHS,
    OBJECTIVE,
    PATIENCE,
    ValidationUAR,
    align_dataset,
    compile_model,
    early_stopping,
    predict_sequences,
)

__all__ = ["Packed", "build_packed", "fit_packed", "unpack", "member_output", "architecture", "PACKABLE_REMOVALS"]


def member_output(i: int, name: str) -> str:
    """The packed model's name for member ``i``'s output (or layer) ``name``: ``m{i}_{name}``."""
    return f"m{i}_{name}"


def architecture(values: Mapping) -> tuple:
    """The network shape of a grid configuration: its values without ``grl_lambda`` (a weight of the GRL layer, so
    configurations that differ only in lambda have the same shape), as a sorted tuple."""
    return tuple(sorted((k, v) for k, v in values.items() if k != "grl_lambda"))


@dataclasses.dataclass(frozen=True)
class Packed:
    """K member networks in one compiled model.

    Attributes:
        model: the compiled training model: the members' shared inputs -> {``m{i}_{output}``}; loss = the sum of every
            member's losses.
        members: member ``i``'s network as ``build_model`` builds it (same layer names and outputs), sharing its
            weights with ``model``.
        scorer: inputs -> every member's outputs and its representation h (``m{i}_h``), for validation.
        builds: the ``build_model`` keyword arguments of every member.
        learning_rate: the Adam learning rate ``model`` is compiled with.
    """

    model: keras.Model
    members: tuple
    scorer: keras.Model
    builds: tuple
    learning_rate: float

    @property
    def outputs(self) -> list[str]:
        """The output names every member has (``build_model``'s: "emotion", then the adversary heads)."""
        return output_names(self.members[0])

    def __len__(self) -> int:
        return len(self.members)


def _cache_key(builds: Sequence[Mapping], learning_rate: float, jit_compile, merge_gru) -> str:
    shapes = [architecture(b) for b in builds]
    return f"packed|{shapes!r}|lr={learning_rate}|jit={jit_compile}|merge={merge_gru}"


def build_packed(
    builds: Sequence[Mapping],
    *,
    seed: int | None = 0,
    learning_rate: float = LEARNING_RATE,
    jit_compile: bool = False,
    cache: dict | None = None,
    merge_gru: bool | None = None,
) -> Packed:
    """K networks in one compiled model, each with the initial weights it would have alone.

    Args:
        builds: one dict of ``build_model`` keyword arguments per member. Every member must have the same inputs and
            output names (one hypermodel: the same modalities and adversary); shapes and lambda may differ.
        seed: ``privemo._util.seed.set_seed(seed)`` before building each member (as ``EmotionPrivacyHyperModel.build``
            does before every trial), so each member starts where its separate training would; None: not seeded.
        learning_rate, jit_compile: passed to ``compile_model``.
        cache: optional dict (e.g. the hypermodels' ``model_cache``). A packed model of the same shapes already in it is
            reused: it receives the freshly initialised weights of these members (lambda included: it is a weight of
            the GRL) and its optimizer state is reset to the just-built state, so TensorFlow does not trace a new step.
        merge_gru: run the members' GRUs as one loop over time (``privemo.nn.lockstep``); None: where TensorFlow sees
            no GPU (a GPU runs each member's GRU as a cuDNN kernel instead).

    Returns:
        A ``Packed``; train it with ``fit_packed``, take a member out with ``unpack``.
    """
    builds = tuple(dict(b) for b in builds)
    if not builds:
        raise invalid("builds", "a non-empty sequence of build_model keyword arguments", list(builds))
    networks = []
    for kwargs in builds:
        if seed is not None:
            set_seed(int(seed))
        networks.append(build_model(**kwargs))
    names = [output_names(net) for net in networks]
    inputs = [sorted(net.input) for net in networks]
    if any(n != names[0] for n in names) or any(i != inputs[0] for i in inputs):
        raise invalid("builds", "members with the same inputs and outputs (one modality set, one adversary)",
                      received=f"outputs {names}, inputs {inputs}")
    key = _cache_key(builds, learning_rate, jit_compile, merge_gru) if cache is not None else None
    if key is not None and key in cache:
        packed, optimizer_state = cache[key]
        for member, network in zip(packed.members, networks):
            member.set_weights(network.get_weights())
        for variable, value in zip(packed.model.optimizer.variables, optimizer_state):
            variable.assign(value)
        return dataclasses.replace(packed, builds=builds)

    members = tuple(networks)
    shared = {name: keras.Input(shape=tensor.shape[1:], name=name, dtype=tensor.dtype)
              for name, tensor in members[0].input.items()}
    outputs = Lockstep(members, merge_gru=merge_gru, name="members")(shared)
    model = keras.Model(shared, outputs, name=f"packed{len(members)}")
    compile_model(model, learning_rate, jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
    scored = Lockstep(members, outputs=("h",), merge_gru=merge_gru, name="members_with_h")(shared)
    scorer = keras.Model(shared, scored, name=f"packed{len(members)}_with_h")
    packed = Packed(model, members, scorer, builds, float(learning_rate))
    if key is not None:
        cache[key] = (packed, [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])
    return packed


def unpack(packed: Packed, i: int, *, compile: bool = True) -> keras.Model:
    """Member ``i`` as an ordinary privemo model: ``build_model(**packed.builds[i])`` holding the member's current
    weights (after ``fit_packed``: its best epoch's), compiled with the packed model's learning rate and its optimizer
    built (fresh state), so it saves and reloads like a separately trained trial. Shares nothing with ``packed``."""
    i = check_int("i", i, 0, len(packed) - 1)
    network = build_model(**packed.builds[i])
    network.set_weights(packed.members[i].get_weights())
    if compile:
        compile_model(network, packed.learning_rate)
        network.optimizer.build(network.trainable_variables)
    return network


def _packed_dataset(train_ds, packed: Packed):
    """``train_ds`` with every member's targets and sample weights under its own output names."""
    import tensorflow as tf

    aligned = align_dataset(train_ds, packed.members[0])
    k = len(packed)

    def spread(d):
        return {member_output(i, name): value for i in range(k) for name, value in d.items()}

    def fix(x, y, sw=None):
        return (x, spread(y)) if sw is None else (x, spread(y), spread(sw))

    return aligned.map(fix, num_parallel_calls=tf.data.AUTOTUNE)


class _PackedEpochs(keras.callbacks.Callback):
    """Per-member validation scoring, early stopping, history and callbacks of a packed training (see the module
    docstring); ``histories[i]`` is member ``i``'s history when training ends."""

    def __init__(self, packed: Packed, val_data, val_targets, *, objective, probe, patience: int, callbacks,
                 epochs: int, verbose: int):
        super().__init__()
        self.packed, self.val_data, self.probe = packed, val_data, probe
        k = len(packed)
        self._current: list[dict] = [{} for _ in range(k)]
        self.validators = [ValidationUAR(partial(self._predictions, i), val_targets, objective=objective)
                           for i in range(k)]
        self.stoppers = [early_stopping(patience, epochs, OBJECTIVE) for _ in range(k)]
        self.member_callbacks = [
            keras.callbacks.CallbackList(list(cbs), add_history=False, add_progbar=False, model=member,
                                         epochs=int(epochs), verbose=verbose)
            for cbs, member in zip(callbacks, packed.members)]
        for stopper, member in zip(self.stoppers, packed.members):
            stopper.set_model(member)
        self.histories: list[dict[str, list[float]]] = [{} for _ in range(k)]
        self.active: list[bool] = [True] * k

    def _predictions(self, i, model=None):
        return dict(self._current[i])  # ValidationUAR.scores pops "probe" from it

    def on_train_begin(self, logs=None):
        self.active = [True] * len(self.packed)
        self.histories = [{} for _ in self.packed.members]
        for member, stopper, cbs in zip(self.packed.members, self.stoppers, self.member_callbacks):
            member.stop_training = False
            stopper.on_train_begin()
            cbs.on_train_begin()

    def on_epoch_begin(self, epoch, logs=None):
        for i, cbs in enumerate(self.member_callbacks):
            if self.active[i]:
                cbs.on_epoch_begin(epoch)

    def _split(self, predictions: dict) -> list[dict]:
        return [{name: predictions[member_output(i, name)] for name in (*self.packed.outputs, "h")}
                for i in range(len(self.packed))]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        val = self._split(predict_sequences(self.packed.scorer, self.val_data))
        train_h = None
        if self.probe is not None:
            train_h = self._split(predict_sequences(self.packed.scorer, self.probe.train_inputs))
        for i, member in enumerate(self.packed.members):
            if not self.active[i]:
                continue
            current = {name: val[i][name] for name in self.packed.outputs}
            if self.probe is not None:
                current["probe"] = self.probe.score(train_h[i]["h"], val[i]["h"])
            self._current[i] = current
            member_logs = self._losses(i, logs)
            member_logs.update(self.validators[i].scores(member))
            self.stoppers[i].on_epoch_end(epoch, member_logs)
            self.member_callbacks[i].on_epoch_end(epoch, member_logs)
            for key, value in member_logs.items():
                self.histories[i].setdefault(key, []).append(float(value))
            if member.stop_training:
                self.active[i] = False
        if not any(self.active):
            self.model.stop_training = True

    def _losses(self, i: int, logs: dict) -> dict:
        """Member ``i``'s training losses as its own fit logs them: "loss" (the sum over its outputs) and, with more
        than one output, "<output>_loss"."""
        names = self.packed.outputs
        per_output = {f"{name}_loss": logs.get(member_output(i, f"{name}_loss")) for name in names}
        if any(value is None for value in per_output.values()):  # one output in all: Keras logs only "loss"
            return {"loss": float(logs["loss"])} if "loss" in logs and len(self.packed) == 1 else {}
        out = {"loss": float(np.sum([float(v) for v in per_output.values()], dtype=np.float32))}
        if len(names) > 1:
            out.update({key: float(value) for key, value in per_output.items()})
        return out

    def on_train_end(self, logs=None):
        for stopper, cbs in zip(self.stoppers, self.member_callbacks):
            stopper.on_train_end()  # the member's best epoch's weights, as fit's EarlyStopping restores them
            cbs.on_train_end()


def fit_packed(
    packed: Packed,
    train_ds,
    val_data: Mapping[str, Sequence[np.ndarray]],
    val_targets: Mapping[str, np.ndarray] | None = None,
    *,
    epochs: int = MAX_EPOCHS,
    patience: int = PATIENCE,
    objective: Callable[[float, float | None, float], float] | None = None,
    callbacks: Sequence[Sequence[keras.callbacks.Callback]] | None = None,
    verbose: int = 0,
    probe=None,
) -> list[dict[str, list[float]]]:
    """Train every member of ``packed`` as ``privemo.nn.training.fit`` trains one model, in one ``fit``.

    Args:
        packed: from ``build_packed``.
        train_ds: a dataset of (x, y[, sw]) as for ``fit`` (targets under the members' output names or their
            attribute's; see ``align_dataset``); restarted at its epoch 0 when it can be (``make_dataset``'s).
        val_data: the validation utterances as {modality: [array (frames_i, dim)]} (predicted once per epoch for all
            members).
        val_targets, objective, probe: as for ``fit`` (``ValidationUAR``); the probe scores each member's own h.
        epochs, patience: as for ``fit``, per member.
        callbacks: optional, one list of Keras callbacks per member, called at epoch granularity with the member's
            network as their model and the member's logs (``on_train_begin``, ``on_epoch_begin``, ``on_epoch_end`` while
            it trains, ``on_train_end``); batch-level hooks are not called.
        verbose: Keras' progress output of the packed fit.

    Returns:
        One history per member ({log key: one value per epoch it trained}: "loss", "<output>_loss", "val_..."), as
        ``fit`` returns it. Each member ends with its best epoch's weights.
    """
    for name, value, low in (("epochs", epochs, 1), ("patience", patience, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise invalid(name, f"an integer >= {low}", value)
    if not isinstance(val_data, Mapping):
        raise invalid("val_data", "the validation utterances as {modality: [arrays]} (packed training predicts them "
                      "for every member at once)", received=type(val_data).__name__)
    callbacks = [[] for _ in packed.members] if callbacks is None else [list(c) for c in callbacks]
    if len(callbacks) != len(packed):
        raise invalid("callbacks", f"one list of callbacks per member ({len(packed)})",
                      received=f"{len(callbacks)} lists")
    restart = getattr(train_ds, "privemo_restart_epochs", None)
    if restart is not None:  # every training starts from epoch 0 of the pipeline's shuffle, as fit's does
        restart()
    driver = _PackedEpochs(packed, val_data, val_targets, objective=objective, probe=probe, patience=int(patience),
                           callbacks=callbacks, epochs=int(epochs), verbose=verbose)
    packed.model.fit(_packed_dataset(train_ds, packed), epochs=int(epochs), callbacks=[driver], verbose=verbose,
                     shuffle=False)
    return driver.histories
