"""What a run costs before it starts: the cost model of ``--dry-run``'s estimate and of benchmarks/protocol_cost.py.

Training dominates a run (95 % of the committed demo run's job time), so the model counts training steps:

- **Step cost.** One training step of a network (``pack`` members packed, ``privemo.search.packing``) on a batch of 32
  utterances zero-padded to ``D`` seconds costs ``train_fixed_s + train_per_s * D``; a validation forward pass over a
  batch of 64 costs ``predict_fixed_s + predict_per_s * D``. The four coefficients are measured on this machine per
  (modality set, network shape, pack) by ``measure_step_cost`` (two padded lengths, a few steps each), with the time of
  a fresh trace (``trace_s``) and of one fit of the per-epoch privacy probe (``probe_fit_s``). Lexical inputs are
  measured at ``WORDS_PER_S`` tokens per second of speech, so every modality set is priced by padded duration.
- **Epoch.** The training rows are cut into batches as ``privemo.data.pipeline.batch_order`` cuts them (length buckets)
  and each batch is priced by its longest utterance; validation predicts every validation utterance once per epoch
  (and, with the probe, its training utterances, plus one probe fit per member).
- **Epochs per trial.** ``best epoch + 1 + patience`` (early stopping), capped at the epoch budget. The best epoch is
  ``EXPECTED_BEST_EPOCHS[grid]`` (the mean over the trials of measured runs of that grid). A pack trains until its last member
  stops: ``PACK_TAIL_EPOCHS`` more epochs (for 4 members) at the whole pack's cost (stopped members still train).
- **Run.** Every (condition, fold) job trains every grid configuration (the lambda values of one shape packed when
  ``pack`` > 1), represents the utterances with every trial and attacks the selected one (``ATTACK_S_PER_UTTERANCE``);
  each worker traces each network once (speaker adversaries once per fold: their head depends on the fold's
  speakers). Jobs run in ``jobs`` worker processes of one thread each (the measured rate; the committed demo run
  scaled 1.94x on 2 cores), or over distributed workers.

Calibration: ``results/protocol_cost.csv`` (``benchmarks/protocol_cost.py``; rows for this device and thread count),
else the user's cached calibration (``$PRIVEMO_CACHE/cost/``), else a built-in one that times the plan's own networks
for at most ``CALIBRATION_BUDGET_S`` seconds and is cached. A shape that was not measured is priced by a least-squares
fit of the one-member coefficients on the measured shapes' GRU steps and multiply-accumulates per second of speech; a
pack size that was not measured for a shape, by the packing factor (packed / one-member step cost) measured on others.
"""


from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from privemo._util.processes import available_cpus
from privemo._util.validation import UserError, check_int
from privemo.experiment.cost_calibration import (  # noqa: F401  (measurement names are part of the model's API)
    ATTACK_S_PER_UTTERANCE,
    CALIBRATION_BUDGET_S,
    CHECKPOINT_S,
    COLUMNS,
    CORPUS_PROFILES,
    Calibration,
    DEFAULT_CALIBRATION,
    EXPECTED_BEST_EPOCH,
    EXPECTED_BEST_EPOCHS,
    FRAMES_PER_S,
    MODALITY_SETS,
    PACK_TAIL_EPOCHS,
    PREDICT_BATCH,
    PROBE_ROWS,
    PROTOCOL_MODALITIES,
    StepCost,
    TRAIN_BATCH,
    WORDS_PER_S,
    calibration_rows,
    device_name,
    grid_shapes,
    measure_step_cost,
    read_calibration,
    shape_features,
    write_csv,
)
from privemo.nn.device import start_tensorflow


# -------------------------------------------------------------------------------------------------------- the estimate
@dataclass(frozen=True)
class ConditionPlan:
    """One condition of a run, as the cost model needs it."""

    modality: str  # key of MODALITY_SETS
    adversary: str | None
    lambdas: int = 1  # lambda values tried per network shape (1 without a GRL strength)
    probe: bool = False  # the per-epoch privacy probe runs (probe selection with an adversary)


