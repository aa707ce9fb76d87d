"""Reporting: per-fold records -> Table 1a/1b (mean ± std over (fold, repeat) pairs, paired-test markers, paper row
order, linear reference, selected λ per fold, n), placement table, the λ trade-off drawn from the tuned trials and its
plot, atomic table files. Records are built by hand in the shape ``experiment.run_fold`` returns."""

from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd
import pytest

from privemo.experiment import reporting
from privemo.experiment.reporting import (
    COLUMN_NAMES,
    MARK_DOWN,
    MARK_UP,
    PAPER_ROWS,
    lambda_sweep_frame,
    lambda_tradeoff_frame,
    paired_test,
    placement_table,
    plot_lambda_sweep,
    records_frame,
    table1,
    write_tables,
)

FOLDS = range(5)
LAMBDAS = (0.3, 0.5, 0.75, 1.0)
BASE_EMO = [0.60, 0.62, 0.58, 0.61, 0.59]
BASE_PRIV = [0.90, 0.88, 0.93, 0.91, 0.89]
# A clearly significant gain (+0.05 on every fold, small jitter) and a clearly non-significant change (mean 0, large spread).
UP_EMO = [b + d for b, d in zip(BASE_EMO, [0.050, 0.052, 0.049, 0.051, 0.048])]
NOISY_EMO = [b + d for b, d in zip(BASE_EMO, [0.05, -0.04, 0.03, -0.05, 0.01])]
DOWN_PRIV = [b - d for b, d in zip(BASE_PRIV, [0.30, 0.31, 0.29, 0.30, 0.32])]
SELECTED = [1.0, 0.5, 1.0, 0.3, 0.75]  # the validation-selected lambda of each fold (gender adversary)
SIGNIFICANCE = reporting.SIGNIFICANCE_LEVEL


def record(corpus, modality, task, adversary, fold, emo, gender=None, *, eer=None, eer_same=None, mi=None,
           placement="fused", grl_lambda=None, repeat=0, trials=None, best_hp=None, best_epoch=7, max_epochs=40):
    """One per-fold result record with the keys ``run_fold`` writes (only what reporting reads is meaningful)."""
    attacks = {}
    if gender is not None:
        attacks["gender"] = {"strongest_test_uar": gender, "max_test_uar": min(1.0, gender + 0.01), "chance": 0.5}
    if eer is not None:
        attacks["speaker_verification"] = {"eer": eer, "eer_same_gender": eer_same}
    if adversary is not None and grl_lambda is None:
        grl_lambda = 1.0
    hp = {"conv_layers": 3, **({"grl_lambda": grl_lambda} if adversary else {})}
    r = {
        "schema": 2,
        "corpus": corpus,
        "fold": fold,
        "repeat": repeat,
        "modalities": modality.split("+"),
        "modality": modality,
        "task": task,
        "adversary": adversary,
        "placement": placement,
        "grl_lambda": grl_lambda,
        "condition": f"{modality}-{task}-{adversary or 'baseline'}" + (f"-r{repeat}" if repeat else ""),
        "init_seed": 1000 + 10 * fold + repeat,
        "selection": "probe",
        "best_hp": best_hp if best_hp is not None else hp,
        "best_epoch": best_epoch,
        "epochs_run": best_epoch + 6,
        "max_epochs": max_epochs,
        "history": {"val_objective": [0.4] * (best_epoch + 6)},
        "trials": trials if trials is not None else [],
        "test": {"emotion_uar": emo, "n": 12},
        "attacks": attacks,
    }
    if mi is not None:
        r["membership"] = {"auc": mi, "auc_attack": "learned", "best_accuracy": 0.5, "best_attack": "loss"}
    return r


def trial(trial_id, grl_lambda, emo, probe, hp=None):
    """One entry of a record's ``trials`` list."""
    hp = hp if hp is not None else {"conv_layers": 3, **({"grl_lambda": grl_lambda} if grl_lambda is not None else {})}
    return {"trial_id": trial_id, "hp": hp, "grl_lambda": grl_lambda, "val_objective": emo - 0.1,
            "val_emotion_uar": emo, "val_privacy": probe, "best_epoch": 5, "epochs_run": 11,
            "test_emotion_uar": emo, "test_probe_uar": probe}


