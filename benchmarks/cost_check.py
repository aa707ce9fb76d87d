"""Checks the cost model against a real run: the wall time ``python -m privemo.reproduce ... --dry-run`` estimates for a
command, then the same command run for real on this machine, side by side (issue 17: within a factor 1.5).

The estimate prices the cross-validation (tuning, training, representations, attacks: the manifest's
``training_and_attacks_s``); the corpus synthesis, feature extraction and linear reference before it are reported apart.
Besides the wall times it prints the epochs the cost model expected against the epochs the trials ran, so a miss can be
told apart into "each epoch cost more" and "early stopping stopped later". Appends one row to ``--csv`` (atomically).

    python benchmarks/cost_check.py -- --grid paper --modality acoustic --task activation --adversary none --only-fold 0
    python benchmarks/cost_check.py -- --demo-size 1000 --modality acoustic --task activation --adversary none --only-fold 0
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from privemo._util.io import atomic_write_text  # noqa: E402
from privemo.cli.reproduce import build_parser, config_from_args  # noqa: E402
from privemo.experiment.cost import estimate_run, format_duration, plan_from_run  # noqa: E402
from privemo.experiment.plan import plan_run  # noqa: E402

FIELDS = ("device", "command", "estimated_s", "measured_s", "ratio", "estimated_epochs", "measured_epochs",
          "trainings", "setup_s")


def estimate(flags: list[str]):
    """The cost model's ``RunEstimate`` of ``python -m privemo.reproduce <flags>`` (as ``--dry-run`` prints it)."""
    args = build_parser().parse_args([*flags, "--dry-run"])
    config = config_from_args(args)
    table, folds, fold_ids, conditions = plan_run(config)
    return estimate_run(plan_from_run(config, table, folds, fold_ids, conditions))


def run(flags: list[str], out: Path) -> tuple[dict, float]:
    """Run the command for real into ``out``; its manifest and the epochs its trials ran."""
    command = [sys.executable, "-m", "privemo.reproduce", *flags, "--out", str(out), "--quiet"]
    print("running:", " ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    epochs = 0.0
    for name in manifest["fold_timings"]:
        record = json.loads((out / "folds" / f"{name}.json").read_text(encoding="utf-8"))
        epochs += sum(trial.get("epochs_run") or 0 for trial in record.get("trials", ()))
    return manifest, epochs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("flags", nargs="*", help="python -m privemo.reproduce flags (after --)")
    parser.add_argument("--csv", default=str(ROOT / "results" / "cost_check.csv"), help="CSV the row is appended to")
    args = parser.parse_args(argv)
    if any(flag in ("--out", "--dry-run", "--resume") for flag in args.flags):
        parser.error("--out, --dry-run and --resume are the benchmark's own: leave them out")
    predicted = estimate(args.flags)
    print("\n".join(predicted.describe()), flush=True)
    with tempfile.TemporaryDirectory(prefix="privemo-cost-check-") as tmp:
        started = time.perf_counter()
        manifest, epochs = run(args.flags, Path(tmp) / "out")
        wall = time.perf_counter() - started
    measured = manifest["timings"]["training_and_attacks_s"]
    ratio = measured / predicted.wall_s
    print(f"cross-validation: estimated {format_duration(predicted.wall_s)}, measured {format_duration(measured)} "
          f"(measured / estimated = {ratio:.2f}; goal within a factor 1.5); epochs: expected {predicted.epochs:.0f}, "
          f"ran {epochs:.0f}; whole command {format_duration(wall)} (corpus, features and reference "
          f"{format_duration(wall - measured)} before it)")
    row = {"device": predicted.device, "command": " ".join(args.flags), "estimated_s": round(predicted.wall_s, 2),
           "measured_s": round(measured, 2), "ratio": round(ratio, 3), "estimated_epochs": round(predicted.epochs),
           "measured_epochs": int(epochs), "trainings": predicted.trainings, "setup_s": round(wall - measured, 1)}
    path = Path(args.csv)
    rows = list(csv.DictReader(path.open(encoding="utf-8"))) if path.exists() else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows([*rows, row])
    atomic_write_text(path, buffer.getvalue())
    print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
