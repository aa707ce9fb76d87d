"""The removal-method comparison of ``benchmarks/leakage.py`` on a demo corpus (real audio, real feature pipeline),
in speaker-independent folds, with paired tests against the baseline.

The corpus (``--corpus``: ``demo``, 10 speakers, or ``demo-podcast``, 48 speakers; ``privemo.load_corpus``, synthesised
with eSpeak NG) is read, its acoustic features extracted (40 log-Mel filterbank energies, per-speaker z-normalised:
``privemo.features.acoustic``), the task (activation by default) binned into 3 classes (``privemo.data.labels.bin_labels``)
and split into ``N_FOLDS`` speaker-independent folds (``privemo.data.folds.speaker_folds``, validation speakers carved out
of the training speakers; utterances of unknown speaker are in no fold). For each requested fold every method of
``--methods`` (default ``DEMO_METHODS``: baseline, grl, grl_dann, alt_confusion, ensemble3, inlp, leace, mmd, mmd_leace,
ensemble3_leace) is trained and scored by ``leakage.run_methods`` exactly as in the known-answer benchmark: class-balanced
losses, early stopping on the validation objective (emotion UAR - max(0, gender probe UAR - 0.5)), mmd's lambda picked
on it from the paper's grid, post-hoc erasers fitted on the training speakers' h. Per method and fold, on the test
speakers:

- ``emotion_uar``: the emotion head's UAR (post hoc: the head refitted on the erased h);
- ``head_uar``: the model's own gender output;
- fresh gender attackers (``privemo.privacy.attribute``, default budget: the paper's MLP grid, logistic regression, RBF
  SVM, histogram gradient boosting) trained on the training speakers' frozen h, selected on the validation speakers:
  ``attacker_max`` (the best test UAR of the four, chosen with hindsight) and ``attacker_selected`` (validation-selected,
  refit on training + validation speakers);
- ``eer``: speaker verification (``privemo.privacy.verification.speaker_verification_attack``): the verifier (LDA +
  cosine scoring) is learnt on the training speakers' h and links the test speakers' utterances; equal error rate over
  their target / non-target pairs (0.5 = no linkage, 0 = perfect); ``eer_same_gender`` on same-gender non-targets.

Summary: mean +- std (ddof 0) over folds per method, and paired t-tests over folds against the baseline
(``scipy.stats.ttest_rel``) for emotion UAR, attacker_max and EER, with the minimum detectable difference of each test
(two-sided alpha 0.05, power 0.8, from the paired differences' standard deviation). Written atomically to
``<out-dir>/removal_methods.csv`` (one row per method), ``removal_methods_folds.csv`` (one row per method and fold),
``removal_methods.md`` (tables, significance marks, command and wall time) and ``removal_methods.png`` (privacy-utility
scatter: strongest fresh attacker against emotion UAR per method, mean +- std over folds, chance at 0.5).

    python benchmarks/removal_demo.py --corpus demo-podcast --folds 5     # the issue-15 comparison (est. 25-35 min)
    python benchmarks/removal_demo.py --corpus demo-podcast --folds 1 --quick --epochs 1 --patience 1 \
        --methods baseline,mmd,leace,ensemble3_leace --out-dir /tmp/demo_smoke        # smoke check (about 2 min)

Time (2 CPU cores shared with other trainings): on demo-podcast one fold's baseline trains in about 16 s (10 epochs of
1280 utterances) and is attacked in about 8 s; one fold of every default method (mmd: 4 lambda values) is about 5-7 min,
so the five-fold comparison takes about 25-35 min.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from leakage import (  # noqa: E402  (benchmarks/leakage.py: the shared method runner)
    GOAL_EMOTION_DROP,
    LAMBDA_METHODS,
    METHODS,
    METRICS,
    TABLE_COLUMNS,
    BenchmarkConfig,
    LabelledData,
    _csv,
    format_table,
    goal_check,
    run_methods,
    summarize,
)

GENDER_IDS = {"F": 0, "M": 1}
N_FOLDS = 5
TASKS = ("activation", "valence")
CORPORA = ("demo", "demo-podcast")
DEMO_METHODS = ("baseline", "grl", "grl_dann", "alt_confusion", "ensemble3", "inlp", "leace", "mmd", "mmd_leace",
                "ensemble3_leace")
DEMO_GOAL_ATTACKER = 0.60  # issue 15's goal on demo-podcast: strongest fresh attacker <= 0.60 at unchanged emotion
DEMO_METRICS = (*METRICS, "eer", "eer_same_gender")
TESTED = ("emotion_uar", "attacker_max", "eer")  # paired t-tests against the baseline
ALPHA, POWER = 0.05, 0.8  # of the minimum detectable difference


def demo_config(epochs: int, patience: int, *, quick: bool = False) -> BenchmarkConfig:
    """The network of privemo's quick grid (one value per axis, ``privemo.search.grids.QUICK_GRID``), its lambda grid
    for the tuned methods (GRL lambda 1, the paper's largest, for the others), the paper's attacker grid with
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


def _mark(p: float) -> str:
    if not math.isfinite(p):
        return ""
    return " **" if p < 0.01 else (" *" if p < 0.05 else "")


def _cell(entry: dict, metric: str) -> str:
    mean, std = entry.get(f"{metric}_mean", math.nan), entry.get(f"{metric}_std", math.nan)
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.3f} ± {std:.3f}{_mark(entry.get(f'{metric}_p', math.nan))}"


