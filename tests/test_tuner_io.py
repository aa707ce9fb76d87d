"""keras-tuner's state files are written atomically, and a damaged one is reported by name (privemo.search._tuner_io)."""

from __future__ import annotations

import json
from pathlib import Path

import keras_tuner
import pytest

from privemo._validation import UserError
from keras_tuner.src import utils as kt_utils

import privemo.search.tuning  # noqa: F401  (installs privemo.search._tuner_io, as every privemo tuner run does)
from privemo.search._tuner_io import TunerStateError, load_json, save_json


def _tuner(directory: Path) -> keras_tuner.Tuner:
    """A GridSearch tuner on ``directory/project``; on an existing project it reloads it (``overwrite=False``), as
    privemo's tuners do with ``--resume``."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [1, 2])
    return keras_tuner.GridSearch(hypermodel=lambda hp: None, objective=keras_tuner.Objective("score", "max"),
                                  hyperparameters=hp, directory=str(directory), project_name="project",
                                  overwrite=False)


def _finished_project(directory: Path) -> Path:
    """A keras-tuner project with one finished trial, written by keras-tuner itself; returns its folder."""
    tuner = _tuner(directory)
    trial = tuner.oracle.create_trial(tuner.tuner_id)
    tuner.oracle.update_trial(trial.trial_id, {"score": 0.5})
    trial.status = keras_tuner.engine.trial.TrialStatus.COMPLETED
    tuner.oracle.end_trial(trial)
    tuner.save()
    return directory / "project"


def test_keras_tuner_writes_through_privemo():
    assert kt_utils.save_json is save_json and kt_utils.load_json is load_json


def test_save_replaces_the_file_so_a_reader_never_sees_half_of_it(tmp_path):
    path = tmp_path / "oracle.json"
    save_json(path, {"old": list(range(1000))})
    with open(path) as reader:  # e.g. a resuming process reading while a worker saves
        text = save_json(path, {"new": 1})
        assert json.loads(reader.read()) == {"old": list(range(1000))}  # the old file, complete
    assert text == json.dumps({"new": 1}) and json.loads(path.read_text()) == {"new": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"]  # no temporary file left behind


def test_a_project_written_by_keras_tuner_reloads(tmp_path):
    project = _finished_project(tmp_path)
    assert json.loads((project / "oracle.json").read_text())["end_order"]
    tuner = _tuner(tmp_path)
    assert [t.status for t in tuner.oracle.trials.values()] == ["COMPLETED"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
@pytest.mark.parametrize("name", ["trial.json", "oracle.json"])
def test_a_damaged_state_file_is_named_on_resume(tmp_path, name, damage):
    project = _finished_project(tmp_path)
    path = next(project.rglob(name))
    text = path.read_text()
    path.write_text({"truncated": text[: len(text) // 2], "empty": "", "garbage": "\x00\x01"}[damage])
    with pytest.raises(TunerStateError) as info:
        _tuner(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: damaged keras-tuner state file")
    assert "Rerun without --resume" in message and f"delete the tuner project folder {project} " in message
    assert ("it is empty" in message) is (damage == "empty")
    # python -m privemo.reproduce prints it in one line, no traceback (privemo.cli.reproduce.run_command)
    assert isinstance(info.value, UserError)