@dataclass(frozen=True)
class RunPlan:
    """What a run will train, for ``estimate_run``.

    Args:
        corpus: the corpus name (its ``CORPUS_PROFILES`` entry prices utterance lengths when ``durations_s`` is None).
        n_utterances: rows of the corpus table.
        folds: (training rows, validation rows) of every outer fold that runs (training: after the membership hold-out).
        conditions: one ``ConditionPlan`` per condition (repeats included).
        shapes: the grid's network shapes (``grid_shapes``).
        epochs, patience: the epoch budget and early-stopping patience per trial.
        jobs: worker processes (one TensorFlow thread each).
        pack: members per compiled step (``--pack``; lambda values of one shape are packed).
        attack_grid: MLP attacker configurations tried per job.
        durations_s: optional utterance durations (seconds) of the corpus; sampled from the profile otherwise.
        best_epoch: the mean best epoch (0-based) a trial is expected to reach (``EXPECTED_BEST_EPOCHS`` by grid).
    """

    corpus: str
    n_utterances: int
    folds: tuple
    conditions: tuple
    shapes: tuple
    epochs: int
    patience: int
    jobs: int = 1
    pack: int = 1
    attack_grid: int = 1
    durations_s: Any = None
    best_epoch: float = EXPECTED_BEST_EPOCH


@dataclass(frozen=True)
class RunEstimate:
    """``estimate_run``'s answer.

    Attributes:
        wall_s: estimated wall time with the plan's ``jobs`` workers on this machine.
        work_s: the same work in one worker (one thread).
        trainings: trials trained; epochs: their expected epochs in all; steps: training steps in all.
        per_condition_s: {condition label: one-worker seconds over all folds}.
        basis: where the step costs came from (file and device, or the built-in calibration).
        device: the device the estimate is for.
    """

    wall_s: float
    work_s: float
    trainings: int
    epochs: float
    steps: float
    per_condition_s: dict
    basis: str
    device: str
    jobs: int

    def distributed_s(self, workers: int) -> float:
        """Wall time with ``workers`` distributed workers of this machine's speed (trials spread over them)."""
        return self.work_s / check_int("workers", workers, 1)

    def describe(self) -> list[str]:
        """Lines for ``--dry-run``."""
        lines = [f"  estimated wall time on this machine: {format_duration(self.wall_s)} with {self.jobs} worker(s) "
                 f"({format_duration(self.work_s)} in one worker; {self.trainings} trainings, about "
                 f"{self.epochs:,.0f} epochs)",
                 f"  cost basis: {self.basis}"]
        return lines


