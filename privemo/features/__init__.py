"""Features: acoustic log Mel filterbanks (cached, parallel) and lexical word-vector sequences.

``logmel.log_mfb`` (one waveform) / ``acoustic.extract_acoustic`` (a corpus) -> ``AcousticFeatures``; ``lexical.tokenize``,
``lexical.load_embeddings``, ``lexical.train_word2vec``, ``lexical.embed``; ``cache`` holds the on-disk store.
"""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("acoustic", "cache", "lexical", "logmel", "normalization")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("AcousticFeatures", "extract_acoustic"), "privemo.features.acoustic"),
    **dict.fromkeys(("NormalizedFeatures",), "privemo.features.normalization"),
    **dict.fromkeys(("MAX_FRAMES", "frame_count", "log_mfb"), "privemo.features.logmel"),
    **dict.fromkeys(("MAX_TOKENS", "OOVReport", "embed", "load_embeddings", "tokenize", "train_word2vec"),
                    "privemo.features.lexical"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
