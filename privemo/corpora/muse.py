"""MuSE (Multimodal Stressed Emotion) as an utterance table.

Layout read (corpora.md)::

    <root>/SurveyInformation/*.csv   (some copies: "Survey Information (Questions, Data etc)/")
        the crowdsourced label csv: Sentence_name, Gender, Type (S / NS), Activation_Mean, Valence_Mean, ... per-rater
        and context (C_*) columns; the csv that has these columns is used
    <root>/Stressed/Audio/Stressed Question Monologue Audio/*.wav
    <root>/NotStressed/Audio/Non Stressed Question Monologue Audio [Sentence Split]/*.wav   (some copies: "Non Stressed/")
    <root>/Combined/Utterance Transcripts/<utterance>.txt

File names look like ``01_DR-100_0097_1_sentence_1.wav``: the participant is the first field (``01``); ``DR-100_NNNN`` is
the recorder's file number, not a speaker. Ratings: the crowdsourced ``Activation_Mean`` and ``Valence_Mean`` (rated
without context; the ``C_*`` columns, rated with the preceding sentences, are not used). Their scale is unconfirmed
(values up to 9 have been seen).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from pathlib import Path

import pandas as pd

from ._schema import SAMPLE_RATE, BadRows, CorpusFormatError, where
from ._licensed import finish, index_files, parse_gender, parse_rating, read_text, read_transcript, resolve_root, usable_wav

log = logging.getLogger("privemo.corpora")

CORPUS = "muse"
SPEAKER_PREFIX = "MuSE-"
SURVEY_DIR_KEY = "surveyinformation"  # folder names are compared lower-case with non-alphanumerics removed
AUDIO_DIR_KEYS = ("stressed", "notstressed", "nonstressed")  # Stressed/, NotStressed/, Non Stressed/
# normalised column name -> accepted spellings (normalised: lower case, runs of other characters -> "_")
COLUMNS_NEEDED = {
    "sentence_name": ("sentence_name", "sentence"),
    "gender": ("gender",),
    "type": ("type", "type_s_ns"),
    "activation_mean": ("activation_mean",),
    "valence_mean": ("valence_mean",),
}
_STRESSED = {"s": True, "stressed": True, "ns": False, "nonstressed": False, "notstressed": False}


def load_muse(
    root: str | os.PathLike,
    *,
    strict: bool = False,
    check_audio: bool = True,
    sample_rate: int | None = SAMPLE_RATE,
    label_file: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Read MuSE: one row per sentence-level clip that has a wav and mean activation and valence ratings.

    Args:
        root: the MuSE folder (holding the survey folder, ``Stressed/``, ``NotStressed/`` and ``Combined/``).
        strict: raise a CorpusFormatError on the first unusable clip instead of warning once about all of them.
        check_audio: open each wav's header (empty, unreadable, wrong sample rate); False only checks the wav exists.
        sample_rate: the sample rate every wav must have (16 kHz); None accepts any rate (the distributed audio may
            not be 16 kHz: resample it, or pass None and let the acoustic features resample).
        label_file: the label csv to use, when the survey folder holds several csv files with the needed columns.

    Returns:
        The utterance table (``COLUMNS``); speaker and session ``"MuSE-01"`` (the participant, so a participant's
        stressed and non-stressed clips stay together), plus ``stressed`` (bool, from Type). ``attrs``: ``corpus``,
        ``root``, ``label_file``, ``skipped``, ``unrated``, ``unknown_genders``, ``duplicate_labels`` (identical
        repeated rows, kept once), ``unlabelled_wavs``, ``missing_transcripts``.

    Raises:
        CorpusFormatError: missing root, survey folder, label csv or audio folders, a malformed row or non-numeric
            rating (names file:line), conflicting rows for one clip, or (strict=True) any unusable clip.
    """
    base = resolve_root(root, CORPUS)
    path = Path(label_file).expanduser() if label_file is not None else _find_label_file(base)
    if not path.is_file():
        raise CorpusFormatError(f"{CORPUS}: label file not found: {path}")
    labels, duplicates = _read_labels(path)

    audio_dirs = sorted(p for p in base.iterdir() if p.is_dir() and _key(p.name) in AUDIO_DIR_KEYS)
    if not audio_dirs:
        raise CorpusFormatError(f"{CORPUS}: audio folders not found: expected Stressed/ and NotStressed/ "
                                f"(or Non Stressed/) in {base}")
    wavs: dict[str, Path] = {}
    for folder in audio_dirs:
        for stem, wav in index_files(folder, ".wav", CORPUS).items():
            wavs.setdefault(stem, wav)
    text_dir = base / "Combined" / "Utterance Transcripts"
    texts = index_files(text_dir, ".txt", CORPUS) if text_dir.is_dir() else {}

    bad = BadRows(CORPUS, strict)
    rows: list[dict] = []
    counts = {"unrated": 0, "unknown_genders": 0}
    for utt, label in labels.items():
        if math.isnan(label["activation"]) or math.isnan(label["valence"]):
            counts["unrated"] += 1
            continue
        wav = wavs.get(utt)
        if not usable_wav(wav, f"{utt}.wav under {', '.join(str(d) for d in audio_dirs)}", bad,
                          check_audio=check_audio, sample_rate=sample_rate):
            continue
        counts["unknown_genders"] += label["gender"] is None
        speaker = SPEAKER_PREFIX + utt.split("_")[0]
        rows.append(
            {
                "utterance_id": utt,
                "speaker": speaker,
                "gender": label["gender"],
                "session": speaker,
                "wav_path": str(wav),
                "transcript": read_transcript(texts.get(utt)),
                "activation": label["activation"],
                "valence": label["valence"],
                "stressed": label["stressed"],
            }
        )
    unlabelled = sorted(set(wavs) - set(labels))
    if unlabelled:
        log.debug("%s: %d wav(s) have no label and are ignored, e.g. %s", CORPUS, len(unlabelled), unlabelled[:3])
    table = finish(rows, bad, CORPUS, root=str(base), label_file=str(path), duplicate_labels=duplicates,
                   unlabelled_wavs=len(unlabelled), **counts)
    table["stressed"] = table["stressed"].astype(bool)
    return table


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _column(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _header_positions(header: list[str]) -> dict[str, int | None]:
    names = {_column(h): i for i, h in enumerate(header)}
    return {key: next((names[a] for a in aliases if a in names), None) for key, aliases in COLUMNS_NEEDED.items()}


def _find_label_file(base: Path) -> Path:
    """The csv under the survey folder whose header has every needed column."""
    survey = [p for p in base.iterdir() if p.is_dir() and _key(p.name).startswith(SURVEY_DIR_KEY)]
    if not survey:
        raise CorpusFormatError(f"{CORPUS}: survey folder not found: expected SurveyInformation/ or "
                                f"'Survey Information (Questions, Data etc)/' in {base}")
    found = []
    for folder in sorted(survey):
        for csv_path in index_files(folder, ".csv", CORPUS).values():
            first = next(iter(read_text(csv_path).splitlines()), "")
            if all(pos is not None for pos in _header_positions(next(csv.reader([first]), [])).values()):
                found.append(csv_path)
    wanted = "Sentence_name, Gender, Type, Activation_Mean, Valence_Mean"
    if not found:
        raise CorpusFormatError(f"{CORPUS}: label file not found: no csv in {', '.join(map(str, survey))} has the "
                                f"columns {wanted}")
    if len(found) > 1:
        crowd = [p for p in found if "crowd" in p.name.lower()]
        if len(crowd) != 1:
            raise CorpusFormatError(f"{CORPUS}: several csv files have the columns {wanted}: "
                                    f"{', '.join(map(str, found))}; pass label_file= to choose one")
        found = crowd
    return found[0]


def _read_labels(path: Path) -> tuple[dict[str, dict], int]:
    """Clip name (no .wav) -> label fields; plus the number of identical repeated rows."""
    reader = csv.reader(read_text(path).splitlines())
    header = next(reader, None) or []
    col = _header_positions(header)
    missing = [key for key, pos in col.items() if pos is None]
    if missing:
        raise CorpusFormatError(f"{CORPUS}: {path}: missing column(s) {', '.join(missing)}; "
                                f"found {', '.join(h.strip() for h in header)}")
    labels: dict[str, dict] = {}
    duplicates = 0
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise CorpusFormatError(f"{CORPUS}: {where(path, line)}: {len(row)} field(s), expected {len(header)}")
        name = row[col["sentence_name"]].strip()
        utt = name[:-4] if name.lower().endswith(".wav") else name
        if not utt:
            raise CorpusFormatError(f"{CORPUS}: {where(path, line)}: empty Sentence_name")
        kind = row[col["type"]].strip()
        if _key(kind) not in _STRESSED:
            raise CorpusFormatError(f"{CORPUS}: {where(path, line)}: Type {kind!r} is neither S (stressed) nor NS")
        label = {
            "gender": parse_gender(row[col["gender"]], CORPUS, path, line),
            "stressed": _STRESSED[_key(kind)],
            "activation": parse_rating(row[col["activation_mean"]], CORPUS, path, line, "Activation_Mean"),
            "valence": parse_rating(row[col["valence_mean"]], CORPUS, path, line, "Valence_Mean"),
        }
        if utt in labels:
            previous = {k: v for k, v in labels[utt].items() if k != "line"}
            if _same(previous, label):
                duplicates += 1
                continue
            raise CorpusFormatError(f"{CORPUS}: {where(path, line)}: {utt} is labelled again, differently from line "
                                    f"{labels[utt]['line']}")
        labels[utt] = {**label, "line": line}
    return labels, duplicates


def _same(a: dict, b: dict) -> bool:
    def eq(x, y) -> bool:
        return (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y

    return a.keys() == b.keys() and all(eq(a[k], b[k]) for k in a)
