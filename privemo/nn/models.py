"""The model factory: per-modality Conv1D + GRU encoders, fusion into the representation h, an emotion head and an optional
gender / speaker adversary behind a GradientReversal layer (Jaiswal & Mower Provost, AAAI 2020).

``build_model`` returns an **uncompiled** functional model; ``privemo.nn.training.compile_model`` compiles it (one sparse
categorical cross-entropy per head, summed; the GRL supplies the adversary's sign). The graph is made of small builders so
other training schemes can reuse the same encoder and heads:

- ``model_inputs(modalities, ...)`` -> dict of ``keras.Input`` named "acoustic" / "lexical";
- ``encode(inputs, ...)`` -> ``Encoding(h, branches)``: the branch vectors (layers "h_acoustic", "h_lexical") and their
  concatenation h (layer "h");
- ``classifier_head(x, n_classes, ...)`` / ``adversary_head(x, n_classes, grl_lambda, ...)`` -> softmax outputs;
- ``build_encoder(...)`` and ``build_head(...)`` wrap them as stand-alone ``keras.Model``s.

Layer names are fixed (``{modality}_conv{i}``, ``{modality}_gru{i}``, ``h_{modality}``, ``h``, ``{head}_dense{i}``,
``{head}_grl``, ``{head}``), so models can be inspected and sub-models cut by name (``representation_model``).

Padding: inputs are zero-padded at the end; the trailing all-zero frames are padding, everything up to the last frame with
any non-zero value is real (``FrameMask``: a right-padded mask, as cuDNN needs; an all-zero input keeps one frame). Conv1D uses
``padding="same"`` (length kept) and its padded frames are zeroed again (``ApplyMask``); every GRU gets the mask
explicitly. The output for an utterance therefore does not depend on how much padding follows it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple, Sequence

import keras

from privemo._util.validation import check_choice, check_int as _check_int, invalid
from privemo.nn.layers import ApplyMask, FrameMask, GradientReversal, PoolMask, check_lambda

MODALITIES = ("acoustic", "lexical")
ADVERSARIES = ("gender", "speaker")
PLACEMENTS = ("fused", "per_modality")
N_GENDERS = 2

# Sanity bounds for integer arguments (inclusive); far beyond the paper's grid, they catch typos and swapped arguments.
_INT_RANGES = {
    "n_classes": (2, 10_000),
    "n_speakers": (2, 100_000),
    "conv_layers": (1, 16),
    "conv_width": (1, 64),
    "conv_kernels": (1, 4096),
    "gru_layers": (1, 16),
    "gru_width": (1, 4096),
    "dense_layers": (0, 16),
    "dense_width": (1, 4096),
    "acoustic_dim": (1, 100_000),
    "lexical_dim": (1, 100_000),
    "acoustic_pool": (1, 16),
}

# assumption (README assumptions table): the paper does not state any temporal pooling. privemo max-pools the acoustic
# branch by ACOUSTIC_POOL after each convolution (100 frames/s -> 12.5 GRU steps/s with 3 conv layers), which makes the
# GRU 4-8x cheaper on a CPU; `acoustic_pool=1` gives the unpooled network. Word sequences are never pooled.
ACOUSTIC_POOL = 2

# assumption (README assumptions table): the paper does not state how a branch vector is read out of its GRU stack.
# "mean": the last GRU layer's outputs averaged over the real (unmasked) steps; "last": its final state. Measured on
# the demo (quick grid, 5 folds, test UAR): acoustic activation baseline mean 0.645 / last 0.600 (and fewer epochs);
# lexical valence baseline mean 0.441 / last 0.515 (a sentence's sentiment is read at its end).
GRU_READOUTS = ("mean", "last")
GRU_READOUT: dict[str, str] = {"acoustic": "mean", "lexical": "last"}


def check_int(name: str, value) -> int:
    """``value`` checked against the sanity bounds of the network argument ``name`` (``_INT_RANGES``)."""
    return _check_int(name, value, *_INT_RANGES[name])


def _check_modalities(modalities) -> tuple[str, ...]:
    """Validate ``modalities`` (a name or a sequence of names); returned in canonical order (acoustic, lexical)."""
    given = (modalities,) if isinstance(modalities, str) else modalities
    try:
        given = tuple(given)
    except TypeError:
        given = None
    if not given or any(m not in MODALITIES for m in given) or len(set(given)) != len(given):
        raise invalid("modalities", f"a non-empty sequence of distinct names from {MODALITIES}", modalities)
    return tuple(m for m in MODALITIES if m in given)


@dataclass(frozen=True)
class EncoderSettings:
    """The encoder's architecture, one place for its defaults and checks: per branch ``conv_layers`` x Conv1D
    (``conv_kernels`` filters of width ``conv_width``), then ``gru_layers`` x GRU(``gru_width``); the acoustic branch
    max-pooled by ``acoustic_pool`` after each convolution; the GRU stack read out by ``gru_readout`` (one readout for
    every branch, {modality: readout}, or None for ``GRU_READOUT``)."""

    conv_layers: int = 3
    conv_width: int = 2
    conv_kernels: int = 64
    gru_layers: int = 2
    gru_width: int = 32
    acoustic_pool: int = ACOUSTIC_POOL
    gru_readout: str | dict | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "gru_readout":
                object.__setattr__(self, f.name, check_int(f.name, getattr(self, f.name)))
        readouts = [self.gru_readout] if isinstance(self.gru_readout, str) else list((self.gru_readout or {}).values())
        for readout in readouts:
            check_choice("readout", readout, GRU_READOUTS)

    def readout(self, modality: str) -> str:
        if isinstance(self.gru_readout, str):
            return self.gru_readout
        return (self.gru_readout or {}).get(modality, GRU_READOUT[modality])

    def pool(self, modality: str) -> int:
        return self.acoustic_pool if modality == "acoustic" else 1  # word sequences are never pooled


class OutputSpec(NamedTuple):
    """One output of a privemo model: its name, the attribute it predicts (None: emotion) and the layer it reads."""

    name: str  # "emotion", "gender", "speaker", "gender_acoustic", ...
    attribute: str | None  # None, "gender" or "speaker"
    source: str  # "h", "h_acoustic" or "h_lexical"


def model_outputs(modalities=("acoustic",), adversary: str | None = None,
                  grl_placement: str = "fused") -> list[OutputSpec]:
    """The outputs a model built with these arguments has, in order: the emotion head on h, then the adversary heads
    (one on h when fused; one per branch vector, named "{adversary}_{modality}", per modality)."""
    outputs = [OutputSpec("emotion", None, "h")]
    if adversary is None:
        return outputs
    if grl_placement == "per_modality":
        return outputs + [OutputSpec(f"{adversary}_{m}", adversary, f"h_{m}") for m in _check_modalities(modalities)]
    return outputs + [OutputSpec(adversary, adversary, "h")]


def attribute_of(output: str) -> str | None:
    """The attribute an output name predicts ("gender_lexical" -> "gender"), or None for the emotion head."""
    attribute = output.split("_", 1)[0]
    return attribute if attribute in ADVERSARIES else None


class Encoding(NamedTuple):
    """The encoder's symbolic outputs: ``h`` (fused representation) and ``branches`` ({modality: branch vector})."""

    h: keras.KerasTensor
    branches: dict


