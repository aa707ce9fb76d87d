"""The encoder as trained and as it ships: one run's acoustic networks, fed per-speaker and per-utterance normalised
features, judged by the same attacks.

The experiment z-normalises every utterance with its speaker's statistics over all of the speaker's audio (the test
speakers' own audio included); ``privemo.encode`` -- what an app ships -- normalises each utterance on its own. For
every saved network of the chosen conditions of a run (``--run``, a ``python -m privemo.reproduce --out`` folder with
``models/``) and every fold, this script

1. computes h (and the network's own emotion prediction) twice: per-speaker ("as trained") and per-utterance ("as
   deployed", the same features ``privemo.encode`` computes from the wav file);
2. scores the emotion head's test UAR both ways (the deployed emotion UAR needs no probe: the network's head is used);
3. audits both representations with ``privemo.audit.compare_representations`` on the fold's own split (attackers train
   on the fold's training and validation speakers, scored on its test speakers only): gender attacker UAR (the audit's
   default attacker set, validation log-loss selection), speaker EER (all pairs and same-gender), paired over folds with
   the claims table's verdict rule.

The run's own record (the experiment's full attacker family) is printed beside the audit's as-trained figure. Written
atomically to ``--out`` (default ``results/deployed_vs_trained.csv``, one row per condition, fold and metric).

    python benchmarks/deployed_vs_trained.py --run results/demo-podcast
    python benchmarks/deployed_vs_trained.py --run /tmp/run --conditions acoustic-activation-baseline --folds 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import privemo  # noqa: E402

privemo.quiet_tensorflow()

from privemo._util.io import atomic_write_text, read_json  # noqa: E402

CONDITIONS = ("acoustic-activation-baseline", "acoustic-activation-gender-fused")


def _config(run: Path, condition: str):
    """The run's corpus and folds, from a fold record's settings (written as each job ends: no need for the manifest)."""
    from privemo.experiment import ExperimentConfig

    record = next((run / "folds" / condition).glob("fold*.json"), None)
    if record is None:
        raise SystemExit(f"{run / 'folds' / condition}: no fold record of that condition")
    settings = read_json(record)["settings"]
    return ExperimentConfig(corpus=settings["corpus"], root=settings.get("root"), n_folds=settings["n_folds"],
                            seed=settings["seed"], demo_per_speaker=settings.get("demo_per_speaker"),
                            normalization=settings.get("normalization", "speaker"), modalities=("acoustic",),
                            verbose=0)


def _inputs(config):
    """The corpus table, its folds and both normalised views of the acoustic features (the run's own cache)."""
    from privemo.experiment.protocol import plan_run
    from privemo.features.acoustic import extract_acoustic

    table, folds, _, _ = plan_run(config)
    feats = extract_acoustic(table, progress=False)
    schemes = {"trained": config.normalization, "deployed": "utterance"}  # a run may have trained as it ships
    return table, folds, {name: feats.normalized(table, mode=mode) for name, mode in schemes.items()}


def _representation(h, table, fold, task, labels, name):
    from privemo.audit import representation_from_arrays

    split = np.full(len(table), "", dtype="<U10")
    for part in ("train", "validation", "test"):
        split[getattr(fold, part)] = part
    rows = np.flatnonzero(split != "")
    return representation_from_arrays(
        h[rows], table["speaker"].to_numpy(object)[rows].astype(str), table["gender"].to_numpy(object)[rows].astype(str),
        emotion={task: labels[rows]}, split=split[rows],
        utterance_id=table["utterance_id"].to_numpy(object)[rows].astype(str), source=name)


def measure(run: Path, condition: str, fold_id: int, table, folds, views, attackers: str, seed: int) -> list[dict]:
    """Rows (metric, trained, deployed, record) for one saved network."""
    from privemo.audit import compare_representations
    from privemo.data.labels import bin_labels
    from privemo.data.pipeline import predict
    from privemo.metrics import uar
    from privemo.nn.models import representation_model

    record = read_json(run / "folds" / condition / f"fold{fold_id}.json")
    task = record["task"]
    labels = bin_labels(table[task].to_numpy(float), str(table.attrs.get("corpus", "")))
    model = privemo.load_model(run / "models" / condition / f"fold{fold_id}.keras", compile=False)
    encoder = representation_model(model)
    fold = folds[fold_id]
    everyone = np.arange(len(table))
    rows, reps = [], {}
    emotion = {}
    for name, view in views.items():
        h = np.asarray(predict(encoder, {"acoustic": view}, everyone), np.float32)
        reps[name] = _representation(h, table, fold, task, labels, f"{condition} fold {fold_id} as {name}")
        out = predict(model, {"acoustic": view}, fold.test)
        probs = out["emotion"] if isinstance(out, dict) else out if isinstance(out, np.ndarray) else out[0]
        emotion[name] = uar(labels[fold.test], np.argmax(probs, axis=1))
    rows.append({"metric": "emotion_uar (network head)", "trained": emotion["trained"],
                 "deployed": emotion["deployed"], "record": record["test"]["emotion_uar"]})
    comparison = compare_representations(reps["trained"], reps["deployed"], seed=seed, attackers=attackers)
    folds_a, folds_b = comparison["a"]["folds"], comparison["b"]["folds"]
    test_fold = [k for k, f in enumerate(folds_a) if f["n"]["test"]]  # the split gives one fold: the run's test fold
    k = test_fold[0]
    attack = record.get("attacks", {})
    rows.append({"metric": "gender attacker UAR (audit, default attackers)",
                 "trained": folds_a[k]["gender"].get("test_uar"), "deployed": folds_b[k]["gender"].get("test_uar"),
                 "record": attack.get("gender", {}).get("strongest_test_uar")})
    for metric in ("eer", "eer_same_gender"):
        rows.append({"metric": f"speaker {metric} (audit)", "trained": folds_a[k]["verification"].get(metric),
                     "deployed": folds_b[k]["verification"].get(metric),
                     "record": attack.get("speaker_verification", {}).get(metric)})
    rows.append({"metric": f"{task} UAR (audit's linear probe)", "trained": folds_a[k]["emotion"][task].get("test_uar"),
                 "deployed": folds_b[k]["emotion"][task].get("test_uar"), "record": None})
    return [{"condition": condition, "fold": fold_id, **r} for r in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a python -m privemo.reproduce --out folder with models/")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS))
    parser.add_argument("--folds", nargs="+", type=int, default=None, help="outer folds (default: every saved one)")
    parser.add_argument("--attackers", default="default", help="the audit's attacker set ('default' or 'full')")
    parser.add_argument("--out", default=str(ROOT / "results" / "deployed_vs_trained.csv"))
    args = parser.parse_args(argv)
    run = Path(args.run)
    config = _config(run, args.conditions[0])
    table, folds, views = _inputs(config)
    rows = []
    for condition in args.conditions:
        saved = sorted(int(p.stem[4:]) for p in (run / "models" / condition).glob("fold*.keras"))
        for fold_id in (args.folds if args.folds is not None else saved):
            t0 = time.perf_counter()
            found = measure(run, condition, fold_id, table, folds, views, args.attackers, config.seed)
            rows += found
            print(f"{condition} fold {fold_id} ({time.perf_counter() - t0:.0f} s): " + "; ".join(
                f"{r['metric']} {_f(r['trained'])} as trained, {_f(r['deployed'])} as deployed" for r in found),
                flush=True)
    frame = pd.DataFrame(rows)
    atomic_write_text(args.out, frame.to_csv(index=False, float_format="%.4f"))
    summary = frame.groupby(["condition", "metric"], sort=False)[["trained", "deployed", "record"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"-> {args.out}")
    return 0


def _f(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
