"""Acoustic feature extraction throughput, as a multiple of real time, with a cold feature cache.

Writes synthetic 16 kHz speech-like wav files (harmonic tones with a moving pitch, an amplitude envelope and noise) with
a skewed, IEMOCAP-like duration distribution, then times ``extract_acoustic`` end to end (file digests, worker start-up,
log-MFB, shard writes and compaction) into an empty cache, on all available cores. Goal: >= 1000x real time on 2 cores.

    python benchmarks/features.py                 # 1 hour of synthetic audio
    python benchmarks/features.py --minutes 20 --jobs 1
    python benchmarks/features.py --demo          # the demo corpus instead (generated on first use)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from privemo.corpora._schema import COLUMNS  # noqa: E402
from privemo._util.processes import available_cpus  # noqa: E402
from privemo.features.acoustic import extract_acoustic, log_mfb  # noqa: E402

SR = 16000


def synthetic_corpus(folder: Path, minutes: float, seed: int = 0):
    """Wav files totalling ``minutes`` of audio, durations log-normal (median 3 s, 0.5-20 s), PCM 16-bit."""
    import pandas as pd
    import soundfile as sf

    rng = np.random.default_rng(seed)
    rows, total, i = [], 0.0, 0
    while total < minutes * 60:
        seconds = float(np.clip(rng.lognormal(np.log(3.0), 0.6), 0.5, 20.0))
        n = int(seconds * SR)
        t = np.arange(n) / SR
        f0 = 120 + 60 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)) ** 2
        y = 0.1 * envelope * voiced + 0.005 * rng.standard_normal(n)
        path = folder / f"utt{i:05d}.wav"
        sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
        rows.append(dict(utterance_id=path.stem, speaker=f"spk{i % 10}", gender="FM"[i % 2], session="1",
                         wav_path=str(path), transcript=None, activation=3.0, valence=3.0))
        total += seconds
        i += 1
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.attrs["corpus"] = "benchmark"
    return table, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="synthetic audio to generate (default 60)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all available cores)")
    parser.add_argument("--demo", action="store_true", help="use privemo's demo corpus instead of synthetic audio")
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = available_cpus()
    jobs = args.jobs or cores
    with tempfile.TemporaryDirectory(prefix="privemo-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        if args.demo:
            from privemo.corpora import load_corpus
            import soundfile as sf

            table = load_corpus("demo")
            audio_s = float(sum(sf.info(p).duration for p in table["wav_path"]))
        else:
            (tmp / "wav").mkdir()
            table, audio_s = synthetic_corpus(tmp / "wav", args.minutes)
        print(f"corpus: {len(table)} utterances, {audio_s / 3600:.2f} h of audio (prepared in "
              f"{time.perf_counter() - t0:.1f} s)")

        # single-core compute rate of log_mfb alone (no I/O, no processes), for reference
        y = np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32) * 0.1
        log_mfb(y)
        t0 = time.process_time()
        reps = 200
        for _ in range(reps):
            log_mfb(y)
        per_core = reps * 3.0 / (time.process_time() - t0)

        t0 = time.perf_counter()
        feats = extract_acoustic(table, cache_dir=tmp / "cache", n_jobs=jobs, progress=False)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = extract_acoustic(table, cache_dir=tmp / "cache", n_jobs=jobs, progress=False)
        warm = time.perf_counter() - t0
        assert feats.stats["n_computed"] == len(table) and again.stats["n_computed"] == 0

    print(f"machine: {cores} available core(s), {jobs} worker(s), 1-min load average at start {load:.2f}")
    print(f"log_mfb compute alone: {per_core:,.0f}x real time per core (CPU time)")
    print(f"extract_acoustic, cache cold: {cold:.2f} s wall = {audio_s / cold:,.0f}x real time "
          f"({int(feats.raw_lengths.sum()):,} frames)")
    print(f"extract_acoustic, cache hit:  {warm:.3f} s wall")
    print("goal: >= 1000x real time on 2 cores, cache cold:", "met" if audio_s / cold >= 1000 else "NOT met")


if __name__ == "__main__":
    main()
