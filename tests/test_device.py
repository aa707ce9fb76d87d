"""Device set-up on a CPU: mixed-precision policy on and back off, op determinism, and the GPU-readiness checks."""

import keras
import pytest

from privemo.nn.device import configure_device, cudnn_gru_problems, describe_devices, float16_outputs
from privemo.nn.models import build_model


def test_configure_device_sets_and_resets_the_policy():
    try:
        info = configure_device(mixed_precision=True)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert info["policy"] == "mixed_float16" and info["mixed_precision"] is True
        assert info["deterministic"] is True
        assert any("CPU" in d for d in info["devices"])
        assert info["cudnn"] == bool(info["gpus"])
        dense = keras.layers.Dense(3)
        assert dense.compute_dtype == "float16" and dense.variable_dtype == "float32"
    finally:
        info = configure_device(mixed_precision=False)
    assert keras.mixed_precision.global_policy().name == "float32" and info["mixed_precision"] is False
    assert describe_devices()["policy"] == "float32"
    with pytest.raises(ValueError, match="`mixed_precision`"):
        configure_device(mixed_precision="yes")


def test_privemo_grus_take_the_cudnn_path():
    model = build_model(("acoustic", "lexical"), adversary="gender", grl_placement="per_modality", lexical_dim=8,
                        gru_layers=2)
    assert sum(isinstance(layer, keras.layers.GRU) for layer in model.layers) == 4
    assert cudnn_gru_problems(model) == []
    x = keras.Input((None, 3))
    odd = keras.Model(x, keras.layers.GRU(4, recurrent_dropout=0.1, reset_after=False, name="gru")(x))
    assert cudnn_gru_problems(odd) == ["gru: needs reset_after", "gru: needs no recurrent_dropout"]


def test_float16_outputs_are_found():
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        x = keras.Input((4,))
        y = {"half": keras.layers.Dense(2, activation="softmax")(x),
             "full": keras.layers.Dense(2, activation="softmax", dtype="float32")(x)}
        assert float16_outputs(keras.Model(x, y)) == ["half"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
