"""The model factory: outputs per adversary and placement, masking, serialisation, grid corners, argument errors."""

import numpy as np
import pytest
import keras

from privemo.search.grids import PAPER_GRID
from privemo.nn.layers import GradientReversal
from privemo.nn.models import (
    EncoderSettings,
    adversary_output_names,
    build_encoder,
    build_head,
    build_model,
    output_names,
    representation_model,
)
from privemo.nn.training import compile_model

LEX_DIM = 12  # small word vectors keep the lexical branch cheap
N_UTT, N_FRAMES = 4, 20  # tiny data: 4 utterances x 20 frames


def _inputs(modalities, seed=0, lengths=(20, 13, 7, 16)):
    rng = np.random.default_rng(seed)
    dims = {"acoustic": 40, "lexical": LEX_DIM}
    x = {}
    for m in modalities:
        a = rng.normal(size=(N_UTT, N_FRAMES, dims[m])).astype("float32")
        for i, n in enumerate(lengths):
            a[i, n:] = 0.0  # right zero padding
        a[3, 4] = 0.0  # an all-zero frame inside utterance 3 (e.g. an OOV word vector): real, not padding
        x[m] = a
    return x


def _targets(model, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, model.output[name].shape[-1], N_UTT).astype("int32") for name in output_names(model)}


@pytest.fixture(scope="module")
def fused_both():
    keras.utils.set_random_seed(1)
    return build_model(("acoustic", "lexical"), adversary="gender", conv_kernels=16, lexical_dim=LEX_DIM)


@pytest.fixture(scope="module")
def per_modality_both():
    keras.utils.set_random_seed(2)
    return build_model(
        ("acoustic", "lexical"), adversary="gender", grl_placement="per_modality", grl_lambda=0.3, conv_width=3,
        conv_kernels=8, lexical_dim=LEX_DIM,
    )


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(), {"emotion": 3}),
        (dict(adversary="gender"), {"emotion": 3, "gender": 2}),
        (dict(adversary="speaker", n_speakers=7), {"emotion": 3, "speaker": 7}),
        (dict(modalities="lexical", adversary="gender", n_classes=4), {"emotion": 4, "gender": 2}),
        (
            dict(modalities=("lexical", "acoustic"), adversary="speaker", n_speakers=5, grl_placement="per_modality"),
            {"emotion": 3, "speaker_acoustic": 5, "speaker_lexical": 5},
        ),
        (
            dict(modalities=("acoustic", "lexical"), adversary="gender", grl_placement="per_modality"),
            {"emotion": 3, "gender_acoustic": 2, "gender_lexical": 2},
        ),
        (dict(modalities=("acoustic", "lexical"), grl_placement="per_modality"), {"emotion": 3}),
    ],
)
def test_output_names_and_sizes(kwargs, expected):
    model = build_model(conv_layers=1, conv_kernels=4, gru_layers=1, gru_width=4, dense_width=4, lexical_dim=LEX_DIM, **kwargs)
    assert output_names(model) == list(expected)
    assert {k: model.output[k].shape[-1] for k in expected} == expected
    modalities = kwargs.get("modalities", ("acoustic",))
    modalities = (modalities,) if isinstance(modalities, str) else modalities
    assert adversary_output_names(modalities, kwargs.get("adversary"), kwargs.get("grl_placement", "fused")) == [
        n for n in expected if n != "emotion"
    ]
    assert sorted(model.input) == sorted(modalities)
    names = {layer.name for layer in model.layers}
    assert "h" in names and {f"h_{m}" for m in modalities} <= names
    grls = [layer for layer in model.layers if isinstance(layer, GradientReversal)]
    assert len(grls) == len(expected) - 1


