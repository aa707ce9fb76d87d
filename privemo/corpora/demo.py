"""The demo corpus: a small emotional-speech corpus privemo synthesises itself with eSpeak NG, in IEMOCAP's layout.

It lets every part of privemo run end to end without a licensed corpus. Its shape follows IEMOCAP so that
``load_corpus("demo")`` runs the real IEMOCAP reader:

* 5 sessions, each with one female and one male speaker (10 speakers, ``Ses01F`` ... ``Ses05M``); every speaker is an
  eSpeak NG voice variant (``en+f1``..``en+f5`` for women, five of ``en+m1``..``en+m7`` for men) with its own pitch offset,
  speaking rate, pitch range, loudness and recording noise floor, so gender is carried by the voice as in real speech.
* ``SessionN/sentences/wav/<dialog>/<utt>.wav`` (16 kHz mono PCM16, 1-4 s), ``SessionN/dialog/EmoEvaluation/<dialog>.txt``
  (``[V, A, D]`` means of 2-3 integer rater scores on 1-5, e.g. 2.5 or 3.3333, with the raters' own lines) and
  ``SessionN/dialog/transcriptions/<dialog>.txt``. Dialog names are irregular on purpose (``Ses03M_impro05a``,
  ``Ses05M_script01_1b``) and both speakers talk in every dialog (``Ses01F_impro01_M003`` is the MALE speaker).

Emotion cues, as in real speech (the constants below; each utterance has a latent activation and valence on 1-5):

* Activation mainly in the voice (speaking rate, loudness, pitch and pitch range rise with it) and partly in the words:
  openers ("Oh wow", "Come on" / "Hmm", "Um"), intensifiers ("absolutely", "totally" / "a bit", "kind of") and the
  arousal of the adjective and verb ("thrilling", "furious", "adore" / "peaceful", "gloomy", "regret"). The "!" of
  aroused utterances only changes eSpeak's intonation: ``privemo.tokenize`` drops punctuation.
* Valence mainly in the words (polarity of the adjective, verb and tag: "lovely", "enjoy", "thank goodness" / "awful",
  "hate", "what a shame"; every template has two such slots) and partly in the voice: higher pitch, wider range,
  slightly faster and a brighter voice (spectral tilt, ``privemo.corpora._synthesis.spectral_tilt``) when positive;
  lower, narrower, slower and darker when negative.
* Each slot's word class is drawn around the latent values (``WORD_VALENCE_GAIN``, ``WORD_ACTIVATION_GAIN``), prosody
  and tilt are jittered per utterance, and ratings are noisy rater means, so every task is learnable but none is
  trivial: ``benchmarks/demo_learnability.py`` scores the linear reference on each cell (seed 0: acoustic activation
  0.70, acoustic valence 0.49, lexical activation 0.51, lexical valence 0.61, gender 1.00 UAR).

Generation is deterministic from ``seed`` (same seed: byte-identical wavs and label files). The corpus is written once into
``demo_root(seed)`` (``$PRIVEMO_DATA/demo-seed<seed>-v<DEMO_VERSION>`` if ``PRIVEMO_DATA`` is set, else the user cache folder
``$XDG_CACHE_HOME/privemo`` or ``~/.cache/privemo``), assembled in a temporary sibling folder and renamed into place only when
complete, with a ``manifest.json`` of sizes and SHA-256 checksums. A later call checks the manifest and does nothing; a
half-written, tampered or incomplete corpus is detected and rebuilt.

eSpeak NG keeps global state that carries over from one utterance to the next (glottal phase, gain control), so every
speaker is synthesised in a fresh worker process (a pool of ``n_jobs`` processes, one task per speaker): the sequence of
calls each engine sees, and therefore the audio, depends only on the seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._schema import SAMPLE_RATE
from ._synthesis import (  # MANIFEST, MIN_DURATION_S and MAX_DURATION_S stay names of this module too
    MANIFEST,
    PRETRAINING_TEXT,
    MAX_DURATION_S,
    MIN_DURATION_S,
    CorpusSpec,
    articles,
    build,
    check_int,
    check_n_jobs,
    check_seed,
    check_verify,
    data_folder,
    ensure,
    level,
    pick,
    render_wav,
    verify_manifest,
    write_pretraining_text,
)

DEMO_SEED = 0
DEMO_VERSION = 3  # bump when the generator's output changes: the folder name and manifest carry it
N_SESSIONS = 5
# assumption: see README assumptions table. 64 utterances per speaker -> 640 utterances (>= 600 asked for).
DEFAULT_N_PER_SPEAKER = 64
GENERATOR = "privemo.corpora.demo"
_MARKER = ".privemo-demo"  # identifies a folder as a privemo demo corpus even if its manifest was deleted
_SPEC = CorpusSpec(name="demo", generator=GENERATOR, version=DEMO_VERSION, marker=_MARKER,
                   folder_pattern=r"demo-seed\d+-v\d+")

# Dialogs per session (names as in IEMOCAP, irregular ones included); utterances are spread over them in order.
DIALOGS: tuple[tuple[str, ...], ...] = (
    ("Ses01F_impro01", "Ses01F_script02_2", "Ses01M_impro03", "Ses01M_script01_1"),
    ("Ses02F_impro02", "Ses02F_script03_1", "Ses02M_impro06", "Ses02M_script02_1"),
    ("Ses03F_impro04", "Ses03F_script01_3", "Ses03M_impro05a", "Ses03M_impro08b"),
    ("Ses04F_impro07", "Ses04F_script03_2", "Ses04M_impro01", "Ses04M_script02_2"),
    ("Ses05F_impro03", "Ses05F_script01_2", "Ses05M_impro04", "Ses05M_script01_1b"),
)
FEMALE_VOICES = ("en+f1", "en+f2", "en+f3", "en+f4", "en+f5")
MALE_VOICES = ("en+m1", "en+m2", "en+m3", "en+m4", "en+m5", "en+m6", "en+m7")

# ---------------------------------------------------------------------------------------------------------------------
# Wording. Adjectives and verbs by (valence polarity, activation level), intensifiers and openers by activation level,
# tags by polarity. Levels: 0 = low / negative, 1 = mid / neutral, 2 = high / positive.
_NOUNS = (
    "weather", "meeting", "dinner", "trip", "news", "house", "job", "plan", "movie", "letter", "party", "car", "idea",
    "result", "weekend", "garden", "lesson", "neighbour", "project", "music", "story", "holiday", "phone call", "game",
)
_ADJ: dict[tuple[int, int], tuple[str, ...]] = {  # (valence, activation)
    (2, 2): ("thrilling", "fantastic", "amazing", "brilliant", "exciting", "incredible", "spectacular", "awesome"),
    (2, 1): ("wonderful", "great", "lovely", "delightful", "beautiful", "excellent", "perfect", "charming"),
    (2, 0): ("pleasant", "peaceful", "relaxing", "gentle", "soothing", "comfortable", "cosy", "restful"),
    (1, 2): ("intense", "hectic", "crazy", "loud", "wild", "frantic", "surprising", "busy"),
    (1, 1): ("ordinary", "usual", "normal", "regular", "typical", "standard", "common", "new"),
    (1, 0): ("quiet", "slow", "plain", "simple", "still", "sleepy", "soft", "long"),
    (0, 2): ("furious", "outrageous", "disgusting", "infuriating", "ridiculous", "shocking", "terrifying", "unbearable"),
    (0, 1): ("terrible", "awful", "horrible", "annoying", "stupid", "nasty", "ugly", "unfair"),
    (0, 0): ("sad", "miserable", "boring", "gloomy", "dull", "hopeless", "lonely", "depressing"),
}
_VERB: dict[tuple[int, int], tuple[str, ...]] = {
    (2, 2): ("adore", "love", "celebrate"),
    (2, 1): ("enjoy", "like", "appreciate"),
    (2, 0): ("admire", "welcome", "cherish"),
    (1, 2): ("rush", "chase", "push"),
    (1, 1): ("see", "need", "check", "mention"),
    (1, 0): ("remember", "notice", "wait for"),
    (0, 2): ("hate", "despise", "loathe"),
    (0, 1): ("resent", "dislike", "doubt"),
    (0, 0): ("regret", "dread", "miss"),
}
_INTENSIFIERS: dict[int, tuple[str, ...]] = {
    2: ("absolutely", "totally", "incredibly", "really", "so", "extremely"),
    1: ("quite", "fairly", "pretty", "rather"),
    0: ("a bit", "somewhat", "kind of", "slightly", "a little"),
}
_OPENERS: dict[int, tuple[str, ...]] = {
    2: ("Oh wow,", "Listen,", "Hey,", "Come on,", "Whoa,", "Seriously,"),
    1: ("", "", "So,", "Well,", "Okay,", "Right,"),
    0: ("Hmm,", "Um,", "Eh,", "Uh,", "Oh well,", "Yeah,"),
}
_TAGS: dict[int, tuple[str, ...]] = {
    2: ("thank goodness", "how nice", "I am glad"),
    1: ("I guess", "you know", "I think"),
    0: ("unfortunately", "what a shame", "I am upset"),
}
_TEMPLATES = (  # lower-case first word (except "I"): an opener may precede it. Two valence slots in each, and short:
    # a slow (low-activation) voice fits only some six words into the longest utterance
    "I {verb} this {int} {adj} {noun}",
    "that {noun} was {int} {adj}, {tag}",
    "you {verb} the {adj} {noun}",
    "the {noun} is {adj}, {tag}",
    "I {verb} the {noun}, it's {adj}",
    "{art} {int} {adj} {noun}, {tag}",
    "I {verb} my {noun}, it's {int} {adj}",
    "my {noun} was {adj}, {tag}",
    "we {verb} this {adj} {noun}",
)
_SUFFIXES = ("", "", " again", " right now", " this time")

# ---------------------------------------------------------------------------------------------------------------------
# assumption: see README assumptions table. How the latent activation / valence (z in [-1, 1]) drive the words and
# eSpeak's prosody.
BASE_RATE_WPM = 165.0
RATE_PER_Z = (0.30, 0.10)  # relative rate change per unit of (activation z, valence z)
PITCH_PER_Z = (16.0, 9.0)  # eSpeak pitch units (0-100) per unit of (activation z, valence z)
RANGE_PER_Z = (28.0, 14.0)  # eSpeak pitch-range units (0-100)
VOLUME_PER_Z = 0.40  # relative loudness change per unit of activation z
TILT_PER_Z = 1.0  # spectral tilt (dB per octave, privemo.corpora._synthesis.spectral_tilt) per unit of valence z
PROSODY_JITTER = {"rate": 0.06, "pitch": 4.0, "range": 6.0, "volume": 0.08, "tilt": 0.8}  # per utterance (log-rate,
# units, log-volume, dB per octave)
RATER_NOISE = 0.55  # s.d. of a rater's score around the latent value (before rounding to 1..5)
WORD_VALENCE_GAIN = 4.0  # logit gain of the valence z on a slot's polarity
WORD_ACTIVATION_GAIN = 1.5  # logit gain of the activation z on a slot's activation level
NEUTRAL_LOGIT = 0.8  # logit of the mid / neutral word class


def demo_root(seed: int = DEMO_SEED, n_per_speaker: int = DEFAULT_N_PER_SPEAKER) -> Path:
    """Where the demo corpus for ``seed`` lives: ``$PRIVEMO_DATA/demo-seed<seed>-v<version>`` or the user cache folder;
    a corpus of another size than the default gets its own folder (suffix ``-n<n_per_speaker>``)."""
    seed = check_seed(seed)
    size = "" if n_per_speaker == DEFAULT_N_PER_SPEAKER else f"-n{int(n_per_speaker)}"
    return data_folder() / f"demo-seed{seed}-v{DEMO_VERSION}{size}"


# ---------------------------------------------------------------------------------------------------------------------
# The plan: every utterance's text, prosody and ratings, computed from the seed alone (no audio yet).


def _speakers(seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 1])
    female = [FEMALE_VOICES[i] for i in rng.permutation(len(FEMALE_VOICES))]
    male = [MALE_VOICES[i] for i in rng.permutation(len(MALE_VOICES))[:N_SESSIONS]]
    speakers = []
    for s in range(N_SESSIONS):
        for letter, voice in (("F", female[s]), ("M", male[s])):
            speakers.append(
                {
                    "session": s + 1,
                    "letter": letter,
                    "name": f"Ses{s + 1:02d}{letter}",
                    "voice": voice,
                    "pitch_offset": float(rng.uniform(-10, 10)),
                    "rate_factor": float(rng.uniform(0.88, 1.12)),
                    "range_offset": float(rng.uniform(-10, 10)),
                    "volume_factor": float(rng.uniform(0.85, 1.1)),
                    "noise_db": float(rng.uniform(-56, -44)),
                }
            )
    return speakers


def _sentence(rng: np.random.Generator, zv: float, za: float) -> tuple[list[str], str]:
    """Candidate texts (longest first; shorter ones drop the suffix, the opener, then the tag) for one utterance: each
    slot's word class is drawn around the latent valence (polarity) and activation (arousal level)."""
    template = pick(rng, _TEMPLATES)

    def va() -> tuple[int, int]:  # one slot's (valence polarity, activation level)
        return level(rng, zv, WORD_VALENCE_GAIN, NEUTRAL_LOGIT), level(rng, za, WORD_ACTIVATION_GAIN, NEUTRAL_LOGIT)

    fills = {
        "noun": pick(rng, _NOUNS),
        "adj": pick(rng, _ADJ[va()]),
        "verb": pick(rng, _VERB[va()]),
        "int": pick(rng, _INTENSIFIERS[level(rng, za, WORD_ACTIVATION_GAIN, NEUTRAL_LOGIT)]),
        "tag": pick(rng, _TAGS[level(rng, zv, WORD_VALENCE_GAIN, NEUTRAL_LOGIT)]),
    }
    opener = pick(rng, _OPENERS[level(rng, za, WORD_ACTIVATION_GAIN, NEUTRAL_LOGIT)])
    suffix = pick(rng, _SUFFIXES)
    core = articles(template.format(art="{art}", **fills))
    short = articles(template.replace(", {tag}", "").format(art="{art}", **fills))
    end = "!" if za > 0.45 and rng.random() < 0.6 else "."
    variants = [f"{opener} {core}{suffix}".strip(), f"{opener} {core}".strip(), f"{core}{suffix}", core, short]
    texts = []
    for v in variants:
        text = v[0].upper() + v[1:] + end
        if text not in texts:
            texts.append(text)
    return texts, end


