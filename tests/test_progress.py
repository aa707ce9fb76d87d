"""The run's progress lines: jobs done, elapsed time and an estimate of the time left weighted by job kind."""

from __future__ import annotations

from privemo._util.progress import Progress, format_seconds


def test_estimate_weighs_pending_jobs_by_their_kind_and_divides_by_workers():
    lines: list[str] = []
    progress = Progress(["slow", "slow", "fast", "fast", "fast"], total=6, workers=2, report=lines.append)
    assert progress.done == 1 and progress.estimate_left() is None  # one job finished in an earlier run
    progress.finished("slow", 100.0, "first")
    # pending: 1 slow (100 s) + 3 fast (unknown yet: the mean over finished jobs, 100 s) over 2 workers
    assert progress.estimate_left() == 200.0
    progress.finished("fast", 10.0, "second")
    assert progress.estimate_left() == (100 + 10 + 10) / 2
    assert lines[0].startswith("[2/6 | 0:00 elapsed, about 3:20 left] first")
    assert lines[1].startswith("[3/6 |") and lines[1].endswith("second")


def test_format_seconds():
    assert format_seconds(59.6) == "1:00"
    assert format_seconds(3725) == "1:02:05"
    assert format_seconds(-3) == "0:00"


def test_bar_mode_writes_the_job_lines_above_one_bar(capsys):
    lines: list[str] = []
    progress = Progress(["a", "b"], total=2, workers=1, report=lines.append, bar=True)
    progress.finished("a", 1.0, "job a done")
    progress.finished("b", 1.0, "job b done")
    progress.close()
    err = capsys.readouterr().err
    assert "job a done" in err and "job b done" in err and lines == []  # the lines go through the bar, not the report
