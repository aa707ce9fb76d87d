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

from ._io import atomic_write_json, read_json
from .grids import GRIDS, grid_size

MODALITY_SETS: dict[str, tuple[str, ...]] = {
    "acoustic": ("acoustic",),
    "lexical": ("lexical",),
    "acoustic+lexical": ("acoustic", "lexical"),
}
GENDER_IDS = {"F": 0, "M": 1}

# assumption (README assumptions table): training budget of the tuned networks.
EPOCHS = {"paper": 30, "quick": 8}
PATIENCE = {"paper": 5, "quick": 3}
LEARNING_RATE = {"paper": 1e-3, "quick": 3e-3}
# Epoch cap of the MLP attackers (None: privemo.attacks.ATTACKER_MAX_EPOCHS); the quick run caps them lower.
ATTACK_EPOCHS: dict[str, int | None] = {"paper": None, "quick": 40}  # Adam; the quick run's short budget needs the larger step
# The quick grid's larger batch halves the GRU loop iterations per epoch (a CPU's cost), so its 8 epochs fit the budget.
BATCH_SIZE = {"paper": 32, "quick": 64}


@dataclass(frozen=True)
class Condition:
    """What one cross-validated model is: which modalities, which emotion task, which adversary and where it sits."""

    modality: str  # key of MODALITY_SETS
    task: str  # "activation" | "valence"
    adversary: str | None  # None | "gender" | "speaker"
    placement: str = "fused"  # "fused" | "per_modality"
    grl_lambda: float | None = None  # fixed lambda (lambda sweep); None = tuned over the grid

    @property
    def modalities(self) -> tuple[str, ...]:
        return MODALITY_SETS[self.modality]

    @property
    def key(self) -> str:
        parts = [self.modality, self.task, self.adversary or "baseline"]
        if self.adversary:
            parts.append(self.placement)
        if self.grl_lambda is not None:
            parts.append(f"lambda{self.grl_lambda:g}")
        return "-".join(parts)


@dataclass
class ExperimentConfig:
    """Everything that defines a run; recorded verbatim in the run's manifest."""

    corpus: str = "demo"
    root: str | None = None
    modalities: tuple[str, ...] = ("acoustic", "lexical", "acoustic+lexical")
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
    lambda_sweep: bool = True
    sweep_modality: str = "acoustic"
    sweep_task: str = "activation"
    folds: tuple[int, ...] | None = None  # run only these outer folds (None: all)
    n_jobs: int | None = None  # worker processes (None: one per core)
    attack_epochs: int | None = None  # None: ATTACK_EPOCHS[grid]
    save_models: bool = True  # keep each fold's selected network as <out_dir>/models/<condition.key>/fold<k>.keras
    demo_per_speaker: int | None = None  # demo corpus only: utterances per speaker (None: the demo's default, 640 in all)
    verbose: int = 1

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
        """The table conditions; per_modality placement only for multimodal rows (it needs two branches)."""
        out = []
        for modality in self.modalities:
            if modality not in MODALITY_SETS:
                raise ValueError(f"Invalid modality {modality!r}. Expected one of {sorted(MODALITY_SETS)}.")
            for task in self.tasks:
                for adversary in self.adversaries:
                    if adversary is None:
                        out.append(Condition(modality, task, None))
                        continue
                    for placement in self.placements:
                        if placement == "per_modality" and len(MODALITY_SETS[modality]) < 2:
                            continue
                        out.append(Condition(modality, task, adversary, placement))
        return out

    def sweep_conditions(self) -> list[Condition]:
        """Fixed-lambda gender-adversary runs over the paper's lambda values (the lambda sweep)."""
        if not self.lambda_sweep or "gender" not in self.adversaries:
            return []
        from .grids import PAPER_GRID

        reused = self.sweep_reuses()
        return [Condition(self.sweep_modality, self.sweep_task, "gender", "fused", float(lam))
                for lam in PAPER_GRID["grl_lambda"] if reused is None or float(lam) != reused[1]]

    def sweep_reuses(self) -> tuple[Condition, float] | None:
        """The table condition that already is one point of the sweep, with its lambda: when the main grid fixes lambda to
        one value, the table's gender run of the sweep's modality and task is exactly that sweep point and is not rerun."""
        lambdas = self.grid_dict().get("grl_lambda", ())
        table_run = Condition(self.sweep_modality, self.sweep_task, "gender", "fused")
        if not self.lambda_sweep or len(lambdas) != 1 or table_run not in self.conditions():
            return None
        return table_run, float(lambdas[0])

    def attacker_grid(self) -> dict[str, tuple]:
        from .grids import ATTACKER_GRIDS

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
    from .labels import bin_labels

    corpus = table.attrs.get("corpus", config.corpus)
    timings: dict[str, float] = {}
    acoustic = None
    if any("acoustic" in MODALITY_SETS[m] for m in config.modalities):
        from .features.acoustic import extract_acoustic

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
    from .features.lexical import embed, load_embeddings, train_word2vec

    if config.embeddings:
        vectors = load_embeddings(config.embeddings)
    else:
        vectors = train_word2vec(data.table, train_indices, seed=config.seed)
    arrays, report = embed(data.table, vectors)
    return arrays, report


