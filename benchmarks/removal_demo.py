"""The removal-method comparison of ``benchmarks/leakage.py`` on a demo corpus (real audio, real feature pipeline),
in speaker-independent folds, judged on speaker-level intervals against the issue-24 goals.

The corpus (``--corpus``: ``demo``, 10 speakers, or ``demo-podcast``, 48 speakers; ``privemo.load_corpus``, synthesised
with eSpeak NG) is read, its acoustic features extracted (40 log-Mel filterbank energies, per-speaker z-normalised:
``privemo.features.acoustic``), the task (activation by default) binned into 3 classes (``privemo.data.labels.bin_labels``)
and split into ``N_FOLDS`` speaker-independent folds (``privemo.data.folds.speaker_folds``, validation speakers carved out
of the training speakers; utterances of unknown speaker are in no fold). For each requested fold every method of
``--methods`` (default ``demo_methods()``: baseline, grl, grl_dann, alt_confusion, ensemble3, mmd, inlp, leace,
gradient_erasure where ``privemo.removal.gradient_erasure`` imports, mmd_leace, ensemble3_leace) is trained and scored by
``leakage.run_methods`` exactly as in the known-answer benchmark, with the same budget for every method (issue 24, item
3): the network of the quick grid, class-balanced losses, at most ``EPOCHS`` = 40 epochs with patience ``PATIENCE`` = 6
(the main protocol's quick grid, ``privemo.experiment.config``) and early stopping on the validation objective (emotion
UAR - max(0, gender probe UAR - 0.5)); every method with a strength (the GRLs' lambda, the alternating and ensemble
adversaries' weight, the MMD weight's multiplier) picks it on that objective from the paper's grid {0.3, 0.5, 0.75, 1};
INLP keeps its validation-chosen iterations; post-hoc erasers are fitted on the training speakers' h. The MMD scale
(``--mmd-scale``, default ``privemo.removal.MMD_SCALE``) is a method constant chosen on a development seed of the
synthetic benchmark (``benchmarks/mmd_scale_dev.py``), never on these folds. Per method and fold, on the test speakers:

- ``emotion_uar``: the emotion head's UAR (post hoc: the head refitted on the erased h);
- ``head_uar``: the model's own gender output;
- fresh gender attackers (``privemo.privacy.attribute``, default budget: the paper's MLP grid, logistic regression, RBF
  SVM, histogram gradient boosting) trained on the training speakers' frozen h, selected on the validation speakers:
  ``attacker_max`` (the best test UAR of the four, chosen with hindsight: the strongest fresh attacker) and
  ``attacker_selected`` (validation-selected, refit on training + validation speakers);
- ``eer``: speaker verification (``privemo.privacy.verification.speaker_verification_attack``): the verifier (LDA +
  cosine scoring) is learnt on the training speakers' h and links the test speakers' utterances; equal error rate over
  their target / non-target pairs (0.5 = no linkage, 0 = perfect); ``eer_same_gender`` on same-gender non-targets;
- convergence of the kept network (best epoch >= 2 and before the last allowed one; post hoc: the refit and the network
  it erased), the strength kept and every trial's validation objective and best epoch.

Judged on intervals (issue 24, item 4), per method:

- speaker-level 95 % intervals (``privemo.metrics`` cluster bootstrap over the test speakers, resampled within gender,
  ``--resamples`` draws, the same draws for every method of a fold) of the emotion UAR and of the strongest fresh
  attacker, the mean over folds of each draw's UAR (for the attacker: the maximum over the four families on that draw,
  so the interval carries the hindsight choice); paired speaker-level intervals of the differences to the baseline
  (``privemo.metrics.paired_speaker_difference``);
- the emotion UAR's equivalence to the baseline's within ``EQUIVALENCE_MARGIN`` = +-0.03: the paired t figures over the
  folds and TOST (``privemo.experiment.claims.paired_verdict``, as the main protocol's claims);
- the goals (``GOALS``): strongest fresh attacker mean <= 0.55, its upper 95 % speaker-level bound <= 0.60, emotion
  equivalent to the baseline (TOST p < 0.05); a method meets the issue's goal when all three hold;
- paired t-tests over folds against the baseline (``scipy.stats.ttest_rel``) for emotion UAR, attacker_max and EER, with
  the minimum detectable difference of each test (two-sided alpha 0.05, power 0.8).

Written atomically to its own folder (``--out-dir``, default ``results/removal/<corpus>/``; never a protocol run's
folder): ``removal_methods.csv`` (one row per method: means, spreads, intervals, equivalence, goals, convergence),
``removal_methods_folds.csv`` (one row per method and fold), ``removal_methods_speakers.json`` (per fold and method the
per-speaker counts behind every interval), ``removal_methods.md`` (goals table, tables, per-fold values, command and wall
time), ``removal_methods.png`` (privacy-utility figure: strongest fresh attacker against emotion UAR per method with their
speaker-level 95 % intervals, the goals drawn) and ``manifest.json`` (command, seed, configuration, package versions, git
commit, wall time per stage, fold and method).

    python benchmarks/removal_demo.py --corpus demo-podcast --folds 5 --mmd-scale S     # the issue-24 comparison
    python benchmarks/removal_demo.py --corpus demo-podcast --folds 1 --quick --epochs 1 --patience 1 \
        --methods baseline,mmd,leace,ensemble3_leace --out-dir /tmp/demo_smoke        # smoke check (about 2 min)

``benchmarks/regenerate_removal.py`` runs the comparison (S from ``benchmarks/mmd_scale_dev.py``) with the synthetic
benchmarks; its docstring has the measured time.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from leakage import (  # noqa: E402  (benchmarks/leakage.py: the shared method runner)
    EPOCHS,
    GOAL_EMOTION_DROP,
    LAMBDA_METHODS,
    METHODS,
    METRICS,
    PATIENCE,
    TABLE_COLUMNS,
    BenchmarkConfig,
    LabelledData,
    _csv,
    check_methods,
    default_methods,
    format_table,
    run_methods,
    summarize,
)

GENDER_IDS = {"F": 0, "M": 1}
N_FOLDS = 5
TASKS = ("activation", "valence")
CORPORA = ("demo", "demo-podcast")
DEMO_METHODS = ("baseline", "grl", "grl_dann", "alt_confusion", "ensemble3", "mmd", "inlp", "leace", "gradient_erasure",
                "mmd_leace", "ensemble3_leace")
DEMO_METRICS = (*METRICS, "eer", "eer_same_gender")
TESTED = ("emotion_uar", "attacker_max", "eer")  # paired t-tests against the baseline
ALPHA, POWER = 0.05, 0.8  # of the minimum detectable difference
# issue 24's goals, judged on intervals (``goals``)
GOAL_ATTACKER_MEAN = 0.55  # strongest fresh attacker, mean over folds, at most this UAR ...
GOAL_ATTACKER_UPPER = 0.60  # ... and the upper bound of its speaker-level 95 % interval at most this ...
EQUIVALENCE_MARGIN = 0.03  # ... with emotion equivalent to the baseline's within +-this (TOST, privemo.experiment.claims)
GOALS = (("attacker_mean", f"strongest attacker mean ≤ {GOAL_ATTACKER_MEAN:.2f}"),
         ("attacker_upper", f"upper 95 % speaker bound ≤ {GOAL_ATTACKER_UPPER:.2f}"),
         ("emotion_equivalent", f"emotion within ±{EQUIVALENCE_MARGIN:.2f} of baseline (TOST)"))
LEVEL = 0.95  # of the speaker-level intervals


def demo_methods() -> tuple[str, ...]:
    """``DEMO_METHODS``, less gradient_erasure where ``privemo.removal.gradient_erasure`` does not import."""
    available = set(default_methods())
    return tuple(m for m in DEMO_METHODS if m in available)


def demo_config(epochs: int = EPOCHS, patience: int = PATIENCE, *, quick: bool = False) -> BenchmarkConfig:
    """The network of privemo's quick grid (one value per axis, ``privemo.search.grids.QUICK_GRID``), its lambda grid
    for every method with a strength (``leakage.LAMBDA_METHODS``), the paper's attacker grid with
    ``privemo.privacy.mlp_attacker``'s default budget. ``quick``: a smoke-check budget (one attacker configuration of
    5 epochs, lambda 1 only, at most 5 INLP iterations)."""
    from privemo.privacy.mlp_attacker import ATTACKER_MAX_EPOCHS, ATTACKER_PATIENCE
    from privemo.privacy.grids import ATTACKER_GRID
    from privemo.search.grids import QUICK_GRID

    model = tuple((k, int(v[0])) for k, v in QUICK_GRID.items() if k != "grl_lambda")
    config = replace(
        BenchmarkConfig(),
        model=model,
        grl_lambda=1.0,
        lambdas=tuple(float(v) for v in QUICK_GRID["grl_lambda"]),
        epochs=epochs,
        patience=patience,
        attacker_grid=tuple((k, tuple(v)) for k, v in ATTACKER_GRID.items()),
        attacker_epochs=ATTACKER_MAX_EPOCHS,
        attacker_patience=ATTACKER_PATIENCE,
    )
    if quick:
        config = replace(config, lambdas=(1.0,), attacker_grid=(("dense_layers", (2,)), ("dense_width", (32,))),
                         attacker_epochs=5, attacker_patience=2, inlp_iterations=5)
    return config


def load_demo_data(task: str, seed: int, corpus: str = "demo", log=print):
    """(table, normalised acoustic features, emotion bins, gender ids (-1: unknown), speaker ids (-1: unknown), folds) of a demo
    corpus. Utterances of unknown speaker (demo-podcast has some, as MSP-Podcast) are in no fold; every utterance of a
    fold must have a known gender."""
    import pandas as pd

    import privemo
    from privemo.data.folds import speaker_folds
    from privemo.data.labels import bin_labels
    from privemo.features.acoustic import extract_acoustic

    started = time.perf_counter()
    table = privemo.load_corpus(corpus)
    feats = extract_acoustic(table, progress=False)
    acoustic = feats.normalized(table, mode="speaker")
    emotion = bin_labels(table[task].to_numpy(float), table.attrs.get("corpus", corpus))
    gender = table["gender"].map(GENDER_IDS).fillna(-1).to_numpy(np.int64)
    speakers = pd.factorize(table["speaker"], sort=True)[0].astype(np.int64)  # -1: unknown speaker
    folds = speaker_folds(table, n_folds=N_FOLDS, seed=seed)
    for k, fold in enumerate(folds):
        rows = np.concatenate([fold.train, fold.validation, fold.test])
        if (gender[rows] < 0).any():
            unknown = sorted({str(g) for g in table["gender"].iloc[rows[gender[rows] < 0]]})
            raise ValueError(f"Fold {k + 1} of {corpus} has utterances without a gender ('F'/'M'): found {unknown}")
    log(f"{corpus} corpus: {len(table)} utterances, {table['speaker'].nunique()} speakers, {task} bins "
        f"{np.bincount(emotion, minlength=3).tolist()}; per fold (train / validation / test utterances): "
        + ", ".join(f"{len(f.train)}/{len(f.validation)}/{len(f.test)}" for f in folds)
        + f" ({time.perf_counter() - started:.0f} s)")
    return table, acoustic, emotion, gender, speakers, folds


def verification_metrics(seed: int):
    """``extra_metrics`` for ``leakage.run_methods``: the speaker-verification EER of the test speakers' h, the
    verifier learnt on the training speakers' h."""
    from privemo.privacy.verification import speaker_verification_attack

    def metrics(h: np.ndarray, corpus: LabelledData) -> dict[str, float]:
        result = speaker_verification_attack(
            h[corpus.train], corpus.speaker[corpus.train], h[corpus.test], corpus.speaker[corpus.test],
            genders_eval=corpus.gender[corpus.test], seed=seed)
        same = result.get("eer_same_gender")
        return {"eer": float(result["eer"]), "eer_same_gender": math.nan if same is None else float(same)}

    return metrics


