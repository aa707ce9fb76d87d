"""Tuning: the selection objective, the grid as keras-tuner's search space, and a resumable GridSearch."""

import json

import numpy as np
import pytest
import keras
import keras_tuner

from privemo.search.grids import PAPER_GRID, grid_size
from privemo.data.pipeline import make_dataset
from privemo.search.factory import make_tuner
from privemo.search.tuning import EmotionPrivacyHyperModel, objective, search_space_size


def test_objective_arithmetic():
    assert objective(0.62) == 0.62  # baseline: emotion UAR alone
    assert objective(0.62, 0.70) == pytest.approx(0.62 - 0.20)
    assert objective(0.62, 0.45) == 0.62  # below chance earns nothing
    assert objective(0.62, 0.5) == 0.62
    assert objective(0.62, 0.70, weight=0.5) == pytest.approx(0.62 - 0.10)
    assert objective(0.62, 0.70, weight=0.0) == 0.62
    assert objective(0.62, 0.35, chance=0.25) == pytest.approx(0.62 - 0.10)  # 4 speakers
    for kwargs, match in [
        (dict(emotion_uar=1.2), "`emotion_uar`"),
        (dict(emotion_uar=0.5, attribute_uar=-0.1), "`attribute_uar`"),
        (dict(emotion_uar=0.5, attribute_uar=0.6, weight=-1), "`weight`"),
        (dict(emotion_uar=0.5, chance=2), "`chance`"),
    ]:
        with pytest.raises(ValueError, match=match):
            objective(**kwargs)


def _enumerate(tuner):
    """Walk the grid the way GridSearchOracle does (its own successor function), without running trials."""
    oracle = tuner.oracle
    values = {hp.name: hp.default for hp in oracle.get_space().space}
    seen = [values]
    while (values := oracle._get_next_combination(values)) is not None:
        seen.append(values)
    return seen


@pytest.mark.parametrize("adversary, expected", [("gender", 384), (None, 96)])
def test_paper_grid_is_the_search_space(tmp_path, adversary, expected):
    hypermodel = EmotionPrivacyHyperModel(PAPER_GRID, adversary=adversary)
    tuner = make_tuner(hypermodel, tmp_path, "grid")
    space = {hp.name: list(hp.values) for hp in tuner.oracle.get_space().space}
    wanted = {k: list(v) for k, v in PAPER_GRID.items() if adversary or k != "grl_lambda"}
    assert space == wanted  # one Choice per group of layers, exactly the paper's values
    assert search_space_size(tuner) == hypermodel.size == grid_size(PAPER_GRID, adversary is not None) == expected
    combos = _enumerate(tuner)
    assert len(combos) == expected
    assert len({json.dumps(c, sort_keys=True) for c in combos}) == expected


def test_build_returns_a_built_compiled_model_for_the_chosen_values():
    hypermodel = EmotionPrivacyHyperModel(PAPER_GRID, adversary="gender", modalities=("acoustic", "lexical"), lexical_dim=8)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(conv_layers=4, conv_kernels=128, dense_layers=2, grl_lambda=0.75)
    model = hypermodel.build(hp)
    assert model.built and model.compiled
    assert model.get_layer("lexical_conv4").filters == 128
    assert model.get_layer("gender_dense2").units == 32
    assert model.get_layer("gender_grl").lambda_ == 0.75
    assert sorted(model.output) == ["emotion", "gender"]


def test_grid_validation():
    with pytest.raises(ValueError, match="unknown keys"):
        EmotionPrivacyHyperModel({"conv_layers": (3,), "dropout": (0.1,)})
    with pytest.raises(ValueError, match="`conv_width`"):
        EmotionPrivacyHyperModel({"conv_width": ()})
    with pytest.raises(ValueError, match="`conv_kernels`"):
        EmotionPrivacyHyperModel({"conv_kernels": (32, 0)})
    with pytest.raises(ValueError, match="`grl_lambda`"):
        EmotionPrivacyHyperModel({"grl_lambda": (-1.0,)}, adversary="gender")
    with pytest.raises(ValueError, match="`weight`"):
        EmotionPrivacyHyperModel(objective_weight=-1)
    with pytest.raises(ValueError, match="`max_trials`"):
        make_tuner(EmotionPrivacyHyperModel(), "unused", "p", max_trials=0)


