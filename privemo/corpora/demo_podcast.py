"""The demo-podcast corpus: a many-speaker emotional-speech corpus privemo synthesises with eSpeak NG, in MSP-Podcast's layout.

The demo corpus (``privemo.corpora.demo``) has 10 speakers, so each of its five folds tests two people: too few to show a
difference in speaker or gender privacy. This second corpus has many speakers and is written in the MSP-Podcast on-disk
layout, so that ``load_corpus("demo-podcast")`` runs the real MSP-Podcast reader (``load_msp_podcast``):

* ``Labels/labels_consensus.csv`` with the columns ``FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set``;
  EmoAct / EmoVal / EmoDom are means of 5-7 noisy integer rater scores on 1-7 (e.g. 4.2, 3.8333); EmoClass is one of
  MSP-Podcast's letters (A, S, H, U, C, D, N, O, X = no agreement); SpkrID a number (``Unknown`` for about 2 % of the
  segments, whose Gender is ``Unknown`` too); Split_Set Train / Development / Test1 / Test2, speaker-independent.
* ``Audios/MSP-PODCAST_<podcast>_<segment>.wav`` (16 kHz mono PCM16, 1-4 s) and ``Transcripts/<segment>.txt``. Speakers
  are paired into shows of three episodes each (podcast numbers), unknown speakers are callers dropped into episodes,
  segment numbers skip as in the real corpus.
* 48 speakers by default, half female, half male (``SpkrID`` and gender fixed per speaker), 40 segments each, plus
  40 segments of 4 unidentified voices: 1,960 segments. Every speaker is an eSpeak NG voice variant (``FEMALE_VARIANTS`` /
  ``MALE_VARIANTS``, all in the bundled ``voices/!v``) with an English accent (``ACCENTS``: en, en-us, en-us-nyc,
  en-gb-x-rp, en-gb-scotland, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029), no (variant, accent) pair used twice, plus its own
  pitch, pitch-range, rate and loudness offsets, recording-noise floor, expressiveness, and emotional tendencies.

Emotion cues, as in real speech (the constants below; an utterance has a latent activation and valence on 1-7):

* Activation mainly in the voice (speaking rate, loudness, pitch, pitch range) and partly in the words: openers
  ("wow", "seriously" / "hmm", "um"), intensifiers ("absolutely", "totally" / "kind of", "a bit") and the arousal of
  the adjective and verb ("thrilling", "furious", "adore" / "calm", "gloomy", "wait for"). The "!" of aroused segments
  only changes eSpeak's intonation: ``privemo.tokenize`` drops punctuation.
* Valence mainly in the words (adjective, verb and tag polarity: "lovely", "enjoy", "thank goodness" / "awful", "hate",
  "what a shame") and partly in the voice: higher pitch, wider range, slightly faster and a brighter voice (spectral
  tilt, ``privemo.corpora._synthesis.spectral_tilt``) when positive; lower, narrower, slower and darker when negative.
* Each slot's word class is drawn around the latent values, prosody and tilt are jittered per utterance and scaled by
  each speaker's expressiveness, and ratings are noisy rater means, so every task is learnable but none is trivial:
  ``benchmarks/demo_learnability.py`` scores the linear reference on each cell (seed 0: acoustic activation 0.70,
  acoustic valence 0.51, lexical activation 0.53, lexical valence 0.63, gender 0.99 UAR).

Generation is deterministic from ``seed`` (same seed and sizes: byte-identical files). Where, caching, the manifest, the
lock, the progress bar and the worker pool are those of the demo corpus (``privemo.corpora._synthesis``, which both
corpora share, rendering included): the corpus is written once into ``demo_podcast_root(seed)``
(``$PRIVEMO_DATA/demo-podcast-seed<seed>-v<PODCAST_VERSION>`` or the user cache folder), assembled in a temporary
sibling folder and renamed into place when complete; every voice is synthesised in a fresh worker process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._schema import SAMPLE_RATE
from ._synthesis import (  # MANIFEST stays a name of this module too
    MANIFEST,
    PRETRAINING_TEXT,
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

CORPUS = "demo-podcast"
PODCAST_SEED = 0
PODCAST_VERSION = 3  # bump when the generator's output changes: the folder name and manifest carry it
DEFAULT_N_SPEAKERS = 48
DEFAULT_N_PER_SPEAKER = 40
DEFAULT_N_UNKNOWN = 40  # ~2 % of the segments, as MSP-Podcast's Unknown speakers
N_UNKNOWN_VOICES = 4  # unidentified voices the Unknown segments are spread over
GENERATOR = "privemo.corpora.demo_podcast"
_MARKER = ".privemo-demo-podcast"
_SPEC = CorpusSpec(name=CORPUS, generator=GENERATOR, version=PODCAST_VERSION, marker=_MARKER,
                   folder_pattern=r"demo-podcast-seed\d+-v\d+(-s\d+-n\d+-u\d+)?")
LABEL_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")

# Voices: eSpeak NG variants of the bundled data (voices/!v; a missing name would silently fall back to the default
# voice, tests check they all exist) and English accents (lang/gmw).
ACCENTS = ("en", "en-us", "en-us-nyc", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
# Left out: whispering, robotic and formant-shifted variants (e.g. anika, steph, m8, robosoft*, whose "tone" filter makes
# a voice of either gender sound alike) and those without a clear gender (shelby, zac).
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "belinda", "linda", "aunty")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "Andy", "Lee", "Denis", "travis", "victor", "Michael",
                 "Mario", "gustave", "robert", "quincy")
EPISODES_PER_SHOW = 3
# Official partition (Split_Set) per gender, by speaker: Development, Test1, Test2 shares; the rest is Train.
SPLIT_SHARES = (("Development", 0.15), ("Test1", 0.15), ("Test2", 0.10))

# ---------------------------------------------------------------------------------------------------------------------
# Wording. Adjectives and verbs by (valence polarity, activation level); openers and intensifiers by activation level;
# tags by polarity. Levels: 0 = low / negative, 1 = mid / neutral, 2 = high / positive.
_NOUNS = (
    "episode", "interview", "weather", "election", "game", "movie", "album", "book", "trip", "weekend", "project",
    "meeting", "result", "season", "show", "team", "job", "news", "market", "school", "concert", "restaurant", "budget",
    "neighbourhood", "holiday", "traffic", "garden", "schedule",
)
_ADJ: dict[tuple[int, int], tuple[str, ...]] = {  # (valence, activation)
    (2, 2): ("thrilling", "amazing", "fantastic", "incredible", "awesome", "exciting", "brilliant", "spectacular"),
    (2, 1): ("great", "lovely", "nice", "good", "pleasant", "beautiful", "wonderful", "charming"),
    (2, 0): ("calm", "peaceful", "relaxing", "cosy", "gentle", "soothing", "comfortable", "restful"),
    (1, 2): ("wild", "intense", "crazy", "huge", "loud", "hectic", "frantic", "surprising"),
    (1, 1): ("ordinary", "normal", "usual", "typical", "regular", "standard", "different", "new"),
    (1, 0): ("quiet", "slow", "plain", "still", "long", "simple", "sleepy", "mild"),
    (0, 2): ("furious", "outrageous", "horrible", "infuriating", "disgusting", "ridiculous", "terrifying", "shocking"),
    (0, 1): ("bad", "annoying", "wrong", "unfair", "stupid", "ugly", "nasty", "awful"),
    (0, 0): ("sad", "boring", "gloomy", "dull", "depressing", "lonely", "tiring", "miserable"),
}
_VERB: dict[tuple[int, int], tuple[str, ...]] = {
    (2, 2): ("adore", "love", "celebrate"),
    (2, 1): ("enjoy", "like", "appreciate"),
    (2, 0): ("like", "welcome", "trust"),
    (1, 2): ("chase", "rush", "push"),
    (1, 1): ("see", "need", "mention", "check"),
    (1, 0): ("remember", "watch", "wait for"),
    (0, 2): ("hate", "despise", "can't stand"),
    (0, 1): ("dislike", "resent", "doubt"),
    (0, 0): ("regret", "miss", "dread"),
}
_OPENERS: dict[int, tuple[str, ...]] = {
    2: ("Wow,", "Oh my god,", "Come on,", "Seriously,", "Hey,", "Listen,", "Whoa,"),
    1: ("So,", "Well,", "Okay,", "Now,", "Right,", "", ""),
    0: ("Hmm,", "Um,", "Well, I guess", "Yeah, well,", "Eh,", "Uh,"),
}
_INTENSIFIERS: dict[int, tuple[str, ...]] = {
    2: ("absolutely", "totally", "really", "incredibly", "so", "extremely"),
    1: ("pretty", "quite", "fairly", "rather"),
    0: ("kind of", "sort of", "a bit", "somewhat", "a little"),
}
_TAGS: dict[int, tuple[str, ...]] = {
    2: ("thank goodness", "how nice", "I'm so glad", "love it"),
    1: ("I think", "you know", "I guess", "basically"),
    0: ("unfortunately", "what a shame", "it's a mess", "sadly"),
}
_TEMPLATES = (  # lower-case first word (except "I"): an opener may precede it
    "the {noun} was {int} {adj}, {tag}",
    "I {verb} this {noun}, it's {int} {adj}",
    "that {noun} is {int} {adj}, {tag}",
    "honestly, the {noun} felt {int} {adj}",
    "we {verb} the {noun}, {tag}",
    "it was {art} {int} {adj} {noun}, {tag}",
    "you {verb} the {noun}, it's {adj}",
    "my {noun} was {int} {adj} this week",
    "the whole {noun} sounds {int} {adj}",
    "they {verb} the {adj} {noun}, {tag}",
)

# ---------------------------------------------------------------------------------------------------------------------
# How the latent activation / valence (z in [-1, 1], from ratings on 1-7) drive the words and eSpeak's prosody.
# assumption: see README assumptions table (chosen so that the linear reference lands in the range of real corpora).
LATENT_RANGE = (1.3, 6.7)  # uniform latent activation / valence on the 1-7 scale (before the speaker's tendency)
SPEAKER_TENDENCY_SD = 0.35  # s.d. of a speaker's mean shift of latent activation / valence (scale points)
EXPRESSIVENESS = (0.7, 1.3)  # range of a speaker's factor on the emotion-driven prosody changes
BASE_RATE_WPM = 160.0
RATE_PER_Z = (0.28, 0.12)  # relative rate change per unit of (activation z, valence z)
PITCH_PER_Z = (14.0, 11.0)  # eSpeak pitch units (0-100)
RANGE_PER_Z = (22.0, 22.0)  # eSpeak pitch-range units (0-100)
VOLUME_PER_Z = 0.40  # relative loudness change per unit of activation z
TILT_PER_Z = 0.5  # spectral tilt (dB per octave, privemo.corpora._synthesis.spectral_tilt) per unit of valence z
PROSODY_JITTER = {"rate": 0.07, "pitch": 4.5, "range": 7.0, "volume": 0.10, "tilt": 0.8}  # per utterance (log-rate,
# units, log-volume, dB per octave)
WORD_VALENCE_GAIN = 3.6  # logit gain of valence z on a slot's polarity (neutral logit 0.8)
WORD_ACTIVATION_GAIN = 1.6  # logit gain of activation z on a slot's activation level (neutral logit 0.8)
NEUTRAL_LOGIT = 0.8
EXCLAIM = (3.0, 1.0, -1.5)  # P("!") = sigmoid(a * activation z + b * valence z + c)
RATER_NOISE = 0.85  # s.d. of a rater's score around the latent value (before rounding to 1..7)
RATER_BIAS_SD = 0.3  # s.d. of a rater's offset on one segment (raters differ in how they use the scale)


def demo_podcast_root(
    seed: int = PODCAST_SEED,
    n_speakers: int = DEFAULT_N_SPEAKERS,
    n_per_speaker: int = DEFAULT_N_PER_SPEAKER,
    n_unknown: int = DEFAULT_N_UNKNOWN,
) -> Path:
    """Where the demo-podcast corpus for ``seed`` lives: ``$PRIVEMO_DATA/demo-podcast-seed<seed>-v<version>`` or the
    user cache folder (``$XDG_CACHE_HOME/privemo`` or ``~/.cache/privemo``); a corpus of another size than the default
    gets its own folder (suffix ``-s<n_speakers>-n<n_per_speaker>-u<n_unknown>``)."""
    seed = check_seed(seed)
    n_speakers, n_per_speaker, n_unknown = _check_sizes(n_speakers, n_per_speaker, n_unknown)
    default = (DEFAULT_N_SPEAKERS, DEFAULT_N_PER_SPEAKER, DEFAULT_N_UNKNOWN)
    size = "" if (n_speakers, n_per_speaker, n_unknown) == default else f"-s{n_speakers}-n{n_per_speaker}-u{n_unknown}"
    return data_folder() / f"demo-podcast-seed{seed}-v{PODCAST_VERSION}{size}"


def _check_sizes(n_speakers: Any, n_per_speaker: Any, n_unknown: Any) -> tuple[int, int, int]:
    n_speakers = check_int("n_speakers", n_speakers, 2, "an even int >= 2 (half female, half male)")
    if n_speakers % 2:
        raise ValueError("Invalid value received for argument `n_speakers`. Expected an even int >= 2 (half female, "
                         f"half male). Received: n_speakers={n_speakers!r}")
    if n_speakers > 2 * len(ACCENTS) * min(len(FEMALE_VARIANTS), len(MALE_VARIANTS)):
        raise ValueError(f"Invalid value received for argument `n_speakers`. Expected at most "
                         f"{2 * len(ACCENTS) * min(len(FEMALE_VARIANTS), len(MALE_VARIANTS))} (distinct voices). "
                         f"Received: n_speakers={n_speakers!r}")
    return (n_speakers, check_int("n_per_speaker", n_per_speaker, 1, "a positive int"),
            check_int("n_unknown", n_unknown, 0, "a non-negative int"))


# ---------------------------------------------------------------------------------------------------------------------
# The plan: every voice's profile and every segment's name, text, prosody and ratings, from the seed alone (no audio).


def _voices(rng: np.random.Generator, variants: tuple[str, ...], n: int, used: set[tuple[str, str]]) -> list[str]:
    """``n`` distinct ``accent+variant`` voices, the variants used in turn (seeded order), a fresh accent each time."""
    order = [variants[i] for i in rng.permutation(len(variants))]
    voices = []
    for i in range(n):
        variant = order[i % len(order)]
        free = [a for a in ACCENTS if (a, variant) not in used]
        accent = free[int(rng.integers(len(free)))]
        used.add((accent, variant))
        voices.append(f"{accent}+{variant}")
    return voices


def _profile(rng: np.random.Generator, voice: str, gender: str | None) -> dict:
    return {
        "voice": voice,
        "gender": gender,
        "pitch_offset": float(rng.uniform(-12, 12)),
        "range_offset": float(rng.uniform(-12, 12)),
        "rate_factor": float(rng.uniform(0.86, 1.14)),
        "volume_factor": float(rng.uniform(0.7, 1.0)),
        "noise_db": float(rng.uniform(-58, -42)),
        "expressiveness": float(rng.uniform(*EXPRESSIVENESS)),
        "tendency": [float(x) for x in rng.normal(0.0, SPEAKER_TENDENCY_SD, size=2)],  # (activation, valence)
    }


def _speakers(seed: int, n_speakers: int, n_unknown: int) -> list[dict]:
    """The known speakers (F, M, F, M, ...) and then the unknown voices that carry ``n_unknown`` segments."""
    rng = np.random.default_rng([seed, 11])
    half = n_speakers // 2
    used: set[tuple[str, str]] = set()
    female = _voices(rng, FEMALE_VARIANTS, half, used)
    male = _voices(rng, MALE_VARIANTS, half, used)
    ids = rng.choice(np.arange(1, 2000), size=n_speakers, replace=False)
    speakers = []
    for i in range(half):
        for gender, voice in (("Female", female[i]), ("Male", male[i])):
            sp = _profile(rng, voice, gender)
            sp["spkr_id"] = str(int(ids[len(speakers)]))
            speakers.append(sp)
    for gender in ("Female", "Male"):  # official partition, speaker-independent and gender-balanced
        group = [speakers[i] for i in rng.permutation(len(speakers)) if speakers[i]["gender"] == gender]
        start = 0
        for split, share in SPLIT_SHARES:
            count = int(round(share * len(group)))
            for sp in group[start:start + count]:
                sp["split"] = split
            start += count
        for sp in group[start:]:
            sp["split"] = "Train"
    n_voices = min(N_UNKNOWN_VOICES, n_unknown)
    if n_voices:
        kinds = rng.permutation(["Female", "Male"] * ((n_voices + 1) // 2))[:n_voices]
        for kind, size in zip(kinds, (len(b) for b in np.array_split(np.arange(n_unknown), n_voices))):
            voice = _voices(rng, FEMALE_VARIANTS if kind == "Female" else MALE_VARIANTS, 1, used)[0]
            sp = _profile(rng, voice, None)
            sp.update(spkr_id=None, split="Train", n_segments=int(size))
            speakers.append(sp)
    return speakers


def _sentence(rng: np.random.Generator, zv: float, za: float) -> list[str]:
    """Candidate texts (longest first; shorter ones drop the opener) for one segment."""
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
    core = articles(template.format(art="{art}", **fills))
    a, b, c = EXCLAIM
    end = "!" if rng.random() < 1.0 / (1.0 + np.exp(-(a * za + b * zv + c))) else "."
    texts = []
    for v in (f"{opener} {core}".strip(), core):
        text = v[0].upper() + v[1:] + end
        if text not in texts:
            texts.append(text)
    return texts


def _ratings(rng: np.random.Generator, latent: float, n_raters: int) -> list[int]:
    return [int(np.clip(np.rint(latent + rng.normal(0.0, RATER_BIAS_SD) + rng.normal(0.0, RATER_NOISE)), 1, 7))
            for _ in range(n_raters)]


def _category(rng: np.random.Generator, v: float, a: float) -> str:
    """An MSP-Podcast primary-emotion letter for consensus valence / activation (1-7); X: no agreement."""
    if rng.random() < 0.08:
        return "X"
    if a >= 5 and v <= 3:
        return pick(rng, ("A", "A", "A", "D", "C"))
    if a >= 5 and v >= 5:
        return pick(rng, ("H", "H", "U"))
    if a <= 3 and v <= 3:
        return "S"
    if v >= 5:
        return "H"
    if v <= 3:
        return pick(rng, ("S", "C", "D"))
    if a >= 5.5:
        return "U"
    return "O" if rng.random() < 0.05 else "N"


def _plan(seed: int, n_speakers: int, n_per_speaker: int, n_unknown: int) -> list[dict]:
    """One dict per voice (known speakers, then unknown voices): profile and segments (name, texts, prosody, ratings)."""
    speakers = _speakers(seed, n_speakers, n_unknown)
    rng = np.random.default_rng([seed, 14])
    # shows: known speakers in seeded pairs, each show EPISODES_PER_SHOW numbered podcasts
    known = [speakers[i] for i in rng.permutation(n_speakers)]
    n_shows = (n_speakers + 1) // 2
    numbers = np.sort(rng.choice(np.arange(1, 3000), size=n_shows * EPISODES_PER_SHOW, replace=False))
    episodes = [list(numbers[k * EPISODES_PER_SHOW:(k + 1) * EPISODES_PER_SHOW]) for k in range(n_shows)]
    for k, sp in enumerate(known):
        sp["episodes"] = [int(e) for e in episodes[k // 2]]
    everything = [int(e) for e in numbers]
    for index, sp in enumerate(speakers):
        srng = np.random.default_rng([seed, 12, index])
        count = n_per_speaker if sp["spkr_id"] is not None else sp["n_segments"]
        expr = sp["expressiveness"]
        segments = []
        for _ in range(count):
            a_lat, v_lat = (float(np.clip(x + t, 1.0, 7.0)) for x, t in zip(srng.uniform(*LATENT_RANGE, size=2), sp["tendency"]))
            d_lat = float(np.clip(0.6 * a_lat + 0.4 * srng.uniform(1, 7) + srng.normal(0, 0.4), 1, 7))
            za, zv = (a_lat - 4.0) / 2.7, (v_lat - 4.0) / 2.7
            n_raters = 5 + int(srng.random() < 0.35) + int(srng.random() < 0.15)
            act, val, dom = (float(np.mean(_ratings(srng, x, n_raters))) for x in (a_lat, v_lat, d_lat))
            texts = _sentence(srng, zv, za)
            rate = BASE_RATE_WPM * sp["rate_factor"] * (1 + expr * (RATE_PER_Z[0] * za + RATE_PER_Z[1] * zv)) * float(
                np.exp(srng.normal(0, PROSODY_JITTER["rate"])))
            pitch = (50 + sp["pitch_offset"] + expr * (PITCH_PER_Z[0] * za + PITCH_PER_Z[1] * zv)
                     + srng.normal(0, PROSODY_JITTER["pitch"]))
            prange = (50 + sp["range_offset"] + expr * (RANGE_PER_Z[0] * za + RANGE_PER_Z[1] * zv)
                      + srng.normal(0, PROSODY_JITTER["range"]))
            volume = 100 * sp["volume_factor"] * (1 + expr * VOLUME_PER_Z * za) * float(
                np.exp(srng.normal(0, PROSODY_JITTER["volume"])))
            tilt = expr * TILT_PER_Z * zv + srng.normal(0, PROSODY_JITTER["tilt"])
            pool = sp.get("episodes") or everything  # unknown voices: callers in any episode
            segments.append(
                {
                    "podcast": int(pool[int(srng.integers(len(pool)))]),
                    "texts": texts,
                    "rate": int(np.clip(round(rate), 90, 320)),
                    "pitch": int(np.clip(round(pitch), 5, 95)),
                    "range": int(np.clip(round(prange), 5, 100)),
                    "volume": int(np.clip(round(volume), 30, 190)),
                    "tilt": round(float(tilt), 2),
                    "noise_seed": [seed, 13, index, len(segments)],
                    "latent": {"activation": a_lat, "valence": v_lat},
                    "ratings": {"EmoAct": act, "EmoVal": val, "EmoDom": dom},
                    "category": _category(srng, val, act),
                }
            )
        sp["utterances"] = segments
    # segment numbers: per podcast, the segments in a seeded order, numbers with gaps (not every cut is kept)
    by_podcast: dict[int, list[dict]] = {}
    for sp in speakers:
        for utt in sp["utterances"]:
            by_podcast.setdefault(utt["podcast"], []).append(utt)
    for podcast in sorted(by_podcast):
        items = by_podcast[podcast]
        number = int(rng.integers(1, 6))
        for i in rng.permutation(len(items)):
            items[i]["utterance_id"] = f"MSP-PODCAST_{podcast:04d}_{number:04d}"
            number += int(rng.integers(1, 4))
    return speakers


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


# ---------------------------------------------------------------------------------------------------------------------
# Manifest, verification and building (as for the demo corpus).


def _sizes(n_speakers: int, n_per_speaker: int, n_unknown: int) -> dict[str, int]:
    return {"n_speakers": n_speakers, "n_per_speaker": n_per_speaker, "n_unknown": n_unknown}


def verify_demo_podcast(
    root: str | os.PathLike,
    *,
    seed: int | None = None,
    n_speakers: int | None = None,
    n_per_speaker: int | None = None,
    n_unknown: int | None = None,
    full: bool = False,
) -> list[str]:
    """Check a demo-podcast corpus folder against its manifest; return the problems found (empty: the corpus is intact).

    As ``privemo.corpora.demo.verify_demo``: the manifest's own checksum, generator, version, seed and sizes (those
    given), exactly the listed files with the listed sizes, the text files re-hashed; ``full=True`` re-hashes every wav.
    """

    def expect(manifest: dict, path: Path) -> list[str]:
        return [f"{path}: corpus has {name}={manifest.get(name)}, expected {name}={wanted}"
                for name, wanted in (("seed", seed), ("n_speakers", n_speakers), ("n_per_speaker", n_per_speaker),
                                     ("n_unknown", n_unknown))
                if wanted is not None and manifest.get(name) != wanted]

    return verify_manifest(_SPEC, root, expect, full)


def synthesize_demo_podcast(
    root: str | os.PathLike | None = None,
    *,
    seed: int = PODCAST_SEED,
    n_speakers: int = DEFAULT_N_SPEAKERS,
    n_per_speaker: int = DEFAULT_N_PER_SPEAKER,
    n_unknown: int = DEFAULT_N_UNKNOWN,
    progress: bool = True,
    n_jobs: int | None = None,
    verify: str = "quick",
) -> Path:
    """Make sure the demo-podcast corpus exists at ``root`` (default ``demo_podcast_root(seed, ...)``); return its folder.

    Args:
        root: the corpus folder (it will hold ``Audios/``, ``Labels/``, ``Transcripts/`` and ``manifest.json``).
        seed: everything (voices, speaker ids, texts, prosody, ratings, noise) is drawn from it; same seed, same bytes.
        n_speakers: known speakers, an even number (half female, half male); default 48.
        n_per_speaker: segments per known speaker; default 40.
        n_unknown: segments with ``Unknown`` speaker and gender (up to 4 unidentified voices); default 40.
        progress: show a tqdm progress bar on stderr while generating.
        n_jobs: worker processes (default: min(2, CPU count)); the output does not depend on it.
        verify: "quick", "full" or "none", as for ``privemo.corpora.demo.synthesize_demo``.

    Returns:
        The corpus folder. An intact corpus with the same seed and sizes is left as it is; a half-written, tampered or
        different one is replaced (only folders that are privemo demo-podcast corpora are ever replaced).
    """
    seed = check_seed(seed)
    n_speakers, n_per_speaker, n_unknown = _check_sizes(n_speakers, n_per_speaker, n_unknown)
    verify = check_verify(verify)
    n_jobs = check_n_jobs(n_jobs)
    sizes = _sizes(n_speakers, n_per_speaker, n_unknown)
    root = Path(root).expanduser() if root is not None else demo_podcast_root(seed, n_speakers, n_per_speaker, n_unknown)
    root = root.absolute()

    def make() -> None:
        plan = _plan(seed, n_speakers, n_per_speaker, n_unknown)
        # largest tasks first (known speakers), so that the small unknown-voice tasks fill the end of the pool
        speakers = [sp for sp in sorted(plan, key=lambda sp: -len(sp["utterances"])) if sp["utterances"]]
        build(_SPEC, root, seed=seed, speakers=speakers, worker=_synthesise_speaker,
              write_text_files=lambda folder, rendered: _write_text_files(folder, plan, rendered, seed),
              fields={"seed": seed, **sizes, "sample_rate": SAMPLE_RATE}, progress=progress, n_jobs=n_jobs)

    return ensure(_SPEC, root, verify=verify, fields={"seed": seed, **sizes},
                  check=lambda full: verify_demo_podcast(root, seed=seed, full=full, **sizes), make=make)


def load_demo_podcast(
    root: str | os.PathLike | None = None,
    *,
    seed: int = PODCAST_SEED,
    n_speakers: int = DEFAULT_N_SPEAKERS,
    n_per_speaker: int = DEFAULT_N_PER_SPEAKER,
    n_unknown: int = DEFAULT_N_UNKNOWN,
    strict: bool = False,
    progress: bool = True,
    **kw: Any,
) -> pd.DataFrame:
    """The demo-podcast corpus as an utterance table, synthesising it first if needed (``synthesize_demo_podcast``).

    The table is read by the real MSP-Podcast reader (``load_msp_podcast``), so it has MSP-Podcast's columns (``COLUMNS``
    plus ``split``, ``category``, ``dominance``), speakers ``"MSP-PODCAST-<SpkrID>"`` (None when Unknown) and ratings
    on 1-7; ``attrs["corpus"] == "demo-podcast"`` (bins and folds follow from it), ``attrs["seed"]`` the seed.
    Extra keyword arguments go to ``load_msp_podcast`` (e.g. ``include_unknown=False``, ``check_audio=False``).
    """
    from .msp_podcast import load_msp_podcast

    folder = synthesize_demo_podcast(root, seed=seed, n_speakers=n_speakers, n_per_speaker=n_per_speaker,
                                     n_unknown=n_unknown, progress=progress)
    table = load_msp_podcast(folder, strict=strict, **kw)
    table.attrs["corpus"] = CORPUS
    table.attrs["seed"] = seed
    table.attrs["pretraining_text"] = str(folder / PRETRAINING_TEXT)  # the demo's word-vector pretraining text
    return table


__all__ = ["synthesize_demo_podcast", "load_demo_podcast", "verify_demo_podcast", "demo_podcast_root", "PODCAST_SEED",
           "PODCAST_VERSION", "DEFAULT_N_SPEAKERS", "DEFAULT_N_PER_SPEAKER", "DEFAULT_N_UNKNOWN"]
