"""The four licensed-corpus loaders on tiny format-faithful trees (tests/corpus_fixtures.py): exact tables, traps, errors."""

from __future__ import annotations

import math
import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from corpus_fixtures import (
    MSP_PODCAST_HEADER,
    make_iemocap,
    make_msp_improv,
    make_msp_podcast,
    make_muse,
    muse_csv_row,
    write_wav,
)
from privemo.corpora import load_corpus
from privemo.corpora._schema import COLUMNS, CorpusFormatError, SkippedRowsWarning
from privemo.corpora.iemocap import load_iemocap
from privemo.corpora.msp_improv import load_msp_improv
from privemo.corpora.msp_podcast import load_msp_podcast
from privemo.corpora.muse import load_muse

CORPORA = {
    "iemocap": (make_iemocap, load_iemocap),
    "msp-improv": (make_msp_improv, load_msp_improv),
    "msp-podcast": (make_msp_podcast, load_msp_podcast),
    "muse": (make_muse, load_muse),
}
NAMES = list(CORPORA)


def build(name: str, tmp_path: Path, **kwargs):
    make, load = CORPORA[name]
    return make(tmp_path / name, **kwargs), load


def assert_matches(table: pd.DataFrame, tree, corpus: str) -> None:
    """The table has exactly the fixture's rows, values and attrs counts."""
    assert tuple(table.columns[: len(COLUMNS)]) == COLUMNS
    assert list(table.utterance_id) == sorted(tree.rows)
    assert list(table.index) == list(range(len(tree.rows)))
    assert table.attrs["corpus"] == corpus
    for record in table.to_dict("records"):
        expected = tree.rows[record["utterance_id"]]
        for key, value in expected.items():
            got = record[key]
            if isinstance(value, float) or (value is None and key in ("dominance", "naturalness")):
                want = math.nan if value is None else value
                assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want), (record["utterance_id"], key)
            else:
                assert got == value, (record["utterance_id"], key, got, value)
    for key, value in tree.attrs.items():
        assert table.attrs[key] == value, key


def break_wavs(tree) -> dict[str, str]:
    """Make four labelled wavs unusable in four ways; returns utterance id -> kind."""
    ids = sorted(tree.rows)[:4]
    paths = [Path(tree.rows[i]["wav_path"]) for i in ids]
    paths[0].unlink()
    paths[1].write_bytes(b"")
    paths[2].write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk that is not audio")
    write_wav(paths[3], sample_rate=44100)
    return dict(zip(ids, ["missing", "empty", "unreadable", "44.1kHz"]))


# ------------------------------------------------------------------------------------------------------------ all four


@pytest.mark.filterwarnings("error")  # a good tree loads without any warning
@pytest.mark.parametrize("name", NAMES)
def test_loads_exact_table(name, tmp_path):
    tree, load = build(name, tmp_path)
    table = load(tree.root)
    assert_matches(table, tree, name)
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table.wav_path)
    assert table.speaker.map(type).eq(str).all() or name == "msp-podcast"
    assert set(table.gender.dropna()) <= {"F", "M"}
    pd.testing.assert_frame_equal(load_corpus(name, tree.root), table)


@pytest.mark.parametrize("name", NAMES)
def test_bad_wavs_are_counted_named_and_strict_raises(name, tmp_path):
    tree, load = build(name, tmp_path)
    broken = break_wavs(tree)
    with pytest.warns(SkippedRowsWarning, match=r"skipped 4 utterance\(s\)") as record:
        table = load(tree.root)
    message = str(record[0].message)
    assert message.startswith(f"{name}: ")
    for utt in broken:
        assert utt in message
    assert "wav file missing" in message and "empty" in message and "unreadable" in message and "44100 Hz" in message
    assert list(table.utterance_id) == sorted(set(tree.rows) - set(broken))
    assert table.attrs["skipped"] == 4
    with pytest.raises(CorpusFormatError, match=r"strict=True"):
        load(tree.root, strict=True)
    # without opening the wavs only the missing one is caught; sample_rate=None accepts the 44.1 kHz one
    with pytest.warns(SkippedRowsWarning, match=r"skipped 1 utterance\(s\)"):
        assert len(load(tree.root, check_audio=False)) == len(tree.rows) - 1
    with pytest.warns(SkippedRowsWarning, match=r"skipped 3 utterance\(s\)"):
        kept = load(tree.root, sample_rate=None)
    assert [k for k, v in broken.items() if v == "44.1kHz"][0] in set(kept.utterance_id)


