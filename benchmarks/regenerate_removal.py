"""Regenerate every committed removal-method result (issue 24, items 3 and 4) with one command.

Steps, each a separate process writing its files whole (no rows spliced from another command), in this order:

1. ``benchmarks/mmd_scale_dev.py`` on the development seed 100 (no reported run uses it): the MMD scale S, chosen on
   validation speakers only -> ``results/removal/synthetic/mmd_scale_dev.csv``;
2. ``benchmarks/leakage.py --mmd-scale S`` (3 seeds) -> ``results/removal/synthetic/leakage.csv``, ``_runs.csv``,
   ``_manifest.json``;
3. the same with ``--confound`` -> ``results/removal/synthetic/leakage_confound*.csv``, ``_manifest.json``;
4. ``benchmarks/removal_demo.py --corpus demo-podcast --folds 5 --mmd-scale S`` -> ``results/removal/demo-podcast/``
   (removal_methods.csv / _folds.csv / _speakers.json / .md / .png, manifest.json);
5. ``python tests/readme_sections.py``: the README's rendered sections from the new files.

Every step uses the same budget for every method: the paper's four lambdas tuned on the validation speakers for the GRL,
grl_dann, the alternating and ensemble adversaries and MMD, 40 epochs with patience 6 (the main protocol's quick grid).
A failed step stops the command (later steps would mix old and new files); ``--from-step N`` resumes at step N and
``--until-step M`` stops after step M (steps 2-4 then read S from step 1's CSV). ``--dry-run`` prints the commands. Its own log: per step the command and wall time,
also in ``results/removal/regenerate.json``.

Measured (the first fair-budget runs, issue 24): step 1 4.5 min on idle cores; step 4 90 min with ``--jobs 2`` (two
fold processes of one TensorFlow thread each) on 2 cores shared with other work. Steps 2 and 3 were estimated from
smoke runs at about 70-75 min each on one process (per seed about 14 min of trainings -- 21 networks of the lambda
grid --, 7 min of gradient_erasure's fit, 2 min of attackers); ``--jobs 3`` trains the three seeds at once.

    nice -n 15 python benchmarks/regenerate_removal.py --jobs 2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "results" / "removal" / "synthetic"
DEV_CSV = SYNTHETIC / "mmd_scale_dev.csv"


def steps(scale: str, jobs: int = 1) -> list[tuple[str, list[str]]]:
    """(name, argv) of every step, S = ``scale`` (a placeholder in a dry run), steps 2-4 with ``--jobs jobs`` where
    ``jobs`` > 1; paths relative to the repository root, where the steps run, so the manifests name them so."""
    py = sys.executable
    parallel = ["--jobs", str(jobs)] if jobs > 1 else []
    synthetic = SYNTHETIC.relative_to(ROOT).as_posix()
    return [
        ("mmd scale on the development seed", [py, "benchmarks/mmd_scale_dev.py", "--out",
                                               DEV_CSV.relative_to(ROOT).as_posix()]),
        ("known-answer benchmark", [py, "benchmarks/leakage.py", "--mmd-scale", scale,
                                    "--out", f"{synthetic}/leakage.csv", *parallel]),
        ("known-answer benchmark, confounded", [py, "benchmarks/leakage.py", "--confound", "--mmd-scale", scale,
                                                "--out", f"{synthetic}/leakage_confound.csv", *parallel]),
        ("demo-podcast comparison", [py, "benchmarks/removal_demo.py", "--corpus", "demo-podcast", "--folds", "5",
                                     "--mmd-scale", scale, *parallel]),
        ("README sections", [py, "tests/readme_sections.py"]),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-step", type=int, default=1, help="resume at this step (1-5)")
    parser.add_argument("--until-step", type=int, default=5, help="stop after this step (1-5; default 5)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds (steps 2-3) and folds (step 4) trained at once, in processes of their own")
    args = parser.parse_args(argv)
    if not 1 <= args.from_step <= 5:
        parser.error(f"--from-step must be between 1 and 5, got {args.from_step}")
    if not args.from_step <= args.until_step <= 5:
        parser.error(f"--until-step must be between --from-step and 5, got {args.until_step}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mmd_scale_dev import chosen_scale

    log = []
    scale = "S"
    for number, (name, command) in enumerate(steps(scale, args.jobs), start=1):
        if number < args.from_step or number > args.until_step:
            continue
        if number >= 2 and not args.dry_run:
            scale = f"{chosen_scale(DEV_CSV):g}"
            command = [scale if part == "S" else part for part in command]
        print(f"[{number}/5] {name}: {' '.join(command[1:])}", flush=True)
        if args.dry_run:
            continue
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT)
        seconds = time.perf_counter() - started
        log.append({"step": number, "name": name, "command": " ".join(["python", *command[1:]]),
                    "seconds": round(seconds, 1), "returncode": done.returncode})
        print(f"[{number}/5] {name}: {seconds / 60:.1f} min, exit {done.returncode}", flush=True)
        if done.returncode != 0:
            print(f"step {number} failed: stopped (resume with --from-step {number})", file=sys.stderr)
            break
    if log:
        from privemo._util.io import atomic_write_text

        path = ROOT / "results" / "removal" / "regenerate.json"
        earlier = []
        if (args.from_step > 1 or args.until_step < 5) and path.is_file():  # keep the steps it did not run again
            earlier = [s for s in json.loads(path.read_text())["steps"]
                       if not args.from_step <= s["step"] <= args.until_step]
        record = {"finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "mmd_scale": None if scale == "S" else float(scale),
                  "steps": sorted(earlier + log, key=lambda s: s["step"])}
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return 0 if all(s["returncode"] == 0 for s in log) else 1


if __name__ == "__main__":
    raise SystemExit(main())