def test_representation_and_branch_wiring(fused_both, per_modality_both):
    assert representation_model(fused_both).output.shape == (None, 64)  # concatenation of two 32-unit GRU vectors
    assert representation_model(fused_both, "h_lexical").output.shape == (None, 32)
    assert fused_both.get_layer("gender_grl").input is fused_both.get_layer("h").output
    assert per_modality_both.get_layer("gender_acoustic_grl").input is per_modality_both.get_layer("h_acoustic").output
    assert per_modality_both.get_layer("gender_lexical_grl").input is per_modality_both.get_layer("h_lexical").output
    assert per_modality_both.get_layer("gender_lexical_grl").lambda_ == 0.3
    conv = per_modality_both.get_layer("acoustic_conv1")
    assert (conv.filters, conv.kernel_size, conv.padding) == (8, (3,), "same")
    gru = per_modality_both.get_layer("acoustic_gru2")
    assert gru.units == 32 and gru.recurrent_dropout == 0 and gru.activation.__name__ == "tanh"
    # the default readout averages the last GRU's outputs over the real steps
    assert gru.return_sequences and per_modality_both.get_layer("h_acoustic").input is \
        per_modality_both.get_layer("acoustic_readout").output

    with pytest.raises(ValueError, match="`layer`"):
        representation_model(fused_both, "nope")
    x = _inputs(("acoustic", "lexical"))
    h = representation_model(fused_both)(x)
    parts = [representation_model(fused_both, f"h_{m}")(x) for m in ("acoustic", "lexical")]
    np.testing.assert_allclose(np.asarray(h), np.concatenate([np.asarray(p) for p in parts], axis=1), rtol=1e-6)


def test_last_state_readout_and_its_check():
    last = build_model(("acoustic",), conv_layers=1, conv_kernels=4, gru_width=8, gru_readout="last")
    assert not last.get_layer("acoustic_gru2").return_sequences
    assert "acoustic_readout" not in {layer.name for layer in last.layers}
    with pytest.raises(ValueError, match="`readout`"):
        build_model(("acoustic",), gru_readout="max")
    both = build_model(("acoustic", "lexical"), conv_layers=1, conv_kernels=4, gru_width=8, lexical_dim=LEX_DIM)
    assert both.get_layer("acoustic_gru2").return_sequences and not both.get_layer("lexical_gru2").return_sequences


def test_extra_zero_padding_does_not_change_predictions(per_modality_both):
    x = _inputs(("acoustic", "lexical"))
    base = per_modality_both(x, training=False)
    padded = {k: np.concatenate([v, np.zeros((N_UTT, 11, v.shape[-1]), np.float32)], axis=1) for k, v in x.items()}
    more = per_modality_both(padded, training=False)
    single = per_modality_both({k: v[2:3, :7] for k, v in x.items()}, training=False)  # utterance 2 alone, unpadded
    inner = per_modality_both({k: v[3:4, :16] for k, v in x.items()}, training=False)  # utterance 3 alone
    for name in base:
        np.testing.assert_allclose(np.asarray(more[name]), np.asarray(base[name]), rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(single[name])[0], np.asarray(base[name])[2], rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(inner[name])[0], np.asarray(base[name])[3], rtol=0, atol=1e-6)
    # the inner zero frame is a real step of the sequence: dropping it changes the output
    dropped = {k: np.delete(v[3:4, :16], 4, axis=1) for k, v in x.items()}
    assert not np.allclose(np.asarray(per_modality_both(dropped)["emotion"])[0], np.asarray(base["emotion"])[3])
    # the padding is really masked: changing a real frame changes the output
    changed = {k: v.copy() for k, v in x.items()}
    changed["acoustic"][2, 3] += 1.0
    assert not np.allclose(np.asarray(per_modality_both(changed)["emotion"])[2], np.asarray(base["emotion"])[2])


def test_keras_round_trip_gives_identical_predictions(per_modality_both, tmp_path):
    per_modality_both.get_layer("gender_acoustic_grl").lambda_ = 0.75
    path = tmp_path / "model.keras"
    per_modality_both.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True: no Lambda layers
    x = _inputs(("acoustic", "lexical"), seed=3)
    expected = per_modality_both.predict(x, verbose=0)
    got = loaded.predict(x, verbose=0)
    assert list(got) == list(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    assert loaded.get_layer("gender_acoustic_grl").lambda_ == 0.75
    assert loaded.get_layer("gender_lexical_grl").lambda_ == 0.3
    per_modality_both.get_layer("gender_acoustic_grl").lambda_ = 0.3


CORNERS = {
    "min": {k: min(v) for k, v in PAPER_GRID.items()},
    "max": {k: max(v) for k, v in PAPER_GRID.items()},
}


@pytest.mark.parametrize(
    "corner, variant",
    [
        ("min", dict(modalities=("acoustic",), adversary="gender")),
        ("max", dict(modalities=("acoustic",), adversary="gender")),
        ("min", dict(modalities=("acoustic", "lexical"), adversary="speaker", n_speakers=3, grl_placement="per_modality")),
        ("max", dict(modalities=("acoustic", "lexical"), adversary="gender", grl_placement="per_modality")),
        ("max", dict(modalities=("lexical",), adversary=None)),
    ],
)
def test_grid_corners_build_and_train_a_step(corner, variant):
    """Every axis of the paper's grid at its minimum and at its maximum builds and takes a real training step."""
    config = dict(CORNERS[corner])
    if variant["adversary"] is None:
        config.pop("grl_lambda")
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(lexical_dim=LEX_DIM, **variant, **config))
    model.run_eagerly = True  # the step itself is what is tested; eager avoids several seconds of tracing per model
    x = _inputs(variant["modalities"])
    y = _targets(model)
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(changed), [w.path for w, c in zip(model.trainable_weights, changed) if not c]
    assert model.get_layer(f"{variant['modalities'][0]}_conv{config['conv_layers']}").filters == config["conv_kernels"]
    assert model.get_layer(f"{variant['modalities'][0]}_gru{config['gru_layers']}").units == config["gru_width"]
    assert model.get_layer(f"emotion_dense{config['dense_layers']}").units == config["dense_width"]


