"""Every test run starts cold: unless PRIVEMO_DATA / PRIVEMO_CACHE are set, the synthesised corpora and the feature
and word-vector caches go to empty folders of this run (pytest's temporary folder), never to the user's cache, so a test
that passes only where an earlier run left a cache behind fails here too. ``.ci/run`` sets both to a fresh folder. A
corpus a test builds at the default place is then built once per run and shared by the tests that follow."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COLD = {"PRIVEMO_DATA": "data", "PRIVEMO_CACHE": "cache"}  # variable -> its folder under the run's temporary folder


@pytest.fixture(scope="session", autouse=True)
def cold_caches(tmp_path_factory):
    """PRIVEMO_DATA and PRIVEMO_CACHE (where unset) point into an empty folder for the whole test run; subprocesses
    started by the tests inherit them."""
    base = tmp_path_factory.mktemp("privemo-home")
    with pytest.MonkeyPatch.context() as mp:
        for name, folder in COLD.items():
            if not os.environ.get(name):
                mp.setenv(name, str(base / folder))
        yield {name: Path(os.environ[name]) for name in COLD}
