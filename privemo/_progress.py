"""Progress of a run: one line per finished job with the jobs done, elapsed time and an estimate of the time left.

The estimate weighs each pending job by the mean time of finished jobs of its own kind (e.g. its modality: an acoustic
network costs several times a lexical one), falling back to the mean over all finished jobs, and divides by the number
of workers.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Sequence


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Counts finished jobs and estimates the time left.

    Args:
        pending: the kinds (any hashable, e.g. a modality) of the jobs still to run.
        total: jobs of the whole run (finished earlier ones included).
        workers: jobs that run at the same time.
        report: where lines go.
    """

    def __init__(self, pending: Sequence[Hashable], total: int, workers: int, report: Callable[[str], None]):
        self.pending = list(pending)
        self.total, self.workers, self.report = int(total), max(1, int(workers)), report
        self.done = self.total - len(self.pending)
        self.seconds: dict[Hashable, list[float]] = {}
        self.start = time.perf_counter()

    def estimate_left(self) -> float | None:
        """Seconds left, or None before any job finished."""
        every = [s for values in self.seconds.values() for s in values]
        if not every:
            return None
        overall = sum(every) / len(every)
        cost = sum(sum(self.seconds[k]) / len(self.seconds[k]) if k in self.seconds else overall for k in self.pending)
        return cost / min(self.workers, max(1, len(self.pending)))

    def finished(self, kind: Hashable, seconds: float, text: str) -> None:
        """Record one finished job (``seconds`` of its own time) and report ``text`` with the run's progress."""
        if kind in self.pending:
            self.pending.remove(kind)
        self.seconds.setdefault(kind, []).append(float(seconds))
        self.done += 1
        left = self.estimate_left()
        elapsed = time.perf_counter() - self.start
        eta = "" if left is None else f", about {format_seconds(left)} left"
        self.report(f"[{self.done}/{self.total} | {format_seconds(elapsed)} elapsed{eta}] {text}")
