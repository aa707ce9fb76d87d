"""Tests for privemo.privacy.attacks: fresh attackers on frozen representations and membership identification."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from sklearn.metrics import log_loss

import privemo
from privemo.privacy import attacks as attacks_module
from privemo.privacy.attacks import (
    ATTACKER_GRID,
    DEFAULT_ATTACKERS,
    MLPAttacker,
    SklearnAttacker,
    _fit_threshold,
    _tpr_at_fpr,
    attack_representation,
    bootstrap_uar_ci,
    holdout_split,
    membership_attack,
    membership_inference,
    speaker_attack,
    split_by_speaker,
    train_attacker,
)
from privemo.metrics import uar
from privemo.search.grids import ATTACKER_GRID as GRIDS_ATTACKER_GRID

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
    assert set(rep.results) == {"mlp", "logreg", "svm", "hgb"} == set(DEFAULT_ATTACKERS)
    for name, res in rep.results.items():
        assert res["test_uar"] > 0.9, (name, res)
    assert rep.chance == 0.5 and rep.n_classes == 2 and (rep.n_train, rep.n_val, rep.n_test) == (300, 100, 200)
    assert rep.n_refit == 400 and rep.refit_on == "train+validation"


def test_attack_representation_on_noise_stays_near_chance_and_reports_consistently():
    h_tr, y_tr = noise(400, seed=7)
    h_va, y_va = noise(200, seed=8)
    h_te, y_te = noise(400, seed=9)
    rep = attack_representation(h_tr, y_tr, h_va, y_va, h_te, y_te, grid=SMALL_GRID, **FAST)
    for name, res in rep.results.items():
        assert res["test_uar"] < 0.65, (name, res)
    losses = {k: v["val_log_loss"] for k, v in rep.results.items()}
    tests = {k: v["test_uar"] for k, v in rep.results.items()}
    assert rep.strongest == min(losses, key=losses.get) and rep.strongest_val_log_loss == min(losses.values())
    assert rep.strongest_val_uar == rep.results[rep.strongest]["val_uar"]
    assert rep.strongest_test_uar == tests[rep.strongest]
    assert rep.max_test_uar == max(tests.values()) >= rep.strongest_test_uar
    assert tests[rep.max_test_attacker] == rep.max_test_uar
    assert [k for k, v in rep.results.items() if v["refit"]] == [rep.strongest]
    d = rep.to_dict()
    json.dumps(d)  # serialisable, fitted attackers excluded
    for key in ("strongest", "strongest_val_uar", "strongest_test_uar", "max_test_uar", "max_test_attacker",
                "test_uar_ci", "strongest_test_uar_before_refit", "strongest_val_log_loss", "selection"):
        assert key in d, key
    assert set(rep.fitted) == {"mlp", "logreg", "svm", "hgb"}
    # the log-losses are scikit-learn's on the validation set (checked for the attackers that were not refit)
    for name, att in rep.fitted.items():
        if name != rep.strongest:
            proba = np.clip(att.predict_proba(h_va), 1e-7, 1.0)
            expected = log_loss(y_va, proba / proba.sum(axis=1, keepdims=True), labels=[0, 1])
            assert rep.results[name]["val_log_loss"] == pytest.approx(expected, rel=1e-6), name


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


class _FakeAttacker:
    """A stand-in attacker with fixed validation UAR and probabilities (selection logic without training cost)."""

    def __init__(self, name, val_uar, p_true, log):
        self.name, self.val_uar, self.p_true, self.log = name, val_uar, p_true, log
        self.classes_ = np.array([0, 1])
        self.config = {"name": name}

    def predict_proba(self, h):
        # probability p_true[i] on the label stored in column 0 of h (the tests put the label there)
        y = np.asarray(h)[:, 0].astype(int)
        p = np.resize(np.asarray(self.p_true, dtype=float), len(y))
        out = np.empty((len(y), 2))
        out[np.arange(len(y)), y] = p
        out[np.arange(len(y)), 1 - y] = 1 - p
        return out

    def predict(self, h):
        return self.predict_proba(h).argmax(axis=1)

    def score(self, h, y):
        return uar(y, self.predict(h))

    def refit(self, h, y):
        self.log.append((self.name, len(h)))
        return _FakeAttacker(self.name + "+refit", None, self.p_true, self.log)


def test_selection_is_by_validation_log_loss_not_uar_and_refits_on_train_plus_validation(monkeypatch):
    # "confident" has the higher validation UAR (0.9) but puts 1e-6 on the true label of every tenth utterance;
    # "calibrated" has a lower UAR (0.8) and never strays far from the truth: log-loss must pick "calibrated".
    log = []
    confident = [0.99] * 9 + [1e-6]
    calibrated = [0.7] * 8 + [0.45, 0.45]
    monkeypatch.setitem(attacks_module.ATTACKERS, "logreg", lambda *a, **k: _FakeAttacker("confident", 0.9,
                                                                                          confident, log))
    monkeypatch.setitem(attacks_module.ATTACKERS, "svm", lambda *a, **k: _FakeAttacker("calibrated", 0.8,
                                                                                       calibrated, log))
    y_tr, y_va, y_te = np.arange(40) % 2, np.arange(20) % 2, np.arange(30) % 2
    h = lambda y: np.column_stack([y, np.ones(len(y))]).astype(np.float32)  # noqa: E731
    rep = attack_representation(h(y_tr), y_tr, h(y_va), y_va, h(y_te), y_te, attackers=("logreg", "svm"),
                                n_bootstrap=50)
    assert rep.results["logreg"]["val_uar"] > rep.results["svm"]["val_uar"]
    assert rep.results["svm"]["val_log_loss"] < rep.results["logreg"]["val_log_loss"]
    assert rep.strongest == "svm" and rep.strongest_val_uar == 0.8 and rep.selection == "validation log-loss"
    assert log == [("calibrated", 60)]  # refit once, on the 40 training + 20 validation rows
    assert rep.fitted["svm"].name == "calibrated+refit" and rep.n_refit == 60
    assert rep.results["svm"]["refit"] and not rep.results["logreg"]["refit"]
    # ties go to the earlier attacker in `attackers`
    monkeypatch.setitem(attacks_module.ATTACKERS, "svm", lambda *a, **k: _FakeAttacker("twin", 0.9, confident, log))
    rep = attack_representation(h(y_tr), y_tr, h(y_va), y_va, h(y_te), y_te, attackers=("svm", "logreg"),
                                n_bootstrap=0)
    assert rep.strongest == "svm" and rep.test_uar_ci is None
    rep = attack_representation(h(y_tr), y_tr, h(y_va), y_va, h(y_te), y_te, attackers=("logreg", "svm"),
                                n_bootstrap=0, refit=False)
    assert rep.strongest == "logreg" and rep.refit_on == "not refit" and rep.n_refit == 40


def test_refit_uses_train_plus_validation_with_the_chosen_settings():
    h_tr, y_tr = planted(200, shift=1.0, seed=30)
    h_va, y_va = planted(80, shift=1.0, seed=31)
    h_te, y_te = planted(120, shift=1.0, seed=32)
    rep = attack_representation(h_tr, y_tr, h_va, y_va, h_te, y_te, attackers=("logreg", "svm"), n_bootstrap=0)
    before = attacks_module.ATTACKERS[rep.strongest](h_tr, y_tr, h_va, y_va)
    expected = before.refit(np.concatenate([h_tr, h_va]), np.concatenate([y_tr, y_va]))
    chosen = rep.fitted[rep.strongest]
    assert chosen.config == before.config == rep.results[rep.strongest]["config"]
    np.testing.assert_array_equal(chosen.predict_proba(h_te), expected.predict_proba(h_te))
    assert not np.array_equal(chosen.predict_proba(h_te), before.predict_proba(h_te))  # the refit changed it
    assert rep.strongest_test_uar_before_refit == pytest.approx(before.score(h_te, y_te))
    assert rep.strongest_test_uar == pytest.approx(expected.score(h_te, y_te))


def test_mlp_refit_trains_for_the_best_epoch_count():
    # Early-stopped on validation, the attacker keeps the weights of epoch `best_epoch_` (counted from 1). Refitting it
    # on its own training data for that many epochs must give back exactly those weights: an off-by-one epoch count,
    # another seed or another batch order would not.
    h_tr, y_tr = planted(160, shift=0.8, seed=33)
    h_va, y_va = planted(80, shift=0.8, seed=34)
    h_te, _ = planted(40, seed=35)
    att = MLPAttacker(2, 16, seed=4, epochs=30, patience=3, batch_size=16).fit(h_tr, y_tr, validation_data=(h_va, y_va))
    assert att.best_epoch_ < len(att.val_history_)  # stopped after its best epoch, so the count matters
    again = att.refit(h_tr, y_tr)
    assert again.epochs == att.best_epoch_ and again.config["best_epoch"] == att.best_epoch_
    np.testing.assert_array_equal(again.predict_proba(h_te), att.predict_proba(h_te))
    longer = MLPAttacker(2, 16, seed=4, epochs=att.best_epoch_ + 1, batch_size=16).fit(h_tr, y_tr)
    assert not np.array_equal(longer.predict_proba(h_te), att.predict_proba(h_te))


@pytest.mark.parametrize("absent", ["none", "empty"])
def test_the_refit_changes_nothing_when_validation_data_are_absent(absent):
    h_tr, y_tr = planted(160, shift=1.0, seed=36)
    h_te, y_te = planted(80, shift=1.0, seed=37)
    h_va, y_va = (None, None) if absent == "none" else (h_tr[:0], y_tr[:0])
    rep = attack_representation(h_tr, y_tr, h_va, y_va, h_te, y_te, grid=SMALL_GRID, attackers=("mlp", "logreg"),
                                n_bootstrap=0, **FAST)
    assert rep.n_val == 0 and rep.n_refit == 160 and "training" in rep.selection
    assert rep.strongest_test_uar == rep.strongest_test_uar_before_refit
    # the refit attacker predicts exactly as the same attacker fitted (and selected) on the training data alone
    kw = dict(grid=SMALL_GRID, **FAST) if rep.strongest == "mlp" else {}
    alone = attacks_module.ATTACKERS[rep.strongest](h_tr, y_tr, h_tr, y_tr, **kw)
    np.testing.assert_array_equal(rep.fitted[rep.strongest].predict_proba(h_te), alone.predict_proba(h_te))
    for name in ("svm", "hgb"):  # the other families' refits reproduce them too
        att = attacks_module.ATTACKERS[name](h_tr, y_tr, h_tr, y_tr)
        np.testing.assert_array_equal(att.refit(h_tr, y_tr).predict_proba(h_te), att.predict_proba(h_te))
    with pytest.raises(ValueError, match="`y_val`"):
        attack_representation(h_tr, y_tr, None, y_tr[:5], h_te, y_te, attackers=("logreg",))


def test_bootstrap_interval_known_answers():
    assert bootstrap_uar_ci(np.array([0, 1] * 20), np.array([0, 1] * 20)) == (1.0, 1.0)
    rng = np.random.default_rng(40)

    def predictions(n):  # a predictor right on 80 % of each class: UAR 0.8
        y = np.repeat([0, 1], n // 2)
        wrong = np.concatenate([rng.permutation(n // 2) < n // 10, rng.permutation(n // 2) < n // 10])
        return y, np.where(wrong, 1 - y, y)

    y, p = predictions(400)
    low, high = bootstrap_uar_ci(y, p, seed=1)
    assert uar(y, p) == pytest.approx(0.8) and low < 0.8 < high
    # sd of UAR = sqrt(0.8 * 0.2 / 200) / sqrt(2) = 0.02, so a 95 % interval about 4 x 0.02 wide
    assert 0.06 < high - low < 0.10
    y4, p4 = predictions(1600)
    low4, high4 = bootstrap_uar_ci(y4, p4, seed=1)
    assert 0.35 < (high4 - low4) / (high - low) < 0.65  # a quarter of the variance: half the width
    assert bootstrap_uar_ci(y, p, seed=1) == (low, high) and bootstrap_uar_ci(y, p, seed=2) != (low, high)


def test_bootstrap_resamples_score_like_privemo_metrics_uar():
    # the vectorised UAR of each resample equals privemo.metrics.uar (sklearn's balanced accuracy) on that resample,
    # also when a class is missing from a resample (3 classes, one of them rare)
    y = np.array([0] * 20 + [1] * 15 + [2] * 2)
    p = np.array([0] * 15 + [1] * 5 + [1] * 10 + [2] * 5 + [2, 0])
    n_res = 7
    idx = np.random.default_rng(4).integers(0, len(y), size=(n_res, len(y)))  # the function's draws for seed 4
    stats = [uar(y[i], p[i]) for i in idx]
    assert any(2 not in y[i] for i in idx)  # seed 4 draws a resample without the rare class
    low, high = bootstrap_uar_ci(y, p, n_resamples=n_res, level=0.5, seed=4)
    assert (low, high) == pytest.approx(tuple(np.quantile(stats, [0.25, 0.75])))


def test_attack_report_carries_a_bootstrap_interval_around_the_selected_attackers_test_uar():
    h_tr, y_tr = planted(200, shift=0.8, seed=41)
    h_va, y_va = planted(80, shift=0.8, seed=42)
    h_te, y_te = planted(160, shift=0.8, seed=43)
    rep = attack_representation(h_tr, y_tr, h_va, y_va, h_te, y_te, attackers=("logreg", "hgb"), seed=3)
    low, high = rep.test_uar_ci
    assert low <= rep.strongest_test_uar <= high and 0.0 < high - low < 0.25
    assert rep.n_bootstrap == 1000 and rep.test_uar_ci_level == 0.95
    chosen = rep.fitted[rep.strongest]
    assert rep.test_uar_ci == list(bootstrap_uar_ci(y_te, chosen.predict(h_te), n_resamples=1000, seed=3))


def test_hgb_and_svm_attackers_give_probabilities_consistent_with_their_predictions():
    h_tr, y_tr = planted(200, shift=1.5, seed=44, labels=("a", "b"))
    h_va, y_va = planted(100, shift=1.5, seed=45, labels=("a", "b"))
    for kind in ("hgb", "svm"):
        att = SklearnAttacker(kind, seed=1).fit(h_tr, y_tr, (h_va, y_va))
        proba = att.predict_proba(h_va)
        assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)
        assert att.score(h_va, y_va) == pytest.approx(att.val_uar)  # Platt scaling left the SVM's predictions alone
        assert att.val_uar > 0.8
        assert uar(y_va, att.classes_[proba.argmax(axis=1)]) > 0.8
    assert SklearnAttacker("hgb").fit(h_tr, y_tr, (h_va, y_va)).config["max_bins"] == 63


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
    assert rep.auc == max(a["auc"] for a in rep.attacks.values())
    assert (rep.tpr_at_10fpr, rep.accuracy) == (rep.attacks[rep.auc_attack]["tpr_at_10fpr"],
                                                rep.attacks[rep.auc_attack]["accuracy"])
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

    from privemo._seed import set_seed
    from privemo.privacy.attacks import membership_inference

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
