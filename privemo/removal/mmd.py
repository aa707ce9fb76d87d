"""Distribution matching ("mmd"): the encoder is penalised by a class-conditional maximum mean discrepancy (MMD) between
the representations of the attribute's groups, so that within every emotion class h has the same distribution for
female and male speakers. Unlike an adversary there is no head to fool: if the conditional distributions match, no
attacker of any kind can separate them (Gretton et al., JMLR 2012; used for fair representations by Louizos et al.,
ICLR 2016, "The variational fair autoencoder").

The penalty of one batch, for representations h (n, d), emotion labels c and attribute labels a:

1. h is standardised per feature with the batch's mean and standard deviation (``MMD_STANDARDIZE``; constants for the
   gradient), as a fresh attacker's scaler does, so shrinking a feature does not hide it;
2. the kernel is a mixture of Gaussian kernels ``k(x, y) = mean_m exp(-|x - y|^2 / (2 (m s)^2))`` whose widths are fixed
   multiples m of ``MMD_BANDWIDTHS`` of s, the batch's median pairwise distance (the median heuristic; a constant for
   the gradient), so the penalty does not depend on h's scale;
3. for every emotion class c and attribute value v with rows on both sides, the (biased, V-statistic) squared MMD
   between the rows of class c with a = v and the rows of class c with a != v ("one against the rest"; sample weights
   weight the rows, and rows of weight 0, e.g. of unknown gender, are left out);
4. the penalty is the mean over those (class, value) pairs. For gender (two values) the pair (c, female) and (c, male)
   compare the same two groups, so it is the mean over classes with both genders of MMD^2(female h, male h). For the
   speaker attribute, each speaker's h is matched against the other speakers' h of the same class: privemo's own
   choice of a speaker-conditional criterion (h then carries no speaker-specific distribution shift within a class).

Conditioning on the emotion class keeps emotion: a gender difference that only reflects a different mix of emotion
classes between the groups costs nothing (``conditional_mmd``). The V-statistic is never negative and exactly 0 for
identical groups; for small groups it has a positive bias of order 1 / group size, the same for every encoder.

``MMDModel`` trains the encoder and emotion head on ``emotion CE + mmd_weight * penalty`` (one optimiser). Its attribute
outputs come from monitor heads: the paper's adversary head architecture trained by ordinary cross-entropy on the
*frozen* h (no gradient reaches the encoder), so the model has ``build_model``'s outputs and its validation UAR says how
readable the attribute still is. ``mmd_weight = MMD_SCALE * grl_lambda``: the method is tuned over the paper's lambda
grid like the GRL (``privemo.removal.LAMBDA_REMOVALS``).
"""

from __future__ import annotations

import keras
from keras import ops

from privemo._util.validation import check_float
from privemo.nn.models import build_model
from privemo.removal._common import (
    MMD_BANDWIDTHS,
    MMD_SCALE,
    MMD_STANDARDIZE,
    AttributeHeadsModel,
    RemovalSettings,
    attach_heads,
    check_bandwidths,
    require_adversary,
    weighted_mean,
)

__all__ = ["MMDModel", "mmd", "conditional_mmd", "kernel_matrix", "build_mmd", "MMD_SCALE", "MMD_BANDWIDTHS",
           "MMD_STANDARDIZE"]

_EPS = 1e-6


def _squared_distances(x):
    """(n, n) squared Euclidean distances between the rows of x, clipped at 0 (round-off)."""
    norms = ops.sum(ops.square(x), axis=-1)
    return ops.maximum(norms[:, None] + norms[None, :] - 2.0 * ops.matmul(x, ops.transpose(x)), 0.0)


