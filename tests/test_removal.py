"""Tests of privemo.removal (removal methods beyond the plain GRL) and the quick leakage benchmark."""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from privemo.nn.layers import gradient_reversal_layers
from privemo.removal.leace import LeaceEraser
from privemo.metrics import uar
from privemo.nn.models import representation_model
from privemo.data.pipeline import make_dataset
from privemo.removal import (
    POST_HOC,
    AffineErasure,
    AlternatingAdversarialModel,
    NullspaceProjection,
    ScheduledGRLModel,
    apply_erasure,
    apply_leace,
    apply_projection,
    build_removal_model,
    confusion_loss,
    fit_inlp,
    reverse_loss,
)
from privemo.nn.training import compile_model, fit

TINY = dict(conv_layers=1, conv_width=2, conv_kernels=4, gru_layers=1, gru_width=4, dense_layers=1, dense_width=4)
ROOT = Path(__file__).resolve().parents[1]


def tiny_data(n: int = 24, seed: int = 0):
    """n utterances of 4-9 frames; gender planted as a mean shift in the first 8 dims."""
    rng = np.random.default_rng(seed)
    gender = np.arange(n) % 2
    emotion = rng.integers(0, 3, n)
    feats = []
    for i in range(n):
        x = rng.normal(size=(int(rng.integers(4, 10)), 40)).astype("float32")
        x[:, :8] += 1.5 if gender[i] == 0 else -1.5
        feats.append(x)
    return {"acoustic": feats}, {"emotion": emotion, "gender": gender}


def batch(inputs, rows):
    seqs = [inputs["acoustic"][i] for i in rows]
    out = np.zeros((len(seqs), max(len(s) for s in seqs), 40), "float32")
    for j, s in enumerate(seqs):
        out[j, : len(s)] = s
    return {"acoustic": out}


def eager_fit(model, inputs, targets, rows, epochs=1, batch_size=8):
    """Compile (eagerly: tracing costs more than a few tiny steps) and fit a few steps."""
    compile_model(model)
    model.run_eagerly = True
    targets = {k: v for k, v in targets.items() if k in model.output}
    ds = make_dataset(inputs, targets, rows, batch_size=batch_size, shuffle=True, seed=0)
    return model.fit(ds, epochs=epochs, shuffle=False, verbose=0)  # the tf.data pipeline shuffles itself


@pytest.mark.parametrize(
    "removal, kwargs",
    [
        ("grl", {}),
        ("grl_dann", {}),
        ("alternating", {"adversary_loss": "reverse", "k": 2}),
        ("alternating", {"adversary_loss": "confusion", "k": 1}),
        ("ensemble", {"n_adversaries": 2}),
        ("inlp", {}),
        ("leace", {}),
        ("ensemble_leace", {"n_adversaries": 2}),
        ("ensemble3_leace", {"n_adversaries": 2}),
        ("mmd", {}),
        ("mmd_leace", {"grl_lambda": 0.3}),
    ],
)
def test_each_method_builds_and_trains(removal, kwargs):
    inputs, targets = tiny_data()
    model = build_removal_model(removal, seed=0, adversary="gender", **TINY, **kwargs)
    baseline = POST_HOC.get(removal, ("",))[0] == "baseline"  # post hoc on the baseline: trained without adversary
    expected = ["emotion"] if baseline else ["emotion", "gender"]
    assert sorted(model.output) == expected
    before = [w.copy() for w in model.get_weights()]
    history = eager_fit(model, inputs, targets, np.arange(16))
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    preds = model.predict_on_batch(batch(inputs, range(5)))
    assert preds["emotion"].shape == (5, 3)
    if not baseline:
        np.testing.assert_allclose(preds["gender"].sum(axis=1), 1.0, atol=1e-5)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="argument `removal`"):
        build_removal_model("adversarial", adversary="gender", **TINY)
    with pytest.raises(ValueError, match="argument `adversary`"):
        build_removal_model("alternating", adversary=None, **TINY)
    with pytest.raises(ValueError, match="argument `adversary_loss`"):
        build_removal_model("alternating", adversary="gender", adversary_loss="kl", **TINY)
    with pytest.raises(ValueError, match="argument `k`"):
        build_removal_model("alternating", adversary="gender", k=-1, **TINY)
    with pytest.raises(ValueError, match="argument `n_adversaries`"):
        build_removal_model("ensemble", adversary="gender", n_adversaries=1, **TINY)
    with pytest.raises(ValueError, match="argument `conv_layers`"):  # build_model's own validation still applies
        build_removal_model("alternating", adversary="gender", **{**TINY, "conv_layers": 0})


