"""A quiet start: privemo's commands and worker processes do not print TensorFlow's C++ start-up log.

On a machine without a GPU, importing TensorFlow 2.21 prints lines such as ``Could not find cuda drivers on your
machine``, ``oneDNN custom operations are on``, ``All log messages before absl::InitializeLog() is called are written
to STDERR`` and, at the first operation, ``E0000 ... failed call to cuInit``. They describe no problem and bury
privemo's own output (which says which device trains, see ``privemo.nn.device.device_summary``).

``quiet_tensorflow()`` imports TensorFlow quietly. The commands call it in their ``main()``, the experiment's worker
processes in their set-up, and a notebook or script can call it (``privemo.quiet_tensorflow()``) before it uses Keras;
``import privemo`` itself changes nothing. It

* sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set the variable (the user's value always wins). TensorFlow reads it
  when it is imported; worker processes inherit it.
* runs ``import tensorflow`` with the stderr file descriptor pointed at a temporary file, because TensorFlow prints the
  lines above while it is being imported, before it reads that variable (absl logs everything to stderr until it is
  initialised; tensorflow/tensorflow#100442); afterwards everything it caught is written back to stderr except
  TensorFlow's log records below ``TF_CPP_MIN_LOG_LEVEL`` (the level the user asked for, or privemo's 3) and absl's
  "before InitializeLog" notice. Python warnings and any other output come through, after the import.
* sets TensorFlow's Python logger to ERROR (``quiet_python_log``).

Where TensorFlow is already imported, only the logger changes. ``PRIVEMO_VERBOSE=1`` in the environment, or
``show_tensorflow_log()`` (a command's ``--verbose``), turns all of this off, also in the worker processes started
afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import Any, Iterator

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
VERBOSE_ENV = "PRIVEMO_VERBOSE"
QUIET_LEVEL = "3"  # TensorFlow's C++ log: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR (FATAL only)

_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# absl ("I0000 00:00:1795846801.708597    5523 port.cc:153] ...") and older TSL ("2025-09-17 14:44:05.157831: I ...")
_RECORD = re.compile(rb"^(?:([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]\s]+\]|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) )")
_ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# the second line of cpu_feature_guard's INFO record
_CONTINUATION = b"To enable the following instructions:"

_state = {"set_level": False}


def verbose() -> bool:
    """True when the user asked for TensorFlow's own log (``PRIVEMO_VERBOSE`` set to anything but "" or "0")."""
    return os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0")


def quiet_tensorflow() -> Any:
    """Import TensorFlow without its C++ start-up log (see the module docstring) and return the module. Call it before
    anything imports TensorFlow or Keras; later it only quiets TensorFlow's Python logger. Safe to call any number of
    times."""
    if verbose():
        import tensorflow

        return tensorflow
    if LOG_LEVEL_ENV not in os.environ:
        os.environ[LOG_LEVEL_ENV] = QUIET_LEVEL
        _state["set_level"] = True
    if "tensorflow" not in sys.modules:
        with filtered_stderr():
            import tensorflow  # noqa: F401
    quiet_python_log()
    return sys.modules["tensorflow"]


def quiet_python_log() -> None:
    """TensorFlow's Python logger at ERROR: its warnings (e.g. "triggered tf.function retracing" when utterances of new
    padded lengths are predicted) describe no problem of the user's."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def show_tensorflow_log() -> None:
    """Let TensorFlow print its start-up log (a command's ``--verbose``): sets ``PRIVEMO_VERBOSE=1`` (inherited by worker
    processes) and removes the ``TF_CPP_MIN_LOG_LEVEL`` privemo set (a value the user set stays). Effective only before
    TensorFlow is imported in this process."""
    os.environ[VERBOSE_ENV] = "1"
    if _state["set_level"]:
        os.environ.pop(LOG_LEVEL_ENV, None)
        _state["set_level"] = False


def _level() -> int:
    try:
        return int(os.environ.get(LOG_LEVEL_ENV, "0"))
    except ValueError:
        return 0


def is_noise(line: bytes, level: int) -> bool:
    """Whether one line TensorFlow printed while being imported is below the log level ``level`` (see the module
    docstring); ``line`` may end with its newline."""
    if level < 1:
        return False
    text = line.rstrip(b"\r\n")
    if text == _ABSL_NOTICE:
        return True
    match = _RECORD.match(text)
    if match is None:
        return False
    return _SEVERITY[(match.group(1) or match.group(2)).decode()] < level


def filter_log(data: bytes, level: int) -> bytes:
    """``data`` without the lines ``is_noise`` drops (and the continuation line of a dropped CPU-feature record)."""
    kept = []
    dropped_previous = False
    for line in data.splitlines(keepends=True):
        if is_noise(line, level) or (dropped_previous and line.startswith(_CONTINUATION)):
            dropped_previous = True
            continue
        dropped_previous = False
        kept.append(line)
    return b"".join(kept)


def _flush_python_streams() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with file descriptor 2 (C and Python stderr) caught in a temporary file, then write what was caught
    back to stderr, less ``filter_log``'s lines. Does nothing where fd 2 cannot be redirected, or when the level is 0 or
    the user asked for verbose output."""
    level = _level()
    if level < 1 or verbose():
        yield
        return
    import tempfile

    _flush_python_streams()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr (e.g. pythonw): nothing to filter
        yield
        return
    catch = tempfile.TemporaryFile()
    os.dup2(catch.fileno(), 2)
    try:
        yield
    finally:
        _flush_python_streams()
        os.dup2(saved, 2)
        os.close(saved)
        catch.seek(0)
        out = filter_log(catch.read(), level)
        catch.close()
        while out:
            try:
                out = out[os.write(2, out):]
            except OSError:
                break


__all__ = ["quiet_tensorflow", "show_tensorflow_log", "filtered_stderr", "filter_log", "is_noise", "verbose"]
