"""The demo-podcast corpus's plan: every voice's profile (accent, variant, prosody offsets, emotional tendencies, split)
and every segment's name, text, prosody and ratings, drawn from the seed alone (no audio yet), and the voice, wording
and emotion-cue constants they are drawn with.

``privemo.corpora.demo_podcast`` (the corpus's public front, whose docstring describes the cues) re-exports every name;
the files on disk are written by ``privemo.corpora._demo_podcast_files``.
"""

from __future__ import annotations

import numpy as np

from ._synthesis import articles, level, pick

N_UNKNOWN_VOICES = 4  # unidentified voices the Unknown segments are spread over

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
