"""``python -m privemo.audit``: a privacy audit of a speech representation (gender attackers, speaker linkability,
emotion utility) with a report a deployer reads.

Examples::

    python -m privemo.audit --features h.npz --out audit/
    python -m privemo.audit --encoder results/demo-podcast/encoders/acoustic-activation-gender-fused/fold0.keras \\
        --corpus demo-podcast --out audit/
    python -m privemo.audit --compare before.npz after.npz --out audit-compare/

A features file (.npz, .parquet, .csv) has one row per utterance: ``h`` (or ``h0``, ``h1``, ...), ``speaker``,
``gender``, optionally ``activation`` / ``valence`` class labels, ``split`` and ``utterance_id``
(`privemo.audit.inputs`). The protocol is in `privemo.audit`.
"""

from __future__ import annotations

import argparse
import sys

from privemo._util.quiet import quiet_tensorflow
from privemo._util.validation import UserError

CORPORA = ["demo", "demo-podcast", "iemocap", "msp-improv", "msp-podcast", "muse"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m privemo.audit",
        description="Audit a speech representation for gender leakage (fresh attackers), speaker linkability "
                    "(verification EER) and emotion utility, on speaker-disjoint folds; writes report.md, "
                    "report.html, report.json and PNGs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", metavar="FILE", help="features file (.npz, .parquet or .csv) of h per utterance")
    source.add_argument("--encoder", metavar="FILE", help="a privemo encoder (.keras, python -m privemo.export); "
                                                          "needs --corpus")
    source.add_argument("--compare", nargs=2, metavar=("A", "B"),
                        help="two representations of the same utterances (features files, or encoders with "
                             "--corpus): paired differences B - A per fold and the claims table's verdict")
    p.add_argument("--corpus", choices=CORPORA, default=None, help="corpus to encode with --encoder")
    p.add_argument("--root", default=None, help="folder of your licensed copy of the corpus")
    p.add_argument("--demo-size", type=int, default=None, metavar="N",
                   help="synthesised corpora: utterances per speaker (default: the run's, else the corpus's)")
    p.add_argument("--out", required=True, help="folder for the report")
    p.add_argument("--folds", type=int, default=5, help="speaker-disjoint folds (ignored when a split is given)")
    p.add_argument("--seed", type=int, default=0, help="seeds the folds, attackers and bootstrap")
    p.add_argument("--attackers", default="default",
                   help="'default' (logistic regression, gradient-boosted trees, an RBF SVM while the training set is "
                        "small), 'full' (the experiment's whole family, the paper's MLP grid included) or a comma "
                        "list of names (mlp, logreg, svm, hgb)")
    p.add_argument("--mlp-epochs", type=int, default=None, help="maximum MLP attacker epochs (default: the "
                                                                  "experiment's)")
    p.add_argument("--bootstrap", type=int, default=1000, help="speaker resamples for the intervals (0 = none)")
    p.add_argument("--margin", type=float, default=None, help="--compare: equivalence margin (default: the claims "
                                                               "table's)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _load(name: str, args: argparse.Namespace, say):
    """A features file, or an encoder encoding --corpus, as a Representation."""
    if name.endswith(".keras"):
        from privemo.audit.encoder import encode_corpus, run_split
        from privemo.corpora import load_corpus

        if args.corpus is None:
            raise UserError(f"{name}: an encoder needs --corpus (the corpus whose wav files it encodes)")
        options = {}
        run = run_split(name) if name.endswith(".keras") else None
        size = args.demo_size if args.demo_size is not None else (run or {}).get("demo_per_speaker")
        if size is not None and args.corpus in ("demo", "demo-podcast"):
            options["n_per_speaker"] = int(size)
        try:
            table = load_corpus(args.corpus, args.root, **options)
        except ValueError as exc:
            raise UserError(f"--corpus {args.corpus}: {exc}") from None
        say(f"encoding {len(table)} utterances of {args.corpus} with {name} (per-utterance normalisation)")
        return encode_corpus(name, table, progress=say)
    from privemo.audit.inputs import read_features

    return read_features(name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> str:
        quiet_tensorflow()  # TensorFlow's C++ start-up log off
        from privemo.audit.report import write_report
        from privemo.audit.run import audit_representation, compare_representations, stderr_progress

        if args.folds < 2:
            raise UserError(f"--folds must be an integer >= 2 (got {args.folds})")
        if args.bootstrap < 0:
            raise UserError(f"--bootstrap must be >= 0 (got {args.bootstrap})")
        if args.encoder is None and args.compare is None and args.corpus is not None:
            raise UserError("--corpus is for --encoder (a features file already holds h)")
        say = (lambda s: None) if args.quiet else stderr_progress
        kw = dict(n_folds=args.folds, seed=args.seed, attackers=args.attackers, n_bootstrap=args.bootstrap,
                  mlp_epochs=args.mlp_epochs, progress=say)
        if args.compare:
            a, b = (_load(name, args, say) for name in args.compare)
            result = compare_representations(a, b, margin=args.margin, **kw)
        else:
            rep = _load(args.features or args.encoder, args, say)
            result = audit_representation(rep, **kw)
        written = write_report(result, args.out)
        lines = [f"{args.out}: {', '.join(sorted(p.name for p in written.values()))}"]
        if "comparison" in result:
            lines += [f"{row['metric']}: A {row['baseline']:.3f}, B {row['adversarial']:.3f}, verdict {row['verdict']}"
                      for row in result["comparison"]]
        else:
            s = result["summary"]
            pooled = (s["gender_uar_pooled"] or {}).get("uar")
            lines.append(f"gender attacker UAR {pooled if pooled is None else round(pooled, 3)}, "
                         f"EER {s['eer']['mean'] if s['eer']['mean'] is None else round(s['eer']['mean'], 3)}")
        return "\n".join(lines)

    from privemo.cli.reproduce import run_command

    return run_command("privemo.audit", body, "nothing was written")


if __name__ == "__main__":
    sys.exit(main())
