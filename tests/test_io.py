import json

import numpy as np
import pytest

from privemo._io import atomic_write_json, atomic_write_text, read_json


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
