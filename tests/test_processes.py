"""privemo's process pools never re-run the caller's script (privemo._util.processes).

A newcomer's three lines without an ``if __name__ == "__main__":`` guard used to hang forever on an empty cache (every
demo-synthesis worker re-ran the script and blocked on the corpus lock) or, from ``python -``, to respawn workers that
died on ``<stdin>``. Each script below runs in a fresh interpreter on empty data and cache folders, with a timeout.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import os
import subprocess
import sys
from pathlib import Path

import pytest

from privemo._util.processes import THREADED_RUNTIMES, hidden_main, mp_context, process_pool, worker_pool

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120
DEMO_LINES = (
    "import privemo\n"
    "t = privemo.load_corpus('demo', n_per_speaker=1, progress=False)\n"
    "print(len(t))\n"
)


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(PRIVEMO_DATA=str(tmp_path / "data"), PRIVEMO_CACHE=str(tmp_path / "cache"),
               XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _run(args: list[str], tmp_path: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, cwd=tmp_path,
                              env=_env(tmp_path), timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:  # the bug this file is about: say so instead of a bare timeout
        pytest.fail(f"{args} hung for {TIMEOUT_S} s (a worker re-ran the script?); stderr so far: {exc.stderr!r}")


@pytest.mark.parametrize("how", ["file", "stdin", "-c"])
def test_three_line_script_without_main_guard_builds_the_demo(tmp_path, how):
    if how == "file":
        script = tmp_path / "three_lines.py"
        script.write_text(DEMO_LINES)
        result = _run([str(script)], tmp_path)
    elif how == "stdin":
        result = _run(["-"], tmp_path, stdin=DEMO_LINES)
    else:
        result = _run(["-c", DEMO_LINES], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["10"]  # 10 speakers x 1 utterance
    assert "FileNotFoundError" not in result.stderr


def test_feature_and_executor_pools_from_stdin_after_tensorflow(tmp_path):
    """With TensorFlow loaded the feature pool cannot fork and the experiment's pool spawns: neither may re-run
    ``<stdin>`` (it used to break the pool: BrokenProcessPool)."""
    lines = (
        "import os, concurrent.futures as cf\n"
        "import tensorflow\n"
        "import privemo\n"
        "from privemo._util.processes import process_pool_context\n"
        "from privemo.features.acoustic import extract_acoustic\n"
        "t = privemo.load_corpus('demo', n_per_speaker=1, progress=False)\n"
        "f = extract_acoustic(t, n_jobs=2, chunk_size=2, progress=False)\n"
        "print(len(f), f.stats['n_computed'])\n"
        "with process_pool_context() as ctx, cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:\n"
        "    print(ctx.get_start_method(), pool.submit(os.getpid).result() != os.getpid())\n"
    )
    result = _run(["-"], tmp_path, stdin=lines)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["10", "10", "spawn", "True"]


def test_hidden_main_hides_the_main_module_from_new_processes_and_restores_it():
    main = sys.modules["__main__"]
    before = {name: vars(main).get(name, "missing") for name in ("__file__", "__spec__")}
    with hidden_main():
        with hidden_main():  # nested (or concurrent) pools
            data = multiprocessing.spawn.get_preparation_data("child")
        still_hidden = multiprocessing.spawn.get_preparation_data("child")
    after = {name: vars(main).get(name, "missing") for name in ("__file__", "__spec__")}
    for prep in (data, still_hidden):
        assert "init_main_from_name" not in prep and "init_main_from_path" not in prep
    assert after == before


def test_mp_context_policy():
    assert mp_context("spawn").get_start_method() == "spawn"
    if "forkserver" in multiprocessing.get_all_start_methods():
        assert mp_context("forkserver").get_start_method() == "forkserver"
    threaded = any(m in sys.modules for m in THREADED_RUNTIMES)
    if "fork" in multiprocessing.get_all_start_methods():
        assert (mp_context("auto").get_start_method() == "fork") is not threaded
    with pytest.raises(ValueError, match=r"argument `method`.*Received: method='thread'"):
        mp_context("thread")
    with pytest.raises(ValueError, match=r"argument `max_workers`.*Received: max_workers=0"):
        with process_pool(0):
            pass
    with pytest.raises(ValueError, match=r"argument `processes`.*Received: processes=True"):
        with worker_pool(True):
            pass


def _pid() -> int:
    return os.getpid()


def test_pool_workers_ignore_ctrl_c(tmp_path):
    """Ctrl-C in a terminal reaches the whole process group: the workers must not die of it (each would print a
    KeyboardInterrupt traceback); the command stops them itself (privemo.cli._interrupt)."""
    import signal
    import time

    with process_pool(1, method="spawn") as pool:
        pid = pool.submit(_pid).result(timeout=TIMEOUT_S)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert pool.submit(_pid).result(timeout=TIMEOUT_S) == pid  # the same worker, alive
    with worker_pool(1, method="spawn") as pool:
        pid = pool.apply(_pid)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert pool.apply(_pid) == pid


def test_an_exception_in_the_caller_stops_a_pools_running_task_at_once():
    """The workers ignore Ctrl-C, so a pool left by an exception (KeyboardInterrupt in the caller) terminates them
    rather than waiting for their tasks."""
    import time

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with process_pool(1, method="spawn") as pool:
            pool.submit(time.sleep, 60)
            pool.submit(_pid).result  # noqa: B018  (queued behind the long task)
            time.sleep(1.0)
            raise KeyboardInterrupt
    assert time.monotonic() - start < 30
