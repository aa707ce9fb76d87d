"""The experiment layer on a tiny real run: conditions, per-job seeds, one outer fold of a baseline and a gender adversary
(tuned, trained, represented, attacked), per-fold JSON, resume from it, tables and manifest.

One module-scoped run (60-utterance demo corpus, quick grid, one epoch) is shared by the tests; one more single-job run
checks that a job's result does not depend on which jobs ran before it.
"""

from __future__ import annotations

import contextlib
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from privemo._util.io import _json_default, read_json
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
from privemo._util.validation import UserError
from privemo.experiment.protocol import write_reports
from privemo.data.folds import speaker_folds
from privemo.search.grids import QUICK_GRID

SMALL = 6  # utterances per speaker: 60 utterances, 10 speakers, 5 sessions


def tiny_config(out_dir, **kw) -> ExperimentConfig:
    """A one-fold, one-epoch run on the SMALL demo corpus (``kw`` overrides); tests/test_removal_option.py uses it too."""
    base = dict(modalities=("acoustic",), tasks=("activation",), adversaries=(None, "gender"), folds=(0,), epochs=1,
                patience=1, n_jobs=1, out_dir=str(out_dir), attack_epochs=3, demo_per_speaker=SMALL,
                verbose=0)
    base.update(kw)
    return ExperimentConfig(**base)


def as_json(obj):
    return json.loads(json.dumps(obj, default=_json_default))


