"""The experiment: one outer fold end to end, and five-fold speaker-independent cross-validation over conditions.

For each fold and condition (modalities x task x adversary x placement): tune on train/validation with keras-tuner
(one resumable project per fold and condition), take the selected model, extract the frozen representation h, and attack
it with fresh attackers (gender; speaker identity; membership identification from the model's outputs). Each finished
(condition, fold) is written atomically as JSON, so an interrupted run resumes without redoing it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from privemo._io import atomic_write_json, read_json
from privemo._progress import Progress
from privemo.search.grids import GRIDS, grid_size

MODALITY_SETS: dict[str, tuple[str, ...]] = {
    "acoustic": ("acoustic",),
    "lexical": ("lexical",),
    "acoustic+lexical": ("acoustic", "lexical"),
}
GENDER_IDS = {"F": 0, "M": 1}
DEFAULT_MODALITIES: tuple[str, ...] = ("acoustic", "lexical")

# assumption (README assumptions table): training budget of the tuned networks. Baseline and adversarial trials get
# the same budget. The quick grid's settings were chosen so that runs converge on the demo corpus (best epoch well
# inside the allowed range), not to favour either answer.
EPOCHS = {"paper": 40, "quick": 40}
PATIENCE = {"paper": 10, "quick": 6}
LEARNING_RATE = {"paper": 1e-3, "quick": 1e-3}
# Epoch cap of the MLP attackers (None: privemo.privacy.attacks.ATTACKER_MAX_EPOCHS); the quick run caps them lower.
ATTACK_EPOCHS: dict[str, int | None] = {"paper": None, "quick": 40}
BATCH_SIZE = {"paper": 32, "quick": 32}
# assumption (README assumptions table): share of every training speaker's utterances held out of training, the
# same-speaker non-members of the membership-inference attack (the same rows for every condition of a fold).
MI_HOLDOUT = 0.2
MIN_MI_ROWS = 4  # the membership attack fits on one half of the non-members and tests on the other


@dataclass(frozen=True)
class Condition:
    """What one cross-validated model is: which modalities, which emotion task, which adversary and where it sits."""

    modality: str  # key of MODALITY_SETS
    task: str  # "activation" | "valence"
    adversary: str | None  # None | "gender" | "speaker"
    placement: str = "fused"  # "fused" | "per_modality"
    repeat: int = 0  # repetition with a new seed (``--repeats``); paired across adversaries within one repeat
    removal: str = "grl"  # the adversary's attribute-removal method (privemo.removal.REMOVALS; "grl": the paper's)

    @property
    def modalities(self) -> tuple[str, ...]:
        return MODALITY_SETS[self.modality]

    @property
    def key(self) -> str:
        parts = [self.modality, self.task, self.adversary or "baseline"]
        if self.adversary:
            parts.append(self.placement)
            if self.removal != "grl":  # the paper's GRL keeps the paper's keys
                parts.append(self.removal)
        if self.repeat:
            parts.append(f"r{self.repeat}")
        return "-".join(parts)


@dataclass
class ExperimentConfig:
    """Everything that defines a run; recorded verbatim in the run's manifest."""

    corpus: str = "demo"
    root: str | None = None
    # The default run leaves out the acoustic+lexical row to stay within 20 minutes on 2 CPU cores (README "Cost");
    # pass all three for the whole of Table 1.
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    tasks: tuple[str, ...] = ("activation", "valence")
    adversaries: tuple[str | None, ...] = (None, "gender", "speaker")
    placements: tuple[str, ...] = ("fused",)
    grid: str = "quick"
    n_folds: int = 5
    seed: int = 0
    epochs: int | None = None  # None: EPOCHS[grid]
    patience: int | None = None  # None: PATIENCE[grid]
    learning_rate: float | None = None  # None: LEARNING_RATE[grid]
    batch_size: int | None = None  # None: BATCH_SIZE[grid]
    embeddings: str | None = None
    out_dir: str = "results/demo"
    work_dir: str | None = None  # tuner projects; None: <out_dir>/work
    resume: bool = False
    repeats: int = 1  # repetitions of every (condition, fold) with new seeds; paired tests run over folds x repeats
    selection: str = "probe"  # "probe" (fresh probe on h) | "head" (the adversary head, two-sided); privemo.search.selection
    mi_holdout: float = MI_HOLDOUT
    folds: tuple[int, ...] | None = None  # run only these outer folds (None: all)
    n_jobs: int | None = None  # worker processes (None: one per core)
    attack_epochs: int | None = None  # None: ATTACK_EPOCHS[grid]
    save_models: bool = True  # keep each fold's selected network as <out_dir>/models/<condition.key>/fold<k>.keras
    demo_per_speaker: int | None = None  # demo corpus only: utterances per speaker (None: the demo's default, 640 in all)
    verbose: int = 1
    removal: str = "grl"  # attribute-removal method of the adversarial conditions (privemo.removal.REMOVALS)
    tensorboard: str | None = None  # TensorBoard logs of every trial under <tensorboard>/<condition.key>/fold<k>/trial_<id>

    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else EPOCHS.get(self.grid, EPOCHS["paper"])

    def resolved_batch_size(self) -> int:
        return self.batch_size if self.batch_size is not None else BATCH_SIZE.get(self.grid, BATCH_SIZE["paper"])

    def resolved_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else LEARNING_RATE.get(self.grid, LEARNING_RATE["paper"])

    def resolved_patience(self) -> int:
        return self.patience if self.patience is not None else PATIENCE.get(self.grid, PATIENCE["paper"])

    def grid_dict(self) -> dict[str, tuple]:
        if self.grid not in GRIDS:
            raise ValueError(f"Invalid value received for argument `grid`. Expected one of {sorted(GRIDS)}. Received: grid={self.grid!r}")
        return GRIDS[self.grid]

    def conditions(self) -> list[Condition]:
        """The table conditions (every repeat); per_modality placement only for multimodal rows (it needs two
        branches)."""
        out = []
        for repeat in range(self.repeats):
            for modality in self.modalities:
                if modality not in MODALITY_SETS:
                    raise ValueError(f"Invalid modality {modality!r}. Expected one of {sorted(MODALITY_SETS)}.")
                for task in self.tasks:
                    for adversary in self.adversaries:
                        if adversary is None:
                            out.append(Condition(modality, task, None, repeat=repeat))
                            continue
                        for placement in self.placements:
                            if placement == "per_modality" and len(MODALITY_SETS[modality]) < 2:
                                continue
                            out.append(Condition(modality, task, adversary, placement, repeat, self.removal))
        return out

    def attacker_grid(self) -> dict[str, tuple]:
        from privemo.search.grids import ATTACKER_GRIDS

        return ATTACKER_GRIDS[self.grid]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_settings(config: ExperimentConfig) -> dict:
    """The settings that decide every (condition, fold) result of a run: stored in each fold record and in
    ``<work>/settings.json``, and compared on ``--resume``, so a resumed run never mixes results or tuner trials made under
    other settings. (Which conditions and folds run, worker count and output places do not change a job's result.)"""
    embeddings = None
    if config.embeddings:
        path = Path(config.embeddings)
        embeddings = {"path": str(path.resolve()), "bytes": path.stat().st_size if path.is_file() else None}
    return {
        "corpus": config.corpus,
        "root": str(Path(config.root).resolve()) if config.root else None,
        "demo_per_speaker": config.demo_per_speaker,
        "n_folds": config.n_folds,
        "seed": config.seed,
        "grid": {k: list(v) for k, v in config.grid_dict().items()},
        "attacker_grid": {k: list(v) for k, v in config.attacker_grid().items()},
        "epochs": config.resolved_epochs(),
        "patience": config.resolved_patience(),
        "learning_rate": config.resolved_learning_rate(),
        "batch_size": config.resolved_batch_size(),
        "attack_epochs": config.attack_epochs if config.attack_epochs is not None else ATTACK_EPOCHS.get(config.grid),
        "embeddings": embeddings,
        "selection": config.selection,
        "mi_holdout": config.mi_holdout,
        # only when not the paper's GRL, so the settings of runs made before the option still match
        **({"removal": config.removal} if config.removal != "grl" else {}),
    }


