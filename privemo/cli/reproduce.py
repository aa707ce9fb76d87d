"""``python -m privemo.reproduce``: the paper's Table 1a/1b and the lambda sweep on one corpus, end to end.

With no arguments it runs the demo corpus (synthesised on first use), every modality and task, baseline, gender
adversary and speaker adversary, five speaker-independent folds, on the documented quick grid. ``--grid paper`` runs the
paper's full grid. Results go to ``results/<corpus>/``; ``--resume`` continues an interrupted run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from privemo._util.quiet import quiet_tensorflow, show_tensorflow_log
from privemo._util.validation import UserError
from privemo.cli._interrupt import Interrupt, command_line
# the registry of removal methods imports no Keras: --help and flag errors stay free of TensorFlow's start-up time
from privemo.removal.methods import DEFAULT_REMOVAL, METHODS, REMOVALS, removal_method
from privemo.search.grids import GRIDS

ADVERSARY_CHOICES = {"none": None, "gender": "gender", "speaker": "speaker"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m privemo.reproduce",
        description=(
            "Reproduce Table 1a/1b of Jaiswal & Mower Provost (AAAI 2020): emotion networks with a gradient-reversal "
            "gender or speaker adversary, five-fold speaker-independent cross-validation, fresh attackers on the frozen "
            "representation, membership identification. Default: the synthesised demo corpus on the quick grid."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_corpus_arguments(p)
    _add_condition_arguments(p)
    _add_protocol_arguments(p)
    _add_run_arguments(p)
    return p


def _add_corpus_arguments(p: argparse.ArgumentParser) -> None:
    """The corpus: which one, where it is, the synthesised corpora's size."""
    p.add_argument("--corpus", default="demo", choices=["demo", "demo-podcast", "iemocap", "msp-improv", "msp-podcast", "muse"],
                   help="which corpus to run")
    p.add_argument("--root", default=None, help="folder of your licensed copy of the corpus (not needed for demo and demo-podcast)")
    p.add_argument("--demo-size", type=int, default=None, metavar="N",
                   help="synthesised corpora only: utterances per speaker (demo: 10 speakers, default 64; demo-podcast: "
                        "48 speakers, default 40); small values make quick smoke runs")


def _add_condition_arguments(p: argparse.ArgumentParser) -> None:
    """The conditions: modality rows, tasks, adversaries, placements, the removal method."""
    p.add_argument("--modality", nargs="+", default=["acoustic", "lexical"],
                   choices=["acoustic", "lexical", "acoustic+lexical"],
                   help="modality rows to run; the default leaves out acoustic+lexical to finish within 20 minutes on "
                        "2 CPU cores: add it for the whole of Table 1 (about 19 min on 2 cores)")
    p.add_argument("--task", nargs="+", default=["activation", "valence"], choices=["activation", "valence"],
                   help="emotion dimensions (one model each)")
    p.add_argument("--adversary", nargs="+", default=["none", "gender", "speaker"], choices=list(ADVERSARY_CHOICES),
                   help="'none' is the baseline (needed for the tables' comparison); gender -> Table 1a, speaker -> Table 1b")
    p.add_argument("--placement", nargs="+", default=["fused"], choices=["fused", "per_modality"],
                   help="adversary on the fused representation h, or one per modality (multimodal rows only)")
    p.add_argument("--removal", default=DEFAULT_REMOVAL, choices=REMOVALS, metavar="METHOD",
                   help="attribute-removal method of the adversarial conditions (privemo.removal), one of: "
                        + "; ".join(f"{m.name} = {m.help}" for m in METHODS.values())
                        + ". A method other than grl appends its name to the conditions' keys (e.g. "
                          "acoustic-activation-gender-fused-inlp) and is named in the tables")