@contextlib.contextmanager
def tiny_demo(base):
    """For a module-scoped world: PRIVEMO_CACHE and PRIVEMO_DATA under ``base`` while it lasts, and the SMALL demo corpus
    synthesised into $PRIVEMO_DATA (where run() finds it again) as the table it yields."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRIVEMO_CACHE", str(base / "cache"))
        mp.setenv("PRIVEMO_DATA", str(base / "data"))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        yield load_demo(n_per_speaker=SMALL, progress=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("experiment")
    with tiny_demo(base) as table:
        config = tiny_config(base / "out")
        records, timings = run_cross_validation(config, table=table)
        yield SimpleNamespace(base=base, table=table, config=config, records=records, timings=timings,
                              fold=speaker_folds(table, n_folds=5, seed=0)[0])


# -- conditions and seeds (no training) -------------------------------------------------------------------------------
def test_condition_keys_are_unique_and_readable():
    config = ExperimentConfig(placements=("fused", "per_modality"), adversaries=(None, "gender", "speaker"), repeats=2)
    conditions = config.conditions()
    keys = [c.key for c in conditions]
    assert len(keys) == len(set(keys)) == 2 * len(ExperimentConfig(placements=("fused", "per_modality")).conditions())
    assert Condition("acoustic", "valence", None).key == "acoustic-valence-baseline"
    assert Condition("acoustic+lexical", "activation", "speaker", "per_modality").key == \
        "acoustic+lexical-activation-speaker-per_modality"
    assert Condition("acoustic", "activation", "gender", "fused", repeat=2).key == "acoustic-activation-gender-fused-r2"
    # the placement is irrelevant without an adversary, so it is not part of the key
    assert Condition("lexical", "valence", None, "per_modality").key == Condition("lexical", "valence", None).key


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


def test_quick_grid_tunes_the_papers_four_lambdas():
    from privemo.search.grids import PAPER_GRID

    assert QUICK_GRID["grl_lambda"] == PAPER_GRID["grl_lambda"] == (0.3, 0.5, 0.75, 1.0)


def test_fold_seed_pairs_adversaries_and_depends_on_modality_task_fold_repeat_and_seed_only():
    config = ExperimentConfig(repeats=2)
    jobs = [(k, c) for k in range(5) for c in config.conditions()]
    forward = {(k, c.key): fold_seed(config, c, k) for k, c in jobs}
    backward = {(k, c.key): fold_seed(config, c, k) for k, c in reversed(jobs)}
    assert forward == backward
    pairs = {(k, c.modality, c.task, c.repeat): set() for k, c in jobs}
    for k, c in jobs:
        pairs[(k, c.modality, c.task, c.repeat)].add(fold_seed(config, c, k))
    assert all(len(seeds) == 1 for seeds in pairs.values())  # baseline, gender and speaker share one seed
    assert len({next(iter(s)) for s in pairs.values()}) == len(pairs)  # distinct per (modality, task, fold, repeat)
    assert all(0 <= s < 2**31 - 1 for s in forward.values())
    c = config.conditions()[0]
    assert fold_seed(ExperimentConfig(seed=1), c, 0) != fold_seed(config, c, 0)
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
        assert {"corpus", "fold", "repeat", "modalities", "modality", "task", "adversary", "placement", "grl_lambda",
                "condition", "seed", "init_seed", "grid", "selection", "best_hp", "val", "test", "n", "trials",
                "history", "best_epoch", "epochs_run", "max_epochs", "attacks", "membership", "timings"} <= set(r)
        assert r["corpus"] == "demo" and r["fold"] == 0 and r["task"] == "activation" and r["grid"] == "quick"
        assert r["init_seed"] == r["seed"] == fold_seed(world.config, condition, 0) and r["repeat"] == 0
        assert 0.0 <= r["test"]["emotion_uar"] <= 1.0 and r["test"]["n"] == len(world.fold.test)
        assert 0.0 <= r["val"]["val_emotion_uar"] <= 1.0
        assert {"tune_s", "represent_s", "attack_s", "total_s"} <= set(r["timings"])
        assert r["max_epochs"] == 1 and r["best_epoch"] == 0 and len(r["history"]["val_objective"]) == 1
        gender = r["attacks"]["gender"]
        assert {"mlp", "logreg", "svm"} <= set(gender["results"])
        assert gender["max_test_uar"] >= gender["strongest_test_uar"] - 1e-12
        assert r["schema"] == 2 and r["test_speakers"] == ["Ses01F", "Ses01M"]
        assert not set(r["test_speakers"]) & set(r["validation_speakers"])
        # privacy figures on the test speakers only: one female and one male test speaker cannot support an EER
        verification = r["attacks"]["speaker_verification"]
        assert set(verification["eval_speakers"]) <= set(r["test_speakers"])
        assert verification["eer"] is None and "one per gender" in verification["reason"]
        assert gender["ci_method"].startswith("cluster bootstrap over test speakers") and gender["n_test_speakers"] == 2
        low, high = r["test"]["emotion_uar_ci"]
        assert low <= r["test"]["emotion_uar"] <= high and r["test"]["n_speakers"] == 2
        assert 0.0 <= r["membership"]["auc"] <= r["membership"]["auc_upper_bound"] <= 1.0  # whatever the adversary
        assert r["degenerate"] == all(t["degenerate"] for t in r["trials"])
        selected = [t for t in r["trials"] if t["hp"] == r["best_hp"]]
        assert len(selected) == 1 and selected[0]["test_emotion_uar"] == r["test"]["emotion_uar"]
    # the baseline has its one configuration; the adversary tries the paper's four lambda values, selected on validation
    assert base["adversary"] is None and base["grl_lambda"] is None and len(base["trials"]) == 1
    assert base["best_hp"] == {k: v[0] for k, v in QUICK_GRID.items() if k != "grl_lambda"}
    assert sorted(t["grl_lambda"] for t in adv["trials"]) == [0.3, 0.5, 0.75, 1.0]
    assert adv["grl_lambda"] == adv["best_hp"]["grl_lambda"]
    best = max(adv["trials"], key=lambda t: t["val_objective"])
    assert best["grl_lambda"] == adv["grl_lambda"]
    for t in adv["trials"]:  # the probe-based objective: emotion minus the fresh probe's excess over chance
        assert t["val_objective"] == pytest.approx(t["val_emotion_uar"] - max(0.0, t["val_privacy"] - 0.5))
    assert "val_probe" in adv["val"] and "val_gender_uar" in adv["val"]
    assert base["seed"] == adv["seed"]  # paired: same initial weights of the shared layers and the same batch order
    assert {"acoustic_features_s", "training_and_attacks_s", "cross_validation_s"} <= set(world.timings)


def test_fold_is_speaker_disjoint_and_attackers_use_its_parts(world):
    table, fold = world.table, world.fold
    spk = {name: set(table.speaker.iloc[idx]) for name, idx in fold._asdict().items()}
    assert not (spk["train"] & spk["validation"]) and not (spk["train"] & spk["test"]) and not (spk["validation"] & spk["test"])
    assert spk["test"] == {"Ses01F", "Ses01M"}  # demo folds are sessions; fold 0 tests session 1
    for r in world.records:
        n = r["n"]
        assert n["train"] + n["heldout"] == len(fold.train) and n["heldout"] > 0
        assert (n["validation"], n["test"]) == (len(fold.validation), len(fold.test))
        # the gender attacker is trained on training speakers, selected on validation speakers, scored on test speakers
        g = r["attacks"]["gender"]
        assert (g["n_train"], g["n_val"], g["n_test"]) == (len(fold.train), len(fold.validation), len(fold.test))
        # membership: members = the rows trained on, non-members = the same speakers' held-out rows
        mi = r["membership"]
        assert mi["n_members_available"] == n["train"] and mi["n_nonmembers_available"] == n["heldout"]
    assert world.records[0]["n"] == world.records[1]["n"]


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
    again, timings = run_cross_validation(config, table=world.table)
    assert [as_json(r) for r in again] == [as_json(r) for r in world.records]
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths] == before  # nothing rewritten
    assert timings["training_and_attacks_s"] < 5.0  # nothing retrained (a job takes ~10 s)
    junk.unlink()


def test_a_jobs_result_does_not_depend_on_the_jobs_before_it(world):
    """The gender job alone, in a fresh folder, gives the same numbers as after the baseline in the shared run."""
    alone = run_cross_validation(tiny_config(world.base / "alone", adversaries=("gender",)), table=world.table).records
    assert len(alone) == 1
    a, b = as_json(alone[0]), as_json(world.records[1])
    for key in ("seed", "best_hp", "val", "test", "n", "grl_lambda", "trials", "history"):
        assert a[key] == b[key], key
    for attacker in ("mlp", "logreg", "svm"):
        assert a["attacks"]["gender"]["results"][attacker] == b["attacks"]["gender"]["results"][attacker], attacker


def test_packed_trials_give_the_records_of_trials_trained_one_at_a_time(world):
    """``pack=4``: the four lambda trials of the gender job in one compiled step (GRUs merged on a CPU) select the same
    trial and score what the unpacked run scored, to float rounding."""
    packed = run_cross_validation(tiny_config(world.base / "packed", adversaries=("gender",), pack=4),
                                  table=world.table).records
    a, b = as_json(packed[0]), as_json(world.records[1])
    assert a["best_hp"] == b["best_hp"] and a["grl_lambda"] == b["grl_lambda"]
    assert len(a["trials"]) == len(b["trials"]) == 4
    for ours, theirs in zip(sorted(a["trials"], key=lambda t: t["grl_lambda"]),
                            sorted(b["trials"], key=lambda t: t["grl_lambda"])):
        assert (ours["hp"], ours["epochs_run"], ours["best_epoch"]) == (theirs["hp"], theirs["epochs_run"],
                                                                       theirs["best_epoch"])
        np.testing.assert_allclose(_numbers(ours), _numbers(theirs), atol=1e-4)
    np.testing.assert_allclose(_numbers(a["val"]), _numbers(b["val"]), atol=1e-4)
    np.testing.assert_allclose(_numbers(a["test"]), _numbers(b["test"]), atol=1e-4)


def _numbers(tree) -> list[float]:
    """The numbers of a JSON tree, in key order."""
    if isinstance(tree, dict):
        return [x for key in sorted(tree) for x in _numbers(tree[key])]
    if isinstance(tree, list):
        return [x for item in tree for x in _numbers(item)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def manifest_git_ok(manifest: dict) -> bool:
    """The manifest names the commit of a git checkout and whether privemo's source had uncommitted changes."""
    git = manifest["git"]
    return git["commit"] is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool))