def _settings_differ(found: dict | None, expected: dict) -> str:
    """'' when equal, else a readable list of what differs."""
    if found is None:
        return "it records no settings (made by an older privemo)"
    keys = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
    return "; ".join(f"{k}: {found.get(k)!r} there, {expected.get(k)!r} now" for k in keys)


def log(message: str, config: ExperimentConfig | None = None) -> None:
    """Progress to stderr (so stdout stays the summary)."""
    if config is None or config.verbose:
        print(message, file=sys.stderr, flush=True)


@dataclass
class CorpusData:
    """The corpus table plus what every fold shares: normalised acoustic features, labels, gender ids."""

    table: pd.DataFrame
    corpus: str
    acoustic: Sequence[np.ndarray] | None
    emotion: dict[str, np.ndarray]  # task -> bins
    gender: np.ndarray  # 0/1, -1 unknown
    speakers: np.ndarray  # speaker string per row (None -> "")
    timings: dict[str, float] = field(default_factory=dict)


def prepare_corpus(table: pd.DataFrame, config: ExperimentConfig) -> CorpusData:
    """Features and labels computed once per corpus (acoustic features come from the on-disk cache)."""
    from privemo.data.labels import bin_labels

    corpus = table.attrs.get("corpus", config.corpus)
    timings: dict[str, float] = {}
    acoustic = None
    if any("acoustic" in MODALITY_SETS[m] for m in config.modalities):
        from privemo.features.acoustic import extract_acoustic

        t0 = time.perf_counter()
        feats = extract_acoustic(table, progress=bool(config.verbose))
        acoustic = feats.normalized(table, mode="speaker")
        timings["acoustic_features_s"] = time.perf_counter() - t0
    emotion = {task: bin_labels(table[task].to_numpy(float), corpus) for task in config.tasks}
    gender = np.array([GENDER_IDS.get(g, -1) if isinstance(g, str) else -1 for g in table["gender"]], dtype=np.int64)
    speakers = np.array([s if isinstance(s, str) else "" for s in table["speaker"]], dtype=object)
    return CorpusData(table, corpus, acoustic, emotion, gender, speakers, timings)