def fmt(values):
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def demo_records():
    """acoustic/demo: activation adversary clearly better emotion and clearly lower privacy; valence: noise only."""
    recs = []
    for k in FOLDS:
        recs.append(record("demo", "acoustic", "activation", None, k, BASE_EMO[k], BASE_PRIV[k], eer=0.2, eer_same=0.3,
                           mi=0.6))
        recs.append(record("demo", "acoustic", "activation", "gender", k, UP_EMO[k], DOWN_PRIV[k], eer=0.25,
                           eer_same=0.31, mi=0.55, grl_lambda=SELECTED[k]))
        recs.append(record("demo", "acoustic", "valence", None, k, BASE_EMO[k], BASE_PRIV[k], eer=0.2, mi=0.6))
        recs.append(record("demo", "acoustic", "valence", "gender", k, NOISY_EMO[k],
                           BASE_PRIV[k] + [0.02, -0.03, 0.01, 0.0, -0.01][k], grl_lambda=0.5))
    return recs


def reference():
    return pd.DataFrame([
        {"corpus": "demo", "modality": "acoustic", "task": "activation", "uar_mean": 0.5512, "uar_std": 0.0204,
         "n_folds": 5},
        {"corpus": "demo", "modality": "lexical", "task": "valence", "uar_mean": 0.45, "uar_std": 0.01, "n_folds": 5},
    ])


# ---------------------------------------------------------------------------------------------------------------------
# records_frame


def test_records_frame_columns_values_and_missing_attacks_nan():
    recs = demo_records()
    frame = records_frame(recs)
    assert len(frame) == len(recs)
    assert list(frame.columns) == ["corpus", "modality", "task", "adversary", "placement", "grl_lambda", "fold",
                                   "repeat", "emotion_uar", "gender_uar", "gender_uar_max", "speaker_eer",
                                   "speaker_eer_same_gender", "mi_auc", "best_epoch", "max_epochs", "degenerate",
                                   "n_degenerate_trials", "n_trials", "emotion_per_speaker", "gender_per_speaker",
                                   "speaker_eer_reason", "speaker_eer_same_gender_reason", "mi_auc_reason"]
    base = frame[(frame.adversary == "none") & (frame.task == "activation")].sort_values("fold")
    assert base.emotion_uar.tolist() == BASE_EMO and base.gender_uar.tolist() == BASE_PRIV
    assert (base.speaker_eer == 0.2).all() and (base.speaker_eer_same_gender == 0.3).all()
    assert (base.mi_auc == 0.6).all() and (base.repeat == 0).all()
    assert base.grl_lambda.isna().all()  # the baseline has no lambda
    adv = frame[(frame.adversary == "gender") & (frame.task == "activation")].sort_values("fold")
    assert adv.grl_lambda.tolist() == SELECTED and (adv.mi_auc == 0.55).all()
    assert (adv.best_epoch == 7).all() and (adv.max_epochs == 40).all()
    # valence: no verification / MI on the adversary, no same-gender EER on the baseline -> NaN, not 0
    val_adv = frame[(frame.adversary == "gender") & (frame.task == "valence")]
    assert val_adv.speaker_eer.isna().all() and val_adv.mi_auc.isna().all()
    assert frame[(frame.adversary == "none") & (frame.task == "valence")].speaker_eer_same_gender.isna().all()
    assert "speaker_uar" not in frame and "mi_accuracy" not in frame  # the old columns are gone
    multi = records_frame([record("iemocap", "acoustic+lexical", "valence", None, 0, 0.5, 0.6, repeat=2)])
    assert multi.modality.tolist() == ["acoustic+lexical"] and multi.repeat.tolist() == [2]
    old = record("demo", "acoustic", "activation", None, 0, 0.5)
    del old["repeat"], old["best_epoch"], old["max_epochs"]  # a record from before repeats: repeat 0, epochs NaN
    row = records_frame([old]).iloc[0]
    assert row["repeat"] == 0 and math.isnan(row["best_epoch"]) and math.isnan(row["max_epochs"])
    with pytest.raises(ValueError, match="No per-fold results"):
        records_frame([])


