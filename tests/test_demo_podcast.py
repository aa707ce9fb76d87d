"""The synthesised demo-podcast corpus on tiny versions: MSP-Podcast layout read by the real loader, Unknown rows,
genders, folds, determinism, manifest and rebuilds, argument checks. The default corpus (48 speakers) is only built
by the slow test at the end."""

from __future__ import annotations

import csv
import re
import shutil
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from privemo.corpora import CorpusFormatError, load_corpus
from privemo.corpora import demo_podcast as dp
from privemo.corpora.msp_podcast import load_msp_podcast
from privemo.data.folds import speaker_folds
from privemo.data.labels import bin_labels

from corpus_fixtures import word_levels, word_score

SIZES = {"n_speakers": 6, "n_per_speaker": 3, "n_unknown": 2}  # 20 segments, ~1 s to build
N_ROWS = SIZES["n_speakers"] * SIZES["n_per_speaker"] + SIZES["n_unknown"]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return dp.synthesize_demo_podcast(tmp_path_factory.mktemp("podcast") / "corpus", progress=False, **SIZES)


def test_voice_variants_and_accents_exist_in_the_bundled_data():
    # eSpeak silently falls back to its default voice for an unknown variant: check the files are really there
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    for variant in dp.FEMALE_VARIANTS + dp.MALE_VARIANTS:
        assert (data / "voices" / "!v" / variant).is_file(), variant
    languages = {p.name.lower() for p in (data / "lang").rglob("*") if p.is_file()}
    assert set(dp.ACCENTS) <= languages
    assert not set(dp.FEMALE_VARIANTS) & set(dp.MALE_VARIANTS)