# ---------------------------------------------------------------------------------------------------------------------
# Paired tests, summary, outputs


def minimum_detectable_difference(sd_diff: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided paired t-test at ``alpha`` detects with probability ``power``,
    given the paired differences' standard deviation ``sd_diff`` (ddof 1) over ``n`` pairs (NaN below 2 pairs)."""
    from scipy import stats

    if n < 2 or not math.isfinite(sd_diff):
        return math.nan
    df = n - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd_diff / math.sqrt(n))


def paired_tests(rows: list[dict], summary: list[dict], metrics: Sequence[str] = TESTED) -> list[dict]:
    """Add to each method's summary entry, for every metric, the mean paired difference to the baseline over folds
    (``<metric>_diff``), the paired t-test's p-value (``<metric>_p``, ``scipy.stats.ttest_rel``; NaN below 2 folds or for
    identical values) and the minimum detectable difference (``<metric>_mdd``)."""
    from scipy import stats

    base = {r["fold"]: r for r in rows if r["method"] == "baseline"}
    for entry in summary:
        sel = sorted((r for r in rows if r["method"] == entry["method"] and r["fold"] in base), key=lambda r: r["fold"])
        for metric in metrics:
            a = np.array([r.get(metric, math.nan) for r in sel], float)
            b = np.array([base[r["fold"]].get(metric, math.nan) for r in sel], float)
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            diff = a - b
            entry[f"{metric}_diff"] = float(diff.mean()) if len(diff) else math.nan
            p = math.nan
            if entry["method"] != "baseline" and len(diff) >= 2 and np.ptp(diff) > 0:
                p = float(stats.ttest_rel(a, b).pvalue)
            entry[f"{metric}_p"] = p
            sd = float(diff.std(ddof=1)) if len(diff) >= 2 else math.nan
            entry[f"{metric}_mdd"] = minimum_detectable_difference(sd, len(diff)) if entry["method"] != "baseline" \
                else math.nan
    return summary


