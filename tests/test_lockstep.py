"""privemo.nn.lockstep: K networks side by side, their GRUs merged into one loop, compute what each computes alone."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from privemo._util.seed import set_seed
from privemo.nn.lockstep import Lockstep, gpu_visible, merged_gru, mergeable_gru
from privemo.nn.models import build_model

TINY = dict(conv_layers=1, conv_width=2, conv_kernels=4, gru_layers=2, gru_width=5, dense_layers=1, dense_width=4,
            acoustic_dim=6, lexical_dim=7)
ATOL = 1e-6


def _members(*overrides, modalities=("acoustic", "lexical")):
    members = []
    for i, extra in enumerate(overrides):
        set_seed(i)  # different weights per member: a merge that mixed members up would show
        members.append(build_model(**{**TINY, **extra}, modalities=modalities, adversary="gender"))
    return members


def _inputs(seed=0, batch=5):
    rng = np.random.default_rng(seed)
    x = {"acoustic": rng.normal(size=(batch, 17, 6)).astype("float32"),
         "lexical": rng.normal(size=(batch, 6, 7)).astype("float32")}
    x["acoustic"][1, 9:] = 0  # right padding: masked GRU steps
    x["acoustic"][3, 2:] = 0
    x["lexical"][2, 3:] = 0
    return x


def _lockstep_model(members, **kwargs):
    shared = {name: keras.Input(shape=t.shape[1:], name=name) for name, t in members[0].input.items()}
    return keras.Model(shared, Lockstep(members, **kwargs)(shared))


@pytest.mark.parametrize("merge", [True, False])
def test_every_member_computes_what_it_computes_alone(merge):
    # acoustic (mean readout over GRU outputs) and lexical (last state) branches, two GRU layers each, padded batches
    members = _members({"grl_lambda": 0.3}, {"grl_lambda": 1.0}, {"grl_lambda": 0.5})
    model = _lockstep_model(members, outputs=("h",), merge_gru=merge)
    x = _inputs()
    out = model(x)
    assert sorted(out) == sorted(f"m{i}_{k}" for i in range(3) for k in ("emotion", "gender", "h"))
    for i, member in enumerate(members):
        alone = member(x)
        h = keras.Model(member.input, member.get_layer("h").output)(x)
        for name in ("emotion", "gender"):
            np.testing.assert_allclose(out[f"m{i}_{name}"], alone[name], atol=ATOL)
        np.testing.assert_allclose(out[f"m{i}_h"], h, atol=ATOL)
    # members differ, so equality above is not one member's output repeated
    assert not np.allclose(out["m0_h"], out["m1_h"])


def test_each_member_gets_its_own_gradient():
    members = _members({"grl_lambda": 0.3}, {"grl_lambda": 1.0})
    model = _lockstep_model(members, merge_gru=True)
    x = _inputs(1)
    y = {"emotion": np.array([0, 1, 2, 1, 0]), "gender": np.array([0, 1, 1, 0, 0])}
    loss = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        out = model(x)
        total = sum(loss(y[name], out[f"m{i}_{name}"]) for i in range(2) for name in ("emotion", "gender"))
    packed = tape.gradient(total, [v.value for m in members for v in m.trainable_variables])
    alone = []
    for member in members:
        with tf.GradientTape() as tape:
            own = member(x)
            part = loss(y["emotion"], own["emotion"]) + loss(y["gender"], own["gender"])
        alone += tape.gradient(part, [v.value for v in member.trainable_variables])
    assert len(packed) == len(alone) and all(g is not None for g in packed)
    for a, b in zip(packed, alone):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_members_of_different_architectures_run_side_by_side():
    members = _members({}, {"conv_layers": 2}, {}, {"gru_width": 3}, modalities=("acoustic",))
    model = _lockstep_model(members, merge_gru=True)
    x = {"acoustic": _inputs()["acoustic"]}
    out = model(x)
    for i, member in enumerate(members):
        np.testing.assert_allclose(out[f"m{i}_emotion"], member(x)["emotion"], atol=ATOL)


def test_merged_gru_matches_keras_gru_with_a_mask():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 9, 3)).astype("float32")
    mask = np.arange(9)[None, :] < np.array([9, 4, 1, 6])[:, None]
    for sequences in (True, False):
        layers = [keras.layers.GRU(5, return_sequences=sequences) for _ in range(3)]
        seqs = [x * (i + 1) for i in range(3)]
        alone = [layer(s, mask=mask) for layer, s in zip(layers, seqs)]
        merged = merged_gru(layers, seqs, mask)
        for a, b in zip(merged, alone):
            np.testing.assert_allclose(a, b, atol=ATOL)


def test_only_grus_with_the_keras_step_are_merged():
    assert mergeable_gru(keras.layers.GRU(4))
    assert not mergeable_gru(keras.layers.GRU(4, go_backwards=True))
    assert not mergeable_gru(keras.layers.GRU(4, dropout=0.1))
    assert not mergeable_gru(keras.layers.GRU(4, reset_after=False))
    assert not mergeable_gru(keras.layers.LSTM(4))
    assert not mergeable_gru(keras.layers.Dense(4))


def test_default_merges_where_no_gpu_is_visible():
    layer = Lockstep(_members({}, {}, modalities=("acoustic",)))
    assert layer.merge_gru is None and layer._merging() == (not gpu_visible())


def test_saved_and_reloaded_as_a_keras_file(tmp_path):
    members = _members({"grl_lambda": 0.3}, {"grl_lambda": 0.75}, modalities=("acoustic",))
    model = _lockstep_model(members, outputs=("h",), merge_gru=True)
    model.save(tmp_path / "pack.keras")
    loaded = keras.saving.load_model(tmp_path / "pack.keras")
    x = {"acoustic": _inputs()["acoustic"]}
    ours, theirs = model(x), loaded(x)
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        np.testing.assert_allclose(theirs[name], ours[name], atol=ATOL)


def test_no_members_is_an_error():
    with pytest.raises(ValueError, match="members"):
        Lockstep([])
