"""Dataset registry, loaders and protocols: real benchmark files when present, small files otherwise."""

from __future__ import annotations

import json
import os
import socket
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

from textcnn.data import corpus as data_module  # load_corpus looks up load_hub here
from textcnn.data.corpus import load_corpus, load_registered
from textcnn.data.files import load_files, read_labeled_file
from textcnn.data.folds import make_folds
from textcnn.data.hub import corpus_from_hf, load_hub, load_local
from textcnn.data.registry import REGISTRY, dataset_status, resolve_data_dir
from textcnn.data.splits import Corpus, LabeledTexts
from textcnn.errors import DataError, DataWarning

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def shared_data_dir() -> Path | None:
    """$TEXTCNN_DATA_DIR if set, else ../shared/data next to the repository; None if absent."""
    env = os.environ.get("TEXTCNN_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def real_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("benchmark data not found (set TEXTCNN_DATA_DIR)")
    return path


def card(root: Path, name: str) -> dict:
    return json.loads((root / name / "dataset.json").read_text(encoding="utf-8"))


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def corpus_of(labels: list[str], name: str = "toy") -> Corpus:
    texts = tuple(f"text {i}" for i in range(len(labels)))
    all_ = LabeledTexts(texts, tuple(labels), "toy.jsonl", tuple(range(1, len(labels) + 1)))
    return Corpus(name, tuple(sorted(set(labels))), {"all": all_}, "unicode", "toy.jsonl")


# ---------------------------------------------------------------------------------------------
# Registry against the real cards


def test_registry_matches_cards(real_data):
    # A data folder may hold more sets than the registry; every registered set is checked against
    # its own card.
    on_disk = {p.parent.name for p in real_data.glob("*/dataset.json")}
    assert set(REGISTRY) <= on_disk
    for name, spec in REGISTRY.items():
        meta = card(real_data, name)
        assert spec.name == meta["name"]
        assert spec.labels == tuple(meta["labels"])
        assert spec.splits == tuple(meta["splits"])
        assert spec.kim2014 == meta.get("kim2014_accuracy", {})
        assert spec.about == meta["about"]
        assert spec.language == meta.get("language", "en")
        assert spec.reference == meta.get("reference_macro_f1", {})
        assert spec.multi_label == meta.get("multi_label", False)
        assert spec.metric == (
            "macro_f1" if meta.get("metric", "accuracy").startswith("macro-F1") else "accuracy"
        )
    english = ("mr", "sst1", "sst2", "subj", "trec")
    assert [REGISTRY[n].tokenizer for n in english] == ["kim"] * 4 + ["kim:lowercase=false"]
    assert {REGISTRY[n].tokenizer for n in REGISTRY if n not in english} == {"unicode"}


def test_protocols_of_registry():
    assert REGISTRY["mr"].protocol == "cross-validation"
    assert REGISTRY["subj"].protocol == "cross-validation"
    assert REGISTRY["sst1"].protocol == "train/dev/test"
    assert REGISTRY["sst2"].protocol == "train/dev/test"
    assert REGISTRY["trec"].protocol == "train/test (dev held out)"
    assert all("/" in spec.hub_id for spec in REGISTRY.values() if spec.hub_id)
    assert REGISTRY["umsab-fr"].hub_id == "cardiffnlp/tweet_sentiment_multilingual:french"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_load_real_dataset_row_counts(real_data, name):
    corpus = load_registered(name, real_data)
    meta = card(real_data, name)
    assert {split: len(part) for split, part in corpus.splits.items()} == {
        split: info["rows"] for split, info in meta["splits"].items()
    }
    assert corpus.label_names == tuple(meta["labels"])
    assert corpus.tokenizer == REGISTRY[name].tokenizer
    assert corpus.multi_label == meta.get("multi_label", False)
    for part in corpus.splits.values():
        held = {name for y in part.labels for name in y} if corpus.multi_label else set(part.labels)
        assert held <= set(corpus.label_names)
        assert len(part.lines) == len(part)


def test_real_fixed_split_dev_handling(real_data):
    (sst2,) = make_folds(load_registered("sst2", real_data))
    assert (sst2.name, sst2.index, sst2.dev_source) == ("split", None, "dev split")
    assert (len(sst2.train), len(sst2.dev), len(sst2.test)) == (6920, 872, 1821)

    (trec,) = make_folds(load_registered("trec", real_data))
    assert trec.dev_source == "10% of train, stratified, seed 0"
    assert len(trec.train) + len(trec.dev) == 5452
    assert len(trec.dev) == 546  # ceil(10% of 5452), as sklearn rounds the held-out part up
    assert len(trec.test) == 500
    assert not set(trec.train.lines) & set(trec.dev.lines)
    assert trec.dev.source.endswith("train.jsonl (subset)")


def test_real_cross_validation_default_is_one_fold_of_ten(real_data):
    corpus = load_registered("mr", real_data)
    (fold,) = make_folds(corpus)
    assert (fold.name, fold.index) == ("fold-0", 0)
    assert len(fold.test) in (1066, 1067)
    assert len(fold.train) + len(fold.dev) + len(fold.test) == 10662
    # Stratified: each class holds the same share of the test fold as of the whole set (5331 each).
    assert abs(Counter(fold.test.labels)["positive"] - len(fold.test) / 2) <= 1


def test_dataset_status(real_data, tmp_path):
    rows = {row["name"]: row for row in dataset_status(real_data)}
    assert set(rows) == set(REGISTRY)
    assert rows["sst2"]["rows"] == {"train": 6920, "dev": 872, "test": 1821}
    assert rows["trec"]["protocol"] == "train/test (dev held out)"
    assert rows["mr"]["location"] == str(real_data / "mr")
    assert rows["mr"]["hub_id"] == REGISTRY["mr"].hub_id
    assert rows["subj"]["classes"] == 2
    missing = dataset_status(tmp_path)
    assert all(row["location"] == "not found" and row["rows"] == {} for row in missing)


# ---------------------------------------------------------------------------------------------
# Finding the data folder


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("TEXTCNN_DATA_DIR", raising=False)
    assert resolve_data_dir() is None
    monkeypatch.setenv("TEXTCNN_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_load_registered_without_data_dir(monkeypatch):
    monkeypatch.delenv("TEXTCNN_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"--data-dir or set TEXTCNN_DATA_DIR"):
        load_registered("mr")


def test_load_registered_missing_folder_or_file(tmp_path):
    with pytest.raises(DataError, match=r"data folder not found"):
        load_registered("mr", tmp_path / "nowhere")
    (tmp_path / "sst2").mkdir()
    write(tmp_path / "sst2" / "train.jsonl", jsonl({"text": "good", "label": "positive"}))
    with pytest.raises(
        DataError, match=r"dev\.jsonl: file not found .*train\.jsonl, dev\.jsonl, test\.jsonl"
    ):
        load_registered("sst2", tmp_path)
    known = r"\(known: mr, sst1, sst2, subj, trec, umsab-en, .*, chnsenticorp\)"
    with pytest.raises(DataError, match=rf"unknown dataset 'imdb' {known}"):
        load_registered("imdb", tmp_path)


def test_load_registered_accepts_the_dataset_folder_itself(tmp_path):
    rows = [{"text": f"s{i}", "label": ("negative", "positive")[i % 2]} for i in range(4)]
    (tmp_path / "mr").mkdir()
    write(tmp_path / "mr" / "all.jsonl", jsonl(*rows))
    assert len(load_registered("mr", tmp_path / "mr").splits["all"]) == 4


def test_registered_label_outside_registry(tmp_path):
    (tmp_path / "mr").mkdir()
    rows = [{"text": "a", "label": "positive"}, {"text": "b", "label": "negative"}]
    write(tmp_path / "mr" / "all.jsonl", jsonl(*rows, {"text": "c", "label": "neutral"}))
    with pytest.raises(DataError, match=r"all\.jsonl:3: label 'neutral' is not among mr's labels"):
        load_registered("mr", tmp_path)


# ---------------------------------------------------------------------------------------------
# Reading files: every problem names the file and the line


BAD_FILES = [
    # (file name, content, expected message fragment after "<name>:")
    ("missing.jsonl", jsonl({"text": "a", "label": "x"}, {"body": "b", "label": "y"}), "2: no column 'text'"),
    ("nolabel.jsonl", jsonl({"text": "a", "label": "x"}, {"text": "b"}), "2: no column 'label'"),
    ("header.csv", "label,body\nx,hello\n", "1: no column 'text' (columns: label, body)"),
    (
        "header.tsv",
        "label\tbody\nx\thello\n",
        "1: no column 'text' (columns: label, body)",
    ),
    ("empty_label.csv", "text,label\na,x\nb,\n", "3: empty label"),
    ("null_label.jsonl", jsonl({"text": "a", "label": None}), "1: empty label"),
    ("bool_label.jsonl", jsonl({"text": "a", "label": True}), "1: label must be a string or an integer"),
    ("number_text.jsonl", jsonl({"text": 3, "label": "x"}), "1: text must be a string"),
    ("invalid.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n', "2: invalid JSON"),
    ("array.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n', "2: not a JSON object (got list)"),
    ("array.json", '[{"text": "a", "label": "x"}]\n', "1: not a JSON object"),
    (
        "bytes.jsonl",
        b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"text": "\xff", "label": "x"}\n',
        "3: not UTF-8 (byte 0xff",
    ),
    ("bytes.csv", b"text,label\na,x\nb\xe9,y\n", "3: not UTF-8"),
    ("too_many.csv", "text,label\na,x\nb,y,z\n", "3: 3 fields, the header has 2"),
    ("too_few.tsv", "text\tlabel\na\tx\nb\n", "3: 1 of the header's 2 fields"),
    ("unclosed.csv", 'text,label\na,x\n"b,y\nc,x\n', "3: 1 of the header's 2 fields (an unclosed quote?)"),
    ("header_only.csv", "text,label\n", "1: header only, no rows"),
]


@pytest.mark.parametrize("strict_rows", [False, True], ids=["skipping", "strict"])
@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_bad_file_names_file_and_line(tmp_path, name, content, expected, strict_rows):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as caught:
        read_labeled_file(path, strict_rows=strict_rows)
    message = str(caught.value)
    assert f"{name}:{expected}" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("blank_then_invalid.jsonl", jsonl({"text": "", "label": "x"}) + "{oops\n", "2: invalid JSON"),
        ("blank_then_too_many.csv", "text,label\n,x\na,x,z\n", "3: 3 fields, the header has 2"),
    ],
)
def test_skipping_empty_text_does_not_hide_the_bad_rows_after_it(tmp_path, name, content, expected):
    with pytest.raises(DataError, match=rf"{name}:{expected}"):
        read_labeled_file(write(tmp_path / name, content))


BLANK_TEXT_FILES = [
    # (file name, content, lines skipped, texts kept): empty, whitespace-only and null texts
    (
        "empty_text.jsonl",
        jsonl(
            {"text": "a", "label": "x"},
            {"text": "", "label": "x"},
            {"text": "b", "label": "y"},
            {"text": " \t ", "label": "y"},
            {"text": None, "label": "x"},
            {"text": "", "label": None},  # a skipped row's label is not checked: it is not used
        ),
        (2, 4, 5, 6),
        ("a", "b"),
    ),
    ("blank_text.csv", 'text,label\na,x\n   ,y\n"",x\nb,y\n', (3, 4), ("a", "b")),
    ("blank_text.tsv", "text\tlabel\na\tx\nb\ty\n \tx\n\ty\n", (4, 5), ("a", "b")),
    (
        "blank_lines.jsonl",  # blank lines are not rows: they are neither kept nor counted as skipped
        '\n{"text": "a", "label": "x"}\n\n   \n{"text": "", "label": "x"}\n',
        (5,),
        ("a",),
    ),
    # A quoted field may span lines; the next row's line is still the line a person sees it on.
    ("multiline.csv", 'text,label\n"one\ntwo\nthree",x\n,y\n', (5,), ("one\ntwo\nthree",)),
    ("blank_then_row.csv", "text,label\na,x\n\n\n,y\n", (5,), ("a",)),
]


@pytest.mark.parametrize(
    ("name", "content", "skipped", "kept"), BLANK_TEXT_FILES, ids=[case[0] for case in BLANK_TEXT_FILES]
)
def test_rows_with_empty_text_are_skipped_with_one_warning(tmp_path, name, content, skipped, kept):
    path = write(tmp_path / name, content)
    with pytest.warns(DataWarning) as caught:
        data = read_labeled_file(path)
    assert (data.texts, data.skipped) == (kept, skipped)
    assert data.lines and not set(data.lines) & set(skipped)
    assert len(caught) == 1  # one warning for the file, however many rows it lost
    rows = "1 row" if len(skipped) == 1 else f"{len(skipped)} rows"
    lines = ("line " if len(skipped) == 1 else "lines ") + ", ".join(map(str, skipped))
    assert str(caught[0].message) == (
        f"{path}: skipped {rows} with empty text ({lines}); --strict-rows refuses them"
    )


@pytest.mark.parametrize(
    ("name", "content", "skipped", "kept"), BLANK_TEXT_FILES, ids=[case[0] for case in BLANK_TEXT_FILES]
)
def test_strict_rows_refuses_empty_text_at_its_line(tmp_path, name, content, skipped, kept):
    path = write(tmp_path / name, content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and refusing is all it does: no warning as well
        with pytest.raises(DataError) as caught:
            read_labeled_file(path, strict_rows=True)
    assert str(caught.value) == f"{path}:{skipped[0]}: empty text"


def test_skipped_warning_lists_the_first_five_lines(tmp_path):
    rows = [{"text": "" if i % 2 else f"s{i}", "label": "x"} for i in range(1, 16)]  # odd lines blank
    path = write(tmp_path / "many.jsonl", jsonl(*rows))
    with pytest.warns(DataWarning, match=r"skipped 8 rows with empty text \(lines 1, 3, 5, 7, 9, \.\.\.\);"):
        data = read_labeled_file(path)
    assert data.skipped == (1, 3, 5, 7, 9, 11, 13, 15) and len(data) == 7


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "all_blank.jsonl",
            jsonl({"text": "", "label": "x"}, {"text": None, "label": "y"}, {"text": " ", "label": "x"}),
        ),
        ("all_blank.csv", "text,label\n,x\n  ,y\n,x\n"),
        ("all_blank.tsv", "text\tlabel\n\tx\n \ty\n\tx\n"),
    ],
)
def test_a_file_of_only_empty_texts_is_refused(tmp_path, name, content):
    path = write(tmp_path / name, content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused, not warned about
        with pytest.raises(DataError) as caught:
            read_labeled_file(path)
    assert str(caught.value) == f"{path}: no rows with text (all 3 rows have empty text)"


def test_strict_rows_reaches_every_loader(tmp_path):
    blank = jsonl({"text": "good", "label": "positive"}, {"text": "", "label": "negative"})
    train = write(tmp_path / "train.jsonl", blank + jsonl({"text": "bad", "label": "negative"}))
    with pytest.raises(DataError, match=r"train\.jsonl:2: empty text"):
        load_corpus(train=train, strict_rows=True)
    with pytest.warns(DataWarning, match=r"train\.jsonl: skipped 1 row with empty text \(line 2\)"):
        assert len(load_corpus(train=train).splits["all"]) == 2
    (tmp_path / "mr").mkdir()
    write(tmp_path / "mr" / "all.jsonl", blank)
    with pytest.raises(DataError, match=r"all\.jsonl:2: empty text"):
        load_corpus("mr", data_dir=tmp_path, strict_rows=True)
    with pytest.warns(DataWarning, match=r"all\.jsonl: skipped 1 row"):
        assert load_corpus("mr", data_dir=tmp_path).splits["all"].skipped == (2,)


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.tsv", "blank.jsonl"])
def test_empty_file(tmp_path, name):
    path = write(tmp_path / name, "\n\n" if name.startswith("blank") else "")
    with pytest.raises(DataError, match=rf"{name}: empty file"):
        read_labeled_file(path)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_labeled_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"notes\.txt: unknown file type '\.txt'"):
        read_labeled_file(write(tmp_path / "notes.txt", "text,label\n"))