# ---------------------------------------------------------------------------------------------------------------------
# Speaker-level intervals, equivalence, goals


def _fold_draws(rows: list[dict], n_resamples: int, seed: int) -> dict[int, np.ndarray]:
    """Per fold, the (n_resamples, S) positions of test speakers drawn within gender (``privemo.metrics.
    speaker_resamples`` with seed ``seed + fold``, as ``paired_speaker_difference`` draws them): the same draws for
    every method of the fold."""
    from privemo.metrics import speaker_resamples

    draws = {}
    for r in rows:
        if r["fold"] not in draws:
            stratum = np.asarray(r["speakers"]["emotion"]["stratum"])
            draws[r["fold"]] = speaker_resamples(stratum, n_resamples, seed + int(r["fold"]))
    return draws


def _uar_draws(counts: dict, idx: np.ndarray) -> np.ndarray:
    from privemo.metrics import uar_from_counts

    return uar_from_counts(np.asarray(counts["support"], float), np.asarray(counts["hits"], float), idx)


def _attacker_max_draws(speakers: dict, attackers: Sequence[str], idx: np.ndarray) -> np.ndarray:
    """The strongest attacker's UAR on every draw: the maximum over the families of their UARs on that draw."""
    return np.max([_uar_draws(speakers[a], idx) for a in attackers], axis=0)