def lexical_inputs(data: CorpusData, train_indices: np.ndarray, config: ExperimentConfig):
    """Word vectors for every utterance: the user's file, or Word2Vec trained on this fold's training transcripts only."""
    from privemo.features.lexical import embed, load_embeddings, train_word2vec

    if config.embeddings:
        vectors = load_embeddings(config.embeddings)
    else:
        vectors = train_word2vec(data.table, train_indices, seed=config.seed)
    arrays, report = embed(data.table, vectors)
    return arrays, report


def _targets(data: CorpusData, condition: Condition, fold, train_rows: np.ndarray) -> tuple[dict, dict, dict]:
    """Per-output labels and sample weights for every row, plus label metadata (speaker id map)."""
    from privemo.data.pipeline import class_weights

    n = len(data.table)
    y = {"emotion": data.emotion[condition.task].astype(np.int32)}
    w = {"emotion": np.zeros(n, np.float32)}
    w["emotion"][train_rows] = class_weights(y["emotion"][train_rows], 3)
    w["emotion"][fold.validation] = 1.0
    meta: dict = {}
    if condition.adversary == "gender":
        known = data.gender >= 0
        labels = np.where(known, data.gender, 0).astype(np.int32)
        weights = np.zeros(n, np.float32)
        train_known = train_rows[known[train_rows]]
        weights[train_known] = class_weights(labels[train_known], 2)
        heads = _adversary_heads(condition)
        for head in heads:
            y[head], w[head] = labels, weights
    elif condition.adversary == "speaker":
        train_speakers = sorted(set(data.speakers[train_rows]) - {""})
        index = {s: i for i, s in enumerate(train_speakers)}
        labels = np.array([index.get(s, 0) for s in data.speakers], dtype=np.int32)
        weights = np.zeros(n, np.float32)
        rows = train_rows[[data.speakers[i] in index for i in train_rows]]
        weights[rows] = class_weights(labels[rows], len(train_speakers))
        for head in _adversary_heads(condition):
            y[head], w[head] = labels, weights
        meta["n_speakers"] = len(train_speakers)
    return y, w, meta


def _adversary_heads(condition: Condition) -> list[str]:
    if condition.adversary is None:
        return []
    if condition.placement == "per_modality":
        return [f"{condition.adversary}_{m}" for m in condition.modalities]
    return [condition.adversary]


def fold_seed(config: ExperimentConfig, condition: Condition, fold_index: int) -> int:
    """The seed of one (modality, task, fold, repeat), derived from the run's one seed: it sets the initial weights and
    the batch order. It does not depend on the adversary, so the baseline and every adversarial trial of a fold start
    from the same weights in the layers they share and see the same batches (paired comparisons); nor on execution
    order, so results do not depend on scheduling."""
    import zlib

    pair = f"{condition.modality}/{condition.task}/{fold_index}/{condition.repeat}"
    return (config.seed * 1_000_003 + zlib.crc32(pair.encode())) % (2**31 - 1)


