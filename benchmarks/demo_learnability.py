"""Is every cell learnable in both demo corpora? The linear reference on ``demo`` and ``demo-podcast`` against targets.

For each synthesised corpus, the corpus is built (or loaded from the cache: ``privemo.load_corpus``), its acoustic
features are extracted the normal way (``privemo.features.extract_acoustic``, cached on disk, per-speaker z-normalised,
uncapped so that the statistics describe whole utterances), the corpus's default five speaker-independent folds are
made (``privemo.speaker_folds``) and the linear reference is scored (``privemo.reference_table``: logistic regression on
utterance statistics for acoustic, on a binary bag of words + bigrams for lexical, C chosen on the validation speakers;
gender from the same utterance statistics). Printed: corpus x {acoustic activation, acoustic valence, lexical
activation, lexical valence, gender}, UAR mean +- std over the 5 folds, the target and PASS / FAIL. Written atomically:
``results/demo_learnability.csv`` (columns corpus, cell, uar_mean, uar_std, target, passes).

Targets (issue 13): acoustic activation and lexical valence >= 0.55 (the primary cue of each dimension), acoustic
valence and lexical activation >= 0.42 (the secondary cue), gender from the voice statistics >= 0.9 (chance: 1/3 for
the 3-class cells, 1/2 for gender).

    python benchmarks/demo_learnability.py                       # both corpora (a few minutes on 2 cores, first run)
    python benchmarks/demo_learnability.py --corpus demo         # one of them
    python benchmarks/demo_learnability.py --size small          # smaller corpora, for iterating on a generator
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import privemo  # noqa: E402
from privemo._util.io import atomic_write_text  # noqa: E402
from privemo.features import extract_acoustic  # noqa: E402

CORPORA = ("demo", "demo-podcast")
# (modality, task) -> target UAR; the reference table's gender row has modality "acoustic", task "gender".
TARGETS: dict[tuple[str, str], float] = {
    ("acoustic", "activation"): 0.55,
    ("acoustic", "valence"): 0.42,
    ("lexical", "activation"): 0.42,
    ("lexical", "valence"): 0.55,
    ("acoustic", "gender"): 0.90,
}
CELL_NAMES: dict[tuple[str, str], str] = {
    ("acoustic", "activation"): "acoustic activation",
    ("acoustic", "valence"): "acoustic valence",
    ("lexical", "activation"): "lexical activation",
    ("lexical", "valence"): "lexical valence",
    ("acoustic", "gender"): "gender",
}
# Smaller corpora for quick iterations on a generator (not for the reported numbers): still 5 folds.
SMALL_SIZES: dict[str, dict[str, int]] = {
    "demo": {"n_per_speaker": 32},
    "demo-podcast": {"n_speakers": 30, "n_per_speaker": 20, "n_unknown": 10},
}
OUT = ROOT / "results" / "demo_learnability.csv"
COLUMNS = ("corpus", "cell", "uar_mean", "uar_std", "target", "passes")


def corpus_cells(name: str, *, options: dict | None = None, progress: bool = True, seed: int = 0) -> pd.DataFrame:
    """The five cells of one corpus: a frame with ``COLUMNS``."""
    table = privemo.load_corpus(name, progress=progress, **(options or {}))
    folds = privemo.speaker_folds(table, n_folds=5, seed=seed)
    frames = extract_acoustic(table, progress=progress).normalized(table, mode="speaker")
    reference = privemo.reference_table(table, folds, acoustic=frames, modalities=("acoustic", "lexical"),
                                        tasks=("activation", "valence"), gender=True, seed=seed)
    rows = []
    for (modality, task), target in TARGETS.items():
        hit = reference[(reference.modality == modality) & (reference.task == task)]
        if len(hit) != 1:
            raise RuntimeError(f"{name}: the reference table has {len(hit)} rows for {modality} {task}")
        mean, std = float(hit.uar_mean.iloc[0]), float(hit.uar_std.iloc[0])
        rows.append({"corpus": name, "cell": CELL_NAMES[(modality, task)], "uar_mean": mean, "uar_std": std,
                     "target": target, "passes": bool(mean >= target)})
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def format_table(results: pd.DataFrame) -> str:
    lines = [f"{'corpus':<14}{'cell':<22}{'UAR (mean +- std, 5 folds)':>28}{'target':>9}  result"]
    for row in results.itertuples(index=False):
        lines.append(f"{row.corpus:<14}{row.cell:<22}{row.uar_mean:>19.3f} +- {row.uar_std:.3f}"
                     f"{'>= ' + format(row.target, '.2f'):>9}  {'PASS' if row.passes else 'FAIL'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", choices=CORPORA, help="a corpus (repeatable); default: both")
    parser.add_argument("--size", choices=("default", "small"), default="default",
                        help="'small': smaller corpora for iterating on a generator (the CSV is then not written)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"CSV written atomically (default {OUT})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    results = []
    for name in args.corpus or CORPORA:
        start = time.perf_counter()
        options = SMALL_SIZES[name] if args.size == "small" else {}
        results.append(corpus_cells(name, options=options, progress=not args.quiet))
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    frame = pd.concat(results, ignore_index=True)
    print(format_table(frame))
    if args.size == "default":
        buf = io.StringIO()
        frame.to_csv(buf, index=False, float_format="%.4f", lineterminator="\n")
        atomic_write_text(args.out, buf.getvalue())
        print(f"wrote {args.out}")
    return 0 if frame.passes.all() else 1


if __name__ == "__main__":
    sys.exit(main())
