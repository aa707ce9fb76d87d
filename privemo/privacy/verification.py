"""Speaker verification attack: can an attacker link two utterances of the same, unseen speaker through h?

`privemo.privacy.attribute.speaker_attack` asks whether an attacker who has seen some of a speaker's utterances can name
the speaker of others (closed-set identification). The threat the VoicePrivacy challenge evaluates is linkage: given two
representations of speakers the attacker has never seen, can it tell whether they come from the same person? This
module measures that with the challenge's *semi-informed attacker* design, on plain NumPy arrays.

Protocol (modelled on the VoicePrivacy challenge; the attacker, its back-end and the trial list are privemo's
assumptions, the paper has no such attack):

- The attacker knows the training speakers' representations and identities (h_train, speakers_train), i.e. it sees
  the system's output for speakers it can label, and learns a speaker verifier on them only: standardise (statistics of
  h_train), linear discriminant analysis across training speakers (scikit-learn ``LinearDiscriminantAnalysis`` with the
  'eigen' solver and Ledoit-Wolf shrinkage ``shrinkage='auto'``, which stays stable when there are few utterances per
  dimension; n_components = min(n_train_speakers - 1, n_features)), then length normalisation. A trial is scored by
  the cosine similarity of the two projected utterances (the usual LDA + cosine back-end of x-vector systems).
- Trials are pairs among the evaluation utterances (speakers disjoint from the training speakers, e.g. the test
  speakers): every same-speaker pair is a target trial and every different-speaker pair a non-target trial. Beyond
  ``max_trials`` of a kind (default 200,000), that many are drawn without replacement with ``seed``.
- Reported: the equal error rate (EER) -- the operating point where the false-acceptance rate equals the
  false-rejection rate, read off scikit-learn's ``roc_curve`` and linearly interpolated between the two ROC points that
  bracket it. 0.5 = nothing links utterances of a speaker, 0 = perfectly linked. With ``genders_eval`` also
  ``eer_same_gender``: target trials against only the non-target trials whose two utterances have the same gender, so
  that gender -- which differs between speakers -- cannot stand in for identity (VoicePrivacy scores same-gender trials
  only). A representation that hides identity but keeps gender has eer_same_gender near 0.5 while its eer is lower.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import roc_curve
from sklearn.preprocessing import StandardScaler

from privemo._util.validation import check_int, check_matrix, invalid
from privemo.privacy.checks import check_labels

__all__ = ["speaker_verification_attack", "equal_error_rate", "verification_support", "MAX_TRIALS"]

MAX_TRIALS = 200_000  # assumption: at most this many target and this many non-target trials (seeded sample beyond)
_ENUMERATE_LIMIT = 2_000_000  # list all pairs of the evaluation set when there are at most this many (~n = 2,000)


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """Equal error rate of scores for binary trial labels (1 = target, 0 = non-target), higher score = more target.

    The ROC curve (scikit-learn ``roc_curve``) runs from (FPR 0, FNR 1) to (FPR 1, FNR 0); the EER is where FNR - FPR
    changes sign, linearly interpolated between the two ROC points around the crossing.
    """
    labels = np.asarray(labels)
    if np.unique(labels).size != 2:
        raise invalid("labels", "both target (1) and non-target (0) trials",
                      received=f"classes {np.unique(labels).tolist()}")
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # 1 at the first point, -1 at the last, non-increasing
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0 or i == 0:
        return float(fpr[i])
    w = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def _pairs_within(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs of positions within each group."""
    firsts, seconds = [], []
    for idx in groups:
        a, b = np.triu_indices(idx.size, k=1)
        firsts.append(idx[a])
        seconds.append(idx[b])
    return np.concatenate(firsts), np.concatenate(seconds)


