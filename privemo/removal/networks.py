"""The networks the removal methods train, by name (``NETWORKS``), and the one entry point that builds them:
``build_removal_model(removal=..., **build_model_kwargs, **method_kwargs)``. ``build_network`` adds what a post-hoc
method's network carries during training: its eraser's layer "h" at the identity."""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from privemo._util.seed import set_seed
from privemo.removal._common import (
    ADVERSARY_STEPS,
    ADVERSARY_WEIGHT,
    ALTERNATING_LOSS,
    DANN_UPDATE,
    MMD_BANDWIDTHS,
    MMD_SCALE,
    MMD_STANDARDIZE,
    NORMALIZE_ADVERSARY,
    REFRESH_EPOCHS,
    RemovalSettings,
)
from privemo.removal.adversarial import build_alternating, build_ensemble
from privemo.removal.erasure import AffineErasure, apply_erasure
from privemo.removal.grl import build_baseline, build_grl, build_grl_dann
from privemo.removal.inlp import NullspaceProjection
from privemo.removal.methods import RemovalMethod, removal_method
from privemo.removal.mmd import build_mmd

__all__ = ["Builder", "NETWORKS", "build_removal_model", "build_network"]

#: a builder: (``build_model`` keyword arguments, the method settings) -> the uncompiled network
Builder = Callable[[dict, RemovalSettings], keras.Model]

#: the networks the methods train, by name (``RemovalMethod.network``)
NETWORKS: dict[str, Builder] = {
    "baseline": build_baseline,
    "grl": build_grl,
    "grl_dann": build_grl_dann,
    "alternating": build_alternating,
    "ensemble": build_ensemble,
    "mmd": build_mmd,
}

#: the layer "h" holding the identity, by eraser: (dimension of h) -> the layer a post-hoc method's network trains with
IDENTITY_ERASERS: dict[str, Callable[[int], keras.layers.Layer]] = {
    "inlp": lambda dim: NullspaceProjection(np.eye(dim, dtype=np.float32), name="h"),
    "leace": lambda dim: AffineErasure.identity(dim, name="h"),
    "gradient": lambda dim: AffineErasure.identity(dim, name="h"),  # its fit is an affine map, as LEACE's
}


def build_removal_model(
    removal: str | RemovalMethod = "grl",
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
    mmd_scale: float = MMD_SCALE,
    mmd_bandwidths=MMD_BANDWIDTHS,
    mmd_standardize: bool = MMD_STANDARDIZE,
    **build_model_kwargs,
) -> keras.Model:
    """Build the emotion network with the attribute-removal method ``removal`` (uncompiled; train with
    ``privemo.nn.training.fit``, which compiles it).

    Args:
        removal: one of ``privemo.removal.REMOVALS`` (or its ``RemovalMethod``; see the package docstring); a post-hoc
            method builds the network it trains before its eraser ("inlp", "leace": the baseline without adversary;
            "ensemble_leace" / "ensemble3_leace": the "ensemble" network; "mmd_leace": the "mmd" network). Apply
            ``fit_inlp`` + ``apply_projection`` or ``apply_leace`` with a fitted ``privemo.removal.leace.LeaceEraser``
            after training.
        seed: if given, ``privemo._util.seed.set_seed(seed)`` (as ``keras.utils.set_random_seed``) before building.
        k: adversary steps per encoder step (alternating / ensemble).
        adversary_loss: "reverse" or "confusion" (alternating / ensemble).
        n_adversaries: heads per adversary output; default 1 for "alternating", ``ENSEMBLE_SIZE`` for "ensemble".
        adversary_weight: weight of the privacy loss (alternating / ensemble), times ``grl_lambda`` (the tuned strength).
        adversary_learning_rate: learning rate of the adversary heads' optimiser (None: the main one's).
        refresh_epochs: > 0: re-initialise and retrain the heads on the frozen h for this many passes at the start of
            every epoch (``AdversaryRefresh``; alternating / ensemble).
        normalize_adversary: standardise h (batch statistics) at the input of every alternating adversary head and MMD
            monitor head.
        schedule_update: "batch" or "epoch": when the DANN ramp advances ("grl_dann").
        mmd_scale: the MMD penalty's weight is ``mmd_scale * grl_lambda`` ("mmd", "mmd_leace").
        mmd_bandwidths: the MMD kernel's widths, multiples of the median pairwise distance.
        mmd_standardize: standardise h per feature (batch statistics) before the MMD kernel.
        **build_model_kwargs: ``privemo.nn.models.build_model`` arguments (modalities, adversary, n_speakers, grl_lambda,
            grl_placement, conv_layers, ...).

    Returns:
        A ``keras.Model`` with ``build_model``'s dict outputs and its layer "h".
    """
    method = removal_method(removal)
    settings = RemovalSettings(
        k=k, adversary_loss=adversary_loss, n_adversaries=n_adversaries, adversary_weight=adversary_weight,
        adversary_learning_rate=adversary_learning_rate, refresh_epochs=refresh_epochs,
        normalize_adversary=normalize_adversary, schedule_update=schedule_update, mmd_scale=mmd_scale,
        mmd_bandwidths=mmd_bandwidths, mmd_standardize=mmd_standardize,
    )
    if seed is not None:
        set_seed(int(seed))
    return NETWORKS[method.network](dict(build_model_kwargs), settings)


def build_network(method: str | RemovalMethod, build_model_kwargs: dict) -> keras.Model:
    """The uncompiled network ``method`` trains, with its default settings (``build_removal_model``). A post-hoc
    method's network carries its eraser's layer "h" holding the identity until the post-hoc step sets it, so training
    is the network's own (same initial weights) and a trial's checkpoint carries the eraser."""
    method = removal_method(method)
    model = build_removal_model(method, **build_model_kwargs)
    if method.posthoc:
        dim = int(model.get_layer("h").output.shape[-1])
        layer = IDENTITY_ERASERS[method.eraser](dim)
        model = apply_erasure(model, layer, freeze_encoder=False, name=f"{model.name}_{method.eraser}")
    return model
