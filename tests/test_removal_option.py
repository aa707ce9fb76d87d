"""``--removal METHOD`` and ``--tensorboard DIR`` of ``python -m privemo.reproduce`` (and ``privemo.experiment.distributed``).

Flags, user errors and the hypermodel are checked without training; two tiny real runs (60-utterance demo corpus, one
fold, one epoch) take a non-GRL method through the experiment: "ensemble" (a trained adversary, its weight tuned) with its
baseline, and "inlp" (post hoc) for both attributes; then resume refuses another method, and the tables name it. Two
more (their own fixture, on the same corpus) take LEACE through it: "leace" for both attributes and "ensemble_leace".
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from test_experiment import tiny_config, tiny_demo  # the tiny run (SMALL demo corpus, one fold, one epoch)

ROOT = Path(__file__).resolve().parents[1]
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def reproduce(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, "-m", "privemo.reproduce", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------------------------------------------------
# Flags and user errors (no training)


def test_the_command_offers_exactly_the_removal_modules_methods():
    from privemo import removal

    from privemo.cli import reproduce
    assert reproduce.REMOVALS == removal.REMOVALS


def test_help_lists_every_removal_method_and_tensorboard(tmp_path):
    from privemo.removal import REMOVALS

    proc = reproduce("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    assert "--removal" in text and "--tensorboard" in text
    for method in REMOVALS:
        assert f"{method} =" in text, method
    assert 'pip install "privemo[tensorboard]"' in text
    assert "(default: grl)" in text
    from privemo.cli.distributed import build_parser

    distributed = build_parser().format_help()
    assert "--removal" in distributed and "--tensorboard" in distributed


def test_flags_reach_the_config_and_the_condition_keys(tmp_path, monkeypatch):
    from privemo.cli.reproduce import build_parser, config_from_args

    args = build_parser().parse_args(["--removal", "ensemble", "--out", str(tmp_path / "out"), "--modality", "acoustic",
                                      "--task", "valence"])
    config = config_from_args(args)
    assert config.removal == "ensemble" and config.tensorboard is None
    assert [c.key for c in config.conditions()] == ["acoustic-valence-baseline", "acoustic-valence-gender-fused-ensemble",
                                                   "acoustic-valence-speaker-fused-ensemble"]
    default = config_from_args(build_parser().parse_args(["--out", str(tmp_path / "out"), "--modality", "acoustic"]))
    assert default.removal == "grl"
    assert "acoustic-activation-gender-fused" in [c.key for c in default.conditions()]  # the paper's keys unchanged
    # --tensorboard: parsed into the config when the package is there (pretended here when it is not)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "tensorboard" else real_find_spec(name, *a))
    args = build_parser().parse_args(["--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "out")])
    assert config_from_args(args).tensorboard == str(tmp_path / "tb")


def test_run_settings_name_the_method_only_when_it_is_not_the_papers(tmp_path):
    from privemo.experiment import run_settings

    assert "removal" not in run_settings(tiny_config(tmp_path))  # settings of runs made before the option still match
    assert run_settings(tiny_config(tmp_path, removal="inlp"))["removal"] == "inlp"


def test_tensorboard_without_the_package_is_a_one_line_error(tmp_path, monkeypatch):
    from privemo.cli.reproduce import UserError, build_parser, config_from_args

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real_find_spec(name, *a))
    args = build_parser().parse_args(["--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "out")])
    with pytest.raises(UserError, match=r'--tensorboard needs the optional tensorboard package: '
                                        r'pip install "privemo\[tensorboard\]"'):
        config_from_args(args)


@pytest.mark.skipif(HAS_TENSORBOARD, reason="tensorboard is installed here: the real command cannot miss it")
def test_tensorboard_missing_from_the_real_command(tmp_path):
    proc = reproduce("--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "Traceback" not in proc.stderr and proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        'privemo.reproduce: error: --tensorboard needs the optional tensorboard package: pip install '
        '"privemo[tensorboard]"']
    assert not (tmp_path / "out").exists() and not (tmp_path / "tb").exists()


@pytest.mark.parametrize("args, message", [
    (["--removal", "inlp", "--modality", "acoustic+lexical", "--placement", "fused", "per_modality"],
     "--removal inlp erases the attribute from the fused representation h post hoc"),
    (["--removal", "leace", "--modality", "acoustic+lexical", "--placement", "per_modality"],
     "--removal leace erases the attribute from the fused representation h post hoc"),
    (["--removal", "ensemble", "--adversary", "none"], "--removal ensemble removes an attribute: add --adversary"),
    (["--removal", "mmd_leace", "--modality", "acoustic+lexical", "--placement", "per_modality"],
     "--removal mmd_leace erases the attribute from the fused representation h post hoc"),
    (["--removal", "ensemble3_leace", "--modality", "acoustic+lexical", "--placement", "per_modality"],
     "--removal ensemble3_leace erases the attribute from the fused representation h post hoc"),
    (["--removal", "mmd", "--adversary", "none"], "--removal mmd removes an attribute: add --adversary"),
])
def test_removal_user_errors(tmp_path, args, message):
    from privemo.cli.reproduce import UserError, build_parser, config_from_args

    with pytest.raises(UserError, match=message):
        config_from_args(build_parser().parse_args([*args, "--out", str(tmp_path / "out")]))


def test_unknown_method_is_refused_by_argparse(tmp_path):
    proc = reproduce("--removal", "dropout", cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice: 'dropout'" in proc.stderr


# ---------------------------------------------------------------------------------------------------------------------
# The hypermodel


def _hp(hypermodel, **values):
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    for key, value in values.items():
        hp.values[key] = value
    return hp


def test_hypermodel_declares_lambda_only_for_methods_that_use_it():
    from privemo.search.grids import QUICK_GRID
    from privemo.search.tuning import EmotionPrivacyHyperModel

    from privemo.removal import REMOVALS

    sizes = {removal: EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal=removal).size
             for removal in REMOVALS}
    # every method with a strength tunes it over the same four values (issue 24); the post-hoc erasers of the
    # baseline have none
    assert sizes == {"grl": 4, "grl_dann": 4, "alternating": 4, "ensemble": 4, "inlp": 1, "leace": 1,
                     "ensemble_leace": 4, "mmd": 4, "mmd_leace": 4, "ensemble3_leace": 4, "gradient_erasure": 1}
    with pytest.raises(ValueError, match="needs an `adversary`"):
        EmotionPrivacyHyperModel(QUICK_GRID, removal="ensemble")
    for removal in ("inlp", "leace", "ensemble_leace", "mmd_leace", "ensemble3_leace", "gradient_erasure"):
        with pytest.raises(ValueError, match="grl_placement='fused'"):
            EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal=removal, grl_placement="per_modality",
                                     modalities=("acoustic", "lexical"))
    with pytest.raises(ValueError, match="removal"):
        EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal="dropout")


def test_model_cache_skips_alternating_models_and_keeps_the_dann_ramp_per_trial():
    from privemo.search.grids import QUICK_GRID
    from privemo.removal import AlternatingAdversarialModel, NullspaceProjection, ScheduledGRLModel
    from privemo.search.tuning import EmotionPrivacyHyperModel

    cache: dict = {}
    ensemble = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal="ensemble", model_cache=cache)
    a, b = ensemble.build(_hp(ensemble)), ensemble.build(_hp(ensemble))
    assert isinstance(a, AlternatingAdversarialModel) and a is not b and not cache
    assert ensemble.cached_model(_hp(ensemble)) is None
    dann = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal="grl_dann", model_cache=cache)
    first = dann.build(_hp(dann, grl_lambda=0.3))
    again = dann.build(_hp(dann, grl_lambda=1.0))
    assert isinstance(first, ScheduledGRLModel) and again is first and again.lambda_max == 1.0
    assert dann.cached_model(_hp(dann, grl_lambda=0.3)).lambda_max == 0.3
    # A GRL network of the same architecture is another cache entry.
    grl = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", model_cache=cache)
    assert grl.build(_hp(grl, grl_lambda=0.3)) is not first
    inlp = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal="inlp", model_cache=cache)
    model = inlp.build(_hp(inlp))
    assert isinstance(model.get_layer("h"), NullspaceProjection) and list(model.output) == ["emotion"]
    np.testing.assert_array_equal(model.get_layer("h").projection.numpy(), np.eye(model.get_layer("h").dim))


def test_leace_networks_hold_an_identity_eraser_until_the_post_hoc_step():
    from privemo.search.grids import QUICK_GRID
    from privemo.removal import AffineErasure, AlternatingAdversarialModel
    from privemo.search.tuning import EmotionPrivacyHyperModel

    cache: dict = {}
    leace = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal="leace", model_cache=cache)
    model = leace.build(_hp(leace))
    assert leace.build(_hp(leace)) is model and len(cache) == 1  # cached like inlp (one optimiser)
    layer = model.get_layer("h")
    assert isinstance(layer, AffineErasure) and list(model.output) == ["emotion"]
    np.testing.assert_array_equal(layer.kernel.numpy(), np.eye(layer.dim))
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(layer.dim))
    ensemble = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal="ensemble_leace", model_cache=cache)
    network = ensemble.build(_hp(ensemble))
    assert isinstance(network, AlternatingAdversarialModel) and network.n_adversaries == 3 and len(cache) == 1
    assert isinstance(network.get_layer("h"), AffineErasure) and sorted(network.output) == ["emotion", "gender"]


def test_mmd_networks_take_their_weight_from_lambda_and_are_built_afresh():
    """"mmd" / "mmd_leace" ride on the GRL's lambda (the MMD weight is MMD_SCALE * lambda, fixed in the traced train
    step, so a cached network could not take another lambda: they are not cached); "mmd_leace" holds an identity
    eraser until the post-hoc step, and "ensemble3_leace" builds the ensemble_leace network."""
    from privemo.search.grids import QUICK_GRID
    from privemo.removal import MMD_SCALE, AffineErasure, AlternatingAdversarialModel, MMDModel
    from privemo.search.tuning import EmotionPrivacyHyperModel

    cache: dict = {}
    for removal in ("mmd", "mmd_leace"):
        hypermodel = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal=removal, model_cache=cache)
        first = hypermodel.build(_hp(hypermodel, grl_lambda=0.3))
        second = hypermodel.build(_hp(hypermodel, grl_lambda=1.0))
        assert isinstance(first, MMDModel) and first is not second and not cache
        assert (first.mmd_weight, second.mmd_weight) == pytest.approx((0.3 * MMD_SCALE, MMD_SCALE))
        assert sorted(first.output) == ["emotion", "gender"]
        assert isinstance(first.get_layer("h"), AffineErasure) == (removal == "mmd_leace")
    ensemble3 = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal="ensemble3_leace")
    network = ensemble3.build(_hp(ensemble3))
    assert isinstance(network, AlternatingAdversarialModel) and network.n_adversaries == 3
    assert isinstance(network.get_layer("h"), AffineErasure)


# ---------------------------------------------------------------------------------------------------------------------
# Tiny real runs


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The SMALL demo corpus of the tiny runs (``tiny_demo``), shared by this module's fixtures."""
    base = tmp_path_factory.mktemp("removal")
    with tiny_demo(base) as table:
        yield SimpleNamespace(base=base, table=table)


