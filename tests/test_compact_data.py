"""LabeledTexts held compactly: texts read back from their files, labels as codes, folds unchanged."""

import csv
import hashlib
import json
import os
import pickle
import random
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from textcnn.data.columns import FileTexts, Labels
from textcnn.data.corpus import load_joined, load_registered
from textcnn.data.files import load_files, read_labeled_file
from textcnn.data.folds import make_folds
from textcnn.data.registry import REGISTRY, _dataset_folder, _spec
from textcnn.data.splits import Corpus, LabeledTexts, _in_label_order
from textcnn.errors import ConfigError, DataError

DATA_DIR = os.environ.get("TEXTCNN_DATA_DIR")
needs_data = pytest.mark.skipif(
    not DATA_DIR or not Path(DATA_DIR, "mr").is_dir(), reason="TEXTCNN_DATA_DIR with the datasets"
)

# Texts a CSV writer must quote: separators, quotes, newlines of each kind, a BOM-like character,
# U+2028 (a line break to `str.splitlines`, not to a binary file), spaces at the ends.
AWKWARD = [
    "plain words",
    'he said "again !" , twice',
    "first line\nsecond line",
    "windows\r\nline",
    "a lone \r carriage return",
    "  spaced out  ",
    "tab\tinside",
    "unicode: naïve café — 東京 😀",
    "line\u2028separator and \x0bvertical tab",
    "\ufeffstarts with a BOM character",
    "ends with a newline\n",
    '"fully quoted"',
]


def _write_csv(path: Path, texts, delimiter=",", bom=False, lineterminator="\r\n") -> None:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        # With "\n" lines, csv's minimal quoting leaves a lone "\r" unquoted, which no reader takes.
        quoting = csv.QUOTE_MINIMAL if lineterminator == "\r\n" else csv.QUOTE_ALL
        writer = csv.writer(handle, delimiter=delimiter, lineterminator=lineterminator, quoting=quoting)
        writer.writerow(["id", "text", "label"])
        for i, text in enumerate(texts):
            writer.writerow([i, text, "pos" if i % 2 else "neg"])


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("lineterminator", ["\r\n", "\n"])
def test_csv_texts_read_back_exactly(tmp_path, bom, lineterminator):
    path = tmp_path / "awkward.csv"
    _write_csv(path, AWKWARD, bom=bom, lineterminator=lineterminator)
    data = read_labeled_file(path)
    assert isinstance(data.texts, FileTexts)  # held as offsets, not strings
    assert list(data.texts) == AWKWARD  # forward read
    assert [data.texts[i] for i in reversed(range(len(AWKWARD)))] == AWKWARD[::-1]  # one at a time
    assert list(data.subset([5, 2, 9, 2]).texts) == [AWKWARD[5], AWKWARD[2], AWKWARD[9], AWKWARD[2]]
    assert data.labels == tuple("pos" if i % 2 else "neg" for i in range(len(AWKWARD)))
    assert data.lines[:3] == (2, 3, 4) and data.lines[3] == 6  # the third text spans two lines


def test_tsv_and_jsonl_texts_read_back_exactly(tmp_path):
    texts = [t for t in AWKWARD if not any(c in t for c in "\t\n\r")]
    tsv = tmp_path / "rows.tsv"
    tsv.write_text(
        "text\tlabel\n" + "".join(f"{t}\t{i % 3}\n" for i, t in enumerate(texts)),
        encoding="utf-8",
        newline="",
    )
    assert list(read_labeled_file(tsv).texts) == texts  # a quote in TSV is text

    jsonl = tmp_path / "rows.jsonl"
    lines = [json.dumps({"text": t, "label": "x" if i % 2 else "y"}) for i, t in enumerate(AWKWARD)]
    jsonl.write_bytes(b"\xef\xbb\xbf" + "\n\n".join(lines).encode())  # a BOM, blank lines, no final newline
    data = read_labeled_file(jsonl)
    assert list(data.texts) == AWKWARD and data.texts[-1] == AWKWARD[-1] and data.texts[0] == AWKWARD[0]