def test_paired_test_significance_and_sign():
    p, sign = paired_test(BASE_EMO, UP_EMO)
    assert p < 0.001 and sign == 1
    p, sign = paired_test(BASE_EMO, NOISY_EMO)
    assert p > 0.5
    p, sign = paired_test(BASE_PRIV, DOWN_PRIV)
    assert p < 0.001 and sign == -1
    assert math.isnan(paired_test([0.5], [0.6])[0])  # one pair: no test
    assert paired_test(BASE_EMO, BASE_EMO) == (1.0, 0)  # identical folds: no evidence of a difference
    assert math.isnan(paired_test([0.5, np.nan], [0.6, 0.7])[0])  # NaN pairs are dropped, leaving one


# ---------------------------------------------------------------------------------------------------------------------
# table1


def test_table1_cells_mean_std_and_markers_only_where_significant():
    frame = records_frame(demo_records())
    t = table1(frame, "gender", "gender_uar")
    assert len(t) == 1
    row = t.iloc[0]
    assert (row.modality, row.corpus) == ("acoustic", "demo")
    assert row["Activation Emo (baseline)"] == fmt(BASE_EMO)
    assert row["Activation Emo (gender adv.)"] == fmt(UP_EMO) + " " + MARK_UP
    assert row["Activation Priv gender UAR (baseline)"] == fmt(BASE_PRIV)
    assert row["Activation Priv gender UAR (gender adv.)"] == fmt(DOWN_PRIV) + " " + MARK_DOWN
    # not significant: no marker at all
    assert row["Valence Emo (gender adv.)"] == fmt(NOISY_EMO)
    cell = row["Valence Priv gender UAR (gender adv.)"]
    assert MARK_UP not in cell and MARK_DOWN not in cell
    # baseline cells are never marked
    assert not any(m in str(row[c]) for c in t.columns if "baseline" in c for m in (MARK_UP, MARK_DOWN))
    # the selected lambda of every fold, in fold order, and the number of pairs
    assert row["Activation λ per fold (gender adv.)"] == "1/0.5/1/0.3/0.75"
    assert row["Valence λ per fold (gender adv.)"] == "0.5/0.5/0.5/0.5/0.5"
    assert row["Activation n"] == 5 and row["Valence n"] == 5
    assert not any("linear ref." in c for c in t.columns)  # no reference given: no reference column


def test_table1_column_layout_with_privacy_list_extra_and_reference():
    frame = records_frame(demo_records())
    t = table1(frame, "gender", ["gender_uar", "speaker_eer"], extra=("mi_auc",), reference=reference())
    per_task = ["Emo (linear ref.)", "Emo (baseline)", "Emo (gender adv.)", "Priv gender UAR (baseline)",
                "Priv gender UAR (gender adv.)", "Speaker EER (baseline)", "Speaker EER (gender adv.)",
                "MI AUC (baseline)", "MI AUC (gender adv.)", "λ per fold (gender adv.)", "n"]
    assert list(t.columns) == ["modality", "corpus"] + [f"{task} {c}" for task in ("Activation", "Valence")
                                                        for c in per_task]
    row = t.iloc[0]
    assert row["Activation Emo (linear ref.)"] == "0.551 ± 0.020"
    assert row["Valence Emo (linear ref.)"] == "–"  # the reference has no acoustic valence row (only lexical)
    assert row["Activation Speaker EER (baseline)"] == "0.200 ± 0.000"
    assert row["Activation Speaker EER (gender adv.)"] == "0.250 ± 0.000 " + MARK_UP  # a constant +0.05: p = 0
    assert row["Activation MI AUC (gender adv.)"] == "0.550 ± 0.000 " + MARK_DOWN
    assert row["Valence Speaker EER (gender adv.)"] == "–"  # not measured for those records
    assert COLUMN_NAMES == {"gender_uar": "Priv gender UAR", "speaker_eer": "Speaker EER",
                            "speaker_eer_same_gender": "Speaker EER same-gender", "mi_auc": "MI AUC"}
    # a string is one privacy column, the same as a one-element list
    pd.testing.assert_frame_equal(table1(frame, "gender", "gender_uar"), table1(frame, "gender", ["gender_uar"]))
    # a column without a display name keeps its own name
    assert "Activation gender_uar_max (gender adv.)" in table1(frame, "gender", [], extra=("gender_uar_max",)).columns