@pytest.fixture(scope="module")
def world(demo):
    from privemo.experiment import run_cross_validation

    base, table = demo.base, demo.table
    ensemble = tiny_config(base / "ensemble", removal="ensemble")
    inlp = tiny_config(base / "inlp", removal="inlp", adversaries=("gender", "speaker"))
    return SimpleNamespace(base=base, table=table, ensemble=ensemble,
                           ensemble_records=run_cross_validation(ensemble, table=table).records, inlp=inlp,
                           inlp_records=run_cross_validation(inlp, table=table).records)


@pytest.fixture(scope="module")
def leace_world(demo):
    from privemo.experiment import run_cross_validation

    leace = tiny_config(demo.base / "leace", removal="leace", adversaries=("gender", "speaker"))
    ensemble_leace = tiny_config(demo.base / "ensemble_leace", removal="ensemble_leace", adversaries=("gender",))
    return SimpleNamespace(table=demo.table, leace=leace, leace_records=run_cross_validation(leace, table=demo.table).records,
                           ensemble_leace=ensemble_leace,
                           ensemble_leace_records=run_cross_validation(ensemble_leace, table=demo.table).records)


def assert_probe_or_fallback(record: dict) -> None:
    """Selection by the fresh probe; for the speaker adversary on the demo (one validation speaker per gender, which
    cannot support the linkability probe) the documented fallback: validation emotion alone."""
    if record["adversary"] == "speaker":
        assert record["selection"] == "emotion" and "one per gender" in record["selection_fallback"]
        assert "val_probe" not in record["val"]
    else:
        assert record["selection"] == "probe" and record["selection_fallback"] is None and "val_probe" in record["val"]


