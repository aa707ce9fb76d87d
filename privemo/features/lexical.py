"""Lexical features: tokens of each transcript mapped to frozen word vectors.

The vectors come from a file the user gives (word2vec binary or text, GloVe text; ``load_embeddings``) or, without one,
from a Word2Vec model trained on the transcripts of the training rows of the fold only (``train_word2vec`` takes the
training indices, so test transcripts never reach the embedding). ``embed`` turns transcripts into float32
(tokens, dim) arrays and counts the out-of-vocabulary (OOV) words.

OOV treatment (assumption, README assumptions table): an OOV token is dropped from the sequence and counted; an
utterance left with no in-vocabulary token is represented by one "unknown" vector, the mean of all vocabulary vectors.
It is never a zero vector, because all-zero frames are padding to the model's mask.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# assumption (README assumptions table): longest token sequence kept per utterance (the first MAX_TOKENS in-vocabulary
# tokens); IEMOCAP turns average ~12 words, very few exceed 100.
MAX_TOKENS = 100
# assumptions (README assumptions table): Word2Vec trained on the fold's training transcripts (no vector file given).
W2V_DIM = 300  # matches build_model's lexical_dim default (the common word2vec size)
W2V_EPOCHS = 20  # gensim's default is 5, too few passes for a corpus of a few thousand sentences
W2V_WINDOW = 5  # gensim default
W2V_MIN_COUNT = 1  # keep every training word: the corpora are small
W2V_SKIP_GRAM = True  # skip-gram copes better than CBOW with rare words in small corpora
# Word2Vec trained on a few hundred sentences gives nearly parallel vectors (mean pairwise cosine 0.998 on the demo
# corpus), so a classifier sees almost the same input for every word. The in-fold vectors are therefore centred and
# scaled per dimension with the training vocabulary's statistics (common post-processing, cf. Mu & Viswanath 2018).
W2V_STANDARDIZE = True
# assumption (README assumptions table): passes over a pretraining text (``pretrained_word2vec``, thousands of sentences:
# gensim's default suffices there).
PRETRAIN_EPOCHS = 5
_PRETRAINED: dict[tuple, object] = {}  # this process's vectors per (text digest, settings)
UNKNOWN_FALLBACK = 1e-3  # value of every component of the unknown vector if the vocabulary's mean happens to be zero

# Corpus markup: IEMOCAP's [LAUGHTER], [BREATHING], [GARBAGE], time stamps [006.2901-008.2357]; <...> and {...} tags.
_MARKUP = re.compile(r"\[[^\]]*\]|<[^>]*>|\{[^}]*\}")
# A word: letters/digits, optionally joined by apostrophes inside the word ("don't", "o'clock"); everything else splits.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens of a transcript, with corpus markup and punctuation removed.

    Bracketed markup (``[LAUGHTER]``, ``[BREATHING]``, ``[GARBAGE]``, ``<noise>``, ``{laugh}``) is dropped whole;
    punctuation separates words; apostrophes inside a word are kept ("don't"), others are dropped.

    Example: ``tokenize("Oh [LAUGHTER] I don't know... <sil> 'Really'?")``
    -> ``["oh", "i", "don't", "know", "really"]``.
    """
    if not isinstance(text, str):
        raise TypeError(f"Invalid value received for argument `text`. Expected a str. Received: {type(text).__name__}")
    text = _MARKUP.sub(" ", text.translate(_APOSTROPHES)).lower()
    return _WORD.findall(text)


# -- word vectors ----------------------------------------------------------------------------------------------------
def load_embeddings(path: str | os.PathLike):
    """Read word vectors with gensim: word2vec binary, word2vec text, GloVe text (no header) or gensim's own ``.kv``.

    The format is detected from the content (a ``<count> <dim>`` header line, then text lines or binary records; or no
    header and ``<word> <v1> ... <vD>`` lines); compressed files (.gz, .bz2) are read transparently.

    Returns:
        gensim.models.KeyedVectors (kept frozen by privemo).

    Raises:
        FileNotFoundError if ``path`` does not exist; ValueError naming the file if the format is not recognised.
    """
    from gensim.models import KeyedVectors

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: word-vector file not found")
    kind = _detect_format(path)
    try:
        if kind == "gensim":
            vectors = KeyedVectors.load(str(path))
            vectors = getattr(vectors, "wv", vectors)
        else:
            vectors = KeyedVectors.load_word2vec_format(
                str(path), binary=kind == "word2vec-binary", no_header=kind == "glove-text"
            )
    except Exception as exc:  # gensim raises several types on malformed files
        raise ValueError(f"{path}: could not read as {kind} word vectors ({exc.__class__.__name__}: {exc})") from None
    if len(vectors) == 0:
        raise ValueError(f"{path}: the word-vector file holds no vectors")
    return vectors