def _num(value: float, fmt: str = "{:+.3f}") -> str:
    return fmt.format(value) if isinstance(value, float) and math.isfinite(value) else "—"


def markdown(summary: list[dict], rows: list[dict], *, corpus: str, task: str, folds: list[int],
             config: BenchmarkConfig, seconds: float, command: str) -> str:
    reached = goal_check(summary, DEMO_GOAL_ATTACKER)
    main_columns = (("emotion_uar", "emotion UAR"), ("attacker_max", "strongest fresh attacker (max)"),
                    ("attacker_selected", "fresh attacker (val-selected)"), ("head_uar", "own head UAR"),
                    ("eer", "speaker EER"), ("eer_same_gender", "EER, same gender"))
    headers = ["method", *(t for _, t in main_columns), "λ (per fold)"]
    table = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for s in summary:
        table.append("| " + " | ".join([s["method"], *(_cell(s, m) for m, _ in main_columns), s.get("lambdas") or "—"])
                     + " |")
    tests = ["| method | " + " | ".join(f"{m}: Δ | p | MDD" for m in TESTED) + " |",
             "|---|" + "|".join("---|---|---" for _ in TESTED) + "|"]
    for s in summary:
        if s["method"] == "baseline":
            continue
        cells = []
        for m in TESTED:
            cells += [_num(s.get(f"{m}_diff", math.nan)), _num(s.get(f"{m}_p", math.nan), "{:.3f}"),
                      _num(s.get(f"{m}_mdd", math.nan), "{:.3f}")]
        tests.append(f"| {s['method']} | " + " | ".join(cells) + " |")
    per_fold = ["| method | fold | emotion UAR | own head | " + " | ".join(f"fresh {a}" for a in config.attackers)
                + " | max | val-selected (attacker) | EER | λ | epochs |",
                "|" + "---|" * (9 + len(config.attackers))]
    for r in rows:
        lam = r.get("lambda", math.nan)
        per_fold.append(
            f"| {r['method']} | {r['fold'] + 1} | {r['emotion_uar']:.3f} | {_num(r['head_uar'], '{:.3f}')} | "
            + " | ".join(f"{r[a]:.3f}" for a in config.attackers)
            + f" | {r['attacker_max']:.3f} | {r['attacker_selected']:.3f} ({r['attacker_selected_name']}) | "
            f"{_num(r.get('eer', math.nan), '{:.3f}')} | {_num(lam, '{:g}')} | {r['epochs_run']} |")
    n_folds = len(folds)
    return "\n".join([
        f"# Attribute-removal methods on {corpus}",
        "",
        f"Acoustic modality, {task} (3 bins), gender as the private attribute; fold(s) "
        f"{', '.join(str(f + 1) for f in folds)} of {N_FOLDS} (speaker-independent, validation speakers carved from the "
        "training speakers). Mean ± std (ddof 0) over folds. Emotion: UAR of the emotion head on the test speakers "
        "(post hoc: the head refitted on the erased h). Fresh attackers (MLP grid, logistic regression, RBF SVM, "
        "gradient-boosted trees) are trained on the training speakers' frozen h, selected / early-stopped on the "
        "validation speakers and scored (UAR) on the test speakers; 'max' is the best test UAR of the four (chosen with "
        "hindsight), 'val-selected' the one with the lowest validation log-loss, refit on training + validation "
        "speakers. Own head: the model's gender output (adversary heads, MMD's monitor head). Speaker EER: a verifier "
        "learnt on the training speakers' h links the test speakers' utterances (0.5 = no linkage). Chance: 0.333 "
        "emotion, 0.5 gender. Marks: paired t-test over folds against the baseline, * p < 0.05, ** p < 0.01 "
        f"(n = {n_folds} fold{'s' if n_folds != 1 else ''}; no test below 2).",
        "",
        *table,
        "",
        f"Goal of issue 15 on this corpus (strongest fresh attacker ≤ {DEMO_GOAL_ATTACKER:.2f} UAR with emotion at most "
        f"{GOAL_EMOTION_DROP:.2f} below the baseline): {', '.join(reached) if reached else 'not reached by any method'}.",
        "",
        "## Paired tests against the baseline",
        "",
        f"Δ: mean paired difference (method − baseline) over folds; p: `scipy.stats.ttest_rel`; MDD: the smallest true "
        f"difference the test detects with power {POWER:g} at two-sided α = {ALPHA:g}, from the differences' standard "
        "deviation.",
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
        f"- Network: `{dict(config.model)}`; λ picked on the validation objective from {list(config.lambdas)} for "
        f"{', '.join(config.tuned) or 'no method'}, λ = {config.grl_lambda:g} for the other λ methods; alternating / "
        f"ensemble: k = {config.k}, adversary weight {config.adversary_weight:g}; INLP: at most "
        f"{config.inlp_iterations} iterations.",
        f"- Training: at most {config.epochs} epochs, patience {config.patience} on the validation objective (emotion "
        f"UAR − max(0, gender probe UAR − 0.5)), batch {config.batch_size}, class-balanced losses.",
        f"- Attackers: MLP grid `{dict(config.attacker_grid)}`, at most {config.attacker_epochs} epochs, patience "
        f"{config.attacker_patience}; logistic regression, RBF SVM and gradient boosting as in "
        "`privemo.privacy.sklearn_attacker`.",
        f"- Produced by `{command}` in {seconds / 60:.1f} min ({platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}).",
        "",
    ])


