"""``load_corpus``: one utterance table (see ``privemo.corpora.COLUMNS``) from a corpus's real on-disk layout, by name."""

from __future__ import annotations

import os
from typing import Callable

import pandas as pd

CORPORA: tuple[str, ...] = ("iemocap", "msp-improv", "msp-podcast", "muse", "demo", "demo-podcast")
# synthesised by privemo on first use: `root` is optional
SYNTHESISED: tuple[str, ...] = ("demo", "demo-podcast")


def _loader(name: str) -> Callable[..., pd.DataFrame]:
    if name == "iemocap":
        from .iemocap import load_iemocap
        return load_iemocap
    if name == "msp-improv":
        from .msp_improv import load_msp_improv
        return load_msp_improv
    if name == "msp-podcast":
        from .msp_podcast import load_msp_podcast
        return load_msp_podcast
    if name == "muse":
        from .muse import load_muse
        return load_muse
    if name == "demo-podcast":
        from .demo_podcast import load_demo_podcast
        return load_demo_podcast
    from .demo import load_demo
    return load_demo


def load_corpus(name: str, root: str | os.PathLike | None = None, **options) -> pd.DataFrame:
    """Load a corpus as a table with one row per utterance that has audio and ratings.

    Args:
        name: one of ``CORPORA`` ("iemocap", "msp-improv", "msp-podcast", "muse", "demo", "demo-podcast").
        root: the corpus folder as the user received it; ``None`` only for "demo" and "demo-podcast" (synthesised on
            first use, into the user cache folder or ``$PRIVEMO_DATA``).
        **options: loader options, e.g. ``strict=True`` to turn skipped-row warnings into errors.

    Returns:
        pandas.DataFrame with columns ``COLUMNS`` (utterance_id, speaker, gender, session, wav_path, transcript,
        activation, valence) plus corpus-specific extras; ``table.attrs["corpus"]`` names the corpus.
    """
    key = str(name).lower().replace("_", "-")
    if key not in CORPORA:
        raise ValueError(f"Invalid value received for argument `name`. Expected one of {list(CORPORA)}. Received: name={name!r}")
    if key not in SYNTHESISED and root is None:
        raise ValueError(f"load_corpus({key!r}) needs `root`: the folder holding your licensed copy of the corpus.")
    loader = _loader(key)
    return loader(**options) if key in SYNTHESISED and root is None else loader(root, **options)


__all__ = ["load_corpus", "CORPORA", "SYNTHESISED"]