@pytest.mark.parametrize("name", NAMES)
def test_all_wavs_at_another_rate_is_an_error_with_a_hint(name, tmp_path):
    tree, load = build(name, tmp_path)
    for row in tree.rows.values():
        write_wav(row["wav_path"], sample_rate=44100)
    with pytest.raises(CorpusFormatError, match=r"no usable utterance.*44100 Hz.*sample_rate=None"):
        load(tree.root)
    assert len(load(tree.root, sample_rate=None)) == len(tree.rows)


@pytest.mark.parametrize("name", NAMES)
def test_missing_root(name, tmp_path):
    _, load = CORPORA[name]
    with pytest.raises(CorpusFormatError, match=re.escape(str(tmp_path / "absent"))):
        load(tmp_path / "absent")


@pytest.mark.parametrize(
    "name, remove, pattern",
    [
        ("iemocap", "Session1/dialog/EmoEvaluation", r"label folder not found: .*Session1/dialog/EmoEvaluation"),
        ("msp-improv", "Evalution.txt", r"label file not found: expected Evaluation.txt or Evalution.txt"),
        ("msp-podcast", "Labels", r"label file not found: expected Labels/labels_consensus.csv"),
        ("muse", "Survey Information (Questions, Data etc)/Emotion data from crowdsourcing (C is when annotators had "
                 "access to all previous sentences).csv", r"label file not found: no csv in .* has the columns"),
    ],
)
def test_missing_label_file(name, remove, pattern, tmp_path):
    tree, load = build(name, tmp_path)
    target = tree.root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(CorpusFormatError, match=pattern):
        load(tree.root)


def replace_line(path: Path, old_start: str, new: str) -> int:
    """Replace the first line starting with ``old_start``; return its 1-based number."""
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith(old_start))
    lines[number] = new
    path.write_text("\n".join(lines) + "\n")
    return number + 1


# ------------------------------------------------------------------------------------------------------------ IEMOCAP


def test_iemocap_speaker_comes_from_the_last_field_not_the_dialog_name(tmp_path):
    tree, _ = build("iemocap", tmp_path)
    table = load_iemocap(tree.root).set_index("utterance_id")
    assert table.loc["Ses01F_impro01_M001", ["speaker", "gender"]].tolist() == ["Ses01M", "M"]
    assert table.loc["Ses05M_script01_1b_F001", ["speaker", "gender", "dialog"]].tolist() == [
        "Ses05F", "F", "Ses05M_script01_1b"]
    assert table.loc["Ses03M_impro05a_M000", "dialog"] == "Ses03M_impro05a"
    assert sorted(table.speaker.unique()) == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    assert table.loc["Ses01F_script02_2_F000", "category"] == "xxx"


def test_iemocap_accepts_the_parent_of_the_release_folder(tmp_path):
    tree = make_iemocap(tmp_path / "copy", parent=True)
    assert_matches(load_iemocap(tree.root), tree, "iemocap")


def test_iemocap_unparseable_summary_line_names_file_and_line(tmp_path):
    tree, _ = build("iemocap", tmp_path)
    path = tree.root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_impro03.txt"
    line = replace_line(path, "[", "[6.2901 - 8.2901]\tSes02M_impro03_F000\tneu\t[2.5000, high, 2.5000]")
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}") + r": A is not a number.*\[START - END\]"):
        load_iemocap(tree.root)
    replace_line(path, "[", "[6.2901 - 8.2901]\tSes02M_impro03_F000")
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}: cannot parse summary line")):
        load_iemocap(tree.root)


def test_iemocap_utterance_labelled_twice(tmp_path):
    tree, _ = build("iemocap", tmp_path)
    path = tree.root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    path.write_text(path.read_text() + "[20.0 - 21.0]\tSes01F_impro01_F000\tneu\t[3.0, 3.0, 3.0]\n")
    with pytest.raises(CorpusFormatError, match="Ses01F_impro01_F000 is labelled twice"):
        load_iemocap(tree.root)