class CountingHyperModel(EmotionPrivacyHyperModel):
    """The real hypermodel, counting how many trials it trains."""

    fits = 0

    def fit(self, hp, model, *args, **kwargs):
        CountingHyperModel.fits += 1
        return super().fit(hp, model, *args, **kwargs)


def test_search_records_results_and_resumes_without_redoing_trials(tmp_path):
    rng = np.random.default_rng(0)
    n = 12
    inputs = {"acoustic": [rng.normal(size=(int(k), 40)).astype("float32") for k in rng.integers(4, 12, n)]}
    targets = {"emotion": rng.integers(0, 3, n).astype("int32"), "gender": np.arange(n, dtype="int32") % 2}
    train_ds = make_dataset(inputs, targets, np.arange(8), batch_size=8)
    val_ds = make_dataset(inputs, targets, np.arange(8, n), batch_size=4)
    tiny = {"conv_layers": (1,), "conv_kernels": (4,), "gru_layers": (1,), "gru_width": (4,), "dense_width": (4, 8), "grl_lambda": (0.5,)}

    def tuner(overwrite):
        hypermodel = CountingHyperModel(tiny, adversary="gender", epochs=1, patience=0, selection="head")
        return make_tuner(hypermodel, tmp_path, "resume", overwrite=overwrite)

    first = tuner(overwrite=True)
    assert search_space_size(first) == 2
    first.search(train_ds, val_ds, verbose=0)
    assert CountingHyperModel.fits == 2
    trials = first.oracle.get_best_trials(2)
    assert sorted(t.hyperparameters.values["dense_width"] for t in trials) == [4, 8]
    for trial in trials:
        assert trial.status == "COMPLETED"
        assert {"val_objective", "val_emotion_uar", "val_gender_uar"} <= set(trial.metrics.metrics)
        assert trial.score == pytest.approx(
            objective(trial.metrics.get_last_value("val_emotion_uar"), trial.metrics.get_last_value("val_gender_uar"),
                      two_sided=True)
        )
    assert trials[0].score >= trials[1].score
    assert (tmp_path / "resume" / "trial_0000" / "trial.json").exists()

    again = tuner(overwrite=False)  # a rerun of the same project: both trials are finished, nothing is retrained
    again.search(train_ds, val_ds, verbose=0)
    assert CountingHyperModel.fits == 2
    assert len(again.oracle.trials) == 2
    best = again.get_best_models(1)[0]
    assert isinstance(best, keras.Model) and sorted(best.output) == ["emotion", "gender"]
    assert best.get_layer("emotion_dense1").units == trials[0].hyperparameters.values["dense_width"]