def _sample_pairs(draw, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` distinct unordered pairs (i < j) from repeated ``draw(m)`` calls, each returning up to m random pairs
    (i, j), i != j (used only when listing all pairs would be too large). Keeps first occurrences in draw order, so the
    result depends only on the generator behind ``draw``."""
    found = np.zeros((0, 2), dtype=np.int64)
    while len(found) < size:
        i, j = draw(2 * size)
        pairs = np.column_stack([np.minimum(i, j), np.maximum(i, j)])
        merged = np.concatenate([found, pairs])
        _, first = np.unique(merged[:, 0] * n + merged[:, 1], return_index=True)
        found = merged[np.sort(first)]  # first occurrences, in draw order
    found = found[:size]
    return found[:, 0], found[:, 1]


def _trials(speakers: np.ndarray, rng: np.random.Generator, max_trials: int):
    """Target and non-target pairs of evaluation utterances (at most ``max_trials`` of each, seeded sample beyond).

    Returns (targets, nontargets, n_target_available, n_nontarget_available); each trial array is (i, j) positions.
    """
    n = speakers.size
    _, inverse, counts = np.unique(speakers, return_inverse=True, return_counts=True)
    n_target = int(np.sum(counts * (counts - 1) // 2))
    n_all = n * (n - 1) // 2
    n_nontarget = n_all - n_target

    def cap(first: np.ndarray, second: np.ndarray):
        if first.size > max_trials:
            keep = np.sort(rng.choice(first.size, max_trials, replace=False))
            first, second = first[keep], second[keep]
        return first, second

    if n_target <= _ENUMERATE_LIMIT:
        targets = cap(*_pairs_within([np.flatnonzero(inverse == k) for k in range(counts.size)]))
    else:  # a speaker, weighted by its number of pairs, then two of its utterances: uniform over target pairs
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        weights = counts * (counts - 1) / 2.0

        def draw_target(m: int):
            k = rng.choice(counts.size, m, p=weights / weights.sum())
            u = rng.integers(0, counts[k])
            v = rng.integers(0, counts[k] - 1)
            v = v + (v >= u)
            return order[starts[k] + u], order[starts[k] + v]

        targets = _sample_pairs(draw_target, min(max_trials, n_target), n)
    if n_all <= _ENUMERATE_LIMIT:
        a, b = np.triu_indices(n, k=1)
        other = inverse[a] != inverse[b]
        nontargets = cap(a[other], b[other])
    else:  # uniform pairs of utterances, same-speaker ones rejected

        def draw_nontarget(m: int):
            i = rng.integers(0, n, m)
            j = rng.integers(0, n - 1, m)
            j = j + (j >= i)
            other = inverse[i] != inverse[j]
            return i[other], j[other]

        nontargets = _sample_pairs(draw_nontarget, min(max_trials, n_nontarget), n)
    return targets, nontargets, n_target, n_nontarget


def _speaker_interval(scores: np.ndarray, is_target: np.ndarray, spk_a: np.ndarray, spk_b: np.ndarray,
                      stratum: np.ndarray, n_resamples: int, seed: int, level: float = 0.95,
                      n_bins: int = 2000) -> list[float] | None:
    """Percentile interval of the EER under resamples of whole evaluation speakers (within ``stratum``, e.g. gender):
    a drawn speaker's target trials count once per draw, a non-target trial between speakers a and b counts
    m_a * m_b times (m = how often each was drawn); pairs between two draws of one speaker are not trials. The trials
    are the attack's own; each resample only reweights them. Scores are binned at ``n_bins`` quantiles (an EER
    resolution of 1 / n_bins of the trials) so that a resample costs one matrix product."""
    from privemo.metrics import speaker_resamples

    n_spk = stratum.size
    if n_spk < 2:
        return None
    edges = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    bins = edges.size + 1
    score_bin = bins - 1 - np.searchsorted(edges, scores, side="right")  # bin 0 = highest scores
    lo, hi = np.minimum(spk_a, spk_b), np.maximum(spk_a, spk_b)
    hist_t = np.zeros((n_spk, bins))
    np.add.at(hist_t, (lo[is_target], score_bin[is_target]), 1.0)
    pair = lo * n_spk + hi
    hist_n = np.zeros((n_spk * n_spk, bins))
    np.add.at(hist_n, (pair[~is_target], score_bin[~is_target]), 1.0)
    used = np.flatnonzero(hist_n.any(axis=1))
    hist_n, pa, pb = hist_n[used], used // n_spk, used % n_spk
    idx = speaker_resamples(stratum, n_resamples, seed)
    m = np.zeros((n_resamples, n_spk))
    np.add.at(m, (np.repeat(np.arange(n_resamples), n_spk), idx.ravel()), 1.0)
    accepted_t = np.cumsum(m @ hist_t, axis=1)
    accepted_n = np.cumsum((m[:, pa] * m[:, pb]) @ hist_n, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fnr = np.concatenate([np.ones((n_resamples, 1)), 1.0 - accepted_t / accepted_t[:, -1:]], axis=1)
        fpr = np.concatenate([np.zeros((n_resamples, 1)), accepted_n / accepted_n[:, -1:]], axis=1)
        diff = fnr - fpr
        i = np.argmax(diff <= 0, axis=1)
        rows, prev = np.arange(n_resamples), np.maximum(i - 1, 0)
        d0, d1 = diff[rows, prev], diff[rows, i]
        frac = np.where(d0 - d1 > 0, d0 / (d0 - d1), 0.0)
        stats = fpr[rows, prev] + frac * (fpr[rows, i] - fpr[rows, prev])
    stats[~np.isfinite(accepted_n[:, -1]) | (accepted_n[:, -1] == 0)] = np.nan
    if np.isnan(stats).all():
        return None
    return [float(q) for q in np.nanquantile(stats, [(1 - level) / 2, (1 + level) / 2])]


def _check_inputs(h_train, speakers_train, h_eval, speakers_eval, genders_eval, max_trials):
    """The verification attack's inputs checked (protocol in the module docstring)."""
    h_train = check_matrix("h_train", h_train).astype(np.float64)
    speakers_train = check_labels("speakers_train", speakers_train, len(h_train))
    h_eval = check_matrix("h_eval", h_eval, n_features=h_train.shape[1]).astype(np.float64)
    speakers_eval = check_labels("speakers_eval", speakers_eval, len(h_eval))
    max_trials = check_int("max_trials", max_trials, 1)
    train_names, train_counts = np.unique(speakers_train, return_counts=True)
    if train_names.size < 2:
        raise invalid("speakers_train", "at least 2 distinct training speakers to learn a verifier from",
                      received=f"{train_names.size} speaker ({train_names.tolist()})")
    if train_counts.max() < 2:
        raise invalid("speakers_train", "at least one training speaker with 2 or more utterances (within-speaker "
                      "variation)", received=f"{train_names.size} speakers with 1 utterance each")
    eval_names, eval_counts = np.unique(speakers_eval, return_counts=True)
    if eval_names.size < 2:
        raise invalid("speakers_eval", "at least 2 distinct evaluation speakers (for different-speaker trials)",
                      received=f"{eval_names.size} speaker ({eval_names.tolist()})")
    single = eval_names[eval_counts < 2]
    if single.size:
        shown = ", ".join(map(repr, single[:10].tolist())) + (" ..." if single.size > 10 else "")
        raise invalid("speakers_eval", "at least 2 utterances per evaluation speaker (for same-speaker trials; drop "
                      "the others first)", received=f"speakers with 1 utterance: {shown}")
    genders = None if genders_eval is None else check_labels("genders_eval", genders_eval, len(h_eval))
    return h_train, speakers_train, h_eval, speakers_eval, genders, max_trials


def _embed(h_train, speakers_train, h_eval, n_components: int) -> np.ndarray:
    """The evaluation utterances in the verifier's space: standardised (training statistics), LDA learnt on the
    training speakers, length-normalised."""
    scaler = StandardScaler().fit(h_train)
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto", n_components=n_components)
    lda.fit(scaler.transform(h_train), speakers_train)
    z = lda.transform(scaler.transform(h_eval))
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z


def _method(n_components: int, max_trials: int) -> str:
    return (
        "semi-informed verifier learnt on the training speakers only: standardise (training statistics), LDA "
        f"(eigen solver, Ledoit-Wolf shrinkage, {n_components} components), length normalisation, cosine "
        "scoring of all same-speaker (target) and different-speaker (non-target) pairs of evaluation utterances "
        f"(at most {int(max_trials)} of each, seeded sample beyond); EER interpolated on scikit-learn's roc_curve"
    )


def speaker_verification_attack(
    h_train: np.ndarray,
    speakers_train: np.ndarray,
    h_eval: np.ndarray,
    speakers_eval: np.ndarray,
    genders_eval: np.ndarray | None = None,
    seed: int = 0,
    *,
    max_trials: int = MAX_TRIALS,
    n_bootstrap: int = 0,
) -> dict[str, Any]:
    """Equal error rate of a semi-informed speaker-verification attacker on representations (protocol above).

    Args:
        h_train: (n_train, n_features) representations of the speakers the attacker learns from (e.g. the training
            speakers).
        speakers_train: (n_train,) their speaker labels; at least 2 speakers, one of them with 2+ utterances.
        h_eval: (n_eval, n_features) representations of the speakers to link, normally disjoint from the training
            speakers (e.g. the test speakers).
        speakers_eval: (n_eval,) their speaker labels; at least 2 speakers with at least 2 utterances each.
        genders_eval: optional (n_eval,) gender labels of the evaluation utterances (no missing values) for
            ``eer_same_gender``.
        seed: seeds the sample of trials when there are more than ``max_trials`` of a kind.
        max_trials: at most this many target and this many non-target trials.
        n_bootstrap: resamples of whole evaluation speakers (within gender when ``genders_eval`` is given) for the
            95 % intervals ``eer_ci`` / ``eer_same_gender_ci`` (0 = none).

    Returns a JSON-ready dict: ``eer`` (0.5 = no linkage, 0 = perfect), ``eer_same_gender`` (None without
    ``genders_eval`` or without same-gender non-target trials), ``n_target`` / ``n_nontarget`` (trials scored),
    ``n_target_available`` / ``n_nontarget_available``, ``n_nontarget_same_gender``, ``n_speakers`` (evaluation),
    ``n_train_speakers``, ``n_components`` (LDA dimensions), ``chance`` (0.5), ``seed`` and ``method``.
    """
    h_train, speakers_train, h_eval, speakers_eval, genders, max_trials = _check_inputs(
        h_train, speakers_train, h_eval, speakers_eval, genders_eval, max_trials)
    train_names = np.unique(speakers_train)
    n_eval_speakers = np.unique(speakers_eval).size
    n_components = int(min(train_names.size - 1, h_train.shape[1]))
    z = _embed(h_train, speakers_train, h_eval, n_components)
    rng = np.random.default_rng(seed)
    (ti, tj), (ni, nj), n_target_available, n_nontarget_available = _trials(speakers_eval, rng, int(max_trials))
    target_scores = np.einsum("ij,ij->i", z[ti], z[tj])
    nontarget_scores = np.einsum("ij,ij->i", z[ni], z[nj])

    def eer_of(nontarget: np.ndarray) -> float:
        labels = np.concatenate([np.ones(target_scores.size), np.zeros(nontarget.size)])
        return equal_error_rate(labels, np.concatenate([target_scores, nontarget]))

    result: dict[str, Any] = {
        "eer": eer_of(nontarget_scores), "eer_same_gender": None,
        "n_target": int(target_scores.size), "n_nontarget": int(nontarget_scores.size), "n_nontarget_same_gender": None,
        "n_target_available": n_target_available, "n_nontarget_available": n_nontarget_available,
        "n_speakers": int(n_eval_speakers), "n_train_speakers": int(train_names.size), "n_components": n_components,
        "chance": 0.5, "seed": int(seed), "method": _method(n_components, max_trials),
    }
    same = None
    if genders is not None:
        same = genders[ni] == genders[nj]
        result["n_nontarget_same_gender"] = int(same.sum())
        if same.any():
            result["eer_same_gender"] = eer_of(nontarget_scores[same])
    if n_bootstrap:
        from privemo.metrics import SPEAKER_CI_METHOD

        names, spk = np.unique(speakers_eval, return_inverse=True)
        _, first = np.unique(speakers_eval, return_index=True)
        stratum = genders[first] if genders is not None else np.zeros(names.size, np.int64)
        scores = np.concatenate([target_scores, nontarget_scores])
        is_target = np.concatenate([np.ones(target_scores.size, bool), np.zeros(nontarget_scores.size, bool)])
        a, b = spk[np.concatenate([ti, ni])], spk[np.concatenate([tj, nj])]
        result["eer_ci"] = _speaker_interval(scores, is_target, a, b, stratum, int(n_bootstrap), seed)
        if result["eer_same_gender"] is not None:
            keep = np.concatenate([np.ones(target_scores.size, bool), same])
            result["eer_same_gender_ci"] = _speaker_interval(scores[keep], is_target[keep], a[keep], b[keep], stratum,
                                                             int(n_bootstrap), seed)
        result["ci_method"] = SPEAKER_CI_METHOD + ("" if genders is not None else "; genders not given: one stratum")
    return result


def verification_support(speakers: np.ndarray, genders: np.ndarray) -> str | None:
    """None when these evaluation utterances can support an honest speaker-linkability figure, else the reason.

    Needs two speakers with two utterances each; and, where genders are known, two speakers of one gender: with one
    female and one male speaker every different-speaker pair is also a different-gender pair, so the EER would
    measure gender, not identity (the 10-speaker demo's folds)."""
    names, counts = np.unique(speakers, return_counts=True)
    names = names[counts >= 2]
    if len(names) < 2:
        return f"{len(names)} speaker(s) with two or more utterances: no different-speaker trials"
    if (genders >= 0).all():
        per_gender = np.unique([genders[speakers == n][0] for n in names], return_counts=True)[1]
        if per_gender.max() < 2:
            return (f"{len(names)} speakers, one per gender: every different-speaker pair is a different-gender pair, "
                    "so the EER would measure gender, not identity (no same-gender trials)")
    return None
