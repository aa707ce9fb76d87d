"""Membership identification: from a frozen emotion model's output probabilities, were these utterances trained on?

Everything here works on plain NumPy arrays -- the model's emotion probabilities of shape (n_utterances, n_classes) and
the true class indices -- so it does not depend on how the model was built. Attribute attacks on the representations
are in `privemo.privacy.attribute`.

Membership identification (MI) protocol
---------------------------------------
Question: from the emotion model's output probabilities alone, can an attacker tell whether an utterance was in the
model's training set? (The paper reports an MI column without stating its protocol; this is privemo's assumption.)

- Members are training utterances; non-members are held-out utterances the model never trained on. The caller
  chooses them. Non-members of the *same* speakers measure memorisation of utterances: `holdout_split` holds out a
  fixed share (default 20 %, at least one) of every training speaker's utterances before training, and
  `membership_inference` attacks with them. Non-members from other speakers (privemo's experiment used the test
  speakers' utterances, `membership_attack`) add the shift between speakers to the figure. Both groups are scored by
  the frozen model and passed as probability matrices with their true emotion labels.
- Balanced sets: the larger group is subsampled (seeded) to the size n of the smaller, so chance accuracy is 0.5.
- Each group is split at random into two halves, giving two balanced halves A and B. Every attack is fitted on one
  half and evaluated on the other, in both directions (two-fold cross-fitting); accuracy is computed over all 2n
  predictions, AUC (scikit-learn ``roc_auc_score``) and TPR at 10 % FPR (the highest true-positive rate among
  thresholds with a false-positive rate of at most 0.10 on scikit-learn's ``roc_curve``) are the means over the two
  evaluation halves.
- Attacks: (a) loss threshold -- per-utterance cross-entropy of the true label, "member" when below a threshold picked
  to maximise accuracy on the fitting half; (b) confidence threshold -- the same on the maximum probability ("member"
  when above); (c) a learned attack -- a logistic regression (C = 1, standardised inputs) on the probability vector
  sorted in decreasing order, the loss, the one-hot true label and loss x one-hot label (a per-class loss threshold).
- Reported: accuracy, AUC and TPR at 10 % FPR per attack; ``auc`` = the AUC of the attack that each fitting half
  chooses by two-fold cross-fitting inside itself (so the choice never sees the pairs it is scored on; 0.5 = nothing
  leaks), with that attack's TPR at 10 % FPR and accuracy; ``auc_upper_bound`` = the highest AUC over the three
  attacks (a hindsight maximum, optimistic); and the best accuracy over the attacks (the max
  over three attacks evaluated on the same data is slightly optimistic, i.e. conservative for privacy), with the
  number of members and non-members used (and available). The standard deviation of accuracy at chance,
  0.5 / sqrt(2n), is given to judge whether a figure differs from 0.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from privemo._util.validation import invalid
from privemo.privacy.checks import check_labels

__all__ = ["MIReport", "membership_attack", "membership_inference", "holdout_split", "MI_CLASSIFIER_C", "MI_LOW_FPR",
           "HOLDOUT_SHARE"]

MI_CLASSIFIER_C = 1.0  # assumption: see README assumptions table (learned MI attack's logistic regression)
MI_LOW_FPR = 0.10  # the false-positive rate at which the membership attacks' true-positive rate is reported
HOLDOUT_SHARE = 0.2  # default share of every speaker's utterances held out as same-speaker non-members

_EPS = 1e-12
_MI_ATTACKS = ("loss_threshold", "confidence_threshold", "learned")


@dataclass
class MIReport:
    """Result of a membership-identification attack (see the module docstring for the protocol).

    ``attacks[name]`` = {"accuracy", "auc", "tpr_at_10fpr", ...} per attack. ``auc`` is the AUC of the attack chosen
    without the evaluation pairs (``auc_selection``; 0.5 = nothing leaks), ``auc_attack`` that attack (two names when
    the two fitting halves chose differently), and ``tpr_at_10fpr`` / ``accuracy`` are the same attack's.
    ``auc_upper_bound`` is the highest AUC over the attacks, chosen with hindsight on the evaluation pairs: an
    optimistic upper bound, never the reported figure.
    ``best_attack`` / ``best_accuracy`` is the max accuracy over attacks (kept for the tables). ``chance_std`` =
    0.5 / sqrt(n_members + n_nonmembers) is accuracy's standard deviation at chance.
    """

    attacks: dict[str, dict[str, Any]]
    best_attack: str
    best_accuracy: float
    n_members: int
    n_nonmembers: int
    n_members_available: int
    n_nonmembers_available: int
    chance: float = 0.5
    chance_std: float = float("nan")
    auc: float = float("nan")
    auc_attack: str = ""
    tpr_at_10fpr: float = float("nan")
    accuracy: float = float("nan")
    auc_selection: str = ("attack chosen inside each fitting half by two-fold cross-fitting there (highest AUC), then "
                          "scored on the other half: never chosen on the pairs it is evaluated on")
    auc_attacks_per_half: list | None = None
    auc_upper_bound: float = float("nan")
    auc_upper_bound_attack: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (``auc`` at the top level)."""
        return asdict(self)


