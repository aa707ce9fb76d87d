"""Non-linear erasure by gradient subspaces (privemo.removal.gradient_erasure) with known answers.

On planted h (benchmarks/nonlinear_erasure.py: gender in the spread of a 4-d subspace and in the XOR of two signs, so
no linear classifier reads it; emotion in 4 other dimensions; d = 32, rotated) plain LEACE leaves the RBF SVM, the trees
and the MLP reading gender far above chance -- the test can fail -- while the gradient-subspace eraser brings the
strongest of logistic regression, RBF SVM, gradient boosting and an MLP to chance on held-out rows, removes exactly the
planted 6-d subspace, and keeps emotion (linear and MLP probes). Also: the gradient formulas against finite
differences; an attribute h does not carry removes nothing; LEACE's step where the attribute is linear (exact linear
guardedness); whole groups stay in one cross-fitting fold; a multiclass attribute; a network carrying the eraser
(``AffineErasure``) saves and reloads as ``.keras`` in a fresh process; scikit-learn's estimator checks; input errors.
Everything runs on one thread (threadpoolctl): the probes' trees are many times slower on a busy machine otherwise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from privemo.removal.gradient_erasure import (
    GradientSubspaceEraser,
    _folds,
    _n_directions,
    chance_uar_se,
    mlp_logit_gradients,
    svc_decision_gradients,
)
from privemo.removal.leace import LeaceEraser

ROOT = Path(__file__).resolve().parents[1]
#: fast settings for the small tests (the planted tests use the defaults)
FAST = dict(probes=("logreg", "svm", "mlp"), hidden=(16,), cv=2, max_iter=3)


@pytest.fixture(autouse=True)
def one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("nonlinear_erasure_benchmark",
                                                  ROOT / "benchmarks" / "nonlinear_erasure.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def planted_run(bench):
    """LEACE and the gradient eraser (defaults) fitted on 1,500 planted training rows, attacked on 2,000 held-out
    rows."""
    with threadpool_limits(1):
        h, g, e = bench.planted(1500, seed=0)
        ht, gt, et = bench.planted(2000, seed=1)
        leace = LeaceEraser().fit(h, g)
        eraser = GradientSubspaceEraser().fit(h, g)
        return {
            "h": h, "eraser": eraser, "emotion_before": bench.emotion_probes(h, e, ht, et),
            "leace": bench.attack(leace.transform(h), g, leace.transform(ht), gt),
            "after": bench.attack(eraser.transform(h), g, eraser.transform(ht), gt),
            "emotion_after": bench.emotion_probes(eraser.transform(h), e, eraser.transform(ht), et),
        }


# ------------------------------------------------------------------------------------------------- planted known answer


def test_plain_leace_leaves_gender_to_non_linear_attackers(planted_run):
    leace = planted_run["leace"]
    assert leace["logreg"] <= 0.53  # linearly guarded ...
    assert max(leace["svm"], leace["hgb"], leace["mlp"]) >= 0.75  # ... but far from private: this test can fail


def test_every_attacker_is_at_chance_and_emotion_is_kept(planted_run):
    after, before, now = planted_run["after"], planted_run["emotion_before"], planted_run["emotion_after"]
    assert after["max"] == max(after[a] for a in ("logreg", "svm", "hgb", "mlp"))
    assert after["max"] <= 0.55, after
    assert before["linear"] > 0.65 and before["mlp"] > 0.65  # chance 1/3: emotion is there to lose
    assert now["linear"] >= before["linear"] - 0.02 and now["mlp"] >= before["mlp"] - 0.02, (before, now)


def test_the_removed_subspace_is_the_planted_one(planted_run, bench):
    """The edit acts on exactly the 6 planted gender directions: the removed directions, mapped back to h's
    coordinates, span the planted gender subspace (every principal angle small), and emotion's directions are not
    moved."""
    eraser, h = planted_run["eraser"], planted_run["h"]
    assert eraser.converged_ and eraser.rank_ == 6 and eraser.n_iter_ == len(eraser.history_)
    assert [r["step"] for r in eraser.history_][-1] == "stop"
    q = bench.planted_rotation(h.shape[1])
    gender_rows = q[list(bench.GENDER_DIMS)]  # (6, d): h = z @ q, so these rows span gender's part of h
    removed = eraser.matrix_.T  # h - r(h) = (h - mean) @ matrix_.T: its row space is where the edit lands
    u, s, _ = np.linalg.svd(removed)
    edit_space = u[:, s > 1e-8 * s[0]].T  # (rank, d) orthonormal rows
    cosines = np.linalg.svd(edit_space @ gender_rows.T, compute_uv=False)
    assert len(cosines) == 6 and cosines.min() > 0.9, cosines  # measured: 0.957-0.997
    emotion_rows = q[list(bench.EMOTION_DIMS)]
    kept = np.linalg.norm(emotion_rows @ removed.T, axis=1) / np.linalg.norm(emotion_rows, axis=1)
    assert kept.max() < 0.25, kept  # the edit of a pure emotion direction is small (measured: at most 0.17)


# ---------------------------------------------------------------------------------------------------------- the pieces


def test_mlp_and_svm_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y2 = (x[:, 0] * x[:, 1] > 0).astype(int)
    y3 = np.digitize(np.linalg.norm(x[:, :2], axis=1), [0.8, 1.5])
    points, step = x[:7], 1e-5

    def numeric(f):
        return np.stack([(f(points + step * np.eye(5)[j]) - f(points - step * np.eye(5)[j])) / (2 * step)
                         for j in range(5)], axis=-1)

    for activation in ("relu", "tanh"):
        mlp = MLPClassifier((16, 8), activation=activation, solver="lbfgs", alpha=1.0, max_iter=500,
                            random_state=0).fit(x, y2)
        logit = lambda p: np.log(mlp.predict_proba(p)[:, 1]) - np.log(mlp.predict_proba(p)[:, 0])  # noqa: E731
        np.testing.assert_allclose(mlp_logit_gradients(mlp, points)[:, 0], numeric(logit), rtol=1e-4, atol=1e-6)
    mlp3 = MLPClassifier((16,), activation="tanh", solver="lbfgs", alpha=1.0, max_iter=500, random_state=0)
    mlp3.fit(x, y3)

    def centred(p):
        logp = np.log(mlp3.predict_proba(p))
        return logp - logp.mean(axis=1, keepdims=True)

    np.testing.assert_allclose(mlp_logit_gradients(mlp3, points), numeric(centred),
                               rtol=1e-4, atol=1e-6)
    svc = SVC(gamma=0.3).fit(x, y2)
    np.testing.assert_allclose(svc_decision_gradients(svc, points, 0.3, chunk=3)[:, 0], numeric(svc.decision_function),
                               rtol=1e-4, atol=1e-6)


def test_direction_count_cuts_at_the_largest_eigengap():
    assert _n_directions(np.array([1.0, 0.9, 0.7, 0.05, 0.04, 0.03]), 6, 0.2, 6) == 3
    assert _n_directions(np.array([1.0, 0.9, 0.7, 0.05, 0.04, 0.03]), 6, 0.2, 2) == 2  # the cap
    assert _n_directions(np.array([1.0, 0.95, 0.9, 0.85]), 4, 0.2, 4) in (1, 2, 3)  # never all that is left
    assert _n_directions(np.array([1.0]), 1, 0.2, 3) == 1 and _n_directions(np.array([0.0, 0.0]), 2, 0.2, 2) == 0
    assert abs(chance_uar_se(np.arange(1000) % 2) - 0.5 / np.sqrt(1000)) < 1e-12


def test_an_attribute_h_does_not_carry_removes_nothing():
    rng = np.random.default_rng(1)
    h, y = rng.normal(size=(600, 8)), rng.integers(0, 2, 600)
    eraser = GradientSubspaceEraser(**FAST).fit(h, y)
    assert eraser.rank_ == 0 and eraser.converged_ and eraser.n_iter_ == 1
    np.testing.assert_allclose(eraser.transform(h), h, atol=1e-12)
    forced = GradientSubspaceEraser(**FAST, leace=True).fit(h, y)  # LEACE in any case: its one direction
    assert forced.rank_ == 1


def test_a_linear_attribute_takes_leaces_step_and_is_linearly_guarded():
    rng = np.random.default_rng(2)
    y = np.arange(600) % 2
    h = rng.normal(size=(600, 6)) @ rng.normal(size=(6, 6))
    h[:, 0] += 1.5 * (2 * y - 1)
    eraser = GradientSubspaceEraser(**FAST).fit(h, y)
    assert eraser.history_[0]["step"] == "leace" and eraser.converged_
    erased = eraser.transform(h)
    np.testing.assert_allclose((erased - erased.mean(0)).T @ (y - y.mean()) / len(y), 0.0, atol=1e-9)
    # with LEACE's step alone the edit is LEACE's
    np.testing.assert_allclose(erased, LeaceEraser().fit(h, y).transform(h), atol=1e-8)


def test_groups_stay_in_one_fold_and_fit_with_groups():
    rng = np.random.default_rng(3)
    speakers = np.repeat(np.arange(12), 30)
    gender = speakers % 2
    codes = gender
    for fit_rows, held_rows in _folds(codes, speakers, 3, 0):
        assert not set(speakers[fit_rows]) & set(speakers[held_rows])
        assert set(gender[fit_rows]) == {0, 1}
    h = rng.normal(size=(len(speakers), 6))
    h[:, 0] *= np.where(gender == 1, 2.0, 0.5)  # the spread of one dimension
    eraser = GradientSubspaceEraser(**FAST).fit(h, gender, groups=speakers)
    assert eraser.rank_ >= 1 and eraser.converged_
    with pytest.raises(ValueError, match="groups"):
        GradientSubspaceEraser(**FAST).fit(h, gender, groups=speakers[:-1])
    with pytest.raises(ValueError, match="groups"):
        GradientSubspaceEraser(**FAST).fit(h, gender, groups=speakers % 2)  # two groups for three folds


def test_a_multiclass_attribute_in_a_spread():
    rng = np.random.default_rng(4)
    y = np.arange(900) % 3
    h = rng.normal(size=(900, 6))
    h[:, :2] *= np.array([0.4, 1.0, 2.2])[y][:, None]  # three spreads of a 2-d subspace
    h = h @ np.linalg.qr(rng.normal(size=(6, 6)))[0]
    eraser = GradientSubspaceEraser(probes=("logreg", "mlp"), cv=2, max_iter=4).fit(h, y)
    assert eraser.history_[0]["uar"]["mlp"] > 0.6  # chance 1/3
    assert eraser.converged_ and 2 <= eraser.rank_ <= 3
    assert eraser.history_[0]["line"] == pytest.approx(1 / 3 + 0.01 + 2 * chance_uar_se(y))


# --------------------------------------------------------------------------------------------------- Keras round trip


def test_a_network_with_the_eraser_saves_and_reloads_in_a_fresh_process(tmp_path):
    import keras

    from privemo.nn.models import build_model, representation_model
    from privemo.removal.erasure import AffineErasure
    from privemo.removal.gradient_erasure import apply_gradient_erasure, erasure_layer
    from test_registration import LOAD, _python  # the fresh-process loader (privemo.load_model)
    from test_removal import TINY, batch, tiny_data

    inputs, targets = tiny_data(60)
    keras.utils.set_random_seed(0)
    base = build_model(**{**TINY, "gru_width": 6})
    x = batch(inputs, range(60))
    h = representation_model(base).predict_on_batch(x)
    eraser = GradientSubspaceEraser(**FAST, leace=True).fit(h, targets["gender"])
    assert eraser.rank_ >= 1
    layer = erasure_layer(eraser)
    assert isinstance(layer, AffineErasure) and layer.name == "h"
    model = apply_gradient_erasure(base, eraser)
    assert model.name.endswith("_gradient_erasure") and not model.get_layer("h").trainable_weights
    erased = representation_model(model).predict_on_batch(x)
    np.testing.assert_allclose(erased, eraser.transform(h), atol=1e-5)
    path = tmp_path / "gradient_erasure.keras"
    model.save(path)
    expected = model.predict_on_batch(x)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict_on_batch(x)["emotion"], expected["emotion"], atol=1e-6)
    np.savez(tmp_path / "x.npz", **x)
    result = _python(LOAD, str(tmp_path / "x.npz"), str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AffineErasure" in result.stdout
    np.testing.assert_allclose(np.load(f"{path}.loaded.npz")["emotion"], expected["emotion"], atol=1e-6)


# ----------------------------------------------------------------------------------------------- scikit-learn contract


@parametrize_with_checks([GradientSubspaceEraser(**FAST)])
def test_scikit_learn_estimator_checks(estimator, check):
    with threadpool_limits(1):
        check(estimator)


def test_feature_names_dtype_and_input_errors():
    rng = np.random.default_rng(5)
    h, y = rng.normal(size=(120, 4)), np.arange(120) % 2
    frame = pd.DataFrame(h, columns=["a", "b", "c", "d"])
    fitted = GradientSubspaceEraser(**FAST).fit(frame, np.where(y == 1, "M", "F"))
    assert list(fitted.get_feature_names_out()) == ["a", "b", "c", "d"] and list(fitted.classes_) == ["F", "M"]
    assert fitted.n_features_in_ == 4 and fitted.transform(frame.astype(np.float32)).dtype == np.float32
    for bad in (dict(probes=("hgb",)), dict(probes=("knn", "mlp")), dict(leace="yes"), dict(tol=-0.1), dict(cv=1),
                dict(threshold=0.0), dict(hidden=())):
        with pytest.raises(ValueError):
            GradientSubspaceEraser(**{**FAST, **bad}).fit(h, y)
    with pytest.raises(ValueError, match="more than two classes"):
        GradientSubspaceEraser(**{**FAST, "probes": ("logreg", "svm")}).fit(h, np.arange(120) % 3)
    with pytest.raises(ValueError, match="two classes"):
        GradientSubspaceEraser(**FAST).fit(h, np.zeros(120, int))
    with pytest.raises(ValueError, match="categorical"):
        GradientSubspaceEraser(**FAST).fit(h, rng.normal(size=120))


def test_the_benchmark_writes_its_tables(bench, tmp_path, capsys):
    out = tmp_path / "nonlinear.csv"
    assert bench.main(["--seeds", "1", "--n-train", "300", "--n-test", "300", "--methods", "none,leace",
                       "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| leace |" in printed and "strongest attacker (max)" in printed
    import csv

    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["none", "leace"]
    assert all(float(r["gender_max"]) == max(float(r[f"gender_{a}"]) for a in bench.ATTACKER_NAMES) for r in rows)
    with open(tmp_path / "nonlinear_summary.csv", newline="") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["none", "leace"]
