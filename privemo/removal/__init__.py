"""Attribute-removal methods beyond the paper's jointly trained gradient reversal layer, selectable with one option.

Why: a GRL trained jointly with its adversary can leave the attribute in h and teach the adversary head to be confidently
wrong (its own UAR below chance), while a *fresh* attacker trained on the frozen h recovers the attribute perfectly (see
``benchmarks/leakage.py`` and the README). The methods here share privemo.nn.models' encoder and heads, so every result is
comparable with the paper's set-up; privacy is always judged by fresh attackers (``privemo.privacy.attacks``).

``build_removal_model(removal=..., **build_model_kwargs, **method_kwargs)`` is the one entry point. ``METHODS`` is the
registry: each name maps to a ``RemovalMethod`` -- the network it trains (a key of ``NETWORKS``, whose builder makes it),
the eraser fitted on its h after training (post hoc), and whether its strength is the tuned ``grl_lambda``:

- ``"grl"``: the paper's joint training, exactly ``privemo.nn.models.build_model`` (the default; reproduces Table 1).
- ``"grl_dann"``: the same network; lambda ramps from 0 to ``grl_lambda`` over training with the DANN schedule
  (``privemo.nn.layers.LambdaSchedule``), which the returned ``ScheduledGRLModel`` adds to every ``fit`` call itself.
- ``"alternating"``: ``AlternatingAdversarialModel``: at each training step the adversary heads are first trained for ``k``
  steps on the frozen representation (ordinary cross-entropy), then the encoder and emotion head take one step on
  ``emotion loss + adversary_weight * privacy loss`` against the updated heads, the privacy loss being the reversed
  cross-entropy (``adversary_loss="reverse"``: make the heads wrong) or the confusion loss (``"confusion"``: push the
  heads' softmax toward uniform, i.e. the cross-entropy to the uniform distribution). No GRL is involved. Each head
  standardises h first (``normalize_adversary``), as a fresh attacker's scaler does, so the encoder cannot hide the
  attribute by shrinking its scale; ``refresh_epochs > 0`` also re-initialises and retrains the heads on the frozen h at
  every epoch start (``AdversaryRefresh``).
- ``"ensemble"``: ``"alternating"`` with ``n_adversaries`` (default ``ENSEMBLE_SIZE``) independently initialised heads
  per adversary output; the encoder must fool all of them, and the output is their averaged softmax.
- ``"mmd"``: ``MMDModel`` (``privemo.removal.mmd``): the emotion loss plus ``MMD_SCALE * grl_lambda`` times a
  class-conditional multi-kernel Gaussian MMD between the attribute's groups within each emotion class of a batch
  (gender: female against male h; speaker: each speaker against the others). No adversary; monitor heads trained on the
  frozen h give the attribute outputs.
- ``"inlp"``: post hoc. Builds the baseline (no adversary); after training, ``fit_inlp`` finds the iterative nullspace
  projection (Ravfogel et al., ACL 2020) that removes every direction of h a linear classifier uses to predict the
  attribute, and ``apply_projection`` appends it (``NullspaceProjection``, a registered layer named "h") so the projected
  representation is exported and the emotion head can be refitted on it. A linear reference point: non-linear attackers
  may still recover what INLP leaves.
- ``"leace"``: post hoc, like "inlp", with LEACE (``privemo.removal.leace.LeaceEraser``, Belrose et al., NeurIPS 2023) as the
  eraser: the closed-form affine edit ``h -> h - (h - mean) A^T`` that makes h's covariance with the attribute exactly
  zero on the rows it is fitted on (no linear classifier beats a constant there) while moving h the least.
  ``apply_leace`` appends it as an ``AffineErasure`` layer named "h" (``apply_erasure``).
- ``"ensemble3_leace"`` (also ``"ensemble_leace"``, its first name): ``"ensemble"``'s network and training, then LEACE
  post hoc on its h (the network keeps its adversary heads, which now read the erased h; ``apply_erasure`` copies them).
- ``"mmd_leace"``: ``"mmd"``'s network and training (lambda tuned), then LEACE post hoc on its h.

``POST_HOC`` maps each post-hoc method to (the network it trains: "baseline" or another method, its eraser);
``LAMBDA_REMOVALS`` lists the methods whose strength is ``grl_lambda`` (tuned over the paper's lambda grid).

Every returned model has the same dict outputs as ``build_model`` ("emotion", and "gender" / "speaker" or the per-modality
"gender_acoustic" ... for the trained methods) and a layer named "h", so ``privemo.nn.models.representation_model``,
``privemo.nn.training.fit`` / ``ValidationUAR`` and ``privemo.data.pipeline.predict`` work unchanged. Under
``keras.utils.set_random_seed(seed)`` (or ``seed=``) building and training are deterministic.

Modules: ``grl`` (grl, grl_dann, the baseline), ``adversarial`` (alternating, ensemble), ``mmd``, ``inlp``, ``leace`` (the
scikit-learn eraser), ``erasure`` (the eraser layers' shared path), ``losses``, ``_common`` (settings, the model with
attribute heads, the assumption constants).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import keras

from privemo._seed import set_seed
from privemo._validation import check_choice
# Every name the package had before it was split is imported here, so `from privemo.removal import X` keeps working.
from privemo.removal._common import (
    ADVERSARY_STEPS,
    ADVERSARY_WEIGHT,
    ALTERNATING_LOSS,
    ALTERNATING_LOSSES,
    DANN_UPDATE,
    ENSEMBLE_SIZE,
    INLP_C,
    INLP_ITERATIONS,
    INLP_TOLERANCE,
    MMD_BANDWIDTHS,
    MMD_SCALE,
    MMD_STANDARDIZE,
    NORMALIZE_ADVERSARY,
    REFRESH_BATCH_SIZE,
    REFRESH_EPOCHS,
    REFRESH_LEARNING_RATE,
    SCHEDULE_UPDATES,
    AttributeHeadsModel,
    RemovalSettings,
)
from privemo.removal.adversarial import (
    AdversaryRefresh,
    AlternatingAdversarialModel,
    adversary_head_model,
    build_alternating,
    build_ensemble,
    reinitialize,
)
from privemo.removal.erasure import AffineErasure, apply_erasure, apply_leace, leace_affine
from privemo.removal.grl import ScheduledGRLModel, build_baseline, build_grl, build_grl_dann
from privemo.removal.inlp import NullspaceProjection, apply_projection, fit_inlp
from privemo.removal.losses import confusion_loss, reverse_loss
from privemo.removal.mmd import MMDModel, build_mmd, conditional_mmd, kernel_matrix, mmd

__all__ = [
    "REMOVALS",
    "ALTERNATING_LOSSES",
    "build_removal_model",
    "ScheduledGRLModel",
    "AlternatingAdversarialModel",
    "confusion_loss",
    "reverse_loss",
    "fit_inlp",
    "NullspaceProjection",
    "apply_projection",
    "POST_HOC",
    "AffineErasure",
    "apply_erasure",
    "apply_leace",
    "leace_affine",
    "AdversaryRefresh",
    "MMDModel",
    "mmd",
    "conditional_mmd",
    "METHODS",
    "NETWORKS",
    "RemovalMethod",
    "RemovalSettings",
    "LAMBDA_REMOVALS",
]

#: a builder: (``build_model`` keyword arguments, the method settings) -> the uncompiled network
Builder = Callable[[dict, RemovalSettings], keras.Model]

#: the networks the methods train, by name
NETWORKS: dict[str, Builder] = {
    "baseline": build_baseline,
    "grl": build_grl,
    "grl_dann": build_grl_dann,
    "alternating": build_alternating,
    "ensemble": build_ensemble,
    "mmd": build_mmd,
}


class RemovalMethod(NamedTuple):
    """One removal method: the network it trains (a key of ``NETWORKS``), the eraser fitted on that network's h after
    training (None, "inlp" or "leace"), and whether its strength is the tuned ``grl_lambda``."""

    network: str
    eraser: str | None = None
    lambda_tuned: bool = False


#: the registry: method name -> RemovalMethod, in the order the command line lists them
METHODS: dict[str, RemovalMethod] = {
    "grl": RemovalMethod("grl", lambda_tuned=True),
    "grl_dann": RemovalMethod("grl_dann", lambda_tuned=True),
    "alternating": RemovalMethod("alternating"),
    "ensemble": RemovalMethod("ensemble"),
    "inlp": RemovalMethod("baseline", "inlp"),
    "leace": RemovalMethod("baseline", "leace"),
    "ensemble_leace": RemovalMethod("ensemble", "leace"),  # the first name of ensemble3_leace
    "mmd": RemovalMethod("mmd", lambda_tuned=True),
    "mmd_leace": RemovalMethod("mmd", "leace", lambda_tuned=True),
    "ensemble3_leace": RemovalMethod("ensemble", "leace"),
}
REMOVALS = tuple(METHODS)
#: post-hoc methods: {removal: (the network trained first -- "baseline" (no adversary) or a method of REMOVALS -- and the
#: eraser fitted on its h afterwards: "inlp" or "leace")}
POST_HOC = {name: (m.network, m.eraser) for name, m in METHODS.items() if m.eraser is not None}
#: methods whose strength is grl_lambda, tuned over the paper's lambda grid (the others declare no lambda)
LAMBDA_REMOVALS = tuple(name for name, m in METHODS.items() if m.lambda_tuned)


def build_removal_model(
    removal: str = "grl",
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
        removal: one of ``REMOVALS`` (see the module docstring); a post-hoc method builds the network it trains before
            its eraser ("inlp", "leace": the baseline without adversary; "ensemble_leace" / "ensemble3_leace": the
            "ensemble" network; "mmd_leace": the "mmd" network). Apply ``fit_inlp`` + ``apply_projection`` or
            ``apply_leace`` with a fitted ``privemo.removal.leace.LeaceEraser`` after training.
        seed: if given, ``privemo._seed.set_seed(seed)`` (as ``keras.utils.set_random_seed``) before building.
        k: adversary steps per encoder step (alternating / ensemble).
        adversary_loss: "reverse" or "confusion" (alternating / ensemble).
        n_adversaries: heads per adversary output; default 1 for "alternating", ``ENSEMBLE_SIZE`` for "ensemble".
        adversary_weight: weight of the privacy loss (alternating / ensemble).
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
    method = METHODS[check_choice("removal", removal, REMOVALS)]
    settings = RemovalSettings(
        k=k, adversary_loss=adversary_loss, n_adversaries=n_adversaries, adversary_weight=adversary_weight,
        adversary_learning_rate=adversary_learning_rate, refresh_epochs=refresh_epochs,
        normalize_adversary=normalize_adversary, schedule_update=schedule_update, mmd_scale=mmd_scale,
        mmd_bandwidths=mmd_bandwidths, mmd_standardize=mmd_standardize,
    )
    if seed is not None:
        set_seed(int(seed))
    return NETWORKS[method.network](dict(build_model_kwargs), settings)
