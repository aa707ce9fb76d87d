"""What the paper's full protocol costs: seconds per epoch of privemo's networks on this machine, packed and not, and
the wall time of the whole protocol per corpus and grid, extrapolated with privemo's cost model.

For every measured (modality set, network shape, pack size K) it times training steps and validation forward passes on
synthetic utterances fed through privemo's own input pipeline, at two padded lengths (``privemo.experiment.cost.
StepTimer``); K members are packed as ``privemo.search.packing`` trains them (K = 1: the ordinary network). Measurements
of one shape alternate between pack sizes and the fastest of the repeats counts, so that other processes on the machine
disturb them less. Per corpus (sizes and utterance lengths from ``privemo.experiment.cost_calibration.CORPUS_PROFILES``: IEMOCAP,
MSP-IMPROV, MSP-Podcast, MuSE) it prices one epoch of each measured network on a fold's training and validation rows,
and extrapolates the whole protocol (the paper's Table 1 rows x 2 tasks x {baseline, gender, speaker} x 5 folds, every
configuration of the grid; ``privemo.experiment.cost.protocol_plan``) for one worker, ``--jobs`` workers and
``--workers`` distributed workers, unpacked and with the lambda values of each shape packed.

Writes ``results/protocol_cost.csv`` (atomically; one row per measurement: the device, the step-cost coefficients that
``python -m privemo.reproduce --dry-run`` uses, and the seconds per epoch on each corpus; rows of an earlier file that
this run did not measure again are kept, unless ``--replace``) and prints the tables and the
K = 5 speed-up on the quick grid's network (goal: >= 1.15x on 2 CPU cores). TensorFlow runs with ``--threads`` threads
(default 1, as each experiment worker does).

    python benchmarks/protocol_cost.py --quick      # CI size: about a minute (quick network, K = 1 and 5, acoustic)
    python benchmarks/protocol_cost.py              # a few minutes: K sweep on the quick network, 4 paper shapes,
                                                    # lexical and acoustic+lexical on 2
    python benchmarks/protocol_cost.py --full       # every modality set x 8 shapes x every K (long)
    python benchmarks/protocol_cost.py --estimate-only   # the protocol table from the CSV, nothing measured
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from privemo._util.validation import UserError  # noqa: E402
from privemo.experiment import cost as cm  # noqa: E402
from privemo.experiment import cost_calibration as cc  # noqa: E402
from privemo.search.grids import PAPER_GRID, QUICK_GRID  # noqa: E402

CORPORA = ("iemocap", "msp-improv", "msp-podcast", "muse")
CPU_PACKS = (1, 2, 4, 5, 8)
GPU_PACKS = (1, 2, 4, 8, 16)
QUICK_SHAPE = cm.grid_shapes(QUICK_GRID)[0]
SPEED_UP_GOAL = 1.15


def stratified_shapes(n: int) -> list[tuple[int, ...]]:
    """``n`` shapes of PAPER_GRID spread from the cheapest to the dearest (acoustic GRU steps and arithmetic)."""
    shapes = sorted(cm.grid_shapes(PAPER_GRID), key=lambda s: (cm.shape_features(s, "acoustic")[1:] @ [1e3, 1.0]))
    picks = np.unique(np.linspace(0, len(shapes) - 1, n).round().astype(int))
    return [shapes[i] for i in picks]


def plan_measurements(args, gpu: bool) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(modality, shape, pack sizes) to measure."""
    packs = tuple(args.packs) if args.packs else (GPU_PACKS if gpu else CPU_PACKS)
    if args.quick:
        top = 16 if gpu else 5
        return [("acoustic", QUICK_SHAPE, (1, top)), ("acoustic", stratified_shapes(2)[-1], (1,))]
    if args.full:
        return [(m, s, packs) for m in cc.MODALITY_SETS for s in [QUICK_SHAPE, *stratified_shapes(8)]]
    # the K sweep on the quick network; one-member costs of paper shapes from cheapest to dearest (other shapes are
    # fitted on them) and K = 4 (the lambda values of one shape) on the dearest; the other modality sets on two shapes
    sample = stratified_shapes(4)
    return ([("acoustic", QUICK_SHAPE, packs)]
            + [("acoustic", s, (1, 4) if s == sample[-1] else (1,)) for s in sample]
            + [(m, s, (1,)) for m in ("lexical", "acoustic+lexical") for s in (QUICK_SHAPE, sample[-1])])


