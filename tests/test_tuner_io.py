"""keras-tuner's state files are written atomically by privemo's oracles and tuners, and a damaged one is reported by
name (privemo.search._tuner_io); keras-tuner itself is left unmodified, and only privemo.search._keras_tuner imports its
private API."""

from __future__ import annotations

import json
from pathlib import Path

import keras_tuner
import pytest

from privemo._util.validation import UserError

import privemo.search
from privemo.search import _keras_tuner, _tuner_io, tuning
from privemo.search._tuner_io import TunerStateError, load_json, save_json

PACKAGE = Path(privemo.search.__file__).resolve().parents[1]


def _tuner(directory: Path) -> keras_tuner.Tuner:
    """privemo's GridSearch tuner on ``directory/project``; on an existing project it reloads it (``overwrite=False``),
    as privemo's tuners do with ``--resume``."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [1, 2])
    return tuning.GridSearch(hypermodel=lambda hp: None, objective=keras_tuner.Objective("score", "max"),
                             hyperparameters=hp, directory=str(directory), project_name="project", overwrite=False)


def _finished_project(directory: Path) -> Path:
    """A keras-tuner project with one finished trial, written through keras-tuner's own calls (``end_trial``,
    ``Tuner.save``) to privemo's oracle and tuner; returns its folder."""
    tuner = _tuner(directory)
    trial = tuner.oracle.create_trial(tuner.tuner_id)
    tuner.oracle.update_trial(trial.trial_id, {"score": 0.5})
    trial.status = keras_tuner.engine.trial.TrialStatus.COMPLETED
    tuner.oracle.end_trial(trial)
    tuner.save()
    return directory / "project"


def test_keras_tuner_writes_through_privemo():
    """privemo's oracles and tuners write and read keras-tuner's state through privemo's save_json / load_json, by
    overriding keras-tuner's methods (no monkeypatch)."""
    for cls in (tuning.GridSearchOracle, tuning.ConcurrentGridSearchOracle):
        assert issubclass(cls, _tuner_io.AtomicStateOracle)
        assert cls.save is _tuner_io.AtomicStateOracle.save and cls.reload is _tuner_io.AtomicStateOracle.reload
        assert cls._save_trial is _tuner_io.AtomicStateOracle._save_trial
    from privemo.search.packed_tuner import PackedGridSearch, PackedGridSearchOracle

    assert issubclass(PackedGridSearchOracle, _tuner_io.AtomicStateOracle)
    for cls in (tuning.GridSearch, tuning.ConcurrentGridSearch, PackedGridSearch):
        assert issubclass(cls, _tuner_io.AtomicStateTuner)
        assert cls.save is _tuner_io.AtomicStateTuner.save and cls.reload is _tuner_io.AtomicStateTuner.reload
        assert cls._build_and_fit_model is _tuner_io.AtomicStateTuner._build_and_fit_model


def test_keras_tuner_is_left_unmodified():
    """Importing privemo's search (and the distributed engine built on it) changes nothing in keras-tuner."""
    import privemo.experiment.distributed  # noqa: F401
    import privemo.search.packed_tuner  # noqa: F401
    from keras_tuner.src import utils as kt_utils  # keras-tuner's private module, read here only to check it

    assert kt_utils.save_json.__module__ == kt_utils.load_json.__module__ == kt_utils.__name__
    assert not hasattr(kt_utils.save_json, "_privemo_original") and not hasattr(kt_utils.load_json, "_privemo_original")
    assert kt_utils.save_json.__code__.co_filename == kt_utils.__file__
    assert _keras_tuner.kt_utils is kt_utils


def test_only_one_module_imports_keras_tuner_private_api():
    """``keras_tuner.src`` appears in privemo only in ``privemo.search._keras_tuner``, which names the keras-tuner
    version it was written against."""
    users = sorted(path.relative_to(PACKAGE.parent).as_posix() for path in PACKAGE.rglob("*.py")
                   if "keras_tuner.src" in path.read_text())
    assert users == ["privemo/search/_keras_tuner.py"]
    assert _keras_tuner.KERAS_TUNER_VERSION in _keras_tuner.__doc__


def test_oracle_state_is_written_atomically(tmp_path, monkeypatch):
    """oracle.json, trial.json and <tuner_id>.json go through privemo's atomic write (a temporary file renamed)."""
    written = []
    monkeypatch.setattr(_tuner_io, "atomic_write_text", lambda path, text: written.append(Path(path).name))
    _finished_project(tmp_path)
    assert {"oracle.json", "trial.json", "tuner0.json"} <= set(written)


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
