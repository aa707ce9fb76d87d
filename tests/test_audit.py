"""privemo.audit: known answers (planted gender and identity, random h), malformed features files, an exported encoder
audited end to end, --compare, and the command from a plain shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privemo.audit.inputs import read_features, representation_from_arrays, representation_from_frame, write_features
from privemo.cli.audit import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--bootstrap", "200", "--quiet"]


def _table(planted: bool, n_speakers: int = 40, per: int = 12, dim: int = 16, seed: int = 0) -> dict:
    """Columns of a features file: with ``planted``, gender on h's first axis and a per-speaker centre on the others
    (both far above the within-speaker noise); otherwise h is noise."""
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(n_speakers), per)
    gender = np.where(spk % 2 == 0, "F", "M")
    if planted:
        h = rng.normal(scale=3.0, size=(n_speakers, dim))[spk] + rng.normal(size=(spk.size, dim))
        h[:, 0] = np.where(gender == "F", -4.0, 4.0) + rng.normal(scale=0.5, size=spk.size)
    else:
        h = rng.normal(size=(spk.size, dim))
    return {"h": h.astype(np.float32), "speaker": np.array([f"spk{s:02d}" for s in spk]), "gender": gender,
            "activation": rng.integers(0, 3, spk.size), "utterance_id": np.array([f"u{i:04d}" for i in range(spk.size)])}


def _write(path: Path, columns: dict) -> Path:
    rep = representation_from_arrays(columns["h"], columns["speaker"], columns["gender"],
                                      emotion={"activation": columns["activation"]},
                                      utterance_id=columns["utterance_id"])
    return write_features(path, rep)


def _audit(tmp_path: Path, features: Path, *extra: str) -> dict:
    out = tmp_path / "report"
    assert main(["--features", str(features), "--out", str(out), *FAST, *extra]) == 0
    for name in ("report.md", "report.html", "report.json", "attackers.png", "folds.png"):
        assert (out / name).is_file(), name
    return json.loads((out / "report.json").read_text())


def test_planted_gender_and_identity_are_found(tmp_path):
    report = _audit(tmp_path, _write(tmp_path / "planted.npz", _table(True)))
    summary = report["summary"]
    assert summary["gender_uar_pooled"]["uar"] >= 0.95 and summary["gender_uar_pooled"]["n_speakers"] == 40
    assert summary["eer"]["mean"] <= 0.05 and summary["eer_same_gender"]["mean"] <= 0.05
    assert report["attackers"] == ["logreg", "hgb", "svm"] and len(report["folds"]) == 5
    for fold in report["folds"]:  # every fold's test speakers are unseen by its attackers and verifier
        assert fold["gender"]["n_test_speakers"] == fold["speakers"]["test"]
        assert fold["verification"]["n_speakers"] == fold["speakers"]["test"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<img" in html and 'src="det.png"' not in html
    assert (tmp_path / "report" / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_random_h_gives_chance(tmp_path):
    report = _audit(tmp_path, _write(tmp_path / "random.csv", _table(False, per=20)))
    summary = report["summary"]
    assert abs(summary["gender_uar_pooled"]["uar"] - 0.5) <= 0.05
    assert 0.45 <= summary["eer"]["mean"] <= 0.55 and 0.45 <= summary["eer_same_gender"]["mean"] <= 0.55
    assert report["membership"]["auc"] is None and "emotion head" in report["membership"]["reason"]


def test_det_scores_give_the_shared_verifier_eer():
    """The DET plot's scores are the shared verifier's: same EER where every pair is scored."""
    from privemo.audit.run import det_scores
    from privemo.privacy.verification import equal_error_rate, speaker_verification_attack

    cols = _table(True, n_speakers=12, per=6)
    h, spk = cols["h"] + np.random.default_rng(1).normal(scale=6.0, size=cols["h"].shape).astype(np.float32), \
        cols["speaker"]
    train, test = np.isin(spk, np.unique(spk)[:8]), np.isin(spk, np.unique(spk)[8:])
    target, nontarget = det_scores(h[train], spk[train], h[test], spk[test])
    eer = equal_error_rate(np.r_[np.ones(target.size), np.zeros(nontarget.size)], np.r_[target, nontarget])
    shared = speaker_verification_attack(h[train], spk[train], h[test], spk[test])
    assert 0.0 < shared["eer"] < 0.5 and eer == pytest.approx(shared["eer"], abs=1e-12)


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _frame(n_speakers: int = 6, per: int = 4) -> pd.DataFrame:
    cols = _table(False, n_speakers=n_speakers, per=per, dim=3)
    frame = pd.DataFrame({f"h{j}": cols["h"][:, j] for j in range(3)})
    frame["speaker"], frame["gender"] = cols["speaker"], cols["gender"]
    return frame


def _malformed(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A malformed features file and the column its error must name."""
    f = _frame()
    if case == "missing column":
        return _csv(tmp_path / "f.csv", f.drop(columns=["gender"])), "gender"
    if case == "non-finite":
        f.loc[5, "h1"] = np.nan
        return _csv(tmp_path / "f.csv", f), "h0..."
    if case == "wrong dtype":
        f["h2"] = f["h2"].astype(str) + "x"
        return _csv(tmp_path / "f.csv", f), "h2"
    if case == "unknown split":
        f["split"] = ["train"] * 8 + ["test"] * 8 + ["holdout"] * 8
        return _csv(tmp_path / "f.csv", f), "split"
    if case == "speaker in two genders":
        f.loc[0, "gender"] = "M" if f.loc[0, "gender"] == "F" else "F"
        return _csv(tmp_path / "f.csv", f), "gender"
    if case == "continuous emotion":
        f["activation"] = np.linspace(1, 5, len(f))
        return _csv(tmp_path / "f.csv", f), "activation"
    if case == "pickled objects":
        path = tmp_path / "f.npz"
        np.savez(path, h=np.zeros((4, 2)), speaker=np.array([{"a": 1}] * 4, dtype=object), gender=np.array(["F"] * 4))
        return path, "speaker"
    if case == "ragged npz":
        path = tmp_path / "f.npz"
        np.savez(path, h=np.zeros((4, 2)), speaker=np.array(["a", "b", "c"]), gender=np.array(["F", "M", "F", "M"]))
        return path, "speaker"
    raise AssertionError(case)


