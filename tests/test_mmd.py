"""MMD distribution matching (privemo.removal.mmd) with known answers: the MMD of a sample with itself is 0 and of
well-separated Gaussians clearly positive, whatever h's scale; conditioning on the emotion class makes a gender
difference that only reflects the classes' mix cost nothing; the penalty's gradient comes from the MMD alone (the monitor
heads read a frozen h); a short training on planted data takes a logistic probe's gender UAR toward chance; ``.keras``
files round-trip; "mmd_leace" keeps the MMD model around its eraser."""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from privemo.data.pipeline import make_dataset
from privemo.metrics import uar
from privemo.nn.models import representation_model
from privemo.nn.training import compile_model
from privemo.removal import (
    LAMBDA_REMOVALS,
    MMD_SCALE,
    POST_HOC,
    REMOVALS,
    AffineErasure,
    MMDModel,
    apply_erasure,
    build_removal_model,
    conditional_mmd,
)
from privemo.removal.mmd import mmd  # privemo.removal.mmd is the module (the package resolves its names lazily)
from test_registration import LOAD, _python  # the fresh-process loader
from test_removal import TINY, batch as padded  # padded: the zero-padded (n, frames, 40) acoustic batch of some rows


def planted(n: int, seed: int = 0, gender_shift: float = 1.0, emotion_shift: float = 1.0):
    """n utterances of 6-11 frames: gender a mean shift of frame dims 0-7, emotion (3 classes) of dims 8-15."""
    rng = np.random.default_rng(seed)
    gender, emotion = rng.integers(0, 2, n), rng.integers(0, 3, n)
    feats = []
    for i in range(n):
        x = rng.normal(size=(int(rng.integers(6, 12)), 40)).astype("float32")
        x[:, :8] += gender_shift * (2 * gender[i] - 1)
        x[:, 8:16] += emotion_shift * (emotion[i] - 1)
        feats.append(x)
    return {"acoustic": feats}, {"emotion": emotion, "gender": gender}


# ---------------------------------------------------------------------------------------------------------------------
# The statistic


def test_mmd_is_zero_for_identical_samples_and_clearly_positive_for_separated_gaussians():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype("float32")
    y = rng.normal(size=(200, 8)).astype("float32")
    assert abs(float(mmd(x, x))) < 1e-6
    same = float(mmd(x, y))
    assert 0.0 <= same < 0.01  # the V-statistic's small-sample bias only
    apart = float(mmd(x, y + 3.0))
    assert apart > 0.3 and apart > 50 * same
    # the median heuristic (and standardisation) make it scale-free
    assert float(mmd(100 * x, 100 * (y + 3.0))) == pytest.approx(apart, rel=1e-4)
    raw = float(mmd(100 * x, 100 * (y + 3.0), standardize=False))
    assert raw == pytest.approx(float(mmd(x, y + 3.0, standardize=False)), rel=1e-4) and raw > 0.3


def test_conditioning_on_the_class_ignores_a_gender_difference_explained_by_the_class_mix():
    rng = np.random.default_rng(1)
    n = 1500
    gender = rng.integers(0, 2, n)
    emotion = np.where(rng.random(n) < 0.8, gender, 1 - gender)  # women mostly in class 1, men in class 0
    h = (rng.normal(size=(n, 6)) + 3.0 * np.eye(6)[0] * emotion[:, None]).astype("float32")  # h depends on class only
    unconditional = float(mmd(h[gender == 0], h[gender == 1]))
    conditional = float(conditional_mmd(h, emotion, gender, n_classes=2, n_groups=2))
    assert conditional < 0.005 and unconditional > 10 * conditional, (conditional, unconditional)
    # a gender shift within each class is what it measures
    shifted = h + (1.0 * np.eye(6)[1] * gender[:, None]).astype("float32")
    assert float(conditional_mmd(shifted, emotion, gender, n_classes=2, n_groups=2)) > 4 * conditional
    # for two groups, "each value against the rest" is the plain two-sample MMD per class
    one_class = np.zeros(n, int)
    np.testing.assert_allclose(float(conditional_mmd(h, one_class, gender, n_classes=1, n_groups=2)), unconditional,
                               rtol=1e-4)


