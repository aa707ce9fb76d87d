"""The cost model behind --dry-run's estimate (privemo.experiment.cost): linear in trials, folds and epochs; the
measured CSV when it has this device; a malformed CSV named with its line."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from privemo._util.validation import UserError
from privemo.experiment import cost as cm
from privemo.experiment import cost_calibration as cc
from privemo.search.grids import PAPER_GRID, QUICK_GRID

DEVICE = "CPU: test machine (2 cores)"
SHAPE = cm.grid_shapes(QUICK_GRID)[0]
BIG = (4, 3, 128, 3, 32, 2, 64)


@pytest.fixture(autouse=True)
def this_device(monkeypatch, tmp_path):
    monkeypatch.setattr(cm, "device_name", lambda: DEVICE)
    monkeypatch.setattr(cc, "device_name", lambda: DEVICE)  # the measurement module's own lookups
    monkeypatch.setenv("PRIVEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cm, "DEFAULT_CALIBRATION", tmp_path / "absent.csv")


def _calibration(trace=0.0, probe=0.0, predict=0.0):
    calibration = cm.Calibration(DEVICE, 1, source="test")
    for pack in (1, 4):
        calibration.costs[("acoustic", SHAPE, pack)] = cm.StepCost(0.01 * pack, 0.002 * pack, predict, predict,
                                                                    trace, probe)
    return calibration


def _plan(lambdas=4, folds=2, patience=6, shapes=(SHAPE,), pack=1, jobs=1):
    condition = cm.ConditionPlan("acoustic", "gender", lambdas, probe=True)
    return cm.RunPlan(corpus="demo", n_utterances=200, folds=((96, 32),) * folds, conditions=(condition,),
                      shapes=tuple(shapes), epochs=1000, patience=patience, jobs=jobs, pack=pack,
                      durations_s=np.full(200, 2.0))


def test_training_time_is_linear_in_trials_folds_and_epochs(monkeypatch):
    monkeypatch.setattr(cm, "ATTACK_S_PER_UTTERANCE", 0.0)
    monkeypatch.setattr(cm, "CHECKPOINT_S", 0.0)
    calibration = _calibration(probe=0.05)
    base = cm.estimate_run(_plan(), calibration=calibration)
    assert base.work_s > 0 and base.trainings == 2 * 4
    trials = cm.estimate_run(_plan(lambdas=8), calibration=calibration)
    folds = cm.estimate_run(_plan(folds=4), calibration=calibration)
    assert trials.work_s == pytest.approx(2 * base.work_s) and trials.trainings == 2 * base.trainings
    assert folds.work_s == pytest.approx(2 * base.work_s) and folds.steps == pytest.approx(2 * base.steps)
    # patience 1 -> 8 + 1 + 1 = 10 epochs per trial; patience 11 -> 20: twice the epochs, twice the time
    short, long = (cm.estimate_run(_plan(patience=p), calibration=calibration) for p in (1, 11))
    assert long.epochs == pytest.approx(2 * short.epochs) and long.work_s == pytest.approx(2 * short.work_s)
    # one epoch by hand: 96 rows of 2 s = 3 batches of 32; validation and probe cost nothing here; one probe fit
    assert cm.epoch_seconds(calibration.cost("acoustic", SHAPE), np.full(96, 2.0), np.full(32, 2.0), probe=True) == \
        pytest.approx(3 * (0.01 + 0.002 * 2.0) + 0.05)
    assert short.work_s == pytest.approx(2 * 4 * 10 * (3 * (0.01 + 0.002 * 2.0) + 0.05))
    # jobs divide the wall time, not the work
    two = cm.estimate_run(_plan(jobs=2), calibration=calibration)
    assert two.work_s == pytest.approx(base.work_s) and two.wall_s == pytest.approx(base.work_s / 2)
    assert base.distributed_s(4) == pytest.approx(base.work_s / 4)


def test_packing_and_unmeasured_shapes_are_priced(monkeypatch):
    calibration = _calibration()
    calibration.costs[("acoustic", BIG, 1)] = cm.StepCost(0.05, 0.02, 0.0, 0.0)
    calibration.costs[("acoustic", (4, 2, 64, 2, 32, 1, 32), 1)] = cm.StepCost(0.03, 0.008, 0.0, 0.0)
    middle = calibration.cost("acoustic", (3, 3, 64, 2, 32, 1, 32), 1)  # not measured: fitted
    assert 0.002 < middle.train_per_s < 0.02
    assert calibration.cost("acoustic", SHAPE, 8).train_fixed_s == pytest.approx(2 * 0.04)  # K=4 scaled to 8
    packed = cm.estimate_run(_plan(pack=4), calibration=calibration)
    plain = cm.estimate_run(_plan(), calibration=calibration)
    assert packed.trainings == plain.trainings and packed.epochs == pytest.approx(plain.epochs)
    assert packed.steps < plain.steps  # one step trains four members
    lexical = calibration.cost("lexical", SHAPE, 1)  # no lexical row: priced from the acoustic one
    assert lexical.train_per_s > 0


def _write(path, rows, columns=cm.COLUMNS):
    cm.write_csv(path, rows, columns)
    return path


def test_estimate_uses_the_measured_csv_for_this_device(tmp_path):
    rows = cm.calibration_rows(_calibration())
    other = [{**row, "device": "GPU: somebody else's", "train_fixed_s": "9"} for row in rows]
    path = _write(tmp_path / "protocol_cost.csv", other + rows)
    found = cm.read_calibration(path)
    assert found.device == DEVICE and found.costs[("acoustic", SHAPE, 1)].train_fixed_s == pytest.approx(0.01)
    assert cm.find_calibration([tmp_path / "nothing.csv", path]).source == str(path)
    estimate = cm.estimate_run(_plan(), calibration=path)
    assert str(path) in estimate.basis and DEVICE in estimate.basis
    assert estimate.work_s == pytest.approx(cm.estimate_run(_plan(), calibration=_calibration()).work_s)
    # found without being named, as results/protocol_cost.csv of the checkout
    cm.DEFAULT_CALIBRATION = path
    assert str(path) in cm.estimate_run(_plan(), measure=False).basis
    # a CSV of another device only: not used
    only_other = _write(tmp_path / "other.csv", other)
    assert cm.read_calibration(only_other) is None
    with pytest.raises(UserError, match="no calibration row for this device"):
        cm.estimate_run(_plan(), calibration=only_other)


def test_without_a_calibration_it_measures_once_and_caches(monkeypatch):
    calls = []

    def fake(shape, modality, *, pack=1, steps=8, **kwargs):
        calls.append((modality, shape, pack))
        return cm.StepCost(0.01, 0.002, 0.001, 0.001, 1.0, 0.01)

    monkeypatch.setattr(cm, "measure_step_cost", fake)
    monkeypatch.setattr(cm, "start_tensorflow", lambda threads: None)
    with pytest.raises(UserError, match="no cost calibration"):
        cm.estimate_run(_plan(), measure=False)
    plan = _plan(shapes=cm.grid_shapes(PAPER_GRID))
    first = cm.estimate_run(plan)
    assert "built-in calibration" in first.basis and calls
    assert cm.user_calibration_path().is_file()
    n = len(calls)
    again = cm.estimate_run(plan)  # the cached calibration: nothing measured again
    assert len(calls) == n and again.work_s == pytest.approx(first.work_s)


@pytest.mark.parametrize("edit, match", [
    (lambda text: text.replace("train_per_s", "train_per_second"), r"line 1: .*train_per_s"),
    (lambda text: text.replace("0.002", "fast", 1), r"line 2: column `train_per_s`: expected a number"),
    (lambda text: text.replace(",1,", ",one,", 1), r"line 2: column `threads`"),
    (lambda text: text + "CPU: x,1,acoustic,3\n", r"line 4: expected 17 comma-separated fields"),
    (lambda text: text.replace(",acoustic,", ",video,", 1), r"line 2: column `modality`"),
    (lambda text: text.replace("0.01", "-1", 1), r"line 2: column `train_fixed_s`: expected a finite number >= 0"),
])
def test_a_malformed_csv_is_named_with_its_line(tmp_path, edit, match):
    path = _write(tmp_path / "protocol_cost.csv", cm.calibration_rows(_calibration()))
    path.write_text(edit(path.read_text()))
    with pytest.raises(UserError, match=match) as info:
        cm.read_calibration(path)
    assert str(path) in str(info.value)


def test_plan_from_a_reproduce_configuration():
    config = SimpleNamespace(grid="quick", grid_dict=lambda: QUICK_GRID, mi_holdout=0.2, selection="probe",
                             n_jobs=2, corpus="demo", resolved_epochs=lambda: 40, resolved_patience=lambda: 6, pack=4)
    table = pd.DataFrame({"speaker": ["a"] * 640})
    fold = SimpleNamespace(train=np.arange(400), validation=np.arange(100))
    conditions = [SimpleNamespace(modality="acoustic", adversary=a, removal="grl") for a in (None, "gender")]
    plan = cm.plan_from_run(config, table, [fold] * 5, [0, 1], conditions)
    assert plan.folds == ((320, 100), (320, 100)) and plan.n_utterances == 640
    assert [(c.lambdas, c.probe) for c in plan.conditions] == [(1, False), (4, True)]
    assert plan.shapes == (SHAPE,) and plan.pack == 4 and plan.jobs == 2 and (plan.epochs, plan.patience) == (40, 6)


def test_corpus_profiles_and_durations():
    iemocap = cm.CORPUS_PROFILES["iemocap"]
    durations = iemocap.durations()
    assert len(durations) == 10039 and abs(durations.mean() - 4.5) < 0.2
    assert iemocap.fold_sizes() == (4819, 2008)  # 6 training speakers (after 20 % held out), 2 validating
    assert cm.format_duration(30) == "30 s" and cm.format_duration(5400) == "90.0 min"
    assert cm.format_duration(7 * 3600) == "7.0 h" and cm.format_duration(4 * 86400) == "4.0 days"
