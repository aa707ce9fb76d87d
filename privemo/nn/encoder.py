"""The private encoder: the trained network's inputs -> h part as a stand-alone ``.keras`` file, and ``encode``.

This is the piece an app would ship so that only the representation h (not the audio or the words) leaves the device.
``export_encoder`` cuts ``privemo.nn.models.representation_model`` out of a trained network (the experiment keeps each
fold's selected network as ``<out>/models/<condition.key>/fold<k>.keras``, see ``ExperimentConfig.save_models``) and
saves it with a JSON sidecar (``<encoder>.json``) recording how its inputs must be made: modalities, input sizes,
acoustic feature parameters, normalisation, sequence caps, where the word vectors came from, and the run it belongs to.
``python -m privemo.export`` does that from the command line. ``encode(paths_or_arrays, encoder)`` turns wav files or
feature arrays into h, an (n, dim) float32 array, batching through ``privemo.data.pipeline.predict``.

Normalisation: the experiment z-normalises log-MFB features per speaker (statistics over all of a speaker's audio). An
app seldom has those, so by default ``encode`` z-normalises each wav file with its own statistics (per-utterance
z-normalisation, the usual fallback; it is not what the network was trained on, so expect slightly different h); pass
``speaker_stats=(mean, std)`` (e.g. from ``speaker_statistics`` over enrolment recordings of the speaker) to use the
training-time scheme. Feature arrays are taken as they are (already normalised) unless ``normalize=True``.
Lexical and multimodal encoders take word-vector arrays (tokens, dim) made with the same vectors as in training (the
sidecar says which); wav files are accepted only by acoustic encoders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from privemo._util.io import atomic_write_json, read_json

FORMAT = "privemo-encoder"
FORMAT_VERSION = 1
MODALITIES = ("acoustic", "lexical")


def sidecar_path(encoder_path: str | os.PathLike) -> Path:
    """``encoder.keras`` -> ``encoder.json``: the metadata file next to a saved encoder."""
    return Path(encoder_path).with_suffix(".json")


def model_path(out_dir: str | os.PathLike, condition: str, fold: int) -> Path:
    """Where ``privemo.experiment`` keeps the selected network of (condition, fold) of the run in ``out_dir``."""
    return Path(out_dir) / "models" / condition / f"fold{int(fold)}.keras"


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from privemo import __version__

    return {"privemo": __version__, "keras": keras.__version__, "tensorflow": tf.__version__}


def _input_dims(model) -> dict[str, int]:
    inputs = model.input if isinstance(model.input, Mapping) else {t.name: t for t in model.inputs}
    return {name: int(tensor.shape[-1]) for name, tensor in inputs.items()}


def _atomic_save(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
    try:
        model.save(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def export_encoder(model, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Save the inputs -> h part of ``model`` (a privemo network or a path to its ``.keras`` file) as ``path``.

    Args:
        model: a ``keras.Model`` built by ``privemo.nn.models.build_model`` (trained), or the path of one saved as .keras.
        path: the encoder file to write; must end with ".keras". Written atomically, with the sidecar ``<path>.json``.
        metadata: extra JSON-serialisable facts for the sidecar (e.g. the run's condition, fold, feature parameters;
            ``training_normalization``: the acoustic z-normalisation the network was trained with, "speaker" by default).

    Returns:
        The encoder's path.
    """
    import keras

    from privemo.nn.models import representation_model
    from privemo.removal.saving import load_model

    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Invalid value received for argument `path`. Expected a file name ending in '.keras'. "
                         f"Received: path={str(path)!r}")
    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no such model file")
        model = load_model(source, compile=False)
    elif not isinstance(model, keras.Model):
        raise ValueError(f"Invalid value received for argument `model`. Expected a keras.Model or the path of a .keras "
                         f"file. Received: model of type {type(model).__name__}")
    encoder = representation_model(model)
    dims = _input_dims(encoder)
    modalities = [m for m in MODALITIES if m in dims]
    info: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "modalities": modalities,
        "input_dims": dims,
        "h_dim": int(encoder.output.shape[-1]),
        "versions": _versions(),
    }
    if "acoustic" in modalities:
        from privemo.features.logmel import MAX_FRAMES, STD_FLOOR, feature_params

        info["acoustic_features"] = feature_params(n_mels=dims["acoustic"])
        from privemo.features.acoustic import NORMALIZATIONS

        info["normalization"] = {
            "training": NORMALIZATIONS[dict(metadata or {}).get("training_normalization", "speaker")],
            "encode_default": "z-normalisation per utterance (its own mean and std per Mel band), unless speaker "
                              "statistics are given",
            "std_floor": STD_FLOOR,
        }
        info.setdefault("max_lengths", {})["acoustic"] = MAX_FRAMES
    if "lexical" in modalities:
        from privemo.features.lexical import MAX_TOKENS

        info.setdefault("max_lengths", {})["lexical"] = MAX_TOKENS
        info["lexical_input"] = ("word-vector sequences (tokens, dim) from privemo.features.lexical.embed with the "
                                 "vectors used in training (see 'word_vectors')")
    info.update(dict(metadata or {}))
    _atomic_save(encoder, path)
    atomic_write_json(sidecar_path(path), info)
    return path