def scatter_png(summary: list[dict], path: Path, *, title: str) -> Path:
    """The privacy-utility scatter (strongest fresh attacker against emotion UAR, mean +- std per method), written to
    a temporary file beside ``path`` and moved onto it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    base = next((s for s in summary if s["method"] == "baseline"), None)
    for s in summary:
        x, y = s["attacker_max_mean"], s["emotion_uar_mean"]
        ax.errorbar(x, y, xerr=s["attacker_max_std"], yerr=s["emotion_uar_std"], fmt="o", capsize=3,
                    color="black" if s["method"] == "baseline" else None)
        ax.annotate(s["method"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (gender) 0.5")
    ax.axvline(DEMO_GOAL_ATTACKER, color="tab:green", linestyle=":", linewidth=1,
               label=f"goal: attacker ≤ {DEMO_GOAL_ATTACKER:.2f}")
    if base is not None:
        ax.axhline(base["emotion_uar_mean"] - GOAL_EMOTION_DROP, color="tab:green", linestyle="-.", linewidth=1,
                   label=f"baseline emotion − {GOAL_EMOTION_DROP:.2f}")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="demo", choices=CORPORA)
    parser.add_argument("--folds", type=int, default=1, help=f"run the first N of the {N_FOLDS} folds (default 1)")
    parser.add_argument("--task", default="activation", choices=TASKS)
    parser.add_argument("--methods", default=",".join(DEMO_METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--tune", default="mmd",
                        help=f"comma-separated methods of {','.join(LAMBDA_METHODS)} whose lambda is picked on validation "
                             "from the quick grid's lambda values (default: mmd; 'none': none)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="smoke-check budget: one attacker configuration of 5 epochs, lambda 1 only (combine with "
                             "small --epochs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="output folder (default results/<corpus>)")
    args = parser.parse_args(argv)
    if not 1 <= args.folds <= N_FOLDS:
        parser.error(f"--folds must be between 1 and {N_FOLDS}, got {args.folds}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        parser.error(f"unknown method(s) {unknown}; expected names from {list(METHODS)}")
    tuned = tuple(m.strip() for m in args.tune.split(",") if m.strip() and m.strip() != "none")
    if any(m not in LAMBDA_METHODS for m in tuned):
        parser.error(f"--tune: expected comma-separated names from {list(LAMBDA_METHODS)} or 'none', got {args.tune!r}")

    import keras
    import tensorflow as tf

    from privemo._io import atomic_write_text

    tf.config.experimental.enable_op_determinism()
    started = time.perf_counter()
    config = replace(demo_config(args.epochs, args.patience, quick=args.quick), tuned=tuned)
    table, acoustic, emotion, gender, speakers, folds = load_demo_data(args.task, args.seed, args.corpus)
    rows = []
    fold_ids = list(range(args.folds))
    extra = verification_metrics(args.seed)
    for f in fold_ids:
        fold = folds[f]
        data = LabelledData(features=acoustic, emotion=emotion, gender=gender, speaker=speakers,
                            train=fold.train, val=fold.validation, test=fold.test)
        for row in run_methods(data, config, args.seed, methods, balance=True, extra_metrics=extra,
                               label=f"fold {f + 1} ", log=lambda s: print(s, flush=True)):
            row["fold"] = f
            rows.append(row)
        keras.backend.clear_session()
    summary = paired_tests(rows, summarize(rows, DEMO_METRICS, goal_attacker=DEMO_GOAL_ATTACKER))
    seconds = time.perf_counter() - started
    command = "python benchmarks/removal_demo.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out_dir = Path(args.out_dir) if args.out_dir else ROOT / "results" / args.corpus
    atomic_write_text(out_dir / "removal_methods_folds.csv", _csv(rows))
    atomic_write_text(out_dir / "removal_methods.csv", _csv(summary))
    atomic_write_text(out_dir / "removal_methods.md",
                      markdown(summary, rows, corpus=args.corpus, task=args.task, folds=fold_ids, config=config,
                               seconds=seconds, command=command.strip()))
    scatter_png(summary, out_dir / "removal_methods.png",
                title=f"{args.corpus}, {args.task}: privacy–utility of removal methods "
                      f"(mean ± std over {len(fold_ids)} fold{'s' if len(fold_ids) > 1 else ''})")
    print()
    print(format_table(summary, (*TABLE_COLUMNS, ("eer", "speaker EER"))))
    print(f"\nwrote {out_dir / 'removal_methods.md'}, .csv, .png and removal_methods_folds.csv ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