def speaker_intervals(rows: list[dict], summary: list[dict], attackers: Sequence[str], *,
                      n_resamples: int = 1000, seed: int = 0, level: float = LEVEL) -> list[dict]:
    """Add to each method's summary entry its speaker-level intervals (module docstring), at ``level``:
    ``emotion_uar_ci_low`` / ``_high`` and ``attacker_max_ci_low`` / ``_high`` (of the mean over folds), and, paired
    with the baseline on the same draws, ``emotion_uar_diff_speaker_ci_low`` / ``_high`` and
    ``attacker_max_diff_speaker_ci_low`` / ``_high``. Rows need the per-speaker counts ``speakers`` of
    ``leakage.evaluate``; a method is compared on the folds it shares with the baseline."""
    from privemo.metrics import paired_speaker_difference

    draws = _fold_draws(rows, n_resamples, seed)
    q = [(1 - level) / 2, (1 + level) / 2]
    base = {r["fold"]: r for r in rows if r["method"] == "baseline"}
    for entry in summary:
        sel = sorted((r for r in rows if r["method"] == entry["method"]), key=lambda r: r["fold"])
        emotion = np.mean([_uar_draws(r["speakers"]["emotion"], draws[r["fold"]]) for r in sel], axis=0)
        attack = np.mean([_attacker_max_draws(r["speakers"], attackers, draws[r["fold"]]) for r in sel], axis=0)
        entry["emotion_uar_ci_low"], entry["emotion_uar_ci_high"] = (float(v) for v in np.nanquantile(emotion, q))
        entry["attacker_max_ci_low"], entry["attacker_max_ci_high"] = (float(v) for v in np.nanquantile(attack, q))
        paired = [r for r in sel if r["fold"] in base]
        for key in ("emotion_uar_diff_speaker", "attacker_max_diff_speaker"):
            entry[f"{key}_ci_low"] = entry[f"{key}_ci_high"] = math.nan
        if entry["method"] == "baseline" or not paired:
            continue
        d_emotion = np.mean([paired_speaker_difference(base[r["fold"]]["speakers"]["emotion"], r["speakers"]["emotion"],
                                                       n_resamples=n_resamples, seed=seed + int(r["fold"]))
                             for r in paired], axis=0)
        d_attack = np.mean([_attacker_max_draws(r["speakers"], attackers, draws[r["fold"]])
                            - _attacker_max_draws(base[r["fold"]]["speakers"], attackers, draws[r["fold"]])
                            for r in paired], axis=0)
        entry["emotion_uar_diff_speaker_ci_low"], entry["emotion_uar_diff_speaker_ci_high"] = (
            float(v) for v in np.nanquantile(d_emotion, q))
        entry["attacker_max_diff_speaker_ci_low"], entry["attacker_max_diff_speaker_ci_high"] = (
            float(v) for v in np.nanquantile(d_attack, q))
    return summary


def equivalence(rows: list[dict], summary: list[dict], margin: float = EQUIVALENCE_MARGIN) -> list[dict]:
    """Add to each method's entry the emotion UAR's paired comparison with the baseline over folds
    (``privemo.experiment.claims.paired_verdict``: the mean difference, its 95 % t interval, TOST's p against
    +-``margin``, the claims' verdict) as ``emotion_equivalence_<figure>``; NaN / "n/a" below two folds."""
    from privemo.experiment.claims import paired_verdict

    base = {r["fold"]: r["emotion_uar"] for r in rows if r["method"] == "baseline"}
    for entry in summary:
        sel = sorted((r for r in rows if r["method"] == entry["method"] and r["fold"] in base), key=lambda r: r["fold"])
        verdict = paired_verdict([base[r["fold"]] for r in sel], [r["emotion_uar"] for r in sel],
                                 higher_is_better=True, margin=margin)
        if entry["method"] == "baseline":
            verdict.update(ci_low=math.nan, ci_high=math.nan, p=math.nan, p_equivalence=math.nan, verdict="n/a")
        for key in ("difference", "ci_low", "ci_high", "p_equivalence", "verdict", "n", "margin"):
            entry[f"emotion_equivalence_{key}"] = verdict[key]
    return summary


def goals(summary: list[dict], alpha: float = ALPHA) -> list[dict]:
    """Add ``goal_<name>`` for each of ``GOALS`` and ``goal`` (all three) to every method's entry but the baseline's
    (None there): the strongest attacker's mean <= ``GOAL_ATTACKER_MEAN``, the upper bound of its speaker-level
    interval <= ``GOAL_ATTACKER_UPPER``, emotion equivalent to the baseline (TOST p < ``alpha``; False below two
    folds)."""
    for entry in summary:
        if entry["method"] == "baseline":
            for name, _ in GOALS:
                entry[f"goal_{name}"] = None
            entry["goal"] = None
            continue
        p_eq = entry.get("emotion_equivalence_p_equivalence", math.nan)
        entry["goal_attacker_mean"] = bool(entry["attacker_max_mean"] <= GOAL_ATTACKER_MEAN)
        entry["goal_attacker_upper"] = bool(entry.get("attacker_max_ci_high", math.nan) <= GOAL_ATTACKER_UPPER)
        entry["goal_emotion_equivalent"] = bool(math.isfinite(p_eq) and p_eq < alpha)
        entry["goal"] = all(entry[f"goal_{name}"] for name, _ in GOALS)
    return summary


def judge(rows: list[dict], attackers: Sequence[str], *, n_resamples: int = 1000, seed: int = 0) -> list[dict]:
    """The summary of ``rows`` (folds of every method): means and spreads (``leakage.summarize``), paired t-tests,
    speaker-level intervals, equivalence and goals."""
    summary = summarize(rows, DEMO_METRICS, goal_attacker=GOAL_ATTACKER_MEAN)
    for entry in summary:  # leakage's goal on the means alone, kept under its own name
        entry["goal_means"] = entry.pop("goal")
    summary = paired_tests(rows, summary)
    summary = speaker_intervals(rows, summary, attackers, n_resamples=n_resamples, seed=seed)
    return goals(equivalence(rows, summary))


# ---------------------------------------------------------------------------------------------------------------------
# Outputs


def _mark(p: float) -> str:
    if not math.isfinite(p):
        return ""
    return " **" if p < 0.01 else (" *" if p < 0.05 else "")


def _num(value, fmt: str = "{:+.3f}") -> str:
    return fmt.format(value) if isinstance(value, (float, int)) and math.isfinite(value) else "—"


def _interval(entry: dict, metric: str) -> str:
    mean = entry.get(f"{metric}_mean", math.nan)
    if not math.isfinite(mean):
        return "—"
    return (f"{mean:.3f} [{_num(entry.get(f'{metric}_ci_low', math.nan), '{:.3f}')}, "
            f"{_num(entry.get(f'{metric}_ci_high', math.nan), '{:.3f}')}]")


