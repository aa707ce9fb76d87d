"""How privemo starts worker processes, in one place: no pool may re-run the user's script.

Python's "spawn" and "forkserver" start methods tell every new process which module was ``__main__`` in the parent
(``__main__.__spec__`` or ``__main__.__file__``), and the child imports or runs it again before it runs its task. That is
why multiprocessing asks for an ``if __name__ == "__main__":`` guard. privemo cannot ask a newcomer for one: a three-line
script ``import privemo; t = privemo.load_corpus("demo"); print(len(t))`` would run again in every worker, block on the
corpus lock its parent holds, and the pool would wait forever (from ``python -`` the child fails instead, on a
``<stdin>`` file that does not exist, and the pool starts another one, forever).

privemo's workers only run privemo's own importable functions, so they never need the user's main module. While a
privemo pool runs, ``hidden_main()`` hides ``__main__.__file__`` and ``__main__.__spec__``; the children then start
with nothing but privemo and the parent's ``sys.path``. The attributes are restored when the pool is shut down. The
pools of Python's ``multiprocessing`` and ``concurrent.futures`` may start processes at any time while they run (a
replacement for a finished ``maxtasksperchild`` worker, a lazily started executor worker), so the attributes stay
hidden for the pool's whole lifetime, not only while it starts. A consequence: objects whose class is defined in the
user's script cannot be sent to privemo's workers (privemo never sends any).

Ctrl-C: every worker of these pools ignores SIGINT (``ignore_interrupt``). A Ctrl-C typed in a terminal reaches the
whole process group; the workers would each print a ``KeyboardInterrupt`` traceback. The command's own process stops
them instead (``privemo.cli._interrupt``), and a pool left by an exception terminates its workers.

Start methods (``mp_context``): "auto" forks where that is safe (no threaded ML runtime such as TensorFlow is loaded, so
no lock can be copied in a held state) and otherwise uses "forkserver" where the platform has it (fresh processes forked
from a small server that has imported the worker's modules once), else "spawn"; "forkserver" and "spawn" can be asked
for. Users: the demo synthesis ("forkserver": a fresh eSpeak engine per speaker), the feature extraction ("auto") and
the experiment's fold workers ("spawn", via ``process_pool_context``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import multiprocessing.context
import multiprocessing.pool
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterable, Iterator

#: modules that run their own thread pools: once one is loaded, a forked child may inherit a held lock and hang
THREADED_RUNTIMES = ("tensorflow", "torch", "jax")
_METHODS = ("auto", "forkserver", "spawn")

_lock = threading.Lock()
_depth = 0  # pools currently running with the main module hidden (they may be nested or run in several threads)
_saved: dict[str, Any] = {}
_MISSING = object()


@contextlib.contextmanager
def hidden_main() -> Iterator[None]:
    """Hide ``__main__.__file__`` and ``__main__.__spec__`` while the block runs, so that processes started by "spawn" or
    "forkserver" do not import or run the user's main module again (see the module docstring). Re-entrant and
    thread-safe: the attributes come back when the last of several overlapping blocks ends."""
    global _depth
    with _lock:
        if _depth == 0:
            main = sys.modules.get("__main__")
            _saved.clear()
            if main is not None:
                _saved["module"] = main
                namespace = vars(main)
                _saved["__file__"] = namespace.pop("__file__", _MISSING)
                _saved["__spec__"] = namespace.get("__spec__", _MISSING)
                if _saved["__spec__"] is not _MISSING:
                    namespace["__spec__"] = None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and "module" in _saved:
                namespace = vars(_saved["module"])
                for name in ("__file__", "__spec__"):
                    if _saved[name] is not _MISSING:
                        namespace[name] = _saved[name]
                _saved.clear()


def available_cpus() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def mp_context(method: str = "auto", *, preload: Iterable[str] = ()) -> multiprocessing.context.BaseContext:
    """The multiprocessing context privemo's pools use.

    Args:
        method: "auto" (the default): "fork" where safe (the platform has it and no module of ``THREADED_RUNTIMES``
            is loaded), else "forkserver" where available, else "spawn". "forkserver": never fork the caller itself
            (falls back to "spawn" where unavailable). "spawn": always spawn (e.g. for workers that import TensorFlow
            themselves and should inherit nothing).
        preload: modules the fork server imports once, so that each worker forked from it starts without importing
            them again (only used with "forkserver"; the server is shared by the whole process, so the list is kept
            only if the server has not been started yet).

    Returns:
        A ``multiprocessing`` context.
    """
    if method not in _METHODS:
        raise ValueError(f"Invalid value received for argument `method`. Expected one of {list(_METHODS)}. "
                         f"Received: method={method!r}")
    available = multiprocessing.get_all_start_methods()
    if method == "auto" and "fork" in available and not any(m in sys.modules for m in THREADED_RUNTIMES):
        return multiprocessing.get_context("fork")
    if method in ("auto", "forkserver") and "forkserver" in available:
        ctx = multiprocessing.get_context("forkserver")
        preload = [str(m) for m in preload]
        if preload:
            ctx.set_forkserver_preload(preload)
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def process_pool_context(
    method: str = "spawn", *, preload: Iterable[str] = ()
) -> Iterator[multiprocessing.context.BaseContext]:
    """A multiprocessing context (see ``mp_context``; default "spawn") for a pool that lives inside the block, with the
    user's main module hidden from the processes it starts (``hidden_main``).

    The pool must be shut down before the block ends, e.g.
    ``with process_pool_context() as ctx, ProcessPoolExecutor(n, mp_context=ctx) as pool: ...`` (the executor's
    ``with`` ends first and waits for its workers).
    """
    ctx = mp_context(method, preload=preload)
    with hidden_main():
        yield ctx


def ignore_interrupt(initializer: Callable[..., object] | None = None, *initargs: Any) -> None:
    """A pool worker's first step: ignore SIGINT (see the module docstring), then run the pool's own ``initializer``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def _terminate(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Stop a ``ProcessPoolExecutor``'s workers now: they ignore Ctrl-C, so without this an exception in the caller
    would wait for every running task to end. (The executor keeps its processes in ``_processes``; it has no public way
    to stop them.)"""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, AttributeError):
            process.terminate()


@contextlib.contextmanager
def process_pool(
    max_workers: int,
    *,
    method: str = "spawn",
    initializer: Callable[..., object] | None = None,
    initargs: tuple = (),
    preload: Iterable[str] = (),
) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A ``concurrent.futures.ProcessPoolExecutor`` whose workers never re-run the user's main module.

    Use it as ``with process_pool(n, initializer=f, initargs=(...)) as pool: ...``; the pool is shut down (waiting for
    running tasks) when the block ends normally, its workers terminated when it ends with an exception (Ctrl-C
    included), and only then is ``__main__`` restored. Workers ignore SIGINT.

    Args:
        max_workers: number of worker processes (>= 1).
        method: start method, see ``mp_context``; default "spawn" (workers that import TensorFlow).
        initializer, initargs: as for ``ProcessPoolExecutor``; must be importable functions (not from ``__main__``).
        preload: see ``mp_context``.
    """
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"Invalid value received for argument `max_workers`. Expected a positive int. "
                         f"Received: max_workers={max_workers!r}")
    with process_pool_context(method, preload=preload) as ctx:
        with concurrent.futures.ProcessPoolExecutor(max_workers, mp_context=ctx, initializer=ignore_interrupt,
                                                    initargs=(initializer, *initargs)) as pool:
            try:
                yield pool
            except BaseException:
                _terminate(pool)
                raise


