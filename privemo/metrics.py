"""Metrics: unweighted average recall (UAR), the paper's emotion and privacy measure."""

from __future__ import annotations

import numpy as np

def uar(y_true, y_pred) -> float:
    """Unweighted average recall: the mean of per-class recalls (scikit-learn's balanced accuracy, same value).

    ``y_pred`` may be class indices or a (n, classes) score matrix, which is arg-maxed; ``y_true`` may be one-hot.
    The mean runs over the classes present in ``y_true``: a class that only ``y_pred`` contains has no recall. That is
    scikit-learn's definition too, but scikit-learn warns ("y_pred contains classes not in y_true") every time, and a
    bootstrap resample or a small validation fold lacks a rare class often, so privemo computes it here, silently.
    """
    from sklearn.utils.multiclass import type_of_target

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(axis=1)
    if y_true.ndim == 2:
        y_true = y_true.argmax(axis=1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length. Received: {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("uar() needs at least one sample. Received: empty arrays")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Invalid value received for argument `{name}`. Expected class labels (1-D) or a (n, "
                             f"classes) score matrix. Received: {name} of type {kind!r}, shape {y.shape}")
    classes, index = np.unique(y_true, return_inverse=True)
    index = index.reshape(-1)
    hits = np.bincount(index, weights=(y_true == y_pred).astype(np.float64), minlength=len(classes))
    return float(np.mean(hits / np.bincount(index, minlength=len(classes))))


SPEAKER_BOOTSTRAP_RESAMPLES = 1000  # resamples of the test speakers behind every speaker-level interval
SPEAKER_CI_METHOD = ("cluster bootstrap over test speakers (speakers resampled with replacement within each gender, "
                     "or over all test speakers where a gender has only one; all of a drawn speaker's utterances kept; "
                     "percentile interval)")


def speaker_counts(y_true, y_pred, speakers, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per speaker and class: (speaker names, support (S, K), hits (S, K)), the sufficient statistics of UAR under any
    resample of whole speakers (``speaker_resamples``)."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(axis=1)
    speakers = np.asarray(speakers)
    if not (len(y_true) == len(y_pred) == len(speakers)):
        raise ValueError(f"y_true, y_pred and speakers must have the same length. Received: {len(y_true)}, "
                         f"{len(y_pred)} and {len(speakers)}")
    names, s = np.unique(speakers, return_inverse=True)
    s = s.reshape(-1)
    flat = s * n_classes + y_true
    size = len(names) * n_classes
    support = np.bincount(flat, minlength=size).reshape(len(names), n_classes).astype(np.float64)
    hits = np.bincount(flat, weights=(y_true == y_pred).astype(np.float64), minlength=size)
    return names, support, hits.reshape(len(names), n_classes)


def speaker_resamples(strata, n_resamples: int = SPEAKER_BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(n_resamples, S) positions of speakers drawn with replacement within each stratum (e.g. gender), so every
    resample keeps each stratum's number of speakers. Stratification needs two speakers in every stratum: where a
    stratum has one (the demo's folds: one female and one male test speaker), stratifying would freeze the resample, so
    speakers are drawn from all of them instead (a resample may then hold one gender only)."""
    strata = np.asarray(strata)
    if np.unique(strata, return_counts=True)[1].min(initial=2) < 2:
        strata = np.zeros(len(strata), np.int64)
    rng = np.random.default_rng(seed)
    idx = np.empty((int(n_resamples), len(strata)), np.int64)
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        idx[:, members] = members[rng.integers(0, len(members), size=(int(n_resamples), len(members)))]
    return idx


def uar_from_counts(support: np.ndarray, hits: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray | float:
    """UAR from per-speaker counts (``speaker_counts``): of all speakers, or of every resample in ``idx`` (one value
    per row). Classes without support in a resample are left out of its mean, as ``uar`` does."""
    if idx is None:
        total, correct = support.sum(axis=0), hits.sum(axis=0)
        present = total > 0
        return float(np.mean(correct[present] / total[present]))
    total, correct = support[idx].sum(axis=1), hits[idx].sum(axis=1)
    recall = np.divide(correct, total, out=np.full(total.shape, np.nan), where=total > 0)
    return np.nanmean(recall, axis=1)


def speaker_uar_interval(y_true, y_pred, speakers, strata=None, *, n_classes: int | None = None, level: float = 0.95,
                         n_resamples: int = SPEAKER_BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """UAR with a speaker-level interval (``SPEAKER_CI_METHOD``): the unit that generalises is the speaker, so whole
    speakers are resampled (within ``strata``, one label per utterance, e.g. the speaker's gender).

    Returns {"ci": [low, high], "level", "method", "n_speakers", "per_speaker"}; ``per_speaker`` (speakers, stratum,
    support, hits) lets a paired interval between two networks on the same speakers be computed later
    (``paired_speaker_difference``). ``ci`` is None with fewer than two speakers."""
    y_true = np.asarray(y_true, np.int64)
    k = int(n_classes if n_classes is not None else y_true.max() + 1)
    names, support, hits = speaker_counts(y_true, y_pred, speakers, k)
    strata = np.zeros(len(y_true), np.int64) if strata is None else np.asarray(strata)
    _, first = np.unique(np.asarray(speakers), return_index=True)  # each speaker's stratum from its first utterance
    stratum = strata[first]
    ci = None
    if len(names) >= 2:
        stats = uar_from_counts(support, hits, speaker_resamples(stratum, n_resamples, seed))
        ci = [float(q) for q in np.nanquantile(stats, [(1 - level) / 2, (1 + level) / 2])]
    return {"ci": ci, "level": level, "method": SPEAKER_CI_METHOD, "n_speakers": int(len(names)),
            "per_speaker": {"speakers": [str(n) for n in names], "stratum": [int(s) for s in stratum],
                            "support": support.astype(int).tolist(), "hits": hits.astype(int).tolist()}}


def paired_speaker_difference(a: dict, b: dict, *, n_resamples: int = SPEAKER_BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of UAR(b) - UAR(a) for two networks scored on the same speakers (``per_speaker`` dicts
    of ``speaker_uar_interval``), the same speakers drawn for both (paired)."""
    if a["speakers"] != b["speakers"]:
        raise ValueError("paired_speaker_difference needs the same speakers in both. Received: "
                         f"{a['speakers'][:5]}... and {b['speakers'][:5]}...")
    idx = speaker_resamples(np.asarray(a["stratum"]), n_resamples, seed)
    ua = uar_from_counts(np.asarray(a["support"], float), np.asarray(a["hits"], float), idx)
    ub = uar_from_counts(np.asarray(b["support"], float), np.asarray(b["hits"], float), idx)
    return ub - ua
