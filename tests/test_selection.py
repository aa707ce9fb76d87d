"""The selection rule's privacy term: the fresh gender probe, the probe object's checks, the two-sided head rule, and
training with a probe (``privemo.nn.training.fit(probe=...)``) on a tiny real network."""

from __future__ import annotations

import numpy as np
import pytest

from privemo.search.selection import (PrivacyProbe, check_selection, gender_probe_uar, is_degenerate, probe_rows,
                                     select_trial, speaker_probe_support)
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


def test_a_trial_that_learnt_nothing_is_not_selected_while_another_learnt_something():
    chance = 1 / 3
    # ranked best first by the objective: the untrained network (emotion at chance, probe at chance) ranks first
    ranked = ["untrained", "leaky", "good"]
    chosen, degenerate, n_bad = select_trial(ranked, [0.36, 0.62, 0.60], chance)
    assert (chosen, degenerate, n_bad) == ("leaky", False, 1)
    chosen, degenerate, n_bad = select_trial(ranked, [0.34, None, 0.30], chance)
    assert (chosen, degenerate, n_bad) == ("untrained", True, 3)  # nothing learnt: the best-ranked, marked
    assert is_degenerate(0.3829, chance) and not is_degenerate(0.3834, chance)


def test_speaker_probe_needs_two_validation_speakers_of_one_gender():
    one_each = speaker_probe_support(np.array(["f1"] * 3 + ["m1"] * 3), np.array([0] * 3 + [1] * 3))
    assert "one per gender" in one_each
    assert speaker_probe_support(np.array(["f1", "f1", "f2", "f2", "m1", "m1"]), np.array([0, 0, 0, 0, 1, 1])) is None
    assert "no different-speaker trials" in speaker_probe_support(np.array(["f1", "f1", "m1"]), np.array([0, 0, 1]))


def test_early_stopping_never_keeps_the_first_two_epochs():
    from privemo.nn.training import best_epoch, early_stopping

    history = {"val_objective": [0.9, 0.8, 0.5, 0.6, 0.55]}
    assert best_epoch(history)["epoch"] == 3
    assert best_epoch({"val_objective": [0.9, 0.1]})["epoch"] == 1  # a two-epoch run keeps its last epoch
    assert early_stopping(5, epochs=30).start_from_epoch == 2 and early_stopping(5, epochs=1).start_from_epoch == 0