def _check_probs(probs: Any, labels: Any, pname: str, lname: str, n_classes: int | None = None):
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise invalid(pname, "a 2-D array (n_utterances, n_classes >= 2) of model output probabilities",
                      received=f"{pname}.shape={p.shape}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise invalid(pname, f"{n_classes} classes, like the members' probabilities",
                      received=f"{pname}.shape={p.shape}")
    if not np.all(np.isfinite(p)) or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise invalid(pname, "finite non-negative rows summing to 1 (softmax outputs, not logits)",
                      received=f"row sums in [{np.nanmin(p.sum(axis=1)):.4g}, {np.nanmax(p.sum(axis=1)):.4g}]")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise invalid(lname, f"a 1-D array of {p.shape[0]} class indices", received=f"{lname}.shape={y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise invalid(lname, "integer class indices into the probability columns",
                          received=f"{lname}.dtype={y.dtype}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise invalid(lname, f"class indices in [0, {p.shape[1] - 1}]", received=f"values in [{y.min()}, {y.max()}]")
    return p, y.astype(np.int64)


def _check_mi_inputs(pm, ym, pn, yn, names: tuple[str, str, str, str]):
    pm, ym = _check_probs(pm, ym, names[0], names[1])
    pn, yn = _check_probs(pn, yn, names[2], names[3], pm.shape[1])
    if min(len(pm), len(pn)) < 4:
        raise invalid(names[0], "at least 4 members and 4 non-members (two per half after balancing)",
                      received=f"{len(pm)} members and {len(pn)} non-members")
    return pm, ym, pn, yn


def _mi_features(p: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    loss = -np.log(np.clip(p[np.arange(len(y)), y], _EPS, None))
    onehot = np.eye(p.shape[1])[y]
    learned = np.column_stack([-np.sort(-p, axis=1), loss, onehot, onehot * loss[:, None]])
    return {"loss": loss, "confidence": p.max(axis=1), "learned": learned}


def _fit_threshold(scores: np.ndarray, member: np.ndarray) -> float:
    """Threshold t maximising accuracy of 'member iff score > t' on scikit-learn's ``roc_curve`` (every distinct
    score a candidate, so tied scores never straddle t; ties in accuracy to the fewest predicted members).

    +inf: no one is a member; -inf: everyone is; otherwise the midpoint between the lowest score flagged and the next.
    """
    if np.unique(member).size != 2:  # one class: all or none of them right
        return float("-inf") if member.all() else float("inf")
    fpr, tpr, thresholds = roc_curve(member, scores, drop_intermediate=False)
    positives = int(np.sum(member))
    negatives = member.size - positives
    correct = np.rint(tpr * positives) + negatives - np.rint(fpr * negatives)  # exact counts: tp + tn
    k = int(np.argmax(correct))
    if k == 0:
        return float("inf")
    if k == len(thresholds) - 1:
        return float("-inf")
    return float((thresholds[k] + thresholds[k + 1]) / 2.0)


def _safe_auc(member: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(member, scores)) if np.unique(member).size == 2 else float("nan")


def _tpr_at_fpr(member: np.ndarray, scores: np.ndarray, max_fpr: float = MI_LOW_FPR) -> float:
    """Highest true-positive rate among the score thresholds whose false-positive rate is at most ``max_fpr``.

    An operating point an attacker can actually pick (no interpolation between ROC points).
    """
    if np.unique(member).size != 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(member, scores)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def _balanced_halves(pm, ym, pn, yn, rng: np.random.Generator):
    """The smaller group's size n of each group (seeded subsample), and each group split in two at random.

    Returns (p, y, member, half): 2n probabilities, labels, 1 / 0 membership and 0 / 1 half.
    """
    n = min(len(pm), len(pn))
    sel_m = np.sort(rng.choice(len(pm), n, replace=False))
    sel_n = np.sort(rng.choice(len(pn), n, replace=False))
    p = np.concatenate([pm[sel_m], pn[sel_n]])
    y = np.concatenate([ym[sel_m], yn[sel_n]])
    member = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    half = np.zeros(2 * n, dtype=np.int64)
    for group in (np.arange(n), np.arange(n, 2 * n)):
        perm = rng.permutation(group)
        half[perm[: n // 2]] = 1
    return p, y, member, half


def _cross_fit(feats: dict[str, np.ndarray], member: np.ndarray, half: np.ndarray, seed: int):
    """Every attack fitted on one half and evaluated on the other, both ways.

    Returns (preds, aucs, tprs, thresholds): cross-fitted predictions per attack, and per evaluation half the AUC and
    TPR at `MI_LOW_FPR` per attack and the threshold attacks' thresholds (in loss units for the loss attack).
    """
    preds = {name: np.zeros(member.size, dtype=np.int64) for name in _MI_ATTACKS}
    aucs: dict[str, list[float]] = {name: [] for name in preds}
    tprs: dict[str, list[float]] = {name: [] for name in preds}
    thresholds: dict[str, list[float]] = {"loss_threshold": [], "confidence_threshold": []}
    for fit_half in (0, 1):
        fit, ev = half == fit_half, half != fit_half
        for name, score in (("loss_threshold", -feats["loss"]), ("confidence_threshold", feats["confidence"])):
            t = _fit_threshold(score[fit], member[fit])
            preds[name][ev] = score[ev] > t
            aucs[name].append(_safe_auc(member[ev], score[ev]))
            tprs[name].append(_tpr_at_fpr(member[ev], score[ev]))
            thresholds[name].append(-t if name == "loss_threshold" else t)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=MI_CLASSIFIER_C, max_iter=5000, random_state=seed))
        clf.fit(feats["learned"][fit], member[fit])
        preds["learned"][ev] = clf.predict(feats["learned"][ev])
        score = clf.predict_proba(feats["learned"][ev])[:, 1]
        aucs["learned"].append(_safe_auc(member[ev], score))
        tprs["learned"].append(_tpr_at_fpr(member[ev], score))
    return preds, aucs, tprs, thresholds


def _inner_choice(feats: dict[str, np.ndarray], member: np.ndarray, rng: np.random.Generator, seed: int) -> str:
    """The attack an attacker would pick from its own fitting half: two-fold cross-fitting inside that half (split at
    random within members and within non-members), the highest mean AUC (ties in ``_MI_ATTACKS`` order)."""
    inner = np.zeros(member.size, dtype=np.int64)
    for group in (np.flatnonzero(member == 1), np.flatnonzero(member == 0)):
        perm = rng.permutation(group)
        inner[perm[: group.size // 2]] = 1
    _, aucs, _, _ = _cross_fit(feats, member, inner, seed)
    means = {name: float(np.nanmean(aucs[name])) if np.isfinite(aucs[name]).any() else -np.inf for name in _MI_ATTACKS}
    return max(_MI_ATTACKS, key=lambda name: means[name])


def _membership(pm, ym, pn, yn, seed: int) -> MIReport:
    rng = np.random.default_rng(seed)
    p, y, member, half = _balanced_halves(pm, ym, pn, yn, rng)
    feats = _mi_features(p, y)
    preds, aucs, tprs, thresholds = _cross_fit(feats, member, half, seed)
    attacks: dict[str, dict[str, Any]] = {}
    for name, pred in preds.items():
        attacks[name] = {
            "accuracy": float(np.mean(pred == member)),
            "auc": float(np.nanmean(aucs[name])),
            "tpr_at_10fpr": float(np.nanmean(tprs[name])),
        }
        if name in thresholds:
            key = "loss_thresholds" if name == "loss_threshold" else "confidence_thresholds"
            # one threshold per fitting half; None where the best rule was "everyone" / "no one" is a member
            attacks[name][key] = [float(t) if np.isfinite(t) else None for t in thresholds[name]]
    # the reported attack is chosen inside each fitting half, never on the half it is evaluated on
    chosen = [_inner_choice({k: v[half == h] for k, v in feats.items()}, member[half == h], rng, seed) for h in (0, 1)]
    chosen_pred = np.zeros(member.size, dtype=np.int64)
    for h, name in enumerate(chosen):
        chosen_pred[half != h] = preds[name][half != h]
    best = max(attacks, key=lambda a: attacks[a]["accuracy"])  # first among ties, in _MI_ATTACKS order
    upper = max(attacks, key=lambda a: attacks[a]["auc"])
    n = member.size // 2
    return MIReport(
        attacks=attacks, best_attack=best, best_accuracy=attacks[best]["accuracy"], n_members=n, n_nonmembers=n,
        n_members_available=len(pm), n_nonmembers_available=len(pn), chance=0.5,
        chance_std=float(0.5 / np.sqrt(2 * n)),
        auc=float(np.nanmean([aucs[name][h] for h, name in enumerate(chosen)])),
        auc_attack="/".join(dict.fromkeys(chosen)), auc_attacks_per_half=chosen,
        tpr_at_10fpr=float(np.nanmean([tprs[name][h] for h, name in enumerate(chosen)])),
        accuracy=float(np.mean(chosen_pred == member)),
        auc_upper_bound=attacks[upper]["auc"], auc_upper_bound_attack=upper,
    )


def membership_attack(
    member_probs: np.ndarray,
    member_labels: np.ndarray,
    nonmember_probs: np.ndarray,
    nonmember_labels: np.ndarray,
    *,
    seed: int = 0,
) -> MIReport:
    """Membership identification from the model's output probabilities (protocol in the module docstring).

    Args:
        member_probs: (n_m, n_classes) emotion probabilities of utterances the model trained on.
        member_labels: (n_m,) their true class indices.
        nonmember_probs: (n_n, n_classes) probabilities of held-out utterances (e.g. the test speakers, or the training
            speakers' own held-out utterances, see `holdout_split` and `membership_inference`).
        nonmember_labels: (n_n,) their true class indices.
        seed: seeds the balancing subsample, the half split and the learned attack.

    Returns an `MIReport`: accuracy (over all cross-fitted predictions), AUC and TPR at 10 % FPR per attack
    ("loss_threshold", "confidence_threshold", "learned"), the best accuracy, the AUC of the attack chosen without the evaluation pairs (``auc``), the hindsight maximum
    (``auc_upper_bound``) and the numbers
    of members / non-members used.
    """
    pm, ym, pn, yn = _check_mi_inputs(member_probs, member_labels, nonmember_probs, nonmember_labels,
                                      ("member_probs", "member_labels", "nonmember_probs", "nonmember_labels"))
    return _membership(pm, ym, pn, yn, seed)


def membership_inference(
    probs_members: np.ndarray,
    y_members: np.ndarray,
    probs_nonmembers: np.ndarray,
    y_nonmembers: np.ndarray,
    *,
    seed: int = 0,
) -> MIReport:
    """Membership inference against non-members of the *same* speakers (the attack of `membership_attack`).

    Intended use: hold out a share of every training speaker's utterances before training (`holdout_split`), train
    on the rest, and pass the model's probabilities of its training utterances as members and of the held-out
    utterances as non-members. Members and non-members then come from the same speakers, so the figure measures
    memorisation of utterances, not the shift between speakers that test-speaker non-members add. Each attack (loss
    threshold, confidence threshold, learned logistic regression) is fitted on one balanced half and tested on the
    other, both ways; the report gives per attack ROC AUC, TPR at 10 % FPR and accuracy, and at the top level the
    AUC of the attack chosen inside each fitting half (``auc``; 0.5 = nothing leaks) with that attack's
    ``tpr_at_10fpr`` and ``accuracy``, and the hindsight maximum over attacks (``auc_upper_bound``).

    Args:
        probs_members: (n_m, n_classes) output probabilities of the utterances the model trained on.
        y_members: (n_m,) their true class indices.
        probs_nonmembers: (n_n, n_classes) output probabilities of held-out utterances.
        y_nonmembers: (n_n,) their true class indices.
        seed: seeds the balancing subsample, the half split and the learned attack.
    """
    pm, ym, pn, yn = _check_mi_inputs(probs_members, y_members, probs_nonmembers, y_nonmembers,
                                      ("probs_members", "y_members", "probs_nonmembers", "y_nonmembers"))
    return _membership(pm, ym, pn, yn, seed)


def holdout_split(
    speakers: np.ndarray, share: float = HOLDOUT_SHARE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a fixed share of every speaker's utterances, e.g. as same-speaker non-members (`membership_inference`).

    For each speaker with c >= 2 utterances, max(1, round(share * c)) of them (at most c - 1, so every speaker keeps
    one) are drawn at random without replacement; a speaker with a single utterance keeps it. Deterministic per
    ``seed`` (one NumPy generator, speakers in sorted order). Returns (kept_idx, heldout_idx): sorted int64 positions
    into ``speakers``, disjoint and together covering every position. Every label is a speaker, including "" -- drop
    utterances of unknown speakers first.
    """
    arr = np.asarray(speakers)
    speakers = check_labels("speakers", arr, len(arr) if arr.ndim == 1 else -1)
    if speakers.size == 0:
        raise invalid("speakers", "a non-empty 1-D array of speaker labels", received="an empty array")
    if isinstance(share, bool) or not isinstance(share, Real) or not 0.0 < share < 1.0:
        raise invalid("share", "a fraction in (0, 1) of every speaker's utterances to hold out", share)
    _, inverse = np.unique(speakers, return_inverse=True)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for k in range(int(inverse.max()) + 1):
        idx = np.flatnonzero(inverse == k)
        if idx.size < 2:
            continue
        n_out = min(idx.size - 1, max(1, int(round(share * idx.size))))
        held.append(rng.choice(idx, n_out, replace=False))
    heldout = np.sort(np.concatenate(held)).astype(np.int64) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(speakers.size, dtype=np.int64), heldout)
    return kept, heldout
