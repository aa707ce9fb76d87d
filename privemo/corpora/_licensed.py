"""Steps the four licensed-corpus loaders share: finding files, checking wavs, parsing ratings, building the table.

Kept separate from ``_schema`` (the schema and error types every loader, the demo included, relies on) so that the
loader-specific plumbing stays private to the loaders that use it.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd

from ._schema import SAMPLE_RATE, BadRows, CorpusFormatError, check_wav, finalize, where

log = logging.getLogger("privemo.corpora")

# Columns that may hold "unknown": returned as object dtype with None (pandas >= 3 would otherwise store NaN in a str column).
OPTIONAL_TEXT_COLUMNS: tuple[str, ...] = ("speaker", "gender", "transcript")


def resolve_root(root: str | os.PathLike, corpus: str) -> Path:
    """The corpus folder as an absolute Path; a CorpusFormatError if it is not an existing folder."""
    if root is None:
        raise CorpusFormatError(f"{corpus}: no corpus folder given; pass root= the folder holding your copy of the corpus")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise CorpusFormatError(f"{corpus}: corpus folder not found: {path}")
    return path.resolve()


def is_junk(name: str) -> bool:
    """macOS resource forks (``._x``) and other hidden files, which copies of the corpora often carry."""
    return name.startswith(".")


def index_files(folder: Path, suffix: str, corpus: str, prefix: str = "") -> dict[str, Path]:
    """Map file stem -> path for every ``prefix*suffix`` file below ``folder`` (recursively, hidden files skipped).

    When one stem occurs in several places (a corpus unpacked twice, say), the first path in sorted order is used and a
    warning names how many stems were ambiguous, so the choice is never silent.
    """
    found: dict[str, Path] = {}
    duplicates: list[str] = []
    suffix = suffix.lower()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d))
        for name in sorted(filenames):
            if is_junk(name) or not name.lower().endswith(suffix) or not name.startswith(prefix):
                continue
            stem = name[: -len(suffix)]
            path = Path(dirpath, name)
            if stem in found:
                duplicates.append(f"{found[stem]} and {path}")
                continue
            found[stem] = path
    if duplicates:
        warnings.warn(
            f"{corpus}: {len(duplicates)} {suffix} file name(s) occur more than once under {folder}, using the first of "
            f"each: {'; '.join(duplicates[:3])}",
            UserWarning,
            stacklevel=3,
        )
    return found


def usable_wav(
    path: Path | None, expected: str | os.PathLike, bad: BadRows, *, check_audio: bool, sample_rate: int | None
) -> bool:
    """True if the wav of a labelled utterance can be used; otherwise record why in ``bad`` and return False.

    Args:
        path: the wav found on disk for the utterance, or None when none was found.
        expected: where the wav was looked for (named in the message when it is missing).
        bad: the loader's BadRows (raises at once under ``strict=True``).
        check_audio: open the header of each wav (empty, unreadable, sample rate); False only checks that it exists.
        sample_rate: the rate every wav must have, or None to accept any rate.
    """
    if path is None or not Path(path).is_file():
        bad.add(f"{expected}: wav file missing")
        return False
    if check_audio:
        reason = check_wav(path, sample_rate=sample_rate)
        if reason is not None:
            bad.add(reason)
            return False
    return True


def read_text(path: Path) -> str:
    """A text file's content, as UTF-8 if it decodes, else Latin-1 (some corpus files are not UTF-8)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_transcript(path: Path | None) -> str | None:
    """The whitespace-normalised text of a one-utterance transcript file, or None when there is no file."""
    if path is None:
        return None
    return " ".join(read_text(path).split())


def to_float(text: str | None) -> float:
    """A rating as float; NaN when empty / "NaN" (no rating); ValueError("not a number: ...") otherwise."""
    text = "" if text is None else str(text).strip()
    if text == "" or text.lower() in ("nan", "na", "n/a"):
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if math.isinf(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def parse_rating(text: str | None, corpus: str, path: Path, line: int | None, what: str) -> float:
    """``to_float`` whose error is a CorpusFormatError naming file:line and the rating."""
    try:
        return to_float(text)
    except ValueError as exc:
        raise CorpusFormatError(f"{corpus}: {where(path, line)}: {what} is {exc}") from None


_GENDERS = {"f": "F", "female": "F", "w": "F", "woman": "F", "m": "M", "male": "M", "man": "M"}
_UNKNOWN = {"", "unknown", "nan", "none", "na", "n/a", "?"}


def parse_gender(value: str | None, corpus: str, path: Path, line: int | None) -> str | None:
    """'F' / 'M' from F, M, Female, Male (any case); None for Unknown / empty; CorpusFormatError otherwise."""
    text = "" if value is None else str(value).strip().lower()
    if text in _UNKNOWN:
        return None
    if text in _GENDERS:
        return _GENDERS[text]
    raise CorpusFormatError(
        f"{corpus}: {where(path, line)}: unknown gender {value!r}; expected F, M, Female, Male or Unknown"
    )


def finish(rows: list[dict], bad: BadRows, corpus: str, **attrs) -> pd.DataFrame:
    """Warn about skipped rows, build the table (``finalize``) and attach counts as ``table.attrs``.

    Also sets ``attrs["skipped"]`` (rows skipped for bad audio) and ``attrs["missing_transcripts"]`` (rows whose
    transcript is None), and warns when one speaker is labelled with both genders.
    """
    if not rows and len(bad):
        hint = ""
        if any("sample rate" in item for item in bad.items):
            hint = (
                f" Resample the corpus to {SAMPLE_RATE} Hz, or pass sample_rate=None to accept the rate as stored"
                " (the acoustic features must then resample)."
            )
        raise CorpusFormatError(
            f"{corpus}: no usable utterance: all {len(bad)} labelled utterance(s) were skipped, e.g. {bad.items[0]}.{hint}"
        )
    bad.report()
    table = finalize(rows, corpus)
    for column in OPTIONAL_TEXT_COLUMNS:
        values = table[column].astype(object)
        table[column] = values.where(values.notna(), None)
    _warn_mixed_genders(table, corpus)
    table.attrs.update(attrs)
    table.attrs["skipped"] = len(bad)
    table.attrs["missing_transcripts"] = int(table["transcript"].isna().sum())
    return table


def _warn_mixed_genders(table: pd.DataFrame, corpus: str) -> None:
    known = table.dropna(subset=["speaker", "gender"])
    counts = known.groupby("speaker")["gender"].nunique()
    mixed = sorted(counts[counts > 1].index)
    if mixed:
        examples = {s: dict(Counter(known.loc[known.speaker == s, "gender"])) for s in mixed[:3]}
        warnings.warn(
            f"{corpus}: {len(mixed)} speaker(s) are labelled with both genders, e.g. {examples}; gender targets for them "
            "are inconsistent.",
            UserWarning,
            stacklevel=3,
        )