def repeat_records(adversary_repeats=(0, 1)):
    """3 folds x 2 repeats. The baseline moves a lot between repeats (0.10) and folds (0.03); the adversary is its own
    (fold, repeat) baseline + 0.010 (small jitter), so only a pairing on (fold, repeat) sees the gain."""
    recs, base, adv = [], {}, {}
    jitter = [0.001, -0.001, 0.0005, -0.0005, 0.0, 0.0002]
    for repeat in (0, 1):
        for k in range(3):
            b = 0.50 + 0.10 * repeat + 0.03 * k
            base[k, repeat] = b
            recs.append(record("demo", "acoustic", "activation", None, k, b, 0.9, repeat=repeat))
            if repeat in adversary_repeats:
                a = b + 0.010 + jitter[3 * repeat + k]
                adv[k, repeat] = a
                recs.append(record("demo", "acoustic", "activation", "gender", k, a, 0.8, repeat=repeat,
                                   grl_lambda=LAMBDAS[(k + repeat) % 4]))
    return recs, base, adv


def fold_means(values: dict) -> list[float]:
    """The (fold, repeat) values averaged over each fold's repeats, in fold order."""
    folds = sorted({k for k, _ in values})
    return [float(np.mean([v for (k, _), v in values.items() if k == fold])) for fold in folds]


def test_table1_averages_repeats_within_a_fold_then_pairs_folds():
    recs, base, adv = repeat_records()
    frame = records_frame(recs)
    assert sorted(zip(frame.fold, frame.repeat)) == sorted([(k, r) for k in range(3) for r in (0, 1)] * 2)
    row = table1(frame, "gender", "gender_uar").iloc[0]
    assert row["Activation n"] == 3  # folds: a fold's speakers are counted once, however many repeats it has
    assert row["Activation Emo (baseline)"] == fmt(fold_means(base))
    assert row["Activation Emo (gender adv.)"] == fmt(fold_means(adv)) + " " + MARK_UP
    # paired_test pairs what it is given: unpaired, the +0.01 drowns in the 0.10 spread
    keys = sorted(adv)
    p, sign = paired_test([base[k] for k in keys], [adv[k] for k in keys])
    assert p < 0.001 and sign == 1
    p_mismatched, _ = paired_test([base[k] for k in keys], [adv[k] for k in reversed(keys)])
    assert p_mismatched > SIGNIFICANCE
    # lambdas listed per (fold, repeat), sorted by fold then repeat
    expected = "/".join(f"{LAMBDAS[(k + r) % 4]:g}" for k in range(3) for r in (0, 1))
    assert row["Activation λ per fold (gender adv.)"] == expected == "0.3/0.5/0.5/0.75/0.75/1"

    # the adversary of repeat 1 did not run: its cell covers the 3 pairs of repeat 0, the baseline keeps all 6
    recs, base, adv = repeat_records(adversary_repeats=(0,))
    row = table1(records_frame(recs), "gender", "gender_uar").iloc[0]
    assert row["Activation n"] == 3
    assert row["Activation Emo (gender adv.)"] == fmt(fold_means(adv)) + " " + MARK_UP
    assert row["Activation Emo (baseline)"] == fmt(fold_means(base))
    assert row["Activation λ per fold (gender adv.)"] == "0.3/0.5/0.75"


def test_table1_row_order_follows_paper_then_appends_demo():
    recs = []
    rows = [("acoustic", "demo"), ("lexical", "demo"), ("acoustic+lexical", "iemocap"), ("lexical", "iemocap"),
            ("acoustic", "iemocap"), ("acoustic", "msp-improv"), ("acoustic", "muse")]
    for modality, corpus in rows:
        for k in range(2):
            recs.append(record(corpus, modality, "activation", None, k, 0.5, 0.8))
            recs.append(record(corpus, modality, "activation", "gender", k, 0.5, 0.7))
    t = table1(records_frame(recs), "gender", "gender_uar")
    got = list(zip(t.modality, t.corpus))
    paper = [r for r in PAPER_ROWS if r in rows]
    assert got == paper + [("acoustic", "demo"), ("lexical", "demo")]
    assert paper == [("acoustic", "msp-improv"), ("acoustic", "iemocap"), ("acoustic", "muse"), ("lexical", "iemocap"),
                     ("acoustic+lexical", "iemocap")]
    # valence was not run: its cells are dashes, not zeros, and it has no pairs
    first = t.iloc[0]
    assert first["Valence Emo (baseline)"] == "–" and first["Valence Priv gender UAR (gender adv.)"] == "–"
    assert first["Valence λ per fold (gender adv.)"] == "–" and first["Valence n"] == 0