@contextlib.contextmanager
def worker_pool(
    processes: int,
    *,
    method: str = "auto",
    maxtasksperchild: int | None = None,
    preload: Iterable[str] = (),
) -> Iterator[multiprocessing.pool.Pool]:
    """A ``multiprocessing.Pool`` whose workers never re-run the user's main module.

    When the block ends normally the pool is closed and joined (running tasks finish); when it ends with an exception
    (Ctrl-C included) the workers are terminated. Only then is ``__main__`` restored. Workers ignore SIGINT.

    Args:
        processes: number of worker processes (>= 1).
        method: start method, see ``mp_context``.
        maxtasksperchild: as for ``multiprocessing.Pool`` (1: a fresh process for every task).
        preload: see ``mp_context``.
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"Invalid value received for argument `processes`. Expected a positive int. "
                         f"Received: processes={processes!r}")
    with process_pool_context(method, preload=preload) as ctx:
        pool = ctx.Pool(processes=processes, maxtasksperchild=maxtasksperchild, initializer=ignore_interrupt)
        try:
            yield pool
        except BaseException:
            pool.terminate()
            raise
        else:
            pool.close()
        finally:
            pool.join()  # no process starts after this, so __main__ can be restored


__all__ = ["hidden_main", "ignore_interrupt", "mp_context", "process_pool_context", "process_pool", "worker_pool", "THREADED_RUNTIMES"]