def test_rows_of_weight_zero_are_left_out_and_speakers_are_matched_against_the_rest():
    rng = np.random.default_rng(2)
    n = 400
    emotion, speaker = rng.integers(0, 2, n), rng.integers(0, 4, n)
    h = rng.normal(size=(n, 5)).astype("float32")
    weight = (rng.random(n) < 0.8).astype("float32")
    kwargs = dict(n_classes=2, n_groups=4, sample_weight=weight, standardize=False)
    base = float(conditional_mmd(h, emotion, speaker, **kwargs))
    moved = h.copy()
    moved[(weight == 0) & (speaker == 0)] += 5.0  # weighted in, they would set speaker 0 apart
    # the kernel's median (a pooled statistic) may move a little; the groups themselves are unchanged
    assert float(conditional_mmd(moved, emotion, speaker, **kwargs)) == pytest.approx(base, abs=0.01)
    # unweighted, they count (2 of the 8 (class, speaker) pairs compare speaker 0 with the rest)
    assert float(conditional_mmd(moved, emotion, speaker, n_classes=2, n_groups=4, standardize=False)) > 1.5 * base
    odd = h + (2.0 * (speaker == 3))[:, None].astype("float32")  # one speaker's h is shifted
    assert float(conditional_mmd(odd, emotion, speaker, **kwargs)) > 5 * base


# ---------------------------------------------------------------------------------------------------------------------
# The method


def test_the_registry_offers_mmd_tuned_by_lambda_and_its_leace_variants():
    assert {"mmd", "mmd_leace", "ensemble3_leace", "ensemble_leace"} <= set(REMOVALS)
    assert POST_HOC["mmd_leace"] == ("mmd", "leace")
    assert POST_HOC["ensemble3_leace"] == POST_HOC["ensemble_leace"] == ("ensemble", "leace")
    assert {"grl", "grl_dann", "mmd", "mmd_leace"} <= set(LAMBDA_REMOVALS)
    model = build_removal_model("mmd", seed=0, adversary="gender", grl_lambda=0.5, **TINY)
    assert isinstance(model, MMDModel) and model.mmd_weight == pytest.approx(MMD_SCALE * 0.5)
    assert sorted(model.output) == ["emotion", "gender"] and model.adversaries == {"gender": "h"}
    with pytest.raises(ValueError, match="argument `adversary`"):
        build_removal_model("mmd", adversary=None, **TINY)
    with pytest.raises(ValueError, match="argument `bandwidths`"):
        build_removal_model("mmd", adversary="gender", mmd_bandwidths=(), **TINY)
    with pytest.raises(ValueError, match="argument `mmd_scale`"):
        build_removal_model("mmd", adversary="gender", mmd_scale=-1.0, **TINY)


def _fit_steps(model, inputs, targets, rows, *, epochs=1, eager=True, learning_rate=1e-3):
    compile_model(model, learning_rate=learning_rate)
    model.run_eagerly = eager
    ds = make_dataset(inputs, targets, rows, batch_size=8, shuffle=True, seed=0)
    return model.fit(ds, epochs=epochs, shuffle=False, verbose=0)


def test_without_weight_the_encoder_learns_emotion_alone_and_the_monitor_head_leaks_no_gradient():
    """mmd_weight 0: the encoder and emotion head take exactly the steps of the paper's network with a lambda-0 GRL
    (whose adversary head gives the encoder no gradient either), while the monitor head trains."""
    inputs, targets = planted(24)
    rows = np.arange(16)
    mmd_model = build_removal_model("mmd", seed=0, adversary="gender", grl_lambda=0.0, **TINY)
    grl_model = build_removal_model("grl", seed=0, adversary="gender", grl_lambda=0.0, **TINY)
    head = mmd_model.get_layer(MMDModel.head_name("gender"))
    head_before = [w.copy() for w in head.get_weights()]
    history = _fit_steps(mmd_model, inputs, targets, rows)
    _fit_steps(grl_model, inputs, targets, rows)
    assert {"loss", "emotion_loss", "mmd", "monitor_loss"} <= set(history.history)
    assert all(math.isfinite(v[-1]) for v in history.history.values())
    for name in ("acoustic_conv1", "acoustic_gru1", "emotion_dense1", "emotion"):
        for a, b in zip(mmd_model.get_layer(name).get_weights(), grl_model.get_layer(name).get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-6, err_msg=name)
    assert any(not np.allclose(a, b) for a, b in zip(head_before, head.get_weights()))


