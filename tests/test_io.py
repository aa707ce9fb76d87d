import errno
import json
import os
import pickle

import numpy as np
import pytest

from privemo._util.io import WriteError, atomic_write_json, atomic_write_text, read_json, write_error, writing
from privemo._util.validation import UserError


def test_atomic_write_creates_parents_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "b" / "x.json"
    atomic_write_json(target, {"v": np.float32(0.5), "a": np.arange(3), "i": np.int64(2)})
    assert read_json(target) == {"v": 0.5, "a": [0, 1, 2], "i": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_text(target, json.dumps({"old": True}))
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert read_json(target) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("code, advice", [(errno.ENOSPC, "Free some space"), (errno.EDQUOT, "quota"),
                                          (errno.EROFS, "writable file system"), (errno.EACCES, "writable")])
def test_a_write_the_disk_refuses_is_one_line_naming_the_path_and_keeps_the_old_file(tmp_path, monkeypatch, code,
                                                                                     advice):
    import privemo._util.io

    target = tmp_path / "folds" / "x.json"
    atomic_write_json(target, {"old": True})

    def refused(path, data):  # the injected fault, at privemo's write layer
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(privemo._util.io, "_write_file", refused)
    with pytest.raises(WriteError) as info:
        atomic_write_json(target, {"new": True})
    assert isinstance(info.value, UserError) and info.value.errno == code and info.value.path == str(target)
    message = str(info.value)
    assert message.startswith(f"{target}: cannot write: {os.strerror(code)}. ") and advice in message
    assert "\n" not in message and "--resume" in message
    assert read_json(target) == {"old": True}
    assert pickle.loads(pickle.dumps(info.value)).path == str(target)  # it crosses from a worker process intact


def test_real_write_failures_are_write_errors_and_others_pass_unchanged(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if not os.access(folder, os.W_OK):  # (as root, permissions do not stop a write)
            with pytest.raises(WriteError, match=r"ro/x\.json: cannot write: Permission denied\. Make the folder "):
                atomic_write_json(folder / "x.json", {})
            assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)
    with pytest.raises(IsADirectoryError):  # not the disk's or the folder's fault: raised as it was
        with writing(tmp_path):
            open(tmp_path, "w")
    assert write_error("x", ValueError("no")) is None
    h5py_text = OSError("Unable to synchronously write data (file write failed: errno = 28, error message = 'No space')")
    assert write_error("w.h5", h5py_text).errno == errno.ENOSPC
