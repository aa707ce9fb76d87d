"""The synthesised demo corpus: eSpeak wrapper, IEMOCAP layout, determinism, manifest, rebuilds, and the full corpus."""

from __future__ import annotations

import re
import shutil
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from privemo.corpora import CorpusFormatError, load_corpus
from privemo.corpora import demo
from privemo.corpora._espeak import synthesize
from privemo.corpora._synthesis import render, spectral_tilt
from privemo.data.labels import bin_labels

from corpus_fixtures import word_levels, word_score

SMALL = 4  # utterances per speaker in the small corpora (40 utterances, ~2 s to build)
SUMMARY = re.compile(r"^\[(\d+\.\d{4}) - (\d+\.\d{4})\]\t(\S+)\t([a-z]{3})\t\[(\d\.\d{4}), (\d\.\d{4}), (\d\.\d{4})\]$")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return demo.synthesize_demo(tmp_path_factory.mktemp("demo") / "corpus", n_per_speaker=SMALL, progress=False)


def test_espeak_prosody_parameters_change_the_audio():
    slow, sr = synthesize("The meeting was quite ordinary today.", "en+m3", rate=100)
    fast, _ = synthesize("The meeting was quite ordinary today.", "en+m3", rate=250)
    quiet, _ = synthesize("The meeting was quite ordinary today.", "en+m3", volume=50)
    loud, _ = synthesize("The meeting was quite ordinary today.", "en+m3", volume=150)
    assert sr == 22050 and slow.dtype == np.float32 and np.abs(slow).max() <= 1.0
    assert len(slow) > 1.8 * len(fast)
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    assert rms(loud) > 2.0 * rms(quiet)
    with pytest.raises(ValueError, match="`rate`.*Received: rate=20"):
        synthesize("hello", "en", rate=20)
    with pytest.raises(ValueError, match="`text`"):
        synthesize("  ", "en")


def test_plan_ties_activation_to_the_words_and_valence_to_the_voice():
    """The generator's plan (no audio): aroused words follow the latent activation, the spectral tilt and the pitch follow
    the latent valence, and neither cue follows the other dimension."""
    utts = [u for sp in demo._plan(0, 30) for u in sp["utterances"]]  # 300 utterances
    act = np.array([u["latent"]["activation"] for u in utts])
    val = np.array([u["latent"]["valence"] for u in utts])
    r = lambda x, y: float(np.corrcoef(x, y)[0, 1])  # noqa: E731
    slots = [*demo._ADJ.items(), *demo._VERB.items()]  # ((valence, activation), words)
    arousal_levels = word_levels({k: [w for (_, a), ws in slots if a == k for w in ws]
                                   + list(demo._INTENSIFIERS[k]) + list(demo._OPENERS[k]) for k in (0, 1, 2)})
    polarity_levels = word_levels({k: [w for (v, _), ws in slots if v == k for w in ws]
                                    + list(demo._TAGS[k]) for k in (0, 1, 2)})
    arousal = np.array([word_score(u["texts"][0], arousal_levels) for u in utts])
    polarity = np.array([word_score(u["texts"][0], polarity_levels) for u in utts])
    tilt = np.array([u["tilt"] for u in utts])
    pitch = np.array([u["pitch"] for u in utts])
    assert r(act, arousal) > 0.5 and abs(r(val, arousal)) < 0.2  # ~0.74 and ~0.0 for seed 0
    assert r(val, polarity) > 0.6 and abs(r(act, polarity)) < 0.2
    assert r(val, tilt) > 0.4 and abs(r(act, tilt)) < 0.2  # ~0.59 and ~0.0
    assert r(val, pitch) > 0.25 and r(act, pitch) > 0.5  # pitch carries both, activation more


def test_spectral_tilt_brightens_or_darkens_the_rendered_voice():
    sp = demo._plan(0, 1)[0]
    utt = sp["utterances"][0]

    def high_minus_low_db(tilt: float) -> float:
        audio, _ = render({**utt, "tilt": tilt}, sp)
        power = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(audio.size, 1 / 16000)
        return float(10 * np.log10(power[freqs > 2000].sum() / power[(freqs > 100) & (freqs < 1000)].sum()))

    bright, flat, dark = high_minus_low_db(1.5), high_minus_low_db(0.0), high_minus_low_db(-1.5)
    assert bright - flat > 2.0 and flat - dark > 2.0, (bright, flat, dark)
    x = np.random.default_rng(0).normal(size=12345)
    y = spectral_tilt(x, 16000, 2.0)
    assert y.shape == x.shape and np.isclose(np.sqrt(np.mean(y ** 2)), np.sqrt(np.mean(x ** 2)))  # loudness kept
    assert spectral_tilt(x, 16000, 0.0) is x


