"""Corpus loaders: each returns one utterance table (see ``COLUMNS``) from a corpus's real on-disk layout.

``load_corpus(name, root)`` (``loading``) picks the reader: ``iemocap``, ``msp_improv``, ``msp_podcast``, ``muse`` (the
licensed corpora) or the two synthesised demo corpora (``demo``, ``demo_podcast``, made on first use with eSpeak NG).
"""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("demo", "demo_podcast", "iemocap", "loading", "msp_improv", "msp_podcast", "muse")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("load_corpus", "CORPORA", "SYNTHESISED"), "privemo.corpora.loading"),
    **dict.fromkeys(("COLUMNS", "CorpusFormatError", "SkippedRowsWarning"), "privemo.corpora._schema"),
}

__all__ = ["load_corpus", "CORPORA", "COLUMNS", "CorpusFormatError", "SkippedRowsWarning"]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
