"""The whole protocol: five-fold speaker-independent cross-validation over the run's conditions (serial or in worker
processes, resumable), the linear reference on the same folds, the tables, the lambda trade-off and the manifest.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd

from privemo._util.io import atomic_write_json, read_json
from privemo._util.processes import available_cpus
from privemo._util.progress import Progress
from privemo._util.validation import UserError
from privemo.experiment.config import (Condition, ExperimentConfig, check_schema, log, result_path, run_settings,
                                       settings_differ, work_dir)
from privemo.experiment.inputs import holdout_rows, lexical_inputs, prepare_corpus
from privemo.experiment.plan import plan_run
from privemo.experiment.workers import AffinityQueue, run_job, run_job_in_worker, worker_init


class CrossValidation(NamedTuple):
    """What ``run_cross_validation`` returns: one record per (condition, fold), in the run's order, and where the time
    went (seconds: loading the corpus, features, word vectors, training and attacks)."""

    records: list[dict]
    timings: dict[str, float]


def run_cross_validation(config: ExperimentConfig, table: pd.DataFrame | None = None) -> CrossValidation:
    """Every (condition, fold) of the run, resuming from finished per-fold JSON files when ``config.resume`` is set.

    Jobs are independent (each has its own seed, see ``fold_seed``), so they run in ``config.n_jobs`` worker processes
    without changing any result; each finished job is written atomically before the next starts.
    """
    t0 = time.perf_counter()
    table, folds, fold_ids, conditions = plan_run(config, table)
    timings = {"load_corpus_s": time.perf_counter() - t0}
    # Condition-major order: a worker's consecutive jobs tend to share a network, which it then need not trace again.
    jobs = [(k, c) for c in conditions for k in fold_ids]
    records = _finished_records(config, jobs)  # before the features: --resume with other settings fails at once
    data = prepare_corpus(table, config)
    timings.update(data.timings)
    pending = [job for job in jobs if job not in records]
    n_jobs = max(1, min(config.n_jobs or available_cpus(), len(pending) or 1))
    log(f"privemo: {data.corpus}: {len(table)} utterances, {table['speaker'].nunique()} speakers, {len(folds)} folds; "
        f"{len(conditions)} conditions x {len(fold_ids)} folds = {len(jobs)} cross-validated trainings "
        f"({len(records)} already finished), {n_jobs} worker process(es)", config)
    if pending:
        from privemo.nn.device import device_summary

        log(device_summary(), config)

    t1 = time.perf_counter()
    lexical: dict[int, list[np.ndarray]] = {}
    for k in sorted({k for k, c in pending if "lexical" in c.modalities}):
        lexical[k], oov = lexical_inputs(data, folds[k].train, config)
        log(f"[fold {k}] word vectors: {oov}", config)
    timings["lexical_s"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    tasks = [(job, (job[0], folds[job[0]], job[1], config, lexical.get(job[0]))) for job in pending]
    kind = lambda c: (c.modality, c.adversary is None)  # noqa: E731  (a baseline has one trial, an adversary four)
    progress = Progress([kind(c) for _, c in pending], len(jobs), n_jobs, lambda line: log(line, config),
                        bar=bool(config.verbose) and sys.stderr.isatty())
    for job, record, seconds in _run_jobs(tasks, data, n_jobs):
        records[job] = record
        progress.finished(kind(job[1]), record.get("timings", {}).get("total_s", seconds), _summary(job, record, seconds))
    progress.close()
    timings["training_and_attacks_s"] = time.perf_counter() - t1
    timings["cross_validation_s"] = time.perf_counter() - t0
    return CrossValidation([records[job] for job in jobs], timings)


def _finished_records(config: ExperimentConfig, jobs: list) -> dict:
    """With ``config.resume``, the records of jobs already finished, after checking that they (and the run's settings
    file) were made with this run's settings; then the settings file is (re)written."""
    settings = run_settings(config)
    settings_file = work_dir(config) / "settings.json"
    paths = {job: result_path(config, job[1], job[0]) for job in jobs}
    paths = {job: path for job, path in paths.items() if config.resume and path.is_file()}
    records: dict[tuple[int, Condition], dict] = {job: read_json(path) for job, path in paths.items()}
    for job, record in records.items():
        check_schema(record, paths[job])
    if config.resume:
        found = {settings_file: read_json(settings_file) if settings_file.is_file() else settings}
        found.update({paths[job]: record.get("settings") for job, record in records.items()})
        for path, theirs in found.items():
            difference = settings_differ(theirs, settings)
            if difference:
                raise UserError(
                    f"{path}: cannot resume: it was made with other settings ({difference}). Rerun without --resume to "
                    "start over, or pass another --out.")
    atomic_write_json(settings_file, settings)
    return records


