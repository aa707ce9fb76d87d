"""Ctrl-C and SIGTERM for privemo's long commands (``python -m privemo.reproduce``, ``python -m privemo.distributed``).

While a command runs inside ``Interrupt``:

- the **first** SIGINT (Ctrl-C) or SIGTERM stops the worker processes the command started (SIGTERM: a fold worker dies
  like a killed run, which ``--resume`` already survives) and raises ``KeyboardInterrupt`` in the main thread, so the
  run unwinds through its ``finally`` blocks (a distributed chief marks its plan "interrupted" and stops its servers)
  and the command prints one line, ``<prog>: interrupted; <how to continue>``, with the command that continues the run.
  Exit status 128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM. Nothing half-written is left under a final
  name: privemo writes every record, table, model and keras-tuner state file to a temporary name and renames it;
- a **second** signal stops at once: one line, the worker processes killed, no clean-up (a temporary file may stay
  behind; it is never read as a result), exit status 128 + its number. Python runs signal handlers only between
  bytecodes, so while the main thread sits in a long TensorFlow or gRPC call it would not see the signal; a watcher
  thread (``signal.set_wakeup_fd``: the C-level handler writes each signal's number to a pipe) counts them instead.

After an interrupt the command is ending: from then on a signal ends the process at once (``SIG_DFL``; Python's own
handler would print a ``KeyboardInterrupt`` traceback while the interpreter shuts down), unless someone else's handler
was installed before the command (then it is put back). A signal the command was started with ignored (``nohup``, a background job of a non-interactive shell) stays ignored.
Processes forked from the command inherit the handler: there SIGINT is ignored (the command stops them) and SIGTERM
ends the process as it would without a handler.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import signal
import threading
from typing import Sequence

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_STOP_WATCHER = 0  # byte that ends the watcher thread (no signal has number 0)
_active: list["Interrupt"] = []
_fork_hook: list[bool] = []


def command_line(module: str, argv: Sequence[str], *extra: str) -> str:
    """The shell command ``python -m <module> <argv>``, with each of ``extra`` appended unless ``argv`` has it."""
    words = list(argv)
    return shlex.join(["python", "-m", module, *words, *(flag for flag in extra if flag not in words)])


class Interrupt:
    """A context manager: inside it, SIGINT and SIGTERM stop the command as the module docstring says.

    Args:
        prog: the command's name in messages ("privemo.reproduce").
        how_to_continue: the end of the message, e.g. "continue with: python -m privemo.reproduce ... --resume".

    Entered outside the main thread it does nothing (only the main thread may set signal handlers). Use
    ``exit_status(status)`` on the status the command's body returned (130 after ``KeyboardInterrupt``) to get 128 + the
    signal's number.
    """

    def __init__(self, prog: str, how_to_continue: str):
        self.prog = prog
        self.how_to_continue = how_to_continue
        self.signum: int | None = None  # the first signal received
        self._owner: int | None = None
        self._raised = False
        self._previous: dict[int, object] = {}
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup = -1
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> "Interrupt":
        if threading.current_thread() is not threading.main_thread():
            return self
        self._owner = os.getpid()
        for signum in SIGNALS:
            previous = signal.getsignal(signum)
            if previous is not signal.SIG_IGN:
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        if self._previous and hasattr(os, "register_at_fork"):  # POSIX: the watcher thread
            read, write = os.pipe()
            os.set_blocking(write, False)  # the C-level handler must never block
            self._pipe = (read, write)
            self._old_wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
            if not _fork_hook:
                os.register_at_fork(after_in_child=_forget_in_child)
                _fork_hook.append(True)
            _active.append(self)
            self._watcher = threading.Thread(target=self._watch, name="privemo-interrupt", daemon=True)
            self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            _active.remove(self)
            read, write = self._pipe
            try:
                os.write(write, bytes([_STOP_WATCHER]))
            except OSError:  # the pipe is full of unread signal numbers: the watcher is busy stopping the process
                pass
            self._watcher.join(timeout=5.0)
            os.close(write)
            if not self._watcher.is_alive():
                os.close(read)
            self._pipe = self._watcher = None
        for signum, previous in self._previous.items():
            if self.signum is not None and previous in (signal.default_int_handler, signal.SIG_DFL):
                previous = signal.SIG_DFL  # the command is ending: a further signal ends it, without a traceback
            signal.signal(signum, previous)
        self._previous.clear()

    def exit_status(self, status: int) -> int:
        """128 + the signal's number when the command was interrupted (``status`` 130), else ``status``."""
        return 128 + self.signum if self.signum is not None and status == 130 else status

    def _handle(self, signum, frame) -> None:
        """The Python-level handler (main thread): the first signal raises KeyboardInterrupt; the watcher thread
        stops the process at a second one."""
        if os.getpid() != self._owner:  # a process forked from the command
            if signum == signal.SIGTERM:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        if self.signum is None:
            self.signum = signum
        if not self._raised:
            self._raised = True
            raise KeyboardInterrupt

    def _watch(self) -> None:
        received = 0
        while True:
            data = os.read(self._pipe[0], 64)
            for signum in data:
                if signum == _STOP_WATCHER:
                    return
                if signum not in SIGNALS:
                    continue
                received += 1
                if received == 1:
                    if self.signum is None:
                        self.signum = signum
                    _signal_children(signal.SIGTERM)
                else:
                    self._stop_at_once(signum)
            if not data:
                return

    def _stop_at_once(self, signum: int) -> None:
        _signal_children(signal.SIGKILL)
        os.write(2, f"{self.prog}: interrupted again: stopped at once; {self.how_to_continue}\n".encode("utf-8", "replace"))
        os._exit(128 + signum)


def _signal_children(signum: int) -> None:
    """Send ``signum`` to every live process this one started through ``multiprocessing`` (pool workers)."""
    for child in multiprocessing.active_children():
        try:
            os.kill(child.pid, signum)
        except (OSError, TypeError):  # already gone, or not started yet (pid None)
            pass


def _forget_in_child() -> None:
    """After a fork: the child's signals must not reach the parent's watcher through the inherited wakeup pipe."""
    if _active:
        _active.clear()
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:  # not the child's main thread (cannot happen on CPython >= 3.7; kept for safety)
            pass


__all__ = ["Interrupt", "command_line"]
