"""Fault injection on a small demo configuration (issue 27): does a long run survive, and are its tables unchanged?

    python benchmarks/faults.py [--faults a,b,c,d,e,f] [--workdir DIR] [--csv results/faults.csv]

Every run is the real command (``python -m privemo.reproduce`` / ``python -m privemo.distributed``) in its own process
group, on the demo corpus with 6 utterances per speaker: acoustic modality, activation, no adversary and the gender
adversary (1 + 4 trials of the quick grid), fold 0, 2 epochs, patience 1, one fold process (``--jobs 1``). The faults:

(a) ``kill -9`` one of two distributed workers while it trains a trial (chief with ``--trial-timeout 20``); nothing
    is restarted: the chief takes the silent worker's trial back after 20 s and the other worker trains it (same trial,
    same seed) and the rest of the grid;
(b) ``kill -9`` the chief as soon as a trial has completed and another has started (its ``trial.json`` written: the
    moment a chief can die between a trial's file and its own state), then start the chief again with ``--resume`` on
    the same ports: the workers, inside a trial or between trials, ask the chief again with back-off (1, 2, 4 .. s)
    and carry on with the new chief;
(c) SIGINT (Ctrl-C, to the whole process group as a terminal sends it) on ``reproduce`` while it trains a trial, then
    the ``--resume`` command it prints;
(d) no space left on the device while the run writes: from the middle of the run (the N-th of the reference run's
    writes through privemo's atomic-write layer, ``privemo._util.io._write_file``) every write fails with ``ENOSPC``;
    the run must stop with one line naming the file; then ``--resume`` with space again;
(e) a truncated feature-cache file (one shard's ``.npy`` cut to half its size) before a run;
(f) ``kill -9`` the chief as in (b) and leave it dead: both workers (``--chief-timeout 15``), one of them inside a
    trial, must stop with one line after about 15 s; then the chief is started again with ``--resume`` and the
    workers with their own commands, and the run finishes.

Reported per fault (``results/faults.csv``): injected (the fault happened where intended), survived (the run finished
after the recovery step named in ``recovery``), finished trials lost (a trial completed before the fault whose checkpoint
was written again, or is gone), trials in flight (started, not completed at the fault, in any process: the killed
process's trials are trained again from their start, others finish), and whether the final tables (every ``*.csv`` and ``*.md`` the run writes:
table1a, claims, lambda_sweep, reference) are byte-identical to an uninterrupted run of the same configuration
(``reproduce`` for c-e, a chief with two workers for a, b and f), with the differing files named. A run of some of
the faults keeps the other faults' rows of the CSV it writes. The single-process
comparisons and (d), (e) also run in the tests (tests/test_faults.py), on a smaller configuration.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SMALL = 6  # utterances per speaker of the demo corpus (60 in all)
FLAGS = ["--demo-size", str(SMALL), "--modality", "acoustic", "--task", "activation", "--adversary", "none", "gender",
         "--only-fold", "0", "--epochs", "2", "--patience", "1", "--jobs", "1", "--quiet"]
TIMEOUT_S = 600.0  # any one wait
LEASE_S = 20  # --trial-timeout of fault (a): an epoch of this configuration takes a few seconds
CHIEF_GONE_S = 15  # --chief-timeout of the workers of fault (f)
COLUMNS = ["fault", "injected", "survived", "recovery", "exit_status", "message", "finished_trials_lost",
           "trials_in_flight", "tables_identical", "differing_files", "seconds"]

# A reproduce run whose writes through privemo's atomic-write layer are counted, and fail with ENOSPC from the N-th on
# (argv[1] = N, 0: never; argv[2] = the file the count is written to at exit). The fault only; the code is the real one.
ENOSPC_DRIVER = """
import atexit, errno, os, sys
import privemo._util.io as io
limit, count_file = int(sys.argv[1]), sys.argv[2]
real, count = io._write_file, [0]
def write_file(path, data):
    count[0] += 1
    if limit and count[0] >= limit:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(path, data)
