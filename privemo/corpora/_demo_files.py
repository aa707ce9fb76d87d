"""The demo corpus on disk: the worker that renders one speaker's wavs and the IEMOCAP label and transcription files,
from the plan of ``privemo.corpora._demo_plan``. ``privemo.corpora.demo`` re-exports every name.
"""

from __future__ import annotations

from pathlib import Path

from ._demo_plan import DIALOGS, N_SESSIONS, _sentence
from ._synthesis import render_wav, write_pretraining_text


# ---------------------------------------------------------------------------------------------------------------------
# Audio: one worker process per speaker (fresh eSpeak engine state), writing 16 kHz PCM16 wavs.


def _synthesise_speaker(task: tuple[dict, str]) -> list[dict]:
    """Worker: render every utterance of one speaker in order and write its wavs under ``folder``."""
    speaker, folder = task
    results = []
    for utt in speaker["utterances"]:
        path = Path(folder, f"Session{speaker['session']}", "sentences", "wav", utt["dialog"], f"{utt['utterance_id']}.wav")
        duration, text = render_wav(path, utt, speaker)
        results.append({"utterance_id": utt["utterance_id"], "duration": duration, "text": text})
    return results


# ---------------------------------------------------------------------------------------------------------------------
# Label and transcription files (IEMOCAP formats).


_CATEGORY_NAMES = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "sad": "Sadness", "ang": "Anger",
                   "fru": "Frustration", "sur": "Surprise", "oth": "Other"}


def _format_labels(dialog: str, turns: list[tuple[dict, dict, float, float, str]]) -> tuple[str, str]:
    """EmoEvaluation and transcription text of one dialog from its turns (plan, speaker, start, duration, text)."""
    lab = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    trans = []
    for utt, speaker, start, duration, text in turns:
        end = start + duration
        v, a, d = utt["ratings"]
        uid = utt["utterance_id"]
        lab.append(f"[{start:.4f} - {end:.4f}]\t{uid}\t{utt['category']}\t[{v:.4f}, {a:.4f}, {d:.4f}]")
        raters = utt["raters"]
        n = len(raters["val"])
        cat_name = _CATEGORY_NAMES.get(utt["category"], "Other")
        for k in range(n):
            lab.append(f"C-E{k + 1}:\t{cat_name};\t()")
        lab.append(f"C-{speaker['letter']}{speaker['session']}:\t{cat_name};\t()")
        for k in range(n):
            lab.append(f"A-E{k + 1}:\tval {raters['val'][k]}; act {raters['act'][k]}; dom  {raters['dom'][k]};\t()")
        sr_ = utt["self_rating"]
        lab.append(f"A-{speaker['letter']}{speaker['session']}:\tval {sr_['val']}; act {sr_['act']}; dom  {sr_['dom']};\t()")
        lab.append("")
        trans.append(f"{uid} [{start:08.4f}-{end:08.4f}]: {text}")
    # a turn that is not an utterance of the corpus (IEMOCAP has these); readers must ignore it
    trans.append(f"{dialog}_MXX0 [{0.0:08.4f}-{0.5:08.4f}]: [BREATHING]")
    return "\n".join(lab) + "\n", "\n".join(trans) + "\n"


def _write_text_files(folder: Path, plan: list[dict], rendered: dict[str, dict], seed: int) -> None:
    write_pretraining_text(folder, seed, lambda rng, zv, za: _sentence(rng, zv, za)[0])
    for session in range(1, N_SESSIONS + 1):
        for dialog in DIALOGS[session - 1]:
            pairs = [(utt, sp) for sp in plan if sp["session"] == session for utt in sp["utterances"] if utt["dialog"] == dialog]
            if not pairs:
                continue
            # turn order: the two speakers alternate (F000 M000 F001 ...), the dialog's namesake speaker first
            pairs.sort(key=lambda p: (int(p[0]["utterance_id"][-3:]), p[1]["letter"] != dialog[5]))
            clock = 0.0
            turns = []
            for utt, sp in pairs:
                clock += utt["gap"]
                r = rendered[utt["utterance_id"]]
                turns.append((utt, sp, clock, r["duration"], r["text"]))
                clock += r["duration"]
            labels, transcript = _format_labels(dialog, turns)
            for sub, content in (("EmoEvaluation", labels), ("transcriptions", transcript)):
                path = folder / f"Session{session}" / "dialog" / sub / f"{dialog}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8", newline="\n")
