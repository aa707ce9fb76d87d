"""``python -m privemo.reproduce``: --help, and user mistakes -> one line on stderr, exit status 2, no traceback.

Every case runs the real command in a subprocess; none reaches training (all fail before TensorFlow is imported, except
the too-many-folds case, which fails right after reading the small demo corpus).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from privemo.corpora.demo import synthesize_demo

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("--corpus", "--root", "--demo-size", "--modality", "--task", "--adversary", "--placement", "--grid", "--folds",
         "--only-fold", "--epochs", "--patience", "--jobs", "--seed", "--embeddings", "--out", "--resume",
         "--quiet", "--verbose", "--repeats", "--selection", "--dry-run")


def reproduce(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, "-m", "privemo.reproduce", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, stdout empty, stderr exactly one line starting with the program's error prefix, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("privemo.reproduce: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def env(tmp_path_factory):
    """A private data/cache folder, so no case touches (or synthesises into) the user's cache."""
    base = tmp_path_factory.mktemp("env")
    return {"PRIVEMO_DATA": str(base / "data"), "PRIVEMO_CACHE": str(base / "cache")}


def test_help_lists_every_flag(tmp_path):
    proc = reproduce("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for flag in FLAGS:
        assert flag in proc.stdout, flag
    assert "Table 1a/1b" in proc.stdout and "quick" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--corpus", "iemocap"], ["--corpus iemocap needs --root"]),
        (["--corpus", "msp-podcast", "--folds", "3"], ["needs --root"]),
        (["--folds", "1"], ["--folds must be at least 2", "got 1"]),
        (["--jobs", "0"], ["--jobs must be a positive integer"]),
        (["--epochs", "-3"], ["--epochs must be a positive integer"]),
        (["--demo-size", "0"], ["--demo-size must be a positive integer"]),
        (["--corpus", "muse", "--root", ".", "--demo-size", "4"], ["--demo-size only applies to --corpus demo"]),
        (["--only-fold", "5"], ["--only-fold 5", "0 to 4"]),
        (["--folds", "3", "--only-fold", "0", "-1"], ["--only-fold -1"]),
        (["--embeddings", "no/such/vectors.bin"], ["--embeddings: file not found: no/such/vectors.bin"]),
    ],
)
def test_argument_mistakes_are_one_line_errors(tmp_path, env, args, fragments):
    proc = reproduce(*args, "--out", str(tmp_path / "out"), cwd=tmp_path, env=env)
    assert_user_error(proc, *fragments)
    assert not (tmp_path / "out").exists()  # rejected before anything is created
    assert not Path(env["PRIVEMO_DATA"]).exists()  # and before the demo corpus is synthesised


def test_embeddings_in_an_unknown_format(tmp_path, env):
    bad = tmp_path / "vectors.txt"
    bad.write_text("this is not a word-vector file\nat all\n", encoding="utf-8")
    proc = reproduce("--embeddings", str(bad), "--out", str(tmp_path / "out"), cwd=tmp_path, env=env)
    line = assert_user_error(proc, "--embeddings", "vectors.txt", "unrecognised word-vector format")
    assert "word2vec" in line


@pytest.mark.parametrize("layout", ["empty", "missing", "file"])
def test_corpus_root_with_the_wrong_layout(tmp_path, env, layout):
    root = tmp_path / "IEMOCAP"
    if layout == "empty":
        root.mkdir()
    elif layout == "file":
        root.write_text("not a folder")
    proc = reproduce("--corpus", "iemocap", "--root", str(root), "--out", str(tmp_path / "out"), "--quiet",
                     cwd=tmp_path, env=env)
    assert_user_error(proc, "iemocap", str(root.name))
    assert not any((tmp_path / "out").rglob("*.*"))  # nothing half-written


def test_wrong_layout_without_quiet_ends_with_the_error_line(tmp_path, env):
    (tmp_path / "MSP").mkdir()
    proc = reproduce("--corpus", "msp-improv", "--root", str(tmp_path / "MSP"), "--out", str(tmp_path / "out"),
                     cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("privemo.reproduce: error: msp-improv")  # after the progress line naming the grid
    assert sum("error" in line for line in lines) == 1


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_unwritable_output_folder(tmp_path, env, where):
    blocker = tmp_path / "results"
    blocker.write_text("a regular file where a folder is needed")
    out = blocker / "demo" if where == "under_a_file" else blocker
    proc = reproduce("--out", str(out), cwd=tmp_path, env=env)
    assert_user_error(proc, "--out: cannot write to", str(out))
    assert blocker.read_text() == "a regular file where a folder is needed"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_output_folder(tmp_path, env):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = reproduce("--out", str(ro / "demo"), cwd=tmp_path, env=env)
        assert_user_error(proc, "--out: cannot write to", "Permission denied")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--corpus", "timit"], "argument --corpus: invalid choice: 'timit'"),
        (["--folds", "five"], "argument --folds: invalid int value: 'five'"),
        (["--modality", "video"], "argument --modality: invalid choice: 'video'"),
        (["--grid", "huge"], "argument --grid: invalid choice: 'huge'"),
    ],
)
def test_nonsense_flags_exit_2_via_argparse(tmp_path, args, message):
    proc = reproduce(*args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m privemo.reproduce: error: ") and message in last, last
    assert list(tmp_path.iterdir()) == []


def test_corpus_too_small_for_the_folds(tmp_path, env):
    """The demo corpus has five sessions: ten session-wise folds cannot be made (after the corpus is read, before training)."""
    data = Path(env["PRIVEMO_DATA"]) / "tiny"
    synthesize_demo(data, n_per_speaker=2, progress=False)
    proc = reproduce("--root", str(data), "--demo-size", "2", "--folds", "10", "--modality", "acoustic", "--quiet",
                     "--out", str(tmp_path / "out"), cwd=tmp_path, env=env)
    assert_user_error(proc, "demo: cannot make 10 speaker-independent folds")
    assert not any((tmp_path / "out").rglob("*.json"))


def test_dry_run_prints_the_plan_and_writes_no_results(tmp_path, env):
    out = tmp_path / "never"
    proc = reproduce("--dry-run", "--demo-size", "6", "--modality", "acoustic", "--adversary", "none", "gender",
                     "--out", str(out), cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "demo: 60 utterances, 10 speakers, 5 folds (running 5)" in text
    assert text.count("test speakers (1 F, 1 M)") == 5
    assert "acoustic-activation-baseline: 1 trial(s) per fold" in text
    assert "acoustic-activation-gender-fused: 4 trial(s) per fold" in text  # lambda tuned over the paper's four values
    # 2 tasks x (1 + 4) trials x 5 folds
    assert "4 conditions x 5 folds = 20 (condition, fold) jobs holding 50 trainings" in text
    # the cost model's estimate for this machine, and what it is based on
    assert "estimated wall time on this machine:" in text and "50 trainings" in text.split("estimated wall time")[1]
    assert "cost basis:" in text
    assert not out.exists()