def measure(plan, args) -> tuple[cm.Calibration, dict]:
    device = cm.device_name()
    calibration = cm.Calibration(device, args.threads or 0, source="benchmarks/protocol_cost.py")
    raw: dict = {}
    for modality, shape, packs in plan:
        timers = {}
        for k in packs:
            t0 = time.perf_counter()
            timers[k] = cc.StepTimer(shape, modality, pack=k, steps=args.steps)
            print(f"  {modality:17s} {fmt_shape(shape):22s} K={k:<2d} traced in {time.perf_counter() - t0:5.1f} s",
                  flush=True)
        for _ in range(args.repeats):  # alternate the pack sizes, so that load changes touch them alike
            for k in packs:
                timers[k].measure()
        for k in packs:
            cost = timers[k].cost()
            calibration.costs[(modality, shape, k)] = cost
            raw[(modality, shape, k)] = timers[k].measurements
        del timers
    return calibration, raw


def row_key(row) -> tuple:
    """What a CSV row measured: device, threads, modality, shape and pack."""
    return tuple(str(row[c]) for c in ("device", "threads", "modality", *cc.SHAPE_KEYS, "pack"))


def earlier_rows(path, measured: set) -> list[dict]:
    """The rows of an earlier CSV at ``path`` that this run did not measure again (other devices, shapes, packs), so
    that a short run does not erase a longer one; none when there is no readable earlier file."""
    import csv

    path = Path(path)
    if not path.is_file():
        return []
    try:
        cm.read_calibration(path)  # validates every row
    except UserError as exc:
        print(f"note: not keeping the rows of {path}: {exc}")
        return []
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row_key(row) not in measured]


def fmt_shape(shape) -> str:
    c, w, k, g, u, d, dw = shape
    return f"conv {c}x{w}x{k} gru {g}x{u} dense {d}x{dw}"


