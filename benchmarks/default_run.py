"""Wall time of the default command, ``python -m privemo.reproduce``, as a newcomer runs it: empty data and feature
caches (so the demo corpus is synthesised and its features extracted first), default arguments, a fresh output folder.
Goal (issue 11, with lambda tuned over the paper's four values, paired baselines and converged training): within 20
minutes on 2 CPU cores.

Prints the wall time, the manifest's time per stage, and the per-(condition, fold) time summed by modality and by
part (tuning + training, representation, attacks), with the epochs trained.

    python benchmarks/default_run.py                  # the default command, all of it (minutes)
    python benchmarks/default_run.py -- --modality lexical   # extra reproduce flags after --
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("extra", nargs="*", help="extra flags for python -m privemo.reproduce (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="privemo-default-run-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, PRIVEMO_DATA=str(tmp / "data"), PRIVEMO_CACHE=str(tmp / "cache"),
                   TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        out = tmp / "out"
        command = [sys.executable, "-m", "privemo.reproduce", "--out", str(out), "--quiet", *args.extra]
        print("running:", " ".join(command[1:]), flush=True)
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))

        print(f"wall time: {wall:.0f} s = {wall / 60:.1f} min on {os.cpu_count()} cores (goal: <= 20 min on 2)")
        print("stages (s):", ", ".join(f"{k} {v:.1f}" for k, v in manifest["timings"].items()))
        parts = defaultdict(lambda: defaultdict(float))
        for name, t in manifest["fold_timings"].items():
            record = json.loads((out / "folds" / f"{name}.json").read_text(encoding="utf-8"))
            row = parts[record["modality"]]
            row["jobs"] += 1
            row["trials"] += len(record.get("trials", ()))
            row["epochs"] += sum(t.get("epochs_run") or 0 for t in record.get("trials", ()))
            for key in ("tune_s", "represent_s", "attack_s", "total_s"):
                row[key] += t.get(key, 0.0)
        print(f"{'modality':18s} {'jobs':>5s} {'trials':>7s} {'epochs':>7s} {'tune_s':>8s} {'represent_s':>12s} "
              f"{'attack_s':>9s} {'total_s':>8s}")
        for modality, row in parts.items():
            print(f"{modality:18s} {row['jobs']:5.0f} {row['trials']:7.0f} {row['epochs']:7.0f} {row['tune_s']:8.0f} "
                  f"{row['represent_s']:12.0f} {row['attack_s']:9.0f} {row['total_s']:8.0f}")
        total = sum(row["total_s"] for row in parts.values())
        print(f"job time {total:.0f} s over {manifest['timings'].get('training_and_attacks_s', float('nan')):.0f} s of "
              "training and attacks (their ratio is the workers' parallel efficiency x worker count)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
