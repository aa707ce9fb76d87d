"""Z-normalised views of acoustic features: per speaker (the experiment's), per utterance (what ``privemo.encode`` does
in deployment) or with global statistics fitted on the training rows (``AcousticFeatures.normalized`` calls
``normalize``). A view computes each item lazily: the features stay memory-mapped."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .logmel import STD_FLOOR

# z-normalisation schemes of ``AcousticFeatures.normalized`` (what each one's statistics are computed over).
NORMALIZATIONS: dict[str, str] = {
    "speaker": "z-normalisation per speaker (mean and std per Mel band over all of the speaker's frames)",
    "utterance": "z-normalisation per utterance (its own mean and std per Mel band), as privemo.encode does in "
                 "deployment",
    "global": "one mean and std per Mel band over the training rows",
}


def _as_indices(indices, n: int, name: str) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (idx.size and (idx.min() < 0 or idx.max() >= n)):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a 1-D array of table positions in [0, {n}). "
            f"Received: {name} with shape {idx.shape}, dtype {idx.dtype}"
        )
    return idx.astype(np.int64)


def normalize(feats, table: pd.DataFrame, mode: str, train_indices=None) -> "NormalizedFeatures":
    """The ``mode`` view of ``feats`` (``AcousticFeatures`` of ``table``'s rows): see ``AcousticFeatures.normalized``."""
    if mode not in NORMALIZATIONS:
        raise ValueError(
            f"Invalid value received for argument `mode`. Expected one of {list(NORMALIZATIONS)}. Received: "
            f"mode={mode!r}"
        )
    n = len(feats)
    if mode == "global":
        if train_indices is None or len(train_indices) == 0:
            raise ValueError(
                "Invalid value received for argument `train_indices`. Expected the training rows' table positions "
                f"for mode='global'. Received: train_indices={train_indices!r}"
            )
        groups = np.zeros(n, np.int64)
        members = [_as_indices(train_indices, n, "train_indices")]
    elif mode == "utterance":
        groups = np.arange(n, dtype=np.int64)
        members = [np.array([i], np.int64) for i in range(n)]
    else:
        codes: dict[str, int] = {}
        groups = np.empty(n, np.int64)
        for i, s in enumerate(table["speaker"].tolist()):
            key = s if isinstance(s, str) and s != "" else f"\0row{i}"  # unknown speaker: the utterance is its own group
            groups[i] = codes.setdefault(key, len(codes))
        order = np.argsort(groups, kind="stable")
        members = np.split(order, np.flatnonzero(np.diff(groups[order])) + 1)
    mean, std = _moments(feats, members)
    return NormalizedFeatures(feats, groups, mean, std, mode)


def _moments(feats, groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-group mean and std (floored at STD_FLOOR) over all frames of the group's rows, accumulated in float64."""
    d = feats.n_mels
    mean = np.zeros((len(groups), d), np.float32)
    std = np.ones((len(groups), d), np.float32)
    for g, rows in enumerate(groups):
        total, sq, count = np.zeros(d), np.zeros(d), 0
        for i in rows:
            x = feats.raw(int(i)).astype(np.float64)
            total += x.sum(axis=0)
            sq += np.square(x).sum(axis=0)
            count += len(x)
        if count == 0:
            continue
        mu = total / count
        var = np.maximum(sq / count - mu**2, 0.0)
        mean[g] = mu
        std[g] = np.maximum(np.sqrt(var), STD_FLOOR)
    return mean, std


class NormalizedFeatures(Sequence):
    """A z-normalised view of AcousticFeatures: ``view[i] = (feats[i] - mean[group_i]) / std[group_i]`` (float32).

    Attributes: ``lengths`` (as the base), ``groups`` (statistics group per row), ``mean``/``std`` (n_groups, n_mels),
    ``mode``.
    """

    def __init__(
        self, base, groups: np.ndarray, mean: np.ndarray, std: np.ndarray, mode: str
    ) -> None:
        self.base = base
        self.groups = groups
        self.mean = mean
        self.std = std
        self.mode = mode

    @property
    def lengths(self) -> np.ndarray:
        return self.base.lengths

    @property
    def max_frames(self) -> int | None:
        return self.base.max_frames

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> np.ndarray:
        x = self.base[i]
        g = self.groups[int(i)]
        return (x - self.mean[g]) / self.std[g]

    def with_max_frames(self, max_frames: int | None) -> "NormalizedFeatures":
        return NormalizedFeatures(self.base.with_max_frames(max_frames), self.groups, self.mean, self.std, self.mode)

    def __repr__(self) -> str:
        return f"NormalizedFeatures(mode={self.mode!r}, {len(self)} utterances, {len(self.mean)} statistics groups)"
