"""The attacker's search grid the paper states (Jaiswal & Mower Provost, AAAI 2020, Experimental Setup), and the quick
run's subset of it.

Defined once here and imported everywhere else; do not copy these values. The main network's grids are
``privemo.search.grids``; ``ATTACKER_GRIDS`` has one entry per name of ``privemo.search.grids.GRIDS``.
"""

from __future__ import annotations

# Attacker grid (dense layers x width), exactly as stated in the paper.
ATTACKER_GRID: dict[str, tuple] = {
    "dense_layers": (2, 3, 4),
    "dense_width": (32, 64),
}

# The attacker grid that goes with each main grid. The quick run keeps one point of the paper's attacker grid (the
# smallest); its logistic-regression and RBF-SVM attackers still run (README assumptions table).
QUICK_ATTACKER_GRID: dict[str, tuple] = {"dense_layers": (2,), "dense_width": (32,)}
ATTACKER_GRIDS: dict[str, dict[str, tuple]] = {"paper": ATTACKER_GRID, "quick": QUICK_ATTACKER_GRID}

__all__ = ["ATTACKER_GRID", "ATTACKER_GRIDS", "QUICK_ATTACKER_GRID"]