def test_layout_and_reader(small):
    for n in range(1, 6):
        session = small / f"Session{n}"
        for sub in ("sentences/wav", "dialog/EmoEvaluation", "dialog/transcriptions"):
            assert (session / sub).is_dir(), session / sub
    assert (small / "Session3/sentences/wav/Ses03M_impro05a").is_dir()
    assert (small / "Session5/dialog/EmoEvaluation/Ses05M_script01_1b.txt").is_file()

    # EmoEvaluation format: '%' header, then summary lines [START - END] ID CAT [V, A, D] followed by rater lines
    label_file = small / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    lines = label_file.read_text().splitlines()
    assert lines[0].startswith("%")
    summaries = [SUMMARY.match(line) for line in lines if line.startswith("[")]
    assert summaries and all(summaries)
    assert any(line.startswith("A-E1:\tval ") and "dom  " in line for line in lines)
    assert any(line.startswith("C-E1:\t") for line in lines)
    transcript = (small / "Session1/dialog/transcriptions/Ses01F_impro01.txt").read_text().splitlines()
    assert re.match(r"^Ses01F_impro01_[FM]\d{3} \[\d{3}\.\d{4}-\d{3}\.\d{4}\]: \S", transcript[0])

    table = load_corpus("demo", small, n_per_speaker=SMALL, progress=False)  # runs the real IEMOCAP reader
    assert table.attrs["corpus"] == "demo" and len(table) == 10 * SMALL
    genders = table.groupby("speaker")["gender"].agg(lambda g: set(g))
    assert sorted(genders.index) == [f"Ses0{n}{g}" for n in range(1, 6) for g in "FM"]
    assert all(len(g) == 1 and next(iter(g)) == name[-1] for name, g in genders.items())
    # the speaker is the LAST field's letter: dialog Ses01F_impro01 also holds the male speaker's turns
    row = table.set_index("utterance_id").loc["Ses01F_impro01_M000"]
    assert row.speaker == "Ses01M" and row.gender == "M"
    assert table.transcript.notna().all()
    ratings = table[["activation", "valence"]].to_numpy()
    assert ratings.min() >= 1 and ratings.max() <= 5
    # IEMOCAP-like averaged ratings: means of 2-3 integer scores (e.g. 2.5, 3.3333)
    frac = np.round(ratings * 6) / 6
    assert np.allclose(ratings, frac, atol=1e-3)
    # the word-vector pretraining text: unlabelled sentences of the grammar, not the corpus's own transcripts' stream
    pretraining = Path(table.attrs["pretraining_text"])
    assert pretraining.parent == small and pretraining.name == "pretraining_text.txt"
    sentences = pretraining.read_text(encoding="utf-8").splitlines()
    assert len(sentences) == 20000 and len(set(sentences)) > 10000
    own = set(table.transcript)
    assert sum(s in own for s in sentences) < 0.05 * len(sentences)


def test_audio_format_and_durations(small):
    table = load_corpus("demo", small, n_per_speaker=SMALL, progress=False)
    for path in table.wav_path:
        with wave.open(path) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            duration = w.getnframes() / 16000
        assert 1.0 <= duration <= 4.0, (path, duration)


def test_deterministic_and_second_call_is_a_no_op(small, tmp_path):
    again = demo.synthesize_demo(tmp_path / "again", n_per_speaker=SMALL, progress=False)
    assert _files(again) == _files(small)  # byte-identical wavs, label files and manifest

    before = {p: p.stat().st_mtime_ns for p in small.rglob("*")}
    start = time.perf_counter()
    assert demo.synthesize_demo(small, n_per_speaker=SMALL, progress=False) == small
    assert time.perf_counter() - start < 2.0
    assert {p: p.stat().st_mtime_ns for p in small.rglob("*")} == before
    assert demo.verify_demo(small, full=True) == []
    # a different seed gives a different plan (voices, texts, ratings)
    assert demo._plan(1, SMALL)[0]["utterances"][0]["texts"] != demo._plan(0, SMALL)[0]["utterances"][0]["texts"]


