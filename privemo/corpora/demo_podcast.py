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

Emotion cues, as in real speech (the constants of ``privemo.corpora._demo_podcast_plan``, names of this module too; an
utterance has a latent activation and valence on 1-7):

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

import pandas as pd

from ._demo_podcast_files import LABEL_COLUMNS, _rating_text, _synthesise_speaker, _write_text_files  # noqa: F401
from ._demo_podcast_plan import (  # noqa: F401  (the plan's constants and helpers stay names of this module)
    ACCENTS,
    BASE_RATE_WPM,
    EPISODES_PER_SHOW,
    EXCLAIM,
    EXPRESSIVENESS,
    FEMALE_VARIANTS,
    LATENT_RANGE,
    MALE_VARIANTS,
    N_UNKNOWN_VOICES,
    NEUTRAL_LOGIT,
    PITCH_PER_Z,
    PROSODY_JITTER,
    RANGE_PER_Z,
    RATE_PER_Z,
    RATER_BIAS_SD,
    RATER_NOISE,
    SPEAKER_TENDENCY_SD,
    SPLIT_SHARES,
    TILT_PER_Z,
    VOLUME_PER_Z,
    WORD_ACTIVATION_GAIN,
    WORD_VALENCE_GAIN,
    _ADJ,
    _INTENSIFIERS,
    _NOUNS,
    _OPENERS,
    _TAGS,
    _TEMPLATES,
    _VERB,
    _category,
    _plan,
    _profile,
    _ratings,
    _sentence,
    _speakers,
    _voices,
)
from ._schema import SAMPLE_RATE
from ._synthesis import (  # MANIFEST stays a name of this module too
    MANIFEST,
    PRETRAINING_TEXT,
    CorpusSpec,
    build,
    check_int,
    check_n_jobs,
    check_seed,
    check_verify,
    data_folder,
    ensure,
    verify_manifest,
)

CORPUS = "demo-podcast"
PODCAST_SEED = 0
PODCAST_VERSION = 3  # bump when the generator's output changes: the folder name and manifest carry it
DEFAULT_N_SPEAKERS = 48
DEFAULT_N_PER_SPEAKER = 40
DEFAULT_N_UNKNOWN = 40  # ~2 % of the segments, as MSP-Podcast's Unknown speakers
GENERATOR = "privemo.corpora.demo_podcast"
_MARKER = ".privemo-demo-podcast"
_SPEC = CorpusSpec(name=CORPUS, generator=GENERATOR, version=PODCAST_VERSION, marker=_MARKER,
                   folder_pattern=r"demo-podcast-seed\d+-v\d+(-s\d+-n\d+-u\d+)?")


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