CASES = ["missing column", "non-finite", "wrong dtype", "unknown split", "speaker in two genders",
         "continuous emotion", "pickled objects", "ragged npz"]


@pytest.mark.parametrize("case", CASES)
def test_malformed_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    path, column = _malformed(tmp_path, case)
    out = tmp_path / "out"
    assert main(["--features", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("privemo.audit: error: ") and "Traceback" not in err
    assert str(path) in err and f"`{column}`" in err and "expected" in err, err
    assert not out.exists()


def test_ragged_h_lists_are_named():
    frame = _frame()
    frame["h"] = [np.zeros(3)] * (len(frame) - 1) + [np.zeros(2)]
    frame = frame.drop(columns=["h0", "h1", "h2"])
    with pytest.raises(Exception) as caught:
        representation_from_frame(frame, "table.parquet")
    text = str(caught.value)
    assert type(caught.value).__name__ == "UserError" and "table.parquet: column `h`" in text and "ragged" in text


def test_features_round_trip(tmp_path):
    cols = _table(False, n_speakers=4, per=3, dim=5)
    for suffix in (".npz", ".csv"):
        path = _write(tmp_path / f"f{suffix}", cols)
        back = read_features(path)
        np.testing.assert_allclose(back.h, cols["h"], rtol=1e-6)
        assert back.speaker.tolist() == cols["speaker"].tolist() and back.gender.tolist() == cols["gender"].tolist()
        assert back.emotion["activation"].tolist() == cols["activation"].astype(str).tolist()


def test_compare_gives_the_verdict_rule(tmp_path):
    planted = _write(tmp_path / "a.npz", _table(True, n_speakers=20, per=8))
    noise = _table(False, n_speakers=20, per=8)
    noise["utterance_id"] = noise["utterance_id"][::-1].copy()  # another row order: matched by utterance id
    random = _write(tmp_path / "b.csv", {k: v[::-1] if k != "utterance_id" else v for k, v in noise.items()})
    out = tmp_path / "cmp"
    assert main(["--compare", str(planted), str(random), "--out", str(out), "--folds", "4", *FAST]) == 0
    result = json.loads((out / "report.json").read_text())
    rows = {r["metric"]: r for r in result["comparison"]}
    assert rows["gender_uar"]["verdict"] == "better" and rows["gender_uar"]["difference"] < -0.3
    assert rows["eer"]["verdict"] == "better" and rows["eer"]["n"] == 4
    assert set(rows) == {"gender_uar", "eer", "eer_same_gender", "emotion_uar_activation"}
    assert "| gender_uar | lower is better |" in (out / "report.md").read_text()
    # a representation against itself: zero differences in every fold, equivalent
    same = tmp_path / "same"
    assert main(["--compare", str(planted), str(planted), "--out", str(same), "--folds", "4", "--attackers", "logreg",
                 *FAST]) == 0
    rows = {r["metric"]: r for r in json.loads((same / "report.json").read_text())["comparison"]}
    assert rows["gender_uar"]["verdict"] == "equivalent" and rows["gender_uar"]["difference"] == 0


def test_tiny_exported_encoder_is_audited_as_deployed(tmp_path):
    """An encoder exported from a (tiny, untrained) run's fold 0 is scored on that fold's test speakers only."""
    import keras

    from privemo import load_corpus, speaker_folds
    from privemo.nn.encoder import encode, export_from_run, model_path
    from privemo.nn.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(("acoustic",), adversary="gender", conv_layers=1, conv_kernels=8, gru_layers=1, gru_width=8,
                        dense_width=8)
    run = tmp_path / "run"
    condition = "acoustic-activation-gender-fused"
    model_path(run, condition, 0).parent.mkdir(parents=True)
    model.save(model_path(run, condition, 0))
    (run / "manifest.json").write_text(json.dumps({"config": {"corpus": "demo", "n_folds": 5, "seed": 0,
                                                               "demo_per_speaker": 6}}))
    encoder = export_from_run(run, condition, 0)
    out = tmp_path / "audit"
    assert main(["--encoder", str(encoder), "--corpus", "demo", "--out", str(out), *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    table = load_corpus("demo", n_per_speaker=6)
    fold = speaker_folds(table, n_folds=5, seed=0)[0]
    assert report["folds_from"] == "the representation's split column" and len(report["folds"]) == 1
    assert report["folds"][0]["test_speakers"] == sorted(set(table.speaker.iloc[fold.test]))
    assert report["n_utterances"] == len(fold.train) + len(fold.validation) + len(fold.test)
    assert "per utterance" in report["notes"]["normalisation"] and "fold 0" in report["notes"]["split"]
    # one female and one male test speaker: no honest EER, said so
    assert report["folds"][0]["verification"]["eer"] is None and "gender" in report["folds"][0]["verification"]["reason"]
    assert 0.0 <= report["folds"][0]["gender"]["test_uar"] <= 1.0
    assert set(report["summary"]["emotion"]) == {"activation", "valence"}
    # the h audited is privemo.encode's, as deployed (per-utterance normalisation of each wav file)
    from privemo.audit.encoder import encode_corpus

    rep = encode_corpus(encoder, table)
    rows = table.index[table.utterance_id.isin(rep.utterance_id)]
    np.testing.assert_allclose(rep.h[:3], encode(list(table.wav_path.iloc[rows[:3]]), encoder), rtol=1e-5, atol=1e-6)


def test_command_runs_from_a_plain_shell(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "privemo.audit", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--compare" in done.stdout and "--attackers" in done.stdout
    done = subprocess.run([sys.executable, "-m", "privemo.audit", "--features", "missing.npz", "--out", "o"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "privemo.audit: error: missing.npz: no such features file"
    assert not (tmp_path / "o").exists()
    done = subprocess.run([sys.executable, "-c", "import privemo, privemo.audit; print(privemo.audit.read_features"
                           ".__module__, privemo.load_corpus.__name__)"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["privemo.audit.inputs", "load_corpus"], done.stderr
