"""Training: compile policy, whole-set validation UAR and the objective in the logs, sample weights, early stopping."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from privemo.metrics import uar
from privemo.nn.models import build_model
from privemo.data.pipeline import class_weights, make_dataset
from privemo.nn.training import (
    ValidationUAR,
    align_dataset,
    best_epoch,
    compile_model,
    fit,
    objective,
    predict_dataset,
    predict_sequences,
)

N = 24


@pytest.fixture(scope="module")
def data():
    """24 utterances of 5-20 frames; emotion and gender planted as mean shifts so a few steps learn something."""
    rng = np.random.default_rng(0)
    emotion = rng.integers(0, 3, N).astype("int32")
    gender = rng.integers(0, 2, N).astype("int32")
    lengths = rng.integers(5, 21, N)
    acoustic = [
        (rng.normal(size=(n, 40)) + emotion[i] - 1.0 + 0.5 * gender[i]).astype("float32") for i, n in enumerate(lengths)
    ]
    return {"acoustic": acoustic}, {"emotion": emotion, "gender": gender}


def _small_model(**kwargs):
    keras.utils.set_random_seed(0)
    return build_model(
        adversary="gender", conv_layers=1, conv_kernels=4, gru_layers=1, gru_width=4, dense_width=4, **kwargs
    )


def test_compile_model_sums_one_cross_entropy_per_output():
    model = compile_model(_small_model(), learning_rate=3e-4)
    assert model.compiled
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(3e-4)
    assert sorted(model.loss) == ["emotion", "gender"]
    assert all(isinstance(loss, keras.losses.SparseCategoricalCrossentropy) for loss in model.loss.values())
    with pytest.raises(ValueError, match="`learning_rate`"):
        compile_model(_small_model(), learning_rate=0)


def _fixed(predictions):
    return lambda model: predictions


def _one_hot(labels, k):
    return np.eye(k)[np.asarray(labels)]


def test_validation_logs_arithmetic_per_modality_and_speaker():
    y_emo = np.array([0, 1, 2, 0, 1, 2])
    y_gen = np.array([0, 0, 0, 1, 1, 1])
    preds = {
        "emotion": _one_hot([0, 1, 2, 0, 0, 0], 3),  # recalls 1, 1/2, 1/2 -> 2/3
        "gender_acoustic": _one_hot([0, 0, 0, 1, 1, 0], 2),  # recalls 1, 2/3 -> 5/6
        "gender_lexical": _one_hot([0, 1, 0, 1, 0, 1], 2),  # recalls 2/3, 2/3 -> 2/3
    }
    logs = ValidationUAR(_fixed(preds), {"emotion": y_emo, "gender": y_gen}).scores()
    assert logs["val_emotion_uar"] == pytest.approx(2 / 3)
    assert logs["val_gender_acoustic_uar"] == pytest.approx(5 / 6)
    assert logs["val_gender_lexical_uar"] == pytest.approx(2 / 3)
    assert logs["val_gender_uar"] == pytest.approx(5 / 6)  # the most leaking head counts
    assert logs["val_objective"] == pytest.approx(2 / 3 - (5 / 6 - 0.5))

    speaker = {"emotion": preds["emotion"], "speaker": _one_hot([0, 1, 2, 3, 0, 1], 4)}
    targets = {"emotion": y_emo, "speaker": np.array([0, 1, 2, 3, 3, 3])}
    logs = ValidationUAR(_fixed(speaker), targets, objective=lambda e, a, c: 10 * e + a + c).scores()
    assert logs["val_speaker_uar"] == pytest.approx((1 + 1 + 1 + 1 / 3) / 4)
    assert logs["val_objective"] == pytest.approx(10 * 2 / 3 + logs["val_speaker_uar"] + 1 / 4)  # chance = 1/4

    # No attribute targets (e.g. a speaker head on unseen validation speakers): the objective is emotion UAR alone.
    logs = ValidationUAR(_fixed(speaker), {"emotion": y_emo}).scores()
    assert "val_speaker_uar" not in logs and logs["val_objective"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="targets"):
        ValidationUAR(_fixed(preds)).scores()


def test_validation_scores_agree_across_input_forms(data):
    inputs, targets = data
    model = compile_model(_small_model())
    idx = np.arange(N)
    bucketed = make_dataset(inputs, targets, idx, batch_size=5, shuffle=True, seed=3)  # reordered batches
    from_dataset = ValidationUAR(bucketed).scores(model)
    from_lists = ValidationUAR(inputs, targets).scores(model)
    x_only = make_dataset(inputs, None, idx, batch_size=N, bucket=False)
    from_x_only = ValidationUAR(x_only, targets).scores(model)
    direct = predict_sequences(model, inputs)
    expected = uar(targets["emotion"], direct["emotion"])
    for logs in (from_dataset, from_lists, from_x_only):
        assert logs["val_emotion_uar"] == pytest.approx(expected)
        assert logs["val_gender_uar"] == pytest.approx(uar(targets["gender"], direct["gender"]))
    preds, ys = predict_dataset(model, bucketed)
    assert preds["emotion"].shape == (N, 3) and sorted(ys) == ["emotion", "gender"]


def test_fit_logs_early_stops_and_restores_best_weights(data):
    inputs, targets = data
    train_idx, val_idx = np.arange(16), np.arange(16, N)
    weights = {"emotion": np.zeros(N, np.float32)}
    weights["emotion"][train_idx] = class_weights(targets["emotion"][train_idx], 3)  # gender weights: filled with ones
    train_ds = make_dataset(inputs, targets, train_idx, batch_size=8, shuffle=True, sample_weights=weights)
    val_ds = make_dataset(inputs, targets, val_idx, batch_size=8)
    model = _small_model()
    history = fit(model, train_ds, val_ds, epochs=4, patience=1, learning_rate=1e-2)
    run = len(history["val_objective"])
    assert {"loss", "val_emotion_uar", "val_gender_uar", "val_objective"} <= set(history)
    best = best_epoch(history)
    assert run == 4 or run == best["epoch"] + 2  # stopped one epoch (patience) after the best
    # The model now holds the best epoch's weights: rescoring it gives the best objective.
    rescored = ValidationUAR(val_ds).scores(model)
    assert rescored["val_objective"] == pytest.approx(max(history["val_objective"]))
    for i in range(run):
        assert history["val_objective"][i] == pytest.approx(
            objective(history["val_emotion_uar"][i], history["val_gender_uar"][i])
        )


def test_per_output_sample_weights_are_applied(data):
    inputs, targets = data
    model = compile_model(_small_model(modalities="acoustic", grl_placement="fused"))
    model.run_eagerly = True
    zero = {"emotion": np.zeros(N, np.float32), "gender": np.ones(N, np.float32)}
    ds = make_dataset(inputs, targets, np.arange(8), batch_size=8, sample_weights=zero)
    logs = model.fit(ds, epochs=1, verbose=0, shuffle=False).history
    assert logs["emotion_loss"][0] == 0.0 and logs["gender_loss"][0] > 0.0


def test_align_dataset_maps_attribute_targets_to_heads_and_fills_weights():
    model = build_model(
        ("acoustic", "lexical"), adversary="gender", grl_placement="per_modality", conv_layers=1, conv_kernels=2,
        gru_layers=1, gru_width=2, dense_width=2, lexical_dim=3,
    )
    x = {"acoustic": tf.zeros((2, 3, 40)), "lexical": tf.zeros((2, 3, 3))}
    y = {"emotion": tf.constant([0, 2]), "gender": tf.constant([1, 0]), "speaker": tf.constant([4, 5])}
    ds = tf.data.Dataset.from_tensors((x, y, {"emotion": tf.constant([0.5, 2.0])}))
    _, y2, sw2 = next(iter(align_dataset(ds, model)))
    assert sorted(y2) == ["emotion", "gender_acoustic", "gender_lexical"]
    np.testing.assert_array_equal(y2["gender_lexical"].numpy(), [1, 0])
    np.testing.assert_array_equal(sw2["emotion"].numpy(), [0.5, 2.0])
    np.testing.assert_array_equal(sw2["gender_acoustic"].numpy(), [1.0, 1.0])
    with pytest.raises(ValueError, match="no targets for output"):
        align_dataset(tf.data.Dataset.from_tensors((x, {"emotion": y["emotion"]})), model)


def test_best_epoch_and_fit_argument_errors():
    history = {"val_objective": [0.2, 0.5, 0.5, 0.4], "val_emotion_uar": [0.3, 0.6, 0.7, 0.5]}
    # epochs 0 and 1 are never kept (MIN_KEPT_EPOCH): the first maximum from epoch 2 on
    assert best_epoch(history) == {"val_objective": 0.5, "val_emotion_uar": 0.7, "epoch": 2}
    with pytest.raises(ValueError, match="no 'val_objective'"):
        best_epoch({"loss": [1.0]})
    model = _small_model()
    ds = tf.data.Dataset.from_tensors(({"acoustic": tf.zeros((1, 2, 40))}, {"emotion": [0], "gender": [0]}))
    with pytest.raises(ValueError, match="`epochs`"):
        fit(model, ds, ds, epochs=0)
    with pytest.raises(ValueError, match="`patience`"):
        fit(model, ds, ds, patience=-1)


@pytest.mark.parametrize("fault", ["disk full", "interrupted"])
def test_a_checkpoint_is_written_atomically_and_never_left_truncated(tmp_path, fault):
    """save_checkpoint writes the weights beside the checkpoint and renames them into place: a save that writes part of
    the file and then fails (a full disk, Ctrl-C; the injected fault) leaves the previous checkpoint byte for byte and no
    temporary file; the full disk is one WriteError line naming the checkpoint. The checkpoint reads back as saved."""
    import errno
    import os

    from privemo._util.io import WriteError
    from privemo.nn.training import save_checkpoint

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "trial_0000" / "checkpoint.weights.h5"
    assert save_checkpoint(model, path) == path and [p.name for p in path.parent.iterdir()] == [path.name]
    before = path.read_bytes()
    saved = [w.copy() for w in model.get_weights()]
    real_save = model.save_weights
    written = []

    def cut_short(name, *args, **kwargs):  # Keras writes the temporary file, which is then cut short
        assert str(name).endswith(".checkpoint.weights.h5") and os.path.dirname(name) == str(path.parent)
        real_save(name, *args, **kwargs)
        written.append(name)
        with open(name, "r+b") as fh:
            fh.truncate(100)
        if fault == "disk full":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise KeyboardInterrupt

    model.set_weights([w + 1.0 for w in saved])
    model.save_weights = cut_short
    with pytest.raises(WriteError if fault == "disk full" else KeyboardInterrupt) as info:
        save_checkpoint(model, path)
    if fault == "disk full":
        assert str(info.value).startswith(f"{path}: cannot write: No space left on device.")
        assert "\n" not in str(info.value)
    assert written and [p.name for p in path.parent.iterdir()] == [path.name]  # the temporary file is gone
    assert path.read_bytes() == before
    model.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), saved))