@pytest.mark.slow
def test_ensemble_run_records_the_method_and_attacks_its_network(world):
    from privemo.experiment import result_path

    baseline, adversarial = world.ensemble_records
    assert baseline["condition"] == "acoustic-activation-baseline" and baseline["removal"] is None
    assert adversarial["condition"] == "acoustic-activation-gender-fused-ensemble"
    assert adversarial["removal"] == "ensemble" and adversarial["settings"]["removal"] == "ensemble"
    # the adversaries' weight tuned over the quick grid's lambdas, as the GRL's lambda
    assert adversarial["grl_lambda"] in (0.3, 0.5, 0.75, 1.0) and len(adversarial["trials"]) == 4
    assert "val_probe" in adversarial["val"]  # probe-based selection
    assert 0.0 <= adversarial["attacks"]["gender"]["strongest_test_uar"] <= 1.0
    assert "eer" in adversarial["attacks"]["speaker_verification"]
    assert result_path(world.ensemble, world.ensemble.conditions()[1], 0).is_file()
    saved = Path(world.ensemble.out_dir) / "models" / "acoustic-activation-gender-fused-ensemble" / "fold0.keras"
    assert saved.is_file()


@pytest.mark.slow
def test_inlp_run_projects_the_trained_baselines_h(world):
    import keras

    from privemo.removal import NullspaceProjection

    gender, speaker = world.inlp_records
    assert [r["condition"] for r in world.inlp_records] == ["acoustic-activation-gender-fused-inlp",
                                                            "acoustic-activation-speaker-fused-inlp"]
    for record in world.inlp_records:
        assert record["removal"] == "inlp" and len(record["trials"]) == 1 and record["grl_lambda"] is None
        assert record["val"]["inlp_iterations"] >= 1
        assert_probe_or_fallback(record)
        assert "gender" in record["attacks"] and "speaker_verification" in record["attacks"]
        saved = Path(world.inlp.out_dir) / "models" / record["condition"] / "fold0.keras"
        h = keras.saving.load_model(saved).get_layer("h")
        assert isinstance(h, NullspaceProjection)
        projection = h.projection.numpy()
        rank = int(round(projection.shape[0] - np.trace(projection)))  # an orthogonal projection's trace is its rank
        assert rank == record["val"]["inlp_rank_removed"]
    # The network INLP projects is the baseline architecture trained as the baseline is (same seed for both attributes).
    assert gender["seed"] == speaker["seed"] and gender["epochs_run"] == speaker["epochs_run"]


