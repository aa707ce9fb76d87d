"""The demo corpus's plan: the ten speakers' voices and every utterance's text, prosody and ratings, drawn from the
seed alone (no audio yet), and the wording and emotion-cue constants they are drawn with.

``privemo.corpora.demo`` (the corpus's public front, whose docstring describes the cues) re-exports every name; the
files on disk are written by ``privemo.corpora._demo_files``.
"""

from __future__ import annotations

import numpy as np

from ._synthesis import articles, level, pick

N_SESSIONS = 5

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
