"""The cost model's measurements: step costs per (modality set, network shape, pack) on this device, read from and
written to a calibration CSV (``results/protocol_cost.csv``, ``benchmarks/protocol_cost.py``) or measured here, and the
corpus profiles (utterance counts and durations) the estimate prices. The model itself is ``privemo.experiment.cost``.
"""


from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from privemo._io import atomic_write_text
from privemo._processes import available_cpus
from privemo._validation import UserError, check_int, invalid
from privemo.experiment.config import MODALITY_SETS

SHAPE_KEYS = ("conv_layers", "conv_width", "conv_kernels", "gru_layers", "gru_width", "dense_layers", "dense_width")
COLUMNS = ("device", "threads", "modality", *SHAPE_KEYS, "pack", "train_fixed_s", "train_per_s", "predict_fixed_s",
           "predict_per_s", "trace_s", "probe_fit_s")
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[2] / "results" / "protocol_cost.csv"

FRAMES_PER_S = 100  # acoustic frames per second of speech (10 ms hop, privemo.features.acoustic)
# assumption (README assumptions table, cost model): words per second of speech for pricing lexical inputs by duration
# (conversational English runs at 2-3 words/s).
WORDS_PER_S = 2.5
TRAIN_BATCH = 32  # privemo.data.pipeline.BATCH_SIZE
PREDICT_BATCH = 64  # privemo.nn.training.VAL_BATCH_SIZE
PROBE_ROWS = 512  # privemo.search.selection.MAX_PROBE_TRAIN
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
CALIBRATION_LENGTHS_S = (2.0, 8.0)  # padded durations the coefficients are measured at


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


# ---------------------------------------------------------------------------------------------------------- step costs
@dataclass(frozen=True)
class StepCost:
    """Seconds per training step (batch of 32) and per validation forward pass (batch of 64) at padded duration D:
    ``fixed + per_s * D``; ``trace_s``: tracing a new network's training step; ``probe_fit_s``: one probe fit."""

    train_fixed_s: float
    train_per_s: float
    predict_fixed_s: float
    predict_per_s: float
    trace_s: float = 0.0
    probe_fit_s: float = 0.0

    def train(self, duration_s) -> np.ndarray:
        return self.train_fixed_s + self.train_per_s * np.asarray(duration_s, np.float64)

    def predict(self, duration_s) -> np.ndarray:
        return self.predict_fixed_s + self.predict_per_s * np.asarray(duration_s, np.float64)


def shape_of(values: Mapping) -> tuple[int, ...]:
    """The network shape (``SHAPE_KEYS`` in order) of a grid configuration or a calibration row, with
    ``build_model``'s defaults for keys it lacks."""
    from privemo.nn.models import build_model
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(build_model).parameters.items()}
    return tuple(int(values.get(k, defaults[k])) for k in SHAPE_KEYS)


def grid_shapes(grid: Mapping[str, Sequence]) -> list[tuple[int, ...]]:
    """Every distinct network shape of a grid (lambda is not a shape), in grid order."""
    keys = [k for k in SHAPE_KEYS if k in grid]
    shapes = []
    for combo in product(*(tuple(grid[k]) for k in keys)):
        shape = shape_of(dict(zip(keys, combo)))
        if shape not in shapes:
            shapes.append(shape)
    return shapes


def shape_features(shape: Sequence[int], modality: str) -> np.ndarray:
    """[1, GRU steps per second of speech, million multiply-accumulates per second of speech] of one forward pass:
    what a step's length-dependent cost grows with (a GRU step is a sequential op; convolutions and GRU matrices are
    arithmetic). Acoustic frames are max-pooled by ``ACOUSTIC_POOL`` after each convolution."""
    from privemo.nn.models import ACOUSTIC_POOL

    conv_layers, conv_width, kernels, gru_layers, gru_width = (int(v) for v in shape[:5])
    steps = macs = 0.0
    for modality_name in MODALITY_SETS[modality]:
        rate, width = (FRAMES_PER_S, 40) if modality_name == "acoustic" else (WORDS_PER_S, 300)
        pool = ACOUSTIC_POOL if modality_name == "acoustic" else 1
        for _ in range(conv_layers):
            macs += rate * conv_width * width * kernels
            width, rate = kernels, rate / pool
        for _ in range(gru_layers):
            macs += rate * 3 * (width * gru_width + gru_width * gru_width)
            steps += rate
            width = gru_width
    return np.array([1.0, steps, macs / 1e6])


