"""Tiny, format-faithful trees of the four licensed corpora, for tests.

Each ``make_*`` writes a corpus tree (short 16 kHz sine wavs, the real label-file formats, the traps listed in
/work/shared/corpora.md) under a folder and returns a ``CorpusTree``: the folder to pass as ``root``, the rows a correct
loader must return (utterance id -> expected column values, wav_path included) and the expected ``table.attrs`` counts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000


class CorpusTree(NamedTuple):
    root: Path
    rows: dict[str, dict]
    attrs: dict[str, object]


def write_wav(path: str | Path, *, seconds: float = 0.1, sample_rate: int = SAMPLE_RATE, freq: float = 220.0) -> Path:
    """A short 16-bit sine wav (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sf.write(str(path), 0.1 * np.sin(2 * np.pi * freq * t), sample_rate, subtype="PCM_16")
    return path


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


RESOURCE_FORK = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02\x00\x00\x00\t\x00\x00\x002\x00\x00\x0e\xb0"

# ---------------------------------------------------------------------------------------------------------------- IEMOCAP
# (session, dialog, last field, category, V, A, D or None, transcript or None). Traps: irregular dialog names, utterances
# of the male actor inside dialogs whose name starts with SesNNF (and the reverse), a missing dominance, a missing
# transcript line.
IEMOCAP_UTTERANCES = [
    (1, "Ses01F_impro01", "F000", "neu", 2.5, 2.5, 2.5, "Excuse me."),
    (1, "Ses01F_impro01", "M001", "fru", 2.0, 3.5, 3.5, "Do you have your forms?"),
    (1, "Ses01F_script02_2", "F000", "xxx", 3.0, 2.0, None, "I'm going to miss you, [LAUGHTER] you know."),
    (1, "Ses01F_script02_2", "M012", "sad", 1.5, 1.5, 2.0, None),
    (2, "Ses02M_impro03", "F000", "hap", 4.0, 3.5, 3.0, "That's wonderful!"),
    (2, "Ses02M_impro03", "M001", "exc", 4.5, 4.5, 4.0, "Yeah."),
    (3, "Ses03M_impro05a", "M000", "ang", 1.5, 4.0, 4.5, "Get out."),
    (3, "Ses03M_impro08b", "F003", "neu", 3.0, 2.0, 2.5, "Okay."),
    (4, "Ses04F_script01_1", "F000", "sur", 3.5, 3.5, 3.0, "Really?"),
    (4, "Ses04F_script01_1", "M000", "neu", 3.0, 2.5, 3.0, "Yes."),
    (5, "Ses05M_script01_1b", "F001", "fea", 2.0, 3.0, 2.0, "What was that?"),
    (5, "Ses05M_script01_1b", "M000", "dis", 1.0, 3.0, 3.5, "Nothing."),
]
IEMOCAP_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def iemocap_summary_line(utt: str, category: str, v: float, a: float, d: float | None, start: float = 6.2901) -> str:
    ratings = f"{v:.4f}, {a:.4f}" + (f", {d:.4f}" if d is not None else "")
    return f"[{start:.4f} - {start + 2:.4f}]\t{utt}\t{category}\t[{ratings}]\n"


def make_iemocap(folder: str | Path, *, parent: bool = False) -> CorpusTree:
    """An IEMOCAP_full_release tree with 12 labelled utterances in 5 sessions (written under ``folder``, or under
    ``folder/IEMOCAP_full_release`` when ``parent``; the returned root is ``folder`` either way).

    Also present: an unlabelled wav, a transcript line of a turn with no wav, ``._`` files, EmoEvaluation sub-folders
    and a header-less file in EmoEvaluation whose lines look like labels (must be skipped).
    """
    folder = Path(folder)
    base = folder / "IEMOCAP_full_release" if parent else folder
    rows: dict[str, dict] = {}
    labels: dict[tuple[int, str], str] = {}
    transcripts: dict[tuple[int, str], str] = {}
    for i, (session, dialog, last, cat, v, a, d, text) in enumerate(IEMOCAP_UTTERANCES):
        utt = f"{dialog}_{last}"
        sdir = base / f"Session{session}"
        wav = write_wav(sdir / "sentences" / "wav" / dialog / f"{utt}.wav", freq=150 + 20 * i)
        block = iemocap_summary_line(utt, cat, v, a, d, start=6.2901 + 3 * i)
        block += "C-E2:\tNeutral;\t()\nC-E3:\tFrustration; Anger;\t()\nC-F1:\tNeutral;\t(curious)\n"
        block += "A-E3:\tval 3; act 2; dom  2;\t()\nA-F1:\tval 2; act 1; dom  3;\t()\n\n"
        labels[(session, dialog)] = labels.get((session, dialog), IEMOCAP_HEADER) + block
        if text is not None:
            transcripts[(session, dialog)] = transcripts.get((session, dialog), "") + (
                f"{utt} [{6.29 + 3 * i:08.4f}-{8.29 + 3 * i:08.4f}]: {text}\n"
            )
        session_id = f"Ses{session:02d}"
        rows[utt] = {
            "speaker": session_id + last[0],
            "gender": last[0],
            "session": session_id,
            "wav_path": str(wav.resolve()),
            "transcript": text,
            "activation": a,
            "valence": v,
            "category": cat,
            "dominance": d,
            "dialog": dialog,
        }
    for (session, dialog), text in labels.items():
        _write(base / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt", text)
    for (session, dialog), text in transcripts.items():
        # a turn that is not an utterance of the corpus (no wav, no label), and a line of another shape
        text = f"{dialog}_MXX0 [001.0000-002.0000]: [BREATHING]\n" + text + "M: [GARBAGE]\n"
        _write(base / f"Session{session}" / "dialog" / "transcriptions" / f"{dialog}.txt", text)
    s1 = base / "Session1"
    write_wav(s1 / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F099.wav")  # wav without a label
    _write(s1 / "sentences" / "wav" / "Ses01F_impro01" / "._Ses01F_impro01_F000.wav", RESOURCE_FORK)
    emo = s1 / "dialog" / "EmoEvaluation"
    _write(emo / "._Ses01F_impro01.txt", RESOURCE_FORK)
    _write(emo / "Categorical" / "Ses01F_impro01_e2_cat.txt", "Ses01F_impro01_F000 :Neutral; ()\n")
    _write(emo / "Attribute" / "Ses01F_impro01_atr.txt", "Ses01F_impro01_F000 :act 2; val 3; dom 2; ()\n")
    # no '%' header: not an EmoEvaluation file, although its line parses as a summary line of an utterance with no wav
    _write(emo / "Ses01F_impro01_notes.txt", iemocap_summary_line("Ses01F_impro01_F050", "neu", 3, 3, 3))
    _write(s1 / "dialog" / "transcriptions" / "._Ses01F_impro01.txt", RESOURCE_FORK)
    attrs = {"unlabelled_wavs": 1, "skipped_label_files": 1, "missing_transcripts": 1, "unrated": 0, "skipped": 0}
    return CorpusTree(folder, rows, attrs)


# ------------------------------------------------------------------------------------------------------------- MSP-IMPROV
# (clip id without MSP-IMPROV-, consensus code, A, V, D or None, N or None, transcript or None)
MSP_IMPROV_CLIPS = [
    ("S01A-F01-S-FM01", "A", 3.4, 2.2, 3.0, 3.2, "I can't believe you did that."),
    ("S01A-M01-P-MF03", "N", 2.6, 3.0, None, None, "Okay, fine."),
    ("S02H-F02-R-FF01", "H", 3.8, 4.2, 3.4, 4.0, "This is great."),
    ("S02H-M02-T-MM02", "X", 3.0, 3.0, 3.0, 3.0, "Whatever."),
    ("S03S-F03-P-FM05", "S", 1.8, 1.6, 2.0, 4.2, "I miss him."),
    ("S03S-M03-S-MF01", "S", 2.0, 2.0, 2.2, 3.0, "It's over."),
    ("S04N-F04-R-FM01", "N", 2.8, 3.2, 3.0, 4.0, "See you tomorrow."),
    ("S04N-M04-P-MF02", "O", 3.2, 2.8, 3.0, 3.6, None),
    ("S05A-F05-T-FF03", "A", 4.2, 1.8, 4.0, 3.0, "Leave me alone!"),
    ("S05A-M05-S-MM01", "A", 4.6, 1.4, 4.4, 2.8, "Get out!"),
    ("S06H-F06-P-FM04", "H", 3.6, 4.4, 3.2, 4.4, "We won!"),
    ("S06H-M06-R-MF01", "H", 3.4, 4.0, 3.0, 3.8, "Yes!"),
]
MSP_IMPROV_UNRATED = "S01N-F01-P-FM09"  # consensus line with A:NaN; V:NaN (wav present)


def msp_improv_summary_line(clip: str, cat: str, a, v, d, n) -> str:
    def f(x):
        return "NaN" if x is None else f"{x:.6f}"

    return f"UTD-IMPROV-{clip}.avi; {cat}; A:{f(a)}; V:{f(v)}; D:{f(d)} ; N:{f(n)};\n"


def make_msp_improv(folder: str | Path, *, label_name: str = "Evalution.txt") -> CorpusTree:
    """An MSP-IMPROV tree with 12 rated clips (one per speaker), sessions 1-3 under ``Audio/`` and 4-6 without it, the
    labels in ``label_name`` (``Evalution.txt`` by default: the misspelt variant), one unrated clip, one unlabelled wav,
    ``Text/`` transcripts for all but one clip, plus ``._`` and ``.avi`` files next to the wavs."""
    root = Path(folder)
    rows: dict[str, dict] = {}
    blocks = []
    for i, (clip, cat, a, v, d, n, text) in enumerate(MSP_IMPROV_CLIPS + [(MSP_IMPROV_UNRATED, "X", None, None, None,
                                                                            None, "Hi.")]):
        sentence, speaker, scenario, _ = clip.split("-")
        session = int(speaker[1:])
        audio = root / "Audio" if session <= 3 else root
        leaf = audio / f"session{session}" / sentence / scenario
        wav = write_wav(leaf / f"MSP-IMPROV-{clip}.wav", freq=140 + 25 * i)
        _write(leaf / f"MSP-IMPROV-{clip}.avi", b"\x00\x00not a video")
        blocks.append(
            msp_improv_summary_line(clip, cat, a, v, d, n)
            + f"rater{i}; Angry; Angry,Frustrated; A:3.000000; V:2.000000; D:3.000000; N:3.000000;\n"
            + f"rater{i + 1}; Neutral; ; A:2.000000; V:3.000000; D:NaN; N:NaN;\n"
        )
        if text is not None:
            _write(root / "Text" / f"MSP-IMPROV-{clip}.txt", text + "\n")
        if a is None:
            continue
        rows[f"MSP-IMPROV-{clip}"] = {
            "speaker": f"MSP-IMPROV-{speaker}",
            "gender": speaker[0],
            "session": f"session{session}",
            "wav_path": str(wav.resolve()),
            "transcript": text,
            "activation": a,
            "valence": v,
            "category": cat,
            "dominance": d,
            "naturalness": n,
            "scenario": scenario,
            "target": sentence[-1],
        }
    _write(root / label_name, "\n".join(blocks))
    write_wav(root / "Audio" / "session1" / "S01A" / "P" / "MSP-IMPROV-S01A-F01-P-FM77.wav")  # no label
    _write(root / "Audio" / "session1" / "S01A" / "P" / "._MSP-IMPROV-S01A-F01-S-FM01.wav", RESOURCE_FORK)
    attrs = {"unlabelled_wavs": 1, "unrated": 1, "missing_transcripts": 1, "skipped": 0}
    return CorpusTree(root, rows, attrs)


# ------------------------------------------------------------------------------------------------------------ MSP-Podcast
MSP_PODCAST_HEADER = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
# (file name, class, act, val, dom, SpkrID, Gender, Split_Set, transcript)
MSP_PODCAST_ROWS = [
    ("MSP-PODCAST_0001_0008.wav", "N", "2.2", "4.0", "2.6", "30", "Male", "Test1", "so that was the plan"),
    ("MSP-PODCAST_0001_0009.wav", "H", "5.0", "6.2", "4.0", "30", "Male", "Train", "and we loved it"),
    ("MSP-PODCAST_0002_0001.wav", "A", "6.0", "2.0", "5.5", "127", "Female", "Validation", "no way"),
    ("MSP-PODCAST_0003_0004.wav", "S", "3.0", "2.5", "3.0", "Unknown", "Unknown", "Train", None),
    ("MSP-PODCAST_0004_0010.wav", "N", "4.0", "4.0", "4.0", "Unknown", "Female", "Development", "right"),
    ("MSP-PODCAST_0005_0002.wav", "X", "3.8", "3.2", "", "88", "Male", "Test2", "I guess"),
    ("MSP-PODCAST_0006_0001.wav", "", "", "", "", "Unknown", "Unknown", "Test3", "unlabelled one"),
    ("MSP-PODCAST_0006_0002.wav", "", "NaN", "NaN", "NaN", "Unknown", "Unknown", "Test3", None),
]


def make_msp_podcast(folder: str | Path, *, label_name: str = "labels_consensus.csv", audio_dir: str = "Audios/Audios"
                     ) -> CorpusTree:
    """An MSP-Podcast tree: 6 rated segments (two with an Unknown speaker, one with an Unknown gender, one "Validation"
    row), 2 unrated Test3 rows, an unlabelled wav, audio in ``audio_dir`` (nested by default), transcripts for some."""
    root = Path(folder)
    rows: dict[str, dict] = {}
    lines = [MSP_PODCAST_HEADER]
    for i, (name, cat, act, val, dom, spk, gender, split, text) in enumerate(MSP_PODCAST_ROWS):
        lines.append(",".join([name, cat, act, val, dom, spk, gender, split]))
        wav = write_wav(root / audio_dir / name, freq=160 + 15 * i)
        utt = name[:-4]
        if text is not None:
            _write(root / "Transcripts" / f"{utt}.txt", text + "\n")
        if act in ("", "NaN"):
            continue
        rows[utt] = {
            "speaker": None if spk == "Unknown" else f"MSP-PODCAST-{spk}",
            "gender": {"Male": "M", "Female": "F"}.get(gender),
            "session": utt.rsplit("_", 1)[0],
            "wav_path": str(wav.resolve()),
            "transcript": text,
            "activation": float(act),
            "valence": float(val),
            "split": "Development" if split == "Validation" else split,
            "category": cat,
            "dominance": float(dom) if dom else None,
        }
    _write(root / "Labels" / label_name, "\n".join(lines) + "\n")
    write_wav(root / audio_dir / "MSP-PODCAST_9999_0001.wav")  # no label
    _write(root / "Partitions.txt", "Train; MSP-PODCAST_0001_0009.wav\n")
    attrs = {"unrated": 2, "unknown_speakers": 2, "unknown_genders": 1, "unlabelled_wavs": 1, "missing_transcripts": 1,
             "skipped": 0, "dropped_unknown": 0}
    return CorpusTree(root, rows, attrs)


# ------------------------------------------------------------------------------------------------------------------- MuSE
MUSE_COLUMNS = ("Sentence_name,Duration,Gender,Type,Ques_Type,Activation_Mean,Activation_SD,Valence_Mean,Valence_SD,"
                "Activation_Annotation,Valence_Annotation,C_Activation_Mean,C_Activation_SD,C_Valence_Mean,C_Valence_SD,"
                "C_Activation_Annotation,C_Valence_Annotation,S_Activation,S_Valence")
# (file stem, Sentence_name as written, Gender as written, Type, Activation_Mean, Valence_Mean, transcript or None)
MUSE_CLIPS = [
    ("01_DR-100_0097_1_sentence_1", "01_DR-100_0097_1_sentence_1.wav", "Female", "S", 6.2, 3.4, "i was so nervous"),
    ("01_DR-100_0097_1_sentence_2", "01_DR-100_0097_1_sentence_2.wav", "F", "S", 5.8, 3.0, "about the exam"),
    ("01_DR-100_0102_4_sentence_1", "01_DR-100_0102_4_sentence_1", "Female", "NS", 3.1, 6.6, "we went hiking"),
    ("02_DR-100_0210_2_sentence_1", "02_DR-100_0210_2_sentence_1.wav", "Male", "S", 7.0, 2.2, "deadlines everywhere"),
    ("02_DR-100_0215_1_sentence_3", "02_DR-100_0215_1_sentence_3.wav", "M", "NS", 2.4, 5.9, None),
    ("03_DR-100_0301_1_sentence_1", "03_DR-100_0301_1_sentence_1.wav", "female", "NS", 4.0, 5.0, "my dog"),
    ("03_DR-100_0305_2_sentence_2", "03_DR-100_0305_2_sentence_2.wav", "Female", "S", 5.5, 4.5, "the interview"),
]


def muse_csv_row(sentence_name: str, gender: str, kind: str, act, val) -> str:
    return ",".join([sentence_name, "3.52", gender, kind, "Q1", str(act), "1.1", str(val), "0.9", "5;6;7", "3;4;3",
                     "6.0", "1.0", "3.5", "0.8", "6;6;6", "4;3;4", "7", "3"])


def make_muse(folder: str | Path, *, survey_dir: str = "Survey Information (Questions, Data etc)",
              not_stressed_dir: str = "Non Stressed") -> CorpusTree:
    """A MuSE tree: 7 clips of 3 participants (stressed and not), Sentence_name with and without ``.wav``, F/Female/M/Male
    genders, one identical repeated row, a second csv without the label columns, an unlabelled full-monologue wav,
    transcripts for all but one clip."""
    root = Path(folder)
    rows: dict[str, dict] = {}
    lines = [MUSE_COLUMNS]
    for i, (stem, name, gender, kind, act, val, text) in enumerate(MUSE_CLIPS):
        lines.append(muse_csv_row(name, gender, kind, act, val))
        if kind == "S":
            leaf = root / "Stressed" / "Audio" / "Stressed Question Monologue Audio"
        else:
            leaf = root / not_stressed_dir / "Audio" / "Non Stressed Question Monologue Audio [Sentence Split]"
        wav = write_wav(leaf / f"{stem}.wav", freq=170 + 20 * i)
        if text is not None:
            _write(root / "Combined" / "Utterance Transcripts" / f"{stem}.txt", text + "\n")
        speaker = "MuSE-" + stem.split("_")[0]
        rows[stem] = {
            "speaker": speaker,
            "gender": gender[0].upper(),
            "session": speaker,
            "wav_path": str(wav.resolve()),
            "transcript": text,
            "activation": act,
            "valence": val,
            "stressed": kind == "S",
        }
    lines.append(lines[1])  # the same row again
    survey = root / survey_dir
    _write(survey / "Emotion data from crowdsourcing (C is when annotators had access to all previous sentences).csv",
           "\n".join(lines) + "\n")
    _write(survey / "Questions.csv", "Ques_Type,Question\nQ1,How was your day?\n")
    write_wav(root / "Stressed" / "Audio" / "Stressed Question Monologue Audio" / "01_DR-100_0097.wav")  # no label
    attrs = {"unrated": 0, "unknown_genders": 0, "duplicate_labels": 1, "unlabelled_wavs": 1, "missing_transcripts": 1,
             "skipped": 0}
    return CorpusTree(root, rows, attrs)


def word_levels(tables: dict) -> dict[str, int]:
    """Phrase -> level (0 low / negative, 1 mid, 2 high / positive) over word tables keyed by level, phrases that occur
    at more than one level left out (e.g. "so": an opener and an intensifier)."""
    levels: dict[str, set[int]] = {}
    for key, words in tables.items():
        for word in words:
            phrase = " ".join(re.findall(r"[a-z']+", word.lower()))
            if phrase:
                levels.setdefault(phrase, set()).add(key)
    return {w: next(iter(lv)) for w, lv in levels.items() if len(lv) == 1}


def word_score(text: str, levels: dict[str, int]) -> int:
    """Number of high-level phrases minus number of low-level phrases in ``text``."""
    padded = " " + " ".join(re.findall(r"[a-z']+", text.lower())) + " "
    return sum((level - 1) * padded.count(f" {phrase} ") for phrase, level in levels.items())
