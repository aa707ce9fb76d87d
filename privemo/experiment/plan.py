"""A run's plan before anything trains: the corpus, its speaker folds, the folds and conditions to run, the errors a run
can meet before training, and the ``--dry-run`` description.
"""

from __future__ import annotations

import pandas as pd

from privemo._util.validation import UserError
from privemo.experiment.config import ExperimentConfig


def plan_run(config: ExperimentConfig, table: pd.DataFrame | None = None):
    """The corpus table (loaded unless given), its speaker folds, the fold indices to run and the conditions, with the
    user errors a run can meet before training (too few speakers, a bad fold index, lexical without transcripts).
    Shared by ``run_cross_validation`` and ``privemo.experiment.distributed``, so both run the same jobs."""
    from privemo.corpora import load_corpus
    from privemo.data.folds import speaker_folds

    if table is None:
        options = {}
        if config.corpus in ("demo", "demo-podcast"):  # synthesised on first use: a progress bar unless --quiet
            options["progress"] = bool(config.verbose)
            if config.demo_per_speaker is not None:
                options["n_per_speaker"] = config.demo_per_speaker
        table = load_corpus(config.corpus, config.root, **options)
    try:
        folds = speaker_folds(table, n_folds=config.n_folds, seed=config.seed)
    except ValueError as exc:  # too few speakers / sessions for n_folds: a user error, not a bug
        raise UserError(f"{config.corpus}: cannot make {config.n_folds} speaker-independent folds: {exc}") from None
    fold_ids = list(range(len(folds))) if config.folds is None else list(config.folds)
    bad = [k for k in fold_ids if not 0 <= k < len(folds)]
    if bad:
        raise UserError(f"Invalid fold index {bad}: the corpus has folds 0..{len(folds) - 1}.")
    conditions = config.conditions()
    if any("lexical" in c.modalities for c in conditions):
        missing = int(table["transcript"].isna().sum())
        if missing:
            raise UserError(
                f"{config.corpus}: {missing} of {len(table)} utterances have no transcript, so the lexical modality cannot "
                "run on this corpus; pass --modality acoustic.")
    return table, folds, fold_ids, conditions


def describe_plan(config: ExperimentConfig, table: pd.DataFrame | None = None) -> str:
    """What a run would do, without training or writing results (``--dry-run``): corpus size, folds and their test
    speakers, conditions, trials per (condition, fold) and the number of trainings with their epoch budget."""
    from privemo.search.grids import grid_size

    table, folds, fold_ids, conditions = plan_run(config, table)
    grid = config.grid_dict()
    lines = [f"privemo.reproduce --dry-run: {config.corpus}: {len(table)} utterances, {table['speaker'].nunique()} "
             f"speakers, {len(folds)} folds (running {len(fold_ids)})"]
    for k in fold_ids:
        test = table.iloc[folds[k].test]
        genders = test.drop_duplicates("speaker")["gender"].fillna("unknown").value_counts().to_dict()
        lines.append(f"  fold {k}: {len(folds[k].train)} training / {len(folds[k].validation)} validation / "
                     f"{len(folds[k].test)} test utterances; {test['speaker'].nunique()} test speakers "
                     f"({', '.join(f'{n} {g}' for g, n in sorted(genders.items()))})")
    trainings = 0
    lines.append(f"  grid '{config.grid}', removal '{config.removal}', selection by {config.selection}, "
                 f"{config.repeats} repeat(s):")
    for condition in conditions:
        if condition.repeat:
            continue
        lam = condition.adversary is not None and condition.method.lambda_tuned
        trials = grid_size(grid, lam)
        trainings += trials * len(fold_ids) * config.repeats
        lines.append(f"    {condition.key}: {trials} trial(s) per fold")
    epochs = config.resolved_epochs()
    lines.append(f"  {len(conditions)} conditions x {len(fold_ids)} folds = {len(conditions) * len(fold_ids)} "
                 f"(condition, fold) jobs holding {trainings} trainings of at most {epochs} epochs each "
                 f"(early stopping, patience {config.resolved_patience()}): at most {trainings * epochs} epochs")
    from privemo.experiment.cost import estimate_run, plan_from_run

    lines.extend(estimate_run(plan_from_run(config, table, folds, fold_ids, conditions)).describe())
    return "\n".join(lines)