def holdout_rows(data: CorpusData, fold, config: ExperimentConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): ``config.mi_holdout`` of every training speaker's utterances are kept out of
    training as the membership attack's same-speaker non-members. It depends only on the run's seed and the fold, so
    every condition of a fold trains on the same rows."""
    from privemo.privacy.attacks import holdout_split

    train = np.asarray(fold.train, np.int64)
    if not config.mi_holdout:
        return train, train[:0]
    kept, held = holdout_split(data.speakers[train], share=config.mi_holdout, seed=config.seed)
    return np.sort(train[kept]), np.sort(train[held])


def result_path(config: ExperimentConfig, condition: Condition, fold_index: int) -> Path:
    return Path(config.out_dir) / "folds" / condition.key / f"fold{fold_index}.json"


def _model_inputs(data: CorpusData, condition: Condition, lexical) -> dict[str, Sequence[np.ndarray]]:
    inputs: dict[str, Sequence[np.ndarray]] = {}
    if "acoustic" in condition.modalities:
        inputs["acoustic"] = data.acoustic
    if "lexical" in condition.modalities:
        if lexical is None:
            raise ValueError("lexical inputs were not prepared for this fold")
        inputs["lexical"] = lexical
    return inputs


def _hypermodel(condition: Condition, config: ExperimentConfig, meta: dict, seed: int, lexical_dim: int,
                model_cache: dict | None = None):
    from privemo.search.tuning import EmotionPrivacyHyperModel

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
        selection=config.selection,
        removal=condition.removal,
    )


class SearchSetup(NamedTuple):
    """What ``run_fold`` passes to ``tuner.search`` for one (condition, fold), with its hypermodel, inputs and targets
    (shared with ``privemo.experiment.distributed``'s workers, so both search exactly the same trials)."""

    hypermodel: Any
    train_ds: Any
    val_inputs: dict
    val_targets: dict
    seed: int
    inputs: dict
    targets: dict
    probe: Any  # privemo.search.selection.PrivacyProbe, or None (baseline, head selection)
    train_rows: np.ndarray  # the rows trained on (fold.train minus the held-out rows)
    heldout_rows: np.ndarray  # the membership attack's same-speaker non-members
    callbacks: tuple = ()  # Keras callbacks of every trial (a TensorBoard callback with --tensorboard)

    def search_kwargs(self) -> dict:
        """Keyword arguments of ``tuner.search`` besides the training dataset."""
        return {"val_targets": self.val_targets, "probe": self.probe, "verbose": 0, "callbacks": list(self.callbacks)}


def search_setup(data: CorpusData, fold_index: int, fold, condition: Condition, config: ExperimentConfig,
                 lexical: Sequence[np.ndarray] | None = None, model_cache: dict | None = None) -> SearchSetup:
    """Seed, inputs, targets, training dataset, validation data, probe and hypermodel of one (condition, fold)."""
    from privemo._seed import set_seed
    from privemo.data.pipeline import make_dataset
    from privemo.search.selection import PrivacyProbe, probe_rows

    seed = fold_seed(config, condition, fold_index)
    set_seed(seed)
    inputs = _model_inputs(data, condition, lexical)
    lexical_dim = int(lexical[0].shape[1]) if lexical is not None and len(lexical) else 300
    train_rows, heldout = holdout_rows(data, fold, config)
    y, w, meta = _targets(data, condition, fold, train_rows)
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
    probe = None
    if condition.adversary is not None and config.selection == "probe":
        if condition.adversary == "gender":
            labels, rows = data.gender, train_rows[data.gender[train_rows] >= 0]
        else:
            labels, rows = data.speakers, train_rows[data.speakers[train_rows] != ""]
        rows = probe_rows(labels, rows, seed)
        probe = PrivacyProbe(condition.adversary, {k: [v[i] for i in rows] for k, v in inputs.items()}, labels[rows],
                             labels[val_rows], seed=seed)
    hypermodel = _hypermodel(condition, config, meta, seed, lexical_dim, model_cache)
    callbacks = ()
    if config.tensorboard:  # privemo.search.tuning.GridSearch writes each trial's logs to <log_dir>/trial_<id>
        import keras

        log_dir = Path(config.tensorboard) / condition.key / f"fold{fold_index}"
        callbacks = (keras.callbacks.TensorBoard(log_dir=str(log_dir)),)
    return SearchSetup(hypermodel, train_ds, val_inputs, val_targets, seed, inputs, y, probe, train_rows, heldout,
                       callbacks)


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
    from privemo.search.tuning import make_tuner, trial_history

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    setup = search_setup(data, fold_index, fold, condition, config, lexical, model_cache)
    work = work_dir(config) / "tuning" / condition.key
    tuner = make_tuner(setup.hypermodel, str(work), f"fold{fold_index}", seed=setup.seed, overwrite=not config.resume)
    if report is not None:
        tuner.report, tuner.report_label = report, f"  fold {fold_index}: {condition.key}: "
    tuner.search(setup.train_ds, setup.val_inputs, **setup.search_kwargs())
    timings["tune_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    everything = np.concatenate([fold.train, fold.validation, fold.test])
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    best_trial = tuner.oracle.get_best_trials(1)[0]
    trial_records = []
    for trial in trials:
        model = tuner.load_model(trial)
        out = _represent(model, setup.inputs, everything)
        trial_records.append(_trial_record(trial, out, data, fold, setup, condition))
        if trial.trial_id == best_trial.trial_id:
            selected, chosen_record = out, trial_records[-1]
            if config.save_models:
                _save_model(model, Path(config.out_dir) / "models" / condition.key / f"fold{fold_index}.keras")
    timings["represent_s"] = time.perf_counter() - t1
    history = trial_history(tuner, best_trial.trial_id)
    record: dict = {
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
        "seed": setup.seed,
        "init_seed": setup.seed,
        "grid": config.grid,
        "selection": config.selection,
        "removal": condition.removal if condition.adversary else None,
        "best_hp": dict(best_trial.hyperparameters.values),
        "val": {name: float(best_trial.metrics.get_best_value(name)) for name in best_trial.metrics.metrics},
        "best_epoch": chosen_record["best_epoch"],
        "epochs_run": chosen_record["epochs_run"],
        "max_epochs": config.resolved_epochs(),
        "history": history,
        "trials": trial_records,
        "test": {"emotion_uar": chosen_record["test_emotion_uar"], "n": int(len(fold.test))},
        "n": {"train": int(len(setup.train_rows)), "heldout": int(len(setup.heldout_rows)),
              "validation": int(len(fold.validation)), "test": int(len(fold.test))},
        "settings": run_settings(config),
    }
    t2 = time.perf_counter()
    record.update(_attacks(selected, data, fold, setup, config))
    timings["attack_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    record["timings"] = timings
    return record


class Represented(NamedTuple):
    """One network's outputs for some table rows: emotion probabilities and h, and where each table row sits in them
    (``position[table row]``, -1 for rows not represented)."""

    position: np.ndarray
    emotion: np.ndarray
    h: np.ndarray

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Positions in ``emotion`` / ``h`` of the table rows ``rows``."""
        return self.position[np.asarray(rows, np.int64)]


def _represent(model, inputs: dict, rows: np.ndarray) -> Represented:
    from privemo.data.pipeline import predict
    from privemo.nn.training import with_representation

    out = predict(with_representation(model), inputs, rows)
    position = np.full(int(rows.max()) + 1, -1, np.int64)
    position[rows] = np.arange(len(rows))
    return Represented(position, np.asarray(out["emotion"]), np.asarray(out["h"]))


def _trial_record(trial, out: Represented, data: CorpusData, fold, setup: SearchSetup, condition: Condition) -> dict:
    """A trial's hyper-parameters and validation scores, plus its own network's test emotion UAR and the test UAR of a
    fresh gender probe fitted on its training speakers' h (for the lambda trade-off; never used for selection)."""
    from privemo.metrics import uar
    from privemo.search.selection import gender_probe_uar

    metrics = trial.metrics
    best = {name: float(metrics.get_best_value(name)) for name in metrics.metrics}
    y = setup.targets["emotion"]
    train = setup.train_rows[data.gender[setup.train_rows] >= 0]
    test = fold.test[data.gender[fold.test] >= 0]
    privacy = None
    if condition.adversary:
        privacy = best.get("val_probe", best.get(f"val_{condition.adversary}_uar"))
    as_int = lambda name: int(best[name]) if name in best else None  # noqa: E731
    return {
        "trial_id": trial.trial_id,
        "hp": dict(trial.hyperparameters.values),
        "grl_lambda": trial.hyperparameters.values.get("grl_lambda"),
        "val_objective": best.get("val_objective"),
        "val_emotion_uar": best.get("val_emotion_uar"),
        "val_privacy": privacy,
        "best_epoch": as_int("best_epoch"),
        "epochs_run": as_int("epochs_run"),
        "test_emotion_uar": float(uar(y[fold.test], out.emotion[out.rows(fold.test)])),
        "test_probe_uar": gender_probe_uar(out.h[out.rows(train)], data.gender[train], out.h[out.rows(test)],
                                           data.gender[test]) if len(train) and len(test) else None,
    }


def _save_model(model, saved: Path) -> None:
    """For privemo.cli.export; written atomically (a temporary name in the same folder, then renamed)."""
    import os

    saved.parent.mkdir(parents=True, exist_ok=True)
    partial = saved.with_name(f".{saved.stem}.{os.getpid()}.partial.keras")
    model.save(partial)
    os.replace(partial, saved)


def _attacks(out: Represented, data: CorpusData, fold, setup: SearchSetup, config: ExperimentConfig) -> dict:
    """The selected network's privacy figures: fresh gender attackers (train speakers -> validation speakers ->
    test speakers), speaker verification among the validation + test speakers with a verifier learnt on the training
    speakers, and membership inference (training rows vs the same speakers' held-out rows)."""
    from privemo.privacy.attacks import attack_representation, membership_inference
    from privemo.privacy.verification import speaker_verification_attack

    attack_kw = dict(seed=setup.seed, grid=config.attacker_grid())
    attack_epochs = config.attack_epochs if config.attack_epochs is not None else ATTACK_EPOCHS.get(config.grid)
    if attack_epochs is not None:
        attack_kw["epochs"] = attack_epochs
    g = data.gender
    known = lambda rows: rows[g[rows] >= 0]  # noqa: E731
    attacks: dict = {}
    tr, va, te = known(fold.train), known(fold.validation), known(fold.test)
    if len(np.unique(g[tr])) == 2 and len(np.unique(g[te])) == 2:
        report = attack_representation(out.h[out.rows(tr)], g[tr], out.h[out.rows(va)], g[va],
                                       out.h[out.rows(te)], g[te], **attack_kw)
        attacks["gender"] = report.to_dict()
    spk = data.speakers
    train_spk = fold.train[spk[fold.train] != ""]
    evaluation = np.concatenate([fold.validation, fold.test])
    names, counts = np.unique(spk[evaluation], return_counts=True)
    linkable = set(names[counts >= 2]) - {""}  # a trial needs two utterances of a speaker
    evaluation = evaluation[[s in linkable for s in spk[evaluation]]]
    if len(set(spk[train_spk])) >= 2 and len(set(spk[evaluation])) >= 2:
        genders = np.where(g[evaluation] >= 0, g[evaluation], -1)
        attacks["speaker_verification"] = speaker_verification_attack(
            out.h[out.rows(train_spk)], spk[train_spk], out.h[out.rows(evaluation)], spk[evaluation],
            genders_eval=genders if (genders >= 0).all() else None, seed=setup.seed)
    result: dict = {"attacks": attacks}
    if len(setup.heldout_rows) < MIN_MI_ROWS:
        result["membership"] = {"auc": None, "skipped": f"{len(setup.heldout_rows)} held-out utterances (fewer than "
                                                         f"{MIN_MI_ROWS}): too few non-members to attack"}
    else:
        y = setup.targets["emotion"]
        members, nonmembers = setup.train_rows, setup.heldout_rows
        result["membership"] = membership_inference(out.emotion[out.rows(members)], y[members],
                                                    out.emotion[out.rows(nonmembers)], y[nonmembers],
                                                    seed=setup.seed).to_dict()
    return result


def _jobs(config: ExperimentConfig) -> list[Condition]:
    return config.conditions()


def default_jobs() -> int:
    """Worker processes for the fold loop: one per available core (each runs one training with one thread)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _user_error(message: str) -> ValueError:
    """A ValueError caused by the user's input: ``python -m privemo.reproduce`` prints it in one line, no traceback."""
    exc = ValueError(message)
    exc.user_error = True  # type: ignore[attr-defined]
    return exc


def work_dir(config: ExperimentConfig) -> Path:
    """Where tuner projects and the run's settings live: ``config.work_dir``, else ``<out_dir>/work``."""
    return Path(config.work_dir or Path(config.out_dir) / "work")


def plan_run(config: ExperimentConfig, table: pd.DataFrame | None = None):
    """The corpus table (loaded unless given), its speaker folds, the fold indices to run and the conditions, with the
    user errors a run can meet before training (too few speakers, a bad fold index, lexical without transcripts).
    Shared by ``run_cross_validation`` and ``privemo.experiment.distributed``, so both run the same jobs."""
    from privemo.corpora import load_corpus
    from privemo.data.folds import speaker_folds

    if table is None:
        options = {}
        if config.corpus in ("demo", "demo-podcast") and config.demo_per_speaker is not None:
            options["n_per_speaker"] = config.demo_per_speaker
        table = load_corpus(config.corpus, config.root, **options)
    try:
        folds = speaker_folds(table, n_folds=config.n_folds, seed=config.seed)
    except ValueError as exc:  # too few speakers / sessions for n_folds: a user error, not a bug
        raise _user_error(f"{config.corpus}: cannot make {config.n_folds} speaker-independent folds: {exc}") from None
    fold_ids = list(range(len(folds))) if config.folds is None else list(config.folds)
    bad = [k for k in fold_ids if not 0 <= k < len(folds)]
    if bad:
        raise _user_error(f"Invalid fold index {bad}: the corpus has folds 0..{len(folds) - 1}.")
    conditions = _jobs(config)
    if any("lexical" in c.modalities for c in conditions):
        missing = int(table["transcript"].isna().sum())
        if missing:
            raise _user_error(
                f"{config.corpus}: {missing} of {len(table)} utterances have no transcript, so the lexical modality cannot "
                "run on this corpus; pass --modality acoustic.")
    return table, folds, fold_ids, conditions


def describe_plan(config: ExperimentConfig, table: pd.DataFrame | None = None) -> str:
    """What a run would do, without training or writing results (``--dry-run``): corpus size, folds and their test
    speakers, conditions, trials per (condition, fold) and the number of trainings with their epoch budget."""
    from privemo.search.grids import grid_size
    from privemo.search.tuning import LAMBDA_REMOVALS

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
        lam = condition.adversary is not None and config.removal in LAMBDA_REMOVALS
        trials = grid_size(grid, lam)
        trainings += trials * len(fold_ids) * config.repeats
        lines.append(f"    {condition.key}: {trials} trial(s) per fold")
    epochs = config.resolved_epochs()
    lines.append(f"  {len(conditions)} conditions x {len(fold_ids)} folds = {len(conditions) * len(fold_ids)} "
                 f"(condition, fold) jobs holding {trainings} trainings of at most {epochs} epochs each "
                 f"(early stopping, patience {config.resolved_patience()}): at most {trainings * epochs} epochs")
    return "\n".join(lines)


def run_cross_validation(config: ExperimentConfig, table: pd.DataFrame | None = None) -> list[dict]:
    """Every (condition, fold) of the run, resuming from finished per-fold JSON files when ``config.resume`` is set.

    Jobs are independent (each has its own seed, see ``fold_seed``), so they run in ``config.n_jobs`` worker processes
    without changing any result; each finished job is written atomically before the next starts.
    """
    t0 = time.perf_counter()
    table, folds, fold_ids, conditions = plan_run(config, table)
    timings = {"load_corpus_s": time.perf_counter() - t0}
    data = prepare_corpus(table, config)
    timings.update(data.timings)
    # Condition-major order: a worker's consecutive jobs tend to share a network, which it then need not trace again.
    jobs = [(k, c) for c in conditions for k in fold_ids]
    settings = run_settings(config)
    settings_file = work_dir(config) / "settings.json"
    finished = {job: result_path(config, job[1], job[0]) for job in jobs}
    finished = {job: path for job, path in finished.items() if config.resume and path.is_file()}
    records: dict[tuple[int, Condition], dict] = {job: read_json(path) for job, path in finished.items()}
    if config.resume:
        found = {settings_file: read_json(settings_file) if settings_file.is_file() else settings}
        found.update({finished[job]: record.get("settings") for job, record in records.items()})
        for path, theirs in found.items():
            difference = _settings_differ(theirs, settings)
            if difference:
                raise _user_error(
                    f"{path}: cannot resume: it was made with other settings ({difference}). Rerun without --resume to "
                    "start over, or pass another --out.")
    atomic_write_json(settings_file, settings)
    pending = [job for job in jobs if job not in finished]
    n_jobs = max(1, min(config.n_jobs or default_jobs(), len(pending) or 1))
    log(f"privemo: {data.corpus}: {len(table)} utterances, {table['speaker'].nunique()} speakers, {len(folds)} folds; "
        f"{len(conditions)} conditions x {len(fold_ids)} folds = {len(jobs)} cross-validated trainings "
        f"({len(finished)} already finished), {n_jobs} worker process(es)", config)
    if pending:
        from privemo.nn.device import device_summary

        log(device_summary(), config)

    t1 = time.perf_counter()
    lexical: dict[int, list[np.ndarray]] = {}
    for k in sorted({k for k, c in pending if "lexical" in c.modalities}):
        lexical[k], oov = lexical_inputs(data, folds[k].train, config)
        log(f"[fold {k}] word vectors: {oov}", config)
    timings["lexical_s"] = time.perf_counter() - t1

    kind = lambda c: (c.modality, c.adversary is None)  # noqa: E731  (a baseline has one trial, an adversary four)
    progress = Progress([kind(c) for _, c in pending], len(jobs), n_jobs, lambda line: log(line, config),
                        bar=bool(config.verbose) and sys.stderr.isatty())

    def done(job, record, seconds):
        records[job] = record
        priv = record["attacks"].get("gender", {}).get("strongest_test_uar")
        lam = record.get("grl_lambda")
        progress.finished(kind(job[1]), record.get("timings", {}).get("total_s", seconds),
                          f"fold {job[0]}: {job[1].key}: emotion UAR {record['test']['emotion_uar']:.3f}"
                          + (f" (λ {lam:g})" if lam is not None else "")
                          + (f", gender attacker UAR {priv:.3f}" if priv is not None else "")
                          + f" ({record.get('timings', {}).get('total_s', seconds):.0f} s)")

    t1 = time.perf_counter()
    if n_jobs == 1:
        _worker_init(data, 0, parallel=False)
        for k, c in pending:
            t2 = time.perf_counter()
            done((k, c), _run_job(k, folds[k], c, config, lexical.get(k)), time.perf_counter() - t2)
    else:
        import concurrent.futures as cf
        import os

        from privemo._processes import process_pool

        with process_pool(n_jobs, initializer=_worker_init, initargs=(data, 1, True, os.getpid())) as pool:
            queue = _AffinityQueue(pending)
            futures: dict = {}

            def submit(pid: int | None) -> None:
                job = queue.take(pid)
                if job is not None:
                    k, c = job
                    futures[pool.submit(_run_job_in_worker, k, folds[k], c, config, lexical.get(k))] = \
                        (job, time.perf_counter())

            for _ in range(n_jobs):
                submit(None)
            while futures:
                finished_now, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for fut in finished_now:
                    job, t2 = futures.pop(fut)
                    record, pid = fut.result()
                    queue.ran(pid, job)
                    done(job, record, time.perf_counter() - t2)
                    submit(pid)  # the worker that just finished is the idle one: give it a network it has traced
    progress.close()
    timings["training_and_attacks_s"] = time.perf_counter() - t1
    timings["cross_validation_s"] = time.perf_counter() - t0
    run_cross_validation.last_timings = timings  # type: ignore[attr-defined]
    return [records[job] for job in jobs]


_WORKER: dict = {}


def _worker_init(data: CorpusData, threads: int, parallel: bool, parent: int | None = None) -> None:
    """Per-process setup: the shared corpus data, TensorFlow threads (one per worker when several run) and determinism.
    A worker process (``parent``: the main process's pid) first starts watching for the main process's death."""
    import os

    if parallel:
        _exit_with_parent(parent if parent is not None else os.getppid())
    import tensorflow as tf

    from privemo._quiet import verbose

    if not verbose():  # TensorFlow's Python warnings (e.g. retracing notices for new padded lengths) are not ours
        tf.get_logger().setLevel("ERROR")
    if parallel and threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # already initialised in this process
            pass
        # NumPy's OpenBLAS and scikit-learn's OpenMP start one thread per core in every worker, and their idle threads
        # spin: with a worker per core they take CPU time from the other workers' training.
        from threadpoolctl import threadpool_limits

        from privemo.privacy import attacks  # noqa: F401  (loads scikit-learn's OpenMP runtime, so the limit below covers it)

        _WORKER["thread_limits"] = threadpool_limits(limits=threads)
    tf.config.experimental.enable_op_determinism()
    _WORKER["data"] = data


def _exit_with_parent(parent: int) -> None:
    """Make this worker exit as soon as its parent (pid ``parent``) is gone (SIGKILL, crash), rather than finish its job
    unsupervised: a rerun with --resume would otherwise train the same (condition, fold) in the same tuner project at the
    same time. The pid comes from the parent itself, so a parent killed before this worker got here is noticed too."""
    import os
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="privemo-parent-watch", daemon=True).start()


def _run_job(fold_index: int, fold, condition: Condition, config: ExperimentConfig, lexical) -> dict:
    report = (lambda line: log(line, config)) if config.verbose >= 2 else None
    record = run_fold(_WORKER["data"], fold_index, fold, condition, config, lexical,
                      model_cache=_WORKER.setdefault("models", {}), report=report)
    atomic_write_json(result_path(config, condition, fold_index), record)
    return record


def _run_job_in_worker(fold_index: int, fold, condition: Condition, config: ExperimentConfig, lexical) -> tuple[dict, int]:
    import os

    return _run_job(fold_index, fold, condition, config, lexical), os.getpid()


def network_key(condition: Condition) -> tuple:
    """What decides a condition's network (the task and a fixed lambda do not): conditions with the same key reuse one
    traced network within a worker process (see ``EmotionPrivacyHyperModel.model_cache``)."""
    return condition.modality, condition.adversary, condition.placement


class _AffinityQueue:
    """Pending jobs handed to workers so that each tends to get networks it has already traced (tracing a new network
    costs seconds on a CPU). Only the order in which jobs run changes: every job has its own seed, so results do not."""

    def __init__(self, jobs: Sequence[tuple[int, Condition]]):
        self.jobs = list(jobs)
        self.traced: dict[int, set] = {}  # worker pid -> network keys it has run
        self.handed: set = set()  # network keys handed to any worker so far

    def take(self, pid: int | None) -> tuple[int, Condition] | None:
        """The next job for worker ``pid`` (None: a worker that has run nothing yet): one of its networks, else a
        network no worker has had, else the first pending job."""
        if not self.jobs:
            return None
        mine = self.traced.get(pid, set())
        for wanted in (lambda key: key in mine, lambda key: key not in self.handed, lambda key: True):
            for i, job in enumerate(self.jobs):
                if wanted(network_key(job[1])):
                    self.handed.add(network_key(job[1]))
                    return self.jobs.pop(i)
        return None  # pragma: no cover - the last rule takes anything

    def ran(self, pid: int, job: tuple[int, Condition]) -> None:
        self.traced.setdefault(pid, set()).add(network_key(job[1]))


def run(config: ExperimentConfig) -> str:
    """The whole job: cross-validation, the linear reference, tables, the lambda trade-off, manifest. Returns a
    printable summary."""
    from privemo.experiment import reporting
    from privemo._io import atomic_write_text
    from privemo.search.grids import grid_size
    from privemo.experiment.manifest import write_manifest

    t0 = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log(f"privemo: grid '{config.grid}': " + ", ".join(f"{k}={list(v)}" for k, v in config.grid_dict().items())
        + f" ({grid_size(config.grid_dict(), False)} configurations without an adversary, "
        f"{grid_size(config.grid_dict(), True)} with); attacker grid {dict(config.attacker_grid())}; "
        f"selection by {config.selection}"
        + ("" if config.removal == "grl" else f"; removal method {config.removal}"), config)
    t1 = time.perf_counter()
    table = plan_run(config)[0]  # loaded once for the cross-validation and the reference
    load_s = time.perf_counter() - t1
    records = run_cross_validation(config, table)
    timings = dict(getattr(run_cross_validation, "last_timings", {}))
    timings["load_corpus_s"] = load_s + timings.get("load_corpus_s", 0.0)
    t1 = time.perf_counter()
    reference = linear_reference_frame(config, table)
    atomic_write_text(out / "reference.csv", reference.to_csv(index=False))
    timings["reference_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    atomic_write_json(out / "folds.json", records)
    tables = reporting.write_tables(records, out, reference=reference)
    trade_off = reporting.lambda_tradeoff_frame(records)
    if len(trade_off):
        atomic_write_text(out / "lambda_sweep.csv", trade_off.to_csv(index=False))
        if (trade_off.adversary != "none").any():
            reporting.plot_lambda_sweep(trade_off, out / "lambda_sweep.png")
    timings["reporting_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    write_manifest(out / "manifest.json", config.to_dict(), timings=timings,
                   grid={"main": config.grid_dict(), "attacker": config.attacker_grid()},
                   fold_timings={r["condition"] + f"/fold{r['fold']}": r.get("timings", {}) for r in records})
    lines = [f"privemo.reproduce: {config.corpus}, {len(records)} fold results in {timings['total_s']:.0f} s -> {out}"
             + ("" if config.removal == "grl" else f" (removal method: {config.removal})")]
    for name, table in tables.items():
        lines.append(f"\n{name}:\n{reporting.to_markdown(table)}")
    return "\n".join(lines)


def linear_reference_frame(config: ExperimentConfig, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The linear reference of every (modality, task) row of the run on the same folds and training rows
    (``privemo.experiment.reference``): columns corpus, modality, task, uar_mean, uar_std, n_folds."""
    from privemo.experiment.reference import linear_reference, reference_frame

    table, folds, fold_ids, _ = plan_run(config, table)
    data = prepare_corpus(table, config)  # acoustic features come from the on-disk cache
    # The same rows as the networks: training speakers minus the membership attack's held-out utterances.
    chosen = [folds[k]._replace(train=holdout_rows(data, folds[k], config)[0]) for k in fold_ids]
    rows = []
    for modality in config.modalities:
        for task in config.tasks:
            result = linear_reference(table, data.emotion[task], chosen, modality, acoustic=data.acoustic,
                                      seed=config.seed)
            rows.append({"corpus": data.corpus, "modality": modality, "task": task, **result})
    return reference_frame(rows)
