"""A privemo encoder and a corpus -> the `Representation` the audit attacks, encoded as the encoder ships.

Every utterance's wav file goes through ``privemo.nn.encoder.encode`` with its defaults, i.e. log-MFB features with the
encoder's feature parameters z-normalised per utterance (the deployment scheme; the experiment's tables use
per-speaker statistics instead). The encoder is loaded in Keras' safe mode (no Python code from the file runs).

Which speakers are scored: an encoder exported from fold k of a run (its sidecar names the fold, and the run's
``manifest.json`` sits three folders above its source network) is audited on that fold's own split: attackers train
on the fold's training and validation speakers and are scored on its test speakers only, never on speakers the encoder
was trained on. The split is made by ``privemo.data.folds.speaker_folds`` with the run's ``n_folds`` and ``seed``.
Any other encoder gets the audit's own folds (it may have been trained on some of those speakers: the report says so).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from privemo._util.io import read_json
from privemo._util.validation import UserError
from privemo.audit.inputs import Representation, representation_from_arrays

__all__ = ["load_encoder_safe", "encode_corpus", "run_split", "ENCODE_CHUNK"]

ENCODE_CHUNK = 256  # utterances per progress line while encoding


def load_encoder_safe(path: str | os.PathLike):
    """A `privemo.nn.encoder.Encoder` from an encoder (or whole network) ``.keras`` file, loaded with
    ``safe_mode=True``, with its sidecar JSON when present. Only acoustic encoders are audited from a corpus."""
    from privemo.nn.encoder import Encoder, sidecar_path
    from privemo.removal.saving import load_model

    path = Path(path)
    if path.suffix != ".keras":
        raise UserError(f"{path}: expected an encoder file ending in .keras (python -m privemo.export makes one)")
    if not path.is_file():
        raise UserError(f"{path}: no such encoder file")
    try:
        model = load_model(path, compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError) as exc:
        raise UserError(f"{path}: cannot load it in Keras' safe mode ({str(exc).splitlines()[0]})") from None
    if isinstance(model.output, (dict, list, tuple)):  # a whole privemo network: its inputs -> h part
        from privemo.nn.models import representation_model

        model = representation_model(model)
    sidecar = sidecar_path(path)
    encoder = Encoder(model, read_json(sidecar) if sidecar.is_file() else {})
    if encoder.modalities != ("acoustic",):
        raise UserError(f"{path}: a {'+'.join(encoder.modalities)} encoder; the audit encodes a corpus's wav files, "
                        "which needs an acoustic encoder (audit other representations with --features)")
    return encoder


def run_split(path: str | os.PathLike) -> dict[str, Any] | None:
    """{"fold", "n_folds", "seed", "corpus", "demo_per_speaker", "manifest"} of the run the encoder at ``path`` was
    exported from, or None when its sidecar names no fold or the run's manifest cannot be found."""
    from privemo.nn.encoder import sidecar_path

    sidecar = sidecar_path(path)
    meta = read_json(sidecar) if sidecar.is_file() else {}
    if "fold" not in meta:
        return None
    candidates = []
    if meta.get("source_model"):
        candidates.append(Path(meta["source_model"]).parents[2] / "manifest.json")
    candidates.append(Path(path).resolve().parents[2] / "manifest.json")  # <out>/encoders/<condition>/fold<k>.keras
    for manifest in candidates:
        if manifest.is_file():
            config = read_json(manifest).get("config", {})
            return {"fold": int(meta["fold"]), "n_folds": int(config.get("n_folds", 5)),
                    "seed": int(config.get("seed", 0)), "corpus": config.get("corpus", meta.get("corpus")),
                    "demo_per_speaker": config.get("demo_per_speaker"), "manifest": str(manifest)}
    return None


def encode_corpus(
    encoder_path: str | os.PathLike,
    table,
    *,
    n_folds: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    progress: Callable[[str], None] | None = None,
) -> Representation:
    """Encode every utterance of ``table`` (``privemo.load_corpus``) with the encoder at ``encoder_path`` as deployed
    (per-utterance normalisation). Rows without a known speaker or gender are left out; emotion labels are the
    corpus's bins (``privemo.bin_labels``). An encoder from fold k of a run carries that fold's split."""
    from privemo.data.labels import bin_labels
    from privemo.nn.encoder import encode

    say = progress or (lambda s: None)
    enc = load_encoder_safe(encoder_path)
    corpus = str(table.attrs.get("corpus", ""))
    split_info = run_split(encoder_path)
    split = None
    notes: dict[str, Any] = {
        "encoder": str(encoder_path), "corpus": corpus,
        "normalisation": "per utterance, as privemo.encode does in deployment (the experiment trains with "
                         "per-speaker statistics)",
    }
    if split_info is not None:
        if split_info["corpus"] and split_info["corpus"] != corpus:
            raise UserError(f"{encoder_path}: exported from a run on {split_info['corpus']!r}, audited on {corpus!r}: "
                            f"use --corpus {split_info['corpus']} (its test speakers are the ones it never saw)")
        from privemo.data.folds import speaker_folds

        fold = speaker_folds(table, n_folds=split_info["n_folds"], seed=split_info["seed"])[split_info["fold"]]
        split = np.full(len(table), "", dtype="<U10")
        for name, rows in (("train", fold.train), ("validation", fold.validation), ("test", fold.test)):
            split[rows] = name
        notes["split"] = (f"fold {split_info['fold']} of the run ({split_info['manifest']}): scored on that fold's "
                          "test speakers only")
    else:
        notes["split"] = ("the audit's own speaker-disjoint folds (the encoder's sidecar names no run fold: it may have "
                          "been trained on some of these speakers)")
    gender = table["gender"].to_numpy(object)
    speaker = table["speaker"].to_numpy(object)
    known = np.array([isinstance(g, str) and g in ("F", "M") for g in gender]) & np.array(
        [isinstance(s, str) and s.strip().lower() not in ("", "unknown", "none", "nan") for s in speaker])
    if split is not None:
        known &= split != ""
    rows = np.flatnonzero(known)
    if not rows.size:
        raise UserError(f"corpus {corpus!r}: no utterance with a known speaker and gender to audit")
    paths = table["wav_path"].to_numpy(object)[rows].tolist()
    chunks = []
    for start in range(0, len(paths), ENCODE_CHUNK):
        chunks.append(encode([str(p) for p in paths[start:start + ENCODE_CHUNK]], enc, batch_size=batch_size))
        say(f"encoded {min(start + ENCODE_CHUNK, len(paths))}/{len(paths)} utterances")
    h = np.concatenate(chunks)
    emotion = {}
    for task in ("activation", "valence"):
        if task in table.columns:
            values = table[task].to_numpy(float)[rows]
            if np.isfinite(values).all():
                emotion[task] = bin_labels(values, corpus)
    return representation_from_arrays(
        h, speaker[rows].astype(str), gender[rows].astype(str), emotion=emotion,
        split=None if split is None else split[rows], utterance_id=table["utterance_id"].to_numpy(object)[rows].astype(str),
        source=f"{encoder_path} on {corpus}", notes=notes)