def test_reusable_encoder_and_heads():
    settings = EncoderSettings(conv_layers=1, conv_kernels=4, gru_layers=1, gru_width=6)
    encoder = build_encoder(("acoustic", "lexical"), settings, lexical_dim=LEX_DIM)
    assert sorted(encoder.output) == ["h", "h_acoustic", "h_lexical"]
    out = encoder(_inputs(("acoustic", "lexical")))
    assert np.asarray(out["h"]).shape == (N_UTT, 12)
    head = build_head(12, 2, dense_layers=2, dense_width=5, grl_lambda=0.5, name="gender")
    assert [layer.name for layer in head.layers][1:] == ["gender_grl", "gender_dense1", "gender_dense2", "gender"]
    probs = np.asarray(head(out["h"]))
    with pytest.raises(ValueError, match="Invalid value received for argument `gru_width`"):
        EncoderSettings(gru_width=0)
    with pytest.raises(ValueError, match="Invalid value received for argument `readout`"):
        EncoderSettings(gru_readout={"acoustic": "max"})
    assert EncoderSettings().readout("acoustic") == "mean" and EncoderSettings().pool("lexical") == 1
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert build_head(12, 3, dense_layers=0).layers[-1].name == "emotion"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(modalities=("video",)), "`modalities`"),
        (dict(modalities=()), "`modalities`"),
        (dict(modalities=("acoustic", "acoustic")), "`modalities`"),
        (dict(adversary="age"), "`adversary`"),
        (dict(adversary="gender", grl_placement="per_modality"), "`grl_placement`"),
        (dict(grl_placement="late"), "`grl_placement`"),
        (dict(adversary="speaker"), "`n_speakers`"),
        (dict(adversary="speaker", n_speakers=1), "`n_speakers`"),
        (dict(adversary="gender", grl_lambda=-0.5), "`grl_lambda`"),
        (dict(n_classes=1), "`n_classes`"),
        (dict(conv_layers=0), "`conv_layers`"),
        (dict(conv_width=2.0), "`conv_width`"),
        (dict(conv_kernels=True), "`conv_kernels`"),
        (dict(gru_layers=-1), "`gru_layers`"),
        (dict(gru_width=0), "`gru_width`"),
        (dict(dense_layers=100), "`dense_layers`"),
        (dict(dense_width="32"), "`dense_width`"),
        (dict(acoustic_dim=0), "`acoustic_dim`"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=f"Invalid value received for argument {match}"):
        build_model(**kwargs)


def test_one_description_of_the_outputs_names_and_wires_every_head():
    from privemo.nn.models import OutputSpec, attribute_of, model_outputs

    assert model_outputs(("acoustic",)) == [OutputSpec("emotion", None, "h")]
    per = model_outputs(("lexical", "acoustic"), "gender", "per_modality")
    assert per == [OutputSpec("emotion", None, "h"), OutputSpec("gender_acoustic", "gender", "h_acoustic"),
                   OutputSpec("gender_lexical", "gender", "h_lexical")]
    assert [attribute_of(o.name) for o in per] == [None, "gender", "gender"] and attribute_of("speaker") == "speaker"
    model = build_model(("acoustic", "lexical"), adversary="gender", grl_placement="per_modality", conv_layers=1,
                        conv_kernels=4, gru_layers=1, gru_width=6, lexical_dim=LEX_DIM)
    assert sorted(model.output) == sorted(o.name for o in per)
    for o in per[1:]:  # each head reads the layer its description names, behind its own GRL
        grl = model.get_layer(f"{o.name}_grl")
        assert grl.input is model.get_layer(o.source).output