def print_protocol(calibration: cm.Calibration, jobs: int, workers: int, pack: int = 4) -> None:
    """The whole protocol's estimated wall time per corpus and grid: one worker, ``jobs`` workers, ``workers``
    distributed workers, and with the lambda values of each shape in packs of ``pack``."""
    print(f"\nwhole protocol (Table 1 rows x 2 tasks x baseline/gender/speaker x 5 folds), estimated wall time on "
          f"this device ({calibration.device}; from {len(calibration.costs)} measurements):")
    print(f"  {'corpus':12s} {'grid':6s} {'trainings':>9s} {'1 worker':>11s} {f'--jobs {jobs}':>11s} "
          f"{f'{workers} workers':>11s} {'packed 1w':>11s} {f'packed -j{jobs}':>11s}")
    for corpus in CORPORA:
        for grid in ("paper", "quick"):
            plain = cm.estimate_run(cm.protocol_plan(corpus, grid, jobs=jobs), calibration=calibration)
            packed = cm.estimate_run(cm.protocol_plan(corpus, grid, jobs=jobs, pack=pack), calibration=calibration)
            cells = [plain.work_s, plain.wall_s, plain.distributed_s(workers), packed.work_s, packed.wall_s]
            print(f"  {corpus:12s} {grid:6s} {plain.trainings:9d} "
                  + " ".join(f"{cm.format_duration(v):>11s}" for v in cells))
    print(f"  (trainings: trials x folds; packed: the lambda values of each shape in packs of {pack}; "
          "distributed: workers like this one, one thread each)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI size: the quick network at K = 1 and 5 (16 on a GPU)")
    size.add_argument("--full", action="store_true", help="every modality set x 8 paper shapes x every K")
    size.add_argument("--estimate-only", action="store_true",
                      help="measure nothing: print the whole protocol's estimate from --out's rows for this device")
    parser.add_argument("--packs", type=int, nargs="+",
                        help="pack sizes K (default 1 2 4 5 8 on CPU, 1 2 4 8 16 on GPU)")
    parser.add_argument("--steps", type=int, default=None, help="training steps timed per length (default 8; quick 4)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timings per measurement, alternating pack sizes, fastest kept (default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow threads (default 1 on CPU, as each experiment worker; TensorFlow's on GPU)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes for the --jobs estimate (default: cores)")
    parser.add_argument("--workers", type=int, default=10, help="distributed workers for that estimate (default 10)")
    parser.add_argument("--out", default=str(cm.DEFAULT_CALIBRATION),
                        help="CSV to write (default results/protocol_cost.csv)")
    parser.add_argument("--replace", action="store_true",
                        help="write only this run's rows (default: keep an earlier file's rows not measured again)")
    args = parser.parse_args(argv)
    args.steps = args.steps or (4 if args.quick else 8)
    args.repeats = args.repeats or 2

    from privemo._util.processes import available_cpus
    from privemo.nn.device import gpu_visible, start_tensorflow

    gpu = gpu_visible()
    if args.threads is None and not gpu:
        args.threads = 1
    start_tensorflow(args.threads)
    cores = available_cpus()
    args.jobs = args.jobs or cores
    device = cm.device_name()
    if args.estimate_only:  # the protocol table from the CSV's rows for this device, nothing measured
        found = cm.read_calibration(args.out, device, args.threads or 0)
        if found is None:
            raise UserError(f"{args.out}: no rows for this device ({device}); run this benchmark without "
                            "--estimate-only first")
        print_protocol(found, args.jobs, args.workers)
        return 0
    print(f"device: {device}; TensorFlow threads: {args.threads or 'default'}; {args.steps} steps x {args.repeats} "
          f"repeat(s) per measurement", flush=True)
    started = time.perf_counter()
    plan = plan_measurements(args, gpu)
    calibration, raw = measure(plan, args)
    calibration.threads = args.threads or 0

    # seconds per epoch per corpus (fold 0 of the profile; probe selection with a gender adversary)
    epoch = {}
    rng = np.random.default_rng(0)
    for corpus in CORPORA:
        profile = cm.CORPUS_PROFILES[corpus]
        n_train, n_val = profile.fold_sizes()
        durations = profile.durations()
        train_s, val_s = rng.choice(durations, n_train, replace=False), rng.choice(durations, n_val, replace=False)
        for (modality, shape, k), cost in calibration.costs.items():
            cap = cm.max_duration_s(modality)
            epoch[(corpus, modality, shape, k)] = cm.epoch_seconds(cost, np.minimum(train_s, cap),
                                                                   np.minimum(val_s, cap), members=k, probe=True)
    rows = cm.calibration_rows(calibration)
    for row, ((modality, shape, k), _) in zip(rows, sorted(calibration.costs.items())):
        for corpus in CORPORA:
            row[f"epoch_s_{corpus}"] = f"{epoch[(corpus, modality, shape, k)]:.4g}"
    columns = [*cm.COLUMNS, *(f"epoch_s_{c}" for c in CORPORA)]
    kept = [] if args.replace else earlier_rows(args.out, {row_key(row) for row in rows})
    out = cm.write_csv(args.out, kept + rows, columns)

    print(f"\nseconds per epoch ({device}; fold 0 of a 5-fold split; probe selection; per pack of K members)")
    print(f"  {'modality':17s} {'shape':24s} {'K':>2s} " + " ".join(f"{c:>12s}" for c in CORPORA)
          + "   per member, IEMOCAP")
    for (modality, shape, k), _ in sorted(calibration.costs.items()):
        values = [epoch[(c, modality, shape, k)] for c in CORPORA]
        print(f"  {modality:17s} {fmt_shape(shape):24s} {k:2d} " + " ".join(f"{v:12.1f}" for v in values)
              + f"   {values[0] / k:8.1f}")

    # the goal: K = 5 (16 on a GPU) packed members of the quick network against as many separate trainings
    measured = {k for (m, s, k) in calibration.costs if m == "acoustic" and s == QUICK_SHAPE}
    goal_k = 16 if gpu else 5
    top = goal_k if goal_k in measured else max(measured)
    if top > 1:
        one, packed = (calibration.costs[("acoustic", QUICK_SHAPE, k)] for k in (1, top))
        demo = cm.CORPUS_PROFILES["demo"].durations(512)
        per_step = top * float(one.train(3.0)) / float(packed.train(3.0))
        per_epoch = {c: top * epoch[(c, "acoustic", QUICK_SHAPE, 1)] / epoch[(c, "acoustic", QUICK_SHAPE, top)]
                     for c in CORPORA}
        demo_epoch = top * cm.epoch_seconds(one, demo, demo[:128]) / cm.epoch_seconds(packed, demo, demo[:128],
                                                                                       members=top)
        goal = SPEED_UP_GOAL if not gpu else 8.0
        print(f"\npacked K={top} vs {top} separate trainings, quick network ({fmt_shape(QUICK_SHAPE)}): "
              f"{per_step:.2f}x per training step at 3 s, {demo_epoch:.2f}x per epoch on demo-sized data "
              f"(512 utterances of ~3 s); per IEMOCAP epoch {per_epoch['iemocap']:.2f}x "
              f"(goal >= {goal}x per epoch: {'met' if demo_epoch >= goal else 'NOT met'})")

    # the whole protocol
    merged = cm.read_calibration(out, device, calibration.threads) or calibration  # with the rows kept from before
    print_protocol(merged, args.jobs, args.workers)
    print(f"\nwrote {out} ({len(rows)} rows measured now, {len(kept)} kept from before) in "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
