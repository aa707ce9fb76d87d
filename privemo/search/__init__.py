"""Hyper-parameter search: the paper"s and the quick grids, the keras-tuner HyperModel, oracle and tuner, and the
selection rule that scores a trial."""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("factory", "grids", "hypermodel", "oracle", "packed_tuner", "packing", "selection", "tuning")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("PAPER_GRID", "QUICK_GRID", "GRIDS", "grid_size"), "privemo.search.grids"),
    **dict.fromkeys(("EmotionPrivacyHyperModel", "TrialScores"), "privemo.search.hypermodel"),
    **dict.fromkeys(("GridSearchOracle", "ConcurrentGridSearchOracle"), "privemo.search.oracle"),
    **dict.fromkeys((
        "GridSearch", "ConcurrentGridSearch", "TrialWriteError", "search_space_size", "trial_history",
    ), "privemo.search.tuning"),
    **dict.fromkeys(("PackedGridSearch", "PackedGridSearchOracle"), "privemo.search.packed_tuner"),
    **dict.fromkeys(("make_tuner",), "privemo.search.factory"),
    **dict.fromkeys(("PrivacyProbe", "select_trial"), "privemo.search.selection"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