def _saved_model_on_training_rows(config, table, record):
    """The record's saved network (out/models/<condition>/fold0.keras, loaded with ``keras.saving.load_model``), the
    representation h it exports (its layer "h") and the h its encoder computes before the eraser, on the fold's
    training rows of known gender, with their gender ids."""
    import keras

    from privemo.experiment import holdout_rows, plan_run, prepare_corpus
    from privemo.nn.training import predict_sequences

    saved = Path(config.out_dir) / "models" / record["condition"] / "fold0.keras"
    model = keras.saving.load_model(saved)
    _, folds, _, _ = plan_run(config, table)
    data = prepare_corpus(table, config)
    rows, _ = holdout_rows(data, folds[0], config)
    rows = rows[data.gender[rows] >= 0]
    both = keras.Model(model.input, {"h": model.get_layer("h").output, "before": model.get_layer("h").input})
    h = predict_sequences(both, {"acoustic": [data.acoustic[i] for i in rows]})
    return model, h["h"], h["before"], data.gender[rows]


def _assert_gender_erased(h, before, gender):
    """A logistic regression fitted and scored on the training rows' h finds no gender (LEACE's guarantee on the rows it
    was fitted on: the class means of h coincide), while the encoder's own h carried it."""
    from sklearn.linear_model import LogisticRegression

    from privemo.metrics import uar

    def training_uar(x):
        return uar(gender, LogisticRegression(class_weight="balanced", max_iter=5000).fit(x, gender).predict(x))

    erased, kept = training_uar(h), training_uar(before)
    assert erased <= 0.55 and kept >= erased + 0.1, (erased, kept)  # 30 rows of the tiny run: 0.5 vs about 0.8
    gap = np.abs(h[gender == 1].mean(0) - h[gender == 0].mean(0)).max()
    gap_before = np.abs(before[gender == 1].mean(0) - before[gender == 0].mean(0)).max()
    assert gap < 1e-4 * (float(np.abs(before).max()) + 1e-6) and gap_before > 100 * gap, (gap, gap_before)


