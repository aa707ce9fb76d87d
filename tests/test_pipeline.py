"""privemo.data.pipeline: padding, masks vs true lengths, bucketing, seeded order, sample weights, prediction order."""

from __future__ import annotations

import numpy as np
import pytest

from privemo.data.pipeline import batch_order, class_weights, make_dataset, pad_batch, predict

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

N = 90


def _data(seed: int = 0):
    """Rows with skewed lengths and no all-zero frame, so "frame has a non-zero value" is exactly the true length."""
    rng = np.random.default_rng(seed)
    a_len = np.minimum(rng.lognormal(3.5, 0.8, N).astype(int) + 1, 400)
    l_len = rng.integers(1, 25, N)
    acoustic = [rng.normal(size=(n, 40)).astype(np.float32) + 5.0 for n in a_len]
    lexical = [rng.normal(size=(n, 6)).astype(np.float32) + 5.0 for n in l_len]
    labels = rng.integers(0, 3, N)
    return {"acoustic": acoustic, "lexical": lexical}, labels


def _batches(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def test_pad_batch():
    arrays = [np.ones((3, 2)), 2 * np.ones((5, 2)), 3 * np.ones((1, 2))]
    out = pad_batch(arrays)
    assert out.shape == (3, 5, 2) and out.dtype == np.float32
    assert (out[0, :3] == 1).all() and (out[0, 3:] == 0).all() and (out[2, 1:] == 0).all()
    capped = pad_batch(arrays, max_len=4)
    assert capped.shape == (3, 4, 2) and (capped[1] == 2).all()
    assert pad_batch([], dim=7).shape == (0, 1, 7)
    with pytest.raises(ValueError, match="`arrays`"):
        pad_batch([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="`max_len`"):
        pad_batch(arrays, max_len=0)


def test_class_weights_inverse_frequency_mean_one():
    y = np.array([0] * 6 + [1] * 3 + [2] * 1)
    w = class_weights(y, 3)
    assert w.dtype == np.float32 and w.shape == y.shape
    assert w.mean() == pytest.approx(1.0)
    for c in range(3):  # every class carries the same total weight
        assert w[y == c].sum() == pytest.approx(len(y) / 3)
    w2 = class_weights(np.array([0, 0, 2]), 3)  # class 1 absent
    assert w2.mean() == pytest.approx(1.0) and w2[2] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="`labels`"):
        class_weights(np.array([0, 3]), 3)


def test_masks_match_true_lengths_and_values():
    inputs, labels = _data()
    caps = {"acoustic": 150, "lexical": None}
    rows = np.arange(0, N, 2)
    ds = make_dataset(inputs, {"emotion": labels, "row": np.arange(N)}, rows, batch_size=8, shuffle=True, seed=1,
                      max_lengths=caps)
    seen = []
    for x, y in _batches(ds):
        assert set(x) == {"acoustic", "lexical"} and y["emotion"].dtype == np.int32
        assert x["acoustic"].dtype == np.float32 and x["acoustic"].shape[2] == 40 and x["lexical"].shape[2] == 6
        for b, r in enumerate(y["row"]):
            seen.append(r)
            assert y["emotion"][b] == labels[r]
            for m, cap in (("acoustic", 150), ("lexical", None)):
                true = len(inputs[m][r]) if cap is None else min(len(inputs[m][r]), cap)
                mask = np.any(x[m][b] != 0, axis=-1)
                assert mask.sum() == true and mask[:true].all()  # right padding: a prefix of real frames
                np.testing.assert_array_equal(x[m][b, :true], inputs[m][r][:true])
            assert x["acoustic"].shape[1] <= 150
    assert sorted(seen) == list(rows)  # every row exactly once per epoch


def test_default_caps_apply():
    rng = np.random.default_rng(0)
    long = [rng.normal(size=(1200, 40)).astype(np.float32) + 3]
    (x,) = _batches(make_dataset({"acoustic": long}, None, [0]))
    assert x["acoustic"].shape == (1, 1000, 40)  # MAX_FRAMES, the first frames kept
    np.testing.assert_array_equal(x["acoustic"][0], long[0][:1000])


def _order(ds) -> list[int]:
    return [int(r) for _, y in _batches(ds) for r in y["row"]]


def test_deterministic_order_under_seed():
    inputs, labels = _data()
    targets = {"emotion": labels, "row": np.arange(N)}
    rows = np.arange(N)
    one = make_dataset(inputs, targets, rows, batch_size=8, shuffle=True, seed=7)
    two = make_dataset(inputs, targets, rows, batch_size=8, shuffle=True, seed=7)
    epochs_one = [_order(one) for _ in range(2)]
    epochs_two = [_order(two) for _ in range(2)]
    assert epochs_one == epochs_two  # same seed, same batches, epoch after epoch
    assert epochs_one[0] != epochs_one[1]  # reshuffled between epochs
    assert _order(make_dataset(inputs, targets, rows, batch_size=8, shuffle=True, seed=8)) != epochs_one[0]
    fixed = make_dataset(inputs, targets, rows, batch_size=8, shuffle=False)
    assert _order(fixed) == _order(fixed)
    assert int(one.cardinality()) == -(-N // 8)


def test_bucketing_reduces_padding():
    inputs, labels = _data()
    lengths = np.array([len(a) for a in inputs["acoustic"]])

    def padded_frames(bucket: bool) -> int:
        ds = make_dataset({"acoustic": inputs["acoustic"]}, {"emotion": labels}, np.arange(N), batch_size=8,
                          shuffle=True, seed=0, bucket=bucket, max_lengths={"acoustic": None})
        return sum(x["acoustic"].shape[0] * x["acoustic"].shape[1] for x, _ in _batches(ds))

    bucketed, plain = padded_frames(True), padded_frames(False)
    assert bucketed < 0.7 * plain and bucketed >= lengths.sum()
    # sorting pools: within a batch lengths are close
    batches = batch_order(lengths, 8, shuffle=True, seed=0, bucket=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(N))


def test_sample_weights_and_inputs_only():
    inputs, labels = _data()
    weights = np.linspace(0.1, 2.0, N).astype(np.float32)
    ds = make_dataset({"lexical": inputs["lexical"]}, {"emotion": labels, "row": np.arange(N)}, np.arange(N),
                      batch_size=16, sample_weights={"emotion": weights})
    for x, y, sw in _batches(ds):
        assert set(sw) == {"emotion"} and sw["emotion"].dtype == np.float32
        np.testing.assert_array_equal(sw["emotion"], weights[y["row"]])
    only_x = _batches(make_dataset({"lexical": inputs["lexical"]}, None, np.arange(5)))
    assert isinstance(only_x[0], dict) and only_x[0]["lexical"].shape[0] == 5


def test_mapping_inputs_and_errors():
    inputs, labels = _data()
    subset = {5: inputs["lexical"][5], 9: inputs["lexical"][9]}
    (x, y), = _batches(make_dataset({"lexical": subset}, {"emotion": labels}, [9, 5]))
    assert x["lexical"].shape[0] == 2
    with pytest.raises(ValueError, match="indexed by table position"):
        make_dataset(inputs, {"emotion": labels[:10]}, np.arange(20))
    with pytest.raises(ValueError, match="no entry"):
        make_dataset({"lexical": subset}, None, [1, 5])
    with pytest.raises(ValueError, match="`sample_weights`"):
        make_dataset(inputs, None, [0], sample_weights={"emotion": np.ones(N)})
    with pytest.raises(ValueError, match="`batch_size`"):
        make_dataset(inputs, None, [0], batch_size=0)
    with pytest.raises(ValueError, match="`indices`"):
        make_dataset(inputs, None, [])


@keras.saving.register_keras_serializable(package="privemo_tests")
class SumOverTime(keras.layers.Layer):
    """Sum over time and features: independent of how much zero padding follows."""

    def call(self, x):
        return keras.ops.sum(x, axis=(1, 2))[:, None]


def test_predict_returns_rows_in_the_order_of_indices():
    inputs, _ = _data()
    a = keras.Input((None, 40), name="acoustic")
    b = keras.Input((None, 6), name="lexical")
    model = keras.Model({"acoustic": a, "lexical": b}, {"sa": SumOverTime()(a), "sb": SumOverTime()(b)})
    rows = np.random.default_rng(3).permutation(N)[:50]
    out = predict(model, inputs, rows, batch_size=7, max_lengths={"acoustic": 60})
    expected_a = np.array([inputs["acoustic"][r][:60].sum() for r in rows])
    expected_b = np.array([inputs["lexical"][r].sum() for r in rows])
    np.testing.assert_allclose(out["sa"][:, 0], expected_a, rtol=1e-4)
    np.testing.assert_allclose(out["sb"][:, 0], expected_b, rtol=1e-4)
    single = keras.Model(b, SumOverTime()(b))
    np.testing.assert_allclose(predict(single, {"lexical": inputs["lexical"]}, rows)[:, 0], expected_b, rtol=1e-4)


def test_keras_fit_consumes_the_dataset():
    inputs, labels = _data()
    keras.utils.set_random_seed(0)
    a = keras.Input((None, 40), name="acoustic")
    h = keras.layers.Masking(0.0)(a)
    h = keras.layers.GRU(4)(h)
    model = keras.Model({"acoustic": a}, {"emotion": keras.layers.Dense(3, activation="softmax", name="emotion")(h)})
    model.compile("adam", {"emotion": "sparse_categorical_crossentropy"})
    w = class_weights(labels, 3)
    ds = make_dataset({"acoustic": inputs["acoustic"]}, {"emotion": labels}, np.arange(N), batch_size=16,
                      shuffle=True, sample_weights={"emotion": w}, max_lengths={"acoustic": 80})
    history = model.fit(ds, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
