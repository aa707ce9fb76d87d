"""The demo-podcast corpus on disk: the worker that renders one voice's wavs and the MSP-Podcast label and transcript
files, from the plan of ``privemo.corpora._demo_podcast_plan``. ``privemo.corpora.demo_podcast`` re-exports every name.
"""

from __future__ import annotations

from pathlib import Path

from ._demo_podcast_plan import _sentence
from ._synthesis import render_wav, write_pretraining_text

LABEL_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")


# ---------------------------------------------------------------------------------------------------------------------
# Audio (one fresh worker process per voice, see privemo.corpora.demo) and the label / transcript files.


def _synthesise_speaker(task: tuple[dict, str]) -> list[dict]:
    """Worker: render every segment of one voice in order and write its wavs under ``folder/Audios``."""
    speaker, folder = task
    results = []
    audio_dir = Path(folder, "Audios")
    for utt in speaker["utterances"]:
        _, text = render_wav(audio_dir / f"{utt['utterance_id']}.wav", utt, speaker)
        results.append({"utterance_id": utt["utterance_id"], "text": text})
    return results


def _rating_text(x: float) -> str:
    text = f"{x:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _write_text_files(folder: Path, plan: list[dict], rendered: dict[str, dict], seed: int) -> None:
    write_pretraining_text(folder, seed, _sentence)
    rows = []
    for sp in plan:
        for utt in sp["utterances"]:
            r = utt["ratings"]
            rows.append((f"{utt['utterance_id']}.wav", utt["category"], _rating_text(r["EmoAct"]),
                         _rating_text(r["EmoVal"]), _rating_text(r["EmoDom"]), sp["spkr_id"] or "Unknown",
                         sp["gender"] or "Unknown", sp["split"]))
    rows.sort()
    labels = folder / "Labels"
    labels.mkdir(parents=True, exist_ok=True)
    lines = [",".join(LABEL_COLUMNS)] + [",".join(row) for row in rows]
    (labels / "labels_consensus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    transcripts = folder / "Transcripts"
    transcripts.mkdir(parents=True, exist_ok=True)
    for uid in sorted(rendered):
        (transcripts / f"{uid}.txt").write_text(rendered[uid]["text"] + "\n", encoding="utf-8", newline="\n")