def format_duration(seconds: float) -> str:
    """``seconds`` as "42 s", "12.5 min", "3.2 h" or "4.1 days"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def expected_best_epoch(grid: str) -> float:
    """The mean best epoch a trial of ``grid`` reaches (``EXPECTED_BEST_EPOCHS``; the quick grid's for other grids)."""
    return EXPECTED_BEST_EPOCHS.get(grid, EXPECTED_BEST_EPOCH)


def expected_epochs(epochs: int, patience: int, best_epoch: float = EXPECTED_BEST_EPOCH) -> float:
    """Epochs one early-stopped trial runs: best epoch + 1 + patience, capped at the budget."""
    return float(min(epochs, best_epoch + 1 + patience))


def pack_tail_epochs(members: int, epochs: int, patience: int, best_epoch: float = EXPECTED_BEST_EPOCH) -> float:
    """Epochs a pack of ``members`` runs after its mean member has stopped (``PACK_TAIL_EPOCHS`` measured for 4)."""
    tail = PACK_TAIL_EPOCHS * (members - 1) / 3.0
    return float(max(0.0, min(tail, epochs - expected_epochs(epochs, patience, best_epoch))))


def max_duration_s(modality: str) -> float:
    """The longest padded duration a batch of ``modality`` can have: acoustic inputs are capped at MAX_FRAMES frames,
    word sequences at MAX_TOKENS tokens (``privemo.data.pipeline.DEFAULT_MAX_LENGTHS``)."""
    from privemo.data.pipeline import DEFAULT_MAX_LENGTHS

    if "acoustic" in MODALITY_SETS[modality]:
        return DEFAULT_MAX_LENGTHS["acoustic"] / FRAMES_PER_S
    return DEFAULT_MAX_LENGTHS["lexical"] / WORDS_PER_S


def padded_batches(durations_s, batch_size: int, *, train: bool, seed: int = 0) -> tuple[int, float]:
    """(number of batches, sum of their padded durations in seconds) of utterances of ``durations_s``: training batches
    as ``privemo.data.pipeline.batch_order`` cuts them (shuffled, length-bucketed), or prediction batches (sorted)."""
    from privemo.data.pipeline import batch_order

    durations = np.asarray(durations_s, np.float64)
    if not len(durations):
        return 0, 0.0
    batches = batch_order(durations, batch_size, shuffle=train, seed=seed)
    return len(batches), float(sum(durations[b].max() for b in batches))


def epoch_seconds(cost: StepCost, train_s, val_s, *, members: int = 1, probe: bool = False, seed: int = 0) -> float:
    """Seconds of one epoch: training batches of the utterances of durations ``train_s`` (bucketed as the pipeline
    buckets them, each priced by its longest), the validation forward pass over ``val_s`` (length-sorted batches of 64)
    and, with ``probe``, the probe's training utterances and one probe fit per member."""
    train_s = np.asarray(train_s, np.float64)
    stats = [padded_batches(train_s, TRAIN_BATCH, train=True, seed=seed),
             padded_batches(val_s, PREDICT_BATCH, train=False),
             padded_batches(train_s[:PROBE_ROWS] if probe else [], PREDICT_BATCH, train=False)]
    return _epoch(cost, *stats, probe_fits=members if probe else 0)


def _epoch(cost: StepCost, train: tuple[int, float], val: tuple[int, float], probe: tuple[int, float],
           probe_fits: int) -> float:
    return (train[0] * cost.train_fixed_s + train[1] * cost.train_per_s
            + (val[0] + probe[0]) * cost.predict_fixed_s + (val[1] + probe[1]) * cost.predict_per_s
            + probe_fits * cost.probe_fit_s)


def estimate_run(plan: RunPlan, *, calibration: Calibration | str | os.PathLike | None = None,
                 measure: bool = True) -> RunEstimate:
    """Estimated wall time of ``plan`` on this machine (see the module docstring).

    Args:
        plan: what the run trains (``plan_from_run`` builds it from a reproduce configuration, ``protocol_plan`` for
            the paper's protocol on a corpus profile).
        calibration: a ``Calibration`` or the path of a calibration CSV; None: ``find_calibration()``.
        measure: with no calibration for this device, time the plan's networks here (at most
            ``CALIBRATION_BUDGET_S`` seconds; cached for the next run); False raises instead.

    Returns:
        A ``RunEstimate``. Doubling the trials, the folds or the epochs doubles its training time.
    """
    calibration = _resolve_calibration(calibration, plan, measure)
    stats = _batch_stats(plan)
    none = (0, 0.0)
    mean_epochs = expected_epochs(plan.epochs, plan.patience, plan.best_epoch)
    pack = max(1, int(plan.pack))
    work = epochs_total = steps_total = 0.0
    trainings = 0
    per_condition: dict[str, float] = {}
    workers = max(1, int(plan.jobs))
    for condition in plan.conditions:
        label = f"{condition.modality}/{condition.adversary or 'baseline'}"
        fold_stats, everything = stats[max_duration_s(condition.modality)]
        seconds = 0.0
        chunks = [min(pack, condition.lambdas - start) for start in range(0, condition.lambdas, pack)]
        for shape in plan.shapes:
            one = calibration.cost(condition.modality, shape, 1)
            costs = {k: calibration.cost(condition.modality, shape, k) for k in set(chunks)}
            for train, val, probe in fold_stats:
                probe = probe if condition.probe else none
                single = _epoch(one, train, val, probe, 1 if condition.probe else 0)
                for k in chunks:
                    if k == 1:
                        seconds += mean_epochs * single
                        steps_total += mean_epochs * train[0]
                    else:
                        tail = pack_tail_epochs(k, plan.epochs, plan.patience, plan.best_epoch)
                        seconds += mean_epochs * _epoch(costs[k], train, val, probe, k if condition.probe else 0)
                        seconds += tail * _epoch(costs[k], train, val, probe, 0)  # the stopped still train
                        steps_total += (mean_epochs + tail) * train[0]
                    epochs_total += k * mean_epochs
                # every trial: its checkpoint, then every utterance represented for the trial records
                seconds += condition.lambdas * (CHECKPOINT_S + _epoch(one, none, everything, none, 0))
                trainings += condition.lambdas
            # each worker traces a network once (a speaker head depends on the fold's speakers: once per fold)
            traces = len(plan.folds) if condition.adversary == "speaker" else min(workers, len(plan.folds))
            seconds += traces * costs[max(chunks)].trace_s
        seconds += len(plan.folds) * ATTACK_S_PER_UTTERANCE * plan.n_utterances * max(1, plan.attack_grid)
        per_condition[label] = per_condition.get(label, 0.0) + seconds
        work += seconds
    jobs = len(plan.conditions) * len(plan.folds)
    parallel = max(1, min(workers, jobs))
    return RunEstimate(wall_s=work / parallel, work_s=work, trainings=trainings, epochs=epochs_total,
                       steps=steps_total, per_condition_s=per_condition,
                       basis=f"{calibration.source} ({calibration.device}, {calibration.threads} thread(s))",
                       device=calibration.device, jobs=parallel)


def _resolve_calibration(calibration, plan: RunPlan, measure: bool) -> Calibration:
    """``estimate_run``'s calibration: the one given (or read from the path given), else the one found for this device,
    else (``measure``) a short one measured here."""
    if isinstance(calibration, (str, os.PathLike)):
        found = read_calibration(calibration)
        if found is None:
            raise UserError(f"{calibration}: no calibration row for this device ({device_name()}); run "
                            "benchmarks/protocol_cost.py here, or leave the calibration out")
        return found
    if calibration is None:
        calibration = find_calibration()
    if calibration is None:
        if not measure:
            raise UserError(f"no cost calibration for this device ({device_name()}): run benchmarks/protocol_cost.py")
        calibration = calibrate(plan)
    return calibration


def _batch_stats(plan: RunPlan) -> dict:
    """Per sequence cap (seconds): the padded batches of every fold (training, validation, probe rows) and of the whole
    corpus, from utterance durations sampled for the plan's fold sizes."""
    if plan.durations_s is not None:
        durations = np.asarray(plan.durations_s, np.float64)
    else:
        durations = CORPUS_PROFILES.get(plan.corpus, CORPUS_PROFILES["iemocap"]).durations(plan.n_utterances)
    rng = np.random.default_rng(0)
    samples = []
    for n_train, n_val in plan.folds:
        samples.append((rng.choice(durations, size=int(n_train), replace=len(durations) < n_train),
                        rng.choice(durations, size=int(n_val), replace=len(durations) < n_val)))
    stats = {}
    for cap in {max_duration_s(c.modality) for c in plan.conditions}:
        folds = []
        for train_s, val_s in samples:
            train_s, val_s = np.minimum(train_s, cap), np.minimum(val_s, cap)
            folds.append((padded_batches(train_s, TRAIN_BATCH, train=True),
                          padded_batches(val_s, PREDICT_BATCH, train=False),
                          padded_batches(train_s[:PROBE_ROWS], PREDICT_BATCH, train=False)))
        stats[cap] = (folds, padded_batches(np.minimum(durations[: plan.n_utterances], cap), PREDICT_BATCH,
                                            train=False))
    return stats


def user_calibration_path(device: str | None = None) -> Path:
    """Where the built-in calibration of this device is cached: ``$PRIVEMO_CACHE/cost/<device>.csv``."""
    from privemo.features.cache import CACHE_ENV, safe_name

    root = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "privemo")
    return Path(root).expanduser() / "cost" / f"{safe_name(device or device_name())}.csv"