def _ratings(rng: np.random.Generator, latent: float, n_raters: int) -> list[int]:
    return [int(np.clip(np.rint(latent + rng.normal(0.0, RATER_NOISE)), 1, 5)) for _ in range(n_raters)]


_CATEGORY_NAMES = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "sad": "Sadness", "ang": "Anger",
                   "fru": "Frustration", "sur": "Surprise", "oth": "Other"}


def _category(rng: np.random.Generator, v: float, a: float) -> str:
    if rng.random() < 0.1:
        return "xxx"  # no agreement, as for many IEMOCAP utterances
    if a >= 3.5 and v <= 2.5:
        return "ang" if a >= 4 else "fru"
    if a >= 3.5 and v >= 3.5:
        return "exc" if a >= 4 else "hap"
    if a <= 2.5 and v <= 2.5:
        return "sad"
    if v >= 3.5:
        return "hap"
    if a >= 4:
        return "sur"
    if v <= 2.5:
        return "fru"
    return "neu"


def _plan(seed: int, n_per_speaker: int) -> list[dict]:
    """One dict per speaker: its voice profile and its utterances (text candidates, prosody, ratings), in order."""
    speakers = _speakers(seed)
    for sp_index, sp in enumerate(speakers):
        rng = np.random.default_rng([seed, 2, sp_index])
        dialogs = DIALOGS[sp["session"] - 1]
        blocks = np.array_split(np.arange(n_per_speaker), len(dialogs))
        utterances = []
        for dialog, block in zip(dialogs, blocks):
            for number, _ in enumerate(block):
                a_lat, v_lat = rng.uniform(1.2, 4.8, size=2)
                d_lat = float(np.clip(0.6 * a_lat + 0.4 * rng.uniform(1, 5) + rng.normal(0, 0.3), 1, 5))
                za, zv = (a_lat - 3.0) / 1.8, (v_lat - 3.0) / 1.8
                n_raters = 3 if rng.random() < 0.6 else 2
                raters = {
                    "val": _ratings(rng, v_lat, n_raters),
                    "act": _ratings(rng, a_lat, n_raters),
                    "dom": _ratings(rng, d_lat, n_raters),
                }
                self_rating = {k: int(np.clip(np.rint(x + rng.normal(0, 0.8)), 1, 5)) for k, x in
                               (("val", v_lat), ("act", a_lat), ("dom", d_lat))}
                v_mean, a_mean, d_mean = (float(np.mean(raters[k])) for k in ("val", "act", "dom"))
                texts, _ = _sentence(rng, zv, za)
                rate = BASE_RATE_WPM * sp["rate_factor"] * (1 + RATE_PER_Z[0] * za + RATE_PER_Z[1] * zv) * float(
                    np.exp(rng.normal(0, PROSODY_JITTER["rate"])))
                pitch = 50 + sp["pitch_offset"] + PITCH_PER_Z[0] * za + PITCH_PER_Z[1] * zv + rng.normal(0, PROSODY_JITTER["pitch"])
                prange = 50 + sp["range_offset"] + RANGE_PER_Z[0] * za + RANGE_PER_Z[1] * zv + rng.normal(0, PROSODY_JITTER["range"])
                volume = 100 * sp["volume_factor"] * (1 + VOLUME_PER_Z * za) * float(np.exp(rng.normal(0, PROSODY_JITTER["volume"])))
                tilt = TILT_PER_Z * zv + rng.normal(0, PROSODY_JITTER["tilt"])
                utterances.append(
                    {
                        "utterance_id": f"{dialog}_{sp['letter']}{number:03d}",
                        "dialog": dialog,
                        "texts": texts,
                        "rate": int(np.clip(round(rate), 90, 300)),
                        "pitch": int(np.clip(round(pitch), 5, 95)),
                        "range": int(np.clip(round(prange), 5, 100)),
                        "volume": int(np.clip(round(volume), 40, 160)),
                        "tilt": round(float(tilt), 2),
                        "noise_seed": [seed, 3, sp_index, len(utterances)],
                        "latent": {"activation": float(a_lat), "valence": float(v_lat)},
                        "ratings": (v_mean, a_mean, d_mean),
                        "raters": raters,
                        "self_rating": self_rating,
                        "category": _category(rng, v_mean, a_mean),
                        "gap": float(rng.uniform(0.2, 1.5)),  # silence before this turn in the dialog timeline
                    }
                )
        sp["utterances"] = utterances
    return speakers


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


