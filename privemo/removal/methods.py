"""The attribute-removal methods as objects: one registry, ``METHODS``, that every other module asks.

A ``RemovalMethod`` knows its name (the ``--removal`` value and the ``removal`` field of fold records), its help line,
the network it trains (a key of ``privemo.removal.networks.NETWORKS``), the eraser fitted on that network's h after
training (post hoc), the name of its strength, and the traits the experiment, the search and the command line need
(``cacheable``, ``packable``, ``posthoc``, ``fused_only``, ``needs_adversary`` ...). Callers ask the object
(``removal_method(name).posthoc``) instead of comparing names.

The strength of every method that has one is tuned over the paper's lambda grid and kept in the ``grl_lambda``
hyper-parameter, record field and table column (so records and tables keep one layout); ``strength`` names what the
value sets: "grl_lambda" (the GRL's lambda), "adversary_weight" (the alternating / ensemble adversaries' privacy-loss
weight is ``ADVERSARY_WEIGHT`` times it) or "mmd_weight" (the MMD penalty's weight is ``MMD_SCALE`` times it). Every
method with a strength gets the same budget: the paper's four values, chosen on the validation speakers (issue 24).

The method's hooks are its ``network`` (the builder ``privemo.removal.networks.build_network`` calls) and its ``eraser``
(the post-hoc step ``privemo.removal.posthoc.erase_post_hoc`` runs). This module imports neither Keras nor TensorFlow,
so ``--help`` and the command line's flag checks stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from privemo._util.validation import invalid

__all__ = ["RemovalMethod", "METHODS", "REMOVALS", "DEFAULT_REMOVAL", "POST_HOC", "LAMBDA_REMOVALS",
           "CACHED_REMOVALS", "PACKABLE_REMOVALS", "removal_method"]

#: the erasers a post-hoc method can fit on h after training
ERASER_NAMES = ("inlp", "leace", "gradient")


@dataclass(frozen=True)
class RemovalMethod:
    """One attribute-removal method and its traits.

    Args:
        name: the method's name: the ``--removal`` value, the ``removal`` field of fold records and (unless ``paper``)
            the last part of the conditions' keys.
        help: one line for ``--help``.
        network: the network it trains, a key of ``privemo.removal.networks.NETWORKS`` ("baseline": no adversary).
        eraser: the eraser fitted on the trained network's h afterwards ("inlp" or "leace"), or None.
        strength: what the tuned ``grl_lambda`` value sets ("grl_lambda", "adversary_weight", "mmd_weight"), or None for
            a method without
            a tuned strength (one trial per architecture).
        cacheable: a network of this method may be reused between trials of one architecture (fresh weights, optimizer
            state reset): False for the networks that carry a second optimiser (the adversary heads') or fix their
            strength in the traced train step.
        packable: its training is one ordinary Keras step of ``build_model``'s network, so trials can be packed
            (``privemo.search.packing``).
        paper: the paper's method: its conditions keep the paper's keys, run settings and notes leave it unnamed, and
            without an adversary it is the baseline.
    """

    name: str
    help: str
    network: str
    eraser: str | None = None
    strength: str | None = None
    cacheable: bool = False
    packable: bool = False
    paper: bool = False

    def __post_init__(self):
        if self.eraser is not None and self.eraser not in ERASER_NAMES:
            raise invalid("eraser", f"one of {ERASER_NAMES} or None", self.eraser)

    @property
    def posthoc(self) -> bool:
        """Whether the attribute is erased from h after training (``erase_post_hoc``)."""
        return self.eraser is not None

    @property
    def fused_only(self) -> bool:
        """Whether it needs the fused placement (a post-hoc eraser works on the fused representation h)."""
        return self.posthoc

    @property
    def needs_adversary(self) -> bool:
        """Whether it needs an attribute to remove (every method but the paper's, which is the baseline without one)."""
        return not self.paper

    @property
    def lambda_tuned(self) -> bool:
        """Whether its strength is tuned over the grid's ``grl_lambda`` values."""
        return self.strength is not None

    @property
    def trains_adversary(self) -> bool:
        """Whether its network trains against the attribute (False for a post-hoc eraser of the baseline network, which
        trains on emotion alone, as the baseline does)."""
        return self.network != "baseline"


_POST_HOC_HELP = "emotion head refitted; fused placement only"

#: the registry: method name -> RemovalMethod, in the order the command line lists them
METHODS: dict[str, RemovalMethod] = {m.name: m for m in (
    RemovalMethod("grl", "the paper's gradient reversal layer trained jointly with its adversary, lambda tuned (default)",
                  "grl", strength="grl_lambda", cacheable=True, packable=True, paper=True),
    RemovalMethod("grl_dann", "the same with lambda ramped from 0 to the tuned value (DANN schedule)",
                  "grl_dann", strength="grl_lambda", cacheable=True),
    RemovalMethod("alternating", "alternating adversary / encoder updates with a confusion loss, no GRL; its weight "
                  "privemo.removal.ADVERSARY_WEIGHT x lambda, lambda tuned", "alternating", strength="adversary_weight"),
    RemovalMethod("ensemble", "alternating updates against an ensemble of 3 adversary heads, weight tuned as "
                  "alternating's", "ensemble", strength="adversary_weight"),
    RemovalMethod("inlp", "post hoc: iterative nullspace projection (linear) of the trained baseline network's h, "
                  + _POST_HOC_HELP, "baseline", eraser="inlp", cacheable=True),
    RemovalMethod("leace", "post hoc: LEACE, closed-form linear concept erasure (no linear classifier beats chance on the "
                  "training rows' erased h), on the trained baseline network's h, " + _POST_HOC_HELP,
                  "baseline", eraser="leace", cacheable=True),
    RemovalMethod("ensemble_leace", "ensemble's training, then LEACE post hoc on its h, " + _POST_HOC_HELP,
                  "ensemble", eraser="leace", strength="adversary_weight"),  # the first name of ensemble3_leace
    RemovalMethod("mmd", "class-conditional MMD between the attribute's groups' h within each emotion class (gender: "
                  "women against men; speaker: each speaker against the rest) added to the emotion loss with weight "
                  "privemo.removal.MMD_SCALE x lambda, lambda tuned", "mmd", strength="mmd_weight"),
    RemovalMethod("mmd_leace", "mmd's training (lambda tuned), then LEACE post hoc on its h, " + _POST_HOC_HELP,
                  "mmd", eraser="leace", strength="mmd_weight"),
    RemovalMethod("ensemble3_leace", "the same as ensemble_leace (3 adversary heads, then LEACE)",
                  "ensemble", eraser="leace", strength="adversary_weight"),
    RemovalMethod("gradient_erasure", "post hoc: non-linear erasure (privemo.removal.GradientSubspaceEraser): LEACE "
                  "where a linear probe reads the attribute, then the gradient subspaces of cross-fitted MLP and "
                  "RBF-SVM probes, until no probe (gradient-boosted trees included) beats chance, on the trained "
                  "baseline network's h, " + _POST_HOC_HELP, "baseline", eraser="gradient", cacheable=True),
)}
#: the method names, in the command line's order
REMOVALS: tuple[str, ...] = tuple(METHODS)
#: the default: the paper's gradient reversal
DEFAULT_REMOVAL: str = next(name for name, m in METHODS.items() if m.paper)
#: post-hoc methods: {removal: (the network trained first -- "baseline" (no adversary) or a method of REMOVALS -- and the
#: eraser fitted on its h afterwards: "inlp" or "leace")}
POST_HOC: dict[str, tuple[str, str]] = {name: (m.network, m.eraser) for name, m in METHODS.items() if m.posthoc}
#: methods with a strength, tuned over the paper's lambda grid as grl_lambda (the others declare no lambda)
LAMBDA_REMOVALS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if m.lambda_tuned)
#: methods whose networks a hypermodel's model cache may reuse between trials (``RemovalMethod.cacheable``)
CACHED_REMOVALS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if m.cacheable)
#: methods whose trials can be trained packed (``RemovalMethod.packable``)
PACKABLE_REMOVALS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if m.packable)


def removal_method(removal: str | RemovalMethod) -> RemovalMethod:
    """The registered method named ``removal`` (a ``RemovalMethod`` is returned as it is).

    Raises:
        ValueError: one line naming the registered methods, for a name that is not one of them.
    """
    if isinstance(removal, RemovalMethod):
        return removal
    method = METHODS.get(removal) if isinstance(removal, str) else None
    if method is None:
        raise invalid("removal", f"one of {REMOVALS}", removal)
    return method