def test_bom_is_stripped_and_int_labels_become_names(tmp_path):
    csv_file = write(tmp_path / "bom.csv", "\ufefftext,label\nhello,1\n")
    assert read_labeled_file(csv_file).labels == ("1",)
    json_file = write(tmp_path / "bom.jsonl", "\ufeff" + jsonl({"text": "hello", "label": 0}))
    loaded = read_labeled_file(json_file)
    assert (loaded.texts, loaded.labels, loaded.lines) == (("hello",), ("0",), (1,))


def test_custom_columns_and_crlf(tmp_path):
    path = write(tmp_path / "crlf.csv", 'id,sentence,y\r\n1,"a, b",pos\r\n2,c,neg\r\n')
    loaded = read_labeled_file(path, text_column="sentence", label_column="y")
    assert (loaded.texts, loaded.labels, loaded.lines) == (("a, b", "c"), ("pos", "neg"), (2, 3))


def test_formats_load_equal():
    loaded = [read_labeled_file(SAMPLES / f"tiny.{suffix}") for suffix in ("jsonl", "csv", "tsv")]
    assert len(loaded[0]) == 12
    assert loaded[0].texts == loaded[1].texts == loaded[2].texts
    assert loaded[0].labels == loaded[1].labels == loaded[2].labels
    assert loaded[0].lines == tuple(range(1, 13))
    assert loaded[1].lines == loaded[2].lines == tuple(range(2, 14))  # line 1 is the header
    assert any('"again !"' in text for text in loaded[1].texts)  # CSV's doubled quotes undone


