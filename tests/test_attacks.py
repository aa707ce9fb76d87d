"""Tests for privemo.attacks: fresh attackers on frozen representations and membership identification."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from privemo.attacks import (
    ATTACKER_GRID,
    MLPAttacker,
    SklearnAttacker,
    _fit_threshold,
    attack_representation,
    membership_attack,
    speaker_attack,
    split_by_speaker,
    train_attacker,
)
from privemo.grids import ATTACKER_GRID as GRIDS_ATTACKER_GRID

SMALL_GRID = {"dense_layers": (2,), "dense_width": (16,)}
FAST = {"epochs": 15, "patience": 4, "batch_size": 16}


def planted(n, d=16, shift=2.5, seed=0, labels=("F", "M")):
    """Representations whose first 3 dimensions carry the binary attribute as a mean shift."""
    rng = np.random.default_rng(seed)
    y = np.array([labels[i % 2] for i in range(n)])
    h = rng.normal(size=(n, d)).astype(np.float32)
    h[y == labels[1], :3] += shift
    return h, y


def noise(n, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, 2, n)


# --------------------------------------------------------------------------------------------------- attribute attacks


def test_uses_the_papers_attacker_grid():
    assert ATTACKER_GRID is GRIDS_ATTACKER_GRID


def test_mlp_attacker_finds_planted_signal_and_keeps_label_space():
    h_tr, y_tr = planted(300, seed=1)
    h_va, y_va = planted(100, seed=2)
    h_te, y_te = planted(200, seed=3)
    att = MLPAttacker(2, 16, seed=0, **FAST).fit(h_tr, y_tr, validation_data=(h_va, y_va))
    assert att.score(h_te, y_te) > 0.9
    assert att.val_uar == max(att.val_history_) and 1 <= att.best_epoch_ <= len(att.val_history_)
    assert set(att.predict(h_te)) <= {"F", "M"}
    proba = att.predict_proba(h_te)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_attack_representation_planted_signal_all_attackers_high():
    h_tr, y_tr = planted(300, seed=4)
    h_va, y_va = planted(100, seed=5)
    h_te, y_te = planted(200, seed=6)
    rep = attack_representation(h_tr, y_tr, h_va, y_va, h_te, y_te, grid=SMALL_GRID, **FAST)
    assert set(rep.results) == {"mlp", "logreg", "svm"}
    for name, res in rep.results.items():
        assert res["test_uar"] > 0.9, (name, res)
    assert rep.chance == 0.5 and rep.n_classes == 2 and (rep.n_train, rep.n_val, rep.n_test) == (300, 100, 200)


def test_attack_representation_on_noise_stays_near_chance_and_reports_consistently():
    h_tr, y_tr = noise(400, seed=7)
    h_va, y_va = noise(200, seed=8)
    h_te, y_te = noise(400, seed=9)
    rep = attack_representation(h_tr, y_tr, h_va, y_va, h_te, y_te, grid=SMALL_GRID, **FAST)
    for name, res in rep.results.items():
        assert res["test_uar"] < 0.65, (name, res)
    vals = {k: v["val_uar"] for k, v in rep.results.items()}
    tests = {k: v["test_uar"] for k, v in rep.results.items()}
    assert rep.strongest_val_uar == max(vals.values()) and rep.strongest_test_uar == tests[rep.strongest]
    assert rep.max_test_uar == max(tests.values()) >= rep.strongest_test_uar
    assert tests[rep.max_test_attacker] == rep.max_test_uar
    json.dumps(rep.to_dict())  # serialisable, fitted attackers excluded
    assert set(rep.fitted) == {"mlp", "logreg", "svm"}


def test_train_attacker_searches_exactly_the_paper_grid_and_keeps_the_best():
    h_tr, y_tr = planted(80, shift=0.8, seed=10)
    h_va, y_va = planted(40, shift=0.8, seed=11)
    best = train_attacker(h_tr, y_tr, h_va, y_va, epochs=1, patience=1)
    expected = [{"dense_layers": l, "dense_width": w}
                for l, w in itertools.product(GRIDS_ATTACKER_GRID["dense_layers"], GRIDS_ATTACKER_GRID["dense_width"])]
    assert [cfg for cfg, _ in best.search] == expected and len(expected) == 6
    scores = [s for _, s in best.search]
    assert best.val_uar == max(scores)
    first_best = expected[scores.index(max(scores))]
    assert {k: best.config[k] for k in ("dense_layers", "dense_width")} == first_best
    assert (best.dense_layers, best.dense_width) == (first_best["dense_layers"], first_best["dense_width"])
    # the returned attacker's validation UAR is reproducible from its predictions (restored best weights)
    assert best.score(h_va, y_va) == pytest.approx(best.val_uar)


def test_seeded_attackers_are_deterministic():
    h_tr, y_tr = planted(150, shift=1.0, seed=12)
    h_va, y_va = planted(60, shift=1.0, seed=13)
    h_te, _ = planted(50, seed=14)
    a = train_attacker(h_tr, y_tr, h_va, y_va, SMALL_GRID, seed=3, epochs=5, patience=5)
    before = a.predict_proba(h_te)
    # Same architecture, other seed and data in between: the process's reused trainer must neither leak its state into
    # the next attacker nor change the weights of an attacker already returned.
    h_other, y_other = planted(120, shift=2.0, seed=21)
    other = train_attacker(h_other, y_other, h_va, y_va, SMALL_GRID, seed=7, epochs=5, patience=5)
    b = train_attacker(h_tr, y_tr, h_va, y_va, SMALL_GRID, seed=3, epochs=5, patience=5)
    np.testing.assert_array_equal(a.predict_proba(h_te), before)
    np.testing.assert_array_equal(a.predict_proba(h_te), b.predict_proba(h_te))
    assert a.search == b.search
    assert not np.array_equal(other.predict_proba(h_te), before)
    s1 = SklearnAttacker("svm", seed=3).fit(h_tr, y_tr, (h_va, y_va))
    s2 = SklearnAttacker("svm", seed=3).fit(h_tr, y_tr, (h_va, y_va))
    assert s1.search == s2.search and s1.config == s2.config
    np.testing.assert_array_equal(s1.predict(h_te), s2.predict(h_te))


def test_sklearn_attacker_picks_max_validation_setting():
    h_tr, y_tr = planted(200, shift=1.0, seed=15)
    h_va, y_va = planted(100, shift=1.0, seed=16)
    att = SklearnAttacker("logreg").fit(h_tr, y_tr, (h_va, y_va))
    assert [p["C"] for p, _ in att.search] == [0.01, 0.1, 1.0, 10.0]
    assert att.val_uar == max(s for _, s in att.search)
    assert att.score(h_va, y_va) == pytest.approx(att.val_uar)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"h_train": np.zeros(10)}, "h_train"),
        ({"y_train": np.zeros(9)}, "y_train"),
        ({"y_train": np.zeros(10)}, "at least 2 distinct classes"),
        ({"y_val": np.array([0, 1, 2, 0, 1, 0])}, "unseen labels 2"),
        ({"y_test": np.array([0, 1, 0, 1, 0, 7])}, "unseen labels 7"),
        ({"h_val": np.zeros((6, 5))}, "4 features"),
        ({"h_train": np.full((10, 4), np.nan)}, "finite"),
        ({"y_train": np.array(["F", None] * 5, dtype=object)}, "missing labels"),
        ({"grid": {"dense_layers": (2,)}}, "dense_width"),
        ({"grid": {"dense_layers": (0,), "dense_width": (8,)}}, "positive ints"),
        ({"attackers": ("mlp", "forest")}, "attackers"),
        ({"attackers": "mlp"}, "attackers"),
    ],
)
def test_bad_input_gives_clear_errors(kwargs, match):
    rng = np.random.default_rng(0)
    args = {
        "h_train": rng.normal(size=(10, 4)), "y_train": np.array([0, 1] * 5),
        "h_val": rng.normal(size=(6, 4)), "y_val": np.array([0, 1] * 3),
        "h_test": rng.normal(size=(6, 4)), "y_test": np.array([0, 1] * 3),
    }
    args.update(kwargs)
    pos = [args.pop(k) for k in ("h_train", "y_train", "h_val", "y_val", "h_test", "y_test")]
    with pytest.raises(ValueError, match=match):
        attack_representation(*pos, **args, epochs=1, patience=1)


def test_unfitted_and_bad_constructor_arguments():
    with pytest.raises(RuntimeError, match="not fitted"):
        MLPAttacker().predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Invalid value received for argument `dense_width`"):
        MLPAttacker(2, 0)
    with pytest.raises(ValueError, match="`kind`"):
        SklearnAttacker("forest")


# ---------------------------------------------------------------------------------------------------- speaker identity


def test_split_by_speaker_is_stratified_disjoint_and_complete():
    speakers = np.repeat(np.array(["s1", "s2", "s3"]), [20, 8, 3])
    tr, va, te = split_by_speaker(speakers, seed=0)
    allidx = np.concatenate([tr, va, te])
    assert sorted(allidx.tolist()) == list(range(len(speakers)))
    for part in (tr, va, te):
        assert set(speakers[part]) == {"s1", "s2", "s3"}
    assert (speakers[tr] == "s1").sum() == 10 and (speakers[va] == "s1").sum() == 5
    tr2, _, _ = split_by_speaker(speakers, seed=0)
    np.testing.assert_array_equal(tr, tr2)
    with pytest.raises(ValueError, match="at least 3 utterances"):
        split_by_speaker(np.array(["a", "a", "b", "b", "b"]))


def test_speaker_attack_identifies_distinct_speakers():
    rng = np.random.default_rng(20)
    centres = rng.normal(scale=3.0, size=(4, 12))
    speakers = np.repeat(np.array(["A", "B", "C", "D"]), 40)
    h = (centres[np.searchsorted(["A", "B", "C", "D"], speakers)] + rng.normal(size=(160, 12))).astype(np.float32)
    rep = speaker_attack(h, speakers, grid=SMALL_GRID, attackers=("mlp", "logreg"), **FAST)
    assert rep.chance == 0.25 and rep.n_classes == 4 and (rep.n_train, rep.n_val, rep.n_test) == (80, 40, 40)
    assert rep.strongest_test_uar > 0.9


# ----------------------------------------------------------------------------------------- membership identification


def softmax_outputs(n, true_logit, seed, n_classes=3):
    """Model outputs whose true-class logit is boosted by `true_logit` (larger = lower loss, more 'memorised')."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), y] += true_logit
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), y


