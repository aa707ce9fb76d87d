"""Tables and plots from per-fold results: Table 1a / 1b in the paper's layout, the lambda sweep, placement comparison.

Input is the list of per-fold result records the experiment writes (one JSON object per condition and fold, see
``privemo.experiment.FoldResult``); nothing here trains or reads features.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from privemo._util.io import atomic_write_text, writing
from privemo.removal.methods import DEFAULT_REMOVAL, METHODS

# Row order of the paper's Table 1 (modality, corpus); other corpora (the demo corpus) are appended per modality.
PAPER_ROWS: tuple[tuple[str, str], ...] = (
    ("acoustic", "msp-improv"),
    ("acoustic", "msp-podcast"),
    ("acoustic", "iemocap"),
    ("acoustic", "muse"),
    ("lexical", "iemocap"),
    ("lexical", "muse"),
    ("acoustic+lexical", "iemocap"),
    ("acoustic+lexical", "muse"),
)
TASKS: tuple[str, ...] = ("activation", "valence")

# assumption (README assumptions table): significance is a paired two-sided t-test over the outer folds, p < 0.05.
SIGNIFICANCE_LEVEL = 0.05

MARK_UP, MARK_DOWN = "▲", "▼"


OLD_SCHEMA_REASONS = {  # figures of records made before record schema 2 that are not held out
    "speaker_eer": "record schema 1: EER over validation + test speakers (not held out); rerun to measure it",
    "speaker_eer_same_gender": "record schema 1: EER over validation + test speakers (not held out); rerun to measure it",
    "mi_auc": "record schema 1: MI AUC was the hindsight maximum over attacks; rerun to measure it",
}


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Flatten per-fold result records into one row per (corpus, modality, task, adversary, placement, fold, repeat).

    A figure a record could not support honestly is NaN with its reason in ``<column>_reason`` (e.g. a speaker EER
    on a fold with one test speaker per gender, or any figure of an older record schema that was not held out)."""
    rows = []
    for r in records:
        verification = (r.get("attacks") or {}).get("speaker_verification") or {}
        reasons = {"speaker_eer_reason": verification.get("reason"), "speaker_eer_same_gender_reason":
                   verification.get("reason") if verification.get("eer_same_gender") is None else None,
                   "mi_auc_reason": (r.get("membership") or {}).get("skipped")}
        if r.get("schema", 1) < 2:
            reasons.update({f"{k}_reason": v for k, v in OLD_SCHEMA_REASONS.items()})
        if reasons["speaker_eer_same_gender_reason"] is None and verification.get("eer_same_gender") is None:
            reasons["speaker_eer_same_gender_reason"] = "no same-gender pairs of different test speakers"
        old = r.get("schema", 1) < 2
        rows.append(
            {
                "corpus": r["corpus"],
                "modality": "+".join(r["modalities"]),
                "task": r["task"],
                "adversary": r["adversary"] or "none",
                "placement": r.get("placement", "fused"),
                "grl_lambda": r.get("grl_lambda"),
                "fold": int(r["fold"]),
                "repeat": int(r.get("repeat", 0)),
                "emotion_uar": r["test"]["emotion_uar"],
                "gender_uar": _get(r, "attacks", "gender", "strongest_test_uar"),
                "gender_uar_max": _get(r, "attacks", "gender", "max_test_uar"),
                "speaker_eer": math.nan if old else _get(r, "attacks", "speaker_verification", "eer"),
                "speaker_eer_same_gender": math.nan if old else _get(r, "attacks", "speaker_verification",
                                                                     "eer_same_gender"),
                "mi_auc": math.nan if old else _get(r, "membership", "auc"),
                "best_epoch": _get(r, "best_epoch"),
                "max_epochs": _get(r, "max_epochs"),
                "degenerate": bool(r.get("degenerate", False)),
                "n_degenerate_trials": int(r.get("n_degenerate_trials", 0)),
                "n_trials": len(r.get("trials", ())),
                "emotion_per_speaker": (r.get("test") or {}).get("per_speaker"),
                "gender_per_speaker": ((r.get("attacks") or {}).get("gender") or {}).get("per_speaker"),
                **reasons,
            }
        )
    if not rows:
        raise ValueError("No per-fold results to report: run the experiment first (python -m privemo.reproduce).")
    return pd.DataFrame(rows)


def _get(record: dict, *keys: str) -> float:
    value = record
    for key in keys:
        if not isinstance(value, dict) or key not in value or value[key] is None:
            return math.nan
        value = value[key]
    return float(value)


