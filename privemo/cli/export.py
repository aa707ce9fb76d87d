"""``python -m privemo.export``: save the private encoder (inputs -> h) of one fold and condition of a run as .keras.

Examples::

    python -m privemo.export --out results/demo --list
    python -m privemo.export --out results/demo --condition acoustic-activation-gender-fused --fold 0
    python -m privemo.export --model my_network.keras --output encoder.keras

The run must have been made with ``ExperimentConfig.save_models`` (the default), which keeps each fold's selected
network as ``<out>/models/<condition>/fold<k>.keras``. The encoder goes to ``<out>/encoders/<condition>/fold<k>.keras``
(or ``--output``) with a JSON sidecar describing its inputs; load it with ``privemo.nn.encoder.load_encoder`` and turn wav
files or feature arrays into h with ``privemo.encode``.
"""

from __future__ import annotations

import argparse
import sys

from privemo._util.quiet import quiet_tensorflow
from privemo._util.validation import UserError




def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m privemo.export",
        description="Save the trained encoder (inputs -> representation h) of one fold and condition of a privemo run "
                    "as a stand-alone .keras file with a JSON sidecar describing its inputs.",
    )
    p.add_argument("--out", default="results/demo", help="the run's output folder (python -m privemo.reproduce --out)")
    p.add_argument("--condition", default=None,
                   help="condition key, e.g. acoustic-activation-gender-fused (see --list)")
    p.add_argument("--fold", type=int, default=None, help="outer fold (0-based)")
    p.add_argument("--model", default=None, help="export from this saved network (.keras) instead of a run")
    p.add_argument("--output", default=None,
                   help="encoder file to write (.keras); default <out>/encoders/<condition>/fold<k>.keras")
    p.add_argument("--list", action="store_true", help="list the saved networks of the run and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        quiet_tensorflow()  # TensorFlow's C++ start-up log off
        from privemo.nn.encoder import available_models, describe, export_encoder, export_from_run

        if args.list:
            models = available_models(args.out)
            if not models:
                raise UserError(f"{args.out}: no saved networks under {args.out}/models (run the experiment first)")
            for condition, folds in models.items():
                print(f"{condition}: folds {' '.join(map(str, folds))}")
            return 0
        if args.output is not None and not args.output.endswith(".keras"):
            raise UserError(f"--output must end with .keras (got {args.output})")
        if args.model is not None:
            if args.output is None:
                raise UserError("--model needs --output (the encoder file to write)")
            path = export_encoder(args.model, args.output, metadata={"source_model": args.model})
        else:
            given = (("--condition", args.condition), ("--fold", args.fold))
            missing = [flag for flag, value in given if value is None]
            if missing:
                raise UserError(f"{' and '.join(missing)} required (see `--out {args.out} --list` for the saved "
                                "networks), or --model")
            if args.fold < 0:
                raise UserError(f"--fold must be a non-negative integer (got {args.fold})")
            path = export_from_run(args.out, args.condition, args.fold, args.output)
        print(f"{path} {describe(path)}")
        return 0
    except UserError as exc:
        message = str(exc)
    except FileNotFoundError as exc:
        message = str(exc)
    except (ValueError, OSError) as exc:
        message = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
    print(f"privemo.export: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