def test_run_writes_tables_manifest_and_summary(world):
    config = tiny_config(world.base / "out", resume=True)  # the shared run's fold results are reused
    summary = run(config)
    out = world.base / "out"
    for name in ("table1a.md", "table1a.csv", "manifest.json", "folds.json", "reference.csv", "lambda_sweep.csv",
                 "claims.csv", "claims.md"):
        assert (out / name).is_file(), name
    assert not (out / "table1b.md").exists()  # no speaker adversary was run
    csv = (out / "table1a.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("modality,corpus,Activation Emo (linear ref.),Activation Emo (baseline),"
                             "Activation Emo (gender adv.)")
    assert "Activation λ per fold (gender adv.)" in csv[0] and "Activation n" in csv[0]
    reference = (out / "reference.csv").read_text(encoding="utf-8").splitlines()
    assert reference[0].startswith("corpus,modality,task,uar_mean,uar_std") and reference[1].startswith(
        "demo,acoustic,activation,")
    sweep = (out / "lambda_sweep.csv").read_text(encoding="utf-8")
    base, adv = world.records
    # the trade-off draws every lambda from a network that learnt something (one-epoch networks rarely do)
    learnt = [t for t in adv["trials"] if not t["degenerate"]]
    assert sweep.count("\ndemo,acoustic,activation,gender,") == len({t["grl_lambda"] for t in learnt})
    assert ("\ndemo,acoustic,activation,none,0.0," in sweep) == (not base["trials"][0]["degenerate"])
    assert (out / "lambda_sweep.png").is_file() == bool(learnt)
    claims = (out / "claims.csv").read_text(encoding="utf-8").splitlines()
    assert claims[0].startswith("corpus,claim,modality,task,adversary,metric,direction,baseline,adversarial,difference,"
                                "ci_low,ci_high,p,n,mdd80,margin,p_equivalence,verdict")
    assert all(",n/a," in line for line in claims[1:])  # one fold: no test over folds
    assert manifest_git_ok(read_json(out / "manifest.json"))
    # the tables and claims recompute from the records alone, byte for byte
    written = {name: (out / name).read_bytes() for name in ("table1a.md", "table1a.csv", "claims.csv", "claims.md",
                                                            "lambda_sweep.csv")}
    write_reports(out, margin=config.margin, seed=config.seed)
    assert {name: (out / name).read_bytes() for name in written} == written
    assert csv[1].startswith("acoustic,demo,")
    emo = world.records[0]["test"]["emotion_uar"]
    assert f"{emo:.3f} ± 0.000" in csv[1]
    assert read_json(out / "folds.json") == [as_json(r) for r in world.records]

    manifest = read_json(out / "manifest.json")
    assert manifest["seed"] == 0
    assert manifest["config"] == as_json(config.to_dict())
    for package in ("privemo", "tensorflow", "keras", "keras-tuner", "numpy"):
        assert manifest["versions"][package], package
    assert {"load_corpus_s", "acoustic_features_s", "cross_validation_s", "reference_s", "reporting_s",
            "total_s"} <= set(manifest["timings"])
    assert manifest["grid"]["main"] == as_json(QUICK_GRID)
    assert set(manifest["fold_timings"]) == {f"{r['condition']}/fold0" for r in world.records}
    assert any("CPU" in d for d in manifest["devices"])
    assert "table1a" in summary and "acoustic" in summary
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_bad_fold_index_is_a_user_error(world):
    with pytest.raises(ValueError, match=r"Invalid fold index \[7\]") as info:
        run_cross_validation(tiny_config(world.base / "bad", folds=(7,)), table=world.table)
    assert isinstance(info.value, UserError)
    with pytest.raises(ValueError, match="cannot make 6 speaker-independent folds") as info:
        run_cross_validation(tiny_config(world.base / "bad", n_folds=6), table=world.table)
    assert isinstance(info.value, UserError)
    no_text = world.table.copy()
    no_text.loc[0, "transcript"] = None
    with pytest.raises(ValueError, match="1 of 60 utterances have no transcript") as info:
        run_cross_validation(tiny_config(world.base / "bad", modalities=("lexical",)), table=no_text)
    assert isinstance(info.value, UserError)
    assert not (world.base / "bad" / "folds").exists()