def find_calibration(paths: Sequence[str | os.PathLike] | None = None) -> Calibration | None:
    """The first calibration with rows for this device among ``paths`` (default: ``results/protocol_cost.csv`` of
    this checkout, then the user's cached calibration), or None."""
    device = device_name()
    candidates = [DEFAULT_CALIBRATION, user_calibration_path(device)] if paths is None else [Path(p) for p in paths]
    for path in candidates:
        if Path(path).is_file():
            found = read_calibration(path, device)
            if found is not None:
                return found
    return None


def calibrate(plan: RunPlan, *, budget_s: float = CALIBRATION_BUDGET_S, cache: bool = True) -> Calibration:
    """A short calibration of this machine for ``plan``: its middle network shape, then its smallest and largest, for
    each modality set it uses (packed too when ``plan.pack`` > 1), while the next measurement would end within
    ``budget_s`` seconds (at least one: about 8 s on 2 CPU cores; what is not measured is priced from it); written to
    ``user_calibration_path()`` when ``cache``."""
    t0 = time.perf_counter()
    start_tensorflow(1)
    device = device_name()
    calibration = Calibration(device, 1, source="built-in calibration")
    shapes = sorted(plan.shapes, key=lambda s: shape_features(s, "acoustic")[2])
    order = [shapes[len(shapes) // 2], shapes[0], shapes[-1]]
    modalities = list(dict.fromkeys(c.modality for c in plan.conditions)) or ["acoustic"]
    packs = [1] + ([min(plan.pack, 4)] if plan.pack > 1 else [])
    wanted = [(m, s, p) for s in dict.fromkeys(order) for p in packs for m in modalities]
    last = 0.0
    for modality, shape, pack in wanted:
        if calibration.costs and time.perf_counter() - t0 + last > budget_s:
            break  # the next measurement would end past the budget
        started = time.perf_counter()
        calibration.costs[(modality, shape, pack)] = measure_step_cost(shape, modality, pack=pack, steps=6)
        last = time.perf_counter() - started
    calibration.source = f"built-in calibration ({len(calibration.costs)} measurement(s), " \
                         f"{time.perf_counter() - t0:.0f} s)"
    if cache:
        path = user_calibration_path(device)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(path, calibration_rows(calibration), COLUMNS)
    return calibration


def plan_from_run(config, table, folds, fold_ids, conditions) -> RunPlan:
    """The ``RunPlan`` of a reproduce run (``privemo.experiment.plan.plan_run``'s table, folds, fold ids and
    conditions, and the run's ``ExperimentConfig``)."""
    from privemo.privacy.grids import ATTACKER_GRIDS
    from privemo.removal.methods import removal_method

    grid = config.grid_dict()
    n_lambdas = len(grid.get("grl_lambda", (1.0,)))
    keep = 1.0 - float(config.mi_holdout or 0.0)
    plan_folds = tuple((int(round(len(folds[k].train) * keep)), len(folds[k].validation)) for k in fold_ids)
    plan_conditions = []
    for condition in conditions:
        lam = condition.adversary is not None and removal_method(condition.removal).lambda_tuned
        plan_conditions.append(ConditionPlan(condition.modality, condition.adversary, n_lambdas if lam else 1,
                                             condition.adversary is not None and config.selection == "probe"))
    jobs = config.n_jobs
    if jobs is None:
        jobs = available_cpus()
    attackers = ATTACKER_GRIDS.get(config.grid, {"dense_layers": (1,)})
    return RunPlan(
        corpus=str(table.attrs.get("corpus", config.corpus)), n_utterances=len(table), folds=plan_folds,
        conditions=tuple(plan_conditions), shapes=tuple(grid_shapes(grid)), epochs=config.resolved_epochs(),
        patience=config.resolved_patience(), jobs=int(jobs), pack=int(config.pack or 1),
        attack_grid=int(np.prod([len(v) for v in attackers.values()])),
        best_epoch=expected_best_epoch(config.grid))


def grid_budget(grid: str) -> tuple[int, int]:
    """(epochs, patience) of a reproduce grid ("paper", "quick")."""
    from privemo.experiment.config import EPOCHS, PATIENCE

    return EPOCHS[grid], PATIENCE[grid]


def protocol_plan(corpus: str, grid: str = "paper", *, jobs: int = 1, pack: int = 1, n_folds: int = 5,
                  tasks: int = 2, adversaries: Sequence[str | None] = (None, "gender", "speaker"),
                  modalities: Sequence[str] | None = None, selection: str = "probe") -> RunPlan:
    """The ``RunPlan`` of the paper's whole protocol on a corpus profile (``CORPUS_PROFILES``): its Table 1 rows
    (``PROTOCOL_MODALITIES``) x ``tasks`` x ``adversaries`` x ``n_folds`` folds, every configuration of ``grid``."""
    from privemo.privacy.grids import ATTACKER_GRIDS
    from privemo.search.grids import GRIDS

    profile = CORPUS_PROFILES[corpus]
    grid_values = GRIDS[grid]
    epochs, patience = grid_budget(grid)
    modalities = PROTOCOL_MODALITIES.get(corpus, ("acoustic",)) if modalities is None else tuple(modalities)
    lambdas = len(grid_values.get("grl_lambda", (1.0,)))
    conditions = tuple(ConditionPlan(m, a, lambdas if a else 1, bool(a) and selection == "probe")
                       for m in modalities for _ in range(tasks) for a in adversaries)
    attackers = ATTACKER_GRIDS[grid]
    return RunPlan(corpus=corpus, n_utterances=profile.utterances, folds=(profile.fold_sizes(n_folds),) * n_folds,
                   conditions=conditions, shapes=tuple(grid_shapes(grid_values)), epochs=epochs, patience=patience,
                   jobs=jobs, pack=pack, attack_grid=int(np.prod([len(v) for v in attackers.values()])),
                   best_epoch=expected_best_epoch(grid),
                   durations_s=profile.durations())
