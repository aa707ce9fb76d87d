"""Speaker-independent cross-validation folds with a validation carve-out.

Every fold is a ``Fold(train, validation, test)`` of sorted ``np.int64`` positional indices into the utterance table.
In every fold the speakers of train, validation and test are disjoint, and every speaker with a known id is a test
speaker in exactly one fold. How speakers are grouped into test folds depends on the corpus (``STRATEGY_BY_CORPUS``):

* ``"session"`` (IEMOCAP, demo): leave one session out; with 5 sessions and ``n_folds=5`` fold k tests session k (sorted),
  each session being one female and one male actor. More sessions than folds are grouped into consecutive blocks.
* ``"speaker"`` (MSP-IMPROV's 12 actors, MuSE's participants, any other corpus): speakers are shuffled (seeded) and dealt
  out gender by gender, so every fold holds the same number of speakers (+-1) and of each gender (+-1).
* ``"count"`` (MSP-Podcast, thousands of speakers with very different amounts of speech): greedy largest-first, each
  speaker (most utterances first) goes to the fold with the fewest utterances so far, which balances test-set sizes.

Validation speakers are carved out of each fold's training speakers (seed-controlled). Default (assumption, see README
assumptions table): for the session strategy, one whole training session (= one female + one male actor in IEMOCAP);
otherwise ``max(2, round(VALIDATION_FRACTION * n_training_speakers))`` speakers, alternating female and male.

Rows without a known speaker (MSP-Podcast ``Unknown``, speaker None) cannot be placed in a speaker-independent split:
an unknown speaker may well be one of the test speakers, so training on those rows could leak test speakers' voices into
the model (and speaker / gender attacks would be scored on speakers the model has seen). ``unknown="drop"`` (default)
leaves them out of every fold; ``unknown="train"`` adds them to the training set of every fold (more emotion data, at that
risk). They are never put in validation or test.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from privemo._util.validation import check_choice, check_int, invalid

STRATEGIES: tuple[str, ...] = ("session", "speaker", "count")
STRATEGY_BY_CORPUS: dict[str, str] = {
    "iemocap": "session",
    "demo": "session",
    "msp-improv": "speaker",
    "msp-podcast": "count",
    "muse": "speaker",
}
# assumption: see README assumptions table. Share of a fold's training speakers moved to validation (at least 2 speakers).
VALIDATION_FRACTION = 0.15
MIN_VALIDATION_SPEAKERS = 2
UNKNOWN_SPEAKER_POLICIES: tuple[str, ...] = ("drop", "train")
# Speaker values meaning "unknown" (besides None / NaN).
_UNKNOWN_NAMES = {"", "unknown", "nan", "none"}
# Official MSP-Podcast partition names (split column) -> Fold field.
OFFICIAL_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("Train",),
    "validation": ("Development", "Validation"),
    "test": ("Test1",),
}


class Fold(NamedTuple):
    """One cross-validation fold: sorted np.int64 row positions of the training, validation and test utterances."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def _known_speaker_mask(speakers: pd.Series) -> np.ndarray:
    values = speakers.astype(object)
    known = values.notna().to_numpy()
    text = values.astype(str).str.strip().str.lower()
    return known & ~text.isin(_UNKNOWN_NAMES).to_numpy()


def _speaker_genders(table: pd.DataFrame, known: np.ndarray) -> dict[str, str | None]:
    """Speaker -> 'F' / 'M' (None if unknown or inconsistent)."""
    genders: dict[str, str | None] = {}
    sub = table.loc[known]
    if "gender" not in table.columns:
        return {str(s): None for s in pd.unique(sub["speaker"])}
    for speaker, values in sub.groupby("speaker", sort=True)["gender"]:
        seen = {g for g in values if g in ("F", "M")}
        genders[str(speaker)] = seen.pop() if len(seen) == 1 else None
    return genders


def _deal_by_gender(speakers: list[str], genders: dict[str, str | None], n_folds: int, rng: np.random.Generator) -> list[list[str]]:
    """Shuffle each gender's speakers and deal them round-robin, continuing across genders (balanced sizes and genders)."""
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    position = 0
    for gender in ("F", "M", None):
        group = sorted(s for s in speakers if genders.get(s) == gender)
        for index in rng.permutation(len(group)):
            folds[position % n_folds].append(group[index])
            position += 1
    return folds


def _greedy_by_count(speakers: list[str], counts: dict[str, int], n_folds: int, rng: np.random.Generator) -> list[list[str]]:
    """Largest speakers first, each to the fold with the fewest utterances (then fewest speakers, then lowest index)."""
    order = [speakers[i] for i in rng.permutation(len(speakers))]  # seeded tie-break among equal counts
    order.sort(key=lambda s: -counts[s])
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    sizes = [0] * n_folds
    for speaker in order:
        k = min(range(n_folds), key=lambda i: (sizes[i], len(folds[i]), i))
        folds[k].append(speaker)
        sizes[k] += counts[speaker]
    return folds


