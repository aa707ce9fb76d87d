"""From a corpus table to what a network is fed: rating bins (``labels``), speaker-independent folds (``folds``) and
the padded, bucketed ``tf.data`` pipeline (``pipeline``)."""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("folds", "labels", "pipeline")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys((
        "Fold", "speaker_folds", "official_partition", "STRATEGIES", "STRATEGY_BY_CORPUS", "VALIDATION_FRACTION",
    ), "privemo.data.folds"),
    **dict.fromkeys((
        "bin_labels", "equal_frequency_thresholds", "RATING_SCALES", "DEFAULT_THRESHOLDS", "MID_BIN_FRACTION", "LOW",
        "MID", "HIGH",
    ), "privemo.data.labels"),
    **dict.fromkeys(("make_dataset", "predict", "pad_batch", "class_weights", "batch_order"), "privemo.data.pipeline"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
