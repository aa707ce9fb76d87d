"""Attribute attacks: fresh attackers on frozen representations predict gender, or speaker identity.

Every privacy figure privemo reports comes from an attacker trained *afresh* after the emotion model is frozen (the
adversary head's own accuracy during training says little: a jointly trained gradient reversal layer can leave the
attribute in h while its head is fooled). Everything here works on plain NumPy arrays -- representations h of shape
(n_utterances, n_features) -- so it does not depend on how h was produced. Membership identification is in
`privemo.privacy.membership`, linkage of unseen speakers (speaker verification, EER) in `privemo.privacy.verification`.

Attribute attack protocol (gender, or speaker identity)
-------------------------------------------------------
- The paper's attacker (`MLPAttacker`, `train_attacker`): an MLP of ``dense_layers`` x Dense(``dense_width``, relu)
  and a softmax, one per configuration of the paper's grid (dense layers {2, 3, 4} x width {32, 64},
  `privemo.privacy.grids.ATTACKER_GRID`). Assumptions (not in the paper): inputs standardised with statistics of the
  attacker's training set; Adam (learning rate 1e-3), batch size 64, class-balanced sample weights; early stopping on
  the validation UAR computed on the whole validation set after every epoch (at most 100 epochs, patience 10),
  restoring the best epoch's weights; the configuration with the best validation UAR is kept.
- Beyond the paper: logistic regression (C picked on validation UAR from {0.01, 0.1, 1, 10}), an RBF support vector
  machine (C from {0.1, 1, 10} x gamma from {1/4, 1, 4} / n_features, picked on validation UAR; trained on at most
  10000 utterances, a stratified seeded subsample beyond that; probabilities by Platt scaling on out-of-fold decision
  values) and histogram gradient boosting (one small fixed configuration `HGB_PARAMS`, no early stopping), all on
  standardised inputs with balanced class weights (`privemo.privacy.sklearn_attacker`).
- Data (default of `attack_representation`, design assumption): attackers are trained on the training speakers'
  representations and tuned / early-stopped on the validation speakers (within each attacker family, by validation
  UAR as above).
- Selection among the attackers: each family's tuned attacker gets its validation log-loss (scikit-learn ``log_loss``
  of its class probabilities, clipped to [1e-7, 1]); ``strongest`` is the one with the lowest (ties to the earlier
  name in ``attackers``). Log-loss uses every probability, so it separates attackers that UAR on a few hundred
  validation utterances cannot (selection by validation UAR can favour an attacker that fit the validation noise).
- Refit: the selected attacker is retrained with its chosen hyper-parameters on training + validation speakers (the
  MLP for its best epoch count, the epoch index + 1, without early stopping; sklearn attackers with their chosen
  setting) and then scored (UAR) on the test speakers: that test UAR is the reported leakage, with a seeded
  percentile bootstrap 95 % interval (1000 resamples; the attacker is not retrained, so it covers test-set sampling
  only): over whole test speakers, stratified by the attribute, when the test rows' speakers are given (the
  experiment does), else over test utterances. The training-only fit's test UAR is kept too. The other attackers are scored as
  trained on the training speakers; the highest test UAR over all attackers is reported, labelled an optimistic
  upper bound (it selects on the test set). Chance UAR is 1 / n_classes (0.5 for gender).
- Without validation data (``h_val`` None or empty) attackers are tuned and selected on the training data (optimistic)
  and the refit retrains on the same data, which reproduces the training fit exactly.
- Speaker identity (`speaker_attack`): test speakers are unseen in training, so speaker identity can only be attacked
  among a set's own speakers. The utterances of each speaker in the given set (by default the test speakers) are split
  at random (seeded, per speaker, so the split is stratified) into 50 % attacker-train / 25 % attacker-validation /
  25 % attacker-test, and the same attackers are trained, selected, refit and scored; chance UAR is 1 / n_speakers.
  Each speaker needs at least 3 utterances.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from numbers import Real
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.metrics import log_loss
from sklearn.preprocessing import LabelEncoder

from privemo._util.validation import check_int, check_matrix, invalid
from privemo.privacy.attackers import (
    ATTACKER_BATCH_SIZE,
    ATTACKER_LEARNING_RATE,
    ATTACKER_MAX_EPOCHS,
    ATTACKER_PATIENCE,
    ATTACKERS,
    DEFAULT_ATTACKERS,
    train_attacker,
)
from privemo.privacy.checks import check_labels, check_train_val, encode_labels, fit_classes
from privemo.privacy.grids import ATTACKER_GRID

__all__ = ["AttackReport", "attack_representation", "speaker_attack", "split_by_speaker", "bootstrap_uar_ci",
           "SPEAKER_SPLIT", "BOOTSTRAP_RESAMPLES", "PROBA_CLIP"]

SPEAKER_SPLIT: tuple[float, float, float] = (0.5, 0.25, 0.25)  # assumption: see README assumptions table
BOOTSTRAP_RESAMPLES = 1000  # resamples of the test utterances for the selected attacker's 95 % UAR interval
PROBA_CLIP = 1e-7  # probabilities are clipped to [PROBA_CLIP, 1] (rows renormalised) before the validation log-loss


@dataclass
class AttackReport:
    """Result of attacking one representation for one attribute (protocol in the module docstring).

    ``results[name]`` = {"val_uar", "val_log_loss", "test_uar", "config", "refit"} per attacker. ``strongest`` is the
    attacker with the lowest validation log-loss (honest selection; ``selection`` says on which data), refit on training
    + validation data (``refit_on``, ``n_refit`` utterances) before it is scored: ``strongest_test_uar`` is the refit
    attacker's test UAR -- the reported leakage -- also in ``results[strongest]["test_uar"]``, with the training-only
    fit's test UAR in ``strongest_test_uar_before_refit`` (and ``results[strongest]["test_uar_before_refit"]``).
    ``test_uar_ci`` = [low, high] is a percentile bootstrap interval (``test_uar_ci_level``, ``n_bootstrap`` resamples
    of the test utterances) for ``strongest_test_uar``. ``max_test_uar`` / ``max_test_attacker`` is the best test UAR
    over all attackers (the others are training-only fits): an optimistic upper bound. ``fitted`` holds the fitted
    attackers, the strongest one refit (not serialised by `to_dict`).
    """

    results: dict[str, dict[str, Any]]
    strongest: str
    strongest_val_uar: float
    strongest_test_uar: float
    max_test_attacker: str
    max_test_uar: float
    chance: float
    n_classes: int
    n_train: int
    n_val: int
    n_test: int
    protocol: str = "train/val/test"
    selection: str = "validation log-loss"
    strongest_val_log_loss: float | None = None
    strongest_test_uar_before_refit: float | None = None
    refit_on: str = "train+validation"
    n_refit: int = 0
    test_uar_ci: list[float] | None = None
    test_uar_ci_level: float = 0.95
    n_bootstrap: int = 0
    ci_method: str = "bootstrap over test utterances"
    test_uar_ci_utterance: list[float] | None = None
    n_test_speakers: int | None = None
    per_speaker: dict | None = None
    fitted: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (without the fitted attackers)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "fitted"}


def bootstrap_uar_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the UAR of fixed predictions, resampling utterances with replacement.

    Each of ``n_resamples`` seeded resamples draws len(y_true) utterances with replacement and computes UAR over the
    classes present in the resample (as `privemo.metrics.uar`, i.e. scikit-learn's balanced accuracy, does; vectorised
    here because 1000 calls would cost more than the attack). Returns the (1 - level) / 2 and (1 + level) / 2 quantiles.
    The attacker is not retrained, so the interval covers test-set sampling only.
    """
    y_true = check_labels("y_true", y_true, len(np.asarray(y_true)))
    if y_true.size == 0:
        raise invalid("y_true", "at least one label", received="an empty array")
    y_pred = check_labels("y_pred", y_pred, len(y_true))
    n_resamples = check_int("n_resamples", n_resamples, 1)
    if isinstance(level, bool) or not isinstance(level, Real) or not 0.0 < level < 1.0:
        raise invalid("level", "a coverage in (0, 1)", level)
    _, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    t, p = codes[: len(y_true)], codes[len(y_true):]
    k, n = int(codes.max()) + 1, len(t)
    correct = (t == p).astype(np.float64)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = (np.arange(b)[:, None] * k + t[idx]).ravel()
        support = np.bincount(flat, minlength=b * k).reshape(b, k)
        hits = np.bincount(flat, weights=correct[idx].ravel(), minlength=b * k).reshape(b, k)
        recall = np.divide(hits, support, out=np.full((b, k), np.nan), where=support > 0)
        stats[start : start + b] = np.nanmean(recall, axis=1)
    low, high = np.quantile(stats, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


@dataclass
class _AttackData:
    """An attack's checked training, validation and test sets; ``encoder`` holds the training classes."""

    h_train: np.ndarray
    y_train: np.ndarray
    h_val: np.ndarray
    y_val: np.ndarray
    h_test: np.ndarray
    y_test: np.ndarray
    encoder: LabelEncoder
    has_val: bool

    @property
    def selection_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Where attackers are tuned and selected: the validation set, or the training set without one."""
        return (self.h_val, self.y_val) if self.has_val else (self.h_train, self.y_train)

    @property
    def refit_set(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.has_val:
            return self.h_train, self.y_train
        return np.concatenate([self.h_train, self.h_val]), np.concatenate([self.y_train, self.y_val])


def _absent(h: Any) -> bool:
    return h is None or (np.ndim(h) >= 1 and np.shape(h)[0] == 0)


def _check_attack_data(h_train, y_train, h_val, y_val, h_test, y_test) -> _AttackData:
    has_val = not _absent(h_val)
    if has_val:
        h_train, y_train, encoder, h_val, y_val = check_train_val(h_train, y_train, h_val, y_val)
    else:  # no validation speakers: select on the training data; the refit then retrains on the same data
        if not _absent(y_val):
            raise invalid("y_val", "no labels (or None) when `h_val` is absent or empty",
                          received=f"{np.shape(y_val)[0]} labels")
        h_train = check_matrix("h_train", h_train)
        y_train = check_labels("y_train", y_train, len(h_train))
        encoder = fit_classes("y_train", y_train)
        h_val, y_val = h_train[:0], y_train[:0]
    h_test = check_matrix("h_test", h_test, n_features=h_train.shape[1])
    y_test = check_labels("y_test", y_test, len(h_test))
    encode_labels("y_test", y_test, encoder)
    return _AttackData(h_train, y_train, h_val, y_val, h_test, y_test, encoder, has_val)


def _check_attackers(attackers: Any) -> tuple[str, ...]:
    if isinstance(attackers, str) or not attackers:
        raise invalid("attackers", f"a non-empty sequence of names from {sorted(ATTACKERS)}", attackers)
    attackers = tuple(attackers)
    if any(a not in ATTACKERS for a in attackers) or len(set(attackers)) != len(attackers):
        raise invalid("attackers", f"distinct names from {sorted(ATTACKERS)}", attackers)
    return attackers


def _val_log_loss(attacker, h: np.ndarray, y: np.ndarray) -> float:
    """Log-loss (scikit-learn's ``log_loss``) of an attacker's probabilities on (h, y), clipped to [PROBA_CLIP, 1]."""
    proba = np.clip(np.asarray(attacker.predict_proba(h), dtype=np.float64), PROBA_CLIP, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    return float(log_loss(y, proba, labels=attacker.classes_))


def _fit_attackers(data: _AttackData, attackers: tuple[str, ...], seed: int, mlp_options: dict[str, Any]):
    """Every family trained on the training set and tuned on the selection set; returns (results, fitted)."""
    h_sel, y_sel = data.selection_set
    results, fitted = {}, {}
    for name in attackers:
        if name == "mlp":
            att = train_attacker(data.h_train, data.y_train, h_sel, y_sel, seed=seed, **mlp_options)
        else:
            att = ATTACKERS[name](data.h_train, data.y_train, h_sel, y_sel, seed=seed)
        fitted[name] = att
        results[name] = {
            "val_uar": float(att.val_uar_),
            "val_log_loss": _val_log_loss(att, h_sel, y_sel),
            "test_uar": att.score(data.h_test, data.y_test),
            "config": dict(att.config_),
            "refit": False,
        }
    return results, fitted


def _run_attackers(data: _AttackData, *, seed: int, attackers: Any, mlp_options: dict[str, Any], protocol: str,
                   refit: bool = True, n_bootstrap: int = BOOTSTRAP_RESAMPLES, speakers_test=None,
                   strata_test=None) -> AttackReport:
    """Train, select (lowest validation log-loss), refit and score the attackers (protocol in the module docstring)."""
    results, fitted = _fit_attackers(data, attackers, seed, mlp_options)
    # lowest validation log-loss; ties to the earlier name in `attackers`
    strongest = min(attackers, key=lambda a: (results[a]["val_log_loss"], attackers.index(a)))
    before = results[strongest]["test_uar"]
    n_refit = len(data.h_train)
    if refit:
        h_all, y_all = data.refit_set
        chosen = fitted[strongest] = fitted[strongest].refit(h_all, y_all)
        n_refit = len(h_all)
        results[strongest].update(test_uar=chosen.score(data.h_test, data.y_test), test_uar_before_refit=before,
                                  refit=True, refit_config=dict(chosen.config_))
    ci = utterance_ci = per_speaker = n_speakers = None
    method = "bootstrap over test utterances"
    if n_bootstrap:
        y_code = encode_labels("y_test", data.y_test, data.encoder)
        p_code = encode_labels("y_pred", fitted[strongest].predict(data.h_test), data.encoder)
        ci = utterance_ci = list(bootstrap_uar_ci(y_code, p_code, n_resamples=n_bootstrap, seed=seed))
        if speakers_test is not None:  # the speaker is the unit that generalises: resample whole test speakers
            from privemo.metrics import speaker_uar_interval

            strata = y_code if strata_test is None else np.asarray(strata_test)
            spk = speaker_uar_interval(y_code, p_code, np.asarray(speakers_test), strata,
                                       n_classes=len(data.encoder.classes_), n_resamples=n_bootstrap, seed=seed)
            ci, method, per_speaker, n_speakers = spk["ci"], spk["method"], spk["per_speaker"], spk["n_speakers"]
    upper = max(attackers, key=lambda a: results[a]["test_uar"])
    n_classes = len(data.encoder.classes_)
    return AttackReport(
        results=results, strongest=strongest, strongest_val_uar=results[strongest]["val_uar"],
        strongest_test_uar=results[strongest]["test_uar"], max_test_attacker=upper,
        max_test_uar=results[upper]["test_uar"], chance=1.0 / n_classes, n_classes=int(n_classes),
        n_train=len(data.h_train), n_val=len(data.h_val), n_test=len(data.h_test),
        protocol=protocol if data.has_val else f"{protocol} (no validation data: selected on the training data)",
        selection="validation log-loss" if data.has_val else "training log-loss (no validation data)",
        strongest_val_log_loss=results[strongest]["val_log_loss"], strongest_test_uar_before_refit=before,
        refit_on=("train+validation" if data.has_val else "train (no validation data)") if refit else "not refit",
        n_refit=n_refit, test_uar_ci=ci, test_uar_ci_level=0.95, n_bootstrap=int(n_bootstrap), ci_method=method,
        test_uar_ci_utterance=utterance_ci, n_test_speakers=n_speakers, per_speaker=per_speaker, fitted=fitted,
    )


def attack_representation(
    h_train: np.ndarray,
    y_train: np.ndarray,
    h_val: np.ndarray | None,
    y_val: np.ndarray | None,
    h_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int = 0,
    grid: Mapping[str, Sequence[int]] = ATTACKER_GRID,
    attackers: Sequence[str] = DEFAULT_ATTACKERS,
    epochs: int = ATTACKER_MAX_EPOCHS,
    patience: int = ATTACKER_PATIENCE,
    learning_rate: float = ATTACKER_LEARNING_RATE,
    batch_size: int = ATTACKER_BATCH_SIZE,
    refit: bool = True,
    n_bootstrap: int = BOOTSTRAP_RESAMPLES,
    speakers_test: np.ndarray | None = None,
    strata_test: np.ndarray | None = None,
) -> AttackReport:
    """Attack an attribute (e.g. gender) in frozen representations with several fresh attackers.

    Each attacker is trained on (h_train, y_train) and tuned / early-stopped on (h_val, y_val); the attacker with the
    lowest validation log-loss is selected, refit with its chosen hyper-parameters on training + validation data
    (``refit=False`` skips this) and scored (UAR) on (h_test, y_test), with a seeded percentile bootstrap 95 % interval
    over the test utterances (``n_bootstrap`` resamples, 0 = none). ``attackers`` names entries of `ATTACKERS` ("mlp"
    = the paper's grid-searched MLP, "logreg", "svm", "hgb"). ``h_val`` / ``y_val`` may be None or empty: attackers are
    then tuned and selected on the training data and the refit retrains on the same data (it changes nothing).
    Validation and test labels must all occur in the training labels. ``grid``, ``epochs``, ``patience``,
    ``learning_rate`` and ``batch_size`` configure the MLP. See `AttackReport` for the fields. With ``speakers_test``
    (the speaker of every test row) the interval resamples whole test speakers instead (within ``strata_test``, by
    default the attribute itself, e.g. gender), the utterance-level one is kept in ``test_uar_ci_utterance``.
    """
    attackers = _check_attackers(attackers)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, 0, expected="a non-negative integer (0 = no interval)")
    data = _check_attack_data(h_train, y_train, h_val, y_val, h_test, y_test)
    for name, value in (("speakers_test", speakers_test), ("strata_test", strata_test)):
        if value is not None and len(value) != len(data.h_test):
            raise invalid(name, f"one label per test row ({len(data.h_test)})", received=f"{len(value)} labels")
    mlp_options = dict(grid=grid, epochs=epochs, patience=patience, learning_rate=learning_rate, batch_size=batch_size)
    return _run_attackers(data, seed=seed, attackers=attackers, mlp_options=mlp_options, protocol="train/val/test",
                          refit=refit, n_bootstrap=n_bootstrap, speakers_test=speakers_test, strata_test=strata_test)


def split_by_speaker(
    speakers: np.ndarray, *, seed: int = 0, split: tuple[float, float, float] = SPEAKER_SPLIT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split utterance indices per speaker into (train, val, test) index arrays with the given fractions.

    Every speaker gets at least one utterance in each part (so each needs at least 3); the split is seeded.
    """
    speakers = check_labels("speakers", speakers, len(np.asarray(speakers)))
    if (len(split) != 3 or not all(isinstance(f, Real) and not isinstance(f, bool) and f > 0 for f in split)
            or abs(sum(split) - 1.0) > 1e-6):
        raise invalid("split", "three positive fractions (train, val, test) summing to 1", split)
    names, inverse, counts = np.unique(speakers, return_inverse=True, return_counts=True)
    if names.size < 2:
        raise invalid("speakers", "at least 2 distinct speakers", received=f"{names.size} speaker")
    small = names[counts < 3]
    if small.size:
        raise invalid("speakers", "at least 3 utterances per speaker (one each for attacker train/val/test)",
                      received=f"speakers with fewer: {small.tolist()[:10]}")
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for k in range(names.size):
        idx = rng.permutation(np.flatnonzero(inverse == k))
        n = idx.size
        n_val = max(1, int(round(n * split[1])))
        n_test = max(1, int(round(n * split[2])))
        n_train = n - n_val - n_test
        if n_train < 1:  # only for tiny speakers: give train one utterance from the larger of val/test
            if n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
            n_train = 1
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)  # type: ignore[return-value]


def speaker_attack(
    h: np.ndarray,
    speakers: np.ndarray,
    *,
    seed: int = 0,
    grid: Mapping[str, Sequence[int]] = ATTACKER_GRID,
    attackers: Sequence[str] = DEFAULT_ATTACKERS,
    split: tuple[float, float, float] = SPEAKER_SPLIT,
    epochs: int = ATTACKER_MAX_EPOCHS,
    patience: int = ATTACKER_PATIENCE,
    learning_rate: float = ATTACKER_LEARNING_RATE,
    batch_size: int = ATTACKER_BATCH_SIZE,
    refit: bool = True,
    n_bootstrap: int = BOOTSTRAP_RESAMPLES,
) -> AttackReport:
    """Speaker-identity attack among the speakers of one set (e.g. the test speakers).

    Protocol (assumption, see README): test speakers are unseen by the emotion model and by any attacker trained on the
    training speakers, so identity leakage is measured within the set itself. Each speaker's utterances are split at
    random (seeded) into attacker-train / -validation / -test by ``split`` (default 50/25/25 %, at least one utterance
    per part, so at least 3 per speaker); the same attackers as `attack_representation` are trained, selected on the
    validation part (log-loss), refit on train + validation parts and scored by UAR over speakers on the test part.
    Chance UAR = 1 / n_speakers. For identity linkage across speakers unseen by the attacker see
    `privemo.privacy.verification.speaker_verification_attack`.
    """
    h = check_matrix("h", h)
    speakers = check_labels("speakers", speakers, len(h))
    train, val, test = split_by_speaker(speakers, seed=seed, split=split)
    attackers = _check_attackers(attackers)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, 0, expected="a non-negative integer (0 = no interval)")
    data = _check_attack_data(h[train], speakers[train], h[val], speakers[val], h[test], speakers[test])
    mlp_options = dict(grid=grid, epochs=epochs, patience=patience, learning_rate=learning_rate, batch_size=batch_size)
    return _run_attackers(data, seed=seed, attackers=attackers, mlp_options=mlp_options,
                          protocol=f"within-set per-speaker split {split}", refit=refit, n_bootstrap=n_bootstrap)
