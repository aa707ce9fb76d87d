"""Recompute a finished run's linear reference (``reference.csv``) with this privemo, then its tables and claims.

The networks' records (``folds.json``) are kept as they are; the linear reference is a separate, deterministic fit on
the run's own folds and training rows (``privemo.experiment.protocol.linear_reference_frame``), so a run made before a
change to the reference can be put beside the new one without retraining. The manifest gains a ``reference`` entry
naming the commit and time of the recomputation.

    python benchmarks/recompute_reference.py --out results/demo
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import privemo  # noqa: E402

privemo.quiet_tensorflow()

from privemo._util.io import atomic_write_json, atomic_write_text, read_json  # noqa: E402
from privemo.experiment import ExperimentConfig  # noqa: E402
from privemo.experiment.manifest import git_state  # noqa: E402
from privemo.experiment.protocol import linear_reference_frame, write_reports  # noqa: E402


def run_config(out: Path) -> ExperimentConfig:
    """The run's configuration from its manifest (lists back to tuples), quiet."""
    saved = read_json(out / "manifest.json")["config"]
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()
              if k in ExperimentConfig.__dataclass_fields__}
    return ExperimentConfig(**{**fields, "verbose": 0, "resume": False})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a finished python -m privemo.reproduce --out folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    config = run_config(out)
    t0 = time.perf_counter()
    reference = linear_reference_frame(config)
    atomic_write_text(out / "reference.csv", reference.to_csv(index=False))
    write_reports(out, margin=config.margin, seed=config.seed)
    manifest = read_json(out / "manifest.json")
    manifest["reference"] = {"recomputed_by": "benchmarks/recompute_reference.py", "git": git_state(),
                             "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                             "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write_json(out / "manifest.json", manifest)
    print(reference.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"-> {out / 'reference.csv'}, tables and claims rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