# ---------------------------------------------------------------------------------------------------------------------
# Verification and building.


def verify_demo(
    root: str | os.PathLike, *, seed: int | None = None, n_per_speaker: int | None = None, full: bool = False
) -> list[str]:
    """Check a demo corpus folder against its manifest; return the problems found (empty list: the corpus is intact).

    The cheap check (default) reads the manifest, checks its own checksum, its generator, version and (if given) seed
    and size, that exactly the listed files exist with the listed sizes, and re-hashes the small text files. ``full=True``
    also re-hashes every wav (catches same-size corruption; ~1 s for the default corpus).
    """

    def expect(manifest: dict, path: Path) -> list[str]:
        problems = []
        if seed is not None and manifest.get("seed") != seed:
            problems.append(f"{path}: corpus was generated with seed={manifest.get('seed')}, expected seed={seed}")
        if n_per_speaker is not None and manifest.get("n_per_speaker") != n_per_speaker:
            problems.append(f"{path}: corpus has n_per_speaker={manifest.get('n_per_speaker')}, expected {n_per_speaker}")
        return problems

    return verify_manifest(_SPEC, root, expect, full)


def synthesize_demo(
    root: str | os.PathLike | None = None,
    *,
    seed: int = DEMO_SEED,
    n_per_speaker: int = DEFAULT_N_PER_SPEAKER,
    progress: bool = True,
    n_jobs: int | None = None,
    verify: str = "quick",
) -> Path:
    """Make sure the demo corpus exists at ``root`` (default ``demo_root(seed)``) and return its folder.

    Args:
        root: the corpus folder (it will hold ``Session1`` .. ``Session5`` and ``manifest.json``). ``None``: ``demo_root(seed)``.
        seed: everything (voices, texts, prosody, ratings, noise) is drawn from it; same seed, same bytes.
        n_per_speaker: utterances per speaker (10 speakers); the default 64 gives 640 utterances.
        progress: show a tqdm progress bar on stderr while generating.
        n_jobs: worker processes (default: min(2, CPU count)); the output does not depend on it.
        verify: "quick" (sizes, manifest checksum, text-file hashes), "full" (also re-hash every wav) or "none"
            (trust an existing manifest).

    Returns:
        The corpus folder. If an intact corpus with the same seed and size is already there, nothing is written;
        a half-written, tampered or different one is replaced (only folders that are privemo demo corpora are ever replaced).
    """
    seed = check_seed(seed)
    n_per_speaker = check_int("n_per_speaker", n_per_speaker, 1, "a positive int")
    verify = check_verify(verify)
    n_jobs = check_n_jobs(n_jobs)
    root = Path(root).expanduser() if root is not None else demo_root(seed, n_per_speaker)
    root = root.absolute()

    def make() -> None:
        plan = _plan(seed, n_per_speaker)
        fields = {"seed": seed, "n_per_speaker": n_per_speaker, "n_speakers": 2 * N_SESSIONS, "sample_rate": SAMPLE_RATE}
        build(_SPEC, root, seed=seed, speakers=plan, worker=_synthesise_speaker,
              write_text_files=lambda folder, rendered: _write_text_files(folder, plan, rendered, seed), fields=fields,
              progress=progress, n_jobs=n_jobs)

    return ensure(_SPEC, root, verify=verify, fields={"seed": seed, "n_per_speaker": n_per_speaker},
                  check=lambda full: verify_demo(root, seed=seed, n_per_speaker=n_per_speaker, full=full), make=make)


