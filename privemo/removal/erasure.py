"""Post-hoc erasure shared by INLP and LEACE: a fixed affine layer (``AffineErasure``, e.g. a fitted
``privemo.removal.leace.LeaceEraser``) and ``apply_erasure``, which appends an eraser layer named "h" to a trained
network and copies its heads behind it."""

from __future__ import annotations

import numpy as np
import keras
from keras import ops

from privemo._util.validation import check_int, invalid
from privemo.nn.models import head_layers, representation_model
from privemo.removal._common import AttributeHeadsModel, average_heads

__all__ = ["AffineErasure", "apply_erasure", "apply_leace", "leace_affine", "check_square_matrix"]


def check_square_matrix(name: str, value) -> np.ndarray:
    """``value`` as a finite square (d, d) float32 matrix, d >= 1."""
    try:
        matrix = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        matrix = None
    if (matrix is None or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1
            or not np.isfinite(matrix).all()):
        shape = None if matrix is None else matrix.shape
        raise invalid(name, "a finite square 2-D matrix (d, d)", received=f"array of shape {shape}")
    return matrix


def _check_affine(kernel, bias) -> tuple[np.ndarray, np.ndarray]:
    matrix = check_square_matrix("kernel", kernel)
    try:
        offset = np.asarray(bias, dtype=np.float32)
    except (TypeError, ValueError):
        offset = None
    if offset is None or offset.shape != (matrix.shape[0],) or not np.isfinite(offset).all():
        shape = None if offset is None else offset.shape
        raise invalid("bias", f"a finite 1-D array of length {matrix.shape[0]}", received=f"array of shape {shape}")
    return matrix, offset


def leace_affine(eraser) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a fitted ``privemo.removal.leace.LeaceEraser`` as an affine map on rows: ``transform(h) = h - (h - mean)
    A^T = h @ (I - A^T) + mean @ A^T``, so kernel = ``I - A^T`` and bias = ``mean @ A^T`` (float32)."""
    matrix = getattr(eraser, "matrix_", None)
    mean = getattr(eraser, "mean_", None)
    if matrix is None or mean is None:
        raise invalid("eraser", "a fitted privemo.removal.leace.LeaceEraser (with matrix_ and mean_)", eraser)
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
        dim = check_int("dim", dim, 1)
        return cls(np.eye(dim, dtype=np.float32), np.zeros(dim, np.float32), **kwargs)

    @classmethod
    def from_eraser(cls, eraser, **kwargs) -> "AffineErasure":
        """The layer applying a fitted ``privemo.removal.leace.LeaceEraser`` (``leace_affine``)."""
        return cls(*leace_affine(eraser), **kwargs)

    def set_affine(self, kernel, bias) -> None:
        """Write a new (kernel, bias) of the same size."""
        matrix, offset = _check_affine(kernel, bias)
        if matrix.shape[0] != self.dim:
            raise invalid("kernel", f"a ({self.dim}, {self.dim}) matrix, as the layer's",
                          received=f"array of shape {matrix.shape}")
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


def _copy_layer(layer: keras.layers.Layer, x):
    """A copy of ``layer`` (same configuration, copied weights) called on ``x``."""
    if isinstance(layer, keras.Model):
        copy = keras.models.clone_model(layer)
    else:
        copy = layer.__class__.from_config(layer.get_config())
    y = copy(x)
    copy.set_weights(layer.get_weights())
    return y


def _emotion_head_copy(model: keras.Model, x):
    """A copy of ``model``'s emotion head (``privemo.nn.models.head_layers``) called on ``x``."""
    for layer in head_layers(model, "emotion"):
        x = _copy_layer(layer, x)
    return x


def apply_erasure(
    model: keras.Model, erasure: keras.layers.Layer, *, layer: str = "h", freeze_encoder: bool = True,
    name: str | None = None,
) -> keras.Model:
    """A new model: ``model``'s encoder up to ``layer`` (a nested sub-model sharing its weights), then ``erasure`` (a
    layer named "h" mapping (..., d) to (..., d): ``NullspaceProjection``, ``AffineErasure``), then a copy of ``model``'s
    emotion head (same configuration, copied weights). Outputs {"emotion"}; ``representation_model(result)`` gives the
    erased representation.

    A model with attribute heads (``privemo.removal._common.AttributeHeadsModel``: an ``AlternatingAdversarialModel`` of
    removal "alternating" / "ensemble", an ``MMDModel``; fused placement: its heads read ``layer``) gives a model of the
    same class with the same settings whose heads (copies) read the erased h, and its attribute outputs.

    With ``freeze_encoder`` (default) the encoder is not trainable, so ``privemo.nn.training.fit(result, ...)`` refits only
    the heads on the erased representation (as Ravfogel et al. retrain the main-task classifier).
    """
    if not isinstance(erasure, keras.layers.Layer) or erasure.name != "h":
        raise invalid("erasure", 'a Keras layer named "h"', erasure)
    with_heads = isinstance(model, AttributeHeadsModel)
    if with_heads and set(model.adversaries.values()) != {layer}:
        raise invalid("model", f"a {type(model).__name__} whose attribute heads all read layer '{layer}' (fused "
                               "placement)", received=f"adversaries reading {model.adversaries}")
    encoder = representation_model(model, layer)
    encoder.trainable = not freeze_encoder
    inputs = {k: keras.Input(shape=t.shape[1:], name=k, dtype=t.dtype) for k, t in model.input.items()}
    h = erasure(encoder(inputs))
    outputs = {"emotion": _emotion_head_copy(model, h)}
    name = name or f"{model.name}_erased"
    if not with_heads:
        return keras.Model(inputs, outputs, name=name)
    for o, heads in model._heads.items():
        outputs[o] = average_heads(o, [_copy_layer(head, h) for head in heads])
    return type(model)(inputs, outputs, name=name, **model.method_settings())
