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
from typing import Callable, Sequence

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
BATCH_SIZE = 32


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
    batch_size: int = BATCH_SIZE
    embeddings: str | None = None
    out_dir: str = "results/demo"
    work_dir: str | None = None  # tuner projects; None: <out_dir>/work
    resume: bool = False
    lambda_sweep: bool = True
    sweep_modality: str = "acoustic"
    sweep_task: str = "activation"
    folds: tuple[int, ...] | None = None  # run only these outer folds (None: all)
    attack_epochs: int = 60
    verbose: int = 1

    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else EPOCHS.get(self.grid, EPOCHS["paper"])

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

        return [Condition(self.sweep_modality, self.sweep_task, "gender", "fused", float(lam))
                for lam in PAPER_GRID["grl_lambda"]]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