def test_table1_compares_only_common_folds_and_only_the_requested_placement():
    recs = [record("iemocap", "acoustic+lexical", "activation", None, k, BASE_EMO[k], BASE_PRIV[k]) for k in FOLDS]
    recs += [record("iemocap", "acoustic+lexical", "activation", "gender", k, UP_EMO[k], DOWN_PRIV[k]) for k in FOLDS]
    # a per-modality adversary with very different numbers must not leak into the fused table
    recs += [record("iemocap", "acoustic+lexical", "activation", "gender", k, 0.1, 0.1, placement="per_modality",
                    grl_lambda=0.3) for k in FOLDS]
    frame = records_frame(recs)
    fused = table1(frame, "gender", "gender_uar").iloc[0]
    assert fused["Activation Emo (gender adv.)"] == fmt(UP_EMO) + " " + MARK_UP
    assert fused["Activation λ per fold (gender adv.)"] == "1/1/1/1/1"
    per = table1(frame, "gender", "gender_uar", placement="per_modality").iloc[0]
    assert per["Activation Emo (gender adv.)"].startswith("0.100 ± 0.000")
    assert per["Activation λ per fold (gender adv.)"] == "0.3/0.3/0.3/0.3/0.3"
    # adversary finished on three folds only: its cell covers those three; the baseline keeps all five
    partial = records_frame([r for r in recs if r["adversary"] is None or (r["placement"] == "fused" and r["fold"] < 3)])
    row = table1(partial, "gender", "gender_uar").iloc[0]
    assert row["Activation Emo (gender adv.)"].startswith(fmt(UP_EMO[:3]))
    assert row["Activation Emo (baseline)"] == fmt(BASE_EMO)
    assert row["Activation n"] == 3


def test_table1b_speaker_adversary_with_verification_and_membership_columns():
    recs = []
    for k in FOLDS:
        recs.append(record("demo", "acoustic", "activation", None, k, 0.6, 0.9, eer=0.20 + 0.01 * k,
                           eer_same=0.30 + 0.01 * k, mi=0.6))
        recs.append(record("demo", "acoustic", "activation", "speaker", k, 0.6, 0.9, eer=0.35 + 0.011 * k,
                           eer_same=0.30 + 0.01 * k, mi=0.55, grl_lambda=0.75))
    t = table1(records_frame(recs), "speaker", ["gender_uar", "speaker_eer", "speaker_eer_same_gender"],
               extra=("mi_auc",))
    row = t.iloc[0]
    assert row["Activation Speaker EER (baseline)"] == fmt([0.20 + 0.01 * k for k in FOLDS])
    assert row["Activation Speaker EER (speaker adv.)"] == fmt([0.35 + 0.011 * k for k in FOLDS]) + " " + MARK_UP
    same = row["Activation Speaker EER same-gender (speaker adv.)"]  # unchanged: no marker
    assert same == fmt([0.30 + 0.01 * k for k in FOLDS])
    assert row["Activation Priv gender UAR (speaker adv.)"] == "0.900 ± 0.000"
    assert row["Activation MI AUC (baseline)"] == "0.600 ± 0.000"
    assert row["Activation MI AUC (speaker adv.)"] == "0.550 ± 0.000 " + MARK_DOWN
    assert row["Activation λ per fold (speaker adv.)"] == "0.75/0.75/0.75/0.75/0.75"
    assert "Valence MI AUC (speaker adv.)" in t.columns and "Valence n" in t.columns


