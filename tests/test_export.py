"""The private encoder: export from a run's saved network, reload in a fresh process with identical h, encode wav files
and arrays, and the export command's errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import keras

import privemo
from privemo.nn.encoder import (
    encode,
    export_encoder,
    export_from_run,
    load_encoder,
    model_path,
    sidecar_path,
    speaker_statistics,
    wav_features,
)
from privemo.nn.models import build_model, representation_model
from privemo.data.pipeline import predict
from privemo.nn.training import compile_model

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(conv_layers=1, conv_kernels=8, gru_layers=1, gru_width=8, dense_width=8)
CONDITION = "acoustic-activation-gender-fused"


def _network(modalities=("acoustic",), seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = build_model(modalities, adversary="gender", lexical_dim=6, **TINY, **kwargs)
    compile_model(model, 1e-3)
    return model


def _features(rng, n, dim=40):
    return [rng.normal(size=(int(rng.integers(5, 60)), dim)).astype(np.float32) for _ in range(n)]


def _wav(path: Path, seconds: float, seed: int, sr: int = 16000) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    signal = 0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.05 * rng.normal(size=t.size)
    sf.write(path, signal.astype(np.float32), sr)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as privemo.experiment leaves it: the selected network, its fold record and the manifest."""
    out = tmp_path_factory.mktemp("run")
    model = _network()
    path = model_path(out, CONDITION, 0)
    path.parent.mkdir(parents=True)
    model.save(path)
    record = out / "folds" / CONDITION / "fold0.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"corpus": "demo", "task": "activation", "adversary": "gender", "seed": 7,
                                  "best_hp": {"conv_layers": 1}, "test": {"emotion_uar": 0.5}}))
    (out / "manifest.json").write_text(json.dumps({"config": {"seed": 0, "embeddings": None}}))
    return out


def test_export_reloads_in_a_fresh_process_with_identical_h(run_dir, tmp_path):
    encoder_path = export_from_run(run_dir, CONDITION, 0)
    assert encoder_path == run_dir / "encoders" / CONDITION / "fold0.keras"
    meta = json.loads(sidecar_path(encoder_path).read_text())
    assert meta["modalities"] == ["acoustic"] and meta["h_dim"] == 8 and meta["fold"] == 0
    assert meta["condition"] == CONDITION and meta["corpus"] == "demo" and meta["best_hp"] == {"conv_layers": 1}
    assert meta["acoustic_features"]["n_mels"] == 40 and "speaker" in meta["normalization"]["training"]
    assert meta["training_normalization"] == "speaker"  # the manifest's config has none: made before the option

    # the in-process reference: the trained network's own h
    network = keras.saving.load_model(model_path(run_dir, CONDITION, 0), compile=False)
    rng = np.random.default_rng(1)
    arrays = _features(rng, 9)
    wavs = [_wav(tmp_path / f"u{i}.wav", 0.4 + 0.3 * i, i) for i in range(3)]
    reference = np.asarray(predict(representation_model(network), {"acoustic": arrays},
                                                    np.arange(len(arrays))))
    np.save(tmp_path / "arrays.npy", np.array(arrays, dtype=object), allow_pickle=True)
    wav_reference = encode([str(w) for w in wavs], encoder_path)

    script = (
        "import sys, numpy as np\n"
        "import privemo\n"
        "from privemo.nn.encoder import load_encoder\n"
        f"enc = load_encoder({str(encoder_path)!r})\n"
        f"arrays = list(np.load({str(tmp_path / 'arrays.npy')!r}, allow_pickle=True))\n"
        f"np.save({str(tmp_path / 'h_arrays.npy')!r}, privemo.encode(arrays, enc))\n"
        f"np.save({str(tmp_path / 'h_wavs.npy')!r}, privemo.encode({[str(w) for w in wavs]!r}, enc))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    h = np.load(tmp_path / "h_arrays.npy")
    assert h.shape == (9, 8) and h.dtype == np.float32
    np.testing.assert_allclose(h, reference, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "h_wavs.npy"), wav_reference, rtol=0, atol=1e-6)
    assert np.abs(reference).max() > 1e-3  # a real representation, not zeros


