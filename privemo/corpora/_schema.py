"""The corpus table's schema and what every loader (the demo included) relies on: the columns, errors, bad-row reporting
and wav checks."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from .._util.validation import UserError

# Columns every loader returns, in this order (design.md). Loaders may append corpus-specific columns after these.
COLUMNS: tuple[str, ...] = (
    "utterance_id",
    "speaker",
    "gender",
    "session",
    "wav_path",
    "transcript",
    "activation",
    "valence",
)

SAMPLE_RATE = 16000


class CorpusFormatError(UserError):
    """A corpus on disk does not have the layout or content a loader expects.

    The message names the file (and line, where there is one) and what was expected.
    """


class SkippedRowsWarning(UserWarning):
    """Some rows of a corpus were skipped; the message counts and names them."""


def where(path: os.PathLike | str, line: int | None = None) -> str:
    """``path`` or ``path:line`` for error messages."""
    return f"{path}:{line}" if line is not None else str(path)


class BadRows:
    """Collects isolated bad rows; ``report`` warns once with a count and examples, or raises under ``strict``."""

    def __init__(self, corpus: str, strict: bool = False) -> None:
        self.corpus = corpus
        self.strict = strict
        self.items: list[str] = []

    def add(self, message: str) -> None:
        if self.strict:
            raise CorpusFormatError(f"{self.corpus}: {message} (strict=True)")
        self.items.append(message)

    def __len__(self) -> int:
        return len(self.items)

    def report(self) -> None:
        if not self.items:
            return
        shown = "; ".join(self.items[:5])
        more = f"; ... and {len(self.items) - 5} more" if len(self.items) > 5 else ""
        warnings.warn(
            f"{self.corpus}: skipped {len(self.items)} utterance(s): {shown}{more}. Pass strict=True to make this an error.",
            SkippedRowsWarning,
            stacklevel=3,
        )


def check_wav(path: Path, sample_rate: int = SAMPLE_RATE) -> str | None:
    """Return None if ``path`` is a readable, non-empty wav at ``sample_rate``; else a one-line reason naming the file."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        return f"{path}: wav file missing"
    if path.stat().st_size == 0:
        return f"{path}: wav file is empty (0 bytes)"
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt headers
        return f"{path}: unreadable audio ({exc.__class__.__name__}: {str(exc).strip()[:120]})"
    if info.frames == 0:
        return f"{path}: wav file has no samples"
    if sample_rate is not None and info.samplerate != sample_rate:
        return f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz"
    return None


def finalize(rows: list[dict], corpus: str) -> pd.DataFrame:
    """Build the utterance table from row dicts: schema order, sorted by utterance id, unique ids enforced."""
    table = pd.DataFrame(rows)
    if table.empty:
        raise CorpusFormatError(f"{corpus}: no utterance with both audio and ratings was found")
    extra = [c for c in table.columns if c not in COLUMNS]
    table = table[list(COLUMNS) + extra]
    dup = table["utterance_id"][table["utterance_id"].duplicated()]
    if len(dup):
        raise CorpusFormatError(f"{corpus}: duplicate utterance ids, e.g. {list(dup[:3])}")
    table = table.sort_values("utterance_id", kind="stable").reset_index(drop=True)
    table["activation"] = table["activation"].astype(float)
    table["valence"] = table["valence"].astype(float)
    table.attrs["corpus"] = corpus
    return table
