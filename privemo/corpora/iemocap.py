"""IEMOCAP (and the demo corpus, which is written in the same layout) as an utterance table.

Layout read (corpora.md)::

    <root>/Session1 .. Session5/
        dialog/EmoEvaluation/<dialog>.txt       labels: '%' header, then per utterance a summary line
                                                '[START - END]<TAB>UTT_ID<TAB>CAT<TAB>[V, A, D]' followed by rater lines
        dialog/transcriptions/<dialog>.txt      'UTT_ID [START-END]: text' (optional)
        sentences/wav/<dialog>/<UTT_ID>.wav     16 kHz audio, one file per utterance

Ratings are the consensus (mean) valence and activation of the summary line's ``[V, A, D]`` triple, on IEMOCAP's 1-5 scale.
The speaker of an utterance is the session plus the letter of the utterance id's LAST field: ``Ses01F_impro01_M003`` is
spoken by the male actor of session 1 (speaker ``Ses01M``), although the dialog name starts with ``Ses01F``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from ._schema import SAMPLE_RATE, BadRows, CorpusFormatError, where
from ._licensed import finish, index_files, is_junk, read_text, resolve_root, to_float, usable_wav

log = logging.getLogger("privemo.corpora")

EXPECTED_SESSIONS = (1, 2, 3, 4, 5)
SUMMARY_FORMAT = "[START - END]<TAB>UTT_ID<TAB>CAT<TAB>[V, A, D]"

_SESSION_DIR = re.compile(r"^Session(\d+)$")
# Dialog names are irregular (Ses03M_impro05a, Ses05M_script01_1b): the dialog is the id minus its last _[FM]NNN field.
_UTTERANCE_ID = re.compile(r"^(?P<dialog>.+)_(?P<letter>[FM])(?P<number>\d+)$")
_ID_SESSION = re.compile(r"^Ses(\d+)")
_SUMMARY = re.compile(
    r"^\[\s*(?P<start>[0-9.]+)\s*-\s*(?P<end>[0-9.]+)\s*\]\s+(?P<utt>\S+)\s+(?P<cat>\S+)\s+\[(?P<ratings>[^\]]*)\]\s*$"
)
_TRANSCRIPT = re.compile(r"^(?P<utt>\S+)\s+\[\s*[0-9.]+\s*-\s*[0-9.]+\s*\]\s*:\s?(?P<text>.*)$")


def load_iemocap(
    root: str | os.PathLike,
    *,
    strict: bool = False,
    check_audio: bool = True,
    sample_rate: int | None = SAMPLE_RATE,
    corpus: str = "iemocap",
) -> pd.DataFrame:
    """Read an IEMOCAP-layout corpus: one row per utterance that has a wav and a rating.

    Args:
        root: the folder holding ``Session1`` .. ``Session5`` (``IEMOCAP_full_release``), or its parent.
        strict: raise a CorpusFormatError on the first unusable utterance instead of warning once about all of them.
        check_audio: open each wav's header (empty, unreadable, wrong sample rate); False only checks the wav exists.
        sample_rate: the sample rate every wav must have (16 kHz); None accepts any rate.
        corpus: the name put in ``table.attrs["corpus"]`` and in messages ("demo" for the synthesised corpus).

    Returns:
        The utterance table (``COLUMNS``) plus ``category`` (e.g. "neu", "xxx" = no agreement), ``dominance`` (NaN when
        missing) and ``dialog``. ``attrs``: ``corpus``, ``root``, ``skipped`` (labelled utterances dropped for bad audio),
        ``unrated`` (labels without a valence/activation value), ``unlabelled_wavs`` (wavs with no label, ignored),
        ``missing_transcripts``, ``skipped_label_files`` (files in EmoEvaluation without the '%' header).

    Raises:
        CorpusFormatError: missing root / session / label folder, a summary line that cannot be parsed (names file:line),
            a duplicate utterance id, or (strict=True) any unusable utterance.
    """
    if not isinstance(corpus, str) or not corpus:
        raise ValueError(f"Invalid value received for argument `corpus`. Expected a non-empty str. Received: corpus={corpus!r}")
    base = _find_release(resolve_root(root, corpus), corpus)
    sessions = sorted(
        ((int(m.group(1)), p) for p in base.iterdir() if p.is_dir() and (m := _SESSION_DIR.match(p.name))),
        key=lambda item: item[0],
    )
    numbers = [n for n, _ in sessions]
    if corpus == "iemocap" and numbers != list(EXPECTED_SESSIONS):
        warnings.warn(
            f"{corpus}: found sessions {numbers} under {base}, expected {list(EXPECTED_SESSIONS)}; loading what is there",
            UserWarning,
            stacklevel=2,
        )

    bad = BadRows(corpus, strict)
    rows: list[dict] = []
    counts = {"unrated": 0, "unlabelled_wavs": 0, "skipped_label_files": 0}
    seen: dict[str, str] = {}
    for number, folder in sessions:
        rows += _session_rows(number, folder, corpus, bad, counts, seen, check_audio, sample_rate)
    return finish(rows, bad, corpus, root=str(base), **counts)


def _session_rows(number: int, folder: Path, corpus: str, bad: BadRows, counts: dict, seen: dict[str, str],
                  check_audio: bool, sample_rate: int | None) -> list[dict]:
    """The usable utterances of one session folder; ``counts`` and ``seen`` (utterance -> label line) are updated."""
    rows: list[dict] = []
    session = f"Ses{number:02d}"
    labels, skipped_files = _read_labels(folder, number, corpus)
    counts["skipped_label_files"] += skipped_files
    transcripts = _read_transcripts(folder / "dialog" / "transcriptions", set(labels))
    wav_root = folder / "sentences" / "wav"
    if not wav_root.is_dir():
        raise CorpusFormatError(f"{corpus}: audio folder not found: {wav_root}")
    wavs = index_files(wav_root, ".wav", corpus)
    unlabelled = sorted(set(wavs) - set(labels))
    if unlabelled:
        counts["unlabelled_wavs"] += len(unlabelled)
        log.debug("%s: %d wav(s) in %s have no label and are ignored, e.g. %s", corpus, len(unlabelled), wav_root,
                  unlabelled[:3])
    for utt, label in labels.items():
        if utt in seen:
            raise CorpusFormatError(f"{corpus}: utterance {utt} is labelled twice: {seen[utt]} and {label['where']}")
        seen[utt] = label["where"]
        if math.isnan(label["valence"]) or math.isnan(label["activation"]):
            counts["unrated"] += 1
            continue
        expected = wav_root / label["dialog"] / f"{utt}.wav"
        path = wavs.get(utt)
        if not usable_wav(path, expected, bad, check_audio=check_audio, sample_rate=sample_rate):
            continue
        rows.append(
            {
                "utterance_id": utt,
                "speaker": session + label["letter"],
                "gender": label["letter"],
                "session": session,
                "wav_path": str(path),
                "transcript": transcripts.get(utt),
                "activation": label["activation"],
                "valence": label["valence"],
                "category": label["category"],
                "dominance": label["dominance"],
                "dialog": label["dialog"],
            }
        )
    return rows


def _find_release(root: Path, corpus: str) -> Path:
    """The folder holding the SessionN folders: ``root`` itself or ``root/IEMOCAP_full_release``."""
    for candidate in (root, root / "IEMOCAP_full_release"):
        if candidate.is_dir() and any(p.is_dir() and _SESSION_DIR.match(p.name) for p in candidate.iterdir()):
            return candidate
    raise CorpusFormatError(
        f"{corpus}: no Session1..Session5 folders found in {root} (nor in {root / 'IEMOCAP_full_release'}); "
        "pass the IEMOCAP_full_release folder as root"
    )


def _read_labels(session_dir: Path, number: int, corpus: str) -> tuple[dict[str, dict], int]:
    """Parse every EmoEvaluation/<dialog>.txt of one session: utterance id -> label fields, plus #files skipped."""
    folder = session_dir / "dialog" / "EmoEvaluation"
    if not folder.is_dir():
        raise CorpusFormatError(f"{corpus}: label folder not found: {folder}")
    labels: dict[str, dict] = {}
    skipped = 0
    files = sorted(p for p in folder.iterdir() if p.is_file() and not is_junk(p.name) and p.suffix.lower() == ".txt")
    for path in files:
        lines = read_text(path).splitlines()
        first = next((line for line in lines if line.strip()), "")
        if not first.lstrip().startswith("%"):
            skipped += 1
            log.debug("%s: %s has no '%%' header line; not an EmoEvaluation file, skipped", corpus, path)
            continue
        for lineno, line in enumerate(lines, start=1):
            stripped = line.strip()
            if not stripped.startswith("["):  # header, blank and per-rater lines ('C-E2:', 'A-E3:', ...)
                continue
            label = _parse_summary(stripped, path, lineno, number, corpus)
            utt = label.pop("utterance_id")
            if utt in labels:
                raise CorpusFormatError(f"{corpus}: utterance {utt} is labelled twice: {labels[utt]['where']} and "
                                        f"{label['where']}")
            labels[utt] = label
    if not files or skipped == len(files):
        raise CorpusFormatError(f"{corpus}: no EmoEvaluation file (a .txt starting with a '%' header) in {folder}")
    return labels, skipped


