"""One (condition, outer fold): search the grid with keras-tuner, then record every trial, save the selected network and
measure what it gives away. Each finished (condition, fold) is one JSON record.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from privemo._util.io import writing
from privemo.experiment.config import (RECORD_SCHEMA, Condition, ExperimentConfig, fold_seed, log, run_settings,
                                       work_dir)
from privemo.experiment.evaluate import emotion_figures, privacy_figures, represent, trial_record
from privemo.experiment.inputs import CorpusData, SearchSetup, holdout_rows, model_inputs, targets


def hypermodel_for(condition: Condition, config: ExperimentConfig, meta: dict, seed: int, lexical_dim: int,
                   model_cache: dict | None = None, selection: str | None = None):
    from privemo.search.hypermodel import EmotionPrivacyHyperModel

    return EmotionPrivacyHyperModel(
        config.grid_dict(),
        modalities=condition.modalities,
        adversary=condition.adversary,
        n_speakers=meta.get("n_speakers"),
        grl_placement=condition.placement,
        lexical_dim=lexical_dim,
        epochs=config.resolved_epochs(),
        patience=config.resolved_patience(),
        learning_rate=config.resolved_learning_rate(),
        seed=seed,
        model_cache=model_cache,
        selection=selection or config.selection,
        removal=condition.removal,
    )


def search_setup(data: CorpusData, fold_index: int, fold, condition: Condition, config: ExperimentConfig,
                 lexical: Sequence[np.ndarray] | None = None, model_cache: dict | None = None) -> SearchSetup:
    """Seed, inputs, targets, training dataset, validation data, probe and hypermodel of one (condition, fold)."""
    from privemo._util.seed import set_seed
    from privemo.data.pipeline import make_dataset
    from privemo.search.selection import PrivacyProbe, probe_rows, speaker_probe_support

    seed = fold_seed(config, condition, fold_index)
    set_seed(seed)
    inputs = model_inputs(data, condition, lexical)
    lexical_dim = int(lexical[0].shape[1]) if lexical is not None and len(lexical) else 300
    train_rows, heldout = holdout_rows(data, fold, config)
    y, w, meta = targets(data, condition, fold, train_rows)
    train_ds = make_dataset(inputs, y, train_rows, batch_size=config.resolved_batch_size(), shuffle=True, seed=seed,
                            sample_weights=w)
    # Validation targets: emotion and gender are defined for the (unseen) validation speakers; speaker identity is not.
    # Validation rows of unknown gender cannot score gender: the gender condition validates without them.
    val_rows = fold.validation
    if condition.adversary == "gender":
        val_rows = val_rows[data.gender[val_rows] >= 0]
    val_targets = {"emotion": y["emotion"][val_rows]}
    if condition.adversary == "gender":
        val_targets["gender"] = data.gender[val_rows]
    val_inputs = {k: [v[i] for i in val_rows] for k, v in inputs.items()}
    probe, selection, fallback = None, config.selection, None
    if condition.adversary == "speaker" and config.selection == "probe":
        fallback = speaker_probe_support(data.speakers[val_rows], data.gender[val_rows])
        if fallback is not None:
            selection, fallback = "emotion", f"validation speakers cannot support the linkability probe: {fallback}"
    if condition.adversary is not None and selection == "probe":
        if condition.adversary == "gender":
            labels, rows = data.gender, train_rows[data.gender[train_rows] >= 0]
        else:
            labels, rows = data.speakers, train_rows[data.speakers[train_rows] != ""]
        rows = probe_rows(labels, rows, seed)
        probe = PrivacyProbe(condition.adversary, {k: [v[i] for i in rows] for k, v in inputs.items()}, labels[rows],
                             labels[val_rows], seed=seed)
    hypermodel = hypermodel_for(condition, config, meta, seed, lexical_dim, model_cache, selection)
    callbacks = ()
    if config.tensorboard:  # privemo.search.tuning.GridSearch writes each trial's logs to <log_dir>/trial_<id>
        import keras

        log_dir = Path(config.tensorboard) / condition.key / f"fold{fold_index}"
        callbacks = (keras.callbacks.TensorBoard(log_dir=str(log_dir)),)
    return SearchSetup(hypermodel, train_ds, val_inputs, val_targets, seed, inputs, y, probe, train_rows, heldout,
                       callbacks, selection, fallback)


def run_fold(
    data: CorpusData,
    fold_index: int,
    fold,
    condition: Condition,
    config: ExperimentConfig,
    lexical: Sequence[np.ndarray] | None = None,
    model_cache: dict | None = None,
    report: Callable[[str], None] | None = None,
) -> dict:
    """Tune, train, represent and attack one (condition, outer fold); returns the JSON-ready result record.

    Every trial of the search (the grid's configurations, the four lambda values included) is listed in the record
    with its validation scores and, for the lambda trade-off, the test emotion UAR and a fresh probe's test UAR of its
    own network; the validation-selected trial is saved and attacked with the full attack suite."""
    from privemo.search.tuning import trial_history

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    setup = search_setup(data, fold_index, fold, condition, config, lexical, model_cache)
    tuner = _search(setup, fold_index, condition, config, report)
    timings["tune_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    best_trial, degenerate, n_degenerate = _select(tuner, setup)
    trials, selected = _represent_trials(tuner, best_trial, setup, data, fold_index, fold, condition, config)
    timings["represent_s"] = time.perf_counter() - t1
    chosen = next(t for t in trials if t["trial_id"] == best_trial.trial_id)
    speakers = lambda rows: sorted(set(data.speakers[rows]) - {""})  # noqa: E731
    record: dict = {
        "schema": RECORD_SCHEMA,
        "corpus": data.corpus,
        "fold": fold_index,
        "repeat": condition.repeat,
        "modalities": list(condition.modalities),
        "modality": condition.modality,
        "task": condition.task,
        "adversary": condition.adversary,
        "placement": condition.placement,
        "grl_lambda": best_trial.hyperparameters.values.get("grl_lambda"),
        "condition": condition.key,
        "seed": setup.seed, "init_seed": setup.seed,
        "grid": config.grid,
        "selection": setup.selection, "selection_fallback": setup.selection_fallback,
        "degenerate": degenerate, "n_degenerate_trials": n_degenerate,
        "removal": condition.removal if condition.adversary else None,
        "test_speakers": speakers(fold.test),
        "validation_speakers": speakers(fold.validation),
        "best_hp": dict(best_trial.hyperparameters.values),
        "val": {name: float(best_trial.metrics.get_best_value(name)) for name in best_trial.metrics.metrics},
        "best_epoch": chosen["best_epoch"], "epochs_run": chosen["epochs_run"],
        "max_epochs": config.resolved_epochs(),
        "history": trial_history(tuner, best_trial.trial_id),
        "trials": trials,
        "test": emotion_figures(selected, data, fold, setup),
        "n": {"train": int(len(setup.train_rows)), "heldout": int(len(setup.heldout_rows)),
              "validation": int(len(fold.validation)), "test": int(len(fold.test))},
        "settings": run_settings(config),
    }
    t2 = time.perf_counter()
    record.update(privacy_figures(selected, data, fold, setup, config))
    timings["attack_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    record["timings"] = timings
    return record


def _select(tuner, setup: SearchSetup):
    """The selected trial (``privemo.search.selection.select_trial``: the best objective among the trials that learnt
    something), whether it is degenerate, and how many trials were."""
    from privemo.search.selection import select_trial

    ranked = tuner.oracle.get_best_trials(len(tuner.oracle.trials))
    emotion = [t.metrics.get_best_value("val_emotion_uar") if t.metrics.exists("val_emotion_uar") else None
               for t in ranked]
    y = setup.targets["emotion"][setup.train_rows]
    return select_trial(ranked, emotion, 1.0 / len(np.unique(y)))


def _search(setup: SearchSetup, fold_index: int, condition: Condition, config: ExperimentConfig,
            report: Callable[[str], None] | None):
    """The keras-tuner search of one (condition, fold), in its own resumable project; returns the tuner."""
    from privemo.search.factory import make_tuner

    work = work_dir(config) / "tuning" / condition.key
    tuner = make_tuner(setup.hypermodel, str(work), f"fold{fold_index}", seed=setup.seed, overwrite=not config.resume,
                       pack=config.pack)
    tuner.report_label = f"  fold {fold_index}: {condition.key}: "
    tuner.report = report
    if config.verbose:  # a line per finished trial in long searches (the paper grid)
        tuner.trial_report = lambda line: log(line, config)
    tuner.search(setup.train_ds, setup.val_inputs, **setup.search_kwargs())
    return tuner


def _represent_trials(tuner, best_trial, setup: SearchSetup, data: CorpusData, fold_index: int, fold,
                      condition: Condition, config: ExperimentConfig):
    """Every trial's record (its own network's test scores) and the selected trial's outputs on all rows; the
    selected network is saved for ``privemo.cli.export``."""
    everything = np.concatenate([fold.train, fold.validation, fold.test])
    records, selected = [], None
    for trial in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id):
        model = tuner.load_model(trial)
        out = represent(model, setup.inputs, everything)
        records.append(trial_record(trial, out, data, fold, setup, condition))
        if trial.trial_id == best_trial.trial_id:
            selected = out
            if config.save_models:
                save_model(model, Path(config.out_dir) / "models" / condition.key / f"fold{fold_index}.keras")
    return records, selected


def save_model(model, saved: Path) -> None:
    """For privemo.cli.export; written atomically (a temporary name in the same folder, then renamed). A save that fails
    or is interrupted leaves no partial file; a full disk or an unwritable folder raises
    ``privemo._util.io.WriteError``."""
    partial = saved.with_name(f".{saved.stem}.{os.getpid()}.partial.keras")
    try:
        with writing(saved):
            saved.parent.mkdir(parents=True, exist_ok=True)
            model.save(partial)
            os.replace(partial, saved)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
