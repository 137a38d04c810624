"""Multi-label data: three file layouts read to one shape, one-line errors, folds, GoEmotions, flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textcnn.data.corpus import load_corpus, load_joined, load_registered
from textcnn.data.files import load_files, read_labeled_file
from textcnn.data.folds import make_folds
from textcnn.data.splits import Corpus, LabeledTexts
from textcnn.errors import DataError, DataWarning

ROWS = [  # text, labels in the order of LABELS
    ("so happy and in love", ("joy", "love")),
    ("this is scary", ("fear",)),
    ("what a lovely day", ("joy",)),
    ("i love it but i am scared", ("fear", "love")),
]
LABELS = ("fear", "joy", "love")  # sorted: what label_names are without label columns


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def as_jsonl_lists(path: Path) -> Path:
    # Labels in another order than the corpus's, and one repeated: both are normalized away.
    rows = [{"text": t, "label": [*reversed(y), y[0]]} for t, y in ROWS]
    return write(path, jsonl(*rows))


def as_separated(path: Path, delimiter: str = ",") -> Path:
    lines = [f"text{delimiter}label"] + [f"{t}{delimiter}{' | '.join(y)}" for t, y in ROWS]
    return write(path, "\n".join(lines) + "\n")


def as_columns(path: Path, delimiter: str = ",") -> Path:
    header = delimiter.join(("text", *LABELS))
    lines = [delimiter.join((t, *("1" if name in y else "0" for name in LABELS))) for t, y in ROWS]
    return write(path, "\n".join([header, *lines]) + "\n")


def test_three_layouts_read_to_the_same_rows(tmp_path):
    corpora = [
        load_files(as_jsonl_lists(tmp_path / "lists.jsonl")),
        load_files(as_separated(tmp_path / "cells.csv"), label_separator="|"),
        load_files(as_columns(tmp_path / "columns.tsv", "\t"), label_columns=LABELS),
        load_files(as_columns(tmp_path / "columns.csv"), label_columns=LABELS),
    ]
    for corpus in corpora:
        assert corpus.multi_label and corpus.label_names == LABELS
        data = corpus.splits["all"]
        assert data.multi_label
        assert data.texts == tuple(t for t, _ in ROWS)
        assert data.labels == tuple(y for _, y in ROWS)
        assert data.lines == (2, 3, 4, 5) or data.lines == (1, 2, 3, 4)
    # A file alone keeps each row's labels in its own order, duplicates dropped.
    lists = read_labeled_file(tmp_path / "lists.jsonl")
    assert lists.labels[0] == ("love", "joy")


def test_label_columns_keep_their_order_and_read_true_false(tmp_path):
    path = write(
        tmp_path / "c.jsonl",
        jsonl({"text": "a", "love": True, "joy": 1}, {"text": "b", "love": "false", "joy": "1.0"}),
    )
    corpus = load_files(path, label_columns=["love", "joy"])
    assert corpus.label_names == ("love", "joy")
    assert corpus.splits["all"].labels == (("love", "joy"), ("joy",))


def test_single_label_data_is_unchanged(tmp_path):
    path = write(tmp_path / "s.jsonl", jsonl({"text": "a", "label": "x"}, {"text": "b", "label": 3}))
    corpus = load_files(path)
    assert not corpus.multi_label and corpus.label_names == ("3", "x")
    assert corpus.splits["all"].labels == ("x", "3") and not corpus.splits["all"].multi_label


@pytest.mark.parametrize(
    ("name", "content", "options", "expected"),
    [
        (
            "mix.jsonl",
            jsonl({"text": "a", "label": ["x"]}, {"text": "b", "label": "y"}),
            {},
            r"mix.jsonl:2: label is a single label here but a list on line 1$",
        ),
        (
            "mix2.jsonl",
            jsonl({"text": "a", "label": "y"}, {"text": "", "label": 7}, {"text": "b", "label": ["x"]}),
            {},
            r"mix2.jsonl:3: label is a list here but a single label on line 1$",
        ),
        (
            "float.jsonl",
            jsonl({"text": "a", "label": ["x", 1.5]}),
            {},
            r"float.jsonl:1: label 2 of the list must be a string or an integer, got float$",
        ),
        (
            "bool.jsonl",
            jsonl({"text": "a", "label": [True]}),
            {},
            r"bool.jsonl:1: label 1 of the list must be a string or an integer, got True$",
        ),
        (
            "blank.jsonl",
            jsonl({"text": "a", "label": ["x", " "]}),
            {},
            r"blank.jsonl:1: label 2 of the list is empty$",
        ),
        (
            "none.jsonl",
            jsonl({"text": "a", "label": ["x"]}, {"text": "b", "label": []}),
            {},
            r"none.jsonl:2: no label \(a row needs at least one; --allow-empty-labels accepts rows with none\)$",
        ),
        (
            "cell.csv",
            "text,label\na,x|y\nb,\n",
            {"label_separator": "|"},
            r"cell.csv:3: no label \(a row needs at least one",
        ),
        (
            "two.csv",
            "text,joy,love\na,1,0\nb,2,0\n",
            {"label_columns": ("joy", "love")},
            r"two.csv:3: column 'joy' must be 0 or 1, got '2'$",
        ),
        (
            "blankcell.tsv",
            "text\tjoy\tlove\na\t1\t\n",
            {"label_columns": ("joy", "love")},
            r"blankcell.tsv:2: column 'love' must be 0 or 1, got ''$",
        ),
        (
            "missing.csv",
            "text,joy\na,1\n",
            {"label_columns": ("joy", "love")},
            r"missing.csv:1: no column 'love' \(columns: text, joy\)$",
        ),
        (
            "nocol.jsonl",
            jsonl({"text": "a", "joy": 1}),
            {"label_columns": ("joy", "love")},
            r"nocol.jsonl:1: no column 'love'",
        ),
        (
            "both.csv",
            "text,label\na,x\n",
            {"label_columns": ("x",), "label_separator": "|"},
            r"either a label separator or label columns",
        ),
    ],
)
def test_bad_multi_label_rows_name_file_and_line(tmp_path, name, content, options, expected):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match=expected) as caught:
        read_labeled_file(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    if "label separator" not in expected:
        assert message.startswith(f"{path}:")


def test_unknown_label_in_dev_names_row_and_label(tmp_path):
    train = write(
        tmp_path / "train.jsonl", jsonl({"text": "a", "label": ["x", "y"]}, {"text": "b", "label": ["y"]})
    )
    dev = write(
        tmp_path / "dev.jsonl", jsonl({"text": "c", "label": ["x"]}, {"text": "d", "label": ["y", "z"]})
    )
    with pytest.raises(
        DataError, match=rf"^{dev}:2: label 'z' is not among the labels seen in train \(x, y\)$"
    ):
        load_files(train, dev)


def test_single_and_multi_label_files_do_not_mix(tmp_path):
    train = write(
        tmp_path / "train.jsonl", jsonl({"text": "a", "label": ["x", "y"]}, {"text": "b", "label": ["y"]})
    )
    test = write(tmp_path / "test.jsonl", jsonl({"text": "c", "label": "x"}))
    with pytest.raises(DataError, match=rf"^{test}: single-label, but {train} is multi-label"):
        load_files(train, test=test)


def test_allow_empty_labels(tmp_path):
    path = write(tmp_path / "e.csv", "text,label\na,x|y\nb,\nc,y\n")
    data = read_labeled_file(path, label_separator="|", allow_empty_labels=True)
    assert data.labels == (("x", "y"), (), ("y",))
    lists = write(tmp_path / "e.jsonl", jsonl({"text": "a", "label": ["x", "y"]}, {"text": "b", "label": []}))
    corpus = load_files(lists, allow_empty_labels=True)
    assert corpus.splits["all"].labels == (("x", "y"), ())
    # Empty text is still skipped (its label unread), as for single-label files.
    skipped = write(
        tmp_path / "s.jsonl", jsonl({"text": "a", "label": ["x"]}, {"text": " ", "label": "junk"})
    )
    with pytest.warns(DataWarning, match="skipped 1 row with empty text"):
        assert read_labeled_file(skipped).skipped == (2,)


def multi_corpus(n: int = 60) -> Corpus:
    names = ("a", "b", "c")
    labels = tuple(tuple(names[j] for j in range(3) if (i >> j) & 1) or ("a",) for i in range(n))
    data = LabeledTexts(tuple(f"text {i}" for i in range(n)), labels, "toy.jsonl", tuple(range(1, n + 1)))
    return Corpus("toy", names, {"all": data}, "unicode", "toy.jsonl", multi_label=True)


def test_folds_on_multi_label_data_are_deterministic_and_disjoint():
    corpus = multi_corpus()
    folds = make_folds(corpus, folds=5, seed=3)
    again = make_folds(corpus, folds=5, seed=3)
    assert [(f.train.lines, f.dev.lines, f.test.lines) for f in folds] == [
        (f.train.lines, f.dev.lines, f.test.lines) for f in again
    ]
    tested = [line for fold in folds for line in fold.test.lines]
    assert sorted(tested) == list(range(1, 61))  # every row tested once
    for fold in folds:
        parts = [set(fold.train.lines), set(fold.dev.lines), set(fold.test.lines)]
        assert sum(map(len, parts)) == 60 and len(set().union(*parts)) == 60
        assert fold.train.multi_label and fold.dev.multi_label
        assert fold.dev_source == "10% of train, unstratified (multi-label), seed 3"
    assert make_folds(corpus, folds=5, seed=4)[0].test.lines != folds[0].test.lines
    (one,) = make_folds(corpus, folds=5, fold=2, seed=3)
    assert one.test.lines == folds[2].test.lines

    train = corpus.splits["all"]
    (held,) = make_folds(
        Corpus("toy", corpus.label_names, {"train": train}, "unicode", "t", multi_label=True)
    )
    assert len(held.dev) == 6 and not set(held.dev.lines) & set(held.train.lines)


def test_one_label_across_all_rows_is_refused():
    rows = LabeledTexts(("a", "b", "c"), (("x",), ("x",), ("x",)), "one.jsonl")
    with pytest.raises(DataError, match=r"one.jsonl: only one label \('x'\)"):
        make_folds(Corpus("one", ("x",), {"all": rows}, "unicode", "one.jsonl", multi_label=True), folds=2)


def test_types_keep_one_kind():
    with pytest.raises(ValueError, match="mix"):
        LabeledTexts(("a", "b"), ("x", ("y",)), "m")
    data = LabeledTexts(("a",), [["x", "y"]], "m")
    assert data.labels == (("x", "y"),) and data.subset([0]).multi_label
    with pytest.raises(ValueError, match="multi_label"):
        Corpus("m", ("x", "y"), {"all": data}, "unicode", "m")


@pytest.fixture
def goemotions_dir(data_dir) -> Path:
    if not (data_dir / "goemotions" / "train.jsonl").is_file():
        pytest.skip("goemotions not found in the data folder")
    return data_dir


def test_goemotions_loads(goemotions_dir):
    corpus = load_registered("goemotions", goemotions_dir)
    card = json.loads((goemotions_dir / "goemotions" / "dataset.json").read_text(encoding="utf-8"))
    assert (
        corpus.multi_label and corpus.label_names == tuple(card["labels"]) and len(corpus.label_names) == 28
    )
    assert {split: len(part) for split, part in corpus.splits.items()} == {
        "train": 43410,
        "dev": 5426,
        "test": 5427,
    }
    for split, part in corpus.splits.items():
        assert sum(len(y) > 1 for y in part.labels) == card["splits"][split]["rows_with_several_labels"]
        assert all(y for y in part.labels)  # every row has a label (neutral is one)
    assert load_corpus("goemotions", data_dir=goemotions_dir).label_names == corpus.label_names
    with pytest.raises(
        DataError, match=r"goemotions \(multi-label\) and mr \(single-label\) cannot train together"
    ):
        load_joined(["goemotions", "mr"], goemotions_dir)
    with pytest.raises(DataError, match=r"--label-separator is for --train files"):
        load_corpus("goemotions", data_dir=goemotions_dir, label_separator="|")


def test_data_flags_parse_and_reach_the_loader(tmp_path):
    from textcnn.cli import build_parser
    from textcnn.cli.flags import load_corpus_from_args

    path = as_columns(tmp_path / "columns.csv")
    parser = build_parser()
    for command in (["train", "--out", "x"], ["evaluate", "bundle"], ["tune", "--out", "x"]):
        args = parser.parse_args([*command, "--train", str(path), "--label-columns", "fear, joy,love"])
        assert args.label_columns == LABELS and args.label_separator is None and not args.allow_empty_labels
    assert load_corpus_from_args(args).splits["all"].labels == tuple(y for _, y in ROWS)

    args = parser.parse_args(
        ["train", "--out", "x", "--train", "t.csv", "--label-separator", "|", "--allow-empty-labels"]
    )
    assert (args.label_separator, args.allow_empty_labels, args.label_columns) == ("|", True, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--out", "x", "--label-columns", "a,,b"])


def test_a_hub_dataset_with_lists_of_class_ids_is_multi_label():
    datasets = pytest.importorskip("datasets")
    names = ["anger", "joy", "neutral"]
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "labels": getattr(datasets, "List", datasets.Sequence)(datasets.ClassLabel(names=names)),
        }
    )
    hf = datasets.DatasetDict(
        train=datasets.Dataset.from_dict(
            {"text": ["a", "b", "c"], "labels": [[1, 0], [2], [0, 1, 1]]}, features
        ),
        validation=datasets.Dataset.from_dict({"text": ["d"], "labels": [[1]]}, features),
    )
    from textcnn.data.hub import corpus_from_hf

    corpus = corpus_from_hf("google-research-datasets/go_emotions:simplified", hf, label_column="labels")
    assert corpus.multi_label and corpus.label_names == tuple(names) and corpus.tokenizer == "unicode"
    assert corpus.splits["train"].labels == (("anger", "joy"), ("neutral",), ("anger", "joy"))
    assert corpus.splits["dev"].labels == (("joy",),)