def _fit_coefficients(rows: Sequence[tuple[tuple[int, ...], StepCost]], modality: str):
    """Least-squares fits of each length-dependent coefficient on ``shape_features`` (non-negative), and the mean of
    the others, from measured (shape, StepCost) rows."""
    features = np.array([shape_features(shape, modality) for shape, _ in rows])
    fits = {}
    for name in ("train_fixed_s", "train_per_s", "predict_fixed_s", "predict_per_s", "trace_s"):
        y = np.array([getattr(cost, name) for _, cost in rows])
        if name.endswith("per_s") and len(rows) >= 3:
            coef, *_ = np.linalg.lstsq(features, y, rcond=None)
            fits[name] = coef
        elif name.endswith("per_s"):  # too few shapes: proportional to the arithmetic
            scale = float(np.mean(y / np.maximum(features[:, 2], 1e-9)))
            fits[name] = np.array([0.0, 0.0, scale])
        else:
            fits[name] = float(np.mean(y))
    fits["probe_fit_s"] = float(np.mean([cost.probe_fit_s for _, cost in rows]))
    return fits


@dataclass
class Calibration:
    """Measured step costs of one device: {(modality, shape, pack): StepCost}, and where they came from."""

    device: str
    threads: int
    costs: dict = field(default_factory=dict)
    source: str = ""

    def cost(self, modality: str, shape: Sequence[int], pack: int = 1) -> StepCost:
        """The measured cost of (modality, shape, pack); otherwise the shape's one-member cost (measured, or fitted on
        the measured shapes of this modality, ``_fit_coefficients``) times the packing factors (``pack_factors``)."""
        shape, pack = tuple(int(v) for v in shape), int(pack)
        if (modality, shape, pack) in self.costs:
            return self.costs[(modality, shape, pack)]
        base = self._single(modality, shape)
        if pack == 1:
            return base
        train, predict, trace = self.pack_factors(modality, pack)
        return StepCost(base.train_fixed_s * train, base.train_per_s * train, base.predict_fixed_s * predict,
                        base.predict_per_s * predict, base.trace_s * trace, base.probe_fit_s)

    def _single(self, modality: str, shape: tuple) -> StepCost:
        if (modality, shape, 1) in self.costs:
            return self.costs[(modality, shape, 1)]
        rows = [(s, c) for (m, s, p), c in self.costs.items() if m == modality and p == 1]
        if not rows:
            others = sorted({m for m, _, p in self.costs if p == 1})
            if not others:
                raise ValueError(f"the calibration ({self.source}) holds no one-member measurement")
            # another modality set measured: price this one by the ratio of their arithmetic
            cost = self._single(others[0], shape)
            ratio = shape_features(shape, modality)[2] / max(shape_features(shape, others[0])[2], 1e-9)
            return StepCost(cost.train_fixed_s, cost.train_per_s * ratio, cost.predict_fixed_s,
                            cost.predict_per_s * ratio, cost.trace_s, cost.probe_fit_s)
        fits = _fit_coefficients(rows, modality)
        features = shape_features(shape, modality)
        return StepCost(fits["train_fixed_s"], max(0.0, float(features @ fits["train_per_s"])),
                        fits["predict_fixed_s"], max(0.0, float(features @ fits["predict_per_s"])),
                        fits["trace_s"], fits["probe_fit_s"])

    def pack_factors(self, modality: str, pack: int) -> tuple[float, float, float]:
        """How much a step of ``pack`` packed members costs relative to one member's (training step at 3 s, forward
        pass at 3 s, trace): the mean over the shapes measured both ways, interpolated linearly in K between measured
        pack sizes (K = 1: 1), beyond the largest proportionally; no packed measurement at all: K (no gain)."""
        points = {1: (1.0, 1.0, 1.0)}
        for k in sorted({p for m, _, p in self.costs if p > 1}):
            pairs = [(self.costs[(m, s, k)], self.costs[(m, s, 1)]) for (m, s, p) in self.costs
                     if p == k and (m, s, 1) in self.costs and (m == modality or not any(
                         mm == modality and pp == k for mm, _, pp in self.costs))]
            if pairs:
                points[k] = tuple(float(np.mean(values)) for values in zip(*(
                    (float(packed.train(3.0) / max(one.train(3.0), 1e-12)),
                     float(packed.predict(3.0) / max(one.predict(3.0), 1e-12)),
                     packed.trace_s / max(one.trace_s, 1e-12)) for packed, one in pairs)))
        ks = sorted(points)
        if pack > ks[-1]:
            return tuple(f * pack / ks[-1] for f in points[ks[-1]])
        return tuple(float(np.interp(pack, ks, [points[k][j] for k in ks])) for j in range(3))


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