def test_labeled_texts_subset():
    data = LabeledTexts(("a", "b", "c"), ("x", "y", "x"), "f.csv", (2, 3, 5), skipped=[4])
    part = data.subset([2, 0])
    assert (part.texts, part.labels, part.lines, part.source) == (
        ("c", "a"),
        ("x", "x"),
        (5, 2),
        "f.csv (subset)",
    )
    assert part.skipped == (4,)  # the file's skipped lines, kept: a fold of it still says so
    assert part.subset([0]).source == "f.csv (subset)"
    with pytest.raises(ValueError):
        LabeledTexts(("a",), ("x", "y"), "f.csv")


# ---------------------------------------------------------------------------------------------
# User files


def test_load_files_train_only_is_cross_validated():
    corpus = load_files(SAMPLES / "tiny.csv")
    assert set(corpus.splits) == {"all"}
    assert corpus.protocol == "cross-validation"
    assert corpus.label_names == ("negative", "positive")
    assert corpus.name == "tiny"
    assert corpus.tokenizer == "unicode"  # user data: any language


def test_load_files_with_dev_and_test(tmp_path):
    train = write(tmp_path / "train.jsonl", jsonl({"text": "a", "label": "b"}, {"text": "c", "label": "a"}))
    dev = write(tmp_path / "dev.csv", "text,label\nx,a\n")
    test = write(tmp_path / "test.tsv", "text\tlabel\ny\tb\n")
    corpus = load_files(train, dev, test, name="mine")
    assert set(corpus.splits) == {"train", "dev", "test"}
    assert (corpus.name, corpus.label_names, corpus.tokenizer) == ("mine", ("a", "b"), "unicode")
    (fold,) = make_folds(corpus)
    assert (fold.dev_source, fold.test.texts) == ("dev split", ("y",))