def test_damaged_corpus_is_detected_and_rebuilt(small, tmp_path):
    reference = _files(small)
    root = tmp_path / "damaged"
    shutil.copytree(small, root)
    wavs = sorted(root.rglob("*.wav"))
    with open(wavs[0], "r+b") as f:  # truncated
        f.truncate(1000)
    wavs[1].unlink()  # deleted
    problems = demo.verify_demo(root)
    assert any(wavs[0].name in p and "size" in p for p in problems)
    assert any(wavs[1].name in p and "missing" in p for p in problems)
    demo.synthesize_demo(root, n_per_speaker=SMALL, progress=False)
    assert demo.verify_demo(root) == [] and _files(root) == reference
    assert not list(tmp_path.glob(".damaged.*tmp*")) and not list(tmp_path.glob(".damaged.old*"))

    # same-size corruption: only the full check sees it; verify="full" rebuilds
    data = bytearray(wavs[2].read_bytes())
    data[-10] ^= 0xFF
    wavs[2].write_bytes(bytes(data))
    assert demo.verify_demo(root) == []
    assert any("checksum" in p for p in demo.verify_demo(root, full=True))
    demo.synthesize_demo(root, n_per_speaker=SMALL, progress=False, verify="full")
    assert _files(root) == reference

    # half-written (no manifest) and asked-for size differs: rebuilt
    (root / demo.MANIFEST).unlink()
    assert demo.verify_demo(root)
    demo.synthesize_demo(root, n_per_speaker=SMALL, progress=False)
    assert _files(root) == reference
    assert demo.verify_demo(root, n_per_speaker=SMALL + 1)


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(CorpusFormatError, match="refusing to overwrite"):
        demo.synthesize_demo(folder, n_per_speaker=1, progress=False)
    assert (folder / "thesis.tex").read_text() == "precious"


def test_location_and_argument_validation(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path / "data"))
    assert demo.demo_root(3) == tmp_path / "data" / f"demo-seed3-v{demo.DEMO_VERSION}"
    monkeypatch.delenv("PRIVEMO_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert demo.demo_root() == tmp_path / "cache" / "privemo" / f"demo-seed{demo.DEMO_SEED}-v{demo.DEMO_VERSION}"
    with pytest.raises(ValueError, match="`seed`"):
        demo.demo_root(-1)
    with pytest.raises(ValueError, match="`n_per_speaker`"):
        demo.synthesize_demo(tmp_path / "x", n_per_speaker=0)
    with pytest.raises(ValueError, match="`verify`"):
        demo.synthesize_demo(tmp_path / "x", verify="sometimes")


@pytest.mark.slow
def test_full_default_corpus(monkeypatch, tmp_path):
    """The default corpus (root=None -> $PRIVEMO_DATA): >= 600 utterances, 5 F + 5 M, populated bins, prosody cues."""
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path))
    start = time.perf_counter()
    table = load_corpus("demo", progress=False)
    elapsed = time.perf_counter() - start
    print(f"default demo corpus: {len(table)} utterances generated and loaded in {elapsed:.1f} s")
    assert Path(table.attrs["root"]) == demo.demo_root(demo.DEMO_SEED)
    assert len(table) >= 600
    assert table.groupby("speaker")["gender"].first().value_counts().to_dict() == {"F": 5, "M": 5}
    for task in ("activation", "valence"):
        counts = np.bincount(bin_labels(table[task], "demo"), minlength=3)
        assert counts.min() >= 0.15 * len(table), (task, counts)

    # activation is carried by prosody: louder and faster speech for high than for low activation
    act = bin_labels(table.activation, "demo")
    rms, words_per_s = [], []
    for path, text in zip(table.wav_path, table.transcript):
        x, sr = sf.read(path)
        voiced = np.abs(x) > 0.02
        rms.append(np.sqrt(np.mean(x[voiced] ** 2)))
        span = (np.flatnonzero(voiced)[-1] - np.flatnonzero(voiced)[0]) / sr
        words_per_s.append(len(text.split()) / span)
    rms, words_per_s = np.log(rms), np.array(words_per_s)
    assert rms[act == 2].mean() - rms[act == 0].mean() > 0.2  # ~0.39 for seed 0
    assert words_per_s[act == 2].mean() > 1.2 * words_per_s[act == 0].mean()
    # ... but not perfectly: the bins overlap (noise in ratings and prosody)
    assert rms[act == 0].max() > rms[act == 2].min()
    # valence is carried by wording
    positive = {w for (v, _), words in [*demo._ADJ.items(), *demo._VERB.items()] if v == 2 for w in words}
    has_positive = table.transcript.str.lower().str.findall(r"[a-z]+").apply(lambda ws: bool(positive & set(ws)))
    val = bin_labels(table.valence, "demo")
    assert has_positive[val == 2].mean() > has_positive[val == 0].mean() + 0.4