def available_models(out_dir: str | os.PathLike) -> dict[str, list[int]]:
    """{condition key: [folds]} of the selected networks saved under ``<out_dir>/models``."""
    root = Path(out_dir) / "models"
    found: dict[str, list[int]] = {}
    if root.is_dir():
        for file in sorted(root.glob("*/fold*.keras")):
            stem = file.stem[len("fold"):]
            if stem.isdigit():
                found.setdefault(file.parent.name, []).append(int(stem))
    return {k: sorted(v) for k, v in sorted(found.items())}


def export_from_run(out_dir: str | os.PathLike, condition: str, fold: int,
                    path: str | os.PathLike | None = None) -> Path:
    """Export the encoder of ``condition`` (a condition key such as "acoustic-activation-gender-fused") and ``fold`` of
    the run in ``out_dir``; default destination ``<out_dir>/encoders/<condition>/fold<k>.keras``.

    Raises FileNotFoundError naming the available conditions and folds when that network was not saved.
    """
    source = model_path(out_dir, condition, fold)
    if not source.is_file():
        available = available_models(out_dir)
        listing = "; ".join(f"{k}: folds {v}" for k, v in available.items()) or "none (run the experiment first)"
        raise FileNotFoundError(f"{source}: no saved network for condition {condition!r}, fold {fold}. "
                                f"Saved networks in {Path(out_dir) / 'models'}: {listing}")
    metadata: dict[str, Any] = {"condition": condition, "fold": int(fold), "source_model": str(source)}
    record_file = Path(out_dir) / "folds" / condition / f"fold{int(fold)}.json"
    if record_file.is_file():
        record = read_json(record_file)
        metadata.update({k: record[k] for k in ("corpus", "task", "adversary", "placement", "grl_lambda", "seed",
                                                "best_hp", "grid") if k in record})
        metadata["test_emotion_uar"] = record.get("test", {}).get("emotion_uar")
    manifest_file = Path(out_dir) / "manifest.json"
    config = read_json(manifest_file).get("config", {}) if manifest_file.is_file() else {}
    embeddings = config.get("embeddings")
    metadata["training_normalization"] = config.get("normalization", "speaker")
    metadata["word_vectors"] = (
        f"the embeddings file {embeddings}" if embeddings else
        f"Word2Vec trained on fold {int(fold)}'s training transcripts (privemo.experiment.lexical_inputs: "
        f"privemo.features.lexical.train_word2vec(table, folds[{int(fold)}].train, seed={config.get('seed', 0)}))"
    )
    destination = Path(path) if path is not None else Path(out_dir) / "encoders" / condition / f"fold{int(fold)}.keras"
    return export_encoder(source, destination, metadata=metadata)


class Encoder:
    """A loaded encoder: ``model`` (keras.Model inputs -> h) and ``metadata`` (the sidecar, {} when absent)."""

    def __init__(self, model, metadata: Mapping[str, Any] | None = None):
        self.model = model
        self.metadata = dict(metadata or {})
        self.input_dims = _input_dims(model)
        self.modalities = tuple(m for m in MODALITIES if m in self.input_dims)
        self.dim = int(model.output.shape[-1])

    def __call__(self, paths_or_arrays, **kwargs) -> np.ndarray:
        return encode(paths_or_arrays, self, **kwargs)

    def __repr__(self) -> str:
        return f"Encoder(modalities={self.modalities}, dim={self.dim})"


