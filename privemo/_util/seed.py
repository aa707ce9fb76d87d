"""One call that seeds a job: what ``keras.utils.set_random_seed`` does, minus its TensorFlow kernel-cache flush.

``keras.utils.set_random_seed`` also calls ``tf.random.set_seed``, and TensorFlow clears its eager kernel cache whenever
the global seed is set, so every already-traced training and prediction function is instantiated and optimised again
on its next call (1.5-3 s per job on a CPU). privemo draws no unseeded TensorFlow random op (initialisers use Keras'
seed generators, shuffling uses NumPy), so the TensorFlow global seed does not affect its results and is left alone.
"""

from __future__ import annotations

import random

import numpy as np


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and Keras (its global seed and seed generator) as ``keras.utils.set_random_seed`` does."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r}")
    seed = int(seed)
    try:
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    except ImportError:  # another Keras layout: the public call (same seeds, only slower)
        import keras

        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, None)  # recreated from the seed on first use
    random.seed(seed)
    np.random.seed(seed)