def test_a_header_naming_the_text_column_twice_reads_the_last_one_as_before(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("text,label,text\nfirst,a,second\nthird,b,fourth\n", encoding="utf-8")
    assert list(read_labeled_file(path).texts) == ["second", "fourth"]


@needs_data
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_dataset_reads_back_the_texts_of_its_files(name):
    spec = _spec(name)
    folder = _dataset_folder(spec, DATA_DIR)
    for split in spec.splits:
        path = folder / f"{split}.jsonl"
        # The reference: each line parsed by json on its own, rows with blank text left out.
        rows = [
            json.loads(line) for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()
        ]
        expected = [row["text"] for row in rows if isinstance(row["text"], str) and row["text"].strip()]
        data = read_labeled_file(path, label_column=spec.label_column)
        assert list(data.texts) == expected, path
        sample = random.Random(0).sample(range(len(expected)), min(200, len(expected)))
        assert [data.texts[i] for i in sample] == [expected[i] for i in sample]


def test_a_file_changed_since_it_was_read_is_refused(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n', encoding="utf-8")
    data = read_labeled_file(path)
    path.write_text('{"text": "c", "label": "x"}\n{"text": "dd", "label": "y"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"rows\.jsonl: changed since it was read"):
        list(data.texts)


def test_texts_sent_elsewhere_travel_as_texts(tmp_path):
    path = tmp_path / "rows.csv"
    _write_csv(path, AWKWARD)
    part = read_labeled_file(path).subset([3, 1])
    copy = pickle.loads(pickle.dumps(part))
    path.unlink()  # a worker on another machine has no such file
    assert list(copy.texts) == [AWKWARD[3], AWKWARD[1]] and copy.labels == part.labels
    assert copy.lines == (6, 3)  # the third text spans lines 4 and 5


def test_labels_are_codes_with_the_tuple_api():
    data = LabeledTexts(["a", "b", "c"], ["neg", "pos", "neg"], "mem")
    assert isinstance(data.labels, Labels) and data.labels.codes.dtype == np.int32
    assert data.labels == ("neg", "pos", "neg") and list(data.labels) == ["neg", "pos", "neg"]
    assert data.labels[-1] == "neg" and data.labels[1:] == ("pos", "neg")
    assert data.label_set() == {"neg", "pos"}
    assert data.label_array(["pos", "neg"]).tolist() == [1, 0, 1]
    assert data.label_array(["pos", "neg"]).dtype == np.int64
    with pytest.raises(ConfigError, match="labels not among the label names: 'pos'"):
        data.label_array(["neg", "other"])
    assert data.subset([2, 1]).label_set() == {"neg", "pos"} and data.subset([0]).label_set() == {"neg"}
    with pytest.raises(ValueError, match="mix single names and tuples"):
        LabeledTexts(["a", "b"], ["x", ("y",)], "mem")


def test_multi_label_rows_keep_their_order_until_put_in_label_order():
    data = LabeledTexts(
        ["a", "b", "c", "d"], [("love", "joy"), (), ("joy",), ["anger", "love", "joy"]], "mem"
    )
    assert data.multi_label and data.labels[3] == ("anger", "love", "joy")  # given order, lists as tuples
    assert data.labels == (("love", "joy"), (), ("joy",), ("anger", "love", "joy"))
    assert data.subset([3, 1, 0]).labels == (("anger", "love", "joy"), (), ("love", "joy"))
    names = ("joy", "love", "anger")
    ordered = _in_label_order(data, names)
    assert ordered.labels == (("joy", "love"), (), ("joy",), ("joy", "love", "anger"))
    # A name outside label_names goes last, as sorted(row, key=rank) put it.
    assert _in_label_order(data, ("love",)).labels[0] == ("love", "joy")
    targets = ordered.label_array(names)
    assert targets.dtype == np.float32
    assert targets.tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0], [1, 1, 1]]
    with pytest.raises(ConfigError, match="'anger'"):
        data.label_array(["joy", "love"])
    assert data.label_set() == {"joy", "love", "anger"}


def test_file_rows_compare_equal_to_the_tuples_they_stand_for(tmp_path):
    path = tmp_path / "rows.csv"
    _write_csv(path, ["x", "y", "z"])
    data = read_labeled_file(path)
    same = LabeledTexts(("x", "y", "z"), ("neg", "pos", "neg"), str(path), (2, 3, 4))
    assert data == same and same == data
    assert data.texts == ("x", "y", "z") and ("x", "y", "z") == data.texts  # noqa: SIM300 - both sides
    assert data.texts != ("x", "y") and data.subset([0, 1]) != same
    assert data.texts + ("w",) == ("x", "y", "z", "w")  # noqa: RUF005 - the tuple API under test
    assert data.where(2) == f"{path}:4"


def test_reading_holds_no_string_a_row(tmp_path):
    path = tmp_path / "big.csv"
    rng = random.Random(0)
    texts = [
        " ".join(rng.choice(["good", "bad", "film", "plot", "actors"]) for _ in range(20))
        for _ in range(3000)
    ]
    _write_csv(path, texts)
    make_folds(load_files(path))  # imports scikit-learn before memory is counted
    tracemalloc.start()
    try:
        corpus = load_files(path)
        held, _ = tracemalloc.get_traced_memory()
        folds = make_folds(corpus, 2)
        with_folds, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Offset, length, label code, line: 24 bytes a row (24.6 measured at 5,000 rows); a text
    # alone is ~150 bytes as a str, a label str pointer and a line int 8 + 28 more.
    assert held / len(texts) < 32
    assert (with_folds - held) / len(texts) < 2 * 32  # two folds, each every row once (train, dev or test)
    assert list(folds[1].test.texts) == [texts[i] for i in folds[1].test.lines.array - 2]


# sha256 (first 16 hex digits) of each part's rows, one JSON [text, label, line] a row, and the
# first three lines of each part. Recorded by running `_digest` over the same `make_folds` calls
# on commit 8f0e9d8, before the compact columns (texts and labels as tuples, sklearn fed lists),
# so these say the folds' rows and their order did not change.
RECORDED = {
    "mr": {
        "train": (8636, [2, 3, 4], "dda06869c5cd4681"),
        "dev": (960, [1, 23, 27], "e39cae375d6f47a9"),
        "test": (1066, [12, 26, 33], "2c1eae81e9aae2b4"),
    },
    "trec": {
        "train": (4906, [1, 2, 3], "977377a48bc22cb2"),
        "dev": (546, [11, 38, 66], "54e48c7fafe2ac06"),
        "test": (500, [1, 2, 3], "45514be01a560031"),
    },
    "goemotions_cv": {
        "train": (31255, [2, 5, 6], "3da075162d6ec824"),
        "dev": (3473, [1, 4, 15], "f398733640ab9e03"),
        "test": (8682, [3, 7, 9], "acd6c8801e13b851"),
    },
}


def _digest(part: LabeledTexts) -> tuple:
    digest = hashlib.sha256()
    for text, label, line in zip(part.texts, part.labels, part.lines or [0] * len(part), strict=True):
        digest.update(json.dumps([text, label, line]).encode() + b"\n")
    return (len(part), list(part.lines[:3]), digest.hexdigest()[:16])


@needs_data
def test_folds_hold_the_same_rows_in_the_same_order_as_before():
    goemotions = load_registered("goemotions")
    as_cv = Corpus(
        "g", goemotions.label_names, {"all": goemotions.splits["train"]}, "kim", "x", multi_label=True
    )
    made = {
        "mr": make_folds(load_registered("mr"), 10, 3, seed=0),  # stratified 10-fold, stratified dev
        "trec": make_folds(load_registered("trec"), seed=1),  # fixed splits, dev held out of train
        "goemotions_cv": make_folds(as_cv, 5, 1, seed=2),  # multi-label: unstratified k-fold and dev
    }
    for name, folds in made.items():
        (fold,) = folds
        assert {p: _digest(getattr(fold, p)) for p in ("train", "dev", "test")} == {
            p: tuple(v) for p, v in RECORDED[name].items()
        }, name


@needs_data
def test_joined_datasets_keep_their_texts_dataset_after_dataset():
    joined = load_joined(["umsab-en", "umsab-fr"])
    alone = [load_registered("umsab-en"), load_registered("umsab-fr")]
    train = joined.splits["train"]
    assert list(train.texts) == [*alone[0].splits["train"].texts, *alone[1].splits["train"].texts]
    assert train.labels == (*alone[0].splits["train"].labels, *alone[1].splits["train"].labels)
    n = len(alone[0].splits["train"])
    assert train.texts[n] == alone[1].splits["train"].texts[0]