def test_resume_refuses_results_made_with_other_settings(world):
    out = world.base / "out"
    paths = [result_path(world.config, c, 0) for c in world.config.conditions()]
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths]
    with pytest.raises(ValueError, match=r"settings\.json: cannot resume: .*epochs: 1 there, 2 now") as info:
        run_cross_validation(tiny_config(out, resume=True, epochs=2), table=world.table)
    assert isinstance(info.value, UserError)
    # Without the run's settings file, each finished fold record still carries its own.
    settings = out / "work" / "settings.json"
    saved = settings.read_text(encoding="utf-8")
    settings.unlink()
    try:
        with pytest.raises(ValueError, match=r"fold0\.json: cannot resume: .*learning_rate: 0\.001 there, 0\.01 now"):
            run_cross_validation(tiny_config(out, resume=True, learning_rate=0.01), table=world.table)
    finally:
        settings.write_text(saved, encoding="utf-8")
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths] == before  # nothing rewritten
    assert all(read_json(p)["settings"]["epochs"] == 1 for p in paths)


def test_resume_refuses_records_of_an_older_schema(world, tmp_path):
    import shutil

    out = tmp_path / "old"
    shutil.copytree(world.base / "out" / "folds", out / "folds")
    path = result_path(world.config, world.config.conditions()[0], 0)
    old = out / path.relative_to(world.base / "out")
    record = read_json(old)
    del record["schema"]  # what privemo wrote before record schema 2
    old.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(UserError, match=r"fold0\.json: cannot resume: made by an older privemo \(record schema 1, "
                                        r"this privemo writes schema 2.*Rerun without --resume"):
        run_cross_validation(tiny_config(out, resume=True), table=world.table)


