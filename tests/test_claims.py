"""privemo.experiment.claims: the verdict rule on known answers, Holm's adjustment, and claims from records."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from privemo.experiment.claims import COLUMNS, claims_frame, claims_markdown, holm, paired_verdict
from privemo.experiment.reporting import records_frame


def test_a_clear_drop_is_worse_for_emotion_and_better_for_an_attacker():
    base = [0.70, 0.72, 0.69, 0.71, 0.70]
    adv = [0.60, 0.61, 0.60, 0.62, 0.59]
    emotion = paired_verdict(base, adv, higher_is_better=True)
    assert emotion["verdict"] == "worse" and emotion["ci_high"] < 0 and emotion["p"] < 0.05 and emotion["n"] == 5
    assert paired_verdict(base, adv, higher_is_better=False)["verdict"] == "better"
    d = np.subtract(adv, base)
    assert emotion["p"] == pytest.approx(stats.ttest_rel(adv, base).pvalue)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert (emotion["ci_low"], emotion["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))


def test_equivalent_needs_a_tight_interval_inside_the_margin_and_noise_is_inconclusive():
    base = np.array([0.70, 0.72, 0.69, 0.71, 0.70])
    tight = paired_verdict(base, base + [0.002, -0.003, 0.001, 0.0, -0.001], higher_is_better=True)
    assert tight["verdict"] == "equivalent" and tight["p_equivalence"] < 0.05
    noisy = paired_verdict(base, base + [0.06, -0.07, 0.05, -0.04, 0.0], higher_is_better=True)
    assert noisy["verdict"] == "inconclusive" and noisy["p"] > 0.05 and noisy["p_equivalence"] > 0.05
    assert noisy["mdd80"] > tight["mdd80"] > 0
    # the same small differences are inconclusive under a margin they do not fit in
    assert paired_verdict(base, base + [0.002, -0.003, 0.001, 0.0, -0.001], True, margin=0.001)["verdict"] == "inconclusive"


def test_too_few_folds_is_n_a():
    assert paired_verdict([0.7], [0.6], True)["verdict"] == "n/a"
    assert paired_verdict([0.7, math.nan], [0.6, 0.5], True)["n"] == 1


def test_holm_known_answer():
    adjusted = holm([0.01, 0.04, math.nan, 0.03])
    assert adjusted[0] == pytest.approx(0.03) and adjusted[3] == pytest.approx(0.06)
    assert adjusted[1] == pytest.approx(0.06) and math.isnan(adjusted[2])


def _record(adversary, fold, emotion, gender, eer, mi, repeat=0):
    spk = {"speakers": ["a", "b", "c", "d"], "stratum": [0, 0, 1, 1], "support": [[5, 5]] * 4,
           "hits": [[int(round(5 * emotion))] * 2] * 4}
    return {"schema": 2, "corpus": "demo", "modalities": ["acoustic"], "task": "activation", "adversary": adversary,
            "placement": "fused", "grl_lambda": 0.5 if adversary else None, "fold": fold, "repeat": repeat,
            "test": {"emotion_uar": emotion, "per_speaker": spk},
            "attacks": {"gender": {"strongest_test_uar": gender, "max_test_uar": gender},
                        "speaker_verification": {"eer": eer, "eer_same_gender": eer}},
            "membership": {"auc": mi}, "trials": [{"degenerate": False}], "degenerate": False,
            "n_degenerate_trials": 0}


def test_claims_from_records_average_repeats_and_say_why_a_figure_is_missing():
    records = []
    for fold in range(5):
        for repeat in range(2):  # two repeats per fold: averaged before the test, so n is the number of folds
            records.append(_record(None, fold, 0.6, 0.80, 0.30, 0.52, repeat))
            records.append(_record("gender", fold, 0.6 + 0.002 * (fold - 2) + 0.01 * repeat - 0.005, 0.95 - 0.01 * (fold % 2),
                                   0.30 + 0.001 * fold, 0.52 + 0.002 * (fold - 2), repeat))
    claims = claims_frame(records_frame(records))
    assert list(claims.columns) == ["corpus", *COLUMNS] and set(claims.adversary) == {"gender"}
    row = lambda claim: claims[claims.claim == claim].iloc[0]  # noqa: E731
    assert row("emotion_cost")["n"] == 5 and row("emotion_cost")["verdict"] == "equivalent"
    assert row("gender_leakage")["verdict"] == "worse" and row("gender_leakage")["difference"] == pytest.approx(0.146)
    assert row("membership")["verdict"] == "equivalent"
    low, high = row("emotion_cost")[["ci_speaker_low", "ci_speaker_high"]]
    assert low <= 0.0 <= high
    # an older record schema's speaker EER was not held out: not used, with the reason
    old_claims = claims_frame(records_frame([{**r, "schema": 1} for r in records]))
    eer = old_claims[old_claims.claim == "speaker_linkability"].iloc[0]
    assert eer["verdict"] == "n/a" and "schema 1" in eer["reason"]
    text = claims_markdown(claims)
    assert "chance alone would give about" in text and "| gender_leakage |" in text


def test_every_verdict_is_consistent_with_its_own_numbers():
    rng = np.random.default_rng(0)
    for _ in range(200):
        base = rng.uniform(0.5, 0.8, 5)
        adv = base + rng.normal(rng.uniform(-0.05, 0.05), rng.uniform(0.001, 0.05), 5)
        r = paired_verdict(base, adv, higher_is_better=bool(rng.integers(2)))
        excludes = r["ci_low"] > 0 or r["ci_high"] < 0
        assert (r["verdict"] in ("better", "worse")) == excludes
        if r["verdict"] == "equivalent":
            assert r["p_equivalence"] < 0.05 and abs(r["difference"]) < r["margin"]