@pytest.mark.slow
def test_leace_run_erases_gender_from_the_trained_baselines_h(leace_world):
    from privemo.removal import AffineErasure

    gender, speaker = leace_world.leace_records
    assert [r["condition"] for r in leace_world.leace_records] == ["acoustic-activation-gender-fused-leace",
                                                                   "acoustic-activation-speaker-fused-leace"]
    for record in leace_world.leace_records:
        assert record["removal"] == "leace" and record["settings"]["removal"] == "leace"
        assert len(record["trials"]) == 1 and record["grl_lambda"] is None
        assert_probe_or_fallback(record)
        assert 0.0 <= record["attacks"]["gender"]["strongest_test_uar"] <= 1.0
        assert "eer" in record["attacks"]["speaker_verification"]
    assert gender["val"]["leace_rank_removed"] == 1.0  # a binary attribute: one direction
    assert 1.0 <= speaker["val"]["leace_rank_removed"] <= speaker["n"]["train"]
    model, h, before, labels = _saved_model_on_training_rows(leace_world.leace, leace_world.table, gender)
    assert isinstance(model.get_layer("h"), AffineErasure) and list(model.output) == ["emotion"]
    _assert_gender_erased(h, before, labels)
    # The network LEACE erases is the baseline architecture trained as the baseline is (same seed for both attributes).
    assert gender["seed"] == speaker["seed"] and gender["epochs_run"] == speaker["epochs_run"]


def test_gradient_erasure_run_erases_gender_from_the_trained_baselines_h(demo):
    """--removal gradient_erasure: the baseline network trained, its h erased post hoc by GradientSubspaceEraser (an
    affine map saved as the "h" layer), the emotion head refitted; no linear probe finds gender on the training rows."""
    from privemo.experiment import run_cross_validation
    from privemo.removal import AffineErasure

    config = tiny_config(demo.base / "gradient", removal="gradient_erasure", adversaries=("gender",))
    (record,) = run_cross_validation(config, table=demo.table).records
    assert record["condition"] == "acoustic-activation-gender-fused-gradient_erasure"
    assert record["removal"] == "gradient_erasure" and len(record["trials"]) == 1 and record["grl_lambda"] is None
    assert record["val"]["gradient_converged"] == 1.0 and record["val"]["gradient_rounds"] >= 1.0
    assert 0.0 <= record["attacks"]["gender"]["strongest_test_uar"] <= 1.0
    model, h, before, labels = _saved_model_on_training_rows(config, demo.table, record)
    assert isinstance(model.get_layer("h"), AffineErasure) and list(model.output) == ["emotion"]
    if record["val"]["gradient_rank_removed"] == 0:  # 30 training rows: no probe beat chance by its stopping rule
        np.testing.assert_allclose(h, before, atol=1e-5)
    else:
        _assert_gender_erased(h, before, labels)


@pytest.mark.slow
def test_ensemble_leace_run_erases_gender_from_the_ensembles_h(leace_world):
    from privemo.removal import AffineErasure, AlternatingAdversarialModel

    (record,) = leace_world.ensemble_leace_records
    assert record["condition"] == "acoustic-activation-gender-fused-ensemble_leace"
    assert record["removal"] == "ensemble_leace" and len(record["trials"]) == 4 and record["grl_lambda"] is not None
    assert record["val"]["leace_rank_removed"] == 1.0 and "val_probe" in record["val"]
    assert 0.0 <= record["attacks"]["gender"]["strongest_test_uar"] <= 1.0
    model, h, before, labels = _saved_model_on_training_rows(leace_world.ensemble_leace, leace_world.table, record)
    assert isinstance(model, AlternatingAdversarialModel) and model.n_adversaries == 3
    assert isinstance(model.get_layer("h"), AffineErasure) and sorted(model.output) == ["emotion", "gender"]
    _assert_gender_erased(h, before, labels)


@pytest.fixture(scope="module")
def mmd_world(demo):
    from privemo.experiment import run_cross_validation

    config = tiny_config(demo.base / "mmd_leace", removal="mmd_leace", adversaries=("gender",))
    return SimpleNamespace(table=demo.table, config=config, records=run_cross_validation(config, table=demo.table).records)


