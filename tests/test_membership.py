"""Tests for privemo.privacy.membership: membership identification from a frozen model's output probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest

import privemo
from privemo.privacy.membership import (
    _fit_threshold,
    _tpr_at_fpr,
    holdout_split,
    membership_attack,
    membership_inference,
)


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


# ------------------------------------------------------------------------------- same-speaker membership inference


def test_tpr_at_fpr_known_answer():
    member = np.array([1, 1, 1, 1] + [0] * 10)
    scores = np.array([0.95, 0.85, 0.05, 0.02] + [i / 10 for i in range(10)])
    # at most 1 of 10 non-members may be flagged: flag {0.95, 0.9 (non-member), 0.85} -> 2 of 4 members
    assert _tpr_at_fpr(member, scores, 0.10) == 0.5
    assert _tpr_at_fpr(member, scores, 0.0) == 0.25
    assert _tpr_at_fpr(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1]), 0.10) == 1.0


def test_membership_inference_detects_a_model_that_memorised_its_members():
    rng = np.random.default_rng(50)
    n, k = 400, 4
    ym, yn = rng.integers(0, k, n), rng.integers(0, k, n)
    pm = np.full((n, k), 0.01 / (k - 1))
    pm[np.arange(n), ym] = 0.99  # members: ~0.99 on the true label
    pn = rng.dirichlet(np.full(k, 3.0), n)  # non-members: flat-ish random distributions
    rep = membership_inference(pm, ym, pn, yn, seed=0)
    assert rep.auc >= 0.9 and rep.tpr_at_10fpr >= 0.8 and rep.accuracy > 0.85
    assert rep.auc_upper_bound == max(a["auc"] for a in rep.attacks.values()) >= rep.auc
    if len(set(rep.auc_attacks_per_half)) == 1:  # one attack chosen in both halves: its own figures
        assert (rep.auc, rep.tpr_at_10fpr, rep.accuracy) == tuple(
            rep.attacks[rep.auc_attack][k] for k in ("auc", "tpr_at_10fpr", "accuracy"))
    d = rep.to_dict()
    assert d["auc"] == rep.auc and {"tpr_at_10fpr", "accuracy", "n_members", "n_nonmembers"} <= set(d)
    for res in d["attacks"].values():
        assert {"auc", "tpr_at_10fpr", "accuracy"} <= set(res)
    json.dumps(d)
    assert membership_attack(pm, ym, pn, yn, seed=0).to_dict() == d  # the same attack under the old name


def test_membership_inference_identical_distributions_is_near_chance():
    pm, ym = softmax_outputs(500, true_logit=1.5, seed=51)
    pn, yn = softmax_outputs(500, true_logit=1.5, seed=52)
    rep = membership_inference(pm, ym, pn, yn, seed=1)
    assert abs(rep.auc - 0.5) <= 0.08, rep.attacks
    for name, res in rep.attacks.items():
        assert abs(res["auc"] - 0.5) <= 0.08 and res["tpr_at_10fpr"] < 0.25, (name, res)


def test_membership_inference_names_its_own_arguments_in_errors():
    pm, ym = softmax_outputs(20, 1.0, 0)
    with pytest.raises(ValueError, match="Invalid value received for argument `probs_nonmembers`"):
        membership_inference(pm, ym, np.full((20, 4), 0.25), np.zeros(20, dtype=int))
    with pytest.raises(ValueError, match="`y_members`"):
        membership_inference(pm, np.zeros(5, dtype=int), pm, ym)


def test_holdout_split_holds_out_a_share_of_every_speaker():
    speakers = np.repeat(np.array(["a", "b", "c", "d", "e"]), [50, 10, 3, 2, 1])
    rng = np.random.default_rng(0)
    speakers = speakers[rng.permutation(speakers.size)]  # interleaved, as in a real corpus table
    kept, held = holdout_split(speakers, share=0.2, seed=3)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(speakers.size))
    assert np.intersect1d(kept, held).size == 0 and kept.dtype == held.dtype == np.int64
    assert np.all(np.diff(kept) > 0) and np.all(np.diff(held) > 0)
    counts = {s: int((speakers[held] == s).sum()) for s in "abcde"}
    assert counts == {"a": 10, "b": 2, "c": 1, "d": 1, "e": 0}  # round(0.2 c), at least 1, never a whole speaker
    assert set(speakers[kept]) == set("abcde")
    again = holdout_split(speakers, share=0.2, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(again, (kept, held)))
    assert not np.array_equal(holdout_split(speakers, share=0.2, seed=4)[1], held)
    assert privemo.holdout_split is holdout_split and privemo.membership_inference is membership_inference


@pytest.mark.parametrize("kwargs, match", [({"share": 0.0}, "`share`"), ({"share": 1.0}, "`share`"),
                                           ({"speakers": np.zeros((3, 2))}, "`speakers`"),
                                           ({"speakers": np.array([], dtype=str)}, "`speakers`")])
def test_holdout_split_bad_input(kwargs, match):
    args = {"speakers": np.array(["a", "a", "b", "b"])}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        holdout_split(**args)


def test_membership_inference_on_real_networks_one_memorising_and_one_with_nothing_to_memorise():
    """Known answers with trained Keras networks: an over-parameterised MLP fitted for many epochs to members with random
    labels memorises them (MI AUC well above 0.5); the same network trained for no step has nothing to memorise (0.5)."""
    import keras

    from privemo._util.seed import set_seed

    set_seed(0)
    rng = np.random.default_rng(0)
    x_in, x_out = rng.normal(size=(120, 16)).astype("float32"), rng.normal(size=(120, 16)).astype("float32")
    y_in, y_out = rng.integers(0, 3, 120), rng.integers(0, 3, 120)  # labels carry nothing: only memorising fits them

    def network():
        model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        return model

    memorising = network()
    memorising.fit(x_in, y_in, epochs=150, batch_size=32, verbose=0, shuffle=False)
    report = membership_inference(memorising.predict(x_in, verbose=0), y_in, memorising.predict(x_out, verbose=0),
                                  y_out, seed=0)
    assert report.auc > 0.85
    untrained = network()
    report = membership_inference(untrained.predict(x_in, verbose=0), y_in, untrained.predict(x_out, verbose=0),
                                  y_out, seed=0)
    assert abs(report.auc - 0.5) < 0.12


def test_membership_attack_is_chosen_without_the_evaluation_pairs():
    """The reported attack comes from inside each fitting half; the hindsight maximum is only an upper bound. Here the
    loss leaks and confidence does not, so the inner choice finds a loss-based attack in both halves."""
    rng = np.random.default_rng(7)
    n, k = 300, 3
    ym, yn = rng.integers(0, k, n), rng.integers(0, k, n)
    pm = rng.dirichlet(np.full(k, 1.0), n)
    pm[np.arange(n), ym] += 1.0  # members: more mass on the true label (low loss)
    pm /= pm.sum(axis=1, keepdims=True)
    pn = rng.dirichlet(np.full(k, 1.0), n)
    rep = membership_inference(pm, ym, pn, yn, seed=3)
    assert len(rep.auc_attacks_per_half) == 2
    assert set(rep.auc_attacks_per_half) <= {"loss_threshold", "learned"}
    assert rep.auc <= rep.auc_upper_bound and rep.auc > 0.7
    assert "never chosen on the pairs it is evaluated on" in rep.auc_selection