def _run_jobs(tasks: list, data, n_jobs: int) -> Iterator[tuple[tuple, dict, float]]:
    """Run ``tasks`` ((job, run_job arguments) pairs) in this process or in ``n_jobs`` worker processes; yields
    (job, record, seconds) as each finishes."""
    if n_jobs == 1:
        worker_init(data, 0, parallel=False)
        for job, args in tasks:
            t0 = time.perf_counter()
            yield job, run_job(*args), time.perf_counter() - t0
        return
    import concurrent.futures as cf
    import os

    from privemo._util.processes import process_pool

    arguments = dict(tasks)
    with process_pool(n_jobs, initializer=worker_init, initargs=(data, 1, True, os.getpid())) as pool:
        queue = AffinityQueue([job for job, _ in tasks])
        futures: dict = {}

        def submit(pid: int | None) -> None:
            job = queue.take(pid)
            if job is not None:
                futures[pool.submit(run_job_in_worker, *arguments[job])] = (job, time.perf_counter())

        for _ in range(n_jobs):
            submit(None)
        while futures:
            finished_now, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
            for fut in finished_now:
                job, t0 = futures.pop(fut)
                record, pid = fut.result()
                queue.ran(pid, job)
                yield job, record, time.perf_counter() - t0
                submit(pid)  # the worker that just finished is the idle one: give it a network it has traced


def _summary(job: tuple, record: dict, seconds: float) -> str:
    """One progress line for a finished job."""
    priv = record["attacks"].get("gender", {}).get("strongest_test_uar")
    lam = record.get("grl_lambda")
    return (f"fold {job[0]}: {job[1].key}: emotion UAR {record['test']['emotion_uar']:.3f}"
            + (f" (λ {lam:g})" if lam is not None else "")
            + (f", gender attacker UAR {priv:.3f}" if priv is not None else "")
            + f" ({record.get('timings', {}).get('total_s', seconds):.0f} s)")


