"""Ctrl-C and SIGTERM (``privemo.cli._interrupt``): a real ``reproduce`` run and a real distributed chief stop with one
line that holds the command to continue, leave only complete files and no process behind, and the printed ``--resume``
command finishes the run; a second signal stops at once even while the first is still being handled."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = 6  # utterances per speaker of the demo corpus (60 in all)
ARGS = ["--demo-size", str(SMALL), "--modality", "acoustic", "--task", "activation", "--adversary", "none", "gender",
        "--only-fold", "0", "--epochs", "1", "--patience", "1", "--quiet"]
TIMEOUT = 240  # seconds any one wait may take (a job takes ~15 s on 2 busy cores)


def environment() -> dict:
    # PRIVEMO_DATA / PRIVEMO_CACHE: the test run's own (tests/conftest.py), so the demo corpus is built once per run
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")


def start(args: list[str], log: Path) -> subprocess.Popen:
    """The command in its own session (process group), stderr to ``log``."""
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                                stderr=err, text=True, start_new_session=True)


def wait_for(proc: subprocess.Popen, condition, what: str, log: Path):
    start_time = time.monotonic()
    while time.monotonic() - start_time < TIMEOUT:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"never reached: {what} (exit status {proc.poll()}); stderr:\n{log.read_text()[-3000:]}")


def running_trial(out: Path) -> bool:
    for file in (out / "work" / "tuning").glob("*/fold0/trial_*/trial.json"):
        try:
            if json.loads(file.read_text())["status"] == "RUNNING":
                return True
        except (OSError, ValueError, KeyError):  # being replaced: look again
            pass
    return False


def group_gone(pgid: int, timeout: float = 20.0) -> bool:
    """True once no process of the group is left (the command's pool workers included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def one_line(log: Path) -> str:
    """The one line a command printed on stderr, progress bars aside (the demo corpus synthesised on first use shows
    one even with --quiet)."""
    text = log.read_text()
    assert "Traceback" not in text, text
    lines = [line for line in text.strip().splitlines() if not re.search(r"\d+%\|", line)]
    assert len(lines) == 1, text
    return lines[0]


def test_ctrl_c_on_reproduce_stops_with_the_resume_command_which_then_finishes(tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "interrupted.log"
    proc = start(["-m", "privemo.reproduce", *ARGS, "--jobs", "2", "--out", str(out)], log)
    wait_for(proc, lambda: running_trial(out), "a trial running in a worker process", log)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)  # to the command only: it stops its worker processes itself
    assert proc.wait(timeout=60) == 130
    assert time.monotonic() - sent < 30
    line = one_line(log)
    prefix = "privemo.reproduce: interrupted; continue with: "
    assert line.startswith(prefix), line
    command = shlex.split(line[len(prefix):])
    assert command[:3] == ["python", "-m", "privemo.reproduce"] and command[-1] == "--resume", command
    assert command[3:-1] == [*ARGS, "--jobs", "2", "--out", str(out)]
    assert group_gone(proc.pid), "a worker process outlived the interrupted command"
    assert not (out / "table1a.csv").exists()  # stopped before the end
    for file in out.rglob("*.json"):  # every file under a final name is complete
        if not file.name.startswith("."):
            json.loads(file.read_text())

    log = tmp_path / "resumed.log"
    resumed = start(command[1:], log)  # the printed command, run by this interpreter
    stdout, _ = resumed.communicate(timeout=TIMEOUT * 2)
    assert resumed.returncode == 0, log.read_text()[-3000:]
    assert (out / "table1a.csv").is_file() and (out / "manifest.json").is_file()
    for key in ("acoustic-activation-baseline", "acoustic-activation-gender-fused"):
        record = json.loads((out / "folds" / key / "fold0.json").read_text())
        assert record["fold"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_on_a_distributed_chief_marks_its_plan_and_prints_the_resume_command(tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "chief.log"
    args = ["-m", "privemo.distributed", "--role", "chief", "--port", str(_free_port()),
            *[a for a in ARGS if a != "gender"], "--out", str(out)]
    proc = start(args, log)
    plan = out / "work" / "distributed" / "plan.json"

    def serving():
        try:
            return json.loads(plan.read_text())["status"] == "running"
        except (OSError, ValueError, KeyError):
            return False

    wait_for(proc, serving, "the chief serving its plan", log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    line = one_line(log)
    prefix = "privemo.distributed: interrupted; restart the chief with --resume to continue: "
    assert line.startswith(prefix), line
    assert shlex.split(line[len(prefix):]) == ["python", *args, "--resume"]
    assert json.loads(plan.read_text())["status"] == "interrupted"  # workers of this session stop waiting
    assert group_gone(proc.pid)


SLOW_TO_STOP = """
import multiprocessing, sys, time
from privemo.cli._interrupt import Interrupt

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(120,))
    child.start()
    with Interrupt("prog", "continue with: prog --resume") as interrupt:
        try:
            print("running", flush=True)
            time.sleep(120)
        except KeyboardInterrupt:
            child.join(timeout=20)  # the first signal stopped the worker process
            print(f"unwinding {child.exitcode}", flush=True)
            time.sleep(120)  # a clean-up far too slow to wait for: a second signal must not wait
    sys.exit(interrupt.exit_status(130))
"""


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_signal_stops_at_once_while_the_first_is_being_handled(tmp_path, second):
    log = tmp_path / "err.log"
    proc = start(["-c", SLOW_TO_STOP], log)
    assert proc.stdout.readline() == "running\n"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline() == f"unwinding {-signal.SIGTERM}\n"
    sent = time.monotonic()
    proc.send_signal(second)
    assert proc.wait(timeout=30) == 128 + second
    assert time.monotonic() - sent < 5
    assert one_line(log) == "prog: interrupted again: stopped at once; continue with: prog --resume"
    assert group_gone(proc.pid)