io._write_file = write_file
atexit.register(lambda: open(count_file, "w").write(str(count[0])))
from privemo.cli.reproduce import main
sys.exit(main(sys.argv[3:]))
"""


# --------------------------------------------------------------------------------------------------------------------
# What a run left on disk


def tables(out: Path) -> dict[str, bytes]:
    """The final tables of a run: every ``*.csv`` and ``*.md`` directly in ``out``."""
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.csv")) + sorted(out.glob("*.md"))}


def differing(out: Path, reference: Path) -> list[str]:
    """Names of the tables that differ between two runs (a table only one of them has included)."""
    mine, theirs = tables(out), tables(reference)
    return sorted(name for name in set(mine) | set(theirs) if mine.get(name) != theirs.get(name))


def completed_trials(out: Path) -> dict[str, tuple[int, int] | None]:
    """trial folder -> (inode, mtime) of its checkpoint, for every trial whose state file says COMPLETED."""
    found = {}
    for state in (out / "work" / "tuning").glob("*/fold*/trial_*/trial.json"):
        try:
            if json.loads(state.read_text())["status"] != "COMPLETED":
                continue
        except (OSError, ValueError, KeyError):
            continue
        checkpoint = state.parent / "checkpoint.weights.h5"
        found[str(state.parent)] = _stamp(checkpoint)
    return found


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def lost_trials(before: dict[str, tuple[int, int] | None], out: Path) -> int:
    """Trials completed before the fault whose checkpoint is gone or was written again since."""
    return sum(1 for folder, stamp in before.items() if _stamp(Path(folder) / "checkpoint.weights.h5") != stamp)


def running_trial(out: Path, condition: str | None = None) -> Path | None:
    """A trial folder whose state file says RUNNING (in ``condition``'s project if given)."""
    for state in sorted((out / "work" / "tuning").glob(f"{condition or '*'}/fold*/trial_*/trial.json")):
        try:
            if json.loads(state.read_text())["status"] == "RUNNING":
                return state.parent
        except (OSError, ValueError, KeyError):  # being replaced: look again
            pass
    return None


# --------------------------------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A command in its own process group, stdout and stderr to files."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.log = log
        with open(log, "w") as err, open(log.with_suffix(".out"), "w") as out:
            self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=err,
                                         start_new_session=True)

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, condition: Callable, what: str, timeout: float = TIMEOUT_S, interval: float = 0.05):
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            value = condition()
            if value:
                return value
            if self.proc.poll() is not None:
                break
            time.sleep(interval)
        raise RuntimeError(f"never reached: {what} (exit status {self.proc.poll()}); stderr:\n{self.stderr()[-2000:]}")

    def signal_group(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)

    def finish(self, timeout: float = TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait()
            raise RuntimeError(f"{self.log.name}: still running after {timeout:.0f} s; stderr:\n{self.stderr()[-2000:]}")

    def kill(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.proc.wait()


def environment(base: Path, cache: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", PRIVEMO_DATA=str(base / "data"),
               PRIVEMO_CACHE=str(cache or base / "cache"))
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    return env


def reproduce(out: Path, env: dict, log: Path, *extra: str, writes: tuple[int, Path] | None = None) -> Proc:
    """``python -m privemo.reproduce`` (through ``ENOSPC_DRIVER`` when ``writes`` = (limit, count file))."""
    args = [*FLAGS, "--out", str(out), *extra]
    if writes is None:
        return Proc(["-m", "privemo.reproduce", *args], env, log)
    return Proc(["-c", ENOSPC_DRIVER, str(writes[0]), str(writes[1]), *args], env, log)


def free_ports(n: int) -> int:
    """A base port with ``n`` free ports above it (checked now; races are unlikely on loopback)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


class Distributed:
    """A chief and two workers of ``python -m privemo.distributed`` on loopback, sharing ``out``."""

    def __init__(self, out: Path, env: dict, logs: Path, port: int):
        self.out, self.env, self.logs, self.port = out, env, logs, port
        # without --quiet: the workers' log says which trial each trains
        self.flags = [*(f for f in FLAGS if f != "--quiet"), "--out", str(out), "--port", str(port)]
        self.chief: Proc | None = None
        self.workers: dict[int, Proc] = {}

    def start_chief(self, *extra: str, name: str = "chief") -> Proc:
        self.chief = Proc(["-m", "privemo.distributed", "--role", "chief", "--linger", "30", *self.flags, *extra],
                          self.env, self.logs / f"{name}.log")
        return self.chief

    def start_all(self, *chief_extra: str, worker_extra: tuple[str, ...] = ()) -> None:
        """The chief (with ``chief_extra`` flags), then workers 0 and 1 (with ``worker_extra``)."""
        self.start_chief(*chief_extra)
        self.start_worker(0, extra=worker_extra)
        self.start_worker(1, extra=worker_extra)

    def start_worker(self, i: int, name: str | None = None, extra: tuple[str, ...] = ()) -> Proc:
        self.workers[i] = Proc(["-m", "privemo.distributed", "--role", "worker", "--worker-id", str(i), "--threads",
                                "1", *self.flags, *extra], self.env, self.logs / f"{name or f'worker{i}'}.log")
        return self.workers[i]

    def worker_trial(self, i: int) -> str | None:
        """The project and trial id worker ``i`` says it is training ("[worker tuner<i>] <project>: trial <id> ...")."""
        found = re.findall(rf"\[worker tuner{i}\] (\S+): trial (\d+) ", self.workers[i].stderr())
        return f"{found[-1][0]}/trial_{found[-1][1]}" if found else None

    def finish(self) -> int:
        status = self.chief.finish()
        for worker in self.workers.values():
            try:
                worker.finish(timeout=120)
            except RuntimeError:
                pass
        return status

    def stop(self) -> None:
        for proc in (self.chief, *self.workers.values()):
            if proc is not None:
                proc.kill()


# --------------------------------------------------------------------------------------------------------------------
# The faults


def row(fault: str, **values) -> dict:
    return {column: values.get(column, "") for column in COLUMNS} | {"fault": fault}


def one_line(text: str) -> str:
    """The last non-empty line of a command's stderr."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def fault_sigint(base: Path, reference: Path) -> dict:
    """(c) SIGINT to reproduce's process group while a gender-adversary trial trains, then the printed command."""
    t0 = time.perf_counter()
    out, env = base / "c-sigint", environment(base)
    run = reproduce(out, env, base / "c-1.log")
    run.wait_for(lambda: running_trial(out, "*gender*"), "a gender-adversary trial running")
    before = completed_trials(out)
    rerun = _interrupted(out, before)
    run.signal_group(signal.SIGINT)
    status = run.finish()
    message = one_line(run.stderr())
    injected = status == 130 and "Traceback" not in run.stderr()
    command = message.split("continue with: ", 1)[1] if "continue with: " in message else ""
    args = shlex.split(command)[1:] if command else []  # "python -m privemo.reproduce ..." without "python"
    resumed = Proc(args, env, base / "c-2.log") if args else None
    final = resumed.finish() if resumed else None
    return row("c: SIGINT on reproduce, then the printed --resume command", injected=injected,
               survived=final == 0, recovery="the printed --resume command", exit_status=status, message=message,
               finished_trials_lost=lost_trials(before, out), trials_in_flight=rerun,
               **_compare(out, reference), seconds=round(time.perf_counter() - t0, 1))


def fault_enospc(base: Path, reference: Path, total_writes: int) -> dict:
    """(d) ENOSPC from the middle of the run's writes on; then --resume with space."""
    t0 = time.perf_counter()
    out, env = base / "d-enospc", environment(base)
    limit = max(2, total_writes // 2)
    run = reproduce(out, env, base / "d-1.log", writes=(limit, base / "d-1.count"))
    status = run.finish()
    before = completed_trials(out)
    rerun = _interrupted(out, before)
    message = one_line(run.stderr())
    injected = (status == 2 and "cannot write: No space left on device" in message
                and len(run.stderr().strip().splitlines()) == 1)
    leftovers = [str(p.relative_to(out)) for p in out.rglob("*.tmp")]
    final = reproduce(out, env, base / "d-2.log", "--resume").finish()
    return row("d: no space left while writing, then --resume", injected=injected, survived=final == 0,
               recovery="--resume once there is space", exit_status=status,
               message=message + (f" [temporary files left: {leftovers}]" if leftovers else ""),
               finished_trials_lost=lost_trials(before, out), trials_in_flight=rerun,
               **_compare(out, reference), seconds=round(time.perf_counter() - t0, 1))


def fault_truncated_cache(base: Path, reference: Path) -> dict:
    """(e) One feature shard cut to half its size, then a fresh run on that cache."""
    t0 = time.perf_counter()
    cache = base / "e-cache"
    shutil.copytree(base / "cache", cache)
    shards = sorted((cache / "features").glob("*/logmfb-*/shard-*.npy"))
    damaged = shards[0]
    with open(damaged, "r+b") as fh:
        fh.truncate(damaged.stat().st_size // 2)
    out = base / "e-truncated"
    run = reproduce(out, environment(base, cache), base / "e.log")
    status = run.finish()
    rebuilt = not damaged.exists() and len(list(damaged.parent.glob("shard-*.npy"))) >= 1
    return row("e: a truncated feature-cache file", injected=bool(shards), survived=status == 0 and rebuilt,
               recovery="none needed: the damaged shard is deleted and its utterances computed again",
               exit_status=status, message=one_line(run.stderr()) if status else "",
               finished_trials_lost=0, trials_in_flight=0, **_compare(out, reference),
               seconds=round(time.perf_counter() - t0, 1))


def _distributed(base: Path, out_name: str, logs_name: str) -> tuple[Path, Distributed]:
    """The output folder and a not yet started chief-and-two-workers run of one distributed fault."""
    out, logs = base / out_name, base / logs_name
    logs.mkdir(exist_ok=True)
    return out, Distributed(out, environment(base), logs, free_ports(2))


def fault_worker_killed(base: Path, reference: Path) -> dict:
    """(a) kill -9 one of two workers mid-trial; the other worker finishes the search alone (trial leases)."""
    t0 = time.perf_counter()
    out, run = _distributed(base, "a-worker", "a-logs")
    try:
        run.start_all("--trial-timeout", str(LEASE_S))
        trial = run.workers[1].wait_for(lambda: run.worker_trial(1), "worker 1 training a trial")
        folder = out / "work" / "tuning" / trial.replace(":", "")
        # inside the trial: its state file says RUNNING, no checkpoint yet
        run.workers[1].wait_for(lambda: running_trial(out) is not None, "a running trial")
        before = completed_trials(out)
        rerun = _interrupted(out, before)
        injected = not (folder / "checkpoint.weights.h5").exists()
        run.workers[1].kill()
        status = run.finish()
        taken_back = "handed out again" in run.chief.stderr()
    finally:
        run.stop()
    return row("a: kill -9 one of two distributed workers mid-trial", injected=injected,
               survived=status == 0 and taken_back,
               recovery=f"none: the chief took the trial back after --trial-timeout {LEASE_S} s, the other worker "
                        "trained it",
               exit_status=status, finished_trials_lost=lost_trials(before, out), trials_in_flight=rerun,
               **_compare(out, reference), seconds=round(time.perf_counter() - t0, 1))


def fault_chief_killed(base: Path, reference: Path) -> dict:
    """(b) kill -9 the chief while a worker trains a trial; the chief is started again with --resume."""
    t0 = time.perf_counter()
    out, run = _distributed(base, "b-chief", "b-logs")
    try:
        run.start_all()
        run.chief.wait_for(lambda: completed_trials(out) and running_trial(out), "a trial done and another running")
        before = completed_trials(out)
        rerun = _interrupted(out, before)
        run.chief.kill()
        injected = True
        time.sleep(2.0)
        run.start_chief("--resume", name="chief-again")
        status = run.finish()
    finally:
        run.stop()
    return row("b: kill -9 the chief mid-search, restart with --resume", injected=injected, survived=status == 0,
               recovery="the chief started again with --resume on the same ports; workers kept running",
               exit_status=status, finished_trials_lost=lost_trials(before, out), trials_in_flight=rerun,
               **_compare(out, reference), seconds=round(time.perf_counter() - t0, 1))


def fault_chief_gone(base: Path, reference: Path) -> dict:
    """(f) kill -9 the chief while a worker trains a trial and leave it dead: the workers stop after --chief-timeout with
    one line; then the chief (--resume) and the workers (their own commands) are started again."""
    t0 = time.perf_counter()
    out, run = _distributed(base, "f-chief-gone", "f-logs")
    flags = ("--chief-timeout", str(CHIEF_GONE_S))
    stopped = {}
    try:
        run.start_all(worker_extra=flags)

        def training() -> list[int]:  # the workers whose last trial's state file says RUNNING
            found = []
            for i in run.workers:
                trial = run.worker_trial(i)
                state = out / "work" / "tuning" / trial / "trial.json" if trial else None
                try:
                    if state is not None and json.loads(state.read_text())["status"] == "RUNNING":
                        found.append(i)
                except (OSError, ValueError, KeyError):
                    pass
            return found

        inside = run.chief.wait_for(lambda: completed_trials(out) and training(), "a trial done and another running")
        before = completed_trials(out)
        rerun = _interrupted(out, before)
        run.chief.kill()
        killed = time.monotonic()
        for i, worker in run.workers.items():
            stopped[i] = (worker.finish(timeout=CHIEF_GONE_S + 120), time.monotonic() - killed,
                          worker.stderr().strip().splitlines()[-1:])
        run.start_chief("--resume", name="chief-again")
        for i in list(run.workers):
            run.start_worker(i, name=f"worker{i}-again", extra=flags)
        status = run.finish()
    finally:
        run.stop()
    expected = f"has not answered for {CHIEF_GONE_S} s (--chief-timeout)"
    one_line_stop = all(code == 2 and last and expected in last[0] for code, _, last in stopped.values())
    slowest = max(seconds for _, seconds, _ in stopped.values())
    message = next(iter(stopped.values()))[2][0] if stopped and next(iter(stopped.values()))[2] else ""
    return row(f"f: kill -9 the chief mid-trial and leave it dead (--chief-timeout {CHIEF_GONE_S})",
               injected=bool(inside), survived=status == 0 and one_line_stop,
               recovery=f"both workers stopped with one line {slowest:.1f} s after the kill (worker inside a trial: "
                        f"{', '.join(f'tuner{i}' for i in inside)}); chief started again with --resume, workers with "
                        "their own commands",
               exit_status=status, message=re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", message),
               finished_trials_lost=lost_trials(before, out), trials_in_flight=rerun, **_compare(out, reference),
               seconds=round(time.perf_counter() - t0, 1))


def _interrupted(out: Path, completed: dict) -> int:
    """Trials started but not completed at the fault (``completed``: those completed then)."""
    started = {str(p.parent) for p in (out / "work" / "tuning").glob("*/fold*/trial_*/trial.json")}
    return len(started - set(completed))


def _compare(out: Path, reference: Path) -> dict:
    diff = differing(out, reference)
    return {"tables_identical": bool(tables(out)) and not diff, "differing_files": " ".join(diff)}


# --------------------------------------------------------------------------------------------------------------------


def reference_runs(base: Path, faults: set[str]) -> dict[str, Path | int]:
    """The uninterrupted runs: reproduce (also counting its writes) and, for a / b, a chief with two workers."""
    refs: dict[str, Path | int] = {}
    env = environment(base)
    out = base / "reference"
    count = base / "reference.count"
    status = reproduce(out, env, base / "reference.log", writes=(0, count)).finish()
    if status:
        raise RuntimeError(f"the reference run failed:\n{(base / 'reference.log').read_text()[-3000:]}")
    refs["reproduce"], refs["writes"] = out, int(count.read_text())
    if faults & {"a", "b", "f"}:
        logs = base / "reference-distributed-logs"
        logs.mkdir(exist_ok=True)
        run = Distributed(base / "reference-distributed", env, logs, free_ports(2))
        try:
            run.start_chief()
            run.start_worker(0)
            run.start_worker(1)
            if run.finish():
                raise RuntimeError(f"the distributed reference failed:\n{run.chief.stderr()[-3000:]}")
        finally:
            run.stop()
        refs["distributed"] = run.out
        diff = differing(run.out, out)
        print(f"distributed reference vs reproduce: {'identical tables' if not diff else f'differ in {diff}'}",
              file=sys.stderr)
    return refs


def run_faults(faults: set[str], base: Path) -> list[dict]:
    refs = reference_runs(base, faults)
    rows = []
    steps = [("a", lambda: fault_worker_killed(base, refs["distributed"])),
             ("b", lambda: fault_chief_killed(base, refs["distributed"])),
             ("c", lambda: fault_sigint(base, refs["reproduce"])),
             ("d", lambda: fault_enospc(base, refs["reproduce"], refs["writes"])),
             ("e", lambda: fault_truncated_cache(base, refs["reproduce"])),
             ("f", lambda: fault_chief_gone(base, refs["distributed"]))]
    for name, step in steps:
        if name not in faults:
            continue
        try:
            result = step()
        except RuntimeError as exc:  # a wait that never ended: the fault was not survived
            result = row(name, injected="?", survived=False, message=one_line(str(exc).splitlines()[0]))
        result["message"] = str(result["message"]).replace(str(base), "<workdir>")
        print(json.dumps(result), file=sys.stderr, flush=True)
        rows.append(result)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faults", default="a,b,c,d,e,f", help="comma-separated subset of a,b,c,d,e,f")
    p.add_argument("--workdir", default=None, help="where the runs go (default: a temporary folder, removed)")
    p.add_argument("--csv", default=str(ROOT / "results" / "faults.csv"))
    args = p.parse_args(argv)
    faults = {f.strip() for f in args.faults.split(",") if f.strip()}
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # started in the background: the commands would inherit it
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not faults <= set("abcdef"):
        p.error(f"--faults: unknown {sorted(faults - set('abcdef'))}; choose from a,b,c,d,e,f")
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="privemo-faults-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        rows = run_faults(faults, base)
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    from privemo._util.io import atomic_write_text
    import io

    ran = {r["fault"][0] for r in rows}
    kept = []  # the rows of faults not run this time, as the CSV has them
    if Path(args.csv).is_file():
        with open(args.csv, newline="", encoding="utf-8") as fh:
            kept = [r for r in csv.DictReader(fh) if r.get("fault", " ")[0] not in ran]
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(kept + rows, key=lambda r: r["fault"]))
    atomic_write_text(args.csv, text.getvalue())
    print(text.getvalue())
    return 0 if all(r["survived"] is True and r["tables_identical"] is True for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