def _add_protocol_arguments(p: argparse.ArgumentParser) -> None:
    """The protocol: grid, folds, training budget, repeats, the claims' margin, selection and normalisation."""
    p.add_argument("--grid", default="quick", choices=sorted(GRIDS),
                   help="'paper': the full grid the paper states (384 configurations with an adversary, 96 without); "
                        "'quick': the documented subset used for the demo")
    p.add_argument("--folds", type=int, default=5, help="number of speaker-independent outer folds")
    p.add_argument("--only-fold", type=int, nargs="+", default=None, metavar="K",
                   help="run only these outer folds (0-based), e.g. to spread folds over machines")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs per trial (default: by grid, see README)")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs (default: by grid)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="training batch size of the emotion networks (default: by grid, see README)")
    p.add_argument("--repeats", type=int, default=1,
                   help="repeat every (condition, fold) with new seeds; a fold's repeats are averaged before the paired "
                        "tests over folds")
    p.add_argument("--margin", type=float, default=0.03,
                   help="equivalence margin of claims.csv (UAR, EER and AUC units): a difference whose 90 %% interval "
                        "lies inside ±margin is 'equivalent' (default 0.03)")
    p.add_argument("--selection", default="probe", choices=["probe", "head"],
                   help="privacy term of early stopping and lambda selection: 'probe' = a fresh logistic probe (gender) "
                        "or speaker verifier fitted on the training speakers' representation, scored on the validation "
                        "speakers; 'head' = the paper-literal adversary head's validation UAR, its distance from "
                        "chance penalised in both directions")
    p.add_argument("--normalization", default="speaker", choices=["speaker", "utterance"],
                   help="acoustic z-normalisation: 'speaker' = per speaker over all of the speaker's audio (the "
                        "experiment's default; test speakers' own audio included); 'utterance' = each utterance on its "
                        "own, as privemo.encode normalises in deployment (train as you ship)")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The run: processes, seed, word vectors, output, resume, logs, packing, dry run, verbosity."""
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes for the fold loop (default: one per CPU core); results do not depend on it")
    p.add_argument("--seed", type=int, default=0, help="the one seed of the run (folds, initialisation, attackers)")
    p.add_argument("--embeddings", default=None,
                   help="word vectors file (word2vec .bin/.txt or GloVe .txt); default: Word2Vec trained on each fold's "
                        "training transcripts")
    p.add_argument("--out", default=None, help="output folder (default: results/<corpus>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out: finished folds and trials are not redone")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="write every trial's training curves as TensorBoard logs under DIR/<condition>/fold<k>/trial_<id> "
                        "(needs the optional tensorboard package: pip install \"privemo[tensorboard]\")")
    p.add_argument("--pack", type=int, default=1, metavar="K",
                   help="train up to K trials of one network shape (the lambda values of an architecture) together in one "
                        "compiled step: the same results as one at a time; about 1.0-1.3x per step on a CPU and longer "
                        "tracing, meant for GPUs (default 1)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (corpus size, folds, conditions, trials per (condition, fold), trainings and "
                        "their epoch budget) and exit without training or writing results")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--verbose", action="store_true",
                   help="also a line per epoch of every trial, and TensorFlow's own start-up log")


def config_from_args(args: argparse.Namespace):
    """The run's ExperimentConfig from parsed flags, after the checks a user error can fail (one-line messages)."""
    from privemo.experiment import ExperimentConfig

    removal, tensorboard, out = _check_args(args)
    return ExperimentConfig(
        corpus=args.corpus,
        root=args.root,
        modalities=tuple(dict.fromkeys(args.modality)),
        tasks=tuple(dict.fromkeys(args.task)),
        adversaries=tuple(dict.fromkeys(ADVERSARY_CHOICES[a] for a in args.adversary)),
        placements=tuple(dict.fromkeys(args.placement)),
        grid=args.grid,
        n_folds=args.folds,
        folds=tuple(args.only_fold) if args.only_fold else None,
        seed=args.seed,
        n_jobs=args.jobs,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        embeddings=args.embeddings,
        out_dir=str(out),
        resume=args.resume,
        repeats=args.repeats,
        margin=args.margin,
        selection=args.selection,
        normalization=args.normalization,
        demo_per_speaker=args.demo_size,
        verbose=0 if args.quiet else (2 if args.verbose else 1),
        removal=removal,
        tensorboard=str(tensorboard) if tensorboard else None,
        pack=args.pack,
    )


