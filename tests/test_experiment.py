"""The experiment layer on a tiny real run: conditions, per-job seeds, one outer fold of a baseline and a gender adversary
(tuned, trained, represented, attacked), per-fold JSON, resume from it, tables and manifest.

One module-scoped run (60-utterance demo corpus, quick grid, one epoch) is shared by the tests; one more single-job run
checks that a job's result does not depend on which jobs ran before it.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from privemo._io import _json_default, read_json
from privemo.corpora.demo import load_demo
from privemo.experiment import (
    MODALITY_SETS,
    Condition,
    ExperimentConfig,
    fold_seed,
    result_path,
    run,
    run_cross_validation,
)
from privemo.folds import speaker_folds
from privemo.grids import QUICK_GRID

SMALL = 6  # utterances per speaker: 60 utterances, 10 speakers, 5 sessions


def tiny_config(out_dir, **kw) -> ExperimentConfig:
    base = dict(modalities=("acoustic",), tasks=("activation",), adversaries=(None, "gender"), folds=(0,), epochs=1,
                patience=1, n_jobs=1, lambda_sweep=False, out_dir=str(out_dir), attack_epochs=3, demo_per_speaker=SMALL,
                verbose=0)
    base.update(kw)
    return ExperimentConfig(**base)


def as_json(obj):
    return json.loads(json.dumps(obj, default=_json_default))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("experiment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRIVEMO_CACHE", str(base / "cache"))
        mp.setenv("PRIVEMO_DATA", str(base / "data"))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        table = load_demo(n_per_speaker=SMALL, progress=False)  # into $PRIVEMO_DATA, where run() finds it again
        config = tiny_config(base / "out")
        records = run_cross_validation(config, table=table)
        yield SimpleNamespace(base=base, table=table, config=config, records=records,
                              timings=dict(run_cross_validation.last_timings),
                              fold=speaker_folds(table, n_folds=5, seed=0)[0])


# -- conditions and seeds (no training) -------------------------------------------------------------------------------
def test_condition_keys_are_unique_and_readable():
    config = ExperimentConfig(placements=("fused", "per_modality"), adversaries=(None, "gender", "speaker"))
    conditions = config.conditions() + config.sweep_conditions()
    keys = [c.key for c in conditions]
    assert len(keys) == len(set(keys))
    assert Condition("acoustic", "valence", None).key == "acoustic-valence-baseline"
    assert Condition("acoustic+lexical", "activation", "speaker", "per_modality").key == \
        "acoustic+lexical-activation-speaker-per_modality"
    assert Condition("acoustic", "activation", "gender", "fused", 0.75).key == "acoustic-activation-gender-fused-lambda0.75"
    # the placement is irrelevant without an adversary, so it is not part of the key; lambda is
    assert Condition("lexical", "valence", None, "per_modality").key == Condition("lexical", "valence", None).key
    assert len({c.key for c in config.sweep_conditions()}) == 3  # quick grid: lambda 1 is the table's own gender run


def test_conditions_skip_per_modality_for_a_single_modality():
    config = ExperimentConfig(modalities=("acoustic", "lexical", "acoustic+lexical"), placements=("fused", "per_modality"))
    conditions = config.conditions()
    per = [c for c in conditions if c.placement == "per_modality" and c.adversary]
    assert per and all(len(c.modalities) == 2 for c in per)
    # per modality row: 2 tasks x (baseline + 2 adversaries x placements)
    count = {m: sum(c.modality == m for c in conditions) for m in MODALITY_SETS}
    assert count == {"acoustic": 2 * (1 + 2), "lexical": 2 * (1 + 2), "acoustic+lexical": 2 * (1 + 2 * 2)}
    assert ExperimentConfig(modalities=("acoustic",), placements=("per_modality",), adversaries=("gender",)).conditions() == []
    with pytest.raises(ValueError, match="Invalid modality 'video'"):
        ExperimentConfig(modalities=("video",)).conditions()
    with pytest.raises(ValueError, match="`grid`"):
        ExperimentConfig(grid="huge").grid_dict()


def test_sweep_conditions_only_with_a_gender_adversary():
    assert ExperimentConfig(adversaries=(None, "speaker")).sweep_conditions() == []
    assert ExperimentConfig(lambda_sweep=False).sweep_conditions() == []
    sweep = ExperimentConfig(grid="paper").sweep_conditions()
    assert [c.grl_lambda for c in sweep] == [0.3, 0.5, 0.75, 1.0]
    assert ExperimentConfig(grid="paper").sweep_reuses() is None
    assert {(c.modality, c.task, c.adversary, c.placement) for c in sweep} == {("acoustic", "activation", "gender", "fused")}
    # The quick grid fixes lambda = 1: the table's gender run is that sweep point and is reused, not rerun.
    quick = ExperimentConfig()
    assert [c.grl_lambda for c in quick.sweep_conditions()] == [0.3, 0.5, 0.75]
    assert quick.sweep_reuses() == (Condition("acoustic", "activation", "gender", "fused"), 1.0)
    assert ExperimentConfig(tasks=("valence",)).sweep_reuses() is None


def test_fold_seed_depends_on_condition_fold_and_seed_not_on_order():
    config = ExperimentConfig()
    jobs = [(k, c) for k in range(5) for c in config.conditions()]
    forward = {(k, c.key): fold_seed(config, c, k) for k, c in jobs}
    backward = {(k, c.key): fold_seed(config, c, k) for k, c in reversed(jobs)}
    assert forward == backward
    assert len(set(forward.values())) == len(forward)  # distinct per job
    assert all(0 <= s < 2**31 - 1 for s in forward.values())
    c = config.conditions()[0]
    other = ExperimentConfig(seed=1)
    assert fold_seed(other, c, 0) != fold_seed(config, c, 0)
    assert fold_seed(ExperimentConfig(modalities=("acoustic",)), c, 0) == fold_seed(config, c, 0)  # not the job set


def test_config_defaults_resolve_by_grid():
    from privemo.experiment import EPOCHS, LEARNING_RATE, PATIENCE

    quick, paper = ExperimentConfig(grid="quick"), ExperimentConfig(grid="paper")
    assert (quick.resolved_epochs(), quick.resolved_patience(), quick.resolved_learning_rate()) == \
        (EPOCHS["quick"], PATIENCE["quick"], LEARNING_RATE["quick"])
    assert (paper.resolved_epochs(), paper.resolved_patience()) == (EPOCHS["paper"], PATIENCE["paper"])
    assert ExperimentConfig(epochs=2, patience=1).resolved_epochs() == 2


# -- the tiny real run ------------------------------------------------------------------------------------------------
def test_records_have_the_expected_content(world):
    base, adv = world.records
    assert (base["condition"], adv["condition"]) == ("acoustic-activation-baseline", "acoustic-activation-gender-fused")
    for r, condition in zip(world.records, world.config.conditions()):
        assert {"corpus", "fold", "modalities", "modality", "task", "adversary", "placement", "grl_lambda", "condition",
                "seed", "grid", "best_hp", "val", "test", "n", "trials", "attacks", "timings"} <= set(r)
        assert r["corpus"] == "demo" and r["fold"] == 0 and r["task"] == "activation" and r["grid"] == "quick"
        assert r["seed"] == fold_seed(world.config, condition, 0)
        assert r["trials"] == 1  # the quick grid has one configuration
        assert 0.0 <= r["test"]["emotion_uar"] <= 1.0 and r["test"]["n"] == len(world.fold.test)
        assert 0.0 <= r["val"]["val_emotion_uar"] <= 1.0
        assert {"tune_s", "represent_s", "attack_s", "total_s"} <= set(r["timings"])
        gender = r["attacks"]["gender"]
        assert {"mlp", "logreg", "svm"} <= set(gender["results"])
        assert gender["strongest_test_uar"] == gender["results"][gender["strongest"]]["test_uar"]
        assert gender["max_test_uar"] >= gender["strongest_test_uar"]
    assert base["adversary"] is None and base["grl_lambda"] is None
    assert base["best_hp"] == {k: v[0] for k, v in QUICK_GRID.items() if k != "grl_lambda"}
    assert adv["adversary"] == "gender" and adv["grl_lambda"] == 1.0 and adv["best_hp"]["grl_lambda"] == 1.0
    assert "val_gender_uar" in adv["val"]
    # speaker-identity and membership attacks run for the baseline (Table 1b's comparison), not for a gender adversary
    assert "speaker" in base["attacks"] and 0.0 <= base["membership"]["best_accuracy"] <= 1.0
    assert "speaker" not in adv["attacks"] and "membership" not in adv
    assert base["seed"] != adv["seed"]
    assert {"acoustic_features_s", "training_and_attacks_s", "cross_validation_s"} <= set(world.timings)


def test_fold_is_speaker_disjoint_and_attackers_use_its_parts(world):
    table, fold = world.table, world.fold
    spk = {name: set(table.speaker.iloc[idx]) for name, idx in fold._asdict().items()}
    assert not (spk["train"] & spk["validation"]) and not (spk["train"] & spk["test"]) and not (spk["validation"] & spk["test"])
    assert spk["test"] == {"Ses01F", "Ses01M"}  # demo folds are sessions; fold 0 tests session 1
    for r in world.records:
        assert r["n"] == {"train": len(fold.train), "validation": len(fold.validation), "test": len(fold.test)}
        # the gender attacker is trained on training speakers, selected on validation speakers, scored on test speakers
        g = r["attacks"]["gender"]
        assert (g["n_train"], g["n_val"], g["n_test"]) == (len(fold.train), len(fold.validation), len(fold.test))
    mi = world.records[0]["membership"]
    assert mi["n_members_available"] == len(fold.train) and mi["n_nonmembers_available"] == len(fold.test)
    assert mi["n_members"] == mi["n_nonmembers"]  # balanced


def test_per_fold_json_files_hold_the_records(world):
    for r, condition in zip(world.records, world.config.conditions()):
        path = result_path(world.config, condition, 0)
        assert path == world.base / "out" / "folds" / condition.key / "fold0.json"
        assert read_json(path) == as_json(r)
    leftovers = [p for p in (world.base / "out").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_resume_reads_finished_folds_and_ignores_temporary_files(world):
    paths = [result_path(world.config, c, 0) for c in world.config.conditions()]
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths]
    # what a write killed half-way leaves behind: a temporary sibling, never the final name
    junk = paths[0].parent / ".fold0.json.deadbeef.tmp"
    junk.write_text('{"corpus": "demo", "fold": 0, "test": {"emotion_')
    config = tiny_config(world.base / "out", resume=True)
    again = run_cross_validation(config, table=world.table)
    assert [as_json(r) for r in again] == [as_json(r) for r in world.records]
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths] == before  # nothing rewritten
    assert run_cross_validation.last_timings["training_and_attacks_s"] < 5.0  # nothing retrained (a job takes ~10 s)
    junk.unlink()


def test_a_jobs_result_does_not_depend_on_the_jobs_before_it(world):
    """The gender job alone, in a fresh folder, gives the same numbers as after the baseline in the shared run."""
    alone = run_cross_validation(tiny_config(world.base / "alone", adversaries=("gender",)), table=world.table)
    assert len(alone) == 1
    a, b = as_json(alone[0]), as_json(world.records[1])
    for key in ("seed", "best_hp", "val", "test", "n", "grl_lambda"):
        assert a[key] == b[key], key
    for attacker in ("mlp", "logreg", "svm"):
        assert a["attacks"]["gender"]["results"][attacker] == b["attacks"]["gender"]["results"][attacker], attacker


def test_run_writes_tables_manifest_and_summary(world):
    config = tiny_config(world.base / "out", resume=True)  # the shared run's fold results are reused
    summary = run(config)
    out = world.base / "out"
    for name in ("table1a.md", "table1a.csv", "manifest.json", "folds.json"):
        assert (out / name).is_file(), name
    assert not (out / "table1b.md").exists()  # no speaker adversary was run
    assert not (out / "lambda_sweep.png").exists()
    csv = (out / "table1a.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("modality,corpus,Activation Emo (baseline),Activation Emo (gender adv.)")
    assert csv[1].startswith("acoustic,demo,")
    emo = world.records[0]["test"]["emotion_uar"]
    assert f"{emo:.3f} ± 0.000" in csv[1]
    assert read_json(out / "folds.json") == [as_json(r) for r in world.records]

    manifest = read_json(out / "manifest.json")
    assert manifest["seed"] == 0
    assert manifest["config"] == as_json(config.to_dict())
    for package in ("privemo", "tensorflow", "keras", "keras-tuner", "numpy"):
        assert manifest["versions"][package], package
    assert {"load_corpus_s", "acoustic_features_s", "cross_validation_s", "reporting_s", "total_s"} <= set(manifest["timings"])
    assert manifest["grid"]["main"] == as_json(QUICK_GRID)
    assert set(manifest["fold_timings"]) == {f"{r['condition']}/fold0" for r in world.records}
    assert any("CPU" in d for d in manifest["devices"])
    assert "table1a" in summary and "acoustic" in summary
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_bad_fold_index_is_a_user_error(world):
    with pytest.raises(ValueError, match=r"Invalid fold index \[7\]") as info:
        run_cross_validation(tiny_config(world.base / "bad", folds=(7,)), table=world.table)
    assert getattr(info.value, "user_error", False)
    with pytest.raises(ValueError, match="cannot make 6 speaker-independent folds") as info:
        run_cross_validation(tiny_config(world.base / "bad", n_folds=6), table=world.table)
    assert getattr(info.value, "user_error", False)
    no_text = world.table.copy()
    no_text.loc[0, "transcript"] = None
    with pytest.raises(ValueError, match="1 of 60 utterances have no transcript") as info:
        run_cross_validation(tiny_config(world.base / "bad", modalities=("lexical",)), table=no_text)
    assert getattr(info.value, "user_error", False)
    assert not (world.base / "bad" / "folds").exists()


def test_resume_refuses_results_made_with_other_settings(world):
    out = world.base / "out"
    paths = [result_path(world.config, c, 0) for c in world.config.conditions()]
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths]
    with pytest.raises(ValueError, match=r"settings\.json: cannot resume: .*epochs: 1 there, 2 now") as info:
        run_cross_validation(tiny_config(out, resume=True, epochs=2), table=world.table)
    assert getattr(info.value, "user_error", False)
    # Without the run's settings file, each finished fold record still carries its own.
    settings = out / "work" / "settings.json"
    saved = settings.read_text(encoding="utf-8")
    settings.unlink()
    try:
        with pytest.raises(ValueError, match=r"fold0\.json: cannot resume: .*learning_rate: 0\.003 there, 0\.01 now"):
            run_cross_validation(tiny_config(out, resume=True, learning_rate=0.01), table=world.table)
    finally:
        settings.write_text(saved, encoding="utf-8")
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths] == before  # nothing rewritten
    assert all(read_json(p)["settings"]["epochs"] == 1 for p in paths)


def test_affinity_queue_gives_workers_the_networks_they_traced():
    from privemo.experiment import _AffinityQueue, network_key

    a = Condition("acoustic", "activation", None)
    b = Condition("lexical", "activation", None)
    a_valence = Condition("acoustic", "valence", None)
    jobs = [(k, a) for k in range(3)] + [(k, b) for k in range(2)] + [(0, a_valence)]
    queue = _AffinityQueue(jobs)
    first, second = queue.take(None), queue.take(None)
    assert network_key(first[1]) != network_key(second[1])  # two fresh workers start on different networks
    queue.ran(11, first)
    queue.ran(22, second)
    taken = [queue.take(11) for _ in range(3)]  # worker 11 traced the acoustic network: it gets the acoustic jobs
    assert [network_key(j[1]) for j in taken] == [network_key(a)] * 3 and (0, a_valence) in taken
    assert queue.take(22) == (1, b)
    assert queue.take(11) is None and queue.take(22) is None
    assert sorted(map(str, jobs)) == sorted(map(str, [first, second, *taken, (1, b)]))