def _targets(data: CorpusData, condition: Condition, fold) -> tuple[dict, dict, dict]:
    """Per-output labels and sample weights for every row, plus label metadata (speaker id map)."""
    from .pipeline import class_weights

    n = len(data.table)
    y = {"emotion": data.emotion[condition.task].astype(np.int32)}
    w = {"emotion": np.zeros(n, np.float32)}
    w["emotion"][fold.train] = class_weights(y["emotion"][fold.train], 3)
    w["emotion"][fold.validation] = 1.0
    meta: dict = {}
    if condition.adversary == "gender":
        known = data.gender >= 0
        labels = np.where(known, data.gender, 0).astype(np.int32)
        weights = np.zeros(n, np.float32)
        train_known = fold.train[known[fold.train]]
        weights[train_known] = class_weights(labels[train_known], 2)
        heads = _adversary_heads(condition)
        for head in heads:
            y[head], w[head] = labels, weights
    elif condition.adversary == "speaker":
        train_speakers = sorted(set(data.speakers[fold.train]) - {""})
        index = {s: i for i, s in enumerate(train_speakers)}
        labels = np.array([index.get(s, 0) for s in data.speakers], dtype=np.int32)
        weights = np.zeros(n, np.float32)
        rows = fold.train[[data.speakers[i] in index for i in fold.train]]
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
    """A per-(condition, fold) seed derived from the run's one seed, so results do not depend on execution order."""
    import zlib

    return (config.seed * 1_000_003 + zlib.crc32(f"{condition.key}/{fold_index}".encode())) % (2**31 - 1)


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


def _hypermodel(condition: Condition, config: ExperimentConfig, meta: dict, seed: int, lexical_dim: int):
    from .tuning import EmotionPrivacyHyperModel

    grid = dict(config.grid_dict())
    if condition.grl_lambda is not None:
        grid["grl_lambda"] = (condition.grl_lambda,)
    return EmotionPrivacyHyperModel(
        grid,
        modalities=condition.modalities,
        adversary=condition.adversary,
        n_speakers=meta.get("n_speakers"),
        grl_placement=condition.placement,
        lexical_dim=lexical_dim,
        epochs=config.resolved_epochs(),
        patience=config.resolved_patience(),
        learning_rate=config.resolved_learning_rate(),
        seed=seed,
        model_cache=_WORKER.setdefault("models", {}),
    )


class SearchSetup(NamedTuple):
    """What ``run_fold`` passes to ``tuner.search`` for one (condition, fold), with its hypermodel, inputs and targets
    (shared with ``privemo.distributed``'s workers, so both search exactly the same trials)."""

    hypermodel: Any
    train_ds: Any
    val_inputs: dict
    val_targets: dict
    seed: int
    inputs: dict
    targets: dict


def search_setup(data: CorpusData, fold_index: int, fold, condition: Condition, config: ExperimentConfig,
                 lexical: Sequence[np.ndarray] | None = None) -> SearchSetup:
    """Seed, inputs, targets, training dataset, validation data and hypermodel of one (condition, fold)."""
    from ._seed import set_seed
    from .pipeline import make_dataset

    seed = fold_seed(config, condition, fold_index)
    set_seed(seed)
    inputs = _model_inputs(data, condition, lexical)
    lexical_dim = int(lexical[0].shape[1]) if lexical is not None and len(lexical) else 300
    y, w, meta = _targets(data, condition, fold)
    train_ds = make_dataset(inputs, y, fold.train, batch_size=config.resolved_batch_size(), shuffle=True, seed=seed,
                            sample_weights=w)
    # Validation targets: emotion and gender are defined for the (unseen) validation speakers; speaker identity is not.
    # Validation rows of unknown gender cannot score the gender head: the gender condition validates without them.
    val_rows = fold.validation
    if condition.adversary == "gender":
        val_rows = val_rows[data.gender[val_rows] >= 0]
    val_targets = {"emotion": y["emotion"][val_rows]}
    if condition.adversary == "gender":
        val_targets["gender"] = data.gender[val_rows]
    val_inputs = {k: [v[i] for i in val_rows] for k, v in inputs.items()}
    hypermodel = _hypermodel(condition, config, meta, seed, lexical_dim)
    return SearchSetup(hypermodel, train_ds, val_inputs, val_targets, seed, inputs, y)