@pytest.mark.parametrize("split", ["dev", "test"])
def test_unseen_label_in_dev_or_test(tmp_path, split):
    train = write(tmp_path / "train.jsonl", jsonl({"text": "a", "label": "x"}, {"text": "b", "label": "y"}))
    other = write(tmp_path / f"{split}.csv", "text,label\nc,x\nd,y\ne,z\n")
    with pytest.raises(DataError, match=rf"{split}\.csv:4: label 'z' is not among the labels seen in train"):
        load_files(train, **{split: other})


def test_unseen_label_checked_on_folds_too():
    train = LabeledTexts(("a", "b"), ("x", "y"), "train.jsonl", (1, 2))
    dev = LabeledTexts(("c",), ("z",), "dev.jsonl", (7,))
    corpus = Corpus("toy", ("x", "y", "z"), {"train": train, "dev": dev}, "unicode", "toy")
    with pytest.raises(DataError, match=r"dev\.jsonl:7: label 'z'"):
        make_folds(corpus)


# ---------------------------------------------------------------------------------------------
# Protocols


def test_folds_partition_the_data():
    corpus = load_files(SAMPLES / "tiny.tsv")
    everything = set(corpus.splits["all"].texts)
    folds = make_folds(corpus, folds=3, dev_fraction=0.25)  # 2 of each fold's 8 train rows: one per class
    assert [f.name for f in folds] == ["fold-0", "fold-1", "fold-2"]
    assert [f.index for f in folds] == [0, 1, 2]
    tests = [set(f.test.texts) for f in folds]
    assert sum(map(len, tests)) == len(everything)
    assert set().union(*tests) == everything
    for f in folds:
        train, dev, test = set(f.train.texts), set(f.dev.texts), set(f.test.texts)
        assert not (train & dev or train & test or dev & test)
        assert train | dev | test == everything
        assert f.dev_source == "25% of train, stratified, seed 0"
        assert Counter(f.dev.labels) == {"negative": 1, "positive": 1}
        assert set(f.train.labels) == {"negative", "positive"}


