"""Progress of a run: one progress bar (jobs done / total, elapsed, estimated time left) and one line per finished job.

On a terminal the bar stays at the bottom (tqdm) and the job lines scroll above it; in a log file (no terminal) each job
line carries the same figures as a prefix instead.

The estimate weighs each pending job by the mean time of finished jobs of its own kind (e.g. its modality: an acoustic
network costs several times a lexical one), falling back to the mean over all finished jobs, and divides by the number
of workers.
"""

from __future__ import annotations

import sys
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

    def __init__(self, pending: Sequence[Hashable], total: int, workers: int, report: Callable[[str], None],
                 *, bar: bool = False):
        self.pending = list(pending)
        self.total, self.workers, self.report = int(total), max(1, int(workers)), report
        self.done = self.total - len(self.pending)
        self.seconds: dict[Hashable, list[float]] = {}
        self.start = time.perf_counter()
        self.bar = None
        if bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc="privemo", unit="job", file=sys.stderr,
                            bar_format="{desc}: {n}/{total} jobs |{bar}| {elapsed} elapsed{postfix}", leave=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

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
        eta = "" if left is None else f", about {format_seconds(left)} left"
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
            self.bar.set_postfix_str(eta.lstrip(", "), refresh=False)
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.start
        self.report(f"[{self.done}/{self.total} | {format_seconds(elapsed)} elapsed{eta}] {text}")