def _parse_summary(line: str, path: Path, lineno: int, number: int, corpus: str) -> dict:
    def error(what: str) -> CorpusFormatError:
        return CorpusFormatError(f"{corpus}: {where(path, lineno)}: {what}; expected a summary line "
                                 f"'{SUMMARY_FORMAT}'. Line: {line!r}")

    match = _SUMMARY.match(line)
    if match is None:
        raise error("cannot parse summary line")
    utt = match.group("utt")
    id_match = _UTTERANCE_ID.match(utt)
    if id_match is None:
        raise error(f"utterance id {utt!r} does not end in an _[FM]NNN field")
    id_session = _ID_SESSION.match(utt)
    if id_session is not None and int(id_session.group(1)) != number:
        raise error(f"utterance id {utt!r} does not belong to Session{number}")
    parts = [p.strip() for p in match.group("ratings").split(",")]
    if len(parts) not in (2, 3):
        raise error(f"expected 3 ratings [V, A, D], found {len(parts)}")
    values = []
    for name, text in zip("VAD", parts + [""] * (3 - len(parts))):
        try:
            values.append(to_float(text))
        except ValueError as exc:
            raise error(f"{name} is {exc}") from None
    valence, activation, dominance = values
    return {
        "utterance_id": utt,
        "dialog": id_match.group("dialog"),
        "letter": id_match.group("letter"),
        "category": match.group("cat"),
        "valence": valence,
        "activation": activation,
        "dominance": dominance,
        "where": where(path, lineno),
    }


def _read_transcripts(folder: Path, wanted: set[str]) -> dict[str, str]:
    """Utterance id -> text from transcriptions/*.txt; lines of other turns (no label) and of other shapes are ignored."""
    texts: dict[str, str] = {}
    if not folder.is_dir():
        return texts
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not is_junk(p.name) and p.suffix.lower() == ".txt"):
        for line in read_text(path).splitlines():
            match = _TRANSCRIPT.match(line.strip())
            if match and match.group("utt") in wanted:
                texts[match.group("utt")] = " ".join(match.group("text").split())
    return texts