def model_inputs(modalities=("acoustic",), *, acoustic_dim: int = 40, lexical_dim: int = 300) -> dict:
    """``keras.Input`` tensors (None, dim) named after the modalities: {"acoustic": ..., "lexical": ...}."""
    modalities = _check_modalities(modalities)
    dims = {"acoustic": check_int("acoustic_dim", acoustic_dim), "lexical": check_int("lexical_dim", lexical_dim)}
    return {m: keras.Input(shape=(None, dims[m]), name=m, dtype="float32") for m in modalities}


def encode_branch(x, modality: str, settings: EncoderSettings | None = None):
    """One modality's encoder (``settings``): Conv1D layers (ReLU, "same"), each followed by MaxPooling1D when the
    branch is pooled, then GRUs (cuDNN-compatible defaults), masked by the input's zero padding, read out as the mean of
    the last GRU's outputs over the real steps ("mean") or its final state ("last"). Returns the branch vector (layer
    ``h_{modality}``), shape (batch, gru_width)."""
    s = settings or EncoderSettings()
    pool_size, readout = s.pool(modality), s.readout(modality)
    mask = FrameMask(name=f"{modality}_mask")(x)
    for i in range(1, s.conv_layers + 1):
        x = keras.layers.Conv1D(
            s.conv_kernels, s.conv_width, padding="same", activation="relu", name=f"{modality}_conv{i}"
        )(x)
        x = ApplyMask(name=f"{modality}_conv{i}_masked")(x, mask)
        if pool_size > 1:
            x = keras.layers.MaxPooling1D(pool_size, padding="same", name=f"{modality}_pool{i}")(x)
            mask = PoolMask(pool_size, name=f"{modality}_pool{i}_mask")(mask)
    for i in range(1, s.gru_layers + 1):
        sequences = i < s.gru_layers or readout == "mean"
        x = keras.layers.GRU(s.gru_width, return_sequences=sequences, name=f"{modality}_gru{i}")(x, mask=mask)
    if readout == "mean":
        x = keras.layers.GlobalAveragePooling1D(name=f"{modality}_readout")(x, mask=mask)
    return keras.layers.Identity(name=f"h_{modality}")(x)


