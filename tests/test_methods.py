"""The registry of removal methods (privemo.removal.methods): every command-line choice is a registered method, each
method's traits match what the hypermodel, the packed tuner, the experiment's keys and the post-hoc step do with it,
an unknown name is one line naming the choices, and the registry is read without Keras."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from privemo.removal.methods import (
    CACHED_REMOVALS,
    DEFAULT_REMOVAL,
    LAMBDA_REMOVALS,
    METHODS,
    PACKABLE_REMOVALS,
    POST_HOC,
    REMOVALS,
    RemovalMethod,
    removal_method,
)

ROOT = Path(__file__).resolve().parents[1]


def _hp(hypermodel):
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    return hp


# ---------------------------------------------------------------------------------------------------------------------
# The registry and the command line


def test_every_command_line_choice_is_a_registered_method():
    from privemo.cli.reproduce import build_parser

    action = next(a for a in build_parser()._actions if a.dest == "removal")
    assert tuple(action.choices) == REMOVALS == tuple(METHODS)
    assert action.default == DEFAULT_REMOVAL == "grl"
    for name, method in METHODS.items():
        assert method.name == name and removal_method(name) is method and removal_method(method) is method
        assert method.help and "\n" not in method.help
        assert f"{name} = {method.help}" in action.help
    assert [m.name for m in METHODS.values() if m.paper] == ["grl"]


def test_unknown_name_is_one_line_listing_the_choices():
    for bad in ("dropout", "GRL", None, 3):
        with pytest.raises(ValueError) as info:
            removal_method(bad)
        message = str(info.value)
        assert "\n" not in message and message.startswith("Invalid value received for argument `removal`")
        assert f"Received: removal={bad!r}" in message
        assert all(repr(name) in message for name in REMOVALS)
    from privemo.cli.reproduce import UserError, _check_args

    args = SimpleNamespace(corpus="demo", root=None, folds=5, epochs=None, patience=None, batch_size=None, jobs=None,
                           demo_size=None, repeats=1, pack=1, margin=0.03, only_fold=None, embeddings=None,
                           removal="dropout", adversary=["gender"], placement=["fused"], tensorboard=None,
                           out=None, dry_run=True)
    with pytest.raises(UserError, match=r"^--removal: Invalid value received for argument `removal`\. Expected one of"):
        _check_args(args)


def test_the_derived_lists_are_the_traits():
    assert POST_HOC == {name: (m.network, m.eraser) for name, m in METHODS.items() if m.posthoc}
    assert set(POST_HOC) == {"inlp", "leace", "ensemble_leace", "mmd_leace", "ensemble3_leace", "gradient_erasure"}
    assert LAMBDA_REMOVALS == ("grl", "grl_dann", "alternating", "ensemble", "ensemble_leace", "mmd", "mmd_leace",
                               "ensemble3_leace")
    assert CACHED_REMOVALS == ("grl", "grl_dann", "inlp", "leace", "gradient_erasure")
    assert PACKABLE_REMOVALS == ("grl",)
    assert {m.strength for m in METHODS.values()} == {"grl_lambda", "adversary_weight", "mmd_weight", None}
    # every method whose network trains against the attribute has a strength (issue 24: the same budget for all)
    assert all(m.lambda_tuned for m in METHODS.values() if m.trains_adversary)
    assert all(m.fused_only == m.posthoc and m.needs_adversary == (not m.paper) for m in METHODS.values())
    assert [name for name, m in METHODS.items() if not m.trains_adversary] == ["inlp", "leace", "gradient_erasure"]
    with pytest.raises(ValueError, match="`eraser`"):
        RemovalMethod("x", "a method", "baseline", eraser="pca")
    from privemo.removal.networks import NETWORKS
    from privemo.removal.posthoc import ERASERS

    assert {m.network for m in METHODS.values()} <= set(NETWORKS)
    assert {m.eraser for m in METHODS.values() if m.posthoc} <= set(ERASERS)


def test_the_registry_and_the_command_line_import_no_keras(tmp_path):
    code = ("import sys, privemo.removal, privemo.removal.methods, privemo.cli.reproduce; "
            "from privemo.removal import METHODS, removal_method; "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------------------
# Traits against behaviour


@pytest.mark.parametrize("name", REMOVALS)
def test_traits_match_what_the_hypermodel_does(name):
    from privemo.removal import AffineErasure, NullspaceProjection
    from privemo.search.grids import QUICK_GRID
    from privemo.search.hypermodel import packable
    from privemo.search.tuning import EmotionPrivacyHyperModel

    method = METHODS[name]
    cache: dict = {}
    hypermodel = EmotionPrivacyHyperModel(QUICK_GRID, adversary="gender", removal=name, model_cache=cache)
    assert hypermodel.method is method and hypermodel.removal == name
    # lambda_tuned: grl_lambda is declared (four trials per architecture of the quick grid) or not (one)
    assert ("grl_lambda" in hypermodel.grid) == method.lambda_tuned
    assert hypermodel.size == (4 if method.lambda_tuned else 1)
    # cacheable: the second build of the architecture reuses the first network
    first = hypermodel.build(_hp(hypermodel))
    assert (hypermodel.build(_hp(hypermodel)) is first) == method.cacheable == bool(cache)
    # posthoc: the network carries its eraser's layer "h"; trains_adversary: it has the attribute's output
    eraser_layer = {"inlp": NullspaceProjection, "leace": AffineErasure}.get(method.eraser)
    assert isinstance(first.get_layer("h"), (NullspaceProjection, AffineErasure)) == method.posthoc
    if eraser_layer is not None:
        assert isinstance(first.get_layer("h"), eraser_layer)
    assert ("gender" in first.output) == method.trains_adversary
    # packable
    assert packable(hypermodel) == method.packable
    # needs_adversary, fused_only
    if method.needs_adversary:
        with pytest.raises(ValueError, match="needs an `adversary`"):
            EmotionPrivacyHyperModel(QUICK_GRID, removal=name)
    else:
        assert EmotionPrivacyHyperModel(QUICK_GRID, removal=name).size == 1  # the baseline
    per_modality = dict(adversary="gender", removal=name, grl_placement="per_modality",
                        modalities=("acoustic", "lexical"))
    if method.fused_only:
        with pytest.raises(ValueError, match="grl_placement='fused'"):
            EmotionPrivacyHyperModel(QUICK_GRID, **per_modality)
    else:
        EmotionPrivacyHyperModel(QUICK_GRID, **per_modality)


@pytest.mark.parametrize("name", REMOVALS)
def test_traits_match_the_experiments_keys_settings_and_plan(name, tmp_path):
    from privemo.experiment.config import Condition, ExperimentConfig, run_settings
    from privemo.experiment.reporting import removal_note
    from privemo.search.grids import grid_size

    method = METHODS[name]
    condition = Condition("acoustic", "activation", "gender", removal=name)
    assert condition.method is method
    assert condition.key == "acoustic-activation-gender-fused" + ("" if method.paper else f"-{name}")
    config = ExperimentConfig(out_dir=str(tmp_path), removal=name)
    assert config.method is method
    assert ("removal" in run_settings(config)) == (not method.paper)
    note = removal_note([{"adversary": "gender", "removal": name}], "gender")
    assert (name in note) == (not method.paper) and bool(note) == (not method.paper)
    assert grid_size(config.grid_dict(), method.lambda_tuned) == (4 if method.lambda_tuned else 1)


def test_post_hoc_step_refuses_a_method_without_an_eraser():
    from privemo.removal.posthoc import erase_post_hoc

    with pytest.raises(ValueError, match="post-hoc removal method"):
        erase_post_hoc(None, None, None, method="grl", attribute="gender", learning_rate=1e-3, epochs=1, patience=1)
    with pytest.raises(ValueError, match="`removal`"):
        erase_post_hoc(None, None, None, method="dropout", attribute="gender", learning_rate=1e-3, epochs=1,
                       patience=1)