def load_encoder(path: str | os.PathLike) -> Encoder:
    """Load an encoder saved by ``export_encoder`` (and its sidecar, when present)."""
    from privemo.removal.saving import load_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such encoder file")
    model = load_model(path, compile=False)
    sidecar = sidecar_path(path)
    return Encoder(model, read_json(sidecar) if sidecar.is_file() else {})


def _as_encoder(encoder) -> Encoder:
    import keras

    if isinstance(encoder, Encoder):
        return encoder
    if isinstance(encoder, (str, os.PathLike)):
        return load_encoder(encoder)
    if isinstance(encoder, keras.Model):
        if isinstance(encoder.output, (dict, list, tuple)):  # a whole privemo network: use its inputs -> h part
            from privemo.nn.models import representation_model

            encoder = representation_model(encoder)
        return Encoder(encoder)
    raise ValueError("Invalid value received for argument `encoder`. Expected an Encoder, a keras.Model or the path of "
                     f"an encoder .keras file. Received: encoder of type {type(encoder).__name__}")


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def wav_features(path: str | os.PathLike, params: Mapping[str, Any] | None = None) -> np.ndarray:
    """Raw (un-normalised) log-MFB features of one sound file, with the encoder's feature parameters."""
    from privemo.features.logmel import HOP_LENGTH_MS, N_MELS, WIN_LENGTH_MS, load_audio, log_mfb

    params = params or {}
    signal, sr = load_audio(path)
    return log_mfb(signal, sr, n_mels=int(params.get("n_mels", N_MELS)),
                   win_length_ms=float(params.get("win_length_ms", WIN_LENGTH_MS)),
                   hop_length_ms=float(params.get("hop_length_ms", HOP_LENGTH_MS)))


def speaker_statistics(paths_or_features: Sequence, params: Mapping[str, Any] | None = None) -> tuple[np.ndarray,
                                                                                                          np.ndarray]:
    """Per-band (mean, std) over all frames of one speaker's recordings (wav paths or raw log-MFB arrays), as the
    experiment's per-speaker z-normalisation computes them (std floored at ``STD_FLOOR``)."""
    from privemo.features.logmel import STD_FLOOR

    items = [paths_or_features] if _is_path(paths_or_features) else list(paths_or_features)
    if not items:
        raise ValueError("Invalid value received for argument `paths_or_features`. Expected at least one recording. "
                         "Received: an empty sequence")
    total = count = sq = 0
    for item in items:
        x = (wav_features(item, params) if _is_path(item) else np.asarray(item, np.float32)).astype(np.float64)
        total = total + x.sum(axis=0)
        sq = sq + np.square(x).sum(axis=0)
        count += len(x)
    mean = total / count
    std = np.maximum(np.sqrt(np.maximum(sq / count - mean**2, 0.0)), STD_FLOOR)
    return mean.astype(np.float32), std.astype(np.float32)