def test_model_cache_reuses_the_network_with_fresh_weights_and_optimizer_state():
    grid = {k: (v[0],) for k, v in PAPER_GRID.items()}
    cache: dict = {}
    hm_a = EmotionPrivacyHyperModel(grid, adversary="gender", seed=1, model_cache=cache)
    first = hm_a.build(keras_tuner.HyperParameters())
    initial = [w.copy() for w in first.get_weights()]
    # Train a step so weights and optimizer state move away from their initial values.
    x = {"acoustic": np.random.default_rng(0).normal(size=(4, 20, 40)).astype("float32")}
    first.train_on_batch(x, {"emotion": np.array([0, 1, 2, 0]), "gender": np.array([0, 1, 0, 1])})
    assert int(first.optimizer.iterations.numpy()) == 1

    other_lambda = dict(grid, grl_lambda=(0.5,))
    hm_b = EmotionPrivacyHyperModel(other_lambda, adversary="gender", seed=1, model_cache=cache)
    again = hm_b.build(keras_tuner.HyperParameters())
    assert again is first and len(cache) == 1  # lambda is a weight: same network
    assert int(again.optimizer.iterations.numpy()) == 0
    assert all(float(np.abs(v.numpy() if hasattr(v, "numpy") else v).sum()) == 0.0
               for v in again.optimizer.variables[2:])  # Adam moments back to zero
    fresh = EmotionPrivacyHyperModel(other_lambda, adversary="gender", seed=1).build(keras_tuner.HyperParameters())
    for got, want in zip(again.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert not all(np.array_equal(a, b) for a, b in zip(again.get_weights(), initial))  # lambda 0.5, not 0.3
    # A different architecture gets its own entry.
    EmotionPrivacyHyperModel(dict(grid, dense_width=(64,)), adversary="gender", seed=1,
                             model_cache=cache).build(keras_tuner.HyperParameters())
    assert len(cache) == 2


def test_search_and_load_model_keep_tensorflow_kernel_cache(tmp_path, monkeypatch):
    """keras-tuner resets the Keras session (and TensorFlow's kernel cache) before every build; privemo's GridSearch
    must not, or every cached network's traced functions are instantiated again (seconds per trial on a CPU)."""
    from tensorflow.python.eager import context

    flushes = []
    monkeypatch.setattr(context.Context, "clear_kernel_cache", lambda self: flushes.append("clear_kernel_cache"))
    monkeypatch.setattr(context.Context, "_set_global_seed", lambda self, seed: flushes.append("set_global_seed"))
    rng = np.random.default_rng(1)
    inputs = {"acoustic": [rng.normal(size=(int(k), 40)).astype("float32") for k in rng.integers(4, 12, 10)]}
    targets = {"emotion": rng.integers(0, 3, 10).astype("int32")}
    train_ds = make_dataset(inputs, targets, np.arange(6), batch_size=6)
    val_ds = make_dataset(inputs, targets, np.arange(6, 10), batch_size=4)
    tiny = {"conv_layers": (1,), "conv_kernels": (4,), "gru_layers": (1,), "gru_width": (4,), "dense_width": (4, 8)}
    hypermodel = EmotionPrivacyHyperModel(tiny, epochs=1, patience=0, model_cache={})
    tuner = make_tuner(hypermodel, tmp_path, "no_flush", overwrite=True)
    lines: list[str] = []
    tuner.report, tuner.report_label = lines.append, "fold 0: "  # progress: one line per epoch of every trial
    tuner.search(train_ds, val_ds, verbose=0)
    model = tuner.load_model(tuner.oracle.get_best_trials(1)[0])
    assert isinstance(model, keras.Model) and len(tuner.oracle.trials) == 2
    assert flushes == []
    assert [line.split(":")[1] for line in lines] == [" trial 1/2 epoch 1/1", " trial 2/2 epoch 1/1"]
    assert all("val_emotion_uar" in line and "val_objective" in line for line in lines)


@pytest.mark.parametrize("adversary", ["gender", "speaker"])
def test_baseline_and_adversary_of_one_seed_start_from_identical_shared_weights(adversary):
    """Pairing: the layers a baseline and an adversarial network share (encoder, emotion head) start from the same
    values when both hypermodels have the same seed, whatever lambda; the adversary's own layers differ by name only."""
    grid = {k: (v[0],) for k, v in PAPER_GRID.items() if k != "grl_lambda"}
    base = EmotionPrivacyHyperModel(grid, seed=7).build(keras_tuner.HyperParameters())
    for lam in (0.3, 1.0):
        adv = EmotionPrivacyHyperModel(dict(grid, grl_lambda=(lam,)), adversary=adversary, n_speakers=6, seed=7,
                                       selection="head").build(keras_tuner.HyperParameters())
        shared = [layer.name for layer in base.layers if layer.weights]
        assert shared and all(adv.get_layer(name) is not None for name in shared)
        for name in shared:
            for a, b in zip(base.get_layer(name).get_weights(), adv.get_layer(name).get_weights()):
                np.testing.assert_array_equal(a, b, err_msg=name)
    other = EmotionPrivacyHyperModel(grid, seed=8).build(keras_tuner.HyperParameters())
    assert not np.array_equal(other.get_layer("emotion").get_weights()[0], base.get_layer("emotion").get_weights()[0])


def _emotion_data(seed: int, n: int = 12):
    """Training (8 utterances) and validation datasets of random frames with an emotion target."""
    rng = np.random.default_rng(seed)
    inputs = {"acoustic": [rng.normal(size=(int(k), 40)).astype("float32") for k in rng.integers(4, 12, n)]}
    targets = {"emotion": rng.integers(0, 3, n).astype("int32")}
    return (make_dataset(inputs, targets, np.arange(8), batch_size=8),
            make_dataset(inputs, targets, np.arange(8, n), batch_size=4))


def test_trial_history_is_kept_for_the_learning_curve(tmp_path):
    from privemo.search.tuning import trial_history

    train_ds, val_ds = _emotion_data(0)
    tiny = {"conv_layers": (1,), "conv_kernels": (4,), "gru_layers": (1,), "gru_width": (4,), "dense_width": (4,)}
    tuner = make_tuner(EmotionPrivacyHyperModel(tiny, epochs=3, patience=3), tmp_path, "history", overwrite=True)
    tuner.search(train_ds, val_ds, verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    history = trial_history(tuner, trial.trial_id)
    assert len(history["val_emotion_uar"]) == 3 == int(trial.metrics.get_last_value("epochs_run"))
    assert max(history["val_objective"]) == pytest.approx(trial.score)


def test_long_searches_report_every_finished_trial(tmp_path, monkeypatch):
    import privemo.search.tuning as tuning

    train_ds, val_ds = _emotion_data(1)
    tiny = {"conv_layers": (1,), "conv_kernels": (4,), "gru_layers": (1,), "gru_width": (4,), "dense_width": (4, 8, 16)}
    lines = []
    for limit, expected in ((8, 0), (2, 3)):  # 3 trials: quiet under the limit, a line per trial above it
        monkeypatch.setattr(tuning, "TRIAL_REPORT_MIN", limit)
        lines.clear()
        tuner = make_tuner(EmotionPrivacyHyperModel(tiny, epochs=1, patience=0), tmp_path, f"report{limit}",
                           overwrite=True)
        tuner.trial_report, tuner.report_label = lines.append, "fold 0: c: "
        tuner.search(train_ds, val_ds, verbose=0)
        assert len(lines) == expected
    assert [line.split(" done")[0] for line in lines] == [f"fold 0: c: trial {k}/3" for k in (1, 2, 3)]
    assert all("val_objective" in line and "min left in this search" in line for line in lines)


def test_the_tuners_call_the_hypermodel_through_build_and_fit_only():
    """keras-tuner's seam: privemo's tuners use ``HyperModel.build`` and ``HyperModel.fit`` and nothing else of it; what
    more they use (the network cache, the packed training) is given to them explicitly (``make_tuner``)."""
    import ast
    from pathlib import Path

    import privemo.search

    for name in ("tuning.py", "packed_tuner.py", "oracle.py", "_tuner_io.py"):
        path = Path(privemo.search.__file__).parent / name
        tree = ast.parse(path.read_text())
        used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute) and node.value.attr == "hypermodel"}
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and isinstance(node.value, ast.Name) and node.value.id == "hypermodel"}
        assert used <= {"build", "fit"}, f"{name} uses the HyperModel's {sorted(used - {'build', 'fit'})}"
        assert "EmotionPrivacyHyperModel)" not in path.read_text(), f"{name} checks the HyperModel's type"
