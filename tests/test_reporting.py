"""Reporting: per-fold records -> Table 1a/1b (mean ± std, paired-test markers, paper row order), placement table,
lambda sweep frame and plot, atomic table files. Records are built by hand in the shape ``experiment.run_fold`` returns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from privemo import reporting
from privemo.reporting import (
    MARK_DOWN,
    MARK_UP,
    PAPER_ROWS,
    lambda_sweep_frame,
    paired_test,
    placement_table,
    plot_lambda_sweep,
    records_frame,
    table1,
    write_tables,
)

FOLDS = range(5)
BASE_EMO = [0.60, 0.62, 0.58, 0.61, 0.59]
BASE_PRIV = [0.90, 0.88, 0.93, 0.91, 0.89]
# A clearly significant gain (+0.05 on every fold, small jitter) and a clearly non-significant change (mean 0, large spread).
UP_EMO = [b + d for b, d in zip(BASE_EMO, [0.050, 0.052, 0.049, 0.051, 0.048])]
NOISY_EMO = [b + d for b, d in zip(BASE_EMO, [0.05, -0.04, 0.03, -0.05, 0.01])]
DOWN_PRIV = [b - d for b, d in zip(BASE_PRIV, [0.30, 0.31, 0.29, 0.30, 0.32])]


def record(corpus, modality, task, adversary, fold, emo, gender=None, *, speaker=None, mi=None, placement="fused",
           grl_lambda=None):
    """One per-fold result record with the keys ``run_fold`` writes (only what reporting reads is meaningful)."""
    attacks = {}
    if gender is not None:
        attacks["gender"] = {"strongest_test_uar": gender, "max_test_uar": min(1.0, gender + 0.01), "chance": 0.5}
    if speaker is not None:
        attacks["speaker"] = {"strongest_test_uar": speaker, "max_test_uar": speaker}
    r = {
        "corpus": corpus,
        "fold": fold,
        "modalities": modality.split("+"),
        "modality": modality,
        "task": task,
        "adversary": adversary,
        "placement": placement,
        "grl_lambda": grl_lambda if grl_lambda is not None else (1.0 if adversary else None),
        "condition": f"{modality}-{task}-{adversary or 'baseline'}",
        "test": {"emotion_uar": emo, "n": 12},
        "attacks": attacks,
    }
    if mi is not None:
        r["membership"] = {"best_accuracy": mi, "best_attack": "learned"}
    return r


def fmt(values):
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def demo_records():
    """acoustic/demo: activation adversary clearly better emotion and clearly lower privacy; valence: noise only."""
    recs = []
    for k in FOLDS:
        recs.append(record("demo", "acoustic", "activation", None, k, BASE_EMO[k], BASE_PRIV[k], speaker=0.4, mi=0.6))
        recs.append(record("demo", "acoustic", "activation", "gender", k, UP_EMO[k], DOWN_PRIV[k]))
        recs.append(record("demo", "acoustic", "valence", None, k, BASE_EMO[k], BASE_PRIV[k], speaker=0.4, mi=0.6))
        recs.append(record("demo", "acoustic", "valence", "gender", k, NOISY_EMO[k], BASE_PRIV[k] + [0.02, -0.03, 0.01, 0.0, -0.01][k]))
    return recs


def test_records_frame_flattens_and_marks_missing_attacks_nan():
    recs = demo_records()
    frame = records_frame(recs)
    assert len(frame) == len(recs)
    assert list(frame.columns) == ["corpus", "modality", "task", "adversary", "placement", "grl_lambda", "fold",
                                   "emotion_uar", "gender_uar", "gender_uar_max", "speaker_uar", "mi_accuracy"]
    base = frame[(frame.adversary == "none") & (frame.task == "activation")].sort_values("fold")
    assert base.emotion_uar.tolist() == BASE_EMO and base.gender_uar.tolist() == BASE_PRIV
    assert (base.speaker_uar == 0.4).all() and (base.mi_accuracy == 0.6).all()
    adv = frame[frame.adversary == "gender"]
    assert adv.speaker_uar.isna().all() and adv.mi_accuracy.isna().all()  # not run for the gender adversary
    multi = records_frame([record("iemocap", "acoustic+lexical", "valence", None, 0, 0.5, 0.6)])
    assert multi.modality.tolist() == ["acoustic+lexical"]
    with pytest.raises(ValueError, match="No per-fold results"):
        records_frame([])


def test_paired_test_significance_and_sign():
    p, sign = paired_test(BASE_EMO, UP_EMO)
    assert p < 0.001 and sign == 1
    p, sign = paired_test(BASE_EMO, NOISY_EMO)
    assert p > 0.5
    p, sign = paired_test(BASE_PRIV, DOWN_PRIV)
    assert p < 0.001 and sign == -1
    assert math.isnan(paired_test([0.5], [0.6])[0])  # one fold: no test
    assert paired_test(BASE_EMO, BASE_EMO) == (1.0, 0)  # identical folds: no evidence of a difference
    assert math.isnan(paired_test([0.5, np.nan], [0.6, 0.7])[0])  # NaN pairs are dropped, leaving one


def test_table1_cells_mean_std_and_markers_only_where_significant():
    frame = records_frame(demo_records())
    t = table1(frame, "gender", "gender_uar")
    assert len(t) == 1
    row = t.iloc[0]
    assert (row.modality, row.corpus) == ("acoustic", "demo")
    assert row["Activation Emo (baseline)"] == fmt(BASE_EMO)
    assert row["Activation Emo (gender adv.)"] == fmt(UP_EMO) + " " + MARK_UP
    assert row["Activation Priv (baseline)"] == fmt(BASE_PRIV)
    assert row["Activation Priv (gender adv.)"] == fmt(DOWN_PRIV) + " " + MARK_DOWN
    # not significant: no marker at all
    assert row["Valence Emo (gender adv.)"] == fmt(NOISY_EMO)
    assert MARK_UP not in row["Valence Priv (gender adv.)"] and MARK_DOWN not in row["Valence Priv (gender adv.)"]
    # baseline cells are never marked
    assert not any(m in row[c] for c in t.columns if "baseline" in c for m in (MARK_UP, MARK_DOWN))


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
    # valence was not run: its cells are dashes, not zeros
    assert t.iloc[0]["Valence Emo (baseline)"] == "–" and t.iloc[0]["Valence Priv (gender adv.)"] == "–"


def test_table1_compares_only_common_folds_and_only_the_requested_placement():
    recs = [record("iemocap", "acoustic+lexical", "activation", None, k, BASE_EMO[k], BASE_PRIV[k]) for k in FOLDS]
    recs += [record("iemocap", "acoustic+lexical", "activation", "gender", k, UP_EMO[k], DOWN_PRIV[k]) for k in FOLDS]
    # a per-modality adversary with very different numbers must not leak into the fused table
    recs += [record("iemocap", "acoustic+lexical", "activation", "gender", k, 0.1, 0.1, placement="per_modality")
             for k in FOLDS]
    frame = records_frame(recs)
    fused = table1(frame, "gender", "gender_uar").iloc[0]
    assert fused["Activation Emo (gender adv.)"] == fmt(UP_EMO) + " " + MARK_UP
    per = table1(frame, "gender", "gender_uar", placement="per_modality").iloc[0]
    assert per["Activation Emo (gender adv.)"].startswith("0.100 ± 0.000")
    # adversary finished on three folds only: its cell covers those three; the baseline keeps all five
    partial = records_frame([r for r in recs if r["adversary"] is None or (r["placement"] == "fused" and r["fold"] < 3)])
    row = table1(partial, "gender", "gender_uar").iloc[0]
    assert row["Activation Emo (gender adv.)"].startswith(fmt(UP_EMO[:3]))
    assert row["Activation Emo (baseline)"] == fmt(BASE_EMO)


def test_table1b_speaker_adversary_with_membership_column():
    recs = []
    for k in FOLDS:
        recs.append(record("demo", "acoustic", "activation", None, k, 0.6, 0.9, speaker=0.5 + 0.01 * k, mi=0.6))
        recs.append(record("demo", "acoustic", "activation", "speaker", k, 0.6, 0.9, speaker=0.2 + 0.011 * k, mi=0.55))
    t = table1(records_frame(recs), "speaker", "speaker_uar", extra=("mi_accuracy",))
    row = t.iloc[0]
    assert row["Activation Priv (speaker adv.)"].endswith(MARK_DOWN)
    assert row["Activation mi_accuracy (baseline)"] == "0.600 ± 0.000"
    assert row["Activation mi_accuracy (speaker adv.)"].startswith("0.550 ± 0.000")
    assert "Valence mi_accuracy (speaker adv.)" in t.columns


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


def sweep_records():
    recs = []
    for lam, emo, priv in [(0.3, 0.60, 0.85), (0.5, 0.61, 0.80), (0.75, 0.59, 0.70), (1.0, 0.60, 0.65)]:
        for k in range(3):
            recs.append(record("demo", "acoustic", "activation", "gender", k, emo + 0.01 * k, priv - 0.01 * k,
                               grl_lambda=lam))
    return recs


def test_lambda_sweep_frame_means_per_lambda():
    sweep = lambda_sweep_frame(sweep_records())
    assert sweep.grl_lambda.tolist() == [0.3, 0.5, 0.75, 1.0]
    assert (sweep.n_folds == 3).all()
    np.testing.assert_allclose(sweep.emotion_uar_mean, [0.61, 0.62, 0.60, 0.61])
    np.testing.assert_allclose(sweep.gender_uar_mean, [0.84, 0.79, 0.69, 0.64])
    np.testing.assert_allclose(sweep.emotion_uar_std, [0.01] * 4)
    baseline_only = [record("demo", "acoustic", "activation", None, k, 0.6, 0.9) for k in range(3)]
    with pytest.raises(ValueError, match="grl_lambda"):
        lambda_sweep_frame(baseline_only)


def test_plot_lambda_sweep_writes_png_atomically(tmp_path):
    sweep = lambda_sweep_frame(sweep_records())
    baseline = records_frame([record("demo", "acoustic", "activation", None, k, 0.6, 0.9) for k in range(3)])
    target = tmp_path / "lambda_sweep.png"
    target.write_bytes(b"old")
    out = plot_lambda_sweep(sweep, target, baseline=baseline)
    assert out == target
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lambda_sweep.png"]  # no temporary file left behind


def test_write_tables_writes_markdown_and_csv(tmp_path):
    recs = demo_records()
    written = write_tables(recs, tmp_path)
    assert sorted(written) == ["table1a"]  # no speaker adversary, one placement: no table1b, no placement table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1a.csv", "table1a.md"]
    csv = pd.read_csv(tmp_path / "table1a.csv")
    pd.testing.assert_frame_equal(csv, written["table1a"].astype(object), check_dtype=False)
    md = (tmp_path / "table1a.md").read_text(encoding="utf-8")
    assert md.startswith("Table 1a: gender adversary.")
    assert "p < 0.05" in md and MARK_UP in md
    header = [line for line in md.splitlines() if line.startswith("| modality")][0]
    assert header == "| " + " | ".join(written["table1a"].columns) + " |"
    assert f"| acoustic | demo | {fmt(BASE_EMO)} | {fmt(UP_EMO)} {MARK_UP} |" in md

    recs += [record("demo", "acoustic", "activation", "speaker", k, 0.6, 0.9, speaker=0.3, mi=0.5) for k in FOLDS]
    recs += [record("demo", "acoustic+lexical", "activation", "gender", k, 0.6, 0.8, placement=p)
             for k in FOLDS for p in ("fused", "per_modality")]
    written = write_tables(recs, tmp_path)
    assert sorted(written) == ["placement", "table1a", "table1b"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["placement.csv", "placement.md", "table1a.csv", "table1a.md", "table1b.csv", "table1b.md"]
    assert "membership-identification" in (tmp_path / "table1b.md").read_text(encoding="utf-8")


def test_to_markdown_layout():
    t = pd.DataFrame({"a": ["x", "y"], "b": ["1 ± 0", "–"]})
    assert reporting.to_markdown(t) == "| a | b |\n| --- | --- |\n| x | 1 ± 0 |\n| y | – |\n"
    assert reporting.to_markdown(t, "note").startswith("note\n\n| a | b |")
