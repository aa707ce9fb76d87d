"""Why is a baseline network below its linear reference? A measured comparison of training budgets on one Table 1 row.

The row (default: demo-podcast, acoustic, activation) is cross-validated without an adversary under each variant of
the training budget (epochs, patience, learning rate, batch size), with the experiment's own code
(``privemo.experiment.run_cross_validation``: the same folds, membership hold-out, early stopping on the validation
speakers, selection rules), and compared with the linear reference fitted on exactly the rows the networks train on
(``privemo.experiment.protocol.linear_reference_frame``). Printed per variant: test emotion UAR mean ± std over the
folds, the paired difference to the reference with its 95 % t interval, the mean best epoch and how many folds hit the
epoch cap. Written atomically: ``--out`` (default ``results/training_budget.csv``). ``--reference-only`` keeps the
networks' per-fold UARs of an existing ``--out`` and refits only the reference (after a change to the reference).

    python benchmarks/training_budget.py                                   # the default variants, 5 folds
    python benchmarks/training_budget.py --variants quick patience10 --folds 0 1
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

import privemo  # noqa: E402

privemo.quiet_tensorflow()  # TensorFlow without its C++ start-up log, as the commands start it

from privemo._util.io import atomic_write_text  # noqa: E402
from privemo.experiment import ExperimentConfig, run_cross_validation  # noqa: E402
from privemo.experiment.protocol import linear_reference_frame  # noqa: E402

# name -> ExperimentConfig overrides (None: the quick grid's defaults)
VARIANTS: dict[str, dict] = {
    "quick": {},
    "patience10": {"patience": 10},
    "lr5e-4_patience10": {"learning_rate": 5e-4, "patience": 10},
    "batch64_patience10": {"batch_size": 64, "patience": 10},
    # capacity: the quick grid's network with twice the filters and GRU units (the quick budget otherwise)
    "wide": {"grid": {"conv_kernels": (64,), "gru_width": (64,), "dense_width": (64,)}},
}


def measure(corpus: str, modality: str, task: str, variant: str, folds, seed: int, n_jobs: int | None) -> dict:
    """Cross-validate the row's baseline under one variant; its test emotion UAR per fold and training figures."""
    overrides = dict(VARIANTS[variant])
    if "grid" in overrides:  # a variant of the quick grid, registered under the variant's name (in this process only)
        from privemo.experiment.config import ATTACK_EPOCHS, BATCH_SIZE, EPOCHS, LEARNING_RATE, PATIENCE
        from privemo.privacy.grids import ATTACKER_GRIDS
        from privemo.search.grids import GRIDS

        GRIDS[variant] = {**GRIDS["quick"], **overrides.pop("grid")}
        ATTACKER_GRIDS[variant] = ATTACKER_GRIDS["quick"]
        overrides.update(grid=variant, epochs=EPOCHS["quick"], patience=PATIENCE["quick"],
                         learning_rate=LEARNING_RATE["quick"], batch_size=BATCH_SIZE["quick"],
                         attack_epochs=ATTACK_EPOCHS["quick"])
        n_jobs = 1  # worker processes would not see the registered grid
    with tempfile.TemporaryDirectory(prefix="privemo-budget-") as out:
        config = ExperimentConfig(corpus=corpus, modalities=(modality,), tasks=(task,), adversaries=(None,),
                                  folds=folds, seed=seed, n_jobs=n_jobs, out_dir=out, save_models=False, verbose=0,
                                  **overrides)
        t0 = time.perf_counter()
        records = run_cross_validation(config).records
        seconds = time.perf_counter() - t0
        reference = linear_reference_frame(config)
    per_fold = {r["fold"]: r["test"]["emotion_uar"] for r in records}
    return {"variant": variant, "per_fold": per_fold, "seconds": seconds,
            "best_epoch": float(np.mean([r["best_epoch"] for r in records])),
            "capped": int(sum(r["best_epoch"] >= r["max_epochs"] - 1 for r in records)),
            "max_epochs": records[0]["max_epochs"], "reference": reference}


def _against(uars: np.ndarray, ref: float) -> dict:
    """The reference and the networks' mean difference to it, with a 95 % t interval over the networks' folds (the
    reference gives one mean over the same folds)."""
    diff = uars - ref
    half = (stats.t.ppf(0.975, len(uars) - 1) * diff.std(ddof=1) / math.sqrt(len(uars))) if len(uars) > 1 else math.nan
    return {"reference": ref, "minus_reference": diff.mean(), "ci_low": diff.mean() - half,
            "ci_high": diff.mean() + half}


def recompute_reference(out: str, seed: int) -> int:
    """``--reference-only``: the CSV's networks kept, the reference of each (corpus, modality, task, folds) refitted."""
    frame = pd.read_csv(out)
    fold_columns = sorted(c for c in frame.columns if c.startswith("fold"))
    for (corpus, modality, task), rows in frame.groupby(["corpus", "modality", "task"]):
        folds = tuple(int(c[4:]) for c in fold_columns if rows[c].notna().all())
        config = ExperimentConfig(corpus=corpus, modalities=(modality,), tasks=(task,), adversaries=(None,),
                                  folds=folds, seed=seed, verbose=0)
        ref = float(linear_reference_frame(config).uar_mean.iloc[0])
        for i in rows.index:
            uars = frame.loc[i, [f"fold{k}" for k in folds]].to_numpy(float)
            for key, value in _against(uars, ref).items():
                frame.loc[i, key] = value
        print(f"{corpus} {modality} {task}: linear reference {ref:.3f} on folds {list(folds)}")
    atomic_write_text(out, frame.to_csv(index=False, float_format="%.4f"))
    print(f"-> {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="demo-podcast")
    parser.add_argument("--modality", default="acoustic")
    parser.add_argument("--task", default="activation")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--folds", nargs="+", type=int, default=None, help="outer folds (default: all five)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "results" / "training_budget.csv"))
    parser.add_argument("--reference-only", action="store_true",
                        help="keep the networks' per-fold UARs of --out and recompute only the linear reference and the "
                             "differences (after a change to the reference; no training)")
    args = parser.parse_args(argv)
    folds = tuple(args.folds) if args.folds else None
    if args.reference_only:
        return recompute_reference(args.out, args.seed)
    rows = []
    for variant in args.variants:
        m = measure(args.corpus, args.modality, args.task, variant, folds, args.seed, args.jobs)
        ref = float(m["reference"].uar_mean.iloc[0])
        uars = np.array([m["per_fold"][k] for k in sorted(m["per_fold"])])
        row = {"corpus": args.corpus, "modality": args.modality, "task": args.task, "variant": variant,
               **{f"fold{k}": v for k, v in sorted(m["per_fold"].items())}, "uar_mean": uars.mean(),
               "uar_std": uars.std(ddof=1) if len(uars) > 1 else math.nan, **_against(uars, ref),
               "mean_best_epoch": m["best_epoch"], "capped": m["capped"], "max_epochs": m["max_epochs"],
               "seconds": m["seconds"]}
        rows.append(row)
        print(f"{variant:22s} emotion UAR {row['uar_mean']:.3f} ± {row['uar_std']:.3f}  reference {ref:.3f}  "
              f"difference {row['minus_reference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]  best epoch "
              f"{row['mean_best_epoch']:.1f}, {row['capped']} capped  ({row['seconds']:.0f} s)", flush=True)
    atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False, float_format="%.4f"))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
