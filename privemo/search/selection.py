"""The privacy term of model selection and early stopping: a fresh probe on the validation speakers.

The paper selects the configuration that "maximises validation emotion performance while minimising validation gender
performance". Scoring the jointly trained adversary head for that rewards a *fooled* head: a gradient reversal layer can
drive its own head to (or below) chance while the attribute stays readable in h for any new classifier. So privemo's
default (``--selection probe``) measures the attribute the way the final privacy figure does, only cheaper: at every
epoch a fresh, simple classifier is fitted on the training speakers' h and scored on the validation speakers' h.

- gender: a logistic regression (standardised h, C = 1, balanced classes) fitted on the training utterances' h,
  scored as UAR on the validation utterances (chance 0.5);
- "emotion": validation emotion UAR alone (no privacy term). The fallback for the speaker adversary where the
  validation speakers cannot support the linkability probe (``speaker_probe_support``: one speaker per gender, as in
  the 10-speaker demo, where linking speakers is telling genders apart); selectable as ``--selection emotion``.
- speaker identity: validation speakers are unseen, so identity is measured as linkability: a speaker verifier learnt
  on the training speakers' h (``privemo.speaker_verification_attack``) scores all same / different-speaker pairs among
  the validation utterances; the probe reports ``1 - EER`` (0.5 = nothing links, 1 = perfectly linked), on the same
  scale as a UAR with chance 0.5.

Training utterances for the probe are a seeded, stratified subsample of at most ``MAX_PROBE_TRAIN`` rows (the probe runs
every epoch). README assumptions table: "Selection rule".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

SELECTION_RULES: tuple[str, ...] = ("probe", "head", "emotion")
# assumption (README assumptions table, "Selection never keeps an untrained network"): a trial whose kept network's
# validation emotion UAR is below chance + DEGENERATE_MARGIN learnt nothing; it is selected only when no trial of its
# (condition, fold) learnt something
DEGENERATE_MARGIN = 0.05
MAX_PROBE_TRAIN = 512  # assumption (README assumptions table): training rows the per-epoch probe is fitted on
PROBE_C = 1.0  # assumption (README assumptions table): the gender probe's inverse regularisation strength


def check_selection(selection: str) -> str:
    if selection not in SELECTION_RULES:
        raise ValueError(
            f"Invalid value received for argument `selection`. Expected one of {SELECTION_RULES}. "
            f"Received: selection={selection!r}"
        )
    return selection


@dataclass
class PrivacyProbe:
    """What the per-epoch probe needs besides the model: the training rows it is fitted on and both label sets.

    Args:
        kind: "gender" (logistic-regression UAR) or "speaker" (verification 1 - EER).
        train_inputs: {modality: [array (frames_i, dim)]} of the probe's training utterances.
        train_labels: their attribute labels (gender ids, or speaker names for "speaker").
        val_labels: the validation utterances' labels, in the order the validation data are predicted.
        seed: seeds the probe (speaker trial sampling).
    """

    kind: str
    train_inputs: Mapping[str, Sequence[np.ndarray]]
    train_labels: np.ndarray
    val_labels: np.ndarray
    seed: int = 0
    history: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("gender", "speaker"):
            raise ValueError(
                f"Invalid value received for argument `kind`. Expected 'gender' or 'speaker'. Received: kind={self.kind!r}"
            )
        self.train_labels = np.asarray(self.train_labels)
        self.val_labels = np.asarray(self.val_labels)
        sizes = {len(v) for v in self.train_inputs.values()}
        if sizes != {len(self.train_labels)}:
            raise ValueError(
                f"Invalid value received for argument `train_labels`. Expected one label per probe training utterance "
                f"({sorted(sizes)}). Received: {len(self.train_labels)} labels"
            )

    def score(self, h_train: np.ndarray, h_val: np.ndarray) -> float:
        """The attribute's validation score in [0, 1] (0.5 = chance, higher = more leakage)."""
        if self.kind == "gender":
            return gender_probe_uar(h_train, self.train_labels, h_val, self.val_labels)
        from privemo.privacy.verification import speaker_verification_attack

        result = speaker_verification_attack(h_train, self.train_labels, h_val, self.val_labels, seed=self.seed)
        return 1.0 - float(result["eer"])


def gender_probe_uar(h_train: np.ndarray, y_train: np.ndarray, h_eval: np.ndarray, y_eval: np.ndarray) -> float:
    """UAR on ``h_eval`` of a logistic regression (standardised inputs, C = ``PROBE_C``, balanced) fitted on ``h_train``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from privemo.metrics import uar

    y_train = np.asarray(y_train)
    if len(np.unique(y_train)) < 2:
        return 0.5  # one class only: nothing can be learnt
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, class_weight="balanced", max_iter=1000))
    probe.fit(np.asarray(h_train, np.float64), y_train)
    return float(uar(np.asarray(y_eval), probe.predict(np.asarray(h_eval, np.float64))))


def probe_rows(labels: np.ndarray, rows: np.ndarray, seed: int, limit: int = MAX_PROBE_TRAIN) -> np.ndarray:
    """At most ``limit`` of ``rows``, a seeded subsample stratified by ``labels[rows]`` (all rows when few enough)."""
    rows = np.asarray(rows, np.int64)
    if len(rows) <= limit:
        return rows
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(rows, train_size=limit, random_state=seed, stratify=np.asarray(labels)[rows])
    except ValueError:  # a class with a single row cannot be stratified
        keep, _ = train_test_split(rows, train_size=limit, random_state=seed)
    return np.sort(keep)


def is_degenerate(val_emotion_uar: float | None, chance: float, margin: float = DEGENERATE_MARGIN) -> bool:
    """True when a trial's kept network is at (or near) chance on the validation speakers' emotion."""
    return val_emotion_uar is None or not np.isfinite(val_emotion_uar) or val_emotion_uar < chance + margin


def select_trial(ranked: Sequence, val_emotion_uar: Sequence[float | None], chance: float):
    """The selected trial of one (condition, fold): the best-ranked (``ranked``: trials best first, as keras-tuner's
    oracle orders them) that is not degenerate (``is_degenerate``), else the best-ranked one.

    Returns (trial, degenerate: bool, n_degenerate: int)."""
    flags = [is_degenerate(v, chance) for v in val_emotion_uar]
    eligible = [t for t, bad in zip(ranked, flags) if not bad]
    chosen = eligible[0] if eligible else ranked[0]
    return chosen, not eligible, int(sum(flags))


def speaker_probe_support(val_speakers: np.ndarray, val_genders: np.ndarray) -> str | None:
    """None when the validation speakers can support the speaker-linkability probe, else why not: with one speaker
    per gender (the 10-speaker demo), "linking speakers" is telling genders apart. Such a fold selects the speaker
    adversary on validation emotion alone (``selection`` "emotion", the documented fallback)."""
    from privemo.privacy.verification import verification_support

    return verification_support(np.asarray(val_speakers), np.asarray(val_genders))
