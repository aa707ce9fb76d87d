"""The cost model's measurements on this machine: what it trains on (``device_name``) and the time of a training step,
of a validation forward pass, of tracing and of one probe fit for a network shape (``StepTimer``,
``measure_step_cost``), fitted into a ``StepCost``. ``privemo.experiment.cost_calibration`` re-exports every name.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from privemo._util.processes import available_cpus
from privemo._util.validation import check_int, invalid
from privemo.experiment.config import MODALITY_SETS
from privemo.experiment.cost_fitting import FRAMES_PER_S, SHAPE_KEYS, WORDS_PER_S, StepCost

TRAIN_BATCH = 32  # privemo.data.pipeline.BATCH_SIZE
PREDICT_BATCH = 64  # privemo.nn.training.VAL_BATCH_SIZE
PROBE_ROWS = 512  # privemo.search.selection.MAX_PROBE_TRAIN
CALIBRATION_LENGTHS_S = (2.0, 8.0)  # padded durations the coefficients are measured at


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
