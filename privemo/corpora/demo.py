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

Emotion cues, as in real speech (the constants of ``privemo.corpora._demo_plan``, names of this module too; each
utterance has a latent activation and valence on 1-5):

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

import pandas as pd

from ._demo_files import _CATEGORY_NAMES, _format_labels, _synthesise_speaker, _write_text_files  # noqa: F401
from ._demo_plan import (  # noqa: F401  (the plan's constants and helpers stay names of this module)
    BASE_RATE_WPM,
    DIALOGS,
    FEMALE_VOICES,
    MALE_VOICES,
    N_SESSIONS,
    NEUTRAL_LOGIT,
    PITCH_PER_Z,
    PROSODY_JITTER,
    RANGE_PER_Z,
    RATE_PER_Z,
    RATER_NOISE,
    TILT_PER_Z,
    VOLUME_PER_Z,
    WORD_ACTIVATION_GAIN,
    WORD_VALENCE_GAIN,
    _ADJ,
    _INTENSIFIERS,
    _NOUNS,
    _OPENERS,
    _SUFFIXES,
    _TAGS,
    _TEMPLATES,
    _VERB,
    _category,
    _plan,
    _ratings,
    _sentence,
    _speakers,
)
from ._schema import SAMPLE_RATE
from ._synthesis import (  # MANIFEST, MIN_DURATION_S and MAX_DURATION_S stay names of this module too
    MANIFEST,
    PRETRAINING_TEXT,
    MAX_DURATION_S,
    MIN_DURATION_S,
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

DEMO_SEED = 0
DEMO_VERSION = 3  # bump when the generator's output changes: the folder name and manifest carry it
# assumption: see README assumptions table. 64 utterances per speaker -> 640 utterances (>= 600 asked for).
DEFAULT_N_PER_SPEAKER = 64
GENERATOR = "privemo.corpora.demo"
_MARKER = ".privemo-demo"  # identifies a folder as a privemo demo corpus even if its manifest was deleted
_SPEC = CorpusSpec(name="demo", generator=GENERATOR, version=DEMO_VERSION, marker=_MARKER,
                   folder_pattern=r"demo-seed\d+-v\d+")


def demo_root(seed: int = DEMO_SEED, n_per_speaker: int = DEFAULT_N_PER_SPEAKER) -> Path:
    """Where the demo corpus for ``seed`` lives: ``$PRIVEMO_DATA/demo-seed<seed>-v<version>`` or the user cache folder;
    a corpus of another size than the default gets its own folder (suffix ``-n<n_per_speaker>``)."""
    seed = check_seed(seed)
    size = "" if n_per_speaker == DEFAULT_N_PER_SPEAKER else f"-n{int(n_per_speaker)}"
    return data_folder() / f"demo-seed{seed}-v{DEMO_VERSION}{size}"


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