def test_fit_threshold_known_answer():
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.05])
    member = np.array([1, 1, 1, 0, 0, 0])
    t = _fit_threshold(scores, member)
    assert 0.2 < t < 0.7
    assert _fit_threshold(np.array([0.1, 0.2]), np.array([1, 0])) == float("inf")  # nothing separates: predict none...
    assert _fit_threshold(np.array([0.5, 0.5, 0.5]), np.array([1, 1, 0])) == float("-inf")  # ties stay together


def test_membership_attack_detects_memorisation():
    pm, ym = softmax_outputs(400, true_logit=4.0, seed=1)
    pn, yn = softmax_outputs(400, true_logit=0.5, seed=2)
    rep = membership_attack(pm, ym, pn, yn, seed=0)
    assert rep.attacks["loss_threshold"]["accuracy"] > 0.75
    assert rep.attacks["loss_threshold"]["auc"] > 0.8
    assert rep.attacks["learned"]["accuracy"] > 0.75
    assert rep.best_accuracy == max(a["accuracy"] for a in rep.attacks.values()) > 0.75
    assert all(2.0 > t > 0.0 for t in rep.attacks["loss_threshold"]["loss_thresholds"])
    json.dumps(rep.to_dict())


def test_membership_attack_identical_distributions_is_near_chance():
    pm, ym = softmax_outputs(500, true_logit=1.5, seed=3)
    pn, yn = softmax_outputs(500, true_logit=1.5, seed=4)
    rep = membership_attack(pm, ym, pn, yn, seed=0)
    tol = 4 * rep.chance_std  # 4 standard deviations of accuracy at chance with 2 x 500 predictions (~0.063)
    assert rep.chance_std == pytest.approx(0.5 / np.sqrt(1000))
    for name, res in rep.attacks.items():
        assert abs(res["accuracy"] - 0.5) < tol, (name, res)
        assert abs(res["auc"] - 0.5) < tol, (name, res)


