"""K networks of one architecture run side by side as one Keras layer, their GRUs merged into one recurrent loop.

A packed hyper-parameter trial (``privemo.search.packing``) trains K members of one network shape on the same batches.
Running their graphs one after the other costs K times one network; on a CPU most of that is not arithmetic but the
per-step dispatch of the GRU's loop (a few dozen tiny ops per time step, per layer, per member). ``Lockstep`` replays
the members' functional graphs in lockstep and, at every GRU position, runs **one** loop over time for all K members
(``merged_gru``: the members' kernels stacked, one batched matmul per product and step), so the loop's dispatch is paid
once instead of K times. Every other layer is the member's own layer, called on the member's own tensors.

The merged loop computes exactly what ``keras.layers.GRU`` computes (``reset_after=True``, sigmoid gates, tanh, the
masked step keeping the previous state and output), with each member's own variables: the gradient reaching a member's
GRU weights is the gradient of that member's loss alone. Only the summation order of the matrix products may differ,
so member outputs agree with the members' own forward passes to float rounding (``tests/test_lockstep.py``).

On a GPU Keras runs each GRU as one cuDNN kernel; the merged loop is not cuDNN, so ``merge_gru=None`` (the default)
merges only where TensorFlow sees no GPU.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from privemo._util.validation import invalid
from privemo.nn.device import gpu_visible  # where Keras' GRU runs as a cuDNN kernel and merging would lose it

__all__ = ["Lockstep", "merged_gru", "mergeable_gru", "gpu_visible"]


def mergeable_gru(layer) -> bool:
    """Whether ``layer`` is a ``keras.layers.GRU`` whose step ``merged_gru`` reproduces: ``reset_after``, bias, tanh
    and sigmoid, no dropout, forward, not stateful, one output."""
    if not isinstance(layer, keras.layers.GRU):
        return False
    cell = layer.cell
    return bool(
        cell.reset_after and cell.use_bias and not cell.dropout and not cell.recurrent_dropout
        and cell.activation is keras.activations.tanh and cell.recurrent_activation is keras.activations.sigmoid
        and not layer.go_backwards and not layer.stateful and not layer.return_state and not layer.unroll
    )


def merged_gru(layers: Sequence[keras.layers.GRU], sequences: Sequence, mask=None) -> list:
    """``[layers[i](sequences[i], mask=mask) for i]`` computed in one loop over time.

    Args:
        layers: K built GRU layers with the same units and input width (``mergeable_gru``); same ``return_sequences``.
        sequences: K float tensors (batch, time, features).
        mask: optional bool tensor (batch, time), shared by every member (right-padded: a masked step keeps the state).

    Returns:
        K tensors: (batch, time, units) with ``return_sequences``, else (batch, units) (the output at the last step).
    """
    import tensorflow as tf

    x = ops.stack(list(sequences), axis=0)  # (K, batch, time, in)
    # the variables in the inputs' dtype, as Keras autocasts them under a mixed-precision policy
    kernel = ops.cast(ops.stack([layer.cell.kernel.value for layer in layers]), x.dtype)  # (K, in, 3u)
    recurrent = ops.cast(ops.stack([layer.cell.recurrent_kernel.value for layer in layers]), x.dtype)  # (K, u, 3u)
    bias = ops.cast(ops.stack([layer.cell.bias.value for layer in layers]), x.dtype)[:, :, None, :]  # (K, 2, 1, 3u)
    batch, units = ops.shape(x)[1], layers[0].units
    if mask is None:
        steps = ops.ones((ops.shape(x)[2], 1, batch, 1), dtype="bool")
    else:
        steps = ops.transpose(ops.cast(mask, "bool"))[:, None, :, None]  # (time, 1, batch, 1)

    def step(state, inputs):  # GRUCell.call (reset_after) for K members at once: one batched matmul per product
        x_t, real = inputs
        projected = ops.matmul(x_t, kernel) + bias[:, 0]
        inner = ops.matmul(state, recurrent) + bias[:, 1]
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
        z = ops.sigmoid(x_z + r_z)
        r = ops.sigmoid(x_r + r_r)
        candidate = ops.tanh(x_h + r * r_h)
        new = z * state + (1 - z) * candidate
        return ops.where(real, new, state)  # a masked step keeps the previous state (and output)

    initial = ops.zeros((len(layers), batch, units), dtype=x.dtype)
    states = tf.scan(step, (ops.transpose(x, (2, 0, 1, 3)), steps), initializer=initial)  # (time, K, batch, u)
    if layers[0].return_sequences:
        return [ops.transpose(states[:, i], (1, 0, 2)) for i in range(len(layers))]
    return [states[-1, i] for i in range(len(layers))]


def _same_gru(layers) -> bool:
    """Whether ``layers`` are mergeable GRUs of one shape (units, input width, readout)."""
    if not all(mergeable_gru(layer) for layer in layers):
        return False
    first = layers[0]
    return all(layer.units == first.units and layer.return_sequences == first.return_sequences
               and tuple(layer.cell.kernel.shape) == tuple(first.cell.kernel.shape) for layer in layers)


def _node_order(network: keras.Model) -> list:
    """The computing nodes of a functional ``network`` in the order Keras runs them (deepest first)."""
    nodes_by_depth = network._nodes_by_depth
    return [node for depth in sorted(nodes_by_depth, reverse=True) for node in nodes_by_depth[depth]
            if node.operation is not None and not node.is_input]


@keras.saving.register_keras_serializable(package="privemo")
class Lockstep(keras.layers.Layer):
    """K functional networks of one architecture (same layer names and graph, any weights) run side by side.

    Args:
        members: the K built functional models (e.g. ``privemo.nn.models.build_model``'s networks); the layer uses and
            trains their variables, so each member stays a usable model of its own.
        outputs: extra layer names whose outputs are returned too (e.g. ``("h",)`` for the representation).
        merge_gru: run the members' GRUs as one loop (``merged_gru``); None: where TensorFlow sees no GPU.

    Call arguments:
        inputs: dict {input name: tensor}, shared by every member.

    Returns:
        dict {``f"m{i}_{name}"``: member ``i``'s output ``name``}: the members' own outputs, then ``outputs``.
    """

    def __init__(self, members: Sequence[keras.Model], outputs: Sequence[str] = (), merge_gru: bool | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.members = list(members)
        if not self.members:
            raise invalid("members", "at least one functional model", received=members)
        self.extra_outputs = tuple(outputs)
        self.merge_gru = merge_gru
        self._orders = [_node_order(m) for m in self.members]
        # members with the same graph run in lockstep; a pack of several architectures runs one group after another
        groups: dict[tuple, list[int]] = {}
        for i, order in enumerate(self._orders):
            groups.setdefault(tuple(node.operation.name for node in order), []).append(i)
        self._groups = list(groups.values())
        self.built = all(m.built for m in self.members)

    def _merging(self) -> bool:
        return gpu_visible() is False if self.merge_gru is None else bool(self.merge_gru)

    def call(self, inputs):
        merge = self._merging()
        tensors = [{id(x): inputs[x.name] for x in member.inputs} for member in self.members]
        for group in self._groups:
            self._run_group(group, tensors, merge)
        result = {}
        for i, (member, done) in enumerate(zip(self.members, tensors)):
            for name, x in member.output.items():
                result[f"m{i}_{name}"] = done[id(x)]
            for name in self.extra_outputs:
                result[f"m{i}_{name}"] = done[id(member.get_layer(name).output)]
        return result

    def _run_group(self, group: list[int], tensors: list[dict], merge: bool) -> None:
        """Run the members ``group`` (one graph) node by node, filling their ``tensors`` ({id(symbolic): value})."""
        for position in range(len(self._orders[group[0]])):
            nodes = [self._orders[i][position] for i in group]
            arguments = [nodes[j].arguments.fill_in(tensors[i]) for j, i in enumerate(group)]
            operations = [node.operation for node in nodes]
            if merge and len(group) > 1 and _same_gru(operations):
                outputs = [[y] for y in merged_gru(operations, [args[0] for args, _ in arguments],
                                                   arguments[0][1].get("mask"))]
            else:
                outputs = [keras.tree.flatten(op(*args, **kwargs)) for op, (args, kwargs) in zip(operations, arguments)]
            for node, i, ys in zip(nodes, group, outputs):
                for x, y in zip(node.outputs, ys):
                    tensors[i][id(x)] = y

    def get_config(self):
        return {**super().get_config(), "members": [keras.saving.serialize_keras_object(m) for m in self.members],
                "outputs": list(self.extra_outputs), "merge_gru": self.merge_gru}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["members"] = [keras.saving.deserialize_keras_object(m) for m in config["members"]]
        return cls(**config)