def test_layout_is_msp_podcast_and_read_by_the_real_loader(small):
    assert sorted(p.name for p in small.iterdir() if not p.name.startswith(".")) == [
        "Audios", "Labels", "Transcripts", "manifest.json", "pretraining_text.txt"]
    with open(small / "Labels" / "labels_consensus.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]
    assert len(rows) == N_ROWS + 1
    name = re.compile(r"^MSP-PODCAST_\d{4}_\d{4}\.wav$")
    for row in rows[1:]:
        assert name.match(row[0]) and (small / "Audios" / row[0]).is_file()
        assert (small / "Transcripts" / (row[0][:-4] + ".txt")).is_file()
        assert row[1] in tuple("ASHUCDNOX")
        assert all(1.0 <= float(x) <= 7.0 for x in row[2:5])
        assert row[5] == "Unknown" or row[5].isdigit()
        assert row[6] in ("Female", "Male", "Unknown") and (row[5] == "Unknown") == (row[6] == "Unknown")
        assert row[7] in ("Train", "Development", "Test1", "Test2")

    table = load_corpus("demo-podcast", small, progress=False, **SIZES)
    assert table.attrs["corpus"] == "demo-podcast" and table.attrs["seed"] == 0
    assert len(table) == N_ROWS and table.attrs["skipped"] == 0 and table.attrs["missing_transcripts"] == 0
    # the same folder read directly by the MSP-Podcast reader gives the same rows
    real = load_msp_podcast(small)
    assert real.attrs["corpus"] == "msp-podcast"
    assert real.equals(table)
    assert table.transcript.str.len().min() > 5
    assert set(table.session) == {u.rsplit("_", 1)[0] for u in table.utterance_id}
    ratings = table[["activation", "valence", "dominance"]].to_numpy()
    assert ratings.min() >= 1 and ratings.max() <= 7
    # consensus = means of 5-7 integer rater scores
    assert all(min(abs(x * k - round(x * k)) for k in (5, 6, 7)) < 1e-3 for x in ratings.ravel())
    # 1-7 scale: the corpus name selects msp-podcast's thresholds
    assert bin_labels([3.25, 3.3, 4.7, 4.75], "demo-podcast").tolist() == [0, 1, 1, 2]


def test_audio_format_and_durations(small):
    for path in sorted((small / "Audios").glob("*.wav")):
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            duration = w.getnframes() / 16000
        assert 1.0 <= duration <= 4.0, (path, duration)


def test_unknown_speakers_and_gender_balance(small):
    table = load_corpus("demo-podcast", small, progress=False, **SIZES)
    unknown = table.speaker.isna()
    assert unknown.sum() == SIZES["n_unknown"] == table.attrs["unknown_speakers"] == table.attrs["unknown_genders"]
    assert table.gender[unknown].isna().all() and table.gender[~unknown].notna().all()
    genders = table[~unknown].groupby("speaker")["gender"].agg(set)
    assert len(genders) == SIZES["n_speakers"] and all(len(g) == 1 for g in genders)
    assert sorted(next(iter(g)) for g in genders).count("F") == SIZES["n_speakers"] // 2
    assert table[~unknown].groupby("speaker").size().eq(SIZES["n_per_speaker"]).all()
    known = load_corpus("demo-podcast", small, progress=False, include_unknown=False, **SIZES)
    assert len(known) == N_ROWS - SIZES["n_unknown"] and known.attrs["dropped_unknown"] == SIZES["n_unknown"]

    # speaker-independent folds; Unknown rows are never in validation or test
    folds = speaker_folds(table, n_folds=3, seed=0, n_validation_speakers=1)
    for fold in folds:
        assert not unknown.to_numpy()[np.concatenate([fold.validation, fold.test])].any()
        test_genders = set(table.gender.iloc[fold.test])
        assert test_genders == {"F", "M"}
        sets = [set(table.speaker.iloc[idx]) for idx in fold]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_plan_ties_activation_to_the_words_and_valence_to_the_voice():
    """The generator's plan (no audio) for a few speakers: aroused words follow the latent activation, pitch and spectral
    tilt follow the latent valence, and the words of one dimension do not follow the other."""
    utts = [u for sp in dp._plan(0, 6, 50, 0) for u in sp["utterances"]]  # 300 segments
    act = np.array([u["latent"]["activation"] for u in utts])
    val = np.array([u["latent"]["valence"] for u in utts])
    r = lambda x, y: float(np.corrcoef(x, y)[0, 1])  # noqa: E731
    slots = [*dp._ADJ.items(), *dp._VERB.items()]  # ((valence, activation), words)
    arousal_levels = word_levels({k: [w for (_, a), ws in slots if a == k for w in ws]
                                   + list(dp._INTENSIFIERS[k]) + list(dp._OPENERS[k]) for k in (0, 1, 2)})
    polarity_levels = word_levels({k: [w for (v, _), ws in slots if v == k for w in ws]
                                    + list(dp._TAGS[k]) for k in (0, 1, 2)})
    arousal = np.array([word_score(u["texts"][0], arousal_levels) for u in utts])
    polarity = np.array([word_score(u["texts"][0], polarity_levels) for u in utts])
    tilt = np.array([u["tilt"] for u in utts])
    pitch = np.array([u["pitch"] for u in utts])
    assert r(act, arousal) > 0.5 and abs(r(val, arousal)) < 0.2
    assert r(val, polarity) > 0.6 and abs(r(act, polarity)) < 0.2
    assert r(val, pitch) > 0.4  # pitch carries both dimensions
    assert r(val, tilt) > 0.2 and abs(r(act, tilt)) < 0.15  # weak: the podcast's valence is mostly in pitch and range


def test_plan_voices_are_distinct_and_gender_balanced():
    plan = dp._plan(0, 48, 2, 40)
    known = [sp for sp in plan if sp["spkr_id"] is not None]
    assert len(known) == 48 and [sp["gender"] for sp in known].count("Female") == 24
    voices = [sp["voice"] for sp in plan]
    assert len(set(voices)) == len(voices)  # every (accent, variant) at most once, unknown voices included
    assert {v.split("+")[0] for v in voices} == set(dp.ACCENTS)
    assert len({sp["spkr_id"] for sp in known}) == 48
    for gender, variants in (("Female", dp.FEMALE_VARIANTS), ("Male", dp.MALE_VARIANTS)):
        assert all(sp["voice"].split("+")[1] in variants for sp in known if sp["gender"] == gender)
    unknown = [sp for sp in plan if sp["spkr_id"] is None]
    assert len(unknown) == dp.N_UNKNOWN_VOICES and sum(len(sp["utterances"]) for sp in unknown) == 40
    ids = [u["utterance_id"] for sp in plan for u in sp["utterances"]]
    assert len(set(ids)) == len(ids) == 48 * 2 + 40
    # each gender split speaker-independently into Train / Development / Test1 / Test2
    for gender in ("Female", "Male"):
        splits = [sp["split"] for sp in known if sp["gender"] == gender]
        assert {s: splits.count(s) for s in set(splits)} == {"Train": 14, "Development": 4, "Test1": 4, "Test2": 2}


def test_deterministic_and_second_call_is_a_no_op(small, tmp_path):
    again = dp.synthesize_demo_podcast(tmp_path / "again", progress=False, n_jobs=1, **SIZES)
    assert _files(again) == _files(small)  # byte-identical wavs, labels, transcripts and manifest, whatever n_jobs

    before = {p: p.stat().st_mtime_ns for p in small.rglob("*")}
    start = time.perf_counter()
    assert dp.synthesize_demo_podcast(small, progress=False, **SIZES) == small
    assert time.perf_counter() - start < 2.0
    assert {p: p.stat().st_mtime_ns for p in small.rglob("*")} == before
    assert dp.verify_demo_podcast(small, full=True, seed=0, **SIZES) == []
    # another seed: other voices, speaker ids and texts
    assert dp._plan(1, 6, 3, 2)[0]["voice"] != dp._plan(0, 6, 3, 2)[0]["voice"] or \
        dp._plan(1, 6, 3, 2)[0]["spkr_id"] != dp._plan(0, 6, 3, 2)[0]["spkr_id"]
    assert dp._plan(1, 6, 3, 2)[0]["utterances"][0]["texts"] != dp._plan(0, 6, 3, 2)[0]["utterances"][0]["texts"]


def test_damaged_corpus_is_detected_and_rebuilt(small, tmp_path):
    reference = _files(small)
    root = tmp_path / "damaged"
    shutil.copytree(small, root)
    wavs = sorted((root / "Audios").glob("*.wav"))
    with open(wavs[0], "r+b") as f:  # truncated
        f.truncate(1000)
    wavs[1].unlink()  # deleted
    problems = dp.verify_demo_podcast(root)
    assert any(wavs[0].name in p and "size" in p for p in problems)
    assert any(wavs[1].name in p and "missing" in p for p in problems)
    dp.synthesize_demo_podcast(root, progress=False, **SIZES)
    assert dp.verify_demo_podcast(root) == [] and _files(root) == reference
    assert not list(tmp_path.glob(".damaged.*tmp*")) and not list(tmp_path.glob(".damaged.old*"))

    # an edited label file is caught by the quick check
    labels = root / "Labels" / "labels_consensus.csv"
    labels.write_text(labels.read_text().replace("Female", "Male  ", 1))
    assert any("checksum" in p for p in dp.verify_demo_podcast(root))
    dp.synthesize_demo_podcast(root, progress=False, **SIZES)
    assert _files(root) == reference

    # half-written (no manifest) is rebuilt; other sizes are told apart
    (root / dp.MANIFEST).unlink()
    assert dp.verify_demo_podcast(root)
    dp.synthesize_demo_podcast(root, progress=False, **SIZES)
    assert _files(root) == reference
    assert dp.verify_demo_podcast(root, n_speakers=8)
    assert dp.verify_demo_podcast(root, n_unknown=0)


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(CorpusFormatError, match="refusing to overwrite"):
        dp.synthesize_demo_podcast(folder, progress=False, n_speakers=2, n_per_speaker=1, n_unknown=0)
    assert (folder / "thesis.tex").read_text() == "precious"


def test_location_and_argument_validation(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path / "data"))
    assert dp.demo_podcast_root(3) == tmp_path / "data" / f"demo-podcast-seed3-v{dp.PODCAST_VERSION}"
    assert dp.demo_podcast_root(0, 6, 3, 2) == tmp_path / "data" / f"demo-podcast-seed0-v{dp.PODCAST_VERSION}-s6-n3-u2"
    monkeypatch.delenv("PRIVEMO_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert dp.demo_podcast_root() == tmp_path / "cache" / "privemo" / f"demo-podcast-seed0-v{dp.PODCAST_VERSION}"
    for seed in (-1, 1.5, "0", True, None):
        with pytest.raises(ValueError, match=r"argument `seed`.*Received: seed="):
            dp.synthesize_demo_podcast(tmp_path / "x", seed=seed)
        with pytest.raises(ValueError, match="`seed`"):
            load_corpus("demo-podcast", tmp_path / "x", seed=seed)
    for name, value in (("n_speakers", 0), ("n_speakers", 5), ("n_speakers", 1000), ("n_per_speaker", 0),
                        ("n_unknown", -1), ("n_jobs", 0)):
        with pytest.raises(ValueError, match=f"`{name}`"):
            dp.synthesize_demo_podcast(tmp_path / "x", **{name: value})
    with pytest.raises(ValueError, match="`verify`"):
        dp.synthesize_demo_podcast(tmp_path / "x", verify="sometimes")
    assert not (tmp_path / "x").exists()


def test_load_corpus_without_root_uses_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path))
    table = load_corpus("demo_podcast", progress=False, n_speakers=2, n_per_speaker=1, n_unknown=1)
    assert Path(table.attrs["root"]) == dp.demo_podcast_root(0, 2, 1, 1) and len(table) == 3


@pytest.mark.slow
def test_full_default_corpus(monkeypatch, tmp_path):
    """The default corpus (root=None -> $PRIVEMO_DATA): >= 1,900 segments, 24 F + 24 M, five folds of >= 8 test speakers."""
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path))
    start = time.perf_counter()
    table = load_corpus("demo-podcast", progress=False)
    elapsed = time.perf_counter() - start
    print(f"default demo-podcast corpus: {len(table)} segments generated and loaded in {elapsed:.1f} s")
    assert len(table) >= 1900 and table.speaker.isna().sum() == dp.DEFAULT_N_UNKNOWN
    assert table.groupby("speaker")["gender"].first().value_counts().to_dict() == {"F": 24, "M": 24}
    for task in ("activation", "valence"):
        counts = np.bincount(bin_labels(table[task], "demo-podcast"), minlength=3)
        assert counts.min() >= 0.2 * len(table), (task, counts)
    for fold in speaker_folds(table, n_folds=5, seed=0):
        test = table.iloc[fold.test]
        assert test.speaker.nunique() >= 8 and set(test.gender) == {"F", "M"}