def test_alternating_trains_traced_with_training_fit_and_exposes_h():
    """The train step runs inside tf.function (privemo.nn.training.fit, no eager mode); h is reachable by name."""
    inputs, targets = tiny_data(32)
    model = build_removal_model("ensemble", seed=1, adversary="gender", n_adversaries=2, k=2, **TINY)
    assert isinstance(model, AlternatingAdversarialModel)
    ds = make_dataset(inputs, targets, np.arange(24), batch_size=8, shuffle=True)
    val = {"acoustic": [inputs["acoustic"][i] for i in range(24, 32)]}
    history = fit(model, ds, val, {k: v[24:] for k, v in targets.items()}, epochs=2, patience=2)
    assert {"val_emotion_uar", "val_gender_uar", "privacy_loss", "adversary_loss"} <= set(history)
    rep = representation_model(model)
    x = batch(inputs, range(6))
    h = rep.predict_on_batch(x)
    assert h.shape == (6, TINY["gru_width"])
    np.testing.assert_allclose(h, model._view(x)["sources"]["gender"].numpy(), atol=1e-6)
    # the ensemble output is the mean of its heads
    heads = [model.get_layer(AlternatingAdversarialModel.head_name("gender", i)) for i in (1, 2)]
    mean = np.mean([head(h).numpy() for head in heads], axis=0)
    np.testing.assert_allclose(model.predict_on_batch(x)["gender"], mean, atol=1e-5)


def test_k_zero_keeps_adversary_fixed_and_trains_encoder():
    inputs, targets = tiny_data()
    model = build_removal_model("alternating", seed=0, adversary="gender", k=0, **TINY)
    head = model.get_layer(AlternatingAdversarialModel.head_name("gender", 1))
    head_before = [v.numpy().copy() for v in head.trainable_variables]
    conv_before = model.get_layer("acoustic_conv1").get_weights()[0].copy()
    eager_fit(model, inputs, targets, np.arange(16))
    for a, v in zip(head_before, head.trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())
    assert not np.allclose(conv_before, model.get_layer("acoustic_conv1").get_weights()[0])


def test_adversary_refresh_retrains_heads_from_scratch_on_frozen_h():
    from privemo.removal import AdversaryRefresh

    inputs, targets = tiny_data(48)
    model = build_removal_model("ensemble", seed=0, adversary="gender", n_adversaries=2, refresh_epochs=1,
                                **{**TINY, "conv_kernels": 8, "gru_width": 16})
    compile_model(model)
    ds = make_dataset(inputs, targets, np.arange(48), batch_size=16)
    heads = [model.get_layer(AlternatingAdversarialModel.head_name("gender", i)) for i in (1, 2)]
    for head in heads:
        head.set_weights([np.zeros_like(w) for w in head.get_weights()])  # an adversary that knows nothing
    encoder_before = [w.copy() for w in model.get_layer("acoustic_gru1").get_weights()]
    refresh = AdversaryRefresh(ds, epochs=30, batch_size=16, learning_rate=0.01)
    refresh.set_model(model)
    refresh.on_epoch_begin(0)
    h = model._view(batch(inputs, range(48)))["sources"]["gender"]
    for head in heads:  # batch statistics: the heads are trained and used in training mode by the alternating model
        assert uar(targets["gender"], head(h, training=True).numpy()) > 0.85  # the planted gender shift is in h
    for a, b in zip(encoder_before, model.get_layer("acoustic_gru1").get_weights()):
        np.testing.assert_array_equal(a, b)  # the representation was frozen


