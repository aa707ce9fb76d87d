"""The selection rule's privacy term: the fresh gender probe, the probe object's checks, the two-sided head rule, and
training with a probe (``privemo.nn.training.fit(probe=...)``) on a tiny real network."""

from __future__ import annotations

import numpy as np
import pytest

from privemo.search.selection import PrivacyProbe, check_selection, gender_probe_uar, probe_rows
from privemo.nn.training import objective


def planted(n: int, dim: int, shift: float, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    h = rng.normal(size=(n, dim))
    h[:, 0] += shift * (2 * y - 1)
    return h, y


def test_gender_probe_reads_a_planted_attribute_and_not_noise():
    h_tr, y_tr = planted(300, 8, 2.0, 0)
    h_va, y_va = planted(200, 8, 2.0, 1)
    assert gender_probe_uar(h_tr, y_tr, h_va, y_va) > 0.9
    n_tr, _ = planted(300, 8, 0.0, 2)
    n_va, _ = planted(200, 8, 0.0, 3)
    assert abs(gender_probe_uar(n_tr, y_tr, n_va, y_va) - 0.5) < 0.1
    assert gender_probe_uar(h_tr, np.zeros(300, int), h_va, y_va) == 0.5  # one class: nothing to learn


def test_probe_checks_its_inputs_and_subsamples_stratified():
    with pytest.raises(ValueError, match="`kind`"):
        PrivacyProbe("age", {"acoustic": [np.zeros((3, 2))]}, np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="one label per probe training utterance"):
        PrivacyProbe("gender", {"acoustic": [np.zeros((3, 2))] * 2}, np.array([0, 1, 1]), np.array([0]))
    with pytest.raises(ValueError, match="`selection`"):
        check_selection("oracle")
    labels = np.array([0] * 900 + [1] * 100)
    rows = probe_rows(labels, np.arange(1000), seed=0, limit=100)
    assert len(rows) == 100 and labels[rows].sum() == 10  # stratified: 10 % of each
    assert np.array_equal(rows, probe_rows(labels, np.arange(1000), seed=0, limit=100))
    assert len(probe_rows(labels, np.arange(50), seed=0, limit=100)) == 50


def test_head_rule_penalises_a_fooled_head_in_both_directions():
    assert objective(0.7, 0.1, two_sided=True) == pytest.approx(0.3)
    assert objective(0.7, 0.9, two_sided=True) == pytest.approx(0.3)
    assert objective(0.7, 0.1) == pytest.approx(0.7)  # the one-sided rule rewards a head driven below chance
    assert objective(0.7, 0.5, two_sided=True) == pytest.approx(0.7)


def test_fit_with_a_probe_logs_it_and_scores_the_objective_with_it():
    import privemo
    from privemo.data.pipeline import make_dataset
    from privemo.nn.training import fit

    rng = np.random.default_rng(0)
    n = 48
    gender = rng.integers(0, 2, n)
    x = [rng.normal(size=(int(rng.integers(5, 12)), 4)).astype("float32") + g for g in gender]
    emotion = rng.integers(0, 3, n)
    model = privemo.build_model(("acoustic",), adversary="gender", conv_layers=1, conv_kernels=4, gru_layers=1,
                                gru_width=4, dense_width=4, acoustic_dim=4, acoustic_pool=1)
    train, val = np.arange(32), np.arange(32, 48)
    ds = make_dataset({"acoustic": x}, {"emotion": emotion, "gender": gender}, train, batch_size=16)
    probe = PrivacyProbe("gender", {"acoustic": [x[i] for i in train]}, gender[train], gender[val])
    history = fit(model, ds, {"acoustic": [x[i] for i in val]}, {"emotion": emotion[val], "gender": gender[val]},
                  epochs=2, patience=2, probe=probe)
    assert len(history["val_probe"]) == 2 and all(0.0 <= v <= 1.0 for v in history["val_probe"])
    for e in range(2):
        expected = objective(history["val_emotion_uar"][e], history["val_probe"][e])
        assert history["val_objective"][e] == pytest.approx(expected)
    assert "val_gender_uar" in history  # the head is still logged, only not used
