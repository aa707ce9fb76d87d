"""Packed trials (privemo.search.packing): K members in one compiled step train exactly as they would alone."""

import json

import numpy as np
import pytest
import keras

from privemo._util.seed import set_seed
from privemo.data.pipeline import make_dataset
from privemo.nn.models import build_model
from privemo.nn.training import compile_model, fit, objective, predict_sequences
from privemo.search.packed_tuner import PackedGridSearch, PackedGridSearchOracle
from privemo.search.packing import build_packed, fit_packed, unpack
from privemo.search.selection import PrivacyProbe
from privemo.search.factory import make_tuner
from privemo.search.tuning import EmotionPrivacyHyperModel, trial_history, trial_scores

DIM = 6
TINY = dict(conv_layers=1, conv_width=2, conv_kernels=4, gru_layers=1, gru_width=4, dense_layers=1, dense_width=4)
ATOL = 1e-5
RATE = 0.01  # learns the tiny data within a few epochs


def _data(seed=0, n_train=48, n_val=24):
    """Utterances whose first feature carries the emotion class and whose second carries gender (learnable in a few
    epochs), the training dataset, the validation utterances / targets and a gender probe."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    emotion = rng.integers(0, 3, n).astype(np.int32)
    gender = rng.integers(0, 2, n).astype(np.int32)
    frames = []
    for e, g in zip(emotion, gender):
        x = rng.normal(size=(int(rng.integers(6, 20)), DIM)).astype(np.float32)
        x[:, 0] += e - 1.0
        x[:, 1] += 0.8 * (g - 0.5)
        frames.append(x)
    train, val = np.arange(n_train), np.arange(n_train, n)
    targets = {"emotion": emotion, "gender": gender}
    ds = make_dataset({"acoustic": frames}, targets, train, batch_size=8, shuffle=True, seed=3)
    val_inputs = {"acoustic": [frames[i] for i in val]}
    val_targets = {"emotion": emotion[val], "gender": gender[val]}
    probe = PrivacyProbe("gender", {"acoustic": [frames[i] for i in train]}, gender[train], gender[val], seed=0)
    return ds, val_inputs, val_targets, probe


def _builds(lambdas=(0.3, 1.0), **extra):
    return [dict(acoustic_dim=DIM, adversary="gender", grl_lambda=lam, **{**TINY, **extra}) for lam in lambdas]


def _separate(build, ds, val_inputs, val_targets, probe, epochs, patience):
    set_seed(0)
    model = build_model(**build)
    compile_model(model, RATE)
    history = fit(model, ds, val_inputs, val_targets, epochs=epochs, patience=patience, objective=objective,
                  probe=probe)
    return model, history


def _assert_same_history(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=ATOL, err_msg=key)
    assert trial_scores(a)["best_epoch"] == trial_scores(b)["best_epoch"]


def test_packed_training_equals_separate_training():
    ds, val_inputs, val_targets, probe = _data()
    builds = _builds((0.3, 1.0)) + _builds((0.5,), conv_kernels=6)  # two lambdas of one shape and another shape
    epochs, patience = 8, 2
    packed = build_packed(builds, seed=0, learning_rate=RATE)
    histories = fit_packed(packed, ds, val_inputs, val_targets, epochs=epochs, patience=patience, objective=objective,
                           probe=probe)
    lengths = [len(h["val_objective"]) for h in histories]
    assert len(set(lengths)) > 1, f"every member stopped at the same epoch ({lengths}): the test proves less"
    assert min(lengths) < epochs  # a member stopped early while others continued
    for i, build in enumerate(builds):
        model, history = _separate(build, ds, val_inputs, val_targets, probe, epochs, patience)
        _assert_same_history(histories[i], history)
        member = unpack(packed, i)
        assert [layer.name for layer in member.layers] == [layer.name for layer in model.layers]
        assert sorted(member.output) == sorted(model.output) == ["emotion", "gender"]
        for w_packed, w_alone in zip(member.get_weights(), model.get_weights()):
            np.testing.assert_allclose(w_packed, w_alone, atol=ATOL)  # best epoch's weights, also for stopped members
        ours, theirs = predict_sequences(member, val_inputs), predict_sequences(model, val_inputs)
        for name in ("emotion", "gender"):
            np.testing.assert_allclose(ours[name], theirs[name], atol=ATOL)


def test_members_start_from_the_weights_they_would_have_alone():
    packed = build_packed(_builds((0.3, 1.0)), seed=5)
    set_seed(5)
    alone = build_model(**_builds((0.3,))[0])
    for member in packed.members:
        shared = [w for w in member.weights if "grl" not in w.path]
        reference = [w for w in alone.weights if "grl" not in w.path]
        for a, b in zip(shared, reference):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_cached_packed_model_is_reinitialised():
    cache = {}
    first = build_packed(_builds(), seed=0, cache=cache)
    for variable in [*first.model.weights, *first.model.optimizer.variables]:  # as if trained
        variable.assign(keras.ops.ones_like(variable))
    again = build_packed(_builds((0.75, 0.5)), seed=0, cache=cache)
    assert again.model is first.model and len(cache) == 1
    assert [b["grl_lambda"] for b in again.builds] == [0.75, 0.5]
    fresh = build_packed(_builds((0.75, 0.5)), seed=0)
    for a, b in zip(again.model.get_weights(), fresh.model.get_weights()):
        np.testing.assert_array_equal(a, b)  # new initial weights, new lambdas
    for a, b in zip(again.model.optimizer.variables, fresh.model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_fit_packed_validates_its_arguments():
    ds, val_inputs, val_targets, _ = _data()
    packed = build_packed(_builds((0.3,)), seed=0)
    with pytest.raises(ValueError, match="`val_data`"):
        fit_packed(packed, ds, ds, val_targets)
    with pytest.raises(ValueError, match="`callbacks`"):
        fit_packed(packed, ds, val_inputs, val_targets, callbacks=[[], []])
    with pytest.raises(ValueError, match="`patience`"):
        fit_packed(packed, ds, val_inputs, val_targets, patience=-1)
    with pytest.raises(ValueError, match="`builds`"):
        build_packed([dict(acoustic_dim=DIM, **TINY), _builds((0.3,))[0]])  # baseline and adversary: other outputs


def _hypermodel(grid):
    return EmotionPrivacyHyperModel({**{k: (v,) for k, v in TINY.items()}, **grid}, adversary="gender",
                                    acoustic_dim=DIM, epochs=5, patience=1, seed=7)


def test_oracle_hands_out_packs_of_one_shape_in_grid_order(tmp_path):
    tuner = make_tuner(_hypermodel({"conv_kernels": (4, 6), "grl_lambda": (0.3, 0.5, 1.0)}), tmp_path, "p",
                              pack=2)
    oracle = tuner.oracle
    assert isinstance(tuner, PackedGridSearch) and isinstance(oracle, PackedGridSearchOracle)
    rounds = []
    while True:
        trials = oracle.create_pack(["a", "b"])
        if trials[0].status == "STOPPED":
            break
        rounds.append([(t.trial_id, t.hyperparameters.values["conv_kernels"], t.hyperparameters.values["grl_lambda"])
                       for t in trials])
        for t in trials:
            oracle.update_trial(t.trial_id, {"val_objective": 0.5})
            t.status = "COMPLETED"
            oracle.end_trial(t)
    assert [[(k, lam) for _, k, lam in r] for r in rounds] == [
        [(4, 0.3), (4, 0.5)], [(4, 1.0)], [(6, 0.3), (6, 0.5)], [(6, 1.0)]]
    assert [t for r in rounds for t, _, _ in r] == [f"{i:04d}" for i in range(6)]  # the ordinary tuner's ids


def test_packed_search_records_the_trials_the_ordinary_search_records(tmp_path):
    ds, val_inputs, val_targets, probe = _data()
    grid = {"grl_lambda": (0.3, 1.0)}
    tuners = {}
    for name, pack in (("plain", 1), ("packed", 2)):
        tuner = make_tuner(_hypermodel(grid), tmp_path, name, pack=pack, overwrite=True)
        lines = []
        tuner.report = lines.append
        tuner.search(ds, val_inputs, val_targets=val_targets, probe=probe, verbose=0)
        tuners[name] = (tuner, lines)
    (plain, plain_lines), (packed, packed_lines) = tuners["plain"], tuners["packed"]
    assert isinstance(packed, PackedGridSearch) and not isinstance(plain, PackedGridSearch)
    assert sorted(plain_lines) == sorted(packed_lines)  # the same epochs of the same trials, interleaved
    assert sorted(plain.oracle.trials) == sorted(packed.oracle.trials) == ["0000", "0001"]
    for trial_id, trial in plain.oracle.trials.items():
        other = packed.oracle.trials[trial_id]
        assert other.status == trial.status == "COMPLETED"
        assert other.hyperparameters.values == trial.hyperparameters.values
        assert sorted(other.metrics.metrics) == sorted(trial.metrics.metrics)
        for name in trial.metrics.metrics:
            assert other.metrics.get_best_value(name) == pytest.approx(trial.metrics.get_best_value(name), abs=ATOL)
        _assert_same_history(trial_history(packed, trial_id), trial_history(plain, trial_id))
        a, b = plain.load_model(trial), packed.load_model(other)
        for name, values in predict_sequences(a, val_inputs).items():
            np.testing.assert_allclose(predict_sequences(b, val_inputs)[name], values, atol=ATOL)
    assert packed.oracle.get_best_trials(1)[0].trial_id == plain.oracle.get_best_trials(1)[0].trial_id
    # a packed project reloads as finished under the ordinary tuner (same state files)
    again = make_tuner(_hypermodel(grid), str(tmp_path), "packed")
    again.search(ds, val_inputs, val_targets=val_targets, probe=probe, verbose=0)
    assert sorted(again.oracle.trials) == ["0000", "0001"]
    assert json.loads((tmp_path / "packed" / "trial_0001" / "history.json").read_text())["val_objective"]