def test_folds_are_stratified():
    labels = ["a"] * 70 + ["b"] * 30
    folds = make_folds(corpus_of(labels), folds=10)
    assert len(folds) == 10
    for f in folds:
        assert Counter(f.test.labels) == {"a": 7, "b": 3}
        assert Counter(f.dev.labels) == {"a": 6, "b": 3}  # 9 of 90, split 63:27 -> 6.3:2.7


def test_folds_are_deterministic():
    corpus = corpus_of(["a"] * 40 + ["b"] * 20 + ["c"] * 20)
    first = make_folds(corpus, folds=5, seed=3)
    assert make_folds(corpus, folds=5, seed=3) == first
    assert make_folds(corpus, folds=5, seed=4) != first
    # One fold alone is the same as that fold of a full run.
    assert make_folds(corpus, folds=5, fold=2, seed=3) == [first[2]]


def test_fold_selection():
    corpus = corpus_of(["a"] * 30 + ["b"] * 30)
    assert [f.name for f in make_folds(corpus)] == ["fold-0"]  # one fold of ten by default
    assert make_folds(corpus, fold=7) == [make_folds(corpus, folds=10)[7]]
    assert len(make_folds(corpus, fold=7)[0].test) == 6
    with pytest.raises(DataError, match=r"--fold must be between 0 and 9"):
        make_folds(corpus, fold=10)
    with pytest.raises(DataError, match=r"--fold must be between 0 and 2"):
        make_folds(corpus, folds=3, fold=-1)
    with pytest.raises(DataError, match=r"--folds must be at least 2"):
        make_folds(corpus, folds=1)
    with pytest.raises(DataError, match=r"dev fraction"):
        make_folds(corpus, dev_fraction=1.0)


def test_too_few_examples_for_cross_validation():
    with pytest.raises(DataError, match=r"tiny\.csv: label 'negative' has 6 rows, too few for 10-fold"):
        make_folds(load_files(SAMPLES / "tiny.csv"))
    with pytest.raises(DataError, match=r"only one label"):
        make_folds(corpus_of(["a"] * 20))


def test_fixed_splits_reject_folds(tmp_path):
    train = write(
        tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20))
    )
    test = write(tmp_path / "test.csv", "text,label\nu,a\nv,b\n")
    corpus = load_files(train, test=test, name="mine")
    with pytest.raises(DataError, match=r"^mine has a test split; --folds is for datasets without one$"):
        make_folds(corpus, folds=10)
    with pytest.raises(DataError, match=r"--fold is for datasets without one"):
        make_folds(corpus, fold=0)


