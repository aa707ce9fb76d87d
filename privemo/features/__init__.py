"""Features: acoustic log Mel filterbanks (cached, parallel) and lexical word-vector sequences.

``logmel.log_mfb`` (one waveform) / ``acoustic.extract_acoustic`` (a corpus) -> ``AcousticFeatures``; ``lexical.tokenize``,
``lexical.load_embeddings``, ``lexical.train_word2vec``, ``lexical.embed``; ``cache`` holds the on-disk store.
"""

from __future__ import annotations

from .acoustic import AcousticFeatures, NormalizedFeatures, extract_acoustic
from .logmel import MAX_FRAMES, frame_count, log_mfb
from .lexical import MAX_TOKENS, OOVReport, embed, load_embeddings, tokenize, train_word2vec

__all__ = [
    "MAX_FRAMES",
    "MAX_TOKENS",
    "AcousticFeatures",
    "NormalizedFeatures",
    "OOVReport",
    "embed",
    "extract_acoustic",
    "frame_count",
    "load_embeddings",
    "log_mfb",
    "tokenize",
    "train_word2vec",
]
