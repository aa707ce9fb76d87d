"""Input pipeline: length-bucketed, zero-padded tf.data batches of one or both modalities, plus whole-set prediction.

Every input, target and sample-weight array is indexed by table position (row of the utterance table); ``indices`` (a
fold's train, validation or test positions) chooses the rows. Batches are padded at the end with all-zero frames to the
longest member of the batch (capped at ``max_lengths``, longer sequences keep their first frames), so the model's mask
("frame has a non-zero value") matches the true lengths. Bucketing groups utterances of similar length: the rows are
shuffled (under the seed, differently each epoch), cut into pools of ``BUCKET_POOL`` batches, each pool is sorted by
length and cut into batches, and the batch order is shuffled. The same seed gives the same batches in every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from privemo._util.validation import check_int, invalid
from privemo.features.logmel import MAX_FRAMES
from privemo.features.lexical import MAX_TOKENS

MODALITIES: tuple[str, ...] = ("acoustic", "lexical")
# assumption (README assumptions table): sequence caps per modality (see MAX_FRAMES, MAX_TOKENS).
DEFAULT_MAX_LENGTHS: dict[str, int] = {"acoustic": MAX_FRAMES, "lexical": MAX_TOKENS}
BATCH_SIZE = 32
# Batches per sorting pool: large enough that batches hold similar lengths, small enough that batch composition still
# changes from epoch to epoch.
BUCKET_POOL = 16
PREDICT_BATCH_SIZE = 64


def _check_batch_size(batch_size) -> int:
    return check_int("batch_size", batch_size, 1, expected="a positive integer")


def pad_batch(arrays: Sequence[np.ndarray], max_len: int | None = None, *, dim: int | None = None) -> np.ndarray:
    """Stack (length_i, dim) arrays into a float32 (batch, T, dim) array, zero-padded at the end.

    T is the longest length in the batch, capped at ``max_len`` (longer arrays keep their first ``max_len`` rows).
    ``dim`` is needed only for an empty list.
    """
    if max_len is not None and (not isinstance(max_len, (int, np.integer)) or max_len < 1):
        raise invalid("max_len", "a positive integer or None", max_len)
    if len(arrays) == 0:
        if dim is None:
            raise invalid("arrays", "at least one array (or pass `dim`)", arrays)
        return np.zeros((0, 1, dim), np.float32)
    arrays = [np.asarray(a) for a in arrays]
    bad = [a.shape for a in arrays if a.ndim != 2]
    if bad:
        raise invalid("arrays", "2-D arrays of shape (length, dim)", f"an array of shape {bad[0]}")
    width = arrays[0].shape[1] if dim is None else dim
    if any(a.shape[1] != width for a in arrays):
        raise invalid("arrays", f"arrays of equal width {width}", sorted({a.shape[1] for a in arrays}))
    lengths = [len(a) if max_len is None else min(len(a), int(max_len)) for a in arrays]
    out = np.zeros((len(arrays), max(1, max(lengths)), width), np.float32)
    for i, (a, n) in enumerate(zip(arrays, lengths)):
        out[i, :n] = a[:n]
    return out


def class_weights(labels, n_classes: int) -> np.ndarray:
    """Per-sample weights inversely proportional to class frequency, with mean 1 over ``labels``.

    assumption (README assumptions table): losses are class-balanced this way, so that training targets UAR. A class
    absent from ``labels`` gets no weight (it has no samples).
    """
    if not isinstance(n_classes, (int, np.integer)) or isinstance(n_classes, bool) or n_classes < 1:
        raise invalid("n_classes", "a positive integer", n_classes)
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise invalid("labels", "a 1-D array of integer class ids", f"shape {y.shape}, dtype {y.dtype}")
    if y.size == 0:
        return np.zeros(0, np.float32)
    if y.min() < 0 or y.max() >= n_classes:
        raise invalid("labels", f"class ids in [0, {n_classes})", f"values in [{y.min()}, {y.max()}]")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(n_classes)
    per_class[present] = len(y) / (present.sum() * counts[present])
    return per_class[y].astype(np.float32)


def _as_rows(indices, name: str = "indices") -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0:
        raise invalid(name, "a non-empty 1-D array of non-negative table positions", indices)
    return idx.astype(np.int64)


def _check_container(name: str, values, rows: np.ndarray) -> None:
    """``values[r]`` must exist for every row (a sequence indexed by table position, or a position -> array mapping)."""
    if isinstance(values, Mapping):
        absent = [int(r) for r in rows if int(r) not in values]
        if absent:
            raise ValueError(
                f"`{name}` has no entry for {len(absent)} requested row(s), e.g. table positions {absent[:5]}"
            )
    elif not hasattr(values, "__getitem__") or not hasattr(values, "__len__"):
        expected = "a sequence indexed by table position or a mapping position -> value"
        raise invalid(name, expected, type(values).__name__)
    elif rows.max() >= len(values):
        raise ValueError(
            f"`{name}` has {len(values)} rows but table position {int(rows.max())} was requested; inputs, targets and "
            "sample weights are indexed by table position, not by position within `indices`"
        )


def _lengths(values, rows: np.ndarray, cap: int | None) -> np.ndarray:
    stored = getattr(values, "lengths", None)
    if stored is not None and not isinstance(values, Mapping):
        lengths = np.asarray(stored, dtype=np.int64)[rows]
    else:
        lengths = np.array([len(values[int(r)]) for r in rows], dtype=np.int64)
    return lengths if cap is None else np.minimum(lengths, cap)


def _caps(names, max_lengths: Mapping[str, int | None] | None) -> dict[str, int | None]:
    caps = {m: DEFAULT_MAX_LENGTHS.get(m) for m in names}
    if max_lengths is not None:
        if not isinstance(max_lengths, Mapping):
            raise invalid("max_lengths", "a dict modality -> int or None", max_lengths)
        for m, cap in max_lengths.items():
            if cap is not None and (not isinstance(cap, (int, np.integer)) or isinstance(cap, bool) or cap < 1):
                raise invalid("max_lengths", "positive integers or None", dict(max_lengths))
            caps[m] = None if cap is None else int(cap)
    return caps


def _check_inputs(inputs, indices, batch_size) -> tuple[int, np.ndarray]:
    """Validate the modality inputs, the rows to serve and the batch size; returns (batch_size, rows)."""
    if not isinstance(inputs, Mapping) or not inputs:
        raise invalid("inputs", "a non-empty dict modality -> sequence of arrays", type(inputs).__name__)
    batch_size = _check_batch_size(batch_size)
    rows = _as_rows(indices)
    for name, values in inputs.items():
        _check_container(f"inputs[{name!r}]", values, rows)
    return batch_size, rows


def batch_order(
    lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0, bucket: bool = True, epoch: int = 0
) -> list[np.ndarray]:
    """Batches as arrays of positions into ``lengths`` (see the module docstring); deterministic in (seed, epoch).

    Without shuffling, bucketing sorts the whole set by length (stable), the least padding for evaluation.
    """
    lengths = np.asarray(lengths)
    n = len(lengths)
    rng = np.random.default_rng([int(seed), int(epoch)])
    positions = rng.permutation(n) if shuffle else np.arange(n)
    if not bucket:
        return [positions[i : i + batch_size] for i in range(0, n, batch_size)]
    pool = batch_size * BUCKET_POOL if shuffle else max(n, 1)
    batches = []
    for start in range(0, n, pool):
        chunk = positions[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        batches = [batches[j] for j in rng.permutation(len(batches))]
    return batches


def _sort_key(per_modality: dict[str, np.ndarray]) -> np.ndarray:
    """One length per row for bucketing: the acoustic length when present (lexical length breaks ties)."""
    names = [m for m in ("acoustic", "lexical") if m in per_modality] + sorted(set(per_modality) - set(MODALITIES))
    primary = per_modality[names[0]].astype(np.float64)
    if len(names) > 1:
        secondary = per_modality[names[1]].astype(np.float64)
        primary = primary + secondary / (secondary.max() + 1.0)
    return primary


def make_dataset(
    inputs: dict[str, Sequence[np.ndarray]],
    targets: dict[str, np.ndarray] | None,
    indices,
    *,
    batch_size: int = BATCH_SIZE,
    shuffle: bool = False,
    seed: int = 0,
    bucket: bool = True,
    sample_weights: dict[str, np.ndarray] | None = None,
    max_lengths: dict[str, int | None] | None = None,
):
    """A tf.data.Dataset of padded batches of the rows ``indices``.

    Args:
        inputs: modality name ("acoustic", "lexical") -> sequence of float32 (length_i, dim) arrays indexed by table
            position (e.g. ``AcousticFeatures`` or its ``normalized`` view, or ``embed``'s list over all rows); a
            mapping position -> array works too.
        targets: output name -> integer labels indexed by table position, or None to yield inputs only.
        indices: table positions of the rows to serve (e.g. ``fold.train``).
        batch_size: rows per batch (the last batch may be smaller).
        shuffle: reshuffle every epoch (deterministically from ``seed`` and the epoch number).
        seed: random seed of the order.
        bucket: batch rows of similar length (less padding); False keeps the (shuffled) order.
        sample_weights: output name -> float weights indexed by table position (requires ``targets``).
        max_lengths: modality -> cap on the sequence length (None: no cap); defaults ``DEFAULT_MAX_LENGTHS``
            (MAX_FRAMES acoustic frames, MAX_TOKENS lexical tokens).

    Returns:
        tf.data.Dataset yielding ``x``, ``(x, y)`` or ``(x, y, sw)`` with x = {modality: float32 (B, T, dim)} padded
        with zeros at the end, y = {output: int32 (B,)}, sw = {output: float32 (B,)}; its cardinality is the number
        of batches per epoch.
    """
    import tensorflow as tf

    batch_size, rows = _check_inputs(inputs, indices, batch_size)
    targets, sample_weights = _check_targets(targets, sample_weights, rows)
    caps = _caps(inputs, max_lengths)
    key = _sort_key({m: _lengths(v, rows, caps[m]) for m, v in inputs.items()})
    dims = {m: int(np.asarray(v[int(rows[0])]).shape[-1]) for m, v in inputs.items()}
    n_batches = -(-len(rows) // batch_size)
    epoch = [0]

    def generate():
        current = epoch[0]
        epoch[0] += 1
        for batch in batch_order(key, batch_size, shuffle=shuffle, seed=seed, bucket=bucket, epoch=current):
            chosen = rows[batch]
            x = {m: pad_batch([v[int(r)] for r in chosen], caps[m], dim=dims[m]) for m, v in inputs.items()}
            if targets is None:
                yield x
                continue
            y = {k: v[chosen].astype(np.int32) for k, v in targets.items()}
            if sample_weights is None:
                yield x, y
            else:
                yield x, y, {k: sample_weights[k][chosen] for k in targets if k in sample_weights}

    dataset = tf.data.Dataset.from_generator(generate, output_signature=_signature(dims, targets, sample_weights))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    # The epoch counter drives the shuffle; a training run restarts it (privemo.nn.training.fit) so that every trial of a
    # search sees the same batch order whatever ran before it in the process (resumed and distributed trials included).
    dataset.privemo_restart_epochs = lambda: epoch.__setitem__(0, 0)
    return dataset


def _check_targets(targets, sample_weights, rows: np.ndarray) -> tuple[dict | None, dict | None]:
    """``targets`` and ``sample_weights`` as arrays, each checked to cover ``rows``."""
    if targets is not None:
        if not isinstance(targets, Mapping) or not targets:
            raise invalid("targets", "a non-empty dict output name -> labels, or None", type(targets).__name__)
        targets = {k: np.asarray(v) for k, v in targets.items()}
        for name, values in targets.items():
            _check_container(f"targets[{name!r}]", values, rows)
    if sample_weights is not None:
        if targets is None:
            raise invalid("sample_weights", "None when `targets` is None", "a dict")
        unknown = sorted(set(sample_weights) - set(targets))
        if unknown:
            raise invalid("sample_weights", f"keys among the targets' {sorted(targets)}", unknown)
        sample_weights = {k: np.asarray(v, dtype=np.float32) for k, v in sample_weights.items()}
        for name, values in sample_weights.items():
            _check_container(f"sample_weights[{name!r}]", values, rows)
    return targets, sample_weights


def _signature(dims: dict[str, int], targets: dict | None, sample_weights: dict | None) -> Any:
    """The dataset's element spec: x, (x, y) or (x, y, sw)."""
    import tensorflow as tf

    x_spec = {m: tf.TensorSpec((None, None, dim), tf.float32) for m, dim in dims.items()}
    if targets is None:
        return x_spec
    signature = (x_spec, {k: tf.TensorSpec((None,), tf.int32) for k in targets})
    if sample_weights is not None:
        signature = (*signature, {k: tf.TensorSpec((None,), tf.float32) for k in targets if k in sample_weights})
    return signature


def _match_inputs(model, x: dict[str, np.ndarray]):
    """Arrange the batch dict the way the model's inputs were declared (dict, list or one tensor), matching by name."""
    try:
        declared = model.input
    except (AttributeError, ValueError):  # subclassed or unbuilt models: hand over the dict
        return x

    def pick(tensor, position: int):
        name = getattr(tensor, "name", None)
        if name in x:
            return x[name]
        if len(x) == 1:
            return next(iter(x.values()))
        raise ValueError(f"predict: the model input {name!r} has no entry in `inputs` (keys: {sorted(x)})")

    if isinstance(declared, Mapping):
        return {k: x[k] if k in x else pick(t, i) for i, (k, t) in enumerate(declared.items())}
    if isinstance(declared, (list, tuple)):
        return [pick(t, i) for i, t in enumerate(declared)]
    return pick(declared, 0)


def predict(
    model,
    inputs: dict[str, Sequence[np.ndarray]],
    indices,
    *,
    batch_size: int = PREDICT_BATCH_SIZE,
    max_lengths: dict[str, int | None] | None = None,
):
    """Run ``model`` over the rows ``indices`` in length-sorted batches; outputs come back in the order of ``indices``.

    Args:
        model: a Keras model taking the dict ``{modality: (B, T, dim)}`` (e.g. build_model or representation_model).
        inputs, max_lengths: as for ``make_dataset``.
        indices: table positions.
        batch_size: rows per forward pass.

    Returns:
        The model's output structure (array, list or dict of arrays), each with one row per entry of ``indices``.
    """
    batch_size, rows = _check_inputs(inputs, indices, batch_size)
    caps = _caps(inputs, max_lengths)
    key = _sort_key({m: _lengths(v, rows, caps[m]) for m, v in inputs.items()})
    dims = {m: int(np.asarray(v[int(rows[0])]).shape[-1]) for m, v in inputs.items()}
    order = batch_order(key, batch_size, shuffle=False, bucket=True)
    outputs = []
    for batch in order:
        chosen = rows[batch]
        x = {m: pad_batch([v[int(r)] for r in chosen], caps[m], dim=dims[m]) for m, v in inputs.items()}
        outputs.append(model.predict_on_batch(_match_inputs(model, x)))
    position = np.concatenate(order)

    def stitch(parts: list) -> np.ndarray:
        stacked = np.concatenate([np.asarray(p) for p in parts], axis=0)
        out = np.empty_like(stacked)
        out[position] = stacked
        return out

    first = outputs[0]
    if isinstance(first, Mapping):
        return {k: stitch([o[k] for o in outputs]) for k in first}
    if isinstance(first, (list, tuple)):
        return [stitch([o[j] for o in outputs]) for j in range(len(first))]
    return stitch(outputs)