def run(config: ExperimentConfig) -> str:
    """The whole job: cross-validation, the linear reference, tables, the lambda trade-off, manifest. Returns a
    printable summary."""
    from privemo.experiment import reporting
    from privemo._util.io import atomic_write_text
    from privemo.search.grids import grid_size
    from privemo.experiment.manifest import write_manifest

    t0 = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log(f"privemo: grid '{config.grid}': " + ", ".join(f"{k}={list(v)}" for k, v in config.grid_dict().items())
        + f" ({grid_size(config.grid_dict(), False)} configurations without an adversary, "
        f"{grid_size(config.grid_dict(), True)} with); attacker grid {dict(config.attacker_grid())}; "
        f"selection by {config.selection}"
        + ("" if config.method.paper else f"; removal method {config.removal}"), config)
    t1 = time.perf_counter()
    table = plan_run(config)[0]  # loaded once for the cross-validation and the reference
    load_s = time.perf_counter() - t1
    records, timings = run_cross_validation(config, table)
    timings["load_corpus_s"] = load_s + timings.get("load_corpus_s", 0.0)
    t1 = time.perf_counter()
    reference = linear_reference_frame(config, table)
    atomic_write_text(out / "reference.csv", reference.to_csv(index=False))
    timings["reference_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    atomic_write_json(out / "folds.json", records)
    tables = reporting.write_tables(records, out, reference=reference)
    write_claims(records, out, config.margin, config.seed)
    trade_off = reporting.lambda_tradeoff_frame(records)  # only networks that learnt something: may be empty
    atomic_write_text(out / "lambda_sweep.csv", trade_off.to_csv(index=False))
    if (trade_off.adversary != "none").any():
        reporting.plot_lambda_sweep(trade_off, out / "lambda_sweep.png")
    else:
        (out / "lambda_sweep.png").unlink(missing_ok=True)  # never a figure of an earlier run beside this run's CSV
    timings["reporting_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    write_manifest(out / "manifest.json", config.to_dict(), timings=timings,
                   grid={"main": config.grid_dict(), "attacker": config.attacker_grid()},
                   fold_timings={r["condition"] + f"/fold{r['fold']}": r.get("timings", {}) for r in records})
    lines = [f"privemo.reproduce: {config.corpus}, {len(records)} fold results in {timings['total_s']:.0f} s -> {out}"
             + ("" if config.method.paper else f" (removal method: {config.removal})")]
    for name, table in tables.items():
        lines.append(f"\n{name}:\n{reporting.to_markdown(table)}")
    return "\n".join(lines)


def write_reports(out: str | Path, margin: float = 0.03, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Tables, claims and the lambda trade-off recomputed from a finished run's ``folds.json`` (and its
    ``reference.csv``), with this privemo's reporting: what ``run`` writes after the cross-validation. Figures an older
    record schema did not hold out are n/a with their reason."""
    from privemo.experiment import reporting
    from privemo._util.io import atomic_write_text

    out = Path(out)
    records = read_json(out / "folds.json")
    reference = pd.read_csv(out / "reference.csv") if (out / "reference.csv").is_file() else None
    tables = reporting.write_tables(records, out, reference=reference)
    trade_off = reporting.lambda_tradeoff_frame(records)
    atomic_write_text(out / "lambda_sweep.csv", trade_off.to_csv(index=False))
    if (trade_off.adversary != "none").any():
        reporting.plot_lambda_sweep(trade_off, out / "lambda_sweep.png")
    tables["claims"] = write_claims(records, out, margin, seed)
    return tables


def write_claims(records: list[dict], out: Path, margin: float, seed: int = 0) -> pd.DataFrame:
    """claims.csv and claims.md (privemo.experiment.claims) from the run's records, atomically."""
    from privemo._util.io import atomic_write_text
    from privemo.experiment.claims import claims_frame, claims_markdown
    from privemo.experiment.reporting import records_frame

    claims = claims_frame(records_frame(records), margin=margin, seed=seed)
    atomic_write_text(out / "claims.csv", claims.to_csv(index=False))
    atomic_write_text(out / "claims.md", claims_markdown(claims))
    return claims


def linear_reference_frame(config: ExperimentConfig, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The linear reference of every (modality, task) row of the run on the same folds and training rows
    (``privemo.experiment.reference``): columns corpus, modality, task, uar_mean, uar_std, n_folds."""
    from privemo.experiment.reference import linear_reference, reference_frame

    table, folds, fold_ids, _ = plan_run(config, table)
    data = prepare_corpus(table, config)  # acoustic features come from the on-disk cache
    # Exactly the rows the networks train on: training speakers minus the membership attack's held-out utterances, C
    # chosen on the validation speakers (which the networks early-stop on) and not refitted on them (refit=False).
    chosen = [folds[k]._replace(train=holdout_rows(data, folds[k], config)[0]) for k in fold_ids]
    rows = []
    for modality in config.modalities:
        for task in config.tasks:
            result = linear_reference(table, data.emotion[task], chosen, modality, acoustic=data.acoustic,
                                      seed=config.seed, refit=False)
            rows.append({"corpus": data.corpus, "modality": modality, "task": task, **result})
    return reference_frame(rows)
