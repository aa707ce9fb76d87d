"""privemo.features.lexical: tokeniser, word-vector files, in-fold Word2Vec, embedding and OOV handling."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privemo.corpora._schema import COLUMNS
from privemo.features.lexical import (
    MAX_TOKENS,
    embed,
    load_embeddings,
    pretrained_word2vec,
    tokenize,
    train_word2vec,
    unknown_vector,
)

gensim_models = pytest.importorskip("gensim.models")
KeyedVectors = gensim_models.KeyedVectors
ROOT = Path(__file__).resolve().parents[1]


def make_table(transcripts, corpus="toy") -> pd.DataFrame:
    rows = [
        dict(utterance_id=f"u{i:03d}", speaker=f"spk{i % 3}", gender="F", session="1", wav_path=f"/x/u{i}.wav",
             transcript=t, activation=3.0, valence=3.0)
        for i, t in enumerate(transcripts)
    ]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.attrs["corpus"] = corpus
    return table


def tiny_vectors() -> "KeyedVectors":
    kv = KeyedVectors(vector_size=4)
    words = ["hello", "world", "don't", "Paris", "NASA", "is", "</s>"]
    kv.add_vectors(words, np.arange(len(words) * 4, dtype=np.float32).reshape(-1, 4) + 1)
    return kv


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[LAUGHTER] Oh my God... I can't believe it! [BREATHING]", ["oh", "my", "god", "i", "can't", "believe", "it"]),
        ("[GARBAGE]", []),
        ("Yeah -- yeah, <sil> whatever. [LIPSMACK]Fine.", ["yeah", "yeah", "whatever", "fine"]),
        ("'Quoted' words' edges and don\u2019t", ["quoted", "words", "edges", "and", "don't"]),
        ("It's 2 o'clock; rock'n'roll!", ["it's", "2", "o'clock", "rock'n'roll"]),
        ("Well-known {laugh} FACT?!", ["well", "known", "fact"]),
        ("Caf\u00e9 na\u00efve", ["caf\u00e9", "na\u00efve"]),
        ("", []),
    ],
)
def test_tokenize_iemocap_markup(text, expected):
    assert tokenize(text) == expected


def test_tokenize_rejects_non_text():
    with pytest.raises(TypeError, match="`text`"):
        tokenize(None)


def _write_all_formats(tmp_path: Path, kv) -> dict[str, Path]:
    paths = {"bin": tmp_path / "vec.bin", "txt": tmp_path / "vec.txt", "glove": tmp_path / "glove.6B.4d.txt"}
    kv.save_word2vec_format(str(paths["bin"]), binary=True)
    kv.save_word2vec_format(str(paths["txt"]), binary=False)
    lines = paths["txt"].read_text(encoding="utf-8").splitlines()[1:]  # GloVe: the same lines without the header
    paths["glove"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths["gz"] = tmp_path / "vec.txt.gz"
    with open(paths["txt"], "rb") as src, gzip.open(paths["gz"], "wb") as dst:
        shutil.copyfileobj(src, dst)
    paths["noext"] = tmp_path / "vectors"
    shutil.copy(paths["bin"], paths["noext"])  # detection is by content, not by file name
    paths["kv"] = tmp_path / "vec.kv"
    kv.save(str(paths["kv"]))
    return paths


def test_load_embeddings_detects_every_format(tmp_path):
    kv = tiny_vectors()
    for kind, path in _write_all_formats(tmp_path, kv).items():
        loaded = load_embeddings(path)
        assert loaded.index_to_key == kv.index_to_key, kind
        np.testing.assert_allclose(loaded.vectors, kv.vectors, rtol=1e-6, err_msg=kind)


def test_load_embeddings_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.bin"):
        load_embeddings(tmp_path / "absent.bin")
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a vector file\nat all\n")
    with pytest.raises(ValueError, match="notes.txt.*unrecognised word-vector format"):
        load_embeddings(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt"):
        load_embeddings(empty)


TRAIN_TEXTS = ["I love this happy day", "this is a sad sad day", "[LAUGHTER] love it", "what a day"] * 3
TEST_TEXTS = ["zebra quokka marmalade", "happy zebra"]


def test_word2vec_never_sees_test_transcripts():
    table = make_table(TRAIN_TEXTS + TEST_TEXTS)
    train = np.arange(len(TRAIN_TEXTS))
    kv = train_word2vec(table, train, dim=16, seed=0, epochs=5)
    train_words = {w for t in TRAIN_TEXTS for w in tokenize(t)}
    assert set(kv.key_to_index) == train_words
    for word in ("zebra", "quokka", "marmalade"):
        assert word not in kv.key_to_index
    arrays, report = embed(table, kv, np.arange(len(table)))
    assert report.n_oov == 4 and set(report.examples) == {"zebra", "quokka", "marmalade"}
    assert arrays[-1].shape == (1, 16)  # "happy" only


def test_word2vec_is_deterministic_across_processes():
    table = make_table(TRAIN_TEXTS)
    train = np.arange(len(TRAIN_TEXTS))
    a = train_word2vec(table, train, dim=8, seed=3, epochs=3)
    b = train_word2vec(table, train, dim=8, seed=3, epochs=3)
    assert a.index_to_key == b.index_to_key
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.array_equal(a.vectors, train_word2vec(table, train, dim=8, seed=4, epochs=3).vectors)
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import pandas as pd, numpy as np\n"
        "from privemo.features.lexical import train_word2vec\n"
        f"table = pd.DataFrame({{'utterance_id': [str(i) for i in range({len(TRAIN_TEXTS)})], "
        f"'transcript': {TRAIN_TEXTS!r}}})\n"
        f"kv = train_word2vec(table, np.arange({len(TRAIN_TEXTS)}), dim=8, seed=3, epochs=3)\n"
        "print(repr(kv.vectors.astype(float).round(6).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    np.testing.assert_allclose(np.array(eval(out.stdout)), a.vectors, atol=1e-6)


def test_word2vec_validates_arguments():
    table = make_table(TRAIN_TEXTS)
    with pytest.raises(ValueError, match="`train_indices`"):
        train_word2vec(table, [])
    with pytest.raises(ValueError, match="`train_indices`"):
        train_word2vec(table, [0, 999])
    with pytest.raises(ValueError, match="`dim`"):
        train_word2vec(table, [0, 1], dim=0)


def test_embed_values_oov_and_unknown_vector():
    kv = tiny_vectors()
    table = make_table(["Hello zzz WORLD", "qqq [LAUGHTER] rrr qqq", "paris nasa is", "don't"])
    arrays, report = embed(table, kv)
    assert [a.shape for a in arrays] == [(2, 4), (1, 4), (3, 4), (1, 4)]
    assert all(a.dtype == np.float32 for a in arrays)
    np.testing.assert_array_equal(arrays[0], kv.vectors[[kv.key_to_index["hello"], kv.key_to_index["world"]]])
    # case fallback for case-sensitive files: "paris" -> "Paris", "nasa" -> "NASA"
    np.testing.assert_array_equal(arrays[2][:2], kv.vectors[[kv.key_to_index["Paris"], kv.key_to_index["NASA"]]])
    # an utterance with no known word gets one non-zero "unknown" vector (the vocabulary mean), never zeros (padding)
    np.testing.assert_allclose(arrays[1][0], kv.vectors.mean(axis=0), rtol=1e-6)
    assert np.any(arrays[1] != 0) and np.array_equal(unknown_vector(kv), arrays[1][0])
    assert (report.n_utterances, report.n_tokens, report.n_oov, report.n_unknown_only) == (4, 10, 4, 1)
    assert report.examples[0] == "qqq" and set(report.examples) == {"qqq", "rrr", "zzz"}
    assert "4 of 10 tokens" in str(report) and report.oov_rate == pytest.approx(0.4)


def test_embed_order_indices_and_truncation():
    kv = tiny_vectors()
    long_text = " ".join(["hello", "world"] * (MAX_TOKENS + 5))
    table = make_table(["hello", "world", long_text])
    arrays, report = embed(table, kv, indices=[2, 0])
    assert len(arrays) == 2 and arrays[0].shape == (MAX_TOKENS, 4) and arrays[1].shape == (1, 4)
    assert report.n_truncated == 1
    arrays, _ = embed(table, kv, indices=[2], max_tokens=None)
    assert arrays[0].shape == (2 * (MAX_TOKENS + 5), 4)
    arrays, _ = embed(table, kv, indices=[2], max_tokens=3)
    assert arrays[0].shape == (3, 4)


def test_missing_transcripts_are_a_clear_error():
    table = make_table(["hello", None, float("nan"), "  ", "world"], corpus="msp-podcast")
    with pytest.raises(ValueError, match=r"msp-podcast: 3 of 5 requested utterance\(s\) have no transcript.*u001"):
        embed(table, tiny_vectors())
    arrays, _ = embed(table, tiny_vectors(), indices=[0, 4])  # rows that have one are fine
    assert len(arrays) == 2
    with pytest.raises(ValueError, match="no transcript"):
        train_word2vec(table, [0, 1])
    with pytest.raises(ValueError, match="`vectors`"):
        embed(table, {"hello": np.ones(4)}, indices=[0])


def test_pretrained_word2vec_trains_once_caches_and_checks_the_text(tmp_path):
    import privemo.features.lexical as lexical

    rng = np.random.default_rng(0)
    words = [["good", "great", "fine"], ["bad", "awful", "poor"]]
    lines = [f"the {rng.choice(words[k])} day was {rng.choice(words[k])}" for k in rng.integers(0, 2, 400)]
    text = tmp_path / "pretraining.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    first = pretrained_word2vec(text, seed=0, dim=16, cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache" / "word2vec").glob("*.bin"))
    assert len(cached) == 1 and not list((tmp_path / "cache" / "word2vec").glob(".*partial"))
    lexical._PRETRAINED.clear()  # a new process: the vectors come back from the disk cache, identical
    again = pretrained_word2vec(text, seed=0, dim=16, cache_dir=tmp_path / "cache")
    assert again.index_to_key == first.index_to_key and np.array_equal(again.vectors, first.vectors)
    assert first.vector_size == 16 and set(first.index_to_key) == {"the", "day", "was", *words[0], *words[1]}
    with pytest.raises(FileNotFoundError, match="missing.txt: cannot read the word-vector pretraining text"):
        pretrained_word2vec(tmp_path / "missing.txt", cache_dir=tmp_path / "cache")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt: the word-vector pretraining text has no sentences"):
        pretrained_word2vec(tmp_path / "empty.txt", cache_dir=tmp_path / "cache")