def test_placement_table_only_with_two_placements():
    recs = [record("iemocap", "acoustic+lexical", "activation", None, k, 0.6, 0.9) for k in range(3)]
    recs += [record("iemocap", "acoustic+lexical", "activation", "gender", k, 0.6, 0.8) for k in range(3)]
    assert placement_table(records_frame(recs)) is None
    recs += [record("iemocap", "acoustic+lexical", "activation", "gender", k, 0.55, 0.7 + 0.01 * k,
                    placement="per_modality") for k in range(3)]
    # a unimodal row never enters the placement comparison
    recs += [record("iemocap", "acoustic", "activation", "gender", k, 0.3, 0.3) for k in range(3)]
    t = placement_table(records_frame(recs))
    assert len(t) == 1
    row = t.iloc[0]
    assert (row.corpus, row.task, row.adversary) == ("iemocap", "activation", "gender")
    assert row["Emo (fused)"] == "0.600 ± 0.000" and row["Emo (per_modality)"] == "0.550 ± 0.000"
    assert row["Priv gender (fused)"] == "0.800 ± 0.000" and row["Priv gender (per_modality)"] == fmt([0.70, 0.71, 0.72])


# ---------------------------------------------------------------------------------------------------------------------
# the lambda trade-off from the tuned trials

# per lambda: (test emotion UAR, test probe UAR) of fold 0; fold k adds 0.01 * k to emotion and subtracts it from probe
TRADE = {0.3: (0.60, 0.85), 0.5: (0.61, 0.80), 0.75: (0.59, 0.70), 1.0: (0.58, 0.65)}
PICKS = [1.0, 1.0, 0.5]  # the selected lambda of folds 0-2 (the record's best_hp)


def tradeoff_records(repeats=(0,)):
    recs = []
    for repeat in repeats:
        for k in range(3):
            base_trial = trial("00", None, 0.62 + 0.01 * k, 0.90 - 0.01 * k)
            recs.append(record("demo", "acoustic", "activation", None, k, 0.62 + 0.01 * k, 0.9, repeat=repeat,
                               trials=[base_trial], best_hp=base_trial["hp"]))
            trials = [trial(f"{i:02d}", lam, emo + 0.01 * k, probe - 0.01 * k)
                      for i, (lam, (emo, probe)) in enumerate(TRADE.items())]
            chosen = next(t for t in trials if t["grl_lambda"] == PICKS[k])
            recs.append(record("demo", "acoustic", "activation", "gender", k, chosen["test_emotion_uar"], 0.7,
                               repeat=repeat, grl_lambda=PICKS[k], trials=trials, best_hp=chosen["hp"]))
    return recs


def test_lambda_tradeoff_frame_from_trials_with_baseline_at_lambda_zero():
    frame = lambda_tradeoff_frame(tradeoff_records())
    assert list(frame.columns) == ["corpus", "modality", "task", "adversary", "grl_lambda", "emotion_uar_mean",
                                   "emotion_uar_std", "gender_uar_mean", "gender_uar_std", "n_folds", "selected"]
    base = frame[frame.adversary == "none"]
    assert len(base) == 1 and base.grl_lambda.tolist() == [0.0]
    assert base.emotion_uar_mean.iloc[0] == pytest.approx(0.63)
    assert base.gender_uar_mean.iloc[0] == pytest.approx(0.89)
    assert base.selected.iloc[0] == 3 and base.n_folds.iloc[0] == 3  # the baseline's single trial is its selection
    adv = frame[frame.adversary == "gender"].sort_values("grl_lambda")
    assert adv.grl_lambda.tolist() == list(LAMBDAS)
    np.testing.assert_allclose(adv.emotion_uar_mean, [TRADE[lam][0] + 0.01 for lam in LAMBDAS])
    np.testing.assert_allclose(adv.gender_uar_mean, [TRADE[lam][1] - 0.01 for lam in LAMBDAS])
    np.testing.assert_allclose(adv.emotion_uar_std, [0.01] * 4)
    assert (adv.n_folds == 3).all()
    # how often each lambda was the validation-selected one: 1 twice, 0.5 once, the others never
    assert dict(zip(adv.grl_lambda, adv.selected)) == {0.3: 0, 0.5: 1, 0.75: 0, 1.0: 2}
    assert adv.selected.sum() == 3  # one selection per (fold, repeat)
    assert set(frame.corpus) == {"demo"} and set(frame.modality) == {"acoustic"} and set(frame.task) == {"activation"}