def kernel_matrix(h, *, bandwidths=MMD_BANDWIDTHS, standardize: bool = MMD_STANDARDIZE):
    """The (n, n) multi-kernel Gaussian Gram matrix of the rows of ``h`` (n, d) (steps 1-2 of the module docstring):
    ``mean_m exp(-|x - y|^2 / (2 (m s)^2))`` over the multiples m of ``bandwidths``, s the median pairwise distance of
    the (standardised) rows. Batch statistics and s are constants for the gradient."""
    h = ops.cast(h, "float32")
    if standardize:
        mean = ops.stop_gradient(ops.mean(h, axis=0, keepdims=True))
        std = ops.stop_gradient(ops.std(h, axis=0, keepdims=True))
        h = (h - mean) / (std + _EPS)
    sq = _squared_distances(h)
    n = ops.shape(sq)[0]
    # median of the n (n - 1) off-diagonal entries: the n zeros of the diagonal sort first
    flat = ops.sort(ops.reshape(sq, (-1,)))
    index = ops.minimum(n + (n * n - n) // 2, n * n - 1)
    median = ops.maximum(ops.stop_gradient(ops.take(flat, index)), _EPS)
    return ops.mean(ops.stack([ops.exp(-sq / (2.0 * m * m * median)) for m in bandwidths]), axis=0)


def _group_mmd(kernel, inside, outside):
    """Squared MMD (V-statistic) between the row-weighted groups ``inside`` and ``outside`` (each (G, n)), for every
    one of the G groups; also whether both sides have weight."""
    n_in, n_out = ops.sum(inside, axis=-1), ops.sum(outside, axis=-1)
    valid = ops.logical_and(n_in > 0, n_out > 0)
    n_in, n_out = ops.maximum(n_in, _EPS), ops.maximum(n_out, _EPS)
    k_in = ops.matmul(inside, kernel)
    within_in = ops.sum(k_in * inside, axis=-1) / (n_in * n_in)
    between = ops.sum(k_in * outside, axis=-1) / (n_in * n_out)
    within_out = ops.sum(ops.matmul(outside, kernel) * outside, axis=-1) / (n_out * n_out)
    return within_in + within_out - 2.0 * between, valid


def conditional_mmd(h, classes, groups, *, n_classes: int, n_groups: int, sample_weight=None,
                    bandwidths=MMD_BANDWIDTHS, standardize: bool = MMD_STANDARDIZE):
    """The class-conditional MMD penalty of the module docstring (steps 1-4): the mean, over the (class, attribute
    value) pairs with rows on both sides, of the squared MMD between that value's rows of the class and the class's
    other rows. A scalar >= 0, differentiable in ``h``.

    Args:
        h: float tensor (n, d), the representations of a batch.
        classes: int tensor (n,), emotion classes in [0, n_classes).
        groups: int tensor (n,), attribute values in [0, n_groups) (gender ids, speaker ids).
        n_classes, n_groups: numbers of emotion classes and attribute values.
        sample_weight: optional float tensor (n,): row weights (0 leaves a row out).
        bandwidths: kernel widths as multiples of the median pairwise distance.
        standardize: standardise h per feature (batch statistics) first.
    """
    kernel = kernel_matrix(h, bandwidths=bandwidths, standardize=standardize)
    in_class = ops.one_hot(ops.cast(classes, "int32"), n_classes)  # (n, C)
    if sample_weight is not None:
        in_class = in_class * ops.cast(sample_weight, "float32")[:, None]
    in_group = ops.one_hot(ops.cast(groups, "int32"), n_groups)  # (n, V)
    # (C * V, n) row weights of "class c, value v" and of "class c, another value"
    inside = ops.reshape(ops.transpose(in_class[:, :, None] * in_group[:, None, :], (1, 2, 0)), (-1, ops.shape(h)[0]))
    outside = ops.reshape(ops.transpose(in_class[:, :, None] * (1.0 - in_group[:, None, :]), (1, 2, 0)),
                          (-1, ops.shape(h)[0]))
    values, valid = _group_mmd(kernel, inside, outside)
    valid = ops.cast(valid, "float32")
    return ops.sum(values * valid) / ops.maximum(ops.sum(valid), 1.0)


def mmd(x, y, *, bandwidths=MMD_BANDWIDTHS, standardize: bool = MMD_STANDARDIZE):
    """Squared MMD (V-statistic, the module docstring's kernel on the pooled rows) between samples ``x`` (n, d) and
    ``y`` (m, d): ``conditional_mmd`` with one class. 0 for identical samples."""
    x, y = ops.cast(x, "float32"), ops.cast(y, "float32")
    groups = ops.concatenate([ops.zeros(ops.shape(x)[:1], "int32"), ops.ones(ops.shape(y)[:1], "int32")])
    return conditional_mmd(ops.concatenate([x, y]), ops.zeros_like(groups), groups, n_classes=1, n_groups=2,
                           bandwidths=bandwidths, standardize=standardize)


@keras.saving.register_keras_serializable(package="privemo")
class MMDModel(AttributeHeadsModel):
    """Emotion network trained with a class-conditional MMD penalty between the attribute's groups (removal "mmd").

    Each ``train_step`` computes h and the emotion output once and takes one optimiser step on
    ``emotion CE + mmd_weight * mean over attribute outputs(conditional_mmd(h, emotion, attribute))`` for the encoder
    and emotion head, plus the monitor heads' cross-entropy on the frozen h for the heads (no gradient reaches the
    encoder through them). Logs "loss" (the encoder's objective), "emotion_loss", "mmd" and "monitor_loss".

    A functional model (``privemo.removal._common.AttributeHeadsModel``) with ``build_model``'s dict outputs: "emotion"
    and one per attribute output, the softmax of its monitor head (the nested model ``{output}_monitor_head``). Build it
    with ``build_removal_model(removal="mmd", ...)``; train it with ``privemo.nn.training.fit`` or ``model.fit`` after
    ``compile``.

    Args (keyword, besides the functional ``inputs``, ``outputs``, ``name``):
        adversaries: {attribute output name: name of the layer whose h is matched and read by its monitor head}.
        mmd_weight: float >= 0, the penalty's weight (``build_mmd``: ``MMD_SCALE * grl_lambda``).
        bandwidths: kernel widths, multiples of the median pairwise distance (``MMD_BANDWIDTHS``).
        standardize: standardise h per feature before the kernel (``MMD_STANDARDIZE``).
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        adversaries = kwargs.pop("adversaries", None)
        mmd_weight = check_float("mmd_weight", kwargs.pop("mmd_weight", MMD_SCALE), 0)
        bandwidths = check_bandwidths(kwargs.pop("bandwidths", MMD_BANDWIDTHS))
        standardize = bool(kwargs.pop("standardize", MMD_STANDARDIZE))
        super().__init__(inputs, outputs, name=name, adversaries=adversaries, n_heads=1,
                         trackers=("emotion_loss", "mmd", "monitor_loss"), **kwargs)
        self.mmd_weight, self.bandwidths, self.standardize = mmd_weight, bandwidths, standardize
        out = self._outputs_struct
        self._n_classes = int(out["emotion"].shape[-1])
        self._n_groups = {o: int(out[o].shape[-1]) for o in self.adversaries}

    @staticmethod
    def head_name(output: str, index: int = 1) -> str:
        """Layer name of the monitor head of attribute output ``output`` (one head: ``index`` is 1)."""
        return f"{output}_monitor_head"

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Keras ``compile``; the optimiser is built on the trainable variables at once (the train step cannot create
        variables)."""
        super().compile(optimizer=optimizer, loss=loss, **kwargs)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def penalty(self, sources, targets, weights):
        """The mean over attribute outputs of ``conditional_mmd`` of their h (``sources``) given the emotion class."""
        total = 0.0
        for o, h in sources.items():
            weight = weights[o]
            if weights["emotion"] is not None:
                weight = weights["emotion"] if weight is None else weight * ops.cast(weights["emotion"], "float32")
            total = total + conditional_mmd(h, targets["emotion"], targets[o], n_classes=self._n_classes,
                                            n_groups=self._n_groups[o], sample_weight=weight,
                                            bandwidths=self.bandwidths, standardize=self.standardize)
        return total / float(len(sources))

    def _monitor_ce(self, sources, targets, weights):
        total = 0.0
        for o, (head,) in self._heads.items():
            ce = keras.losses.sparse_categorical_crossentropy(targets[o], head(sources[o], training=True))
            total = total + weighted_mean(ce, weights[o])
        return total

    def train_step(self, data):
        import tensorflow as tf  # the train step is written for the TensorFlow backend

        x, targets, weights = self._training_data(data)
        with tf.GradientTape() as tape:
            view = self._view(x, training=True)
            sources = view["sources"]
            emotion_loss = weighted_mean(
                keras.losses.sparse_categorical_crossentropy(targets["emotion"], view["emotion"]), weights["emotion"]
            )
            penalty = self.penalty(sources, targets, weights)
            monitor_loss = self._monitor_ce({o: tf.stop_gradient(s) for o, s in sources.items()}, targets, weights)
            loss = emotion_loss + self.mmd_weight * penalty
            total = loss + monitor_loss
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(total, variables), variables)
        return self._track(loss=loss, emotion_loss=emotion_loss, mmd=penalty, monitor_loss=monitor_loss)

    def method_settings(self) -> dict:
        """The method's constructor arguments (beyond the functional graph): what ``get_config`` adds and what a model
        rebuilt around a new graph (``apply_erasure``) takes over."""
        return dict(adversaries=dict(self.adversaries), mmd_weight=self.mmd_weight, bandwidths=list(self.bandwidths),
                    standardize=self.standardize)


def build_mmd(build_kwargs: dict, settings: RemovalSettings) -> MMDModel:
    """"mmd": ``build_model``'s encoder and emotion head, a monitor head per attribute output, and the MMD penalty with
    weight ``settings.mmd_scale * grl_lambda`` (``grl_lambda`` from ``build_kwargs``, default 1.0: the tuned lambda)."""
    require_adversary(build_kwargs, "mmd")
    # build_model validates every argument and gives the encoder, the emotion head and the attributes' names and sizes;
    # its GRL heads are left out of the new graph.
    base = build_model(**build_kwargs)
    outputs, sources = attach_heads(base, build_kwargs, 1, MMDModel.head_name, normalize=settings.normalize_adversary)
    lam = float(build_kwargs.get("grl_lambda", 1.0))
    return MMDModel(base.input, outputs, name=f"{base.name}_mmd", adversaries=sources,
                    mmd_weight=settings.mmd_scale * lam, bandwidths=settings.mmd_bandwidths,
                    standardize=settings.mmd_standardize)