def _detect_format(path: Path) -> str:
    """"word2vec-binary", "word2vec-text", "glove-text" or "gensim"; ValueError naming the file otherwise."""
    if path.suffix in (".kv", ".model"):
        return "gensim"
    from gensim import utils

    with utils.open(str(path), "rb") as fh:
        head = fh.read(1 << 16)
    expected = (
        "expected word2vec binary (a '<count> <dim>' header, then binary records), word2vec text (the header, then "
        "'<word> <v1> ... <vD>' lines) or GloVe text ('<word> <v1> ... <vD>' lines, no header)"
    )
    if not head:
        raise ValueError(f"{path}: empty file; {expected}")
    first, _, rest = head.partition(b"\n")
    header = re.fullmatch(rb"\s*(\d+)\s+(\d+)\s*", first)
    if header:
        dim = int(header.group(2))
        if _is_vector_line(rest.partition(b"\n")[0], dim):
            return "word2vec-text"
        space = rest.find(b" ")
        if 0 < space and (len(rest) >= space + 1 + 4 * dim or len(head) < (1 << 16)):
            return "word2vec-binary"
    elif _is_vector_line(first, None):
        return "glove-text"
    snippet = first[:60].decode("utf-8", errors="replace")
    raise ValueError(f"{path}: unrecognised word-vector format; {expected}. First line: {snippet!r}")


def _is_vector_line(line: bytes, dim: int | None) -> bool:
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
    except UnicodeDecodeError:
        return False
    if len(parts) < 2 or (dim is not None and len(parts) != dim + 1):
        return False
    try:
        [float(p) for p in parts[1:]]
    except ValueError:
        return False
    return True


