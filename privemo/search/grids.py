"""The main network's search grids: the paper's (Jaiswal & Mower Provost, AAAI 2020, Experimental Setup) and the quick
run's subset of it.

Defined once here and imported everywhere else; do not copy these values. The attacker's grids are
``privemo.privacy.grids``.
"""

from __future__ import annotations

from math import prod

# Main network grid, exactly as stated in the paper.
PAPER_GRID: dict[str, tuple] = {
    "conv_layers": (3, 4),
    "conv_width": (2, 3),
    "conv_kernels": (32, 64, 128),
    "gru_layers": (2, 3),
    "gru_width": (32,),
    "dense_layers": (1, 2),
    "dense_width": (32, 64),
    "grl_lambda": (0.3, 0.5, 0.75, 1.0),
}

# A documented subset of PAPER_GRID for the quick default run (README assumptions table, `--grid quick`):
# one value per architecture axis, chosen as the smaller network, so that five folds of every modality, task and
# adversary finish within minutes on 2 CPU cores. Lambda is tuned on validation over all four of the paper's values,
# as in the full grid: the selected lambda per fold is in the tables, the trials draw the lambda trade-off.
QUICK_GRID: dict[str, tuple] = {
    "conv_layers": (3,),
    "conv_width": (3,),
    "conv_kernels": (32,),
    "gru_layers": (2,),
    "gru_width": (32,),
    "dense_layers": (1,),
    "dense_width": (32,),
    "grl_lambda": PAPER_GRID["grl_lambda"],
}

GRIDS: dict[str, dict[str, tuple]] = {"paper": PAPER_GRID, "quick": QUICK_GRID}


def grid_size(grid: dict[str, tuple], adversary: bool) -> int:
    """Number of configurations in ``grid``; the lambda axis only counts when an adversary is trained."""
    return prod(len(v) for k, v in grid.items() if adversary or k != "grl_lambda")
