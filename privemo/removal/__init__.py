"""Attribute-removal methods beyond the paper's jointly trained gradient reversal layer, selectable with one option.

Why: a GRL trained jointly with its adversary can leave the attribute in h and teach the adversary head to be confidently
wrong (its own UAR below chance), while a *fresh* attacker trained on the frozen h recovers the attribute perfectly (see
``benchmarks/leakage.py`` and the README). The methods here share privemo.nn.models' encoder and heads, so every result is
comparable with the paper's set-up; privacy is always judged by fresh attackers (``privemo.privacy.attacks``).

``build_removal_model(removal=..., **build_model_kwargs, **method_kwargs)`` is the one entry point. ``METHODS`` is the
registry (``privemo.removal.methods``): each name maps to a ``RemovalMethod`` that every other module asks instead of
comparing names -- the network it trains (a key of ``NETWORKS``, whose builder makes it), the eraser fitted on its h
after training (post hoc), the name of its strength (tuned over the grid's ``grl_lambda`` values) and its traits
(``cacheable``, ``packable``, ``posthoc``, ``fused_only``, ``needs_adversary``); ``removal_method(name)`` looks one up:

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
- ``"gradient_erasure"``: post hoc, like "leace", with ``privemo.removal.gradient_erasure.GradientSubspaceEraser``: LEACE
  where a linear probe reads the attribute, then the subspaces that cross-fitted non-linear probes (an MLP, an RBF SVM)
  read it through, removed round by round until no probe, gradient-boosted trees included, beats chance (non-linear
  attackers; an affine map, saved as an ``AffineErasure`` layer).

``POST_HOC`` maps each post-hoc method to (the network it trains: "baseline" or another method, its eraser);
``LAMBDA_REMOVALS`` lists the methods with a strength (tuned over the paper's lambda grid as ``grl_lambda``). The post-hoc
step inside a trial is ``privemo.removal.posthoc.erase_post_hoc``.

Every returned model has the same dict outputs as ``build_model`` ("emotion", and "gender" / "speaker" or the per-modality
"gender_acoustic" ... for the trained methods) and a layer named "h", so ``privemo.nn.models.representation_model``,
``privemo.nn.training.fit`` / ``ValidationUAR`` and ``privemo.data.pipeline.predict`` work unchanged. Under
``keras.utils.set_random_seed(seed)`` (or ``seed=``) building and training are deterministic.

Modules: ``methods`` (the registry; imports neither Keras nor TensorFlow), ``networks`` (``NETWORKS``,
``build_removal_model``), ``posthoc`` (the post-hoc step of a trial), ``grl`` (grl, grl_dann, the baseline),
``adversarial`` (alternating, ensemble), ``mmd``, ``inlp``, ``leace`` (the scikit-learn eraser), ``erasure`` (the eraser
layers' shared path), ``losses``, ``_common`` (settings, the model with attribute heads, the assumption constants). The
names here are resolved on first use (``privemo._util.lazy``), so reading the registry does not import Keras. Importing
a network module registers its Keras classes (``privemo.removal.saving.register_keras_classes`` imports them all).
"""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("adversarial", "erasure", "gradient_erasure", "grl", "inlp", "leace", "losses", "methods", "mmd",
               "networks", "posthoc", "saving")

# public name -> module that defines it, resolved on first use (privemo._util.lazy; the registry, ``methods``, imports
# no Keras, so the command line reads it without TensorFlow's start-up time; the network modules import Keras). The MMD
# function is ``privemo.removal.mmd.mmd``: ``privemo.removal.mmd`` is its module.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("CACHED_REMOVALS", "DEFAULT_REMOVAL", "LAMBDA_REMOVALS", "METHODS", "PACKABLE_REMOVALS", "POST_HOC",
                     "REMOVALS", "RemovalMethod", "removal_method"), "privemo.removal.methods"),
    "ADVERSARY_STEPS": "privemo.removal._common",
    "ADVERSARY_WEIGHT": "privemo.removal._common",
    "ALTERNATING_LOSS": "privemo.removal._common",
    "ALTERNATING_LOSSES": "privemo.removal._common",
    "DANN_UPDATE": "privemo.removal._common",
    "ENSEMBLE_SIZE": "privemo.removal._common",
    "INLP_C": "privemo.removal._common",
    "INLP_ITERATIONS": "privemo.removal._common",
    "INLP_TOLERANCE": "privemo.removal._common",
    "MMD_BANDWIDTHS": "privemo.removal._common",
    "MMD_SCALE": "privemo.removal._common",
    "MMD_STANDARDIZE": "privemo.removal._common",
    "NORMALIZE_ADVERSARY": "privemo.removal._common",
    "REFRESH_BATCH_SIZE": "privemo.removal._common",
    "REFRESH_EPOCHS": "privemo.removal._common",
    "REFRESH_LEARNING_RATE": "privemo.removal._common",
    "SCHEDULE_UPDATES": "privemo.removal._common",
    "AttributeHeadsModel": "privemo.removal._common",
    "RemovalSettings": "privemo.removal._common",
    "AdversaryRefresh": "privemo.removal.adversarial",
    "AlternatingAdversarialModel": "privemo.removal.adversarial",
    "adversary_head_model": "privemo.removal.adversarial",
    "build_alternating": "privemo.removal.adversarial",
    "build_ensemble": "privemo.removal.adversarial",
    "reinitialize": "privemo.removal.adversarial",
    "AffineErasure": "privemo.removal.erasure",
    "apply_erasure": "privemo.removal.erasure",
    "apply_leace": "privemo.removal.erasure",
    "leace_affine": "privemo.removal.erasure",
    "ScheduledGRLModel": "privemo.removal.grl",
    "build_baseline": "privemo.removal.grl",
    "build_grl": "privemo.removal.grl",
    "build_grl_dann": "privemo.removal.grl",
    "NullspaceProjection": "privemo.removal.inlp",
    "apply_projection": "privemo.removal.inlp",
    "fit_inlp": "privemo.removal.inlp",
    "confusion_loss": "privemo.removal.losses",
    "reverse_loss": "privemo.removal.losses",
    "MMDModel": "privemo.removal.mmd",
    "build_mmd": "privemo.removal.mmd",
    "conditional_mmd": "privemo.removal.mmd",
    "kernel_matrix": "privemo.removal.mmd",
    "GradientSubspaceEraser": "privemo.removal.gradient_erasure",
    "apply_gradient_erasure": "privemo.removal.gradient_erasure",
    "NETWORKS": "privemo.removal.networks",
    "Builder": "privemo.removal.networks",
    "build_removal_model": "privemo.removal.networks",
    "build_network": "privemo.removal.networks",
}

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
    "DEFAULT_REMOVAL",
    "CACHED_REMOVALS",
    "PACKABLE_REMOVALS",
    "removal_method",
    "build_network",
    "GradientSubspaceEraser",
    "apply_gradient_erasure",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
