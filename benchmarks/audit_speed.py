"""Speed of ``python -m privemo.audit``: the default audit of 10,000 utterances x 128-d h read from a features file
(goal: <= 3 minutes on 2 cores), and the experiment's full attacker family (``--attackers full``: the paper's MLP grid,
logistic regression, the RBF SVM on up to 10,000 utterances, gradient boosting).

The representation is synthetic (200 speakers x 50 utterances, gender and speaker identity planted weakly, so the
attackers have something to find); the time is what the audit costs, not what it finds. The full family is timed on
``--full-folds`` of the five folds (default 1: it costs minutes per fold) and scaled to five.

    nice -n 10 python benchmarks/audit_speed.py
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=200)
    parser.add_argument("--per-speaker", type=int, default=50)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--full-folds", type=int, default=1, help="folds of the full family to time (0 = skip)")
    args = parser.parse_args()

    import numpy as np

    from privemo.audit.inputs import read_features, representation_from_arrays, write_features
    from privemo.audit.report import write_report
    from privemo.audit.run import audit_folds, audit_representation, stderr_progress

    rng = np.random.default_rng(0)
    spk = np.repeat(np.arange(args.speakers), args.per_speaker)
    gender = np.where(spk % 2 == 0, "F", "M")
    h = 0.5 * rng.normal(size=(args.speakers, args.dim))[spk] + rng.normal(size=(spk.size, args.dim))
    h[:, :4] += 0.4 * (spk % 2)[:, None]
    rep = representation_from_arrays(h.astype(np.float32), [f"s{s:03d}" for s in spk], gender,
                                     emotion={"activation": rng.integers(0, 3, spk.size)})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_features(Path(tmp) / "h.npz", rep)
        t0 = time.perf_counter()
        loaded = read_features(path)
        report = audit_representation(loaded, progress=stderr_progress)
        write_report(report, Path(tmp) / "report")
        default_s = time.perf_counter() - t0
        s = report["summary"]
        print(f"cores available: {len(os.sched_getaffinity(0))}")
        print(f"default audit ({', '.join(report['attackers'])}; {len(rep)} utterances x {args.dim}-d, 5 folds, "
              f"read + attacks + report): {default_s:.1f} s (goal <= 180 s); gender UAR "
              f"{s['gender_uar_pooled']['uar']:.3f}, EER {s['eer']['mean']:.3f}")
        if report["attackers_note"]:
            print(f"  note: {report['attackers_note']}")
        if args.full_folds:
            folds = audit_folds(loaded)[: args.full_folds]
            times = []
            for k, fold in enumerate(folds):
                split = np.full(len(loaded), "", dtype="<U10")
                for name, rows in (("train", fold.train), ("validation", fold.validation), ("test", fold.test)):
                    split[rows] = name
                keep = np.flatnonzero(split != "")
                one = dataclasses.replace(loaded, split=split).take(keep)
                t0 = time.perf_counter()
                full = audit_representation(one, attackers="full", progress=stderr_progress)
                times.append(time.perf_counter() - t0)
                print(f"full family ({', '.join(full['attackers'])}) fold {k}: {times[-1]:.1f} s; gender UAR "
                      f"{full['folds'][0]['gender']['test_uar']:.3f} (selected {full['folds'][0]['gender']['strongest']})")
            print(f"full family, five folds (estimated from {len(times)}): {5 * np.mean(times):.0f} s")


if __name__ == "__main__":
    main()