def test_affinity_queue_gives_workers_the_networks_they_traced():
    from privemo.experiment.workers import AffinityQueue, network_key

    a = Condition("acoustic", "activation", None)
    b = Condition("lexical", "activation", None)
    a_valence = Condition("acoustic", "valence", None)
    jobs = [(k, a) for k in range(3)] + [(k, b) for k in range(2)] + [(0, a_valence)]
    queue = AffinityQueue(jobs)
    first, second = queue.take(None), queue.take(None)
    assert network_key(first[1]) != network_key(second[1])  # two fresh workers start on different networks
    queue.ran(11, first)
    queue.ran(22, second)
    taken = [queue.take(11) for _ in range(3)]  # worker 11 traced the acoustic network: it gets the acoustic jobs
    assert [network_key(j[1]) for j in taken] == [network_key(a)] * 3 and (0, a_valence) in taken
    assert queue.take(22) == (1, b)
    assert queue.take(11) is None and queue.take(22) is None
    assert sorted(map(str, jobs)) == sorted(map(str, [first, second, *taken, (1, b)]))


def test_reference_is_fitted_on_exactly_the_networks_training_rows(world):
    """reference.csv: the linear reference trains on the training speakers minus the membership hold-out and is not
    refitted on the validation speakers, which the networks only early-stop on."""
    from privemo.experiment.protocol import holdout_rows, linear_reference_frame, plan_run, prepare_corpus
    from privemo.experiment.reference import linear_reference

    config = tiny_config(world.base / "ref")
    table, folds, fold_ids, _ = plan_run(config)
    data = prepare_corpus(table, config)
    frame = linear_reference_frame(config, table)
    chosen = [folds[k]._replace(train=holdout_rows(data, folds[k], config)[0]) for k in fold_ids]
    assert all(len(c.train) < len(folds[k].train) for c, k in zip(chosen, fold_ids))  # the hold-out is left out
    labels = data.emotion["activation"]
    own = linear_reference(table, labels, chosen, "acoustic", acoustic=data.acoustic, refit=False)
    assert frame.uar_mean.iloc[0] == pytest.approx(own["uar_mean"], abs=1e-12)


def test_utterance_normalisation_trains_as_it_ships(world):
    """normalization="utterance" feeds every utterance z-normalised on its own (privemo.encode's deployment scheme) and
    is part of the run's settings, so a resumed run never mixes schemes; the default keeps the settings of older runs."""
    from privemo.experiment.config import run_settings
    from privemo.experiment.protocol import plan_run, prepare_corpus

    config = tiny_config(world.base / "utt", normalization="utterance")
    table = plan_run(config)[0]
    data = prepare_corpus(table, config)
    assert data.acoustic.mode == "utterance"
    np.testing.assert_allclose(data.acoustic[0].mean(axis=0), 0.0, atol=1e-4)
    assert run_settings(config)["normalization"] == "utterance"
    assert "normalization" not in run_settings(tiny_config(world.base / "spk"))