def load_demo(
    root: str | os.PathLike | None = None,
    *,
    seed: int = DEMO_SEED,
    strict: bool = False,
    n_per_speaker: int = DEFAULT_N_PER_SPEAKER,
    progress: bool = True,
    **kw: Any,
) -> pd.DataFrame:
    """The demo corpus as an utterance table, synthesising it first if needed (see ``synthesize_demo``).

    The table is read by the real IEMOCAP reader (``load_iemocap(root, corpus="demo")``), so it has IEMOCAP's columns:
    ``COLUMNS`` plus ``category``, ``dominance`` and ``dialog``; ``attrs["corpus"] == "demo"``. Extra keyword arguments
    go to ``load_iemocap`` (e.g. ``check_audio=False``).
    """
    from .iemocap import load_iemocap

    folder = synthesize_demo(root, seed=seed, n_per_speaker=n_per_speaker, progress=progress)
    table = load_iemocap(folder, strict=strict, corpus="demo", **kw)
    table.attrs["seed"] = seed
    table.attrs["pretraining_text"] = str(folder / PRETRAINING_TEXT)  # the demo's word-vector pretraining text
    return table


__all__ = ["synthesize_demo", "load_demo", "verify_demo", "demo_root", "DEMO_SEED", "DEMO_VERSION", "DEFAULT_N_PER_SPEAKER"]