# ------------------------------------------------------------------------------------------------- device, measurement
def device_name() -> str:
    """What TensorFlow trains on here, in words: "GPU: <name>" for the first visible GPU, else "CPU: <model> (<n>
    cores)"."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU: {details.get('device_name', gpus[0].name)}"
        except (RuntimeError, ValueError):  # pragma: no cover - unusual driver set-ups
            return f"GPU: {gpus[0].name}"
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover - not Linux
        import platform

        model = platform.processor() or platform.machine()
    return f"CPU: {model} ({available_cpus()} cores)"


def _step_clock():
    """A Keras callback timing the steps of one ``fit``: ``per_step()`` is the seconds per training step between the
    ends of its first and last batch (the fit's set-up and tear-down, once per epoch, left out)."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends: list[float] = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

        def per_step(self) -> float:
            return (self.ends[-1] - self.ends[0]) / max(1, len(self.ends) - 1)

    return StepClock()


class StepTimer:
    """Times the training step and the validation forward pass of one network shape on this machine, on synthetic
    utterances of each padded duration in ``lengths_s`` fed through privemo's own input pipeline: ``pack`` members
    packed as ``privemo.search.packing`` trains them (``pack=1``: the ordinary unpacked network). Building it traces
    the step (a warm-up epoch, whose extra time is ``trace_s``); each ``measure()`` times ``steps`` training batches and
    as many validation utterances per duration; ``cost()`` fits a ``StepCost`` to the fastest of the measurements so
    far (the least disturbed by other processes)."""

    def __init__(self, shape: Sequence[int], modality: str = "acoustic", *, pack: int = 1, steps: int = 8,
                 lengths_s: Sequence[float] = CALIBRATION_LENGTHS_S, adversary: str | None = "gender",
                 lexical_dim: int = 300, probe: bool = True):
        from privemo.nn.models import build_model
        from privemo.nn.training import compile_model, with_representation
        from privemo.search.packing import build_packed, member_output

        self.pack = check_int("pack", pack, 1)
        self.steps = check_int("steps", steps, 2)
        if modality not in MODALITY_SETS:
            raise invalid("modality", f"one of {tuple(MODALITY_SETS)}", modality)
        self.lengths_s = tuple(float(v) for v in lengths_s)
        if len(set(self.lengths_s)) < 2:
            raise invalid("lengths_s", "at least two distinct padded durations in seconds", tuple(lengths_s))
        self.shape, self.modality = tuple(int(v) for v in shape), modality
        modalities = MODALITY_SETS[modality]
        build = dict(zip(SHAPE_KEYS, self.shape), modalities=modalities, adversary=adversary, lexical_dim=lexical_dim)
        rng = np.random.default_rng(0)
        n = self.steps * TRAIN_BATCH
        self.targets = {name: rng.integers(0, 2, n).astype(np.int32) for name in ["emotion"] + ([adversary] if adversary
                                                                                              else [])}
        if self.pack == 1:
            model = build_model(**build)
            compile_model(model)
            self.model, self.scorer, self.spread = model, with_representation(model), None
        else:
            lambdas = (0.3, 0.5, 0.75, 1.0)
            packed = build_packed([{**build, "grl_lambda": lambdas[i % 4]} for i in range(self.pack)], seed=0)
            self.model, self.scorer = packed.model, packed.scorer
            self.spread = [member_output(i, "") for i in range(self.pack)]
        self.data = {}
        for duration in self.lengths_s:
            inputs = {}
            if "acoustic" in modalities:
                frames = max(1, int(round(duration * FRAMES_PER_S)))
                inputs["acoustic"] = [rng.normal(size=(frames, 40)).astype(np.float32) for _ in range(n)]
            if "lexical" in modalities:
                tokens = max(1, int(round(duration * WORDS_PER_S)))
                inputs["lexical"] = [rng.normal(size=(tokens, lexical_dim)).astype(np.float32) for _ in range(n)]
            self.data[duration] = inputs
        self.measurements: list[tuple[list[float], list[float]]] = []
        started = time.perf_counter()
        steady = 0.0
        for duration in self.lengths_s:  # warm-up: traces the step once (the pipeline's time axis is unknown)
            t0 = time.perf_counter()
            self._fit(duration, min(n, 2 * TRAIN_BATCH))
            self._predict(duration, PREDICT_BATCH)
            steady = time.perf_counter() - t0 if duration != self.lengths_s[0] else steady
        self.trace_s = max(0.0, time.perf_counter() - started - 2 * steady)
        self.probe_fit_s = _time_probe(self.shape[4] * len(modalities)) if probe else 0.0

    def _fit(self, duration: float, rows: int) -> float:
        from privemo.data.pipeline import make_dataset

        ds = make_dataset(self.data[duration], self.targets, np.arange(rows), batch_size=TRAIN_BATCH, shuffle=True,
                          seed=0)
        if self.spread is not None:
            prefixes = self.spread
            ds = ds.map(lambda x, y: (x, {p + k: v for p in prefixes for k, v in y.items()}))
        clock = _step_clock()
        self.model.fit(ds, epochs=1, verbose=0, shuffle=False, callbacks=[clock])  # the pipeline shuffles itself
        return clock.per_step()

    def _predict(self, duration: float, rows: int) -> None:
        from privemo.nn.training import predict_sequences

        predict_sequences(self.scorer, {k: v[:rows] for k, v in self.data[duration].items()})

    def measure(self) -> tuple[list[float], list[float]]:
        """One timing: (seconds per training step, seconds per forward batch of 64) at each duration."""
        train, predict = [], []
        rows = self.steps * TRAIN_BATCH
        for duration in self.lengths_s:
            train.append(self._fit(duration, rows))
            t0 = time.perf_counter()
            self._predict(duration, rows)
            predict.append((time.perf_counter() - t0) / math.ceil(rows / PREDICT_BATCH))
        self.measurements.append((train, predict))
        return train, predict

    def cost(self) -> StepCost:
        """The ``StepCost`` of the fastest measurement per duration (measures once if none was taken)."""
        if not self.measurements:
            self.measure()
        train = np.min([m[0] for m in self.measurements], axis=0)
        predict = np.min([m[1] for m in self.measurements], axis=0)
        x = np.asarray(self.lengths_s)
        train_per, train_fixed = np.polyfit(x, train, 1)
        predict_per, predict_fixed = np.polyfit(x, predict, 1)
        if train_per < 0:  # noise on a tiny network: a flat cost
            train_per, train_fixed = 0.0, float(np.mean(train))
        if predict_per < 0:
            predict_per, predict_fixed = 0.0, float(np.mean(predict))
        if train_fixed < 0:  # the line through the two points crosses zero: keep the cost at the shorter length
            train_fixed, train_per = 0.0, float(train[0] / x[0])
        if predict_fixed < 0:
            predict_fixed, predict_per = 0.0, float(predict[0] / x[0])
        return StepCost(float(train_fixed), float(train_per), float(predict_fixed), float(predict_per), self.trace_s,
                        self.probe_fit_s)


def measure_step_cost(shape: Sequence[int], modality: str = "acoustic", *, pack: int = 1, steps: int = 8,
                      repeats: int = 1, **kwargs) -> StepCost:
    """``StepTimer(shape, modality, pack=pack, steps=steps, **kwargs)`` measured ``repeats`` times: its ``StepCost``."""
    timer = StepTimer(shape, modality, pack=pack, steps=steps, **kwargs)
    for _ in range(check_int("repeats", repeats, 1)):
        timer.measure()
    return timer.cost()


def _time_probe(dim: int) -> float:
    from privemo.search.selection import gender_probe_uar

    rng = np.random.default_rng(0)
    h, y = rng.normal(size=(PROBE_ROWS, dim)), rng.integers(0, 2, PROBE_ROWS)
    t0 = time.perf_counter()
    gender_probe_uar(h, y, h[:256], y[:256])
    return time.perf_counter() - t0