def test_a_short_training_takes_a_probe_on_h_toward_chance():
    """Planted gender in frame dims 0-7: with the default weight (lambda 1) a logistic probe fitted on the training
    utterances' h finds much less gender in held-out h than on the same network trained without the penalty (same
    seed), while emotion (planted in dims 8-15, independent of gender) is still learnt."""
    from sklearn.linear_model import LogisticRegression

    inputs, targets = planted(240)
    train, test = np.arange(160), np.arange(160, 240)
    arch = dict(TINY, conv_kernels=8, gru_width=16, dense_width=8)

    def trained(grl_lambda):
        model = build_removal_model("mmd", seed=0, adversary="gender", grl_lambda=grl_lambda, **arch)
        _fit_steps(model, inputs, targets, train, epochs=8, eager=False, learning_rate=3e-3)
        rep = representation_model(model)
        h_train, h_test = rep.predict_on_batch(padded(inputs, train)), rep.predict_on_batch(padded(inputs, test))
        probe = LogisticRegression(max_iter=3000).fit(h_train, targets["gender"][train])
        emotion = model.predict_on_batch(padded(inputs, test))["emotion"]
        return uar(targets["gender"][test], probe.predict(h_test)), uar(targets["emotion"][test], emotion)

    (without, emotion_without), (with_mmd, emotion_with) = trained(0.0), trained(1.0)
    assert without > 0.8 and with_mmd < 0.65 and with_mmd < without - 0.2, (without, with_mmd)  # 0.92 -> 0.59
    assert emotion_without > 0.9 and emotion_with > 0.85, (emotion_without, emotion_with)  # 1.0 and 0.96


def test_speaker_attribute_matches_each_speaker_against_the_rest():
    inputs, targets = planted(24)
    targets = {"emotion": targets["emotion"], "speaker": np.arange(24) % 4}
    model = build_removal_model("mmd", seed=0, adversary="speaker", n_speakers=4, **TINY)
    assert sorted(model.output) == ["emotion", "speaker"]
    history = _fit_steps(model, inputs, targets, np.arange(16))
    assert math.isfinite(history.history["mmd"][-1]) and history.history["mmd"][-1] > 0


def test_mmd_model_saves_and_loads_as_keras(tmp_path):
    inputs, targets = planted(24)
    model = build_removal_model("mmd", seed=0, adversary="gender", grl_lambda=0.75, **TINY)
    _fit_steps(model, inputs, targets, np.arange(16))
    x = padded(inputs, range(8))
    path = tmp_path / "mmd.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, MMDModel)
    assert (loaded.mmd_weight, loaded.bandwidths, loaded.standardize, loaded.adversaries) == (
        model.mmd_weight, model.bandwidths, model.standardize, model.adversaries)
    expected = model.predict_on_batch(x)
    for name, value in expected.items():
        np.testing.assert_array_equal(loaded.predict_on_batch(x)[name], value)
    _fit_steps(loaded, inputs, targets, np.arange(16))  # the loaded model trains on
    # in a fresh process, with privemo.load_model (privemo.removal.saving)
    np.savez(tmp_path / "x.npz", **x)
    result = _python(LOAD, str(tmp_path / "x.npz"), str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("MMDModel")
    for name, value in expected.items():
        np.testing.assert_array_equal(np.load(f"{path}.loaded.npz")[name], value)


def test_mmd_leace_keeps_the_mmd_model_around_its_eraser(tmp_path):
    inputs, targets = planted(24)
    network = build_removal_model("mmd_leace", seed=0, adversary="gender", **TINY)
    assert isinstance(network, MMDModel)
    model = apply_erasure(network, AffineErasure.identity(TINY["gru_width"], name="h"), freeze_encoder=False)
    assert isinstance(model, MMDModel) and isinstance(model.get_layer("h"), AffineErasure)
    assert model.method_settings() == network.method_settings()
    x = padded(inputs, range(8))
    before, after = network.predict_on_batch(x), model.predict_on_batch(x)
    for name in ("emotion", "gender"):
        np.testing.assert_allclose(after[name], before[name], atol=1e-6)
    assert model.get_layer(MMDModel.head_name("gender")) is not network.get_layer(MMDModel.head_name("gender"))
    _fit_steps(model, inputs, targets, np.arange(16))
    path = tmp_path / "mmd_leace.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, MMDModel) and isinstance(loaded.get_layer("h"), AffineErasure)
    for name, value in model.predict_on_batch(x).items():
        np.testing.assert_array_equal(loaded.predict_on_batch(x)[name], value)
