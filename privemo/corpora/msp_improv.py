"""MSP-IMPROV as an utterance table.

Layout read (corpora.md)::

    <root>/Evaluation.txt  (some copies: Evalution.txt)
        blocks separated by blank lines; the first line of a block is the consensus line
        'UTD-IMPROV-<id>.avi; <cat>; A:<f>; V:<f>; D:<f|NaN> ; N:<f|NaN>;', the following lines are per-rater lines
    <root>/Audio/sessionN/<S01A>/<P>/MSP-IMPROV-<id>.wav  (some copies omit Audio/; found by a recursive search)
    <root>/Text/MSP-IMPROV-<id>.txt  (unconfirmed: present in some copies; without it, transcript is None)

``<id>`` is ``S01A-F01-S-FM01``: sentence 01 with target emotion A, speaker F01 (gender letter + session number),
scenario S (P natural interaction, R read, S/T improvised), then an undocumented field. The label's ``UTD-...avi`` is
mapped to the audio's ``MSP-...wav``. Ratings: the consensus A (activation) and V (valence) on the 1-5 scale, taken as
stored; whether A is stored reversed is disputed (unconfirmed), see ``reverse_activation``.
"""

from __future__ import annotations

import logging
import math
import os
import re

import pandas as pd

from ._schema import SAMPLE_RATE, BadRows, CorpusFormatError, where
from ._licensed import finish, index_files, read_text, read_transcript, resolve_root, to_float, usable_wav

log = logging.getLogger("privemo.corpora")

CORPUS = "msp-improv"
LABEL_FILES = ("Evaluation.txt", "Evalution.txt")  # both spellings occur in distributed copies
SUMMARY_FORMAT = "UTD-IMPROV-<id>.avi; <cat>; A:<f>; V:<f>; D:<f|NaN> ; N:<f|NaN>;"
SCALE_MAX = 5.0  # ratings are on 1..SCALE_MAX; reverse_activation maps a to (1 + SCALE_MAX) - a

_SUMMARY = re.compile(
    r"^(?:UTD|MSP)-IMPROV-(?P<id>[A-Za-z0-9-]+)\.(?:avi|wav)\s*;\s*(?P<cat>[^;]*?)\s*;"
    r"\s*A\s*:\s*(?P<a>[^;]*?)\s*;\s*V\s*:\s*(?P<v>[^;]*?)\s*;"
    r"(?:\s*D\s*:\s*(?P<d>[^;]*?)\s*;)?(?:\s*N\s*:\s*(?P<n>[^;]*?)\s*;?)?\s*$"
)
_CLIP_ID = re.compile(
    r"^S(?P<sentence>\d+)(?P<target>[A-Za-z])-(?P<gender>[FM])(?P<session>\d+)-(?P<scenario>[A-Za-z])-(?P<turn>[A-Za-z0-9]+)$"
)