def encode(inputs: dict, settings: EncoderSettings | None = None) -> Encoding:
    """Encode every input of ``inputs`` (from ``model_inputs``) and fuse the branch vectors into h (layer "h")."""
    modalities = _check_modalities(tuple(inputs))
    branches = {m: encode_branch(inputs[m], m, settings) for m in modalities}
    if len(branches) == 1:
        h = keras.layers.Identity(name="h")(branches[modalities[0]])
    else:
        h = keras.layers.Concatenate(axis=-1, name="h")([branches[m] for m in modalities])
    return Encoding(h, branches)


def classifier_head(x, n_classes: int, *, dense_layers: int = 1, dense_width: int = 32, name: str = "emotion"):
    """``dense_layers`` x Dense(dense_width, ReLU) then Dense(n_classes, softmax) named ``name``."""
    n_classes = check_int("n_classes", n_classes)
    dense_layers = check_int("dense_layers", dense_layers)
    dense_width = check_int("dense_width", dense_width)
    for i in range(1, dense_layers + 1):
        x = keras.layers.Dense(dense_width, activation="relu", name=f"{name}_dense{i}")(x)
    # float32 softmax even under a mixed-precision policy (numerically safe probabilities and losses).
    return keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name=name)(x)


def head_layers(model: keras.Model, name: str = "emotion") -> list:
    """The layers of head ``name`` in ``model``, input to output (``{name}_dense{i}`` then ``{name}``, as
    ``classifier_head`` names them), e.g. to refit the head on a changed representation."""
    layers = []
    while True:
        try:
            layers.append(model.get_layer(f"{name}_dense{len(layers) + 1}"))
        except ValueError:
            return layers + [model.get_layer(name)]


def adversary_head(
    x, n_classes: int, *, grl_lambda: float = 1.0, dense_layers: int = 1, dense_width: int = 32, name: str = "gender"
):
    """A classifier head behind ``GradientReversal(grl_lambda)`` (layer ``{name}_grl``)."""
    x = GradientReversal(check_lambda(grl_lambda, "grl_lambda"), name=f"{name}_grl")(x)
    return classifier_head(x, n_classes, dense_layers=dense_layers, dense_width=dense_width, name=name)


def build_encoder(
    modalities=("acoustic",),
    settings: EncoderSettings | None = None,
    *,
    acoustic_dim: int = 40,
    lexical_dim: int = 300,
    name: str = "encoder",
) -> keras.Model:
    """Stand-alone encoder model: inputs -> {"h": h, "h_acoustic": ..., "h_lexical": ...} (the branches present)."""
    inputs = model_inputs(modalities, acoustic_dim=acoustic_dim, lexical_dim=lexical_dim)
    enc = encode(inputs, settings)
    outputs = {"h": enc.h, **{f"h_{m}": v for m, v in enc.branches.items()}}
    return keras.Model(inputs, outputs, name=name)


def build_head(
    input_dim: int,
    n_classes: int,
    *,
    dense_layers: int = 1,
    dense_width: int = 32,
    grl_lambda: float | None = None,
    name: str = "emotion",
) -> keras.Model:
    """Stand-alone head model on a (batch, input_dim) representation; behind a GRL when ``grl_lambda`` is given."""
    input_dim = _check_int("input_dim", input_dim, 1, expected="a positive integer")
    x = keras.Input(shape=(input_dim,), name=f"{name}_input")
    if grl_lambda is None:
        y = classifier_head(x, n_classes, dense_layers=dense_layers, dense_width=dense_width, name=name)
    else:
        y = adversary_head(
            x, n_classes, grl_lambda=grl_lambda, dense_layers=dense_layers, dense_width=dense_width, name=name
        )
    return keras.Model(x, y, name=f"{name}_head")


def adversary_output_names(modalities=("acoustic",), adversary=None, grl_placement: str = "fused") -> list[str]:
    """The adversary outputs a model built with these arguments has: [], ["gender"], or ["gender_acoustic", ...]."""
    return [o.name for o in model_outputs(modalities, adversary, grl_placement) if o.attribute]