def paired_test(baseline: Sequence[float], treated: Sequence[float]) -> tuple[float, int]:
    """Paired two-sided t-test over the (fold, repeat) pairs; returns (p value, sign of the mean difference treated -
    baseline)."""
    a, b = np.asarray(baseline, float), np.asarray(treated, float)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if len(a) < 2:
        return math.nan, 0
    diff = b - a
    sign = int(np.sign(diff.mean()))
    if np.allclose(diff, diff[0]):
        # A constant difference has zero variance: the t statistic is undefined (identical folds give no evidence).
        return (0.0 if diff[0] != 0 else 1.0), sign
    return float(stats.ttest_rel(b, a).pvalue), sign


def _cell(values: pd.Series, baseline: pd.Series | None = None, missing: str = "–") -> str:
    v = values.dropna().to_numpy(float)
    if len(v) == 0:
        return missing
    text = f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"
    if baseline is not None:
        p, sign = paired_test(baseline.to_numpy(float), values.to_numpy(float))
        if not math.isnan(p) and p < SIGNIFICANCE_LEVEL and sign != 0:
            text += f" {MARK_UP if sign > 0 else MARK_DOWN}"
    return text


def _lambdas(values: pd.Series) -> str:
    """The selected lambda of every (fold, repeat), in order: '0.3/1/0.5/...'."""
    return "/".join(f"{v:g}" for v in values.to_numpy(float) if not math.isnan(v)) or "–"


def _row_order(frame: pd.DataFrame) -> list[tuple[str, str]]:
    present = set(map(tuple, frame[["modality", "corpus"]].drop_duplicates().to_numpy()))
    order = [row for row in PAPER_ROWS if row in present]
    order += sorted(present - set(order), key=lambda mc: (["acoustic", "lexical", "acoustic+lexical"].index(mc[0])
                                                          if mc[0] in ("acoustic", "lexical", "acoustic+lexical") else 9, mc[1]))
    return order


