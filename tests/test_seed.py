"""privemo._util.seed.set_seed: the seeds keras.utils.set_random_seed gives, without flushing TensorFlow's kernel
cache."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from privemo._util.seed import set_seed


def _draws():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    return [w.copy() for w in model.get_weights()], random.random(), np.random.rand()


def test_same_seeds_as_keras_set_random_seed():
    keras.utils.set_random_seed(11)
    expected = _draws()
    set_seed(11)
    got = _draws()
    for a, b in zip(expected[0], got[0]):
        np.testing.assert_array_equal(a, b)
    assert expected[1:] == got[1:]
    set_seed(12)
    assert not np.array_equal(_draws()[0][0], expected[0][0])


def test_does_not_touch_the_tensorflow_seed(monkeypatch):
    def flush(seed):  # tf.random.set_seed clears the eager kernel cache: traced functions are instantiated again
        raise AssertionError("set_seed must not call tf.random.set_seed")

    monkeypatch.setattr(tf.random, "set_seed", flush)
    set_seed(3)


@pytest.mark.parametrize("bad", [1.5, "1", None, True])
def test_rejects_non_integer_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        set_seed(bad)