def test_iemocap_missing_session_warns_but_demo_name_does_not(tmp_path):
    tree, _ = build("iemocap", tmp_path)
    shutil.rmtree(tree.root / "Session5")
    with pytest.warns(UserWarning, match=r"found sessions \[1, 2, 3, 4\].*expected \[1, 2, 3, 4, 5\]"):
        table = load_iemocap(tree.root)
    assert "Ses05" not in set(table.session) and len(table) == len(tree.rows) - 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        demo = load_iemocap(tree.root, corpus="demo")
    assert demo.attrs["corpus"] == "demo"
    Path(tree.rows["Ses01F_impro01_F000"]["wav_path"]).unlink()
    with pytest.warns(SkippedRowsWarning, match=r"^demo: skipped 1 utterance"):
        load_corpus("iemocap", tree.root, corpus="demo")
    with pytest.raises(ValueError, match=r"Invalid value received for argument `corpus`"):
        load_iemocap(tree.root, corpus="")


def test_iemocap_not_a_release_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusFormatError, match=r"no Session1..Session5 folders found"):
        load_corpus("iemocap", tmp_path / "empty")


# --------------------------------------------------------------------------------------------------------- MSP-IMPROV


def test_msp_improv_label_spelling_and_reverse_activation(tmp_path):
    tree = make_msp_improv(tmp_path / "improv", label_name="Evaluation.txt")
    table = load_msp_improv(tree.root)
    assert_matches(table, tree, "msp-improv")
    assert table.attrs["label_file"].endswith("Evaluation.txt")
    assert sorted(table.speaker.unique()) == sorted(f"MSP-IMPROV-{g}0{s}" for s in range(1, 7) for g in "FM")
    assert sorted(table.session.unique()) == [f"session{s}" for s in range(1, 7)]
    flipped = load_corpus("msp-improv", tree.root, reverse_activation=True)
    assert flipped.activation.tolist() == pytest.approx((6.0 - table.activation).tolist())
    assert flipped.valence.tolist() == table.valence.tolist()


def test_msp_improv_unparseable_lines_name_file_and_line(tmp_path):
    tree, _ = build("msp-improv", tmp_path)
    path = tree.root / "Evalution.txt"
    line = replace_line(path, "UTD-IMPROV-S02H-F02", "UTD-IMPROV-S02H-F02-R-FF01.avi; H; A:high; V:4.2; D:3.4 ; N:4.0;")
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}") + r": A is not a number.*UTD-IMPROV-<id>"):
        load_msp_improv(tree.root)
    replace_line(path, "UTD-IMPROV-S02H-F02", "UTD-IMPROV-S02H-F02-R-FF01.avi; H")
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}: cannot parse consensus line")):
        load_msp_improv(tree.root)
    replace_line(path, "UTD-IMPROV-S02H-F02", "garbage at the start of a block")
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}: a block does not start with")):
        load_msp_improv(tree.root)


# -------------------------------------------------------------------------------------------------------- MSP-Podcast


def test_msp_podcast_older_names_flat_audio_and_unknowns(tmp_path):
    tree = make_msp_podcast(tmp_path / "pod", label_name="labels_concensus.csv", audio_dir="Audio")
    table = load_msp_podcast(tree.root)
    assert_matches(table, tree, "msp-podcast")
    assert set(table.split) == {"Train", "Development", "Test1", "Test2"}
    assert table.speaker.isna().sum() == 2 and table.gender.isna().sum() == 1
    assert table.speaker[table.speaker.isna()].map(lambda x: x is None).all()  # None, not NaN
    known = load_corpus("msp-podcast", tree.root, include_unknown=False)
    assert list(known.utterance_id) == ["MSP-PODCAST_0001_0008", "MSP-PODCAST_0001_0009", "MSP-PODCAST_0002_0001",
                                        "MSP-PODCAST_0005_0002"]
    assert known.attrs["dropped_unknown"] == 2 and known.attrs["unknown_speakers"] == 2