def table1(frame: pd.DataFrame, adversary: str, privacy: Sequence[str] | str, *, placement: str = "fused",
           extra: Sequence[str] = (), reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """One of the paper's Table 1 variants, mean ± std over (fold, repeat) pairs, adversarial cells marked against the
    paired baseline.

    Args:
        frame: ``records_frame`` output.
        adversary: "gender" (Table 1a) or "speaker" (Table 1b).
        privacy: the privacy column(s) reported for baseline and adversary ("gender_uar": lower is more private;
            "speaker_eer": higher is more private).
        placement: which adversary placement to tabulate.
        extra: further metric columns (e.g. "mi_auc").
        reference: ``privemo.experiment.reference.reference_frame`` output: adds the linear reference's emotion UAR per task.
    """
    privacy = [privacy] if isinstance(privacy, str) else list(privacy)
    out_rows = []
    for modality, corpus in _row_order(frame):
        row: dict[str, object] = {"modality": modality, "corpus": corpus}
        sel = frame[(frame.modality == modality) & (frame.corpus == corpus)]
        for task in TASKS:
            base_rows = sel[(sel.task == task) & (sel.adversary == "none")]
            adv_rows = sel[(sel.task == task) & (sel.adversary == adversary) & (sel.placement == placement)]
            base, adv = per_fold(base_rows), per_fold(adv_rows)
            b, a = paired_folds(base_rows, adv_rows)
            common = a.index
            label = task.capitalize()
            if reference is not None:
                ref = reference[(reference.corpus == corpus) & (reference.modality == modality) & (reference.task == task)]
                row[f"{label} Emo (linear ref.)"] = (f"{ref.uar_mean.iloc[0]:.3f} ± {ref.uar_std.iloc[0]:.3f}"
                                                     if len(ref) else "–")
            row[f"{label} Emo (baseline)"] = _cell(base["emotion_uar"]) if len(base) else "–"
            row[f"{label} Emo ({adversary} adv.)"] = _cell(a["emotion_uar"], b["emotion_uar"]) if len(a) else "–"
            rows_of_task = sel[sel.task == task]
            for column in [*privacy, *extra]:
                name = COLUMN_NAMES.get(column, column)
                # n/a: a figure the folds could not support honestly (its reason is in the records); –: not measured
                reason = f"{column}_reason"
                missing = "n/a" if reason in rows_of_task and rows_of_task[reason].notna().any() else "–"
                row[f"{label} {name} (baseline)"] = _cell(base[column], missing=missing) if len(base) else "–"
                row[f"{label} {name} ({adversary} adv.)"] = (_cell(a[column], b[column], missing=missing) if len(a)
                                                             else "–")
            row[f"{label} λ per fold ({adversary} adv.)"] = (_lambdas(adv_rows.sort_values(["fold", "repeat"])
                                                                      ["grl_lambda"]) if len(adv) else "–")
            row[f"{label} n"] = int(len(common))
        out_rows.append(row)
    return pd.DataFrame(out_rows)


def per_fold(rows: pd.DataFrame) -> pd.DataFrame:
    """Numeric figures averaged over each fold's repeats, indexed by fold: a fold's test speakers count once in every
    mean, spread and test over folds."""
    numeric = [c for c in rows.select_dtypes("number").columns if c not in ("fold", "repeat")]
    return rows.groupby("fold")[numeric].mean().sort_index() if len(rows) else rows.set_index("fold")


def paired_rows(base_rows: pd.DataFrame, adv_rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The baseline and adversary rows of the (fold, repeat) pairs both ran."""
    key = lambda rows: list(zip(rows.fold, rows.repeat))  # noqa: E731
    both = set(key(base_rows)) & set(key(adv_rows))
    keep = lambda rows: rows.loc[np.array([k in both for k in key(rows)], dtype=bool)]  # noqa: E731
    return keep(base_rows), keep(adv_rows)


def paired_folds(base_rows: pd.DataFrame, adv_rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline and adversary figures per fold over the (fold, repeat) pairs both ran, each fold's repeats averaged:
    the paired comparison never sets one repeat's adversary against another repeat's baseline."""
    base, adv = paired_rows(base_rows, adv_rows)
    return per_fold(base), per_fold(adv)


def degenerate_note(frame: pd.DataFrame) -> str:
    """How many trials learnt nothing (validation emotion UAR below chance + margin) and how many selected networks
    are such trials (only when no trial of their (condition, fold) learnt something)."""
    n_trials, n_bad = int(frame["n_trials"].sum()), int(frame["n_degenerate_trials"].sum())
    kept = int(frame["degenerate"].sum())
    return (f" Degenerate trials (validation emotion UAR below chance + 0.05; never selected while another trial of "
            f"their (condition, fold) learnt something): {n_bad} of {n_trials}; selected networks among them: {kept}.")


COLUMN_NAMES = {
    "gender_uar": "Priv gender UAR",
    "speaker_eer": "Speaker EER",
    "speaker_eer_same_gender": "Speaker EER same-gender",
    "mi_auc": "MI AUC",
}

TABLE_NOTES = {
    "table1a": (
        "Table 1a: gender adversary. Emo = emotion UAR on the test speakers (higher is better); linear ref. = a logistic "
        "regression on utterance statistics / bag of words on the same folds and training rows (a network below it is "
        "undertrained). Priv gender UAR = UAR on the test speakers of the validation-selected fresh gender attacker "
        "(lowest validation log-loss), refitted on training + validation speakers, on the frozen representation "
        "(chance 0.5; lower is more private). λ per fold = the GRL strength selected on validation in each (fold, "
        "repeat). Mean ± std over n folds (a fold's repeats averaged first); baseline and adversary of a fold share "
        "initial weights and batch order. {up}/{down}: significantly higher/lower than the baseline (paired t-test "
        "over the n folds, p < {alpha}); no mark is not \"no difference\": claims.md tests equivalence. Each record "
        "holds speaker-level 95 % intervals (cluster bootstrap over test speakers)."
    ),
    "table1b": (
        "Table 1b: speaker-identity adversary. Speaker EER = equal error rate of a fresh speaker verifier learnt on the "
        "training speakers' frozen representations, on all same/different-speaker pairs of the test speakers only "
        "(0.5 = nothing links; higher is more private); same-gender = only different-speaker pairs of one gender; n/a "
        "= no fold could support it (e.g. one test speaker per gender: every different-speaker pair is a gender "
        "pair). MI AUC = ROC AUC of the membership-inference attack chosen inside each fitting half (never on the "
        "pairs it is scored on), members = training utterances, non-members = held-out utterances of the same "
        "speakers (0.5 = nothing leaks). Mean ± std over n folds (repeats averaged first). {up}/{down}: "
        "significantly higher/lower than the baseline (paired t-test over folds, p < {alpha}); no mark is not \"no "
        "difference\": claims.md tests equivalence."
    ),
}


def to_markdown(table: pd.DataFrame, note: str = "") -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    text = "\n".join(lines) + "\n"
    return (note + "\n\n" + text) if note else text


def write_tables(records: Sequence[dict], out_dir: str | Path,
                 reference: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Write table1a.md/.csv and table1b.md/.csv (when their adversaries were run) into ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    frame = records_frame(records)
    fmt = {"up": MARK_UP, "down": MARK_DOWN, "alpha": SIGNIFICANCE_LEVEL}
    written: dict[str, pd.DataFrame] = {}
    specs = {"table1a": ("gender", ["gender_uar"], ()),
             "table1b": ("speaker", ["gender_uar", "speaker_eer", "speaker_eer_same_gender"], ("mi_auc",))}
    for name, (adversary, privacy, extra) in specs.items():
        if not (frame.adversary == adversary).any():
            continue
        table = table1(frame, adversary, privacy, extra=extra, reference=reference)
        atomic_write_text(out_dir / f"{name}.csv", table.to_csv(index=False))
        atomic_write_text(out_dir / f"{name}.md", to_markdown(table, removal_note(records, adversary)
                                                              + TABLE_NOTES[name].format(**fmt)
                                                              + degenerate_note(frame)))
        written[name] = table
    placement = placement_table(frame)
    if placement is not None:
        atomic_write_text(out_dir / "placement.csv", placement.to_csv(index=False))
        atomic_write_text(out_dir / "placement.md", to_markdown(
            placement, "Adversary on the fused representation h vs one adversary on each modality's h_a and h_l "
            "(multimodal rows; gender attacker UAR, lower is more private)."))
        written["placement"] = placement
    return written


def removal_note(records: Sequence[dict], adversary: str) -> str:
    """'' when the ``adversary`` records used the paper's GRL (``record["removal"]`` "grl" or absent), else a first line
    naming the attribute-removal method(s) of their adversarial columns (``--removal``)."""
    used = {r.get("removal") or DEFAULT_REMOVAL  # the method each record names (absent: the paper's)
            for r in records if r.get("adversary") == adversary}
    methods = sorted(name for name in used if name not in METHODS or not METHODS[name].paper)  # unknown: named
    if not methods:
        return ""
    return (f"Removal method: {', '.join(methods)} (privemo.removal, `--removal`), not the paper's gradient reversal: "
            f"the {adversary} adv. columns are networks trained with it (λ per fold is – for a method without a GRL "
            "strength).\n\n")


def placement_table(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Fused vs per-modality adversary on the multimodal rows, or None when only one placement was run."""
    multi = frame[frame.modality.str.contains(r"\+") & (frame.adversary != "none")]
    if multi.placement.nunique() < 2:
        return None
    rows = []
    for (corpus, task, adversary), g in multi.groupby(["corpus", "task", "adversary"]):
        row = {"corpus": corpus, "task": task, "adversary": adversary}
        for placement, gp in g.groupby("placement"):
            row[f"Emo ({placement})"] = _cell(gp["emotion_uar"])
            row[f"Priv gender ({placement})"] = _cell(gp["gender_uar"])
        rows.append(row)
    return pd.DataFrame(rows)


def lambda_tradeoff_frame(records: Sequence[dict]) -> pd.DataFrame:
    """The lambda trade-off from the tuned runs' own trials (no separate trainings): for every adversarial row and
    lambda (the validation-best trial of that lambda when the grid has several architectures), mean and std over
    (fold, repeat) pairs (``n_folds``) of the trial's test emotion UAR and of a fresh gender probe's test UAR
    (a logistic regression fitted on the trial's training-speaker h), plus how often that lambda was selected. The
    baseline's trials appear as adversary "none", lambda 0.
    Columns: corpus, modality, task, adversary, grl_lambda, emotion_uar_mean/std, gender_uar_mean/std, n_folds,
    selected."""
    rows = []
    for r in records:
        for trial in _best_trial_per_lambda(r):
            lam = 0.0 if r.get("adversary") is None else float(trial["grl_lambda"])  # the baseline is lambda = 0
            rows.append({"corpus": r["corpus"], "modality": "+".join(r["modalities"]), "task": r["task"],
                         "adversary": r["adversary"] or "none", "grl_lambda": lam,
                         "fold": (int(r["fold"]), int(r.get("repeat", 0))),
                         "emotion_uar": trial.get("test_emotion_uar"), "gender_uar": trial.get("test_probe_uar"),
                         "selected": float(trial.get("trial_id") == _selected_trial(r))})
    columns = ["corpus", "modality", "task", "adversary", "grl_lambda"]
    if not rows:
        return pd.DataFrame(columns=columns + ["emotion_uar_mean", "emotion_uar_std", "gender_uar_mean",
                                               "gender_uar_std", "n_folds", "selected"])
    frame = pd.DataFrame(rows).astype({"emotion_uar": float, "gender_uar": float})
    agg = frame.groupby(columns).agg(
        emotion_uar_mean=("emotion_uar", "mean"), emotion_uar_std=("emotion_uar", "std"),
        gender_uar_mean=("gender_uar", "mean"), gender_uar_std=("gender_uar", "std"),
        n_folds=("fold", "nunique"), selected=("selected", "sum"),
    )
    return agg.reset_index()


def _best_trial_per_lambda(record: dict) -> list[dict]:
    """Per lambda, the non-degenerate trial with the best validation objective (on a grid with several architectures
    the trade-off is that of the network validation would pick at that lambda); the baseline's trial as lambda 0. A
    lambda whose every trial is degenerate is left out for that fold (``n_folds`` counts the folds drawn)."""
    best: dict = {}
    for trial in record.get("trials", ()):
        lam = trial.get("grl_lambda")
        if (record.get("adversary") is not None and lam is None) or trial.get("degenerate", False):
            continue  # each lambda is drawn from a network that learnt something
        score = trial.get("val_objective")
        score = -math.inf if score is None else score
        if lam not in best or score > best[lam][0]:
            best[lam] = (score, trial)
    return [trial for _, trial in best.values()]


def _selected_trial(record: dict) -> str | None:
    """The trial id whose hyper-parameters are the record's ``best_hp``."""
    for trial in record.get("trials", ()):
        if trial.get("hp") == record.get("best_hp"):
            return trial.get("trial_id")
    return None


def lambda_sweep_frame(records: Sequence[dict]) -> pd.DataFrame:
    """Mean and std over folds of emotion UAR and gender-attacker UAR per selected lambda, from fold records (kept for
    records made with a fixed lambda; ``lambda_tradeoff_frame`` draws the trade-off from every trial)."""
    frame = records_frame(records)
    if frame.grl_lambda.isna().all():
        raise ValueError("The records hold no grl_lambda values: they are not lambda-sweep results.")
    agg = frame.groupby(["corpus", "modality", "task", "adversary", "grl_lambda"]).agg(
        emotion_uar_mean=("emotion_uar", "mean"), emotion_uar_std=("emotion_uar", "std"),
        gender_uar_mean=("gender_uar", "mean"), gender_uar_std=("gender_uar", "std"),
        n_folds=("fold", "nunique"),
    )
    return agg.reset_index()


def plot_lambda_sweep(sweep: pd.DataFrame, path: str | Path, baseline: pd.DataFrame | None = None) -> Path:
    """Emotion UAR and gender attacker / probe UAR against lambda, one panel per (corpus, modality, task, adversary)
    (error bars = std over folds), written atomically as PNG. Rows of adversary "none" (``lambda_tradeoff_frame``'s
    baseline) are drawn at lambda 0 in every panel of their (corpus, modality, task); ``baseline`` (a ``records_frame``
    of baseline records) adds their means as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if "adversary" not in sweep:
        sweep = sweep.assign(adversary="gender")
    zero = sweep[sweep.adversary == "none"]
    keys = ["corpus", "modality", "task", "adversary"]
    groups = list(sweep[sweep.adversary != "none"].groupby(keys))
    if not groups:
        raise ValueError("Nothing to plot: the frame holds no adversarial lambda values.")
    ncols = min(4, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax, ((corpus, modality, task, adversary), g) in zip(axes.flat, groups):
        z = zero[(zero.corpus == corpus) & (zero.modality == modality) & (zero.task == task)]
        g = pd.concat([z, g]).sort_values("grl_lambda")
        ax.errorbar(g.grl_lambda, g.emotion_uar_mean, yerr=g.emotion_uar_std, marker="o", capsize=3, label="emotion UAR")
        ax.errorbar(g.grl_lambda, g.gender_uar_mean, yerr=g.gender_uar_std, marker="s", capsize=3,
                    label="gender UAR, fresh logistic probe" if "selected" in g else "gender attacker UAR")
        if baseline is not None:
            b = baseline[(baseline.corpus == corpus) & (baseline.modality == modality) & (baseline.task == task)]
            if len(b):
                ax.axhline(b.emotion_uar.mean(), color="C0", ls=":", lw=1, label="emotion UAR, no adversary")
                ax.axhline(b.gender_uar.mean(), color="C1", ls=":", lw=1, label="attacker UAR, no adversary")
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("GRL λ (0 = no adversary)" if len(z) else "GRL λ")
        ax.set_ylabel("UAR")
        ax.set_title(f"{corpus}: {modality}, {task}, {adversary} adv.", fontsize=9)
        ax.set_ylim(0.0, 1.05)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    try:
        with writing(path):
            fig.savefig(tmp, dpi=110)
            tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path