def test_lambda_tradeoff_frame_counts_fold_repeat_pairs_and_keeps_adversaries_apart():
    recs = tradeoff_records(repeats=(0, 1))
    # a speaker adversary with its own trials, and a trial without lambda in an adversarial record (skipped)
    for k in range(2):
        trials = [trial("00", 0.3, 0.50, 0.75), trial("01", 1.0, 0.40, 0.60), trial("02", None, 0.1, 0.1)]
        recs.append(record("demo", "acoustic+lexical", "activation", "speaker", k, 0.5, 0.7, grl_lambda=0.3,
                           trials=trials, best_hp=trials[0]["hp"]))
    recs.append(record("demo", "acoustic", "valence", None, 0, 0.5, 0.9))  # an old record without trials: no rows
    frame = lambda_tradeoff_frame(recs)
    gender = frame[frame.adversary == "gender"]
    assert (gender.n_folds == 6).all()  # 3 folds x 2 repeats
    assert dict(zip(gender.grl_lambda, gender.selected)) == {0.3: 0, 0.5: 2, 0.75: 0, 1.0: 4}
    assert frame[frame.adversary == "none"].selected.tolist() == [6]
    speaker = frame[frame.adversary == "speaker"].sort_values("grl_lambda")
    assert speaker.modality.tolist() == ["acoustic+lexical"] * 2 and speaker.grl_lambda.tolist() == [0.3, 1.0]
    assert speaker.emotion_uar_mean.tolist() == pytest.approx([0.50, 0.40]) and speaker.selected.tolist() == [2, 0]
    assert not (frame.task == "valence").any()
    empty = lambda_tradeoff_frame([record("demo", "acoustic", "activation", None, 0, 0.5)])
    assert empty.empty and list(empty.columns) == list(frame.columns)