def _znorm(x: np.ndarray, stats) -> np.ndarray:
    from privemo.features.logmel import STD_FLOOR

    x = np.asarray(x, np.float32)
    if stats is None:
        mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        std = np.maximum(std, STD_FLOOR)
    else:
        mean, std = stats
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def _arrays(name: str, values, dim: int) -> list[np.ndarray]:
    if isinstance(values, np.ndarray):
        values = [values] if values.ndim == 2 else list(values) if values.ndim == 3 else None
    if values is None or not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or not len(values):
        raise ValueError(f"Invalid value received for `{name}` inputs. Expected a non-empty list of 2-D arrays "
                         f"(length, {dim}) or one such array. Received: {type(values).__name__}")
    out = []
    for i, a in enumerate(values):
        a = np.asarray(a, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != dim or len(a) == 0:
            raise ValueError(f"Invalid value received for `{name}` input {i}. Expected a 2-D array of shape (length, "
                             f"{dim}) with length >= 1. Received: shape {a.shape}")
        out.append(a)
    return out


def encode(paths_or_arrays, encoder, *, normalize: bool | None = None, speaker_stats=None,
           batch_size: int = 64) -> np.ndarray:
    """Private representations h of utterances: an (n, dim) float32 array, one row per utterance, in input order.

    Args:
        paths_or_arrays: one of
            - wav file paths (a path or a list of paths): acoustic encoders only; log-MFB features with the encoder's
              feature parameters, z-normalised (see ``normalize``);
            - acoustic feature arrays (frames, n_mels), one array or a list: for an acoustic encoder;
            - word-vector arrays (tokens, dim): for a lexical encoder;
            - a dict {"acoustic": [...], "lexical": [...]} of the above (paths allowed for "acoustic"): any encoder,
              required for a multimodal one (same number of utterances per modality).
        encoder: an ``Encoder`` (``load_encoder``), the path of an encoder .keras file, or a keras.Model: inputs -> h,
            or a whole privemo network (its ``representation_model`` is used).
        normalize: z-normalise acoustic inputs (per utterance, or with ``speaker_stats``). Default: True for wav files,
            False for arrays (taken to be normalised already, like the experiment's inputs).
        speaker_stats: (mean, std) per Mel band of the speaker (``speaker_statistics``); used when normalising
            instead of each utterance's own statistics.
        batch_size: utterances per forward pass.

    Returns:
        np.ndarray float32 of shape (n, h dim).
    """
    from privemo.data.pipeline import predict

    enc = _as_encoder(encoder)
    if isinstance(paths_or_arrays, Mapping):
        given = dict(paths_or_arrays)
        unknown = sorted(set(given) - set(MODALITIES))
        if unknown:
            raise ValueError(f"Invalid value received for argument `paths_or_arrays`. Expected keys among "
                             f"{MODALITIES}. Received keys: {sorted(given)}")
    elif len(enc.modalities) == 1:
        given = {enc.modalities[0]: paths_or_arrays}
    else:
        raise ValueError(f"This encoder takes {' and '.join(enc.modalities)} inputs: pass a dict "
                         "{'acoustic': wav paths or feature arrays, 'lexical': word-vector arrays}")
    missing = [m for m in enc.modalities if m not in given]
    extra = [m for m in given if m not in enc.modalities]
    if missing or extra:
        raise ValueError(f"This encoder takes {list(enc.modalities)} inputs. Received: {sorted(given)}")

    inputs: dict[str, list[np.ndarray]] = {}
    for modality, values in given.items():
        dim = enc.input_dims[modality]
        items = [values] if _is_path(values) else values
        is_paths = isinstance(items, Sequence) and not isinstance(items, (str, bytes)) and len(items) > 0 and all(
            _is_path(v) for v in items)
        if is_paths and modality != "acoustic":
            raise ValueError("wav files can only be encoded by an acoustic encoder; the lexical input takes "
                             "word-vector arrays (tokens, dim) made with the training vectors (see the encoder's "
                             "sidecar JSON)")
        if is_paths:
            params = enc.metadata.get("acoustic_features", {"n_mels": dim})
            arrays = [wav_features(p, params) for p in items]
            do_norm = True if normalize is None else normalize
        else:
            if isinstance(items, Sequence) and any(_is_path(v) for v in items):
                raise ValueError("Invalid value received for argument `paths_or_arrays`. Expected either wav paths or "
                                 "arrays, not a mixture")
            arrays = _arrays(modality, items, dim)
            do_norm = bool(normalize) and modality == "acoustic"
        if arrays and arrays[0].shape[1] != dim:
            raise ValueError(f"the features have {arrays[0].shape[1]} values per frame but the encoder's {modality} "
                             f"input takes {dim}")
        if do_norm:
            arrays = [_znorm(a, speaker_stats) for a in arrays]
        inputs[modality] = arrays
    counts = {m: len(v) for m, v in inputs.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"Every modality needs the same number of utterances. Received: {counts}")
    n = next(iter(counts.values()))
    h = predict(enc.model, inputs, np.arange(n), batch_size=batch_size)
    return np.asarray(h, dtype=np.float32)


def describe(encoder) -> str:
    """A one-paragraph description of an encoder (for the command line)."""
    enc = _as_encoder(encoder)
    return json.dumps({"modalities": list(enc.modalities), "input_dims": enc.input_dims, "h_dim": enc.dim,
                       **{k: enc.metadata[k] for k in ("condition", "fold", "corpus") if k in enc.metadata}})
