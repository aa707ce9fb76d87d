"""The paper's claims, each tested on the run's own records with one fixed rule: ``claims.csv`` and ``claims.md``.

One row per (claim, modality, task, adversary): the adversary's effect on emotion (the cost of privacy), on the fresh
gender attacker, on speaker linkability (EER, all pairs and same-gender pairs) and on membership inference (MI AUC).

The test (every row): each metric is first averaged over a fold's repeats (so a fold's speakers count once), then the
paired differences adversary - baseline over the n outer folds give a two-sided paired t interval: ``ci_low`` /
``ci_high`` at 95 %, ``p`` its p value; ``p_equivalence`` is the two one-sided tests (TOST) against ±``margin``, whose
90 % interval is the equivalence criterion; ``mdd80`` is the difference that test detects with 80 % power at
α = 0.05 given the folds' spread, (t_0.975 + t_0.80) · sd / sqrt(n). The verdict rule, in this order:

- ``n/a``: fewer than two folds with both figures (``reason`` says why);
- ``better`` / ``worse``: the 95 % interval excludes 0; better or worse for the metric's own direction (emotion UAR
  and speaker EER: higher is better; gender attacker UAR and MI AUC: lower is better);
- ``equivalent``: the 90 % interval lies inside ±margin (TOST at α = 0.05);
- ``inconclusive``: neither. "Not significant" is never "no cost".

Secondary, not used by the rule: ``ci_speaker_low`` / ``ci_speaker_high``, a paired cluster bootstrap over the test
speakers of the same mean difference (the speakers of every fold resampled within gender, the same draw for baseline
and adversary; the networks held fixed), for emotion and gender-attacker UAR. ``p_holm`` is Holm's step-down
adjustment of ``p`` over all rows of the file.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

MARGIN = 0.03  # assumption (README assumptions table): the equivalence margin, in UAR / EER / AUC units (--margin)
ALPHA = 0.05

# claim -> (metric column of ``reporting.records_frame``, +1 when higher is better, what it measures)
CLAIMS: dict[str, tuple[str, int, str]] = {
    "emotion_cost": ("emotion_uar", +1, "test emotion UAR"),
    "gender_leakage": ("gender_uar", -1, "fresh gender attacker UAR on the test speakers"),
    "speaker_linkability": ("speaker_eer", +1, "speaker-verification EER among the test speakers"),
    "speaker_linkability_same_gender": ("speaker_eer_same_gender", +1,
                                        "speaker-verification EER, same-gender pairs of test speakers"),
    "membership": ("mi_auc", -1, "membership-inference AUC (attack chosen without the evaluation pairs)"),
}
# per-speaker counts behind the secondary speaker-level interval (``reporting.records_frame`` keeps them)
SPEAKER_COUNTS = {"emotion_uar": "emotion_per_speaker", "gender_uar": "gender_per_speaker"}
COLUMNS = ["claim", "modality", "task", "adversary", "metric", "direction", "baseline", "adversarial", "difference",
           "ci_low", "ci_high", "p", "n", "mdd80", "margin", "p_equivalence", "verdict", "p_holm", "ci_speaker_low",
           "ci_speaker_high", "reason"]


def paired_verdict(baseline: Sequence[float], adversarial: Sequence[float], higher_is_better: bool,
                   margin: float = MARGIN, alpha: float = ALPHA) -> dict:
    """The paired t figures and the verdict (module docstring) for fold-level values of one metric."""
    a, b = np.asarray(baseline, float), np.asarray(adversarial, float)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    n = int(len(a))
    out = {"baseline": float(a.mean()) if n else math.nan, "adversarial": float(b.mean()) if n else math.nan,
           "difference": float((b - a).mean()) if n else math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p": math.nan, "n": n, "mdd80": math.nan, "margin": float(margin), "p_equivalence": math.nan,
           "verdict": "n/a"}
    if n < 2:
        return out
    d = b - a
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    df, se = n - 1, sd / math.sqrt(n)
    t95, t90, t80 = stats.t.ppf(1 - alpha / 2, df), stats.t.ppf(1 - alpha, df), stats.t.ppf(0.80, df)
    if se > 0:
        p = float(2 * stats.t.sf(abs(mean) / se, df))
        p_eq = float(max(stats.t.sf((mean + margin) / se, df), stats.t.cdf((mean - margin) / se, df)))
    else:  # every fold moved by exactly the same amount: a zero-width interval
        p = 1.0 if mean == 0 else 0.0
        p_eq = 0.0 if abs(mean) < margin else 1.0
    low, high = mean - t95 * se, mean + t95 * se
    out.update(ci_low=low, ci_high=high, p=p, mdd80=float((t95 + t80) * sd / math.sqrt(n)), p_equivalence=p_eq)
    if low > 0 or high < 0:
        out["verdict"] = "better" if (mean > 0) == higher_is_better else "worse"
    elif -margin < mean - t90 * se and mean + t90 * se < margin:
        out["verdict"] = "equivalent"
    else:
        out["verdict"] = "inconclusive"
    return out


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p values (NaN stays NaN)."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def _speaker_interval(base: pd.DataFrame, adv: pd.DataFrame, column: str, folds, seed: int) -> tuple[float, float]:
    """Paired cluster bootstrap over test speakers of the mean (over folds) difference adversary - baseline; ``base`` and
    ``adv`` hold the rows of the (fold, repeat) pairs both ran (``reporting.paired_rows``)."""
    from privemo.metrics import paired_speaker_difference

    key = SPEAKER_COUNTS.get(column)
    if key is None or key not in base or key not in adv:
        return math.nan, math.nan
    per_fold = []
    for fold in folds:
        draws = []
        for (_, b), (_, a) in zip(base[base.fold == fold].sort_values("repeat").iterrows(),
                                  adv[adv.fold == fold].sort_values("repeat").iterrows()):
            if not isinstance(b[key], dict) or not isinstance(a[key], dict):
                return math.nan, math.nan
            draws.append(paired_speaker_difference(b[key], a[key], seed=seed + int(fold)))
        if not draws:
            return math.nan, math.nan
        per_fold.append(np.mean(draws, axis=0))
    mean = np.nanmean(per_fold, axis=0)
    low, high = np.nanquantile(mean, [0.025, 0.975])
    return float(low), float(high)


def _reason(base: pd.DataFrame, adv: pd.DataFrame, column: str, n: int) -> str:
    if len(adv) == 0:
        return "adversary not run"
    if n >= 2:
        return ""
    reasons = pd.concat([base, adv]).get(f"{column}_reason")
    found = sorted({str(r) for r in reasons.dropna()}) if reasons is not None else []
    return found[0] if found else f"{n} fold(s) with both figures"


def claims_frame(frame: pd.DataFrame, margin: float = MARGIN, seed: int = 0) -> pd.DataFrame:
    """``claims.csv``'s rows from a ``reporting.records_frame`` (fused placement)."""
    from privemo.experiment.reporting import per_fold, paired_rows

    rows = []
    frame = frame[frame.placement == "fused"]
    for (corpus, modality, task), sel in frame.groupby(["corpus", "modality", "task"], sort=False):
        base = sel[sel.adversary == "none"]
        for adversary in [a for a in ("gender", "speaker") if (sel.adversary == a).any()]:
            adv = sel[sel.adversary == adversary]
            base_pairs, adv_pairs = paired_rows(base, adv)
            paired_base, paired_adv = per_fold(base_pairs), per_fold(adv_pairs)
            for claim, (column, sign, _) in CLAIMS.items():
                b, a = paired_base[column], paired_adv[column]
                folds = a.index
                result = paired_verdict(b.loc[folds], a.loc[folds], sign > 0, margin)
                low, high = (_speaker_interval(base_pairs, adv_pairs, column, folds, seed) if result["n"] >= 2
                             else (math.nan, math.nan))
                rows.append({"claim": claim, "corpus": corpus, "modality": modality, "task": task,
                             "adversary": adversary, "metric": column,
                             "direction": "higher is better" if sign > 0 else "lower is better", **result,
                             "ci_speaker_low": low, "ci_speaker_high": high,
                             "reason": _reason(base, adv, column, result["n"])})
    out = pd.DataFrame(rows, columns=["corpus", *COLUMNS])
    out["p_holm"] = holm(out["p"].to_numpy(float)) if len(out) else []
    return out


