"""What the audit reads: a table of representations h with speaker, gender and optional emotion labels and split.

A features file has one row per utterance: ``h`` (a 2-D array in ``.npz``, a list column in ``.parquet``) or columns
``h0``, ``h1``, ... (any format), ``speaker``, ``gender``, optionally ``activation`` / ``valence`` (emotion class
labels, e.g. ``privemo.bin_labels`` of the ratings), ``split`` (``train`` / ``validation`` / ``test``) and
``utterance_id`` (used to pair two files in ``--compare``). Reading never executes code: ``.npz`` files are opened
with ``allow_pickle=False``, so a file holding Python objects is refused, not unpickled.

Every problem is one `privemo._util.validation.UserError` naming the file, the column and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from privemo._util.validation import UserError

__all__ = ["Representation", "read_features", "representation_from_arrays", "representation_from_frame", "write_features", "EMOTION_COLUMNS",
           "SPLITS", "FORMATS"]

EMOTION_COLUMNS: tuple[str, ...] = ("activation", "valence")
SPLITS: dict[str, str] = {"train": "train", "training": "train", "validation": "validation", "val": "validation",
                          "valid": "validation", "dev": "validation", "development": "validation", "test": "test"}
FORMATS: tuple[str, ...] = (".npz", ".parquet", ".csv")
# speaker values privemo.data.folds reads as "unknown speaker" (such rows can be in no speaker-disjoint fold)
_UNKNOWN_SPEAKERS = {"", "unknown", "nan", "none"}


@dataclass
class Representation:
    """One representation of a set of utterances, checked.

    Attributes:
        h: float32 array (n_utterances, n_features).
        speaker: str array (n,), speaker of every row.
        gender: str array (n,), exactly two values; one per speaker.
        emotion: {task: str array (n,)} emotion class labels (``activation`` / ``valence``), possibly empty.
        split: str array (n,) of "train" / "validation" / "test", or None (the audit makes speaker-disjoint folds).
        utterance_id: str array (n,) or None.
        source: where it came from (a file name, or an encoder and corpus), for the report.
        notes: facts about how it was made (encoder sidecar, normalisation), for the report.
    """

    h: np.ndarray
    speaker: np.ndarray
    gender: np.ndarray
    emotion: dict[str, np.ndarray] = field(default_factory=dict)
    split: np.ndarray | None = None
    utterance_id: np.ndarray | None = None
    source: str = "arrays"
    notes: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.h.shape[0])

    def take(self, rows: np.ndarray) -> "Representation":
        """The representation of the rows ``rows`` (positions) only."""
        rows = np.asarray(rows, np.int64)
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return replace(self, h=self.h[rows], speaker=self.speaker[rows], gender=self.gender[rows],
                       emotion={k: v[rows] for k, v in self.emotion.items()}, split=pick(self.split),
                       utterance_id=pick(self.utterance_id))


def _error(source: str, column: str, expected: str, found: str) -> UserError:
    return UserError(f"{source}: column `{column}`: expected {expected}; found {found}")



def _one_per_speaker(source, column: str, speaker: np.ndarray, values: np.ndarray, expected: str) -> None:
    """One value of ``column`` per speaker (a gender, a split), else the error naming the first speaker with two."""
    pairs = pd.DataFrame({"s": speaker, "v": values}).drop_duplicates()
    twice = pairs["s"][pairs["s"].duplicated()]
    if len(twice):
        name = twice.iloc[0]
        raise _error(source, column, expected,
                     f"speaker {name!r} with {sorted(pairs.v[pairs.s == name])} ({twice.nunique()} such speakers)")

def _labels(source: str, column: str, values: Any, n: int, *, what: str) -> np.ndarray:
    """A label column as strings: 1-D, ``n`` values, none missing; numbers must be integers (class labels)."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise _error(source, column, f"one {what} per row ({n} values, 1-D)", f"shape {arr.shape}")
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise _error(source, column, f"a {what} in every row", f"{int(bad.sum())} missing (NaN) values, first at row "
                         f"{int(np.argmax(bad))}")
        if arr.dtype.kind == "c" or (arr != np.round(arr)).any():
            i = int(np.argmax(arr != np.round(arr))) if arr.dtype.kind == "f" else 0
            raise _error(source, column, f"{what}s (strings or integers)",
                         f"non-integer number {arr[i]!r} at row {i} (bin continuous ratings first, e.g. "
                         "privemo.bin_labels)" if column in EMOTION_COLUMNS else f"non-integer number {arr[i]!r} at row {i}")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "b":
        raise _error(source, column, f"{what}s (strings or integers)", "booleans")
    elif arr.dtype.kind == "O":
        missing = [i for i, v in enumerate(arr) if v is None or (isinstance(v, float) and not np.isfinite(v))]
        if missing:
            raise _error(source, column, f"a {what} in every row", f"{len(missing)} missing values, first at row "
                         f"{missing[0]}")
        kinds = {type(v).__name__ for v in arr if not isinstance(v, (str, int, np.integer))}
        if kinds:
            raise _error(source, column, f"{what}s (strings or integers)", f"values of type {sorted(kinds)}")
    elif arr.dtype.kind not in "iuUS":
        raise _error(source, column, f"{what}s (strings or integers)", f"dtype {arr.dtype}")
    out = arr.astype(str)
    empty = np.char.strip(out) == ""
    if empty.any():
        raise _error(source, column, f"a {what} in every row", f"{int(empty.sum())} empty values, first at row "
                     f"{int(np.argmax(empty))}")
    return out