def test_held_out_dev_without_dev_split(tmp_path):
    rows = "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(40))
    corpus = load_files(
        write(tmp_path / "train.csv", "text,label\n" + rows),
        test=write(tmp_path / "test.csv", "text,label\nu,a\nv,b\n"),
    )
    (fold,) = make_folds(corpus, seed=5, dev_fraction=0.25)
    assert fold.dev_source == "25% of train, stratified, seed 5"
    assert (len(fold.train), len(fold.dev), len(fold.test)) == (30, 10, 2)
    assert Counter(fold.dev.labels) == {"a": 5, "b": 5}
    assert not set(fold.train.texts) & set(fold.dev.texts)
    assert fold.dev.lines and all(fold.dev.where(i).startswith(str(tmp_path)) for i in range(len(fold.dev)))
    assert make_folds(corpus, seed=5, dev_fraction=0.25) == [fold]


def test_held_out_dev_falls_back_when_a_class_is_too_small(tmp_path):
    rows = "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20)) + "lonely,c\n"
    corpus = load_files(
        write(tmp_path / "train.csv", "text,label\n" + rows),
        test=write(tmp_path / "test.csv", "text,label\nu,a\n"),
    )
    (fold,) = make_folds(corpus)
    assert fold.dev_source == "10% of train, seed 0"  # not stratified, and says so
    assert "lonely" in fold.train.texts  # a one-row class stays where it can be learned
    assert len(fold.train) + len(fold.dev) == 21


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub (offline: an in-memory DatasetDict stands in for the Hub)


def test_corpus_from_hf_with_class_label():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "y": datasets.ClassLabel(names=["neg", "pos", "neutral"])}
    )

    def part(rows):
        return datasets.Dataset.from_dict(
            {"sentence": [r[0] for r in rows], "y": [r[1] for r in rows]}, features
        )

    hf = datasets.DatasetDict(
        train=part([("good", 1), ("bad", 0), ("fine", 1)]),
        validation=part([("great", 1)]),
        test=part([("awful", 0), ("nice", 1)]),
    )
    corpus = corpus_from_hf("someone/reviews", hf, text_column="sentence", label_column="y")
    assert corpus.label_names == ("neg", "pos", "neutral")  # the ClassLabel's order, unused names kept
    assert set(corpus.splits) == {"train", "dev", "test"}
    assert corpus.splits["train"].labels == ("pos", "neg", "pos")
    assert corpus.splits["dev"].source == "hub:someone/reviews/validation"
    assert corpus.splits["test"].texts == ("awful", "nice")
    assert corpus.source == "hub:someone/reviews"
    (fold,) = make_folds(corpus)
    assert fold.dev_source == "dev split"


def test_corpus_from_hf_plain_labels_and_hidden_test_labels():
    datasets = pytest.importorskip("datasets")
    plain = datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": ["a", "b"], "label": ["z", "y"]}))
    corpus = corpus_from_hf("x/y", plain)
    assert (set(corpus.splits), corpus.label_names) == ({"all"}, ("y", "z"))

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["n", "p"])}
    )
    hidden = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}, features),
        test=datasets.Dataset.from_dict({"text": ["c"], "label": [-1]}, features),  # GLUE-style hidden labels
    )
    assert set(corpus_from_hf("x/y", hidden).splits) == {"all"}
    # Hub copies of registered sets keep the registry's tokenizer (and so its casing rule).
    assert corpus_from_hf(REGISTRY["trec"].hub_id, plain).tokenizer == "kim:lowercase=false"
    assert corpus_from_hf("x/y", plain).tokenizer == "unicode"


def test_corpus_from_hf_errors():
    datasets = pytest.importorskip("datasets")
    hf = datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": ["a", "b"], "label": ["x", None]}))
    with pytest.raises(DataError, match=r"^hub:x/y/train:2: empty label$"):
        corpus_from_hf("x/y", hf)
    with pytest.raises(DataError, match=r"hub:x/y/train: no column 'sentence' \(columns: text, label\)"):
        corpus_from_hf("x/y", hf, text_column="sentence")
    with pytest.raises(DataError, match=r"hub:x/y: no 'train' split"):
        corpus_from_hf("x/y", datasets.DatasetDict(test=hf["train"]))