def build_model(
    modalities: Sequence[str] | str = ("acoustic",),
    n_classes: int = 3,
    adversary: str | None = None,
    n_speakers: int | None = None,
    grl_lambda: float = 1.0,
    grl_placement: str = "fused",
    conv_layers: int = 3,
    conv_width: int = 2,
    conv_kernels: int = 64,
    gru_layers: int = 2,
    gru_width: int = 32,
    dense_layers: int = 1,
    dense_width: int = 32,
    acoustic_dim: int = 40,
    lexical_dim: int = 300,
    acoustic_pool: int = ACOUSTIC_POOL,
    gru_readout: str | dict[str, str] | None = None,
) -> keras.Model:
    """Build the (uncompiled) emotion network with an optional privacy adversary.

    Args:
        modalities: "acoustic", "lexical" or both; inputs are named after them, shapes (None, acoustic_dim) and
            (None, lexical_dim), zero-padded at the end.
        n_classes: Emotion classes (3 bins: low / mid / high).
        adversary: None (baseline: no adversary output), "gender" (2 classes) or "speaker" (``n_speakers`` classes).
        n_speakers: Number of training speakers; required when ``adversary="speaker"``, ignored otherwise.
        grl_lambda: Float >= 0, the GradientReversal strength in front of each adversary head.
        grl_placement: "fused" (one adversary on h) or "per_modality" (one on each branch vector; needs both modalities).
        conv_layers, conv_width, conv_kernels: Conv1D layers per branch, kernel width, filters.
        gru_layers, gru_width: GRU layers per branch and their units.
        dense_layers, dense_width: hidden Dense layers of every head and their units.
        acoustic_dim, lexical_dim: frame / word-vector sizes.
        acoustic_pool: max-pooling factor after each acoustic convolution (an assumption, see ``ACOUSTIC_POOL``; 1 = none).
        gru_readout: "mean" (the last GRU's outputs averaged over real steps) or "last" (its final state), for every
            branch or as {modality: readout}; None: ``GRU_READOUT`` (an assumption: mean for acoustic, last for
            lexical).

    Returns:
        An uncompiled ``keras.Model`` with dict inputs and dict outputs: "emotion" and, with an adversary, "gender" /
        "speaker" (fused) or "gender_acoustic", "gender_lexical" (resp. "speaker_...") (per modality). Compile it with
        ``privemo.nn.training.compile_model``.
    """
    modalities = _check_modalities(modalities)
    n_attr = _attribute_classes(modalities, adversary, n_speakers, grl_placement)
    grl_lambda = check_lambda(grl_lambda, "grl_lambda")
    head_kwargs = dict(
        dense_layers=check_int("dense_layers", dense_layers), dense_width=check_int("dense_width", dense_width)
    )
    n_classes = check_int("n_classes", n_classes)

    settings = EncoderSettings(conv_layers, conv_width, conv_kernels, gru_layers, gru_width, acoustic_pool, gru_readout)
    inputs = model_inputs(modalities, acoustic_dim=acoustic_dim, lexical_dim=lexical_dim)
    enc = encode(inputs, settings)
    layers = {"h": enc.h, **{f"h_{m}": v for m, v in enc.branches.items()}}
    outputs = {}
    for out in model_outputs(modalities, adversary, grl_placement):
        if out.attribute is None:
            outputs[out.name] = classifier_head(layers[out.source], n_classes, name=out.name, **head_kwargs)
        else:
            outputs[out.name] = adversary_head(layers[out.source], n_attr, grl_lambda=grl_lambda, name=out.name,
                                               **head_kwargs)
    model_name = "privemo_" + "_".join(modalities) + (f"_{adversary}" if adversary else "")
    return keras.Model(inputs, outputs, name=model_name)


def _attribute_classes(modalities: tuple[str, ...], adversary: str | None, n_speakers: int | None,
                       grl_placement: str) -> int:
    """The adversary's class count (2 genders, or the training speakers), after checking the adversary arguments."""
    if adversary is not None and adversary not in ADVERSARIES:
        raise invalid("adversary", f"None or one of {ADVERSARIES}", adversary)
    check_choice("grl_placement", grl_placement, PLACEMENTS)
    if adversary is not None and grl_placement == "per_modality" and len(modalities) < 2:
        raise invalid("grl_placement", f"'fused' when only one modality is used ('per_modality' needs both "
                      f"{MODALITIES})", received=f"grl_placement='per_modality' with modalities={modalities!r}")
    if adversary != "speaker":
        return N_GENDERS
    if n_speakers is None:
        raise invalid("n_speakers", "the number of training speakers (an integer between 2 and 100000) when "
                      "adversary='speaker'", None)
    return check_int("n_speakers", n_speakers)


def representation_model(model: keras.Model, layer: str = "h") -> keras.Model:
    """The sub-model from ``model``'s inputs to the output of layer ``layer`` (default the representation h; use
    "h_acoustic" / "h_lexical" for a branch vector). Shares weights with ``model``."""
    try:
        target = model.get_layer(layer)
    except ValueError:
        raise ValueError(
            f"Invalid value received for argument `layer`. Expected the name of a layer of model '{model.name}' "
            f"(a privemo model has 'h', 'h_acoustic' and/or 'h_lexical'). Received: layer={layer!r}"
        ) from None
    return keras.Model(model.input, target.output, name=f"{model.name}_{layer}")


def output_names(model: keras.Model) -> list[str]:
    """The names of a model's outputs (the keys of its dict output, else its output layers' names)."""
    out = model.output
    if isinstance(out, dict):
        return list(out)
    tensors = out if isinstance(out, (list, tuple)) else [out]
    return [t._keras_history.operation.name for t in tensors]