def _check_h(source: str, column: str, h: Any, n: int | None = None) -> np.ndarray:
    arr = np.asarray(h)
    if arr.dtype.kind not in "iuf" or arr.ndim != 2:
        raise _error(source, column, "a 2-D numeric array (n_utterances, n_features)",
                     f"dtype {arr.dtype}, shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise _error(source, column, "at least one row and one feature", f"shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise _error(source, column, f"{n} rows, one per utterance", f"{arr.shape[0]} rows")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise _error(source, column, "finite numbers", f"{int(bad.sum())} non-finite values (NaN, inf or beyond float32), "
                     f"first at row {int(row)}, feature {int(col)}")
    return arr


def representation_from_arrays(
    h: Any,
    speaker: Any,
    gender: Any,
    *,
    emotion: Mapping[str, Any] | None = None,
    split: Any = None,
    utterance_id: Any = None,
    source: str = "arrays",
    notes: Mapping[str, Any] | None = None,
) -> Representation:
    """A checked `Representation` from arrays (``h`` column ``h``): raises `UserError` naming ``source`` and the column.

    Checks: h finite numeric 2-D; one speaker and one gender per row, none missing; genders exactly two values and
    every speaker of one gender; speakers not an "unknown" placeholder; emotion labels are class labels; split values
    among `SPLITS` with no speaker in two splits; utterance ids unique.
    """
    h = _check_h(source, "h", h)
    n = h.shape[0]
    speaker = _labels(source, "speaker", speaker, n, what="speaker id")
    unknown = np.isin(np.char.lower(np.char.strip(speaker)), list(_UNKNOWN_SPEAKERS))
    if unknown.any():
        raise _error(source, "speaker", "known speaker ids (drop rows of unknown speakers: they cannot be placed in "
                     "speaker-disjoint folds)", f"{speaker[unknown][0]!r} in {int(unknown.sum())} rows")
    gender = _labels(source, "gender", gender, n, what="gender")
    values = np.unique(gender)
    if values.size != 2:
        raise _error(source, "gender", "exactly two values (e.g. F and M; drop rows of unknown gender)",
                     f"{values.size} value(s): {values.tolist()[:10]}")
    _one_per_speaker(source, "gender", speaker, gender, "one gender per speaker")
    labels = {}
    for task, values_ in (emotion or {}).items():
        labels[task] = _labels(source, task, values_, n, what="emotion class label")
        if np.unique(labels[task]).size < 2:
            raise _error(source, task, "at least two emotion classes", f"one: {labels[task][0]!r}")
    parts = None
    if split is not None:
        raw = _labels(source, "split", split, n, what="split name")
        key = np.char.lower(np.char.strip(raw))
        unknown_split = sorted(set(key.tolist()) - set(SPLITS))
        if unknown_split:
            raise _error(source, "split", f"one of {sorted(set(SPLITS.values()))} (or {sorted(set(SPLITS) - set(SPLITS.values()))})",
                         f"{unknown_split[:5]}")
        parts = np.array([SPLITS[k] for k in key.tolist()], dtype="<U10")
        for needed in ("train", "test"):
            if not (parts == needed).any():
                raise _error(source, "split", f"rows in the {needed!r} split", "none")
        _one_per_speaker(source, "split", speaker, parts, "speaker-disjoint splits (every speaker in one split)")
    ids = None
    if utterance_id is not None:
        ids = _labels(source, "utterance_id", utterance_id, n, what="utterance id")
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise _error(source, "utterance_id", "unique ids", f"{uniq[counts > 1][0]!r} in {counts.max()} rows")
    return Representation(h, speaker, gender, labels, parts, ids, source, dict(notes or {}))


def _h_columns(source: str, columns: list[str]) -> list[str]:
    numbered = sorted((c for c in columns if c.startswith("h") and c[1:].isdigit()), key=lambda c: int(c[1:]))
    if numbered and [int(c[1:]) for c in numbered] != list(range(len(numbered))):
        raise _error(source, "h0...", "consecutive columns h0, h1, ..., h<d-1>",
                     f"{numbered[:3]}...{numbered[-1]} ({len(numbered)} columns)")
    return numbered


def representation_from_frame(frame: pd.DataFrame, source: str = "table") -> Representation:
    """A checked `Representation` from a table (the columns of a features file), errors naming ``source``."""
    frame = frame.copy()
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    for needed in ("speaker", "gender"):
        if needed not in columns:
            raise _error(source, needed, "a column of that name (one value per utterance)", f"columns {columns[:12]}")
    numbered = _h_columns(source, columns)
    if "h" in columns:
        cells = frame["h"].tolist()
        bad = [i for i, v in enumerate(cells) if not hasattr(v, "__len__") or isinstance(v, (str, bytes))]
        if bad:
            raise _error(source, "h", "a list of numbers in every row (or columns h0, h1, ...)",
                         f"{type(cells[bad[0]]).__name__} at row {bad[0]}")
        lengths = np.array([len(v) for v in cells])
        if lengths.size and (lengths != lengths[0]).any():
            i = int(np.argmax(lengths != lengths[0]))
            raise _error(source, "h", f"the same length in every row ({lengths[0]}, as in row 0)",
                         f"length {lengths[i]} at row {i} (ragged)")
        try:
            h = np.array([np.asarray(v) for v in cells]) if cells else np.zeros((0, 0))
        except (TypeError, ValueError):
            raise _error(source, "h", "lists of numbers", "values that are not numbers") from None
        if h.dtype.kind not in "iuf":
            raise _error(source, "h", "lists of numbers", f"elements of dtype {h.dtype}")
    elif numbered:
        block = frame[numbered]
        kinds = {c: block[c].dtype for c in numbered if block[c].dtype.kind not in "iuf"}
        if kinds:
            col, dtype = next(iter(kinds.items()))
            raise _error(source, col, "numbers", f"dtype {dtype} (e.g. {block[col].iloc[0]!r})")
        h = block.to_numpy()
    else:
        raise _error(source, "h", "a column `h` of lists, or columns h0, h1, ... (the representation)",
                     f"columns {columns[:12]}")
    h = _check_h(source, "h" if "h" in columns else "h0...", h)
    emotion = {t: frame[t].to_numpy() for t in EMOTION_COLUMNS if t in columns}
    return representation_from_arrays(
        h, frame["speaker"].to_numpy(), frame["gender"].to_numpy(), emotion=emotion,
        split=frame["split"].to_numpy() if "split" in columns else None,
        utterance_id=frame["utterance_id"].to_numpy() if "utterance_id" in columns else None, source=source)


def _read_npz(path: Path) -> Representation:
    source = str(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{source}: not a readable .npz archive ({str(exc).splitlines()[0]})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{source}: expected an .npz archive of named arrays; found a single array")
    with archive:
        arrays: dict[str, np.ndarray] = {}
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as exc:  # object arrays need pickle, which is never allowed here
                raise _error(source, key, "an array of numbers or strings (files are read without unpickling)",
                             f"Python objects ({str(exc).splitlines()[0]})") from None
    if "h" in arrays:
        h = _check_h(source, "h", arrays["h"])
        columns = {k: v for k, v in arrays.items() if k != "h"}
        for key, value in columns.items():
            if np.ndim(value) != 1 or len(value) != len(h):
                raise _error(source, key, f"a 1-D array with one value per row of h ({len(h)})",
                             f"shape {np.shape(value)}")
        frame = pd.DataFrame(columns)
        frame["h"] = list(h)
        if "speaker" not in frame or "gender" not in frame:
            missing = "speaker" if "speaker" not in frame else "gender"
            raise _error(source, missing, "an array of that name (one value per utterance)",
                         f"arrays {sorted(arrays)}")
        return representation_from_arrays(
            h, frame["speaker"].to_numpy(), frame["gender"].to_numpy(),
            emotion={t: arrays[t] for t in EMOTION_COLUMNS if t in arrays}, split=arrays.get("split"),
            utterance_id=arrays.get("utterance_id"), source=source)
    lengths = {k: np.shape(v) for k, v in arrays.items() if np.ndim(v) != 1}
    if lengths:
        key, shape = next(iter(lengths.items()))
        raise _error(source, key, "1-D arrays, one value per utterance (or one 2-D array `h`)", f"shape {shape}")
    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) > 1:
        first = next(iter(sizes))
        key = next(k for k, s in sizes.items() if s != sizes[first])
        raise _error(source, key, f"{sizes[first]} values, as `{first}` has", f"{sizes[key]}")
    return representation_from_frame(pd.DataFrame(arrays), source)


def read_features(path: str | os.PathLike) -> Representation:
    """Read and check a features file (``.npz``, ``.parquet`` or ``.csv``; format in the module docstring)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"{path}: expected a features file ending in one of {list(FORMATS)}; found {path.suffix!r}")
    if not path.is_file():
        raise UserError(f"{path}: no such features file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    try:
        frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path, dtype={"speaker": str})
    except ImportError as exc:
        raise UserError(f"{path}: reading .parquet needs pyarrow ({exc})") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: not a readable {suffix} table ({str(exc).splitlines()[0]})") from None
    if suffix == ".csv" and "h" in frame.columns:
        raise _error(str(path), "h", "columns h0, h1, ... in a .csv file (a list in one cell is not a CSV number)",
                     "a column `h`")
    return representation_from_frame(frame, str(path))


def write_features(path: str | os.PathLike, rep: Representation) -> Path:
    """Write ``rep`` as a features file (``.npz`` without objects, ``.parquet`` or ``.csv``) atomically; it reads back
    with `read_features` to the same arrays."""
    import io

    from privemo._util.io import atomic_write_bytes

    path = Path(path)
    columns: dict[str, np.ndarray] = {"speaker": rep.speaker, "gender": rep.gender, **rep.emotion}
    if rep.split is not None:
        columns["split"] = rep.split
    if rep.utterance_id is not None:
        columns["utterance_id"] = rep.utterance_id
    suffix = path.suffix.lower()
    if suffix == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, h=rep.h, **{k: np.asarray(v).astype(str) for k, v in columns.items()})
        return atomic_write_bytes(path, buffer.getvalue())
    frame = pd.DataFrame({f"h{j}": rep.h[:, j] for j in range(rep.h.shape[1])})
    for key, value in columns.items():
        frame[key] = value
    buffer = io.BytesIO()
    if suffix == ".parquet":
        frame.to_parquet(buffer, index=False)
    elif suffix == ".csv":
        frame.to_csv(buffer, index=False)
    else:
        raise UserError(f"{path}: expected a file name ending in one of {list(FORMATS)}")
    return atomic_write_bytes(path, buffer.getvalue())
