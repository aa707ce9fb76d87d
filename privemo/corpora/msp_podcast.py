"""MSP-Podcast as an utterance table.

Layout read (corpora.md)::

    <root>/Labels/labels_consensus.csv   (older copies: labels_concensus.csv; some: Labels/Labels/ or the root itself)
        FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
        MSP-PODCAST_0001_0008.wav,N,2.2,4.0,2.6,30,Male,Test1
    <root>/Audios/*.wav   (some copies: Audio/, or nested Audios/Audios/; found by a recursive search)
    <root>/Transcripts/<utterance>.txt   (optional)

Ratings: the consensus EmoAct (activation) and EmoVal (valence) on the 1-7 scale. Rows without ratings (the unlabelled
Test3 partition) are not utterances with ratings and are left out (counted in ``attrs["unrated"]``).
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

CORPUS = "msp-podcast"
LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")  # the older release misspells it
LABEL_DIRS = ("Labels", "Labels/Labels", ".")
AUDIO_DIRS = ("Audios", "Audio")
REQUIRED_COLUMNS = ("FileName", "EmoAct", "EmoVal", "SpkrID", "Gender", "Split_Set")
OPTIONAL_COLUMNS = ("EmoClass", "EmoDom")
SPEAKER_PREFIX = "MSP-PODCAST-"  # speaker ids are plain numbers; prefixed so they cannot collide with other corpora
SPLIT_ALIASES = {"validation": "Development"}  # older releases call the development set "Validation"

_PODCAST = re.compile(r"^(?P<podcast>.+)_\d+$")


def load_msp_podcast(
    root: str | os.PathLike,
    *,
    strict: bool = False,
    check_audio: bool = True,
    sample_rate: int | None = SAMPLE_RATE,
    include_unknown: bool = True,
) -> pd.DataFrame:
    """Read MSP-Podcast: one row per segment that has a wav and consensus activation and valence.

    Args:
        root: the MSP-Podcast folder (holding ``Labels/`` and ``Audios/``).
        strict: raise a CorpusFormatError on the first unusable segment instead of warning once about all of them.
        check_audio: open each wav's header (empty, unreadable, wrong sample rate); False only checks the wav exists.
            With ~100k segments the check takes a while; False skips it.
        sample_rate: the sample rate every wav must have (16 kHz); None accepts any rate.
        include_unknown: keep segments whose ``SpkrID`` or ``Gender`` is ``Unknown`` (speaker / gender None). They are
            usable emotion training data but cannot be placed in a speaker-independent fold or serve as gender
            targets; False drops them. Either way their number is in ``attrs``.

    Returns:
        The utterance table (``COLUMNS``); utterance_id = file name without ``.wav``; speaker ``"MSP-PODCAST-<SpkrID>"``
        (None when Unknown); gender None when Unknown; session = the podcast the segment was cut from
        (``MSP-PODCAST_0001``); plus ``split`` (Train / Development / Test1 / Test2 / ..., "Validation" normalised to
        "Development"), ``category`` (EmoClass) and ``dominance`` (EmoDom). ``attrs``: ``corpus``, ``root``,
        ``label_file``, ``skipped``, ``unrated`` (rows without ratings, e.g. Test3), ``unknown_speakers``,
        ``unknown_genders`` (among the rated segments with usable audio), ``dropped_unknown``, ``unlabelled_wavs``,
        ``missing_transcripts``.

    Raises:
        CorpusFormatError: missing root, label file or audio folder, a csv without a required column, a malformed row or
            non-numeric rating (names file:line), a duplicate file name, or (strict=True) any unusable segment.
    """
    base = resolve_root(root, CORPUS)
    label_file = _find_label_file(base)
    audio_dirs = [base / name for name in AUDIO_DIRS if (base / name).is_dir()]
    if not audio_dirs:
        raise CorpusFormatError(f"{CORPUS}: audio folder not found: expected {' or '.join(AUDIO_DIRS)} in {base}")
    wavs: dict[str, Path] = {}
    for folder in audio_dirs:
        for stem, path in index_files(folder, ".wav", CORPUS).items():
            wavs.setdefault(stem, path)
    text_dir = base / "Transcripts"
    texts = index_files(text_dir, ".txt", CORPUS) if text_dir.is_dir() else {}

    bad = BadRows(CORPUS, strict)
    rows: list[dict] = []
    counts = {"unrated": 0, "unknown_speakers": 0, "unknown_genders": 0, "dropped_unknown": 0}
    labelled: set[str] = set()
    for label in _read_labels(label_file):
        utt = label["utterance_id"]
        labelled.add(utt)
        if math.isnan(label["activation"]) or math.isnan(label["valence"]):
            counts["unrated"] += 1
            continue
        path = wavs.get(utt)
        if not usable_wav(path, audio_dirs[0] / f"{utt}.wav", bad, check_audio=check_audio, sample_rate=sample_rate):
            continue
        counts["unknown_speakers"] += label["speaker"] is None
        counts["unknown_genders"] += label["gender"] is None
        if not include_unknown and (label["speaker"] is None or label["gender"] is None):
            counts["dropped_unknown"] += 1
            continue
        podcast = _PODCAST.match(utt)
        rows.append(
            {
                "utterance_id": utt,
                "speaker": label["speaker"],
                "gender": label["gender"],
                "session": podcast.group("podcast") if podcast else utt,
                "wav_path": str(path),
                "transcript": read_transcript(texts.get(utt)),
                "activation": label["activation"],
                "valence": label["valence"],
                "split": label["split"],
                "category": label["category"],
                "dominance": label["dominance"],
            }
        )
    unlabelled = sorted(set(wavs) - labelled)
    if unlabelled:
        log.debug("%s: %d wav(s) have no label and are ignored, e.g. %s", CORPUS, len(unlabelled), unlabelled[:3])
    return finish(rows, bad, CORPUS, root=str(base), label_file=str(label_file), unlabelled_wavs=len(unlabelled),
                  **counts)


def _find_label_file(base: Path) -> Path:
    for folder in LABEL_DIRS:
        for name in LABEL_FILES:
            if (base / folder / name).is_file():
                return (base / folder / name).resolve()
    raise CorpusFormatError(f"{CORPUS}: label file not found: expected Labels/{' or Labels/'.join(LABEL_FILES)} in {base}")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _read_labels(path: Path):
    """Yield one dict per data row of the consensus csv (ratings NaN when absent)."""
    reader = csv.reader(read_text(path).splitlines())
    header = next(reader, None)
    if not header:
        raise CorpusFormatError(f"{CORPUS}: {path}: empty label file; expected a header {','.join(REQUIRED_COLUMNS)}")
    positions = {_key(name): i for i, name in enumerate(header)}
    missing = [name for name in REQUIRED_COLUMNS if _key(name) not in positions]
    if missing:
        raise CorpusFormatError(
            f"{CORPUS}: {path}: missing column(s) {', '.join(missing)}; found {', '.join(h.strip() for h in header)}"
        )
    col = {name: positions.get(_key(name)) for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise CorpusFormatError(f"{CORPUS}: {where(path, line)}: {len(row)} field(s), expected {len(header)} "
                                    f"({','.join(header)})")

        def get(name: str) -> str:
            return row[col[name]].strip() if col[name] is not None else ""

        file_name = get("FileName")
        if not file_name:
            raise CorpusFormatError(f"{CORPUS}: {where(path, line)}: empty FileName")
        utt = file_name[:-4] if file_name.lower().endswith(".wav") else file_name
        if utt in seen:
            raise CorpusFormatError(f"{CORPUS}: {where(path, line)}: {file_name} is listed twice (first on line {seen[utt]})")
        seen[utt] = line
        speaker = get("SpkrID")
        if speaker.lower() in ("", "unknown", "nan"):
            speaker = None
        else:
            speaker = SPEAKER_PREFIX + (speaker[:-2] if re.fullmatch(r"\d+\.0", speaker) else speaker)
        split = get("Split_Set")
        yield {
            "utterance_id": utt,
            "activation": parse_rating(get("EmoAct"), CORPUS, path, line, "EmoAct"),
            "valence": parse_rating(get("EmoVal"), CORPUS, path, line, "EmoVal"),
            "dominance": parse_rating(get("EmoDom"), CORPUS, path, line, "EmoDom"),
            "category": get("EmoClass") or None,
            "speaker": speaker,
            "gender": parse_gender(get("Gender"), CORPUS, path, line),
            "split": SPLIT_ALIASES.get(split.lower(), split),
        }
