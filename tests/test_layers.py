"""GradientReversal, its lambda schedule, and the masking helpers."""

import math

import numpy as np
import pytest
import tensorflow as tf
import keras

from privemo.nn.layers import (
    ApplyMask,
    FrameMask,
    GradientReversal,
    LambdaSchedule,
    dann_lambda,
    gradient_reversal_layers,
)

RNG = np.random.default_rng(0)
X = tf.constant((RNG.normal(size=(3, 5, 4)) * 10.0 ** RNG.integers(-3, 4, size=(3, 5, 4))).astype("float32"))
UPSTREAM = tf.constant(RNG.normal(size=(3, 5, 4)).astype("float32"))


def _value_and_grad(layer, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    return y, tape.gradient(y, x, output_gradients=upstream)


@pytest.mark.parametrize("mode", ["eager", "tf.function", "xla"])
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.75, 1.0, 2.5])
def test_forward_is_identity_and_gradient_is_minus_lambda_times_upstream(mode, lam):
    layer = GradientReversal(lam)
    fn = {
        "eager": _value_and_grad,
        "tf.function": tf.function(_value_and_grad),
        "xla": tf.function(_value_and_grad, jit_compile=True),
    }[mode]
    y, grad = fn(layer, X, UPSTREAM)
    np.testing.assert_array_equal(y.numpy(), X.numpy())
    np.testing.assert_array_equal(grad.numpy(), -np.float32(lam) * UPSTREAM.numpy())


@pytest.mark.parametrize("jit_compile", [False, True])
def test_lambda_change_takes_effect_without_retracing(jit_compile):
    layer = GradientReversal(0.3)
    fn = tf.function(_value_and_grad, jit_compile=jit_compile)
    _, g1 = fn(layer, X, UPSTREAM)
    layer.lambda_ = 0.75
    _, g2 = fn(layer, X, UPSTREAM)
    layer.set_lambda(0.0)
    _, g3 = fn(layer, X, UPSTREAM)
    assert fn.experimental_get_tracing_count() == 1
    np.testing.assert_array_equal(g1.numpy(), -np.float32(0.3) * UPSTREAM.numpy())
    np.testing.assert_array_equal(g2.numpy(), -np.float32(0.75) * UPSTREAM.numpy())
    np.testing.assert_array_equal(g3.numpy(), np.zeros_like(UPSTREAM.numpy()))
    assert layer.lambda_ == 0.0


def _linear_model():
    """x -> w1 x -> GRL -> w2 (.) -> prediction; w1 gets its gradient only through the GRL."""
    x = keras.Input(shape=(1,))
    h = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="below")(x)
    h = GradientReversal(1.0, name="grl")(h)
    y = keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(2.0), name="above")(h)
    return keras.Model(x, y)


class _RecordWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.begin, self.end, self.lams = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.begin.append([float(self.model.get_layer(n).kernel.numpy()[0, 0]) for n in ("below", "above")])
        self.lams.append(self.model.get_layer("grl").lambda_)

    def on_epoch_end(self, epoch, logs=None):
        self.end.append(float(self.model.get_layer("below").kernel.numpy()[0, 0]))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_schedule_changes_lambda_between_epochs_in_compiled_training(jit_compile):
    from privemo.nn.device import op_determinism_enabled

    if jit_compile and op_determinism_enabled():
        # Keras compiles without XLA once op determinism is on (an earlier test in this process turned it on, and it
        # cannot be turned off): the XLA case would silently run the non-XLA one
        pytest.skip("op determinism is on in this process, so Keras would not use XLA")
    model = _linear_model()
    lr = 0.1
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse", jit_compile=jit_compile)
    x, y = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    schedule = LambdaSchedule(0.8, schedule="dann", update="epoch")
    record = _RecordWeights()
    model.fit(x, y, epochs=3, batch_size=1, verbose=0, callbacks=[schedule, record])
    expected_lams = [dann_lambda(e / 3, 0.8) for e in range(3)]
    np.testing.assert_allclose(record.lams, expected_lams, rtol=1e-6)
    assert record.lams[0] == 0.0 and record.lams[2] > record.lams[1] > 0
    for (w1, w2), w1_end, lam in zip(record.begin, record.end, record.lams):
        # Loss (w2 w1 x - y)^2 with x=1, y=0: dL/dw1 = 2 w2 (w2 w1); the GRL turns it into -lam times that.
        grad_w1 = 2.0 * w2 * (w2 * w1)
        np.testing.assert_allclose(w1_end - w1, lr * lam * grad_w1, rtol=1e-5, atol=1e-7)
    assert record.end[0] == record.begin[0][0]  # lambda 0: nothing flows back through the GRL