def test_lambda_sweep_frame_from_fixed_lambda_records():
    recs = []
    for lam, emo, priv in [(0.3, 0.60, 0.85), (0.5, 0.61, 0.80), (0.75, 0.59, 0.70), (1.0, 0.60, 0.65)]:
        for k in range(3):
            recs.append(record("demo", "acoustic", "activation", "gender", k, emo + 0.01 * k, priv - 0.01 * k,
                               grl_lambda=lam))
    sweep = lambda_sweep_frame(recs)
    assert sweep.grl_lambda.tolist() == list(LAMBDAS) and (sweep.adversary == "gender").all()
    assert (sweep.n_folds == 3).all()
    np.testing.assert_allclose(sweep.emotion_uar_mean, [0.61, 0.62, 0.60, 0.61])
    np.testing.assert_allclose(sweep.gender_uar_mean, [0.84, 0.79, 0.69, 0.64])
    baseline_only = [record("demo", "acoustic", "activation", None, k, 0.6, 0.9) for k in range(3)]
    with pytest.raises(ValueError, match="grl_lambda"):
        lambda_sweep_frame(baseline_only)


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_lambda_sweep_one_panel_per_adversary_with_baseline_at_zero(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    drawn = []
    original = Axes.errorbar

    def spy(self, x, y, *args, **kwargs):
        drawn.append((self, kwargs.get("label"), list(np.asarray(x, float)), list(np.asarray(y, float))))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", spy)
    recs = tradeoff_records()
    recs += [record("demo", "acoustic", "activation", "speaker", k, 0.5, 0.7, grl_lambda=0.3,
                    trials=[trial("00", 0.3, 0.5, 0.75), trial("01", 1.0, 0.4, 0.6)]) for k in range(3)]
    frame = lambda_tradeoff_frame(recs)
    target = tmp_path / "lambda_sweep.png"
    target.write_bytes(b"old")
    assert plot_lambda_sweep(frame, target) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lambda_sweep.png"]  # no temporary file left behind
    width, height = _png_size(target)
    assert (width, height) == (round(2 * 4.2 * 110), round(3.3 * 110))  # two panels side by side: gender, speaker
    # every panel starts at lambda 0 with the baseline's trial numbers
    emotion = {ax.get_title(): (x, y) for ax, label, x, y in drawn if label == "emotion UAR"}  # titles set after
    assert sorted(emotion) == ["demo: acoustic, activation, gender adv.", "demo: acoustic, activation, speaker adv."]
    x, y = emotion["demo: acoustic, activation, gender adv."]
    assert x == [0.0, *LAMBDAS] and y[0] == pytest.approx(0.63)
    assert emotion["demo: acoustic, activation, speaker adv."][0] == [0.0, 0.3, 1.0]

    # an old sweep frame (fixed-lambda records, no baseline rows), with baseline records as dotted lines
    drawn.clear()
    sweep = lambda_sweep_frame([record("demo", "acoustic", "activation", "gender", k, 0.6, 0.8, grl_lambda=lam)
                                for lam in LAMBDAS for k in range(2)])
    baseline = records_frame([record("demo", "acoustic", "activation", None, k, 0.6, 0.9) for k in range(2)])
    plot_lambda_sweep(sweep, tmp_path / "old.png", baseline=baseline)
    assert _png_size(tmp_path / "old.png") == (round(4.2 * 110), round(3.3 * 110))
    assert [x for _, label, x, _ in drawn if label == "emotion UAR"] == [list(LAMBDAS)]
    with pytest.raises(ValueError, match="no adversarial lambda"):
        plot_lambda_sweep(frame[frame.adversary == "none"], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


# ---------------------------------------------------------------------------------------------------------------------
# files


def test_write_tables_writes_markdown_and_csv(tmp_path):
    recs = demo_records()
    written = write_tables(recs, tmp_path)
    assert sorted(written) == ["table1a"]  # no speaker adversary, one placement: no table1b, no placement table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1a.csv", "table1a.md"]
    csv = pd.read_csv(tmp_path / "table1a.csv", dtype=str)
    pd.testing.assert_frame_equal(csv, written["table1a"].astype(str), check_dtype=False)
    md = (tmp_path / "table1a.md").read_text(encoding="utf-8")
    assert md.startswith("Table 1a: gender adversary.")
    assert "p < 0.05" in md and MARK_UP in md and "λ per fold" in md
    header = [line for line in md.splitlines() if line.startswith("| modality")][0]
    assert header == "| " + " | ".join(written["table1a"].columns) + " |"
    assert f"| acoustic | demo | {fmt(BASE_EMO)} | {fmt(UP_EMO)} {MARK_UP} |" in md
    table1a = written["table1a"]
    assert "Activation Speaker EER (gender adv.)" not in table1a  # table 1a: gender privacy only
    assert table1a.iloc[0]["Activation λ per fold (gender adv.)"] == "1/0.5/1/0.3/0.75"

    recs += [record("demo", "acoustic", "activation", "speaker", k, 0.6, 0.9, eer=0.3, eer_same=0.35, mi=0.5)
             for k in FOLDS]
    recs += [record("demo", "acoustic+lexical", "activation", "gender", k, 0.6, 0.8, placement=p)
             for k in FOLDS for p in ("fused", "per_modality")]
    written = write_tables(recs, tmp_path, reference=reference())
    assert sorted(written) == ["placement", "table1a", "table1b"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["placement.csv", "placement.md", "table1a.csv", "table1a.md", "table1b.csv", "table1b.md"]
    table1b = written["table1b"]
    for column in ("Priv gender UAR", "Speaker EER", "Speaker EER same-gender", "MI AUC"):
        assert f"Activation {column} (speaker adv.)" in table1b, column
    row = table1b[table1b.modality == "acoustic"].iloc[0]
    assert row["Activation Speaker EER (speaker adv.)"] == "0.300 ± 0.000 " + MARK_UP
    assert row["Activation Emo (linear ref.)"] == "0.551 ± 0.020"
    assert written["table1a"].iloc[0]["Activation Emo (linear ref.)"] == "0.551 ± 0.020"
    note = (tmp_path / "table1b.md").read_text(encoding="utf-8")
    assert note.startswith("Table 1b: speaker-identity adversary.") and "equal error rate" in note
    assert list(pd.read_csv(tmp_path / "table1b.csv").columns) == list(table1b.columns)


def test_to_markdown_layout():
    t = pd.DataFrame({"a": ["x", "y"], "b": ["1 ± 0", "–"]})
    assert reporting.to_markdown(t) == "| a | b |\n| --- | --- |\n| x | 1 ± 0 |\n| y | – |\n"
    assert reporting.to_markdown(t, "note").startswith("note\n\n| a | b |")
