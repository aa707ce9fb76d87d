"""Tests for privemo.privacy.verification: the semi-informed speaker-verification attacker and its equal error rate."""

from __future__ import annotations

import json

import numpy as np
import pytest

import privemo
from privemo.privacy import verification
from privemo.privacy.verification import _trials, equal_error_rate, speaker_verification_attack


def speakers_with_identity(n_speakers, n_utts=20, dim=16, spread=3.0, seed=0, first=0):
    """Utterances of speakers whose h sits around a per-speaker centroid (spread x the noise std, noise std 1)."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(scale=spread, size=(n_speakers, dim))
    spk = np.repeat(np.arange(first, first + n_speakers), n_utts)
    h = centroids[spk - first] + rng.normal(size=(spk.size, dim))
    return h.astype(np.float32), np.array([f"s{s}" for s in spk])


def gender_without_identity(n_speakers, n_utts=20, dim=16, offset=6.0, seed=0, first=0):
    """Speakers alternate gender; gender is a large offset on 4 dimensions, there is no per-speaker centroid."""
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(first, first + n_speakers), n_utts)
    gender = np.where((spk - first) % 2 == 0, "F", "M")
    h = rng.normal(size=(spk.size, dim))
    h[gender == "M", :4] += offset
    return h, spk, gender


def test_equal_error_rate_known_answers():
    assert equal_error_rate([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert equal_error_rate([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 1.0
    # one target above both non-targets, one below one of them: FNR = FPR = 0.5 between 0.4 and 0.6
    assert equal_error_rate([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1]) == pytest.approx(0.5)
    # a vertical ROC step: from (FPR 0.25, FNR 0.5) to (FPR 0.25, FNR 0); FNR = FPR = 0.25 half-way down
    assert equal_error_rate([1, 1, 0, 0, 0, 0], [0.9, 0.5, 0.6, 0.4, 0.3, 0.2]) == pytest.approx(0.25)
    # a tie between a target and a non-target: the ROC goes diagonally from (FPR 0, FNR 0.5) to (FPR 0.5, FNR 0),
    # crossing FNR = FPR at 0.25 -- interpolated, not either end point
    assert equal_error_rate([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="both target"):
        equal_error_rate([1, 1], [0.2, 0.3])


def test_planted_identities_are_linked():
    h_tr, s_tr = speakers_with_identity(30, seed=1)
    h_ev, s_ev = speakers_with_identity(8, seed=2, first=100)
    res = speaker_verification_attack(h_tr, s_tr, h_ev, s_ev)
    assert res["eer"] <= 0.10
    assert (res["n_speakers"], res["n_train_speakers"], res["n_components"]) == (8, 30, 16)
    assert res["n_target"] == 8 * 190 and res["n_nontarget"] == 160 * 159 // 2 - 8 * 190
    assert res["eer_same_gender"] is None and res["chance"] == 0.5 and "LDA" in res["method"]
    json.dumps(res)
    assert privemo.speaker_verification_attack is speaker_verification_attack


def test_h_without_identity_links_nothing():
    h_tr, s_tr = speakers_with_identity(30, spread=0.0, seed=3)
    h_ev, s_ev = speakers_with_identity(8, spread=0.0, seed=4, first=100)
    res = speaker_verification_attack(h_tr, s_tr, h_ev, s_ev)
    assert 0.38 <= res["eer"] <= 0.62


def test_same_gender_trials_remove_what_gender_alone_links():
    h_tr, s_tr, _ = gender_without_identity(30, seed=5)
    h_ev, s_ev, g_ev = gender_without_identity(8, seed=6, first=100)
    res = speaker_verification_attack(h_tr, s_tr, h_ev, s_ev, genders_eval=g_ev)
    # all target trials are same-gender, 43 % of non-target ones are: gender alone gives an EER near 0.3
    assert res["eer"] < 0.38
    assert 0.38 <= res["eer_same_gender"] <= 0.62
    assert res["n_nontarget_same_gender"] == 2 * (80 * 79 // 2) - 8 * 190


def test_seeded_and_capped_trials_are_deterministic():
    h_tr, s_tr = speakers_with_identity(12, seed=7, spread=0.5)
    h_ev, s_ev = speakers_with_identity(6, seed=8, spread=0.5, first=50)
    a = speaker_verification_attack(h_tr, s_tr, h_ev, s_ev, seed=3, max_trials=300)
    assert a == speaker_verification_attack(h_tr, s_tr, h_ev, s_ev, seed=3, max_trials=300)
    assert (a["n_target"], a["n_nontarget"]) == (300, 300)
    assert (a["n_target_available"], a["n_nontarget_available"]) == (6 * 190, 120 * 119 // 2 - 6 * 190)
    others = [speaker_verification_attack(h_tr, s_tr, h_ev, s_ev, seed=s, max_trials=300)["eer"] for s in (4, 5)]
    assert any(e != a["eer"] for e in others)  # the seed draws the trials
    full = speaker_verification_attack(h_tr, s_tr, h_ev, s_ev, seed=3)
    other = speaker_verification_attack(h_tr, s_tr, h_ev, s_ev, seed=9)
    assert full.pop("seed") == 3 and other.pop("seed") == 9
    assert full == other  # nothing sampled: the seed changes nothing


def test_sampled_trials_are_valid_distinct_and_seeded(monkeypatch):
    monkeypatch.setattr(verification, "_ENUMERATE_LIMIT", 10)  # force the sampling path
    spk = np.repeat(np.array(["a", "b", "c", "d"]), [30, 20, 5, 2])
    (ti, tj), (ni, nj), n_t, n_n = _trials(spk, np.random.default_rng(0), 200)
    assert n_t == 435 + 190 + 10 + 1 and n_n == 57 * 56 // 2 - n_t
    assert ti.size == nj.size == 200
    assert np.all(spk[ti] == spk[tj]) and np.all(spk[ni] != spk[nj])
    for i, j in ((ti, tj), (ni, nj)):
        assert np.all(i < j) and np.unique(i * 1000 + j).size == i.size
    again = _trials(spk, np.random.default_rng(0), 200)
    assert np.array_equal(again[0][0], ti) and np.array_equal(again[1][1], nj)
    # asking for more than there are returns them all
    (ti, _), (ni, _), _, _ = _trials(spk, np.random.default_rng(1), 10_000)
    assert ti.size == n_t and ni.size == n_n


@pytest.mark.parametrize(
    "change, match",
    [
        ({"h_train": np.zeros(40)}, "`h_train`"),
        ({"speakers_train": np.array(["a"] * 40)}, "at least 2 distinct training speakers"),
        ({"speakers_train": np.arange(40)}, "2 or more utterances"),
        ({"h_eval": np.zeros((20, 5))}, "4 features"),
        ({"speakers_eval": np.array(["x"] * 20)}, "at least 2 distinct evaluation speakers"),
        ({"speakers_eval": np.array(["x"] * 18 + ["y", "z"])}, r"speakers with 1 utterance: 'y', 'z'"),
        ({"speakers_eval": np.array(["x", "y"] * 5)}, "`speakers_eval`"),
        ({"genders_eval": np.array(["F"] * 3)}, "`genders_eval`"),
        ({"max_trials": 0}, "`max_trials`"),
    ],
)
def test_bad_input_gives_clear_errors(change, match):
    rng = np.random.default_rng(0)
    args = {
        "h_train": rng.normal(size=(40, 4)), "speakers_train": np.repeat(["a", "b", "c", "d"], 10),
        "h_eval": rng.normal(size=(20, 4)), "speakers_eval": np.repeat(["x", "y"], 10),
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        speaker_verification_attack(**args)


def test_speaker_level_eer_interval_covers_the_estimate_and_widens_with_speaker_variation():
    rng = np.random.default_rng(3)

    def data(n_spk, per, sep, spread):
        spk = np.repeat([f"s{i}" for i in range(n_spk)], per)
        g = np.repeat(np.arange(n_spk) % 2, per)
        scale = rng.uniform(1 - spread, 1 + spread, n_spk)  # some speakers are easier to link than others
        centres = rng.normal(size=(n_spk, 12)) * sep * scale[:, None]
        return centres[np.repeat(np.arange(n_spk), per)] + rng.normal(size=(n_spk * per, 12)), spk, g

    h_tr, s_tr, _ = data(30, 20, 1.0, 0.0)
    h_ev, s_ev, g_ev = data(10, 30, 1.0, 0.9)
    r = speaker_verification_attack(h_tr, s_tr, h_ev, s_ev, g_ev, n_bootstrap=500)
    low, high = r["eer_ci"]
    assert low <= r["eer"] <= high and high - low > 0.01
    assert r["eer_same_gender_ci"][0] <= r["eer_same_gender"] <= r["eer_same_gender_ci"][1]
    assert r["ci_method"].startswith("cluster bootstrap over test speakers")
    assert "eer_ci" not in speaker_verification_attack(h_tr, s_tr, h_ev, s_ev, g_ev)  # no interval unless asked