@pytest.mark.slow
def test_mmd_leace_run_tunes_lambda_then_erases_gender_from_the_mmd_networks_h(mmd_world):
    from privemo.removal import AffineErasure, MMDModel

    (record,) = mmd_world.records
    assert record["condition"] == "acoustic-activation-gender-fused-mmd_leace" and record["removal"] == "mmd_leace"
    assert len(record["trials"]) == 4 and record["grl_lambda"] in (0.3, 0.5, 0.75, 1.0)  # the lambda grid
    assert record["val"]["leace_rank_removed"] == 1.0 and "val_probe" in record["val"]
    assert 0.0 <= record["attacks"]["gender"]["strongest_test_uar"] <= 1.0
    model, h, before, labels = _saved_model_on_training_rows(mmd_world.config, mmd_world.table, record)
    assert isinstance(model, MMDModel) and isinstance(model.get_layer("h"), AffineErasure)
    assert sorted(model.output) == ["emotion", "gender"]
    _assert_gender_erased(h, before, labels)


@pytest.mark.slow
def test_resume_refuses_another_removal_method(world):
    from privemo._util.validation import UserError
    from privemo.experiment import run_cross_validation

    for other in ("grl", "alternating"):
        config = tiny_config(world.ensemble.out_dir, removal=other, resume=True)
        with pytest.raises(ValueError, match=r"settings\.json: cannot resume: .*removal: 'ensemble' there") as info:
            run_cross_validation(config, table=world.table)
        assert isinstance(info.value, UserError)


@pytest.mark.slow
def test_tables_name_the_method(world, tmp_path):
    from privemo.experiment.reporting import write_tables

    write_tables(world.ensemble_records, tmp_path)
    note = (tmp_path / "table1a.md").read_text(encoding="utf-8")
    assert note.startswith("Removal method: ensemble")
    assert "acoustic" in note and "Table 1a: gender adversary" in note
    write_tables([r for r in world.ensemble_records if r["adversary"] is None]
                 + [{**r, "removal": "grl"} for r in world.ensemble_records if r["adversary"]], tmp_path)
    assert (tmp_path / "table1a.md").read_text(encoding="utf-8").startswith("Table 1a")  # the paper's method: no note


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is an optional extra: pip install 'privemo[tensorboard]'")
def test_tensorboard_logs_every_trial(world):
    from privemo.experiment import run_cross_validation

    logs = world.base / "tb"
    config = tiny_config(world.base / "tb-run", adversaries=("gender",), removal="ensemble", tensorboard=str(logs))
    run_cross_validation(config, table=world.table).records
    trials = list((logs / "acoustic-activation-gender-fused-ensemble" / "fold0").glob("trial_*"))
    assert len(trials) == 4, trials  # one trial per value of the adversaries' tuned weight
    events = {p.relative_to(trials[0]).parts[0] for p in trials[0].rglob("events.out.tfevents.*")}
    assert {"train", "validation"} <= events, events


@pytest.mark.slow
def test_distributed_search_runs_the_method_with_probe_selection(world, tmp_path):
    """A chief (thread) and a worker in this process: the worker trains the ensemble trials with the reproduce command's
    own search arguments (the probe included), and the final phase reloads it without training again."""
    import socket
    import threading

    from privemo.experiment import distributed as D
    from privemo.experiment import run_cross_validation

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tiny_config(tmp_path / "dist", adversaries=("gender",), removal="ensemble")
    chief: dict = {}
    thread = threading.Thread(target=lambda: chief.update(
        D.run_chief(config, port=port, search_only=True, linger_s=5.0, log=lambda _: None)))
    thread.start()
    try:
        worker = D.run_worker(config, worker_id=0, plan_wait_s=60.0, log=lambda _: None)
    finally:
        thread.join(timeout=120)
    project = "acoustic-activation-gender-fused-ensemble/fold0"
    trials = [f"{i:04d}" for i in range(4)]  # the ensemble's weight over the quick grid's four lambdas
    assert worker["trials"] == {project: trials} and chief["projects"][project]["trials"] == 4
    checkpoints = {p: p.stat().st_mtime_ns for p in (tmp_path / "dist" / "work").rglob("trial_*/*")}
    record = run_cross_validation(tiny_config(tmp_path / "dist", adversaries=("gender",), removal="ensemble",
                                              resume=True), table=world.table).records[0]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "dist" / "work").rglob("trial_*/*")} == checkpoints
    assert record["removal"] == "ensemble" and "val_probe" in record["val"] and "gender" in record["attacks"]
