"""The cost model's measurements: step costs per (modality set, network shape, pack) on this device, read from and
written to a calibration CSV (``results/protocol_cost.csv``, ``benchmarks/protocol_cost.py``) or measured here, and the
corpus profiles (utterance counts and durations) the estimate prices. The model itself is ``privemo.experiment.cost``.

This module holds the constants of the estimate, the corpus profiles and the calibration CSV; the step costs and their
fits are ``privemo.experiment.cost_fitting``, the timing on this machine ``privemo.experiment.cost_measurement``. Every
name of those two is a name of this module too.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from privemo._util.io import atomic_write_text
from privemo._util.validation import UserError
from privemo.experiment.config import MODALITY_SETS
from privemo.experiment.cost_fitting import (  # noqa: F401  (names of this module too)
    FRAMES_PER_S,
    SHAPE_KEYS,
    WORDS_PER_S,
    Calibration,
    StepCost,
    _fit_coefficients,
    grid_shapes,
    shape_features,
    shape_of,
)
from privemo.experiment.cost_measurement import (  # noqa: F401  (names of this module too)
    CALIBRATION_LENGTHS_S,
    PREDICT_BATCH,
    PROBE_ROWS,
    TRAIN_BATCH,
    StepTimer,
    _step_clock,
    _time_probe,
    device_name,
    measure_step_cost,
)

COLUMNS = ("device", "threads", "modality", *SHAPE_KEYS, "pack", "train_fixed_s", "train_per_s", "predict_fixed_s",
           "predict_per_s", "trace_s", "probe_fit_s")
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[2] / "results" / "protocol_cost.csv"

# The mean best epoch (0-based) of a trial, by grid. "quick": over the committed demo runs (results/demo, demo-full,
# demo-podcast: 495 trials, patience 6). "paper": over the 96 trials of one paper-grid (condition, fold) on this
# project's 2-core machine (acoustic-activation-baseline, fold 0 of the demo corpus, patience 10; the README's cost check):
# the paper grid's wider networks, with the longer patience, find their best epoch later.
EXPECTED_BEST_EPOCHS = {"quick": 8.0, "paper": 16.3}
EXPECTED_BEST_EPOCH = EXPECTED_BEST_EPOCHS["quick"]
# Over every (condition, fold) of the committed demo runs with four lambda trials: how many more epochs the last of
# them ran than their mean (the tail a pack of 4 runs after most members have stopped).
PACK_TAIL_EPOCHS = 4.9
# From the committed demo run's per-job timings: representing and attacking cost about 2 s per job of 640 utterances.
ATTACK_S_PER_UTTERANCE = 2.0 / 640
CHECKPOINT_S = 0.3  # writing one trial's checkpoint, history and build config
CALIBRATION_BUDGET_S = 10.0


@dataclass(frozen=True)
class CorpusProfile:
    """Size and utterance-length distribution of a corpus, for pricing a run without its audio.

    Durations are log-normal with the given mean and standard deviation, clipped to [min, max] seconds.
    """

    utterances: int
    duration_mean_s: float
    duration_sd_s: float
    duration_min_s: float
    duration_max_s: float
    speakers: int
    source: str

    def durations(self, n: int | None = None, seed: int = 0) -> np.ndarray:
        """``n`` (default: the corpus size) utterance durations in seconds."""
        n = self.utterances if n is None else n
        sigma2 = math.log(1.0 + (self.duration_sd_s / self.duration_mean_s) ** 2)
        mu = math.log(self.duration_mean_s) - sigma2 / 2
        values = np.random.default_rng(seed).lognormal(mu, math.sqrt(sigma2), n)
        return np.clip(values, self.duration_min_s, self.duration_max_s)

    def fold_sizes(self, n_folds: int = 5, mi_holdout: float = 0.2) -> tuple[int, int]:
        """(training rows after the membership hold-out, validation rows) of one speaker-independent fold, as
        ``privemo.data.folds.speaker_folds`` splits speakers: one fold tests, 15 % of the rest (at least 2 speakers)
        validate."""
        from privemo.data.folds import MIN_VALIDATION_SPEAKERS, VALIDATION_FRACTION

        rest = self.speakers - self.speakers / n_folds
        val_speakers = max(MIN_VALIDATION_SPEAKERS, round(VALIDATION_FRACTION * rest))
        per_speaker = self.utterances / self.speakers
        return (int(round((rest - val_speakers) * per_speaker * (1 - mi_holdout))),
                int(round(val_speakers * per_speaker)))


# assumption (README assumptions table, cost model): corpus sizes and utterance lengths. Utterance counts: IEMOCAP
# from the corpus notes (10,039); the others from their corpus papers, not checked against a copy here (MSP-Podcast
# grows with every release: 1.8 is priced). Lengths: the published means (IEMOCAP about 4.5 s; MSP-IMPROV 8,438 turns
# in about 9 h; MSP-Podcast segments of 2.75-11 s; MuSE sentence-split monologues, unconfirmed).
CORPUS_PROFILES: dict[str, CorpusProfile] = {
    "iemocap": CorpusProfile(10039, 4.5, 3.2, 0.6, 35.0, 10, "Busso et al. 2008; corpus notes"),
    "msp-improv": CorpusProfile(8438, 3.8, 2.4, 0.5, 30.0, 12, "Busso et al. 2017 (8,438 turns, ~9 h)"),
    "msp-podcast": CorpusProfile(73042, 5.6, 2.3, 2.75, 11.0, 1000,
                                 "MSP-Podcast 1.8 (73,042 turns, ~113 h; about 1,000 known speakers), unconfirmed"),
    "muse": CorpusProfile(2648, 6.0, 3.5, 0.8, 40.0, 28, "Jaiswal et al. 2020 (28 participants), unconfirmed"),
    "demo": CorpusProfile(640, 3.0, 0.6, 1.5, 5.0, 10, "privemo.corpora.demo"),
    "demo-podcast": CorpusProfile(640, 3.0, 0.8, 1.5, 6.0, 10, "privemo.corpora.demo_podcast"),
}
# The paper's Table 1 rows per corpus (design card: lexical only where transcripts exist, IEMOCAP and MuSE).
PROTOCOL_MODALITIES: dict[str, tuple[str, ...]] = {
    "iemocap": ("acoustic", "lexical", "acoustic+lexical"),
    "msp-improv": ("acoustic",),
    "msp-podcast": ("acoustic",),
    "muse": ("acoustic", "lexical", "acoustic+lexical"),
}


# -------------------------------------------------------------------------------------------------- the calibration CSV
def _number(value: str, column: str, path, line: int) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{path}, line {line}: column `{column}`: expected a number. Received: {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise UserError(f"{path}, line {line}: column `{column}`: expected a finite number >= 0. Received: {value!r}")
    return out


def read_calibration(path: str | os.PathLike, device: str | None = None,
                     threads: int | None = None) -> Calibration | None:
    """The step costs of ``device`` (default: this machine's, ``device_name()``) at ``threads`` (default: the rows' own)
    in a calibration CSV (``COLUMNS``; other columns are ignored); None when it has no row for that device. A malformed
    file is a ``UserError`` naming the file, the line and the column."""
    path = Path(path)
    device = device_name() if device is None else device
    text = path.read_text()
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"{path}, line 1: not a privemo cost calibration: it lacks the column(s) {missing} "
                        "(write it with benchmarks/protocol_cost.py)")
    calibration = None
    for line, row in enumerate(reader, start=2):
        if None in row or any(row.get(c) is None for c in COLUMNS):
            raise UserError(f"{path}, line {line}: expected {len(reader.fieldnames)} comma-separated fields. "
                            f"Received: {sum(v is not None for v in row.values())}")
        if row["modality"] not in MODALITY_SETS:
            raise UserError(f"{path}, line {line}: column `modality`: expected one of {tuple(MODALITY_SETS)}. "
                            f"Received: {row['modality']!r}")
        numbers = {c: _number(row[c], c, path, line) for c in COLUMNS if c not in ("device", "modality")}
        for c in ("threads", "pack", *SHAPE_KEYS):
            low = 0 if c in ("threads", "dense_layers") else 1  # threads 0: TensorFlow's default
            if numbers[c] != int(numbers[c]) or numbers[c] < low:
                raise UserError(f"{path}, line {line}: column `{c}`: expected an integer >= {low}. "
                                f"Received: {row[c]!r}")
        if row["device"] != device or (threads is not None and int(numbers["threads"]) != threads):
            continue
        if calibration is None:
            calibration = Calibration(device, int(numbers["threads"]), source=str(path))
        elif int(numbers["threads"]) != calibration.threads:
            continue
        shape = tuple(int(numbers[k]) for k in SHAPE_KEYS)
        calibration.costs[(row["modality"], shape, int(numbers["pack"]))] = StepCost(
            *(numbers[c] for c in ("train_fixed_s", "train_per_s", "predict_fixed_s", "predict_per_s", "trace_s",
                                   "probe_fit_s")))
    return calibration


def calibration_rows(calibration: Calibration) -> list[dict]:
    """The CSV rows (``COLUMNS``) of a calibration."""
    rows = []
    for (modality, shape, pack), cost in sorted(calibration.costs.items()):
        rows.append({"device": calibration.device, "threads": calibration.threads, "modality": modality,
                     **dict(zip(SHAPE_KEYS, shape)), "pack": pack,
                     **{k: f"{getattr(cost, k):.6g}" for k in COLUMNS[len(SHAPE_KEYS) + 4:]}})
    return rows


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping], columns: Sequence[str]) -> Path:
    """``rows`` as CSV with ``columns``, written atomically."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, out.getvalue())