def load_msp_improv(
    root: str | os.PathLike,
    *,
    strict: bool = False,
    check_audio: bool = True,
    sample_rate: int | None = SAMPLE_RATE,
    reverse_activation: bool = False,
) -> pd.DataFrame:
    """Read MSP-IMPROV: one row per clip that has a wav and consensus activation and valence.

    Args:
        root: the MSP-IMPROV folder (holding ``Evaluation.txt`` or ``Evalution.txt`` and the session audio).
        strict: raise a CorpusFormatError on the first unusable clip instead of warning once about all of them.
        check_audio: open each wav's header (empty, unreadable, wrong sample rate); False only checks the wav exists.
        sample_rate: the sample rate every wav must have (16 kHz); None accepts any rate (the distributed audio may
            not be 16 kHz: resample it, or pass None and let the acoustic features resample).
        reverse_activation: store ``6 - A`` instead of ``A``. Some published loaders flip A on the assumption that it
            is stored high-to-low; the corpus documentation does not say so (unconfirmed), so the default takes A as
            stored. assumption: see README assumptions table.

    Returns:
        The utterance table (``COLUMNS``); speaker ``"MSP-IMPROV-F01"`` style (gender letter + session number from the
        third field of the clip name), session ``"session1"`` .. ``"session6"``, plus ``category`` (consensus code
        A H S N O X), ``dominance``, ``naturalness`` (NaN when missing), ``scenario`` (P / R / S / T) and ``target``
        (the elicited emotion letter of the sentence field). ``attrs``: ``corpus``, ``root``, ``label_file``,
        ``skipped``, ``unrated`` (NaN activation or valence), ``unlabelled_wavs``, ``missing_transcripts``.

    Raises:
        CorpusFormatError: missing root or label file, a consensus line that cannot be parsed (names file:line),
            a clip labelled twice, or (strict=True) any unusable clip.
    """
    base = resolve_root(root, CORPUS)
    label_file = next((base / name for name in LABEL_FILES if (base / name).is_file()), None)
    if label_file is None:
        raise CorpusFormatError(f"{CORPUS}: label file not found: expected {' or '.join(LABEL_FILES)} in {base}")
    labels = _read_labels(label_file)
    wavs = index_files(base, ".wav", CORPUS, prefix="MSP-IMPROV-")
    text_dir = base / "Text"
    texts = index_files(text_dir, ".txt", CORPUS) if text_dir.is_dir() else {}

    bad = BadRows(CORPUS, strict)
    rows: list[dict] = []
    unrated = 0
    for clip, label in labels.items():
        if math.isnan(label["activation"]) or math.isnan(label["valence"]):
            unrated += 1
            continue
        utt = f"MSP-IMPROV-{clip}"
        path = wavs.get(utt)
        session = f"session{int(label['session'])}"
        expected = base / "Audio" / session / f"S{label['sentence']}{label['target']}" / label["scenario"] / f"{utt}.wav"
        if not usable_wav(path, expected, bad, check_audio=check_audio, sample_rate=sample_rate):
            continue
        activation = label["activation"]
        if reverse_activation:
            activation = (1.0 + SCALE_MAX) - activation
        transcript_path = texts.get(utt) or texts.get(f"UTD-IMPROV-{clip}") or texts.get(clip)
        speaker_code = f"{label['gender']}{label['session']}"
        rows.append(
            {
                "utterance_id": utt,
                "speaker": f"MSP-IMPROV-{speaker_code}",
                "gender": label["gender"],
                "session": session,
                "wav_path": str(path),
                "transcript": read_transcript(transcript_path),
                "activation": activation,
                "valence": label["valence"],
                "category": label["category"],
                "dominance": label["dominance"],
                "naturalness": label["naturalness"],
                "scenario": label["scenario"],
                "target": label["target"],
            }
        )
    unlabelled = sorted(set(wavs) - {f"MSP-IMPROV-{clip}" for clip in labels})
    if unlabelled:
        log.debug("%s: %d wav(s) have no label and are ignored, e.g. %s", CORPUS, len(unlabelled), unlabelled[:3])
    return finish(
        rows, bad, CORPUS, root=str(base), label_file=str(label_file), unrated=unrated, unlabelled_wavs=len(unlabelled),
        reverse_activation=bool(reverse_activation),
    )


def _read_labels(path) -> dict[str, dict]:
    """Clip id (``S01A-F01-S-FM01``) -> consensus fields, from the blocks of Evaluation.txt."""
    labels: dict[str, dict] = {}
    first_of_block = True
    for lineno, raw in enumerate(read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line:
            first_of_block = True
            continue
        is_summary = line.upper().startswith(("UTD-IMPROV-", "MSP-IMPROV-"))
        if not is_summary and not first_of_block:
            continue  # a per-rater line
        first_of_block = False
        if not is_summary:
            raise _format_error(path, lineno, line, "a block does not start with a consensus line")
        label = _parse_summary(path, lineno, line)
        clip = label.pop("clip")
        if clip in labels:
            raise CorpusFormatError(f"{CORPUS}: clip {clip} is labelled twice: {labels[clip]['where']} and {label['where']}")
        labels[clip] = label
    if not labels:
        raise CorpusFormatError(f"{CORPUS}: {path}: no consensus line found; expected lines like '{SUMMARY_FORMAT}'")
    return labels


def _parse_summary(path, lineno: int, line: str) -> dict:
    match = _SUMMARY.match(line)
    if match is None:
        raise _format_error(path, lineno, line, "cannot parse consensus line")
    clip = match.group("id").upper()
    fields = _CLIP_ID.match(clip)
    if fields is None:
        raise _format_error(path, lineno, line, f"clip name {clip!r} is not S<nn><E>-<F|M><nn>-<scenario>-<turn>")
    values = {}
    for key, group, name in (("activation", "a", "A"), ("valence", "v", "V"), ("dominance", "d", "D"),
                             ("naturalness", "n", "N")):
        try:
            values[key] = to_float(match.group(group))
        except ValueError as exc:
            raise _format_error(path, lineno, line, f"{name} is {exc}") from None
    return {
        "clip": clip,
        "category": match.group("cat"),
        "gender": fields.group("gender"),
        "session": fields.group("session"),
        "sentence": fields.group("sentence"),
        "target": fields.group("target"),
        "scenario": fields.group("scenario"),
        **values,
        "where": where(path, lineno),
    }


def _format_error(path, lineno: int, line: str, what: str) -> CorpusFormatError:
    return CorpusFormatError(f"{CORPUS}: {where(path, lineno)}: {what}; expected '{SUMMARY_FORMAT}'. Line: {line!r}")