def test_confusion_and_reverse_losses_known_values():
    uniform = np.array([[0.5, 0.5], [1 / 3, 1 / 3]])[:1]
    np.testing.assert_allclose(confusion_loss(uniform), [math.log(2)], rtol=1e-6)
    skewed = np.array([[0.9, 0.1]], "float32")
    assert float(confusion_loss(skewed)[0]) > math.log(2) + 0.1
    np.testing.assert_allclose(reverse_loss(np.array([0]), skewed), [math.log(0.9)], rtol=1e-5)


def _fixed_confident_adversary(adversary_loss: str):
    keras.utils.set_random_seed(3)
    model = build_removal_model("alternating", adversary="gender", k=0, adversary_loss=adversary_loss,
                                normalize_adversary=False, **{**TINY, "gru_width": 8})
    head = model.get_layer(AlternatingAdversarialModel.head_name("gender", 1))
    head.set_weights([w * 8.0 for w in head.get_weights()])  # a confident, input-dependent adversary
    return model, head


def test_confusion_loss_pushes_a_fixed_adversary_toward_uniform():
    inputs, targets = tiny_data(32)
    rows = np.arange(32)
    x = batch(inputs, rows)
    model, head = _fixed_confident_adversary("confusion")
    model.adversary_weight = 5.0  # emphasise the privacy term for a fast, unambiguous answer

    def distance_to_uniform():
        p = model.predict_on_batch(x)["gender"]
        return float(np.mean(np.abs(p[:, 0] - 0.5)))

    before = distance_to_uniform()
    assert before > 0.15
    compile_model(model, learning_rate=0.01)  # traced: 40 steps run faster than eagerly
    model.fit(make_dataset(inputs, targets, rows, batch_size=16, shuffle=True), epochs=20, shuffle=False, verbose=0)
    after = distance_to_uniform()
    assert after < 0.25 * before and after < 0.1, (before, after)


def test_grl_dann_ramps_lambda_inside_fit():
    inputs, targets = tiny_data()
    model = build_removal_model("grl_dann", seed=0, adversary="gender", grl_lambda=0.8, schedule_update="epoch", **TINY)
    assert isinstance(model, ScheduledGRLModel)
    (grl,) = gradient_reversal_layers(model)
    assert grl.lambda_ == pytest.approx(0.8)
    compile_model(model)
    model.run_eagerly = True
    ds = make_dataset(inputs, targets, np.arange(16), batch_size=8)
    model.fit(ds, epochs=1, shuffle=False, verbose=0)
    assert grl.lambda_ == 0.0  # DANN ramp at progress 0
    model.fit(ds, epochs=2, shuffle=False, verbose=0)
    assert grl.lambda_ == pytest.approx(0.8 * (2 / (1 + math.exp(-5)) - 1), rel=1e-5)  # progress 1/2


def test_inlp_removes_a_planted_linear_attribute_and_keeps_an_orthogonal_one():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    d, n = 12, 900
    gender = rng.integers(0, 2, n)
    emotion = rng.integers(0, 3, n)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    u, v = basis[:, 0], basis[:, 1]  # orthogonal gender and emotion directions
    h = rng.normal(size=(n, d)) + 2.0 * np.outer(2 * gender - 1, u) + 2.0 * np.outer(emotion - 1, v)
    tr, va, te = slice(0, 500), slice(500, 700), slice(700, n)
    projection, info = fit_inlp(h[tr], gender[tr], h[va], gender[va], n_iterations=10, seed=0, return_info=True)
    np.testing.assert_allclose(projection, projection.T, atol=1e-5)
    np.testing.assert_allclose(projection @ projection, projection, atol=1e-4)
    assert info["val_uar"][0] > 0.9 and 1 <= info["rank_removed"] < d

    def lr_uar(x, y):
        clf = LogisticRegression(max_iter=2000).fit(x[tr], y[tr])
        return uar(y[te], clf.predict(x[te]))

    assert lr_uar(h, gender) > 0.9
    assert lr_uar(h @ projection, gender) < 0.6
    assert lr_uar(h @ projection, emotion) > 0.9 * lr_uar(h, emotion)


