"""The cost model's step costs and how they are fitted: ``StepCost`` (seconds per training step and per forward pass as
a line in the padded duration), the network shapes of a grid and what a step's cost grows with (``shape_features``),
and ``Calibration``, the measured costs of one device with the fits that price an unmeasured shape or pack size.
``privemo.experiment.cost_calibration`` reads and writes them and re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Mapping, Sequence

import numpy as np

from privemo.experiment.config import MODALITY_SETS

SHAPE_KEYS = ("conv_layers", "conv_width", "conv_kernels", "gru_layers", "gru_width", "dense_layers", "dense_width")
FRAMES_PER_S = 100  # acoustic frames per second of speech (10 ms hop, privemo.features.acoustic)
# assumption (README assumptions table, cost model): words per second of speech for pricing lexical inputs by duration
# (conversational English runs at 2-3 words/s).
WORDS_PER_S = 2.5


# ---------------------------------------------------------------------------------------------------------- step costs
@dataclass(frozen=True)
class StepCost:
    """Seconds per training step (batch of 32) and per validation forward pass (batch of 64) at padded duration D:
    ``fixed + per_s * D``; ``trace_s``: tracing a new network's training step; ``probe_fit_s``: one probe fit."""

    train_fixed_s: float
    train_per_s: float
    predict_fixed_s: float
    predict_per_s: float
    trace_s: float = 0.0
    probe_fit_s: float = 0.0

    def train(self, duration_s) -> np.ndarray:
        return self.train_fixed_s + self.train_per_s * np.asarray(duration_s, np.float64)

    def predict(self, duration_s) -> np.ndarray:
        return self.predict_fixed_s + self.predict_per_s * np.asarray(duration_s, np.float64)


def shape_of(values: Mapping) -> tuple[int, ...]:
    """The network shape (``SHAPE_KEYS`` in order) of a grid configuration or a calibration row, with
    ``build_model``'s defaults for keys it lacks."""
    from privemo.nn.models import build_model
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(build_model).parameters.items()}
    return tuple(int(values.get(k, defaults[k])) for k in SHAPE_KEYS)


def grid_shapes(grid: Mapping[str, Sequence]) -> list[tuple[int, ...]]:
    """Every distinct network shape of a grid (lambda is not a shape), in grid order."""
    keys = [k for k in SHAPE_KEYS if k in grid]
    shapes = []
    for combo in product(*(tuple(grid[k]) for k in keys)):
        shape = shape_of(dict(zip(keys, combo)))
        if shape not in shapes:
            shapes.append(shape)
    return shapes


def shape_features(shape: Sequence[int], modality: str) -> np.ndarray:
    """[1, GRU steps per second of speech, million multiply-accumulates per second of speech] of one forward pass:
    what a step's length-dependent cost grows with (a GRU step is a sequential op; convolutions and GRU matrices are
    arithmetic). Acoustic frames are max-pooled by ``ACOUSTIC_POOL`` after each convolution."""
    from privemo.nn.models import ACOUSTIC_POOL

    conv_layers, conv_width, kernels, gru_layers, gru_width = (int(v) for v in shape[:5])
    steps = macs = 0.0
    for modality_name in MODALITY_SETS[modality]:
        rate, width = (FRAMES_PER_S, 40) if modality_name == "acoustic" else (WORDS_PER_S, 300)
        pool = ACOUSTIC_POOL if modality_name == "acoustic" else 1
        for _ in range(conv_layers):
            macs += rate * conv_width * width * kernels
            width, rate = kernels, rate / pool
        for _ in range(gru_layers):
            macs += rate * 3 * (width * gru_width + gru_width * gru_width)
            steps += rate
            width = gru_width
    return np.array([1.0, steps, macs / 1e6])