def _yes(value) -> str:
    return "—" if value is None else ("yes" if value else "no")


def goals_table(summary: list[dict]) -> list[str]:
    """The goals table (Markdown lines): per method, each goal's figure and whether it is met."""
    lines = ["| method | strongest fresh attacker, mean [95 % speaker CI] | "
             + " | ".join(title for _, title in GOALS) + " | emotion − baseline [95 % CI], TOST p | all goals |",
             "|---|---|" + "---|" * len(GOALS) + "---|---|"]
    for s in summary:
        if s["method"] == "baseline":
            continue
        diff = s.get("emotion_equivalence_difference", math.nan)
        eq = (f"{_num(diff)} [{_num(s.get('emotion_equivalence_ci_low', math.nan))}, "
              f"{_num(s.get('emotion_equivalence_ci_high', math.nan))}], "
              f"p = {_num(s.get('emotion_equivalence_p_equivalence', math.nan), '{:.3f}')}")
        goal_cells = [_yes(s.get(f"goal_{name}")) for name, _ in GOALS]
        if not math.isfinite(s.get("emotion_equivalence_p_equivalence", math.nan)):
            goal_cells[-1] = "n/a (< 2 folds)"
        lines.append(f"| {s['method']} | {_interval(s, 'attacker_max')} | " + " | ".join(goal_cells)
                     + f" | {eq} | **{_yes(s.get('goal'))}** |")
    return lines


def markdown(summary: list[dict], rows: list[dict], *, corpus: str, task: str, folds: list[int],
             config: BenchmarkConfig, seconds: float, command: str, n_resamples: int) -> str:
    reached = [s["method"] for s in summary if s.get("goal")]
    headers = ["method", "emotion UAR [95 % speaker CI]", "strongest fresh attacker (max) [95 % speaker CI]",
               "fresh attacker (val-selected)", "own head UAR", "speaker EER", "λ (per fold)", "converged"]
    table = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for s in summary:
        table.append("| " + " | ".join([
            s["method"], _interval(s, "emotion_uar") + _mark(s.get("emotion_uar_p", math.nan)),
            _interval(s, "attacker_max") + _mark(s.get("attacker_max_p", math.nan)),
            _cell(s, "attacker_selected"), _cell(s, "head_uar"), _cell(s, "eer"), s.get("lambdas") or "—",
            f"{s.get('converged', '—')} (best epochs {s.get('best_epochs', '—')})"]) + " |")
    tests = ["| method | " + " | ".join(f"{m}: Δ | p | MDD" for m in TESTED)
             + " | emotion Δ [95 % speaker CI] | attacker max Δ [95 % speaker CI] |",
             "|---|" + "|".join("---|---|---" for _ in TESTED) + "|---|---|"]
    for s in summary:
        if s["method"] == "baseline":
            continue
        cells = []
        for m in TESTED:
            cells += [_num(s.get(f"{m}_diff", math.nan)), _num(s.get(f"{m}_p", math.nan), "{:.3f}"),
                      _num(s.get(f"{m}_mdd", math.nan), "{:.3f}")]
        for m in ("emotion_uar", "attacker_max"):
            cells.append(f"[{_num(s.get(f'{m}_diff_speaker_ci_low', math.nan))}, "
                         f"{_num(s.get(f'{m}_diff_speaker_ci_high', math.nan))}]")
        tests.append(f"| {s['method']} | " + " | ".join(cells) + " |")
    per_fold = ["| method | fold | emotion UAR | own head | " + " | ".join(f"fresh {a}" for a in config.attackers)
                + " | max | val-selected (attacker) | EER | λ | best epoch / run / cap | converged |",
                "|" + "---|" * (11 + len(config.attackers))]
    for r in rows:
        per_fold.append(
            f"| {r['method']} | {r['fold'] + 1} | {r['emotion_uar']:.3f} | {_num(r['head_uar'], '{:.3f}')} | "
            + " | ".join(f"{r[a]:.3f}" for a in config.attackers)
            + f" | {r['attacker_max']:.3f} | {r['attacker_selected']:.3f} ({r['attacker_selected_name']}) | "
            f"{_num(r.get('eer', math.nan), '{:.3f}')} | {_num(r.get('lambda', math.nan), '{:g}')} | "
            f"{r['best_epoch']} / {r['epochs_run']} / {r['max_epochs']} | {_yes(r['converged'])} |")
    n_folds = len(folds)
    return "\n".join([
        f"# Attribute-removal methods on {corpus}",
        "",
        f"Acoustic modality, {task} (3 bins), gender as the private attribute; fold(s) "
        f"{', '.join(str(f + 1) for f in folds)} of {N_FOLDS} (speaker-independent, validation speakers carved from the "
        "training speakers). Emotion: UAR of the emotion head on the test speakers (post hoc: the head refitted on the "
        "erased h). Fresh attackers (MLP grid, logistic regression, RBF SVM, gradient-boosted trees) are trained on the "
        "training speakers' frozen h, selected / early-stopped on the validation speakers and scored (UAR) on the test "
        "speakers; the strongest ('max') is the best test UAR of the four (chosen with hindsight), 'val-selected' the one "
        "with the lowest validation log-loss, refit on training + validation speakers. Means over folds; intervals: "
        f"{LEVEL * 100:.0f} % cluster bootstrap over the test speakers ({n_resamples} draws within gender, the same draws "
        "for every method; for the strongest attacker the maximum over the four families on each draw). Chance: 0.333 "
        "emotion, 0.5 gender.",
        "",
        "## Goals",
        "",
        f"Issue 24's goals, judged on the interval and not only the mean: strongest fresh attacker mean ≤ "
        f"{GOAL_ATTACKER_MEAN:.2f} with the upper bound of its {LEVEL * 100:.0f} % speaker-level interval ≤ "
        f"{GOAL_ATTACKER_UPPER:.2f}, and emotion UAR equivalent to the baseline's within ±{EQUIVALENCE_MARGIN:.2f} (two "
        f"one-sided paired t-tests over the {n_folds} fold{'s' if n_folds != 1 else ''}, p < {ALPHA:g}, as "
        "`privemo.experiment.claims`; the emotion interval shown is the 95 % paired t interval of the difference). "
        f"All goals met by: {', '.join(reached) if reached else 'no method'}.",
        "",
        *goals_table(summary),
        "",
        "## Methods",
        "",
        "Marks: paired t-test over folds against the baseline, * p < 0.05, ** p < 0.01 (no test below 2 folds). "
        "Converged: runs whose kept network's best epoch is ≥ 2 and before the last allowed one (post hoc: the refit "
        "and the network it erased); best epochs are 0-based.",
        "",
        *table,
        "",
        "## Paired comparisons with the baseline",
        "",
        f"Δ: mean paired difference (method − baseline) over folds; p: `scipy.stats.ttest_rel`; MDD: the smallest true "
        f"difference the test detects with power {POWER:g} at two-sided α = {ALPHA:g}, from the differences' standard "
        "deviation; speaker CI: paired cluster bootstrap over the test speakers of the mean difference.",
        "",
        *tests,
        "",
        "## Per fold",
        "",
        *per_fold,
        "",
        "![privacy-utility](removal_methods.png)",
        "",
        "## Setup",
        "",
        f"- Network: `{dict(config.model)}`; strength picked on the validation objective from {list(config.lambdas)} "
        f"for {', '.join(config.tuned) or 'no method'} (GRL λ, alternating / ensemble adversary weight, MMD weight "
        f"= MMD scale × λ with MMD scale {config.mmd_scale if config.mmd_scale is not None else 'privemo.removal.MMD_SCALE'}); "
        f"alternating / ensemble: k = {config.k}; INLP: at most {config.inlp_iterations} iterations, stopped on the "
        "validation speakers.",
        f"- Training: at most {config.epochs} epochs, patience {config.patience} on the validation objective (emotion "
        f"UAR − max(0, gender probe UAR − 0.5)), batch {config.batch_size}, class-balanced losses.",
        f"- Attackers: MLP grid `{dict(config.attacker_grid)}`, at most {config.attacker_epochs} epochs, patience "
        f"{config.attacker_patience}; logistic regression, RBF SVM and gradient boosting as in "
        "`privemo.privacy.sklearn_attacker`.",
        f"- Produced by `{command}` in {seconds / 60:.1f} min ({platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}); `manifest.json` has the versions, commit and timings.",
        "",
    ])


