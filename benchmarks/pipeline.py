"""Training throughput: the length-bucketed tf.data pipeline against a naive fit on arrays padded to the longest one.

Same model (``privemo.nn.models.build_model``, acoustic, default sizes; a small Conv1D + GRU fallback if it is
missing), same data (log-normal utterance lengths like IEMOCAP's: median ~3 s, long tail capped at MAX_FRAMES = 10 s),
same batch size, same initial weights. The first epoch of each (graph tracing) is reported separately; then epochs of
the two alternate (so that a change in machine load affects both alike) and the ratio compares their mean times.
Goal: >= 2x.

    python benchmarks/pipeline.py                     # 640 utterances, 2 timed epochs
    python benchmarks/pipeline.py --n 320 --epochs 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from privemo.features.logmel import MAX_FRAMES  # noqa: E402
from privemo.data.pipeline import make_dataset, pad_batch  # noqa: E402

BATCH = 32


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(300), 0.6, n).astype(int), 50, MAX_FRAMES)
    feats = [rng.standard_normal((k, 40)).astype(np.float32) for k in lengths]
    labels = rng.integers(0, 3, n).astype(np.int32)
    return feats, labels, lengths


def model():
    import keras

    try:
        from privemo.nn.models import build_model

        net = build_model(modalities=("acoustic",))
        source = "privemo.nn.models.build_model(modalities=('acoustic',)) with default sizes"
    except ImportError:
        x = keras.Input((None, 40), name="acoustic")
        h = keras.layers.Masking(0.0)(x)
        for _ in range(3):
            h = keras.layers.Conv1D(64, 2, padding="same", activation="relu")(h)
        h = keras.layers.GRU(32, return_sequences=True)(h)
        h = keras.layers.GRU(32)(h)
        h = keras.layers.Dense(32, activation="relu")(h)
        net = keras.Model({"acoustic": x}, {"emotion": keras.layers.Dense(3, activation="softmax", name="emotion")(h)})
        source = "fallback Conv1D x3 + GRU x2 model"
    net.compile(optimizer="adam", loss={"emotion": "sparse_categorical_crossentropy"})
    return net, source


def epoch_time(fit_once) -> float:
    t0 = time.perf_counter()
    fit_once()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=640, help="utterances (default 640)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the first (default 2)")
    args = parser.parse_args()

    import keras

    feats, labels, lengths = data(args.n)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"data: {args.n} utterances, frames median {int(np.median(lengths))}, mean {lengths.mean():.0f}, "
          f"max {lengths.max()} (cap {MAX_FRAMES}); batch {BATCH}; 1-min load average at start {load:.2f}")

    keras.utils.set_random_seed(0)
    naive_net, source = model()
    bucket_net, _ = model()
    bucket_net.set_weights(naive_net.get_weights())  # same initial weights
    print(f"model: {source}, {naive_net.count_params():,} parameters")

    # naive: every utterance padded to the longest one, Keras shuffles the arrays
    padded = pad_batch(feats, max_len=MAX_FRAMES)
    y = {"emotion": labels}

    def naive_epoch():
        naive_net.fit({"acoustic": padded}, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)

    # bucketed: the privemo pipeline (shuffled pools sorted by length, padded per batch)
    ds = make_dataset({"acoustic": feats}, y, np.arange(args.n), batch_size=BATCH, shuffle=True, seed=0)

    def bucket_epoch():
        bucket_net.fit(ds, epochs=1, verbose=0, shuffle=False)

    # first epochs include graph tracing; then the two alternate, so a change in machine load hits both alike
    first_naive, first_bucket = epoch_time(naive_epoch), epoch_time(bucket_epoch)
    naive, bucket = [], []
    for _ in range(args.epochs):
        naive.append(epoch_time(naive_epoch))
        bucket.append(epoch_time(bucket_epoch))
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    padded_frames = sum(len(b) * lengths[b].max() for b in _batches(lengths))
    print(f"naive (padded to {padded.shape[1]} frames): first epoch {first_naive:.1f} s, then "
          f"{np.mean(naive):.1f} s/epoch = {args.n / np.mean(naive):.0f} utterances/s")
    print(f"bucketed pipeline:                first epoch {first_bucket:.1f} s, then "
          f"{np.mean(bucket):.1f} s/epoch = {args.n / np.mean(bucket):.0f} utterances/s")
    print(f"frames processed per epoch: naive {padded.shape[0] * padded.shape[1]:,}, bucketed ~{padded_frames:,} "
          f"(true {int(lengths.sum()):,})")
    ratio = np.mean(naive) / np.mean(bucket)
    print(f"speed-up (steady-state epochs): {ratio:.2f}x; goal >= 2x:", "met" if ratio >= 2 else "NOT met",
          f"(1-min load average at the end {load_end:.2f})")


def _batches(lengths):
    from privemo.data.pipeline import batch_order

    return batch_order(lengths, BATCH, shuffle=True, seed=0)


if __name__ == "__main__":
    main()