def _pick_validation(
    train_speakers: list[str], genders: dict[str, str | None], n_val: int, rng: np.random.Generator
) -> list[str]:
    """``n_val`` speakers alternating F / M (then unknown gender) from seeded shuffles of the training speakers."""
    pools = {g: [s for s in sorted(train_speakers) if genders.get(s) == g] for g in ("F", "M", None)}
    pools = {g: [p[i] for i in rng.permutation(len(p))] for g, p in pools.items()}
    chosen: list[str] = []
    turn = 0
    while len(chosen) < n_val:
        gender = ("F", "M")[turn % 2]
        turn += 1
        if pools[gender]:
            chosen.append(pools[gender].pop())
        elif pools["M" if gender == "F" else "F"] or pools[None]:
            other = pools["M" if gender == "F" else "F"] or pools[None]
            chosen.append(other.pop())
        else:  # pragma: no cover - guarded by the caller
            break
    return chosen


def speaker_folds(
    table: pd.DataFrame,
    n_folds: int = 5,
    seed: int = 0,
    n_validation_speakers: int | None = None,
    *,
    strategy: str | None = None,
    unknown: str = "drop",
) -> list[Fold]:
    """Speaker-independent ``n_folds``-fold cross-validation splits of an utterance table.

    Args:
        table: the utterance table (columns ``speaker``, ``gender``; ``session`` for the session strategy).
        n_folds: number of folds (each speaker group is the test set of exactly one fold).
        seed: controls speaker shuffling (speaker / count strategies) and the choice of validation speakers.
        n_validation_speakers: speakers carved out of each fold's training speakers for validation (0: none). ``None``:
            one whole training session for the session strategy, else ``max(2, round(0.15 * n_training_speakers))``.
        strategy: "session", "speaker" or "count" (see the module docstring); ``None`` picks it from
            ``table.attrs["corpus"]`` (``STRATEGY_BY_CORPUS``; "speaker" for corpora not listed).
        unknown: rows without a known speaker: "drop" (default: in no fold) or "train" (training set of every fold).

    Returns:
        ``n_folds`` ``Fold(train, validation, test)`` tuples of sorted np.int64 positional indices.

    Raises:
        ValueError: bad arguments; fewer sessions / speakers than folds (the message says how many were found and needed);
            a speaker found in several sessions under the session strategy; too few training speakers to carve out
            the validation speakers.
    """
    if not isinstance(table, pd.DataFrame):
        raise invalid("table", "a pandas DataFrame (an utterance table)", type(table).__name__)
    if "speaker" not in table.columns:
        raise ValueError(f"table has no 'speaker' column; columns: {list(table.columns)}")
    n_folds = check_int("n_folds", n_folds, 2)
    seed = check_int("seed", seed, 0)
    if n_validation_speakers is not None:
        n_validation_speakers = check_int("n_validation_speakers", n_validation_speakers, 0)
    check_choice("unknown", unknown, UNKNOWN_SPEAKER_POLICIES)
    corpus = str(table.attrs.get("corpus", "")).lower().replace("_", "-")
    if strategy is None:
        strategy = STRATEGY_BY_CORPUS.get(corpus, "speaker")
    check_choice("strategy", strategy, STRATEGIES)

    positions = np.arange(len(table), dtype=np.int64)
    known = _known_speaker_mask(table["speaker"])
    speaker_of = table["speaker"].astype(object).where(known, None)
    genders = _speaker_genders(table, known)
    groups, session_of = _test_groups(table, known, speaker_of, genders, n_folds, seed, strategy)
    speakers = sorted(genders)
    speaker_array = speaker_of.to_numpy(dtype=object)
    folds: list[Fold] = []
    for k, test_speakers in enumerate(groups):
        test_set = set(test_speakers)
        train_speakers = [s for s in speakers if s not in test_set]
        val_set = set(_validation_speakers(k, train_speakers, genders, session_of, n_validation_speakers, seed))
        in_test = np.fromiter((s in test_set for s in speaker_array), dtype=bool, count=len(speaker_array))
        in_val = np.fromiter((s in val_set for s in speaker_array), dtype=bool, count=len(speaker_array))
        in_train = known & ~in_test & ~in_val
        if unknown == "train":
            in_train |= ~known
        folds.append(Fold(positions[in_train], positions[in_val], positions[in_test]))
    return folds