def _check_args(args: argparse.Namespace) -> tuple[str, str | None, Path]:
    """The user errors the flags can hold, each a UserError naming the flag; returns (removal, tensorboard, out)."""
    if args.corpus not in ("demo", "demo-podcast") and not args.root:
        raise UserError(f"--corpus {args.corpus} needs --root: the folder holding your licensed copy of the corpus")
    if args.folds < 2:
        raise UserError(f"--folds must be at least 2 for cross-validation (got {args.folds})")
    for name in ("epochs", "patience", "batch_size", "jobs", "demo_size", "repeats", "pack"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer (got {value})")
    if not 0.0 < args.margin < 0.5:
        raise UserError(f"--margin must be between 0 and 0.5 (got {args.margin})")
    if args.demo_size is not None and args.corpus not in ("demo", "demo-podcast"):
        raise UserError(f"--demo-size only applies to --corpus demo or demo-podcast (got --corpus {args.corpus})")
    bad_folds = [k for k in args.only_fold or () if not 0 <= k < args.folds]
    if bad_folds:
        raise UserError(f"--only-fold {' '.join(map(str, bad_folds))}: fold indices run from 0 to {args.folds - 1}")
    if args.embeddings:
        if not Path(args.embeddings).is_file():
            raise UserError(f"--embeddings: file not found: {args.embeddings}")
        from privemo.features.lexical import _detect_format

        try:  # the format check reads only the file's head; a bad file fails now, not after feature extraction
            _detect_format(Path(args.embeddings))
        except (ValueError, OSError) as exc:
            raise UserError(f"--embeddings: {exc}") from None
    removal = args.removal
    try:
        method = removal_method(removal)
    except ValueError as exc:
        raise UserError(f"--removal: {exc}") from None
    if method.needs_adversary and all(ADVERSARY_CHOICES[a] is None for a in args.adversary):
        raise UserError(f"--removal {removal} removes an attribute: add --adversary gender and/or speaker")
    if method.fused_only and "per_modality" in args.placement:
        raise UserError(f"--removal {removal} erases the attribute from the fused representation h post hoc: it has no "
                        "per-modality placement (use --placement fused)")
    tensorboard = args.tensorboard
    if tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise UserError('--tensorboard needs the optional tensorboard package: pip install "privemo[tensorboard]"')
    out = Path(args.out or Path("results") / args.corpus)
    if not args.dry_run:  # a dry run writes nothing
        _check_writable(out)
    if tensorboard:
        _check_writable(Path(tensorboard), "--tensorboard")
    return removal, tensorboard, out


def _check_writable(out: Path, flag: str = "--out") -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".privemo-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{flag}: cannot write to {out} ({exc.strerror or exc})") from None


def run_command(prog: str, body: Callable[[], str | None], interrupted: str) -> int:
    """Run a command's ``body`` and print what it returns. User errors (bad flags, corpora, labels, files) become one
    stderr line "<prog>: error: ..." and exit status 2, never a traceback; Ctrl-C says how to continue (``interrupted``)
    and exits 130."""
    try:
        text = body()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:  # a missing corpus or word-vector file, named by the loader
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    if text:
        print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        show_tensorflow_log()  # TensorFlow's own start-up log, also in the worker processes

    def body() -> str:
        quiet_tensorflow()  # TensorFlow's C++ start-up log off (unless --verbose), also in the worker processes
        from privemo.experiment import describe_plan, run

        config = config_from_args(args)
        return describe_plan(config) if args.dry_run else run(config)

    words = sys.argv[1:] if argv is None else argv
    how = "nothing was written" if args.dry_run else \
        f"continue with: {command_line('privemo.reproduce', words, '--resume')}"
    with Interrupt("privemo.reproduce", how) as interrupt:  # Ctrl-C / SIGTERM: one line, then 130 / 143
        return interrupt.exit_status(run_command("privemo.reproduce", body, how))


if __name__ == "__main__":
    sys.exit(main())