def test_batch_schedule_and_constant_schedule():
    model = _linear_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x, y = np.ones((4, 1), np.float32), np.zeros((4, 1), np.float32)
    schedule = LambdaSchedule(1.0, schedule="dann", update="batch")
    model.fit(x, y, epochs=2, batch_size=2, verbose=0, callbacks=[schedule])
    np.testing.assert_allclose(schedule.history, [dann_lambda(s / 4, 1.0) for s in range(4)], rtol=1e-12)
    constant = LambdaSchedule(0.5, schedule="constant")
    model.fit(x, y, epochs=1, batch_size=2, verbose=0, callbacks=[constant])
    assert model.get_layer("grl").lambda_ == 0.5
    assert gradient_reversal_layers(model) == [model.get_layer("grl")]


def test_dann_ramp_values():
    assert dann_lambda(0.0, 0.75) == 0.0
    assert dann_lambda(1.0, 1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(0.5, 0.3) == pytest.approx(0.3 * (2 / (1 + math.exp(-5)) - 1))
    assert dann_lambda(2.0, 1.0) == dann_lambda(1.0, 1.0)  # progress is clipped to [0, 1]


def test_config_round_trip_keeps_current_lambda(tmp_path):
    layer = GradientReversal(0.3, name="grl")
    layer.lambda_ = 0.5
    config = layer.get_config()
    assert config["lambda_"] == 0.5 and config["name"] == "grl"
    clone = GradientReversal.from_config(config)
    assert clone.lambda_ == 0.5
    assert keras.saving.get_registered_name(GradientReversal) == "privemo>GradientReversal"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), layer])
    x = RNG.normal(size=(2, 3)).astype("float32")
    path = tmp_path / "grl.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True (the default)
    assert loaded.get_layer("grl").lambda_ == 0.5
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [w.name for w in layer.weights] == ["lambda"] and not layer.trainable_weights


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "1", None])
def test_invalid_lambda(bad):
    with pytest.raises(ValueError, match="Invalid value received for argument `lambda_`"):
        GradientReversal(bad)
    layer = GradientReversal(1.0)
    with pytest.raises(ValueError, match="lambda_"):
        layer.lambda_ = bad
    assert layer.lambda_ == 1.0


def test_schedule_argument_validation():
    with pytest.raises(ValueError, match="`schedule`"):
        LambdaSchedule(1.0, schedule="linear")
    with pytest.raises(ValueError, match="`update`"):
        LambdaSchedule(1.0, update="step")
    with pytest.raises(ValueError, match="`lambda_max`"):
        LambdaSchedule(-1.0)


def test_masks_pass_through_and_frame_mask():
    layer = GradientReversal(1.0)
    assert layer.supports_masking
    mask = tf.constant([[True, False]])
    np.testing.assert_array_equal(layer.compute_mask(tf.zeros((1, 2, 3)), mask).numpy(), mask.numpy())
    x = np.zeros((3, 5, 3), np.float32)
    x[0, :3, 1] = 1.0
    x[1, 0, 2] = -2.0
    x[1, 2, 0] = 0.5  # frame 1 is all zero but inside the sequence: real (e.g. an OOV word vector), not padding
    frames = FrameMask()(x).numpy()  # x[2] is all zeros: keeps one frame (cuDNN rejects fully masked sequences)
    expected = [[True, True, True, False, False], [True, True, True, False, False], [True, False, False, False, False]]
    np.testing.assert_array_equal(frames, expected)
    np.testing.assert_array_equal(tf.function(FrameMask(), jit_compile=True)(tf.constant(x)).numpy(), expected)
    y = np.ones((3, 5, 4), np.float32)
    np.testing.assert_array_equal(ApplyMask()(y, frames).numpy(), y * frames[..., None])