def test_corpus_from_hf_skips_empty_text_rows():
    datasets = pytest.importorskip("datasets")

    def part(texts: list) -> object:
        return datasets.Dataset.from_dict({"text": texts, "label": ["x", "y"] * (len(texts) // 2)})

    hf = datasets.DatasetDict(train=part(["a", " ", None, "b"]), test=part(["c", "d"]))
    with pytest.warns(DataWarning) as caught:
        corpus = corpus_from_hf("x/y", hf)
    train = corpus.splits["train"]
    assert (train.texts, train.labels, train.lines, train.skipped) == (("a", "b"), ("x", "y"), (1, 4), (2, 3))
    assert train.where(1) == "hub:x/y/train:4"  # rows keep their own numbers, not their new positions
    assert [str(w.message) for w in caught] == [
        "hub:x/y/train: skipped 2 rows with empty text (rows 2, 3); --strict-rows refuses them"
    ]
    with pytest.raises(DataError, match=r"^hub:x/y/train:2: empty text$"):
        corpus_from_hf("x/y", hf, strict_rows=True)
    blank_test = datasets.DatasetDict(train=hf["train"], test=part(["", " "]))
    with pytest.raises(DataError, match=r"^hub:x/y/test: no rows with text \(all 2 rows have empty text\)$"):
        corpus_from_hf("x/y", blank_test)


def test_load_hub_offline_raises_data_error(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    # The libraries read HF_HUB_OFFLINE at import; patch their copies too so no request is tried.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # so a stray local folder cannot be mistaken for the id
    with pytest.raises(DataError) as caught:
        load_hub("textcnn-tests/no-such-dataset")
    message = str(caught.value)
    assert message.startswith("hub:textcnn-tests/no-such-dataset: cannot load from the Hugging Face Hub")
    assert "\n" not in message


def test_load_hub_without_datasets_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(DataError, match=r"needs the `datasets` package"):
        load_hub("owner/name")


# ---------------------------------------------------------------------------------------------
# Dispatch


def test_load_corpus_dispatch(monkeypatch, tmp_path):
    corpus = load_corpus(train=SAMPLES / "tiny.jsonl")
    assert (set(corpus.splits), corpus.tokenizer) == ({"all"}, "unicode")

    calls = []
    monkeypatch.setattr(data_module, "load_hub", lambda *args, **kw: calls.append((args, kw)) or corpus)
    monkeypatch.chdir(tmp_path)  # no folder named owner/ here: the id goes to the Hub
    assert load_corpus("owner/name", text_column="t", label_column="l") is corpus
    assert load_corpus("owner/name", strict_rows=True, allow_empty_labels=True)
    assert calls == [
        (("owner/name", "t", "l"), {"strict_rows": False, "allow_empty_labels": False}),
        (("owner/name", "text", "label"), {"strict_rows": True, "allow_empty_labels": True}),
    ]

    # A path that does not exist is not sent to the Hub: it was meant as a local dataset.
    for path in ("./missing", "/nonexistent/folder", "a/b/c"):
        with pytest.raises(DataError, match=rf"^{path}: no such file or folder"):
            load_corpus(path)

    with pytest.raises(DataError, match=r"unknown dataset 'imdb' \(known: mr, sst1, sst2, subj, trec"):
        load_corpus("imdb")
    with pytest.raises(DataError, match=r"not both"):
        load_corpus("mr", train=SAMPLES / "tiny.csv")
    with pytest.raises(DataError, match=r"no data: give a dataset"):
        load_corpus()
    with pytest.raises(DataError, match=r"--dev/--test need a --train file"):
        load_corpus(dev=SAMPLES / "tiny.csv")
    monkeypatch.delenv("TEXTCNN_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"mr: no data folder; give --data-dir or set TEXTCNN_DATA_DIR"):
        load_corpus("mr")


# ---------------------------------------------------------------------------------------------
# Local datasets through `datasets` (save_to_disk folders, folders of data files)


@pytest.fixture
def offline_datasets(monkeypatch, tmp_path):
    """`datasets` with its cache in tmp_path and every network connection refused.

    Refusing sockets (rather than setting HF_*_OFFLINE) shows that reading a local dataset needs no
    network at all, not merely that it copes without.
    """
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")

    def refuse(*args, **kwargs):
        raise AssertionError("a local dataset tried the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return datasets


def save_reviews(datasets, path: Path) -> Path:
    """A small DatasetDict as `save_to_disk` writes it: a ClassLabel, validation, blank texts."""
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "y": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def part(rows):
        return datasets.Dataset.from_dict(
            {"sentence": [r[0] for r in rows], "y": [r[1] for r in rows]}, features
        )

    good = [f"a good film {i}" for i in range(6)]
    bad = [f"a bad film {i}" for i in range(6)]
    datasets.DatasetDict(
        train=part([(t, 1) for t in good] + [("", 0)] + [(t, 0) for t in bad] + [(None, 1)]),
        validation=part([("good again", 1), ("bad again", 0)]),
        test=part([("fine work", 1), ("   ", 0), ("poor work", 0)]),
    ).save_to_disk(str(path))
    return path


def test_load_corpus_reads_a_save_to_disk_folder(offline_datasets, tmp_path):
    path = save_reviews(offline_datasets, tmp_path / "reviews")
    with pytest.warns(DataWarning) as caught:
        corpus = load_corpus(str(path), text_column="sentence", label_column="y")
    assert (corpus.name, corpus.source, corpus.label_names) == (str(path), f"local:{path}", ("neg", "pos"))
    assert set(corpus.splits) == {"train", "dev", "test"}
    train, dev, test = (corpus.splits[s] for s in ("train", "dev", "test"))
    assert len(train) == 12 and train.skipped == (7, 14)
    assert train.labels[:7] == ("pos",) * 6 + ("neg",)  # ClassLabel ints became their names
    assert (dev.source, dev.texts, dev.skipped) == (
        f"local:{path}/validation",
        ("good again", "bad again"),
        (),
    )
    assert (test.texts, test.lines, test.skipped) == (("fine work", "poor work"), (1, 3), (2,))
    assert [str(w.message) for w in caught] == [
        f"local:{path}/train: skipped 2 rows with empty text (rows 7, 14); --strict-rows refuses them",
        f"local:{path}/test: skipped 1 row with empty text (row 2); --strict-rows refuses them",
    ]
    (fold,) = make_folds(corpus)
    assert fold.dev_source == "dev split" and fold.test.skipped == (2,)
    with pytest.raises(DataError, match=rf"^local:{path}/train:7: empty text$"):
        load_corpus(str(path), text_column="sentence", label_column="y", strict_rows=True)


def test_load_local_reads_a_folder_or_a_file_of_data_files(offline_datasets, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    train_rows = [{"text": f"s{i}", "label": ("negative", "positive")[i % 2]} for i in range(6)]
    write(folder / "train.jsonl", jsonl(*train_rows, {"text": "", "label": "negative"}))
    write(folder / "dev.jsonl", jsonl({"text": "d", "label": "positive"}))
    write(
        folder / "test.jsonl", jsonl({"text": "t", "label": "negative"}, {"text": None, "label": "positive"})
    )
    with pytest.warns(DataWarning) as caught:
        corpus = load_local(folder)
    assert len(caught) == 2  # train and test lost a row each
    assert set(corpus.splits) == {"train", "dev", "test"}  # datasets reads dev.jsonl as "validation"
    assert corpus.splits["dev"].source == f"local:{folder}/validation"
    assert corpus.label_names == ("negative", "positive")  # no ClassLabel: the sorted train labels
    assert (corpus.splits["train"].skipped, corpus.splits["test"].texts) == ((7,), ("t",))

    with pytest.warns(DataWarning, match=r"train\.jsonl/train: skipped 1 row with empty text \(row 7\)"):
        one_file = load_corpus(str(folder / "train.jsonl"))
    assert set(one_file.splits) == {"all"} and len(one_file.splits["all"]) == 6  # one file: cross-validated

    single = tmp_path / "single"
    offline_datasets.Dataset.from_dict({"text": ["a", "", "b"], "label": ["x", "y", "y"]}).save_to_disk(
        str(single)
    )
    with pytest.warns(DataWarning, match=r"single/train: skipped 1 row with empty text \(row 2\)"):
        alone = load_corpus(str(single))  # a Dataset, not a DatasetDict: one split, like one file
    assert (set(alone.splits), alone.splits["all"].texts) == ({"all"}, ("a", "b"))


def test_load_local_errors_are_one_line(offline_datasets, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=rf"^local:{empty}: not a dataset folder"):
        load_corpus(str(empty))
    notes = write(tmp_path / "notes.txt", "hello\n")
    with pytest.raises(DataError, match=r"notes\.txt: unknown data file type '\.txt'"):
        load_corpus(str(notes))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write(mixed / "a.jsonl", jsonl({"text": "a", "label": "x"}))
    write(mixed / "b.jsonl", jsonl({"sentence": "b", "y": 1}))
    with pytest.raises(DataError) as caught:
        load_corpus(str(mixed))
    message = str(caught.value)
    assert message.startswith(f"local:{mixed}: cannot load with `datasets` (") and "\n" not in message
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match=r"is read with the `datasets` package \(pip install datasets\)"):
        load_corpus(str(empty))


def test_a_registered_datasets_own_folder_is_read_as_that_dataset(tmp_path):
    # Through `datasets` it would lose the registry's casing rule (and MR's folder does not load:
    # its dataset.json card is read as a second data file).
    rows = [{"text": f"s{i}", "label": ("negative", "positive")[i % 2]} for i in range(4)]
    (tmp_path / "mr").mkdir()
    write(tmp_path / "mr" / "all.jsonl", jsonl(*rows))
    write(tmp_path / "mr" / "dataset.json", json.dumps({"name": "mr"}))
    corpus = load_corpus(str(tmp_path / "mr"))
    assert (corpus.name, len(corpus.splits["all"])) == ("mr", 4)


def test_load_corpus_registered_suggests_its_tokenizer(real_data):
    assert load_corpus("trec", data_dir=real_data).tokenizer == "kim:lowercase=false"
    assert load_corpus("umsab-fr", data_dir=real_data).tokenizer == "unicode"
