"""Synthetic representations for the attack tests (tests/test_attackers.py, test_attribute.py)."""

from __future__ import annotations

import numpy as np

SMALL_GRID = {"dense_layers": (2,), "dense_width": (16,)}
FAST = {"epochs": 15, "patience": 4, "batch_size": 16}


def planted(n, d=16, shift=2.5, seed=0, labels=("F", "M")):
    """Representations whose first 3 dimensions carry the binary attribute as a mean shift."""
    rng = np.random.default_rng(seed)
    y = np.array([labels[i % 2] for i in range(n)])
    h = rng.normal(size=(n, d)).astype(np.float32)
    h[y == labels[1], :3] += shift
    return h, y


def noise(n, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, 2, n)