def test_encode_wavs_uses_per_utterance_normalisation_or_speaker_statistics(run_dir, tmp_path):
    assert privemo.encode is encode  # the public API
    encoder = load_encoder(export_from_run(run_dir, CONDITION, 0, tmp_path / "enc.keras"))
    wavs = [_wav(tmp_path / f"s{i}.wav", 0.5 + 0.2 * i, i) for i in range(3)]
    raw = [wav_features(w) for w in wavs]
    per_utterance = [(x - x.mean(0)) / np.maximum(x.std(0), 1e-3) for x in raw]
    h = encode(wavs, encoder)  # paths -> log-MFB -> per-utterance z-normalisation -> h
    np.testing.assert_allclose(h, encode(per_utterance, encoder), atol=1e-5)
    mean, std = speaker_statistics(wavs)
    by_speaker = [(x - mean) / std for x in raw]
    h_speaker = encode(wavs, encoder, speaker_stats=(mean, std))
    np.testing.assert_allclose(h_speaker, encode(by_speaker, encoder), atol=1e-5)
    assert not np.allclose(h, h_speaker)
    # arrays are taken as given unless normalize=True; one 2-D array is one utterance
    np.testing.assert_allclose(encode(raw, encoder, normalize=True), h, atol=1e-5)
    assert encode(raw[0], encoder).shape == (1, encoder.dim)
    # a model works as the encoder too, and padding does not change an utterance's h
    alone = encode([per_utterance[0]], encoder.model)
    np.testing.assert_allclose(alone[0], h[0], atol=1e-5)


def test_multimodal_encoders_need_arrays_and_say_so(tmp_path):
    model = _network(("acoustic", "lexical"))
    path = export_encoder(model, tmp_path / "mm.keras")
    encoder = load_encoder(path)
    assert encoder.modalities == ("acoustic", "lexical") and encoder.input_dims == {"acoustic": 40, "lexical": 6}
    rng = np.random.default_rng(0)
    acoustic, lexical = _features(rng, 4), _features(rng, 4, dim=6)
    h = encode({"acoustic": acoustic, "lexical": lexical}, encoder)
    expected = np.asarray(predict(representation_model(model), {"acoustic": acoustic,
                                                                                 "lexical": lexical}, np.arange(4)))
    np.testing.assert_allclose(h, expected, atol=1e-6)
    assert h.shape == (4, 16)
    np.testing.assert_array_equal(encode({"acoustic": acoustic, "lexical": lexical}, model), h)  # a whole network
    wav = _wav(tmp_path / "a.wav", 0.5, 0)
    with pytest.raises(ValueError, match="pass a dict"):
        encode([wav], encoder)
    with pytest.raises(ValueError, match="wav files can only be encoded by an acoustic encoder"):
        encode({"acoustic": acoustic, "lexical": [str(wav)] * 4}, encoder)
    with pytest.raises(ValueError, match="same number of utterances"):
        encode({"acoustic": acoustic, "lexical": lexical[:3]}, encoder)
    with pytest.raises(ValueError, match=r"shape \(length, 6\)"):
        encode({"acoustic": acoustic, "lexical": acoustic}, encoder)
    with pytest.raises(ValueError, match="ending in '.keras'"):
        export_encoder(model, tmp_path / "mm.h5")


def _cli(*args, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "privemo.export", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


def test_export_command(run_dir, tmp_path):
    bad_condition = _cli("--out", str(run_dir), "--condition", "lexical-valence-baseline", "--fold", "0", cwd=tmp_path)
    assert bad_condition.returncode == 2
    lines = bad_condition.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("privemo.export: error:") and f"{CONDITION}: folds [0]" in lines[0]
    bad_fold = _cli("--out", str(run_dir), "--condition", CONDITION, "--fold", "3", cwd=tmp_path)
    assert bad_fold.returncode == 2 and len(bad_fold.stderr.strip().splitlines()) == 1 and "fold 3" in bad_fold.stderr
    missing = _cli("--out", str(run_dir), "--condition", CONDITION, cwd=tmp_path)
    assert missing.returncode == 2 and "--fold required" in missing.stderr and "Traceback" not in missing.stderr
    listed = _cli("--out", str(run_dir), "--list", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.strip() == f"{CONDITION}: folds 0"
    good = _cli("--out", str(run_dir), "--condition", CONDITION, "--fold", "0", "--output",
                str(tmp_path / "e.keras"), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "e.keras").is_file() and (tmp_path / "e.json").is_file()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_sidecar_names_the_normalisation_the_run_trained_with(run_dir, tmp_path):
    """A run trained with per-utterance normalisation (--normalization utterance) exports a sidecar that says so."""
    (run_dir / "manifest.json").write_text(json.dumps({"config": {"seed": 0, "embeddings": None,
                                                                  "normalization": "utterance"}}))
    meta = json.loads(sidecar_path(export_from_run(run_dir, CONDITION, 0, tmp_path / "e.keras")).read_text())
    assert meta["training_normalization"] == "utterance" and "per utterance" in meta["normalization"]["training"]
