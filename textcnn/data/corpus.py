"""Loading a corpus by what the user named: a registered benchmark, a local dataset, a Hub id, or files.

This is the one entry point the CLI calls (`load_corpus`); it decides which loader reads the data
(`textcnn.data.files`, `textcnn.data.hub`, or the registry's folders read here by
`load_registered`) and leaves the protocols to `textcnn.data.folds`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from textcnn.data.columns import Labels, concat_texts
from textcnn.data.files import load_files, read_labeled_file
from textcnn.data.hub import load_hub, load_local
from textcnn.data.registry import REGISTRY, _dataset_folder, _known_names, _spec
from textcnn.data.splits import (
    Corpus,
    LabeledTexts,
    _check_known_labels,
    _check_seen_in_train,
    _in_label_order,
)
from textcnn.data.tokenizers import DEFAULT_TOKENIZER
from textcnn.errors import DataError


def load_registered(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    strict_rows: bool = False,
    allow_empty_labels: bool = False,
) -> Corpus:
    """Read `<data_dir>/<name>/<split>.jsonl` for every split the registry lists; a multi-label
    set's rows hold their labels in the registry's order."""
    spec = _spec(name)
    folder = _dataset_folder(spec, data_dir)
    splits: dict[str, LabeledTexts] = {}
    for split in spec.splits:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            expected = ", ".join(f"{s}.jsonl" for s in spec.splits)
            raise DataError(f"{path}: file not found (dataset {name} expects {expected} in {folder})")
        data = read_labeled_file(
            path,
            label_column=spec.label_column,
            strict_rows=strict_rows,
            allow_empty_labels=allow_empty_labels,
        )
        if data.multi_label != spec.multi_label:
            held = ("multi-label (a list of labels a row)", "single-label")
            expected, found = held if spec.multi_label else held[::-1]
            raise DataError(f"{path}: dataset {name} is {expected}, this file is {found}")
        _check_known_labels(data, spec.labels, f"{name}'s labels")
        splits[split] = _in_label_order(data, spec.labels)
    _check_seen_in_train(splits)
    return Corpus(name, spec.labels, splits, spec.tokenizer, str(folder), multi_label=spec.multi_label)


def load_corpus(
    dataset: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    train: str | os.PathLike | None = None,
    dev: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    text_column: str = "text",
    label_column: str = "label",
    strict_rows: bool = False,
    label_separator: str | None = None,
    label_columns: Sequence[str] | None = None,
    allow_empty_labels: bool = False,
) -> Corpus:
    """One entry point for the CLI: a registry name, a local dataset, a Hub id (`owner/name`), or files.

    An existing path wins over a Hub id of the same spelling, as in `datasets.load_dataset`; a
    registered dataset's own folder (`../shared/data/trec`) is read as that dataset, so it keeps the
    registry's suggested tokenizer and label order. `strict_rows` refuses rows with empty text
    instead of skipping them. `label_separator` and `label_columns` describe --train files' multi-label
    layout (a dataset's list-valued label column is read as multi-label without them);
    `allow_empty_labels` accepts multi-label rows with no label.
    """
    if dataset and train is not None:
        raise DataError(f"give either a dataset ({dataset!r}) or --train files, not both")
    if dataset and (label_separator is not None or label_columns is not None):
        flag = "--label-separator" if label_separator is not None else "--label-columns"
        raise DataError(f"{flag} is for --train files; a dataset's labels are read as it stores them")
    if dataset is None and (dev is not None or test is not None) and train is None:
        raise DataError("--dev/--test need a --train file")
    if dataset in REGISTRY:
        corpus = load_registered(
            dataset, data_dir, strict_rows=strict_rows, allow_empty_labels=allow_empty_labels
        )
    elif dataset and "," in dataset and all(name.strip() in REGISTRY for name in dataset.split(",")):
        names = [name.strip() for name in dataset.split(",")]
        corpus = load_joined(names, data_dir, strict_rows=strict_rows, allow_empty_labels=allow_empty_labels)
    elif dataset and Path(dataset).expanduser().exists():
        registered = _registered_folder(Path(dataset).expanduser())
        if registered:
            corpus = load_registered(
                registered,
                Path(dataset).expanduser(),
                strict_rows=strict_rows,
                allow_empty_labels=allow_empty_labels,
            )
        else:
            corpus = load_local(
                dataset,
                text_column,
                label_column,
                strict_rows=strict_rows,
                allow_empty_labels=allow_empty_labels,
            )
    elif dataset and _looks_like_a_path(dataset):
        raise DataError(f"{dataset}: no such file or folder (a local dataset is a folder or a data file)")
    elif dataset and "/" in dataset:
        corpus = load_hub(
            dataset, text_column, label_column, strict_rows=strict_rows, allow_empty_labels=allow_empty_labels
        )
    elif dataset:
        raise DataError(
            f"unknown dataset {dataset!r} (known: {_known_names()}; or a local dataset folder, "
            "a Hub id owner/name, or --train FILE)"
        )
    elif train is not None:
        return load_files(
            train,
            dev,
            test,
            text_column,
            label_column,
            strict_rows=strict_rows,
            label_separator=label_separator,
            label_columns=label_columns,
            allow_empty_labels=allow_empty_labels,
        )
    else:
        raise DataError(f"no data: give a dataset ({_known_names()}) or --train FILE")
    return corpus


def load_joined(
    names: list[str],
    data_dir: str | os.PathLike | None = None,
    *,
    strict_rows: bool = False,
    allow_empty_labels: bool = False,
) -> Corpus:
    """Registered datasets of one label set and one protocol as one corpus, split by split (the six
    UMSAB languages trained together: `--dataset umsab-en,umsab-fr,...`). Rows keep their order,
    dataset after dataset; a row is then named by its dataset and its line in the messages."""
    # The registry knows which sets are multi-label: refuse a mix before reading any file.
    kinds = {name: _spec(name).multi_label for name in names}
    if len(set(kinds.values())) > 1:
        multi = ", ".join(n for n, m in kinds.items() if m)
        single = ", ".join(n for n, m in kinds.items() if not m)
        raise DataError(f"{multi} (multi-label) and {single} (single-label) cannot train together")
    corpora = [
        load_registered(name, data_dir, strict_rows=strict_rows, allow_empty_labels=allow_empty_labels)
        for name in names
    ]
    first = corpora[0]
    for corpus in corpora[1:]:
        if corpus.label_names != first.label_names or set(corpus.splits) != set(first.splits):
            raise DataError(
                f"{corpus.name} and {first.name} cannot train together: their labels or splits differ "
                f"({list(corpus.label_names)} / {sorted(corpus.splits)} against "
                f"{list(first.label_names)} / {sorted(first.splits)})"
            )
    tokenizers = {corpus.tokenizer for corpus in corpora}
    splits = {
        split: LabeledTexts(
            texts=concat_texts([c.splits[split].texts for c in corpora]),
            labels=Labels.concat([c.splits[split].labels for c in corpora]),
            source=" + ".join(c.splits[split].source for c in corpora),
        )
        for split in first.splits
    }
    return Corpus(
        ",".join(names),
        first.label_names,
        splits,
        first.tokenizer if len(tokenizers) == 1 else DEFAULT_TOKENIZER,
        ", ".join(c.source for c in corpora),
        multi_label=first.multi_label,
    )


def _registered_folder(path: Path) -> str | None:
    """The registered name when `path` is that dataset's own folder (its card beside its files)."""
    return path.name if path.name in REGISTRY and (path / "dataset.json").is_file() else None


def _looks_like_a_path(dataset: str) -> bool:
    """Hub ids are `owner/name`; anything else with a slash, or rooted, was meant as a path."""
    return dataset.startswith(("/", ".", "~")) or dataset.count("/") > 1