def test_membership_attack_balances_and_is_seeded():
    pm, ym = softmax_outputs(300, true_logit=2.0, seed=5)
    pn, yn = softmax_outputs(100, true_logit=1.0, seed=6)
    rep = membership_attack(pm, ym, pn, yn, seed=7)
    assert (rep.n_members, rep.n_nonmembers) == (100, 100)
    assert (rep.n_members_available, rep.n_nonmembers_available) == (300, 100)
    assert rep.to_dict() == membership_attack(pm, ym, pn, yn, seed=7).to_dict()
    other = [membership_attack(pm, ym, pn, yn, seed=s).to_dict() for s in (8, 9)]
    assert any(o != rep.to_dict() for o in other)  # the seed drives the subsample and split


@pytest.mark.parametrize(
    "change, match",
    [
        ({"member_probs": np.log(softmax_outputs(20, 1.0, 0)[0])}, "summing to 1"),
        ({"member_labels": np.full(20, 3)}, r"class indices in \[0, 2\]"),
        ({"nonmember_probs": np.full((20, 4), 0.25)}, "3 classes"),
        ({"member_labels": np.zeros(5, dtype=int)}, "20 class indices"),
        ({"member_probs": np.full((3, 3), 1 / 3), "member_labels": np.zeros(3, dtype=int)}, "at least 4"),
    ],
)
def test_membership_attack_bad_input(change, match):
    pm, ym = softmax_outputs(20, 1.0, 0)
    pn, yn = softmax_outputs(20, 1.0, 1)
    args = {"member_probs": pm, "member_labels": ym, "nonmember_probs": pn, "nonmember_labels": yn}
    args.update(change)
    with pytest.raises(ValueError, match=match):
        membership_attack(**args)