def _test_groups(table: pd.DataFrame, known: np.ndarray, speaker_of: pd.Series, genders: dict, n_folds: int,
                 seed: int, strategy: str) -> tuple[list[list[str]], dict[str, str]]:
    """The test speakers of each fold, and each speaker's session (session strategy only, else empty)."""
    speakers = sorted(genders)
    counts = {str(k): int(v) for k, v in speaker_of[known].value_counts().items()}
    rng = np.random.default_rng([seed, 0])
    session_of: dict[str, str] = {}
    if strategy == "session":
        if "session" not in table.columns:
            raise ValueError("strategy='session' needs a 'session' column; use strategy='speaker' instead")
        pairs = table.loc[known, ["speaker", "session"]].astype(str).drop_duplicates()
        multi = pairs["speaker"][pairs["speaker"].duplicated()].unique()
        if len(multi):
            raise ValueError(
                f"strategy='session': {len(multi)} speaker(s) occur in more than one session (e.g. {list(multi[:3])}), so "
                "leaving one session out would not be speaker independent; use strategy='speaker'"
            )
        session_of = dict(zip(pairs["speaker"], pairs["session"]))
        sessions = sorted(set(session_of.values()))
        if len(sessions) < n_folds:
            raise ValueError(
                f"strategy='session' with n_folds={n_folds} needs at least {n_folds} sessions with known speakers; "
                f"found {len(sessions)}: {sessions}"
            )
        blocks = np.array_split(np.arange(len(sessions)), n_folds)
        groups = [[s for s in speakers if session_of[s] in {sessions[i] for i in block}] for block in blocks]
    else:
        if len(speakers) < n_folds:
            raise ValueError(
                f"n_folds={n_folds} needs at least {n_folds} distinct known speakers; found {len(speakers)}"
                + (f": {speakers}" if len(speakers) <= 10 else "")
            )
        if strategy == "speaker":
            groups = _deal_by_gender(speakers, genders, n_folds, rng)
        else:
            groups = _greedy_by_count(speakers, counts, n_folds, rng)
    return groups, session_of


def _validation_speakers(k: int, train_speakers: list[str], genders: dict, session_of: dict[str, str],
                         n_validation_speakers: int | None, seed: int) -> list[str]:
    """Fold ``k``'s validation speakers, carved out of its training speakers: a whole training session (session
    strategy, by default), else ``n_validation_speakers`` (default: 15 %, at least 2) balanced by gender."""
    fold_rng = np.random.default_rng([seed, 1, k])
    if n_validation_speakers is None and session_of:
        train_sessions = sorted({session_of[s] for s in train_speakers})
        if len(train_sessions) >= 2:
            chosen = train_sessions[int(fold_rng.integers(len(train_sessions)))]
            return [s for s in train_speakers if session_of[s] == chosen]
        n_val = max(0, min(MIN_VALIDATION_SPEAKERS, len(train_speakers) - 1))
        return _pick_validation(train_speakers, genders, n_val, fold_rng)
    n_val = n_validation_speakers
    if n_val is None:
        n_val = max(MIN_VALIDATION_SPEAKERS, int(round(VALIDATION_FRACTION * len(train_speakers))))
    if n_val >= len(train_speakers):
        raise ValueError(
            f"fold {k}: cannot carve {n_val} validation speaker(s) out of {len(train_speakers)} training speaker(s) "
            "and keep at least one for training; lower n_validation_speakers or n_folds"
        )
    return _pick_validation(train_speakers, genders, n_val, fold_rng)


def official_partition(table: pd.DataFrame, *, column: str = "split") -> Fold:
    """MSP-Podcast's official partition as one Fold: Train / Development (older: Validation) / Test1.

    Rows of other sets (Test2, Test3, ...) are in none of the three. The partition is the corpus authors'; privemo does
    not re-check its speaker independence (rows with unknown speakers stay where the corpus put them).

    Raises:
        ValueError: the table has no ``column`` or one of the three sets is empty.
    """
    if not isinstance(table, pd.DataFrame):
        raise invalid("table", "a pandas DataFrame (an utterance table)", type(table).__name__)
    if column not in table.columns:
        raise ValueError(
            f"table has no {column!r} column (the official partition, e.g. MSP-Podcast's Split_Set); columns: {list(table.columns)}"
        )
    values = table[column].astype(str).str.strip().str.lower().to_numpy()
    positions = np.arange(len(table), dtype=np.int64)
    parts = {}
    for field, names in OFFICIAL_SPLITS.items():
        mask = np.isin(values, [n.lower() for n in names])
        if not mask.any():
            found = sorted(set(table[column].astype(str)))
            raise ValueError(f"official partition: no row has {column} in {list(names)} (the {field} set); values found: {found}")
        parts[field] = positions[mask]
    return Fold(parts["train"], parts["validation"], parts["test"])


__all__ = ["Fold", "speaker_folds", "official_partition", "STRATEGIES", "STRATEGY_BY_CORPUS", "VALIDATION_FRACTION"]