def test_fit_inlp_validates_inputs():
    with pytest.raises(ValueError, match="argument `h_val`"):
        fit_inlp(np.zeros((4, 3)), [0, 1, 0, 1], np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="argument `y_train`"):
        fit_inlp(np.zeros((4, 3)), [0, 0, 0, 0], np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="argument `projection`"):
        NullspaceProjection(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="argument `kernel`"):
        AffineErasure(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="argument `bias`"):
        AffineErasure(np.eye(3), np.zeros(2))
    with pytest.raises(ValueError, match="argument `eraser`"):
        AffineErasure.from_eraser(LeaceEraser())  # not fitted
    with pytest.raises(ValueError, match="argument `kernel`"):
        AffineErasure.identity(3).set_affine(np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="argument `erasure`"):
        apply_erasure(build_removal_model("leace", seed=0, **TINY), AffineErasure.identity(4, name="erased"))


def test_projected_model_saves_and_loads_as_keras(tmp_path):
    inputs, targets = tiny_data()
    base = build_removal_model("inlp", seed=0, **TINY)
    h = representation_model(base).predict_on_batch(batch(inputs, range(24)))
    projection = fit_inlp(h[:16], targets["gender"][:16], h[16:], targets["gender"][16:], n_iterations=2)
    model = apply_projection(base, projection)
    assert isinstance(model.get_layer("h"), NullspaceProjection)
    x = batch(inputs, range(6))
    np.testing.assert_allclose(representation_model(model).predict_on_batch(x),
                               representation_model(base).predict_on_batch(x) @ projection, atol=1e-5)
    path = tmp_path / "projected.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict_on_batch(x)["emotion"], model.predict_on_batch(x)["emotion"], atol=1e-6)
    np.testing.assert_allclose(np.array(loaded.get_layer("h").get_config()["projection"]), projection, atol=1e-7)
    # the encoder is frozen: refitting trains only the emotion head copy
    encoder_before = [w.copy() for w in base.get_weights()]
    eager_fit(model, inputs, {"emotion": targets["emotion"]}, np.arange(16))
    for a, b in zip(encoder_before, base.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_leace_layer_erases_and_loads_in_a_fresh_process_with_privemo_load_model(tmp_path):
    """``apply_leace`` appends the fitted LEACE edit as the layer "h": h is exactly ``LeaceEraser.transform``'s output,
    its class means no longer differ (zero covariance with gender), and the .keras file reloads -- in this process and
    in a fresh one with ``privemo.load_model`` -- with the same outputs."""
    from sklearn.linear_model import LogisticRegression

    from test_registration import LOAD, _python  # the fresh-process loader of tests/test_registration.py

    inputs, targets = tiny_data(32)
    gender = targets["gender"]
    base = build_removal_model("leace", seed=0, **{**TINY, "gru_width": 8})
    x = batch(inputs, range(32))
    h = representation_model(base).predict_on_batch(x)
    assert uar(gender, LogisticRegression(max_iter=2000).fit(h, gender).predict(h)) > 0.8  # the planted shift is in h
    eraser = LeaceEraser().fit(h, gender)
    model = apply_leace(base, eraser)
    layer = model.get_layer("h")
    assert isinstance(layer, AffineErasure) and not layer.trainable_weights and model.name.endswith("_leace")
    erased = representation_model(model).predict_on_batch(x)
    np.testing.assert_allclose(erased, eraser.transform(h), atol=1e-5)
    np.testing.assert_allclose(erased[gender == 1].mean(0), erased[gender == 0].mean(0), atol=1e-5)
    assert uar(gender, LogisticRegression(max_iter=2000).fit(erased, gender).predict(erased)) < 0.6
    # the layer rebuilds from its config alone
    again = AffineErasure.from_config(layer.get_config())
    np.testing.assert_allclose(again(h).numpy(), erased, atol=1e-5)

    path = tmp_path / "leace.keras"
    model.save(path)
    expected = model.predict_on_batch(x)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict_on_batch(x)["emotion"], expected["emotion"], atol=1e-6)
    np.testing.assert_allclose(representation_model(loaded).predict_on_batch(x), erased, atol=1e-6)
    np.savez(tmp_path / "x.npz", **x)
    result = _python(LOAD, str(tmp_path / "x.npz"), str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AffineErasure" in result.stdout
    np.testing.assert_array_equal(np.load(f"{path}.loaded.npz")["emotion"], expected["emotion"])
    # the encoder is frozen: refitting trains only the emotion head copy
    encoder_before = [w.copy() for w in base.get_weights()]
    eager_fit(model, inputs, {"emotion": targets["emotion"]}, np.arange(16))
    for a, b in zip(encoder_before, base.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_apply_erasure_keeps_an_ensembles_adversaries(tmp_path):
    """removal="ensemble_leace": the ensemble with an eraser layer "h" is still an AlternatingAdversarialModel with the
    same settings and copied heads (an identity eraser changes no output), trains, and saves / reloads."""
    inputs, targets = tiny_data()
    ensemble = build_removal_model("ensemble_leace", seed=0, adversary="gender", n_adversaries=2, k=2, **TINY)
    assert isinstance(ensemble, AlternatingAdversarialModel) and ensemble.n_adversaries == 2
    model = apply_erasure(ensemble, AffineErasure.identity(TINY["gru_width"], name="h"), freeze_encoder=False)
    assert isinstance(model, AlternatingAdversarialModel) and isinstance(model.get_layer("h"), AffineErasure)
    assert (model.adversaries, model.n_adversaries, model.k) == ({"gender": "h"}, 2, 2)
    x = batch(inputs, range(8))
    before, after = ensemble.predict_on_batch(x), model.predict_on_batch(x)
    for name in ("emotion", "gender"):
        np.testing.assert_allclose(after[name], before[name], atol=1e-6)
    head = model.get_layer(AlternatingAdversarialModel.head_name("gender", 1))
    assert head is not ensemble.get_layer(AlternatingAdversarialModel.head_name("gender", 1))  # a copy
    history = eager_fit(model, inputs, targets, np.arange(16))
    assert all(math.isfinite(v) for v in history.history["loss"])
    h = representation_model(model).predict_on_batch(batch(inputs, range(24)))
    model.get_layer("h").set_affine(*_leace_map(h, targets["gender"]))
    path = tmp_path / "ensemble_leace.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, AlternatingAdversarialModel) and isinstance(loaded.get_layer("h"), AffineErasure)
    for name, value in model.predict_on_batch(x).items():
        np.testing.assert_allclose(loaded.predict_on_batch(x)[name], value, atol=1e-6)


def _leace_map(h, z):
    from privemo.removal import leace_affine

    return leace_affine(LeaceEraser().fit(h, z))


def test_quick_leakage_benchmark_writes_csv(tmp_path):
    spec = importlib.util.spec_from_file_location("leakage_benchmark", ROOT / "benchmarks" / "leakage.py")
    leakage = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = leakage  # dataclasses look their module up there
    try:
        spec.loader.exec_module(leakage)
    except BaseException:
        del sys.modules[spec.name]
        raise
    out = tmp_path / "leakage.csv"
    # one method per kind of training (plain, scheduled GRL, alternating, post hoc) keeps the test short; every method
    # is trained in test_each_method_builds_and_trains
    methods = ["baseline", "grl_dann", "alt_confusion", "inlp"]
    assert leakage.main(["--quick", "--methods", ",".join(methods), "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        summary = list(csv.DictReader(fh))
    assert [r["method"] for r in summary] == methods
    for r in summary:
        for metric in ("emotion_uar_mean", "mlp_mean", "logreg_mean", "svm_mean", "attacker_max_mean"):
            assert 0.0 <= float(r[metric]) <= 1.0
        assert float(r["attacker_max_mean"]) >= float(r["logreg_mean"])
    with open(out.with_name("leakage_runs.csv"), newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(methods)