def test_msp_podcast_bad_csv(tmp_path):
    tree, _ = build("msp-podcast", tmp_path)
    path = tree.root / "Labels" / "labels_consensus.csv"
    good = path.read_text()
    line = replace_line(path, "MSP-PODCAST_0002_0001", "MSP-PODCAST_0002_0001.wav,A,high,2.0,5.5,127,Female,Validation")
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}: EmoAct is not a number: 'high'")):
        load_msp_podcast(tree.root)
    replace_line(path, "MSP-PODCAST_0002_0001", "MSP-PODCAST_0002_0001.wav,A,2.2,2.0")
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}: 4 field(s), expected 8")):
        load_msp_podcast(tree.root)
    replace_line(path, "MSP-PODCAST_0002_0001", "MSP-PODCAST_0002_0001.wav,A,2.2,2.0,5.5,127,Robot,Train")
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}: unknown gender 'Robot'")):
        load_msp_podcast(tree.root)
    path.write_text(good.replace(MSP_PODCAST_HEADER, MSP_PODCAST_HEADER.replace("SpkrID", "Speaker")))
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}: missing column(s) SpkrID")):
        load_msp_podcast(tree.root)
    path.write_text(good)
    shutil.rmtree(tree.root / "Audios")
    with pytest.raises(CorpusFormatError, match=r"audio folder not found: expected Audios or Audio"):
        load_msp_podcast(tree.root)


def test_msp_podcast_speaker_with_two_genders_warns(tmp_path):
    tree, _ = build("msp-podcast", tmp_path)
    path = tree.root / "Labels" / "labels_consensus.csv"
    replace_line(path, "MSP-PODCAST_0001_0009", "MSP-PODCAST_0001_0009.wav,H,5.0,6.2,4.0,30,Female,Train")
    with pytest.warns(UserWarning, match=r"1 speaker\(s\) are labelled with both genders.*MSP-PODCAST-30"):
        load_msp_podcast(tree.root)


# -------------------------------------------------------------------------------------------------------------- MuSE


def test_muse_folder_variants(tmp_path):
    tree = make_muse(tmp_path / "muse", survey_dir="SurveyInformation", not_stressed_dir="NotStressed")
    table = load_muse(tree.root)
    assert_matches(table, tree, "muse")
    assert table.groupby("speaker").stressed.nunique().to_dict() == {"MuSE-01": 2, "MuSE-02": 2, "MuSE-03": 2}
    assert (table.session == table.speaker).all()


def test_muse_bad_labels(tmp_path):
    tree, _ = build("muse", tmp_path)
    survey = tree.root / "Survey Information (Questions, Data etc)"
    path = next(survey.glob("Emotion data*.csv"))
    good = path.read_text()
    line = replace_line(path, "02_DR-100_0210", muse_csv_row("02_DR-100_0210_2_sentence_1.wav", "Male", "S", "abc", 2.2))
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}: Activation_Mean is not a number: 'abc'")):
        load_muse(tree.root)
    replace_line(path, "02_DR-100_0210", muse_csv_row("02_DR-100_0210_2_sentence_1.wav", "Male", "X", 7.0, 2.2))
    with pytest.raises(CorpusFormatError, match=re.escape(f"{path}:{line}: Type 'X' is neither S")):
        load_muse(tree.root)
    # the same clip again with other ratings
    path.write_text(good + muse_csv_row("01_DR-100_0097_1_sentence_1", "Female", "S", 1.0, 1.0) + "\n")
    with pytest.raises(CorpusFormatError, match=r"01_DR-100_0097_1_sentence_1 is labelled again, differently from line 2"):
        load_muse(tree.root)
    # two csv files with the label columns: ambiguous unless label_file= says which
    path.write_text(good)
    copy = survey / "labels copy.csv"
    copy.write_text(good)
    (survey / path.name).rename(survey / "Emotion data.csv")
    with pytest.raises(CorpusFormatError, match=r"several csv files have the columns.*pass label_file="):
        load_muse(tree.root)
    assert len(load_corpus("muse", tree.root, label_file=copy)) == len(tree.rows)


def test_muse_missing_audio_folders(tmp_path):
    tree, _ = build("muse", tmp_path)
    shutil.rmtree(tree.root / "Stressed")
    shutil.rmtree(tree.root / "Non Stressed")
    with pytest.raises(CorpusFormatError, match=r"audio folders not found: expected Stressed/ and NotStressed/"):
        load_muse(tree.root)