def run_fold(
    data: CorpusData,
    fold_index: int,
    fold,
    condition: Condition,
    config: ExperimentConfig,
    lexical: Sequence[np.ndarray] | None = None,
) -> dict:
    """Tune, train, represent and attack one (condition, outer fold); returns the JSON-ready result record."""
    import keras

    from .attacks import attack_representation, membership_attack, speaker_attack
    from .metrics import uar
    from .pipeline import predict
    from .tuning import make_tuner

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    setup = search_setup(data, fold_index, fold, condition, config, lexical)
    seed, inputs, y, hypermodel = setup.seed, setup.inputs, setup.targets, setup.hypermodel
    train_ds, val_inputs, val_targets = setup.train_ds, setup.val_inputs, setup.val_targets
    work = work_dir(config) / "tuning" / condition.key
    tuner = make_tuner(hypermodel, str(work), f"fold{fold_index}", seed=seed, overwrite=not config.resume)
    if config.verbose:
        tuner.report, tuner.report_label = (lambda line: log(line, config)), f"  fold {fold_index}: {condition.key}: "
    tuner.search(train_ds, val_inputs, val_targets, verbose=0)
    best_trial = tuner.oracle.get_best_trials(1)[0]
    model = tuner.load_model(best_trial)
    if config.save_models:  # for privemo.export; written atomically (temporary name in the same folder, then renamed)
        import os

        saved = Path(config.out_dir) / "models" / condition.key / f"fold{fold_index}.keras"
        saved.parent.mkdir(parents=True, exist_ok=True)
        partial = saved.with_name(f".{saved.stem}.{os.getpid()}.partial.keras")
        model.save(partial)
        os.replace(partial, saved)
    timings["tune_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    everything = np.concatenate([fold.train, fold.validation, fold.test])
    both = getattr(model, "_privemo_outputs_and_h", None)  # cached with the model (see EmotionPrivacyHyperModel)
    if both is None:
        both = keras.Model(model.inputs, {"emotion": model.get_layer("emotion").output, "h": model.get_layer("h").output})
        model._privemo_outputs_and_h = both
    out = predict(both, inputs, everything)
    emotion_probs, h_all = np.asarray(out["emotion"]), np.asarray(out["h"])
    pos = {int(i): k for k, i in enumerate(everything)}
    take = lambda idx: np.array([pos[int(i)] for i in idx], dtype=np.int64)  # noqa: E731
    tr, va, te = take(fold.train), take(fold.validation), take(fold.test)
    y_emo = y["emotion"]
    test_uar = uar(y_emo[fold.test], emotion_probs[te])
    record: dict = {
        "corpus": data.corpus,
        "fold": fold_index,
        "modalities": list(condition.modalities),
        "modality": condition.modality,
        "task": condition.task,
        "adversary": condition.adversary,
        "placement": condition.placement,
        "grl_lambda": condition.grl_lambda if condition.grl_lambda is not None else best_trial.hyperparameters.values.get("grl_lambda"),
        "condition": condition.key,
        "seed": seed,
        "grid": config.grid,
        "best_hp": dict(best_trial.hyperparameters.values),
        "val": {name: float(best_trial.metrics.get_best_value(name)) for name in best_trial.metrics.metrics},
        "test": {"emotion_uar": test_uar, "n": int(len(fold.test))},
        "n": {"train": int(len(fold.train)), "validation": int(len(fold.validation)), "test": int(len(fold.test))},
        "trials": len(tuner.oracle.trials),
        "settings": run_settings(config),
    }
    timings["represent_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    attack_kw = dict(seed=seed, grid=config.attacker_grid())
    attack_epochs = config.attack_epochs if config.attack_epochs is not None else ATTACK_EPOCHS.get(config.grid)
    if attack_epochs is not None:
        attack_kw["epochs"] = attack_epochs
    g = data.gender
    known = lambda rows, idx: rows[g[idx] >= 0]  # noqa: E731
    tr_g, va_g, te_g = known(tr, fold.train), known(va, fold.validation), known(te, fold.test)
    gi = lambda idx: g[idx][g[idx] >= 0]  # noqa: E731
    attacks: dict = {}
    if len(np.unique(gi(fold.train))) == 2 and len(np.unique(gi(fold.test))) == 2:
        report = attack_representation(h_all[tr_g], gi(fold.train), h_all[va_g], gi(fold.validation),
                                       h_all[te_g], gi(fold.test), **attack_kw)
        attacks["gender"] = report.to_dict()
    if condition.adversary in (None, "speaker"):
        spk = data.speakers[fold.test]
        ok = spk != ""
        attacks["speaker"] = speaker_attack(h_all[te][ok], spk[ok], **attack_kw).to_dict()
        mi = membership_attack(emotion_probs[tr], y_emo[fold.train], emotion_probs[te], y_emo[fold.test], seed=seed)
        record["membership"] = mi.to_dict()
    record["attacks"] = attacks
    timings["attack_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    record["timings"] = timings
    return record


def _jobs(config: ExperimentConfig) -> list[Condition]:
    return config.conditions() + config.sweep_conditions()


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
    Shared by ``run_cross_validation`` and ``privemo.distributed``, so both run the same jobs."""
    from .corpora import load_corpus
    from .folds import speaker_folds

    if table is None:
        options = {}
        if config.corpus == "demo" and config.demo_per_speaker is not None:
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

    t1 = time.perf_counter()
    lexical: dict[int, list[np.ndarray]] = {}
    for k in sorted({k for k, c in pending if "lexical" in c.modalities}):
        lexical[k], oov = lexical_inputs(data, folds[k].train, config)
        log(f"[fold {k}] word vectors: {oov}", config)
    timings["lexical_s"] = time.perf_counter() - t1

    def done(job, record, seconds):
        records[job] = record
        priv = record["attacks"].get("gender", {}).get("strongest_test_uar")
        log(f"[{len(records)}/{len(jobs)}] fold {job[0]}: {job[1].key}: emotion UAR {record['test']['emotion_uar']:.3f}"
            + (f", gender attacker UAR {priv:.3f}" if priv is not None else "")
            + f" ({record.get('timings', {}).get('total_s', seconds):.0f} s)", config)

    t1 = time.perf_counter()
    if n_jobs == 1:
        _worker_init(data, 0, parallel=False)
        for k, c in pending:
            t2 = time.perf_counter()
            done((k, c), _run_job(k, folds[k], c, config, lexical.get(k)), time.perf_counter() - t2)
    else:
        import concurrent.futures as cf
        import multiprocessing as mp
        import os

        with cf.ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                    initargs=(data, 1, True, os.getpid())) as pool:
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if parallel and threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # already initialised in this process
            pass
        # NumPy's OpenBLAS and scikit-learn's OpenMP start one thread per core in every worker, and their idle threads
        # spin: with a worker per core they take CPU time from the other workers' training.
        from threadpoolctl import threadpool_limits

        from . import attacks  # noqa: F401  (loads scikit-learn's OpenMP runtime, so the limit below covers it)

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
    record = run_fold(_WORKER["data"], fold_index, fold, condition, config, lexical)
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
    """The whole job: cross-validation, tables, lambda sweep, manifest. Returns a printable summary."""
    from . import reporting
    from .manifest import write_manifest

    t0 = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from .grids import grid_size

    log(f"privemo: grid '{config.grid}': " + ", ".join(f"{k}={list(v)}" for k, v in config.grid_dict().items())
        + f" ({grid_size(config.grid_dict(), False)} configurations without an adversary, "
        f"{grid_size(config.grid_dict(), True)} with); attacker grid {dict(config.attacker_grid())}", config)
    records = run_cross_validation(config)
    timings = dict(getattr(run_cross_validation, "last_timings", {}))
    sweep_keys = {c.key for c in config.sweep_conditions()}
    reused = config.sweep_reuses()
    table_records = [r for r in records if r["condition"] not in sweep_keys]
    sweep_records = [r for r in records if r["condition"] in sweep_keys or (reused and r["condition"] == reused[0].key)]
    t1 = time.perf_counter()
    atomic_write_json(out / "folds.json", records)
    tables = reporting.write_tables(table_records, out)
    if sweep_records:
        sweep = reporting.lambda_sweep_frame(sweep_records)
        from ._io import atomic_write_text

        atomic_write_text(out / "lambda_sweep.csv", sweep.to_csv(index=False))
        baseline = reporting.records_frame([r for r in table_records if r["adversary"] is None])
        reporting.plot_lambda_sweep(sweep, out / "lambda_sweep.png", baseline=baseline)
    timings["reporting_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    write_manifest(out / "manifest.json", config.to_dict(), timings=timings,
                   grid={"main": config.grid_dict(), "attacker": config.attacker_grid()},
                   fold_timings={r["condition"] + f"/fold{r['fold']}": r.get("timings", {}) for r in records})
    lines = [f"privemo.reproduce: {config.corpus}, {len(records)} fold results in {timings['total_s']:.0f} s -> {out}"]
    for name, table in tables.items():
        lines.append(f"\n{name}:\n{reporting.to_markdown(table)}")
    return "\n".join(lines)
