"""What every (condition, fold) of a run is fed: the corpus's features and labels computed once, word vectors per fold,
per-output targets and sample weights, the training rows (minus the membership attack's held-out rows), and what one
(condition, fold)'s search is given (``SearchSetup``, built by ``privemo.experiment.fold.search_setup``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd

from privemo.experiment.config import GENDER_IDS, MODALITY_SETS, Condition, ExperimentConfig


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
    # word vectors that do not depend on the fold (a vector file, a pretraining text): embedded once, every fold reuses
    shared_lexical: tuple | None = field(default=None, repr=False)


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
        acoustic = feats.normalized(table, mode=config.normalization)
        timings["acoustic_features_s"] = time.perf_counter() - t0
    emotion = {task: bin_labels(table[task].to_numpy(float), corpus) for task in config.tasks}
    gender = np.array([GENDER_IDS.get(g, -1) if isinstance(g, str) else -1 for g in table["gender"]], dtype=np.int64)
    speakers = np.array([s if isinstance(s, str) else "" for s in table["speaker"]], dtype=object)
    return CorpusData(table, corpus, acoustic, emotion, gender, speakers, timings)


def lexical_inputs(data: CorpusData, train_indices: np.ndarray, config: ExperimentConfig):
    """Word vectors for every utterance: the user's file (``--embeddings``); else, for a corpus that ships a pretraining
    text (the demo corpora), Word2Vec trained on that text (the same vectors for every fold); else Word2Vec trained on
    this fold's training transcripts only."""
    from privemo.features.lexical import embed, load_embeddings, pretrained_word2vec, train_word2vec

    pretraining = data.table.attrs.get("pretraining_text")
    if not (config.embeddings or pretraining):
        return embed(data.table, train_word2vec(data.table, train_indices, seed=config.seed))
    if data.shared_lexical is None:  # a vector file is read, or the pretraining text embedded, once per corpus
        if config.embeddings:
            vectors = load_embeddings(config.embeddings)
        else:
            vectors = pretrained_word2vec(pretraining, seed=config.seed)
        data.shared_lexical = embed(data.table, vectors)
    return data.shared_lexical


def targets(data: CorpusData, condition: Condition, fold, train_rows: np.ndarray) -> tuple[dict, dict, dict]:
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
        heads = adversary_heads(condition)
        for head in heads:
            y[head], w[head] = labels, weights
    elif condition.adversary == "speaker":
        train_speakers = sorted(set(data.speakers[train_rows]) - {""})
        index = {s: i for i, s in enumerate(train_speakers)}
        labels = np.array([index.get(s, 0) for s in data.speakers], dtype=np.int32)
        weights = np.zeros(n, np.float32)
        rows = train_rows[[data.speakers[i] in index for i in train_rows]]
        weights[rows] = class_weights(labels[rows], len(train_speakers))
        for head in adversary_heads(condition):
            y[head], w[head] = labels, weights
        meta["n_speakers"] = len(train_speakers)
    return y, w, meta


def adversary_heads(condition: Condition) -> list[str]:
    """The adversary outputs of the condition's network (``privemo.nn.models.model_outputs``)."""
    from privemo.nn.models import adversary_output_names

    return adversary_output_names(condition.modalities, condition.adversary, condition.placement)


def holdout_rows(data: CorpusData, fold, config: ExperimentConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): ``config.mi_holdout`` of every training speaker's utterances are kept out of
    training as the membership attack's same-speaker non-members. It depends only on the run's seed and the fold, so
    every condition of a fold trains on the same rows."""
    from privemo.privacy.membership import holdout_split

    train = np.asarray(fold.train, np.int64)
    if not config.mi_holdout:
        return train, train[:0]
    kept, held = holdout_split(data.speakers[train], share=config.mi_holdout, seed=config.seed)
    return np.sort(train[kept]), np.sort(train[held])


def model_inputs(data: CorpusData, condition: Condition, lexical) -> dict[str, Sequence[np.ndarray]]:
    inputs: dict[str, Sequence[np.ndarray]] = {}
    if "acoustic" in condition.modalities:
        inputs["acoustic"] = data.acoustic
    if "lexical" in condition.modalities:
        if lexical is None:
            raise ValueError("lexical inputs were not prepared for this fold")
        inputs["lexical"] = lexical
    return inputs


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
    selection: str = "probe"  # the rule this (condition, fold) selects by (config.selection, or the fallback)
    selection_fallback: str | None = None  # why the fold fell back to selection on emotion alone

    def search_kwargs(self) -> dict:
        """Keyword arguments of ``tuner.search`` besides the training dataset."""
        return {"val_targets": self.val_targets, "probe": self.probe, "verbose": 0, "callbacks": list(self.callbacks)}
