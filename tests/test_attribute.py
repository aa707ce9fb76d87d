"""Tests for privemo.privacy.attribute: the attribute-attack protocol (train, select by validation log-loss, refit,
score with a bootstrap interval) for gender and speaker identity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from attack_fixtures import FAST, SMALL_GRID, noise, planted
from sklearn.metrics import log_loss

from privemo.metrics import uar
from privemo.privacy import attackers as attackers_module
from privemo.privacy.attribute import attack_representation, bootstrap_uar_ci, speaker_attack, split_by_speaker
from privemo.privacy.attackers import DEFAULT_ATTACKERS


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


class _FakeAttacker:
    """A stand-in attacker with fixed validation UAR and probabilities (selection logic without training cost)."""

    def __init__(self, name, val_uar, p_true, log):
        self.name, self.val_uar_, self.p_true, self.log = name, val_uar, p_true, log
        self.classes_ = np.array([0, 1])
        self.config_ = {"name": name}

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
    monkeypatch.setitem(attackers_module.ATTACKERS, "logreg", lambda *a, **k: _FakeAttacker("confident", 0.9,
                                                                                          confident, log))
    monkeypatch.setitem(attackers_module.ATTACKERS, "svm", lambda *a, **k: _FakeAttacker("calibrated", 0.8,
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
    monkeypatch.setitem(attackers_module.ATTACKERS, "svm", lambda *a, **k: _FakeAttacker("twin", 0.9, confident, log))
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
    before = attackers_module.ATTACKERS[rep.strongest](h_tr, y_tr, h_va, y_va)
    expected = before.refit(np.concatenate([h_tr, h_va]), np.concatenate([y_tr, y_va]))
    chosen = rep.fitted[rep.strongest]
    assert chosen.config_ == before.config_ == rep.results[rep.strongest]["config"]
    np.testing.assert_array_equal(chosen.predict_proba(h_te), expected.predict_proba(h_te))
    assert not np.array_equal(chosen.predict_proba(h_te), before.predict_proba(h_te))  # the refit changed it
    assert rep.strongest_test_uar_before_refit == pytest.approx(before.score(h_te, y_te))
    assert rep.strongest_test_uar == pytest.approx(expected.score(h_te, y_te))


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
    alone = attackers_module.ATTACKERS[rep.strongest](h_tr, y_tr, h_tr, y_tr, **kw)
    np.testing.assert_array_equal(rep.fitted[rep.strongest].predict_proba(h_te), alone.predict_proba(h_te))
    for name in ("svm", "hgb"):  # the other families' refits reproduce them too
        att = attackers_module.ATTACKERS[name](h_tr, y_tr, h_tr, y_tr)
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


def test_the_privacy_package_is_lazy_and_the_old_flat_paths_are_gone():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import privemo.privacy as p\n"
        "assert 'tensorflow' not in sys.modules and 'sklearn' not in sys.modules, 'eager import'\n"
        "assert 'attack_representation' in dir(p) and 'attack_representation' in p.__all__\n"
        "from privemo.privacy.attribute import attack_representation as a\n"
        "from privemo.privacy.membership import holdout_split as h\n"
        "assert p.attack_representation is a and p.holdout_split is h and p.verification.__name__.endswith('verification')\n"
        "for old in ('privemo.attacks', 'privemo.privacy.attacks'):  # removed (CHANGELOG.md)\n"
        "    try:\n"
        "        __import__(old)\n"
        "    except ModuleNotFoundError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(old)\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