def _stable_hash(text: str) -> int:
    """Process-independent string hash for gensim's per-word initial vectors (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[:4], "little")


def train_word2vec(
    table: pd.DataFrame,
    train_indices,
    *,
    dim: int = W2V_DIM,
    seed: int = 0,
    epochs: int = W2V_EPOCHS,
    window: int = W2V_WINDOW,
    min_count: int = W2V_MIN_COUNT,
    standardize: bool = W2V_STANDARDIZE,
):
    """Word2Vec vectors trained only on the transcripts of the rows ``train_indices`` (deterministic under ``seed``).

    Only ``table["transcript"].iloc[train_indices]`` is read, so validation and test transcripts cannot reach the
    embedding; their words that never occur in training are OOV for ``embed``. One worker thread and a fixed seed make
    the vectors identical from run to run and process to process (gensim's ``hashfxn`` is given a process-independent
    hash too, instead of Python's salted ``hash``).

    Args:
        table: utterance table with a ``transcript`` column.
        train_indices: table positions of the training rows (the fold's ``train``).
        dim: vector size. seed: random seed. epochs, window, min_count: gensim Word2Vec settings.
        standardize: centre and scale every dimension with the vocabulary's statistics (see ``W2V_STANDARDIZE``).

    Returns:
        gensim.models.KeyedVectors.
    """
    from gensim.models import Word2Vec

    for name, value in (("dim", dim), ("epochs", epochs), ("window", window), ("min_count", min_count)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"Invalid value received for argument `{name}`. Expected a positive integer. Received: {name}={value!r}"
            )
    rows = _indices(table, train_indices, "train_indices")
    if len(rows) == 0:
        raise ValueError(
            "Invalid value received for argument `train_indices`. Expected at least one row. Received: an empty array"
        )
    transcripts = _transcripts(table, rows)
    sentences = [tokens for tokens in map(tokenize, transcripts) if tokens]
    if not sentences:
        raise ValueError(f"{_corpus(table)}: the training transcripts contain no words to train Word2Vec on")
    model = Word2Vec(
        sentences=sentences,
        vector_size=int(dim),
        window=int(window),
        min_count=int(min_count),
        sg=int(W2V_SKIP_GRAM),
        workers=1,
        seed=int(seed),
        epochs=int(epochs),
        hashfxn=_stable_hash,
    )
    wv = model.wv
    if standardize:
        vectors = wv.vectors.astype(np.float64)
        std = vectors.std(axis=0)
        wv.vectors = ((vectors - vectors.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)
        wv.norms = None
    return wv


def pretrained_word2vec(text_path: str | os.PathLike, *, seed: int = 0, dim: int = W2V_DIM,
                        epochs: int = PRETRAIN_EPOCHS, cache_dir: str | os.PathLike | None = None):
    """Word2Vec vectors trained on an unlabelled pretraining text (one sentence per line), cached on disk.

    The demo corpora ship such a text (``table.attrs["pretraining_text"]``): sentences of their grammar that are not
    the corpus's utterances, the stand-in for the external text the paper's pretrained word2vec vectors come from. The
    settings are ``train_word2vec``'s (skip-gram, standardised) with ``epochs`` passes. Cached under
    ``<feature cache>/word2vec/`` by the text's SHA-256 and the settings (written atomically), and kept in memory for
    the process, so every fold of a run reuses one set of vectors."""
    import hashlib

    from gensim.models import KeyedVectors

    from .cache import default_cache_dir

    path = Path(text_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileNotFoundError(f"{path}: cannot read the word-vector pretraining text ({exc.strerror})") from None
    key = (hashlib.sha256(data).hexdigest()[:16], int(dim), int(epochs), int(seed))
    if key in _PRETRAINED:
        return _PRETRAINED[key]
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "word2vec"
    cached = folder / ("-".join(map(str, key)) + ".bin")
    if cached.is_file():
        vectors = KeyedVectors.load_word2vec_format(str(cached), binary=True)
    else:
        lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path}: the word-vector pretraining text has no sentences")
        table = pd.DataFrame({"transcript": lines})
        table.attrs["corpus"] = path.name
        vectors = train_word2vec(table, np.arange(len(lines)), dim=dim, seed=seed, epochs=epochs)
        folder.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
        vectors.save_word2vec_format(str(partial), binary=True)
        os.replace(partial, cached)
    _PRETRAINED[key] = vectors
    return vectors


# -- embedding -------------------------------------------------------------------------------------------------------
@dataclass
class OOVReport:
    """Out-of-vocabulary counts of one ``embed`` call.

    Attributes:
        n_utterances: utterances embedded. n_tokens: tokens seen (before truncation). n_oov: tokens without a vector
        (dropped). n_unknown_only: utterances with no in-vocabulary token (given the unknown vector). n_truncated:
        utterances cut at ``max_tokens``. examples: the most frequent OOV words (at most 10).
    """

    n_utterances: int = 0
    n_tokens: int = 0
    n_oov: int = 0
    n_unknown_only: int = 0
    n_truncated: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def oov_rate(self) -> float:
        return self.n_oov / self.n_tokens if self.n_tokens else 0.0

    def __str__(self) -> str:
        return (
            f"{self.n_oov} of {self.n_tokens} tokens out of vocabulary ({100 * self.oov_rate:.1f}%, dropped), "
            f"{self.n_unknown_only} of {self.n_utterances} utterances with no known word (unknown vector), "
            f"{self.n_truncated} truncated; e.g. {self.examples[:5]}"
        )


_UNKNOWN: "weakref.WeakKeyDictionary[Any, np.ndarray]" = weakref.WeakKeyDictionary()


def unknown_vector(vectors) -> np.ndarray:
    """The vector of an utterance with no in-vocabulary token: the mean of the vocabulary's vectors (never all zero)."""
    vectors = getattr(vectors, "wv", vectors)
    try:
        return _UNKNOWN[vectors]
    except (KeyError, TypeError):
        pass
    mean = np.asarray(vectors.vectors.mean(axis=0, dtype=np.float64), dtype=np.float32)
    if not np.any(mean):
        mean = np.full(vectors.vector_size, UNKNOWN_FALLBACK, np.float32)
    try:
        _UNKNOWN[vectors] = mean
    except TypeError:
        pass
    return mean


def embed(
    table: pd.DataFrame, vectors, indices=None, *, max_tokens: int | None = MAX_TOKENS
) -> tuple[list[np.ndarray], OOVReport]:
    """Word-vector sequences of the transcripts of ``indices`` (default: every row), in the order of ``indices``.

    Each token is looked up as is (lower case), then capitalised, then upper case (for case-sensitive vector files such
    as GoogleNews). OOV tokens are dropped and counted; an utterance with no known token gets ``unknown_vector``; the
    first ``max_tokens`` known tokens are kept.

    Args:
        table: utterance table with a ``transcript`` column.
        vectors: gensim KeyedVectors (or a Word2Vec model), e.g. from ``load_embeddings`` or ``train_word2vec``.
        indices: table positions to embed; None = all rows.
        max_tokens: longest sequence kept (None: no limit).

    Returns:
        (list of float32 arrays (tokens_i, dim), one per index; OOVReport).

    Raises:
        ValueError naming how many rows (and which, and the corpus) have no transcript.
    """
    vectors = getattr(vectors, "wv", vectors)
    if not hasattr(vectors, "key_to_index") or not hasattr(vectors, "vectors"):
        raise ValueError(
            "Invalid value received for argument `vectors`. Expected gensim KeyedVectors (load_embeddings or "
            f"train_word2vec). Received: {type(vectors).__name__}"
        )
    if max_tokens is not None and (not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1):
        raise ValueError(
            "Invalid value received for argument `max_tokens`. Expected a positive integer or None. "
            f"Received: max_tokens={max_tokens!r}"
        )
    rows = np.arange(len(table)) if indices is None else _indices(table, indices, "indices")
    transcripts = _transcripts(table, rows)
    lookup = vectors.key_to_index
    matrix = vectors.vectors
    unknown = unknown_vector(vectors)
    report = OOVReport(n_utterances=len(rows))
    oov: Counter = Counter()
    out: list[np.ndarray] = []
    for text in transcripts:
        ids = []
        for token in tokenize(text):
            report.n_tokens += 1
            idx = lookup.get(token)
            if idx is None:
                idx = lookup.get(token.capitalize())
                if idx is None:
                    idx = lookup.get(token.upper())
            if idx is None:
                oov[token] += 1
            else:
                ids.append(idx)
        if not ids:
            report.n_unknown_only += 1
            out.append(unknown[None, :].copy())
            continue
        if max_tokens is not None and len(ids) > max_tokens:
            report.n_truncated += 1
            ids = ids[:max_tokens]
        out.append(np.asarray(matrix[ids], dtype=np.float32))
    report.n_oov = sum(oov.values())
    report.examples = [word for word, _ in oov.most_common(10)]
    return out, report


# -- helpers ---------------------------------------------------------------------------------------------------------
def _corpus(table: pd.DataFrame) -> str:
    return str(table.attrs.get("corpus") or "the corpus")


def _indices(table: pd.DataFrame, indices, name: str) -> np.ndarray:
    idx = np.asarray(indices)
    n = len(table)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)) or (
        idx.size and (idx.min() < 0 or idx.max() >= n)
    ):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a 1-D array of table positions in [0, {n}). "
            f"Received: {name} with shape {idx.shape}, dtype {idx.dtype}"
        )
    return idx.astype(np.int64)


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return not isinstance(value, str) or not value.strip()


def _transcripts(table: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """Transcripts of ``rows``; ValueError naming the corpus, how many and which rows have none."""
    if "transcript" not in table:
        raise ValueError(f"{_corpus(table)}: the table has no `transcript` column; the lexical modality needs one")
    values = table["transcript"].to_numpy(dtype=object)[rows]
    missing = [int(r) for r, v in zip(rows, values) if _is_missing(v)]
    if missing:
        ids = list(table["utterance_id"].iloc[missing[:5]]) if "utterance_id" in table else missing[:5]
        raise ValueError(
            f"{_corpus(table)}: {len(missing)} of {len(rows)} requested utterance(s) have no transcript, e.g. {ids}; "
            "the lexical modality needs one for every utterance (use the acoustic modality, or drop those rows)"
        )
    return list(values)
