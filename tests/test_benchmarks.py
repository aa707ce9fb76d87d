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


def test_quick_leakage_with_mmd_writes_every_column(leakage, tmp_path):
    out = tmp_path / "leakage.csv"
    started = time.perf_counter()
    assert leakage.main(["--quick", "--methods", "baseline,mmd", "--out", str(out)]) == 0
    assert time.perf_counter() - started < 60
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
