"""The known-answer leakage benchmark (benchmarks/leakage.py) end to end at its quick size, the pure helpers of the
demo comparison (benchmarks/removal_demo.py), the GPU check (benchmarks/gpu_check.py, its CPU part) and the cost-model
check (benchmarks/cost_check.py) on a tiny run."""

from __future__ import annotations

import csv
import json
import importlib.util
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_COLUMNS = ("method", "n_runs", "emotion_uar_mean", "emotion_uar_std", "head_uar_mean", "mlp_mean", "logreg_mean",
                   "svm_mean", "hgb_mean", "attacker_max_mean", "attacker_max_std", "attacker_selected_mean",
                   "attacker_selected_std", "lambdas", "goal", "converged", "capped", "best_epochs")
RUN_COLUMNS = ("method", "seed", "emotion_uar", "head_uar", "mlp", "logreg", "svm", "hgb", "attacker_max",
               "attacker_selected", "attacker_max_name", "attacker_selected_name", "lambda", "lambda_trials",
               "val_objective", "trial_epochs", "best_epoch", "epochs_run", "max_epochs", "converged", "capped")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


@pytest.fixture(scope="module")
def leakage():
    return _load("leakage_benchmark_cli", ROOT / "benchmarks" / "leakage.py")


def test_quick_leakage_with_mmd_writes_every_column(leakage, tmp_path, monkeypatch):
    out = tmp_path / "leakage.csv"
    assert leakage.main(["--quick", "--methods", "baseline,mmd", "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        summary = list(reader)
    assert set(SUMMARY_COLUMNS) <= set(reader.fieldnames)
    assert [r["method"] for r in summary] == ["baseline", "mmd"]
    for r in summary:
        values = {m: float(r[f"{m}_mean"]) for m in ("emotion_uar", "mlp", "logreg", "svm", "hgb", "attacker_max",
                                                    "attacker_selected")}
        assert all(0.0 <= v <= 1.0 for v in values.values())
        # the strongest attacker is the best of the four, the validation-selected one is one of them
        assert values["attacker_max"] == max(values[a] for a in ("mlp", "logreg", "svm", "hgb"))
        assert values["attacker_selected"] <= values["attacker_max"]
        assert r["goal"] in ("True", "False")
    base, mmd = summary
    assert base["head_uar_mean"] == "" and base["lambdas"] == ""  # no adversary head, no lambda
    assert 0.0 <= float(mmd["head_uar_mean"]) <= 1.0  # MMD's monitor head
    with open(out.with_name("leakage_runs.csv"), newline="") as fh:
        reader = csv.DictReader(fh)
        runs = list(reader)
    assert set(RUN_COLUMNS) <= set(reader.fieldnames)
    mmd_run = next(r for r in runs if r["method"] == "mmd")
    # lambda tuned on validation over the quick grid: the kept value has the best validation objective of the trials
    trials = dict(t.split(":") for t in mmd_run["lambda_trials"].split(";"))
    assert [float(v) for v in trials] == [0.3, 1.0]
    best = max(trials, key=lambda v: float(trials[v]))
    assert float(mmd_run["lambda"]) == float(best)
    assert float(mmd_run["val_objective"]) == pytest.approx(float(trials[best]), abs=1e-4)
    assert mmd_run["attacker_selected_name"] in ("mlp", "logreg", "svm", "hgb")
    # the README renders a regenerated variant from its own file and manifest, the other from the first run's
    import readme_sections

    synthetic = tmp_path / "removal" / "synthetic"
    synthetic.mkdir(parents=True)
    for variant in ("leakage", "leakage_confound"):  # the quick run stands in for both variants
        for suffix in (".csv", "_manifest.json"):
            (synthetic / f"{variant}{suffix}").write_bytes((tmp_path / f"leakage{suffix}").read_bytes())
    monkeypatch.setattr(readme_sections, "REMOVAL", tmp_path / "removal")
    text = readme_sections.leakage_table()
    plain, confound = text.split("\n\n", 3)[::2][:2]
    assert plain.startswith("Plain variant: `results/removal/synthetic/leakage.csv`, written whole by `python")
    assert confound.startswith("Confounded variant (`--confound`): `results/removal/synthetic/leakage_confound.csv`")
    assert "MMD scale" in plain and text.count("| class-conditional MMD, weight tuned |") == 2



def test_leakage_seeds_in_parallel_processes_give_the_same_rows(tmp_path, monkeypatch):
    """--jobs 2 trains the seeds in two spawned processes; every figure is the one a single process gives."""
    import importlib

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the workers import it by its name, as the script's do
    leakage = importlib.import_module("leakage")
    rows = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}.csv"
        assert leakage.main(["--quick", "--seeds", "2", "--jobs", str(jobs), "--methods", "baseline",
                             "--out", str(out)]) == 0
        rows[jobs] = [{k: v for k, v in r.items() if "seconds" not in k}
                      for r in csv.DictReader(out.with_name(f"jobs{jobs}_runs.csv").open())]
    assert [(r["method"], r["seed"]) for r in rows[2]] == [("baseline", "0"), ("baseline", "1")]
    assert rows[2] == rows[1]

def test_methods_registry_and_goal(leakage):
    assert set(leakage.POST_HOC) == set(leakage.ERASERS)
    assert leakage.training_order(["ensemble3_leace", "mmd_leace"]) == ["ensemble3", "mmd", "mmd_leace", "ensemble3_leace"]
    config = leakage.BenchmarkConfig()
    # the same budget for every method with a strength (issue 24, item 3): the paper's four lambdas, the main protocol's
    # quick-grid epochs and patience
    assert set(config.tuned) == set(leakage.LAMBDA_METHODS) == {"grl", "grl_dann", "alt_reverse", "alt_confusion",
                                                                 "ensemble3", "mmd"}
    assert all(config.lambdas_for(m) == (0.3, 0.5, 0.75, 1.0) for m in leakage.LAMBDA_METHODS)
    assert config.lambdas_for("inlp") == config.lambdas_for("leace") == config.lambdas_for("baseline") == ()
    from privemo.experiment.config import EPOCHS, PATIENCE

    assert (config.epochs, config.patience) == (EPOCHS["quick"], PATIENCE["quick"]) == (leakage.EPOCHS, leakage.PATIENCE)
    untuned = leakage.replace(config, tuned=(), grl_lambda=0.75, adversary_weight=0.5)
    assert untuned.lambdas_for("grl") == (0.75,) and untuned.lambdas_for("ensemble3") == (0.5,)
    assert leakage._method_kwargs("ensemble3", config, 0.3)["adversary_weight"] == 0.3
    assert leakage._method_kwargs("grl_dann", config, 0.5)["grl_lambda"] == 0.5
    assert leakage.convergence({"val_objective": [0.1, 0.2, 0.5, 0.4]}, 4) == {
        "best_epoch": 2, "epochs_run": 4, "max_epochs": 4, "converged": True, "capped": False}
    assert leakage.convergence({"val_objective": [0.1, 0.2, 0.3, 0.4]}, 4)["capped"]
    rows = [{"method": m, "seed": s, "emotion_uar": e, "attacker_max": a}
            for m, e, a in (("baseline", 0.75, 0.8), ("leace", 0.73, 0.54), ("mmd", 0.70, 0.5), ("inlp", 0.75, 0.56))
            for s in (0, 1)]
    summary = leakage.summarize(rows, ("emotion_uar", "attacker_max"))
    assert {s["method"]: s["goal"] for s in summary} == {"baseline": False, "mmd": False, "inlp": False, "leace": True}
    assert leakage.goal_check(summary, 0.60) == ["inlp", "leace"]


def test_demo_paired_tests_and_minimum_detectable_difference():
    demo = _load("removal_demo_benchmark", ROOT / "benchmarks" / "removal_demo.py")
    rows = []
    for fold, (e0, a0, e1, a1) in enumerate([(0.70, 0.90, 0.69, 0.60), (0.72, 0.85, 0.70, 0.58),
                                             (0.68, 0.88, 0.69, 0.62)]):
        rows.append({"method": "baseline", "fold": fold, "emotion_uar": e0, "attacker_max": a0, "eer": 0.2})
        rows.append({"method": "leace", "fold": fold, "emotion_uar": e1, "attacker_max": a1, "eer": 0.3 + 0.01 * fold})
    summary = demo.paired_tests(rows, demo.summarize(rows, ("emotion_uar", "attacker_max", "eer")))
    from scipy import stats

    leace = summary[1]
    a = np.array([0.60, 0.58, 0.62])
    b = np.array([0.90, 0.85, 0.88])
    assert leace["attacker_max_diff"] == pytest.approx(float(np.mean(a - b)))
    assert leace["attacker_max_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    sd = float(np.std(a - b, ddof=1))
    assert leace["attacker_max_mdd"] == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * sd / math.sqrt(3))
    assert math.isnan(summary[0]["attacker_max_p"])  # the baseline is not tested against itself
    assert math.isnan(demo.minimum_detectable_difference(0.1, 1))


def _speaker_rows(demo, leakage, seed=0):
    """Fold rows of three methods on 3 folds of 6 test speakers (3 per gender), with the per-speaker counts of
    leakage.evaluate: "leace" hides gender (attackers at or below chance) at the baseline's emotion, "grl" does not."""
    rng = np.random.default_rng(seed)
    rows = []
    for fold in range(3):
        speakers = np.repeat(np.arange(6), 20)
        gender = speakers % 2
        emotion = rng.integers(0, 3, len(speakers))
        corpus = leakage.LabelledData(features=[], emotion=emotion, gender=gender, speaker=speakers,
                                      train=np.array([], int), val=np.array([], int), test=np.arange(len(speakers)))
        base_emotion = np.where(rng.random(len(emotion)) < 0.7, emotion, (emotion + 1) % 3)
        other_emotion = np.where(rng.random(len(emotion)) < 0.7, emotion, (emotion + 2) % 3)
        for method, emotion_pred, p_gender in (("baseline", base_emotion, 0.95), ("leace", base_emotion, 0.4),
                                               ("grl", other_emotion, 0.85)):
            row = {"method": method, "fold": fold, "emotion_uar": leakage_uar(emotion, emotion_pred), "speakers": {
                "emotion": leakage.per_speaker(emotion, emotion_pred, corpus, 3)}}
            for attacker in ("logreg", "svm"):
                pred = np.where(rng.random(len(gender)) < p_gender, gender, 1 - gender)
                row[attacker] = leakage_uar(gender, pred)
                row["speakers"][attacker] = leakage.per_speaker(gender, pred, corpus, 2)
            row["attacker_max"] = max(row["logreg"], row["svm"])
            row.update(eer=0.4, head_uar=math.nan, attacker_selected=row["logreg"])
            rows.append(row)
    return rows


def leakage_uar(y, p):
    from privemo.metrics import uar

    return uar(y, p)


def test_demo_speaker_intervals_equivalence_and_goals(leakage):
    demo = _load("removal_demo_benchmark", ROOT / "benchmarks" / "removal_demo.py")
    from privemo.experiment.claims import paired_verdict
    from privemo.metrics import paired_speaker_difference

    rows = _speaker_rows(demo, leakage)
    summary = demo.judge(rows, ("logreg", "svm"), n_resamples=400, seed=0)
    by = {s["method"]: s for s in summary}
    for s in summary:
        for metric in ("emotion_uar", "attacker_max"):
            assert s[f"{metric}_ci_low"] <= s[f"{metric}_ci_high"]
            assert s[f"{metric}_ci_low"] - 0.05 <= s[f"{metric}_mean"] <= s[f"{metric}_ci_high"] + 0.05
    # the strongest attacker's draws are the maximum over the families on each draw: with every speaker drawn once,
    # the point value
    r = rows[0]
    identity = np.arange(6)[None, :]
    assert demo._attacker_max_draws(r["speakers"], ("logreg", "svm"), identity)[0] == pytest.approx(r["attacker_max"])
    # paired emotion difference: privemo.metrics.paired_speaker_difference on the same draws, averaged over folds
    base = [x for x in rows if x["method"] == "baseline"]
    grl = [x for x in rows if x["method"] == "grl"]
    draws = np.mean([paired_speaker_difference(b["speakers"]["emotion"], g["speakers"]["emotion"], n_resamples=400,
                                               seed=g["fold"]) for b, g in zip(base, grl)], axis=0)
    assert by["grl"]["emotion_uar_diff_speaker_ci_low"] == pytest.approx(float(np.quantile(draws, 0.025)))
    assert by["grl"]["emotion_uar_diff_speaker_ci_high"] == pytest.approx(float(np.quantile(draws, 0.975)))
    # equivalence: privemo.experiment.claims.paired_verdict over folds
    verdict = paired_verdict([b["emotion_uar"] for b in base], [g["emotion_uar"] for g in grl], True, 0.03)
    assert by["grl"]["emotion_equivalence_p_equivalence"] == pytest.approx(verdict["p_equivalence"])
    assert by["grl"]["emotion_equivalence_verdict"] == verdict["verdict"]
    assert by["leace"]["emotion_equivalence_p_equivalence"] == 0.0  # the same emotion: a zero-width interval
    # goals: leace meets all three, grl fails the attacker goals, the baseline is not judged
    assert by["leace"]["goal_attacker_mean"] and by["leace"]["goal_attacker_upper"] and by["leace"]["goal"]
    assert by["leace"]["attacker_max_ci_high"] <= demo.GOAL_ATTACKER_UPPER
    assert not by["grl"]["goal_attacker_mean"] and not by["grl"]["goal_attacker_upper"] and not by["grl"]["goal"]
    assert by["baseline"]["goal"] is None
    lines = demo.goals_table(summary)
    assert len(lines) == 4 and lines[2].startswith("| grl |") and "**no**" in lines[2] and "**yes**" in lines[3]
    # one fold: no equivalence test, the emotion goal is not met
    one = demo.judge([x for x in rows if x["fold"] == 0], ("logreg", "svm"), n_resamples=100)
    assert all(s["goal"] is None or s["goal_emotion_equivalent"] is False for s in one)
    assert "n/a (< 2 folds)" in "\n".join(demo.goals_table(one))


def _demo_on_quick_corpus(leakage, monkeypatch):
    """benchmarks/removal_demo.py with the leakage benchmark's quick corpus (5 identical folds), quick config and a
    constant EER in place of the demo corpus, its budget and the verifier (seconds)."""
    demo = _load("removal_demo_benchmark", ROOT / "benchmarks" / "removal_demo.py")
    config = leakage.BenchmarkConfig.quick()
    corpus = leakage.make_corpus(config, 0)

    class Fold:
        train, validation, test = corpus.train, corpus.val, corpus.test

    monkeypatch.setattr(demo, "load_demo_data", lambda task, seed, name: (
        None, corpus.features, corpus.emotion, corpus.gender, corpus.speaker, [Fold] * 5))
    monkeypatch.setattr(demo, "demo_config", lambda epochs, patience, quick=False: leakage.replace(
        config, epochs=epochs, patience=patience))
    monkeypatch.setattr(demo, "verification_metrics", lambda seed: lambda h, c: {"eer": 0.4, "eer_same_gender": 0.4})
    return demo


def test_demo_main_writes_its_own_folder_with_manifest(leakage, tmp_path, monkeypatch):
    """removal_demo.main end to end on the leakage benchmark's quick corpus in place of the demo corpus (seconds)."""
    demo = _demo_on_quick_corpus(leakage, monkeypatch)
    out = tmp_path / "removal"
    assert demo.main(["--corpus", "demo", "--folds", "2", "--epochs", "2", "--patience", "1", "--methods",
                      "baseline,leace", "--resamples", "50", "--out-dir", str(out)]) == 0
    for name in ("removal_methods.csv", "removal_methods_folds.csv", "removal_methods_speakers.json",
                 "removal_methods.md", "removal_methods.png", "manifest.json"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"].startswith("python benchmarks/removal_demo.py --corpus demo --folds 2")
    assert manifest["config"]["seed"] == 0 and manifest["versions"]["numpy"] and "commit" in manifest["git"]
    assert set(manifest["timings"]["folds"]) == {"1", "2"} and manifest["timings"]["total_s"] > 0
    summary = {r["method"]: r for r in csv.DictReader((out / "removal_methods.csv").open())}
    leace = summary["leace"]
    assert float(leace["attacker_max_ci_low"]) <= float(leace["attacker_max_ci_high"])
    assert leace["goal"] in ("True", "False") and summary["baseline"]["goal"] == ""
    assert leace["converged"] == "0/2"  # two epochs: the best epoch is the last allowed one
    speakers = json.loads((out / "removal_methods_speakers.json").read_text())
    assert {(r["method"], r["fold"]) for r in speakers["rows"]} == {(m, f) for m in ("baseline", "leace") for f in (0, 1)}
    assert "## Goals" in (out / "removal_methods.md").read_text()
    # the README renders the folder's figures
    import readme_sections

    monkeypatch.setattr(readme_sections, "REMOVAL", tmp_path)
    (tmp_path / "demo").mkdir(exist_ok=True)
    for name in ("removal_methods.csv", "manifest.json"):
        (tmp_path / "demo" / name).write_bytes((out / name).read_bytes())
    text = readme_sections.removal_table("demo")
    assert "`results/removal/demo/`" in text and "| LEACE on the baseline's h | " in text
    with pytest.raises(SystemExit):  # never into the protocol run's folder
        demo.main(["--corpus", "demo", "--out-dir", str(ROOT / "results" / "demo")])



def test_demo_main_resumes_the_folds_an_interrupted_run_finished(leakage, tmp_path, monkeypatch):
    """A run stopped after its first fold keeps that fold (``.partial/fold1.pkl``, written whole); ``--resume`` trains
    only the rest, a resume with other settings is refused naming the file, and the folder is cleared at the end."""
    demo = _demo_on_quick_corpus(leakage, monkeypatch)
    real_run_fold, trained = demo.run_fold, []

    def run_fold(f, *args):
        if f == 1 and not trained.count("stop"):
            trained.append("stop")
            raise KeyboardInterrupt  # the run is stopped during its second fold
        trained.append(f)
        return real_run_fold(f, *args)

    monkeypatch.setattr(demo, "run_fold", run_fold)
    out = tmp_path / "removal"
    argv = ["--corpus", "demo", "--folds", "2", "--epochs", "1", "--patience", "1", "--methods", "baseline",
            "--resamples", "20", "--out-dir", str(out)]
    with pytest.raises(KeyboardInterrupt):
        demo.main(argv)
    assert trained == [0, "stop"] and sorted(p.name for p in (out / ".partial").iterdir()) == ["fold1.pkl"]
    assert not (out / "removal_methods.csv").exists()  # nothing half-written
    with pytest.raises(SystemExit, match="fold1.pkl"):  # another budget: its fold is not this run's
        demo.main([*argv[:4], "--epochs", "2", *argv[6:], "--resume"])
    assert demo.main([*argv, "--resume"]) == 0
    assert trained == [0, "stop", 1]  # fold 1 was not trained again
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["timings"]["resumed_folds"] == [1] and set(manifest["timings"]["folds"]) == {"1", "2"}
    assert {int(r["fold"]) for r in csv.DictReader((out / "removal_methods_folds.csv").open())} == {0, 1}
    assert not (out / ".partial").exists()
    with pytest.raises(SystemExit):
        demo.main([*argv, "--jobs", "0"])

def test_mmd_scale_dev_chooses_on_validation_and_regeneration_is_one_command(tmp_path, capsys):
    dev = _load("mmd_scale_dev_benchmark", ROOT / "benchmarks" / "mmd_scale_dev.py")
    rows = [{"mmd_scale": 0.1, "val_objective": 0.5}, {"mmd_scale": 0.3, "val_objective": 0.6},
            {"mmd_scale": 1.0, "val_objective": 0.6}]
    assert dev.choose(rows) == 0.3  # best validation objective, the smaller scale on ties
    out = tmp_path / "dev.csv"
    assert dev.main(["--quick", "--scales", "0.3,1", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"MMD scale: {dev.chosen_scale(out):g}"
    table = list(csv.DictReader(out.open()))
    assert [float(r["mmd_scale"]) for r in table] == [0.3, 1.0] and sum(r["chosen"] == "True" for r in table) == 1
    assert json.loads(out.with_name("dev_manifest.json").read_text())["seed"] == [dev.DEV_SEED]
    with pytest.raises(SystemExit):
        dev.main(["--dev-seed", "1"])  # a reported seed
    regen = _load("regenerate_removal_benchmark", ROOT / "benchmarks" / "regenerate_removal.py")
    assert regen.main(["--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "benchmarks/removal_demo.py --corpus demo-podcast --folds 5 --mmd-scale S" in printed
    assert printed.count("--mmd-scale S") == 3 and "tests/readme_sections.py" in printed
    assert regen.main(["--dry-run", "--jobs", "2"]) == 0
    assert capsys.readouterr().out.count("--jobs 2") == 3  # steps 2-4
    assert regen.main(["--dry-run", "--from-step", "2", "--until-step", "3"]) == 0
    assert [line[:5] for line in capsys.readouterr().out.splitlines()] == ["[2/5]", "[3/5]"]
    with pytest.raises(SystemExit):
        regen.main(["--dry-run", "--from-step", "3", "--until-step", "2"])



def test_library_mmd_scale_is_the_committed_development_choice():
    """privemo.removal.MMD_SCALE is the scale benchmarks/mmd_scale_dev.py chose on the development seed (committed), not
    one picked on a reported figure."""
    from privemo.removal import MMD_SCALE

    dev = _load("mmd_scale_dev_benchmark", ROOT / "benchmarks" / "mmd_scale_dev.py")
    assert dev.chosen_scale(ROOT / "results" / "removal" / "synthetic" / "mmd_scale_dev.csv") == MMD_SCALE

def test_gpu_check_reports_device_cudnn_and_determinism(tmp_path):
    check = _load("gpu_check_benchmark", ROOT / "benchmarks" / "gpu_check.py")
    assert check.main(["--out", str(tmp_path), "--skip-runs"]) == 0
    found = json.loads((tmp_path / "gpu_check.json").read_text())
    assert found["cudnn"]["gru_layers"] == 2 and found["cudnn"]["cudnn_problems"] == []
    # a CudnnRNN op per GRU where a GPU is visible, none on a CPU
    assert found["cudnn"]["cudnn_ops_in_step"] == (2 if found["cudnn"]["gpu_visible"] else 0)
    assert found["determinism"]["identical_weights"] is True


def test_cost_check_runs_the_command_and_appends_its_row(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PRIVEMO_DATA", str(tmp_path / "data"))
    check = _load("cost_check_benchmark", ROOT / "benchmarks" / "cost_check.py")
    flags = ["--demo-size", "6", "--modality", "acoustic", "--task", "activation", "--adversary", "none",
             "--only-fold", "0", "--epochs", "2", "--patience", "1", "--jobs", "1"]
    out = tmp_path / "check.csv"
    for _ in range(2):
        assert check.main(["--csv", str(out), "--", *flags]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2
    for row in rows:
        assert float(row["estimated_s"]) > 0 and float(row["measured_s"]) > 0
        assert float(row["ratio"]) == pytest.approx(float(row["measured_s"]) / float(row["estimated_s"]), rel=0.02)
        assert int(row["measured_epochs"]) == 2  # one trial (a baseline on the quick grid), two epochs
        assert row["command"] == " ".join(flags)
    with pytest.raises(SystemExit):
        check.main(["--", "--out", str(tmp_path)])  # the benchmark's own output folder