def _fit_coefficients(rows: Sequence[tuple[tuple[int, ...], StepCost]], modality: str):
    """Least-squares fits of each length-dependent coefficient on ``shape_features`` (non-negative), and the mean of
    the others, from measured (shape, StepCost) rows."""
    features = np.array([shape_features(shape, modality) for shape, _ in rows])
    fits = {}
    for name in ("train_fixed_s", "train_per_s", "predict_fixed_s", "predict_per_s", "trace_s"):
        y = np.array([getattr(cost, name) for _, cost in rows])
        if name.endswith("per_s") and len(rows) >= 3:
            coef, *_ = np.linalg.lstsq(features, y, rcond=None)
            fits[name] = coef
        elif name.endswith("per_s"):  # too few shapes: proportional to the arithmetic
            scale = float(np.mean(y / np.maximum(features[:, 2], 1e-9)))
            fits[name] = np.array([0.0, 0.0, scale])
        else:
            fits[name] = float(np.mean(y))
    fits["probe_fit_s"] = float(np.mean([cost.probe_fit_s for _, cost in rows]))
    return fits


@dataclass
class Calibration:
    """Measured step costs of one device: {(modality, shape, pack): StepCost}, and where they came from."""

    device: str
    threads: int
    costs: dict = field(default_factory=dict)
    source: str = ""

    def cost(self, modality: str, shape: Sequence[int], pack: int = 1) -> StepCost:
        """The measured cost of (modality, shape, pack); otherwise the shape's one-member cost (measured, or fitted on
        the measured shapes of this modality, ``_fit_coefficients``) times the packing factors (``pack_factors``)."""
        shape, pack = tuple(int(v) for v in shape), int(pack)
        if (modality, shape, pack) in self.costs:
            return self.costs[(modality, shape, pack)]
        base = self._single(modality, shape)
        if pack == 1:
            return base
        train, predict, trace = self.pack_factors(modality, pack)
        return StepCost(base.train_fixed_s * train, base.train_per_s * train, base.predict_fixed_s * predict,
                        base.predict_per_s * predict, base.trace_s * trace, base.probe_fit_s)

    def _single(self, modality: str, shape: tuple) -> StepCost:
        if (modality, shape, 1) in self.costs:
            return self.costs[(modality, shape, 1)]
        rows = [(s, c) for (m, s, p), c in self.costs.items() if m == modality and p == 1]
        if not rows:
            others = sorted({m for m, _, p in self.costs if p == 1})
            if not others:
                raise ValueError(f"the calibration ({self.source}) holds no one-member measurement")
            # another modality set measured: price this one by the ratio of their arithmetic
            cost = self._single(others[0], shape)
            ratio = shape_features(shape, modality)[2] / max(shape_features(shape, others[0])[2], 1e-9)
            return StepCost(cost.train_fixed_s, cost.train_per_s * ratio, cost.predict_fixed_s,
                            cost.predict_per_s * ratio, cost.trace_s, cost.probe_fit_s)
        fits = _fit_coefficients(rows, modality)
        features = shape_features(shape, modality)
        return StepCost(fits["train_fixed_s"], max(0.0, float(features @ fits["train_per_s"])),
                        fits["predict_fixed_s"], max(0.0, float(features @ fits["predict_per_s"])),
                        fits["trace_s"], fits["probe_fit_s"])

    def pack_factors(self, modality: str, pack: int) -> tuple[float, float, float]:
        """How much a step of ``pack`` packed members costs relative to one member's (training step at 3 s, forward
        pass at 3 s, trace): the mean over the shapes measured both ways, interpolated linearly in K between measured
        pack sizes (K = 1: 1), beyond the largest proportionally; no packed measurement at all: K (no gain)."""
        points = {1: (1.0, 1.0, 1.0)}
        for k in sorted({p for m, _, p in self.costs if p > 1}):
            pairs = [(self.costs[(m, s, k)], self.costs[(m, s, 1)]) for (m, s, p) in self.costs
                     if p == k and (m, s, 1) in self.costs and (m == modality or not any(
                         mm == modality and pp == k for mm, _, pp in self.costs))]
            if pairs:
                points[k] = tuple(float(np.mean(values)) for values in zip(*(
                    (float(packed.train(3.0) / max(one.train(3.0), 1e-12)),
                     float(packed.predict(3.0) / max(one.predict(3.0), 1e-12)),
                     packed.trace_s / max(one.trace_s, 1e-12)) for packed, one in pairs)))
        ks = sorted(points)
        if pack > ks[-1]:
            return tuple(f * pack / ks[-1] for f in points[ks[-1]])
        return tuple(float(np.interp(pack, ks, [points[k][j] for k in ks])) for j in range(3))
