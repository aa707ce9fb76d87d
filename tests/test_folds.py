"""Speaker-independent folds: disjointness per strategy, each speaker tested once, validation carve-out, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privemo import speaker_folds
from privemo.data.folds import Fold, official_partition


def _table(rows: list[tuple[str | None, str | None, str]], corpus: str) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["speaker", "gender", "session"])
    table.insert(0, "utterance_id", [f"u{i:05d}" for i in range(len(table))])
    table.attrs["corpus"] = corpus
    return table


def iemocap_like(n_sessions: int = 5, per_speaker: int = 12) -> pd.DataFrame:
    rows = [(f"Ses{s:02d}{g}", g, f"Ses{s:02d}") for s in range(1, n_sessions + 1) for g in "FM" for _ in range(per_speaker)]
    return _table(rows, "iemocap")


def msp_improv_like() -> pd.DataFrame:
    rows = [(f"MSP-IMPROV-{g}{s:02d}", g, f"session{s}") for s in range(1, 7) for g in "FM" for _ in range(10 + s)]
    return _table(rows, "msp-improv")


def msp_podcast_like(n_unknown: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for k in range(60):
        gender = "F" if k % 2 else "M"
        rows += [(f"MSP-PODCAST-{k}", gender, f"MSP-PODCAST_{k:04d}")] * int(rng.integers(1, 80))
    rows += [(None, None, "MSP-PODCAST_9999")] * n_unknown
    return _table(rows, "msp-podcast")


def check_folds(table: pd.DataFrame, folds: list[Fold], n_folds: int) -> dict[str, int]:
    """Invariants every strategy must keep; returns how often each speaker is a test speaker."""
    assert len(folds) == n_folds
    tested: dict[str, int] = {}
    for fold in folds:
        train, validation, test = fold  # unpacks like a triple
        for part in fold:
            assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
        parts = [set(table.speaker.iloc[p]) for p in fold]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(test) and len(train)
        assert not (set(train) & set(test)) and not (set(validation) & set(test)) and not (set(train) & set(validation))
        for speaker in parts[2]:
            tested[speaker] = tested.get(speaker, 0) + 1
        assert not any(pd.isna(s) for s in parts[1] | parts[2])  # unknown speakers never in validation / test
    known = set(table.speaker.dropna())
    assert tested == {s: 1 for s in known}
    return tested


def test_leave_one_session_out_for_iemocap_and_demo():
    table = iemocap_like()
    for corpus in ("iemocap", "demo"):
        table.attrs["corpus"] = corpus
        folds = speaker_folds(table)
        check_folds(table, folds, 5)
        for k, fold in enumerate(folds):
            assert set(table.session.iloc[fold.test]) == {f"Ses{k + 1:02d}"}
            # default validation: one whole training session = one female + one male actor
            val = table.iloc[fold.validation]
            assert val.session.nunique() == 1 and sorted(val.gender.unique()) == ["F", "M"]
            assert len(fold.train) + len(fold.validation) + len(fold.test) == len(table)
    same = zip(speaker_folds(table, seed=3), speaker_folds(table, seed=3))
    assert all(np.array_equal(a, b) for fa, fb in same for a, b in zip(fa, fb))  # deterministic for a seed


def test_sessions_grouped_when_more_sessions_than_folds():
    table = iemocap_like(n_sessions=6)
    folds = speaker_folds(table, n_folds=3, n_validation_speakers=2)
    check_folds(table, folds, 3)
    for fold in folds:
        assert table.session.iloc[fold.test].nunique() == 2
        assert sorted(table.gender.iloc[fold.validation].unique()) == ["F", "M"]


def test_msp_improv_speakers_grouped_with_gender_balance():
    table = msp_improv_like()
    folds = speaker_folds(table, seed=0)
    check_folds(table, folds, 5)
    sizes = sorted(table.speaker.iloc[f.test].nunique() for f in folds)
    assert sizes == [2, 2, 2, 3, 3]
    for fold in folds:
        test_genders = table.gender.iloc[fold.test].groupby(table.speaker.iloc[fold.test]).first().value_counts()
        assert set(test_genders.index) == {"F", "M"} and abs(test_genders.get("F", 0) - test_genders.get("M", 0)) <= 1
        val = table.iloc[fold.validation].groupby("speaker").gender.first()
        assert sorted(val) == ["F", "M"]  # default: one female + one male validation speaker
    other = speaker_folds(table, seed=1)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(folds, other))  # the seed matters


def test_msp_podcast_balances_counts_and_keeps_unknown_speakers_out():
    table = msp_podcast_like()
    unknown = np.flatnonzero(table.speaker.isna().to_numpy())
    folds = speaker_folds(table)
    check_folds(table, folds, 5)
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= table.speaker.value_counts().max()  # greedy largest-first bound
    for fold in folds:
        assert not set(unknown) & set(np.concatenate(fold))  # "drop": in no split at all
        n_val = table.speaker.iloc[fold.validation].nunique()
        assert n_val == round(0.15 * 48)  # 15% of the 48 training speakers
    for fold in speaker_folds(table, unknown="train"):
        assert set(unknown) <= set(fold.train)
        assert not set(unknown) & (set(fold.validation) | set(fold.test))


def test_muse_and_generic_group_by_participant():
    rows = [(f"MuSE-{p:02d}", "F" if p % 3 else "M", f"MuSE-{p:02d}") for p in range(1, 29) for _ in range(5)]
    table = _table(rows, "muse")
    folds = speaker_folds(table, n_validation_speakers=4)
    check_folds(table, folds, 5)
    for fold in folds:
        assert table.speaker.iloc[fold.validation].nunique() == 4
    table.attrs.pop("corpus")
    check_folds(table, speaker_folds(table, n_folds=4), 4)


def test_errors_say_what_was_found_and_needed():
    with pytest.raises(ValueError, match="at least 5 sessions.*found 4"):
        speaker_folds(iemocap_like(n_sessions=4))
    few = _table([("a", "F", "s1"), ("b", "M", "s1"), ("c", "F", "s2")], "muse")
    with pytest.raises(ValueError, match="at least 5 distinct known speakers; found 3"):
        speaker_folds(few)
    with pytest.raises(ValueError, match="`n_folds`.*Received: n_folds=1"):
        speaker_folds(iemocap_like(), n_folds=1)
    with pytest.raises(ValueError, match="`unknown`"):
        speaker_folds(iemocap_like(), unknown="test")
    with pytest.raises(ValueError, match="`strategy`"):
        speaker_folds(iemocap_like(), strategy="random")
    with pytest.raises(ValueError, match="cannot carve 9 validation speaker"):
        speaker_folds(iemocap_like(), strategy="speaker", n_validation_speakers=9)
    moved = iemocap_like()
    moved.loc[0, "session"] = "Ses02"  # Ses01F now also appears in session 2
    with pytest.raises(ValueError, match="more than one session"):
        speaker_folds(moved)
    with pytest.raises(ValueError, match="no 'speaker' column"):
        speaker_folds(pd.DataFrame({"x": [1]}))


def test_official_partition():
    table = msp_podcast_like(n_unknown=0)
    table["split"] = np.resize(["Train", "Train", "Development", "Test1", "Test2"], len(table))
    fold = official_partition(table)
    assert set(table.split.iloc[fold.train]) == {"Train"}
    assert set(table.split.iloc[fold.validation]) == {"Development"}
    assert set(table.split.iloc[fold.test]) == {"Test1"}
    assert len(fold.train) + len(fold.validation) + len(fold.test) == (table.split != "Test2").sum()
    with pytest.raises(ValueError, match="no 'split' column"):
        official_partition(table.drop(columns="split"))