def _cell(entry: dict, metric: str) -> str:
    mean, std = entry.get(f"{metric}_mean", math.nan), entry.get(f"{metric}_std", math.nan)
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.3f} ± {std:.3f}"


def scatter_png(summary: list[dict], path: Path, *, title: str) -> Path:
    """The privacy-utility figure: strongest fresh attacker against emotion UAR per method (means over folds) with their
    speaker-level 95 % intervals, the goals drawn (attacker mean 0.55, upper bound 0.60, baseline emotion +-0.03); a
    filled marker meets every goal. Written to a temporary file beside ``path`` and moved onto it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def bounds(s, metric):
        mean = s[f"{metric}_mean"]
        low, high = s.get(f"{metric}_ci_low", math.nan), s.get(f"{metric}_ci_high", math.nan)
        if not (math.isfinite(low) and math.isfinite(high)):
            return [[0.0], [0.0]]
        return [[max(0.0, mean - low)], [max(0.0, high - mean)]]

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    base = next((s for s in summary if s["method"] == "baseline"), None)
    for s in summary:
        x, y = s["attacker_max_mean"], s["emotion_uar_mean"]
        is_base = s["method"] == "baseline"
        line = ax.errorbar(x, y, xerr=bounds(s, "attacker_max"), yerr=bounds(s, "emotion_uar"), fmt="o", capsize=3,
                           color="black" if is_base else None, mfc=None if (is_base or s.get("goal")) else "white")
        ax.annotate(s["method"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8,
                    color=line[0].get_color())
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (gender) 0.5")
    ax.axvline(GOAL_ATTACKER_MEAN, color="tab:green", linestyle=":", linewidth=1,
               label=f"goal: attacker mean ≤ {GOAL_ATTACKER_MEAN:.2f}")
    ax.axvline(GOAL_ATTACKER_UPPER, color="tab:olive", linestyle=":", linewidth=1,
               label=f"goal: upper 95 % bound ≤ {GOAL_ATTACKER_UPPER:.2f}")
    if base is not None:
        ax.axhspan(base["emotion_uar_mean"] - EQUIVALENCE_MARGIN, base["emotion_uar_mean"] + EQUIVALENCE_MARGIN,
                   color="tab:green", alpha=0.08, label=f"baseline emotion ± {EQUIVALENCE_MARGIN:.2f}")
    ax.set_xlabel("strongest fresh gender attacker, test UAR (lower = more private)")
    ax.set_ylabel("emotion UAR (higher = more useful)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def speakers_json(rows: list[dict]) -> dict:
    """The per-speaker counts behind every interval: one entry per (method, fold)."""
    return {"level": LEVEL, "rows": [{"method": r["method"], "fold": int(r["fold"]), "speakers": r["speakers"]}
                                     for r in rows]}


PARTIAL = ".partial"  # the finished folds of a run in progress, in --out-dir


class PartialFolds:
    """The folds a run has finished, each written whole as soon as it is done (``<out_dir>/.partial/fold<N>.pkl``,
    with a key of the run's settings), so an interrupted comparison resumes (``--resume``) without training them again;
    a fold of other settings is refused, naming its file. Cleared when the run has written its results."""

    def __init__(self, out_dir: Path, settings: dict, *, resume: bool) -> None:
        import hashlib
        import json

        self.folder = out_dir / PARTIAL
        self.key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
        if not resume:
            self.clear()

    def load(self) -> dict[int, tuple[list[dict], dict]]:
        import pickle

        done = {}
        for path in sorted(self.folder.glob("fold*.pkl")) if self.folder.is_dir() else ():
            with open(path, "rb") as fh:
                saved = pickle.load(fh)
            if saved.get("key") != self.key:
                raise SystemExit(f"{path}: a fold of a run with other settings (methods, seed, budget, corpus or "
                                 "folds); expected one of this command's. Run without --resume to start afresh.")
            done[int(saved["fold"])] = (saved["rows"], saved["timing"])
        return done

    def save(self, fold: int, rows: list[dict], timing: dict) -> None:
        import pickle

        from privemo._util.io import atomic_write_bytes

        atomic_write_bytes(self.folder / f"fold{fold + 1}.pkl",
                           pickle.dumps({"key": self.key, "fold": fold, "rows": rows, "timing": timing}))

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def run_fold(f: int, fold, arrays, config: BenchmarkConfig, methods: Sequence[str], seed: int
             ) -> tuple[int, list[dict], dict]:
    """Every method on fold ``f`` (``fold``: its train / validation / test rows): (f, its rows, its timings)."""
    import keras

    acoustic, emotion, gender, speakers = arrays
    fold_started = time.perf_counter()
    data = LabelledData(features=acoustic, emotion=emotion, gender=gender, speaker=speakers,
                        train=fold.train, val=fold.validation, test=fold.test)
    rows = []
    for row in run_methods(data, config, seed, methods, balance=True, extra_metrics=verification_metrics(seed),
                           label=f"fold {f + 1} ", log=lambda s: print(s, flush=True)):
        row["fold"] = f
        rows.append(row)
    timing = {"total_s": round(time.perf_counter() - fold_started, 1), **{r["method"]: r["seconds"] for r in rows}}
    keras.backend.clear_session()
    return f, rows, timing


_WORKER: dict[str, Any] = {}


def _start_worker(threads: int, task: str, seed: int, corpus: str) -> None:
    """A fold worker's set-up: TensorFlow with ``threads`` threads and op determinism, the corpus loaded once."""
    import os

    from privemo.experiment.workers import exit_with_parent
    from privemo.nn.device import start_tensorflow

    exit_with_parent(os.getppid())  # a worker whose command was stopped stops too, never left running

    start_tensorflow(threads, deterministic=True)
    _, acoustic, emotion, gender, speakers, folds = load_demo_data(task, seed, corpus, log=lambda *a, **k: None)
    _WORKER.update(arrays=(acoustic, emotion, gender, speakers), folds=folds)


def _worker_fold(f: int, config: BenchmarkConfig, methods: Sequence[str], seed: int):
    return run_fold(f, _WORKER["folds"][f], _WORKER["arrays"], config, methods, seed)


def run_folds(todo: Sequence[int], args, config: BenchmarkConfig, methods: Sequence[str], folds, arrays, *,
              jobs: int = 1):
    """Yields (f, rows, timings) of every fold of ``todo`` as it finishes: in this process (``jobs`` = 1) or in
    ``jobs`` spawned processes sharing the cores (each fold's numbers do not depend on which process ran it)."""
    if jobs == 1 or len(todo) <= 1:
        for f in todo:
            yield run_fold(f, folds[f], arrays, config, methods, args.seed)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from privemo._util.processes import available_cpus, mp_context

    jobs = min(jobs, len(todo))
    threads = max(1, available_cpus() // jobs)
    with ProcessPoolExecutor(jobs, mp_context=mp_context("spawn"), initializer=_start_worker,
                             initargs=(threads, args.task, args.seed, args.corpus)) as pool:
        futures = [pool.submit(_worker_fold, f, config, methods, args.seed) for f in todo]
        for future in as_completed(futures):
            yield future.result()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="demo", choices=CORPORA)
    parser.add_argument("--folds", type=int, default=1, help=f"run the first N of the {N_FOLDS} folds (default 1)")
    parser.add_argument("--task", default="activation", choices=TASKS)
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated subset of {','.join(METHODS)} (default {','.join(DEMO_METHODS)}; "
                             "gradient_erasure where privemo.removal.gradient_erasure imports)")
    parser.add_argument("--tune", default=",".join(LAMBDA_METHODS),
                        help=f"comma-separated methods of {','.join(LAMBDA_METHODS)} whose strength is picked on "
                             "validation from the quick grid's lambda values (default: all; 'none': none)")
    parser.add_argument("--mmd-scale", type=float, default=None,
                        help="the MMD penalty's weight is this times lambda (default privemo.removal.MMD_SCALE; "
                             "benchmarks/mmd_scale_dev.py chooses it on a development seed)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epoch cap (default {EPOCHS}, the quick grid's)")
    parser.add_argument("--patience", type=int, default=PATIENCE, help=f"patience (default {PATIENCE})")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-check budget: one attacker configuration of 5 epochs, lambda 1 only (combine with "
                             "small --epochs)")
    parser.add_argument("--resamples", type=int, default=None,
                        help="speaker bootstrap draws of the intervals (default privemo.metrics.SPEAKER_BOOTSTRAP_RESAMPLES)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="output folder (default results/removal/<corpus>)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="folds trained at once, each in a process of its own with cores / jobs TensorFlow "
                             "threads (default 1: in this process)")
    parser.add_argument("--resume", action="store_true",
                        help=f"keep the folds an interrupted run of the same settings finished (its {PARTIAL} "
                             "folder in --out-dir; without --resume that folder is cleared first)")
    args = parser.parse_args(argv)
    if not 1 <= args.folds <= N_FOLDS:
        parser.error(f"--folds must be between 1 and {N_FOLDS}, got {args.folds}")
    methods = list(demo_methods()) if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        check_methods(methods)
    except ValueError as error:
        parser.error(str(error))
    tuned = tuple(m.strip() for m in args.tune.split(",") if m.strip() and m.strip() != "none")
    if any(m not in LAMBDA_METHODS for m in tuned):
        parser.error(f"--tune: expected comma-separated names from {list(LAMBDA_METHODS)} or 'none', got {args.tune!r}")
    if args.mmd_scale is not None and not (args.mmd_scale >= 0 and math.isfinite(args.mmd_scale)):
        parser.error(f"--mmd-scale must be a non-negative number, got {args.mmd_scale}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.epochs < 1 or args.patience < 0:
        parser.error(f"--epochs must be at least 1 and --patience at least 0, got {args.epochs} and {args.patience}")
    out_dir = Path(args.out_dir) if args.out_dir else ROOT / "results" / "removal" / args.corpus
    protected = ROOT / "results" / args.corpus
    if out_dir.resolve() == protected.resolve():
        parser.error(f"--out-dir {out_dir}: the protocol run's folder; the comparison writes to a folder of its own")

    import keras
    import tensorflow as tf

    from privemo._util.io import atomic_write_json, atomic_write_text
    from privemo.experiment.manifest import write_manifest
    from privemo.metrics import SPEAKER_BOOTSTRAP_RESAMPLES

    resamples = args.resamples or SPEAKER_BOOTSTRAP_RESAMPLES
    tf.config.experimental.enable_op_determinism()
    started = time.perf_counter()
    config = replace(demo_config(args.epochs, args.patience, quick=args.quick), tuned=tuned, mmd_scale=args.mmd_scale)
    table, acoustic, emotion, gender, speakers, folds = load_demo_data(args.task, args.seed, args.corpus)
    timings: dict[str, Any] = {"load_s": round(time.perf_counter() - started, 1), "folds": {}}
    fold_ids = list(range(args.folds))
    settings = {"seed": args.seed, "corpus": args.corpus, "task": args.task, "folds": [f + 1 for f in fold_ids],
                "methods": methods, "resamples": resamples, "benchmark": asdict(config)}
    partial = PartialFolds(out_dir, settings, resume=args.resume)
    done = partial.load()
    todo = [f for f in fold_ids if f not in done]
    if done:
        print(f"resumed: fold{'s' if len(done) > 1 else ''} {', '.join(str(f + 1) for f in sorted(done))} from "
              f"{partial.folder}", flush=True)
    for f, rows_f, timing in run_folds(todo, args, config, methods, folds, (acoustic, emotion, gender, speakers),
                                       jobs=args.jobs):
        partial.save(f, rows_f, timing)
        done[f] = (rows_f, timing)
    rows = [row for f in fold_ids for row in done[f][0]]
    timings["folds"] = {str(f + 1): done[f][1] for f in fold_ids}
    timings["jobs"] = args.jobs
    timings["resumed_folds"] = sorted(f + 1 for f in fold_ids if f not in todo)
    summary = judge(rows, config.attackers, n_resamples=resamples, seed=args.seed)
    seconds = time.perf_counter() - started
    timings["total_s"] = round(seconds, 1)
    command = ("python benchmarks/removal_demo.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    atomic_write_text(out_dir / "removal_methods_folds.csv", _csv(rows))
    atomic_write_text(out_dir / "removal_methods.csv", _csv(summary))
    atomic_write_json(out_dir / "removal_methods_speakers.json", speakers_json(rows))
    atomic_write_text(out_dir / "removal_methods.md",
                      markdown(summary, rows, corpus=args.corpus, task=args.task, folds=fold_ids, config=config,
                               seconds=seconds, command=command, n_resamples=resamples))
    scatter_png(summary, out_dir / "removal_methods.png",
                title=f"{args.corpus}, {args.task}: privacy–utility of removal methods\nmeans over {len(fold_ids)} "
                      f"fold{'s' if len(fold_ids) > 1 else ''}, {LEVEL * 100:.0f} % speaker-level intervals; "
                      "filled: every goal met")
    write_manifest(out_dir / "manifest.json", settings, command=command, timings=timings)
    print()
    print(format_table(summary, (*TABLE_COLUMNS, ("eer", "speaker EER"))))
    print()
    print("\n".join(goals_table(summary)))
    partial.clear()
    print(f"\nwrote {out_dir}/removal_methods.md, .csv, .png, removal_methods_folds.csv, removal_methods_speakers.json "
          f"and manifest.json ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