def claims_markdown(claims: pd.DataFrame, alpha: float = ALPHA) -> str:
    """``claims.md``: the rule, the counts of each verdict, what chance alone would give, and the table."""
    tested = int(claims["p"].notna().sum())
    counts = claims["verdict"].value_counts().to_dict()
    decided = claims[claims.verdict.isin(["better", "worse"])]
    holm_kept = int((decided["p_holm"] < alpha).sum())
    margin = claims["margin"].iloc[0] if len(claims) else MARGIN
    lines = [
        "# Claims, tested on this run's records",
        "",
        f"Rule (privemo.experiment.claims): per fold, repeats averaged; paired differences adversary − baseline over the "
        f"n outer folds; two-sided paired t. `better` / `worse`: the 95 % interval excludes 0 (in the metric's own "
        f"direction); `equivalent`: the 90 % interval lies inside ±{margin:g} (TOST, α = {alpha:g}); `inconclusive`: "
        "neither; `n/a`: fewer than two folds with both figures (see `reason`). `mdd80`: the difference detectable "
        "with 80 % power. `ci_speaker_*`: paired cluster bootstrap over test speakers (secondary; networks fixed).",
        "",
        f"{len(claims)} rows, {tested} tested: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in
                                                           ("better", "worse", "equivalent", "inconclusive", "n/a"))
        + f". At α = {alpha:g}, chance alone would give about {alpha * tested:.1f} false `better` / `worse` verdicts "
        f"among the {tested} tested rows if no adversary had any effect; {holm_kept} of the {len(decided)} `better` / "
        f"`worse` verdicts survive Holm's correction over the file (`p_holm` < {alpha:g}).",
        "",
    ]
    shown = claims.copy()
    for column in ("baseline", "adversarial", "difference", "ci_low", "ci_high", "mdd80", "ci_speaker_low",
                   "ci_speaker_high"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    for column in ("p", "p_equivalence", "p_holm"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    keep = ["claim", "modality", "task", "adversary", "baseline", "adversarial", "difference", "ci_low", "ci_high",
            "p", "n", "mdd80", "p_equivalence", "verdict", "p_holm", "ci_speaker_low", "ci_speaker_high", "reason"]
    from privemo.experiment.reporting import to_markdown

    return "\n".join(lines) + "\n" + to_markdown(shown[keep])
