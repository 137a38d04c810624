"""Datasets read through Hugging Face `datasets`: from the Hub, or saved or stored on this machine.

`datasets` is an optional dependency, imported only inside these loaders, so the rest of the data
layer (and the offline tests) runs without it. Each path converts to the same `Corpus` as the file
readers, with the same row checks and the same skip-or-refuse rule for empty text. A label column
holding lists (GoEmotions' `labels`, a `Sequence`/`List` of `ClassLabel` ids or of names) gives
multi-label rows, as a JSON list does in a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textcnn.data.files import _Rows, _warn_skipped
from textcnn.data.registry import REGISTRY
from textcnn.data.splits import (
    Corpus,
    LabeledTexts,
    _check_known_labels,
    _check_seen_in_train,
    _in_label_order,
    _label_set,
)
from textcnn.data.tokenizers import DEFAULT_TOKENIZER
from textcnn.errors import DataError


def _class_name(value: Any, names: Sequence[str] | None, at: str) -> Any:
    """A ClassLabel id's name (each id's, for a list); anything else as it is, for `_Rows` to check."""
    if isinstance(value, list):
        return [_class_name(v, names, at) for v in value]
    if names and isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(names):
            raise DataError(f"{at}: label {value} is outside the ClassLabel's {len(names)} names")
        return names[value]
    return value


def _hf_rows(
    texts: list,
    labels: list,
    names: Sequence[str] | None,
    where: str,
    strict_rows: bool,
    allow_empty_labels: bool = False,
) -> LabeledTexts:
    """One Hugging Face split's rows; ClassLabel ids become their names, in lists too."""
    rows = _Rows(strict_rows, allow_empty_labels, unit="row")
    for row, (text, value) in enumerate(zip(texts, labels, strict=True), start=1):
        at = f"{where}:{row}"
        rows.add(text, _class_name(value, names, at), row, at)
    if rows.skipped and not len(rows):
        raise DataError(f"{where}: no rows with text (all {len(rows.skipped)} rows have empty text)")
    return rows.labeled(where)


def corpus_from_hf(
    name: str,
    dataset_dict: Any,
    text_column: str = "text",
    label_column: str = "label",
    *,
    strict_rows: bool = False,
    source: str | None = None,
    allow_empty_labels: bool = False,
) -> Corpus:
    """Convert a `datasets.DatasetDict` (train / validation / test) to a Corpus.

    A `ClassLabel` label column gives the label names and their order; otherwise labels are the
    sorted distinct training values. A test split labelled -1 throughout (GLUE-style hidden test
    labels) is dropped, since it cannot be scored. Rows with empty text are skipped (one warning
    per split) as in files; their numbers are rows of the split, from 1. `source` prefixes every
    message (default `hub:NAME`). A label column of lists (a `Sequence`/`List` of ClassLabel ids,
    or of names) makes a multi-label corpus; `allow_empty_labels` accepts rows whose list is empty.
    """
    renames = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}
    source = source or f"hub:{name}"
    if "train" not in dataset_dict:
        raise DataError(f"{source}: no 'train' split (splits: {', '.join(dataset_dict)})")
    label_names: tuple[str, ...] | None = None
    splits: dict[str, LabeledTexts] = {}
    for hf_split, ours in renames.items():
        if hf_split not in dataset_dict or ours in splits:
            continue
        part = dataset_dict[hf_split]
        where = f"{source}/{hf_split}"
        for column in (text_column, label_column):
            if column not in part.column_names:
                raise DataError(f"{where}: no column {column!r} (columns: {', '.join(part.column_names)})")
        feature = part.features[label_column]
        # A list column (`Sequence`/`List`) describes its elements in `.feature`.
        element = getattr(feature, "feature", feature)
        names = getattr(element, "names", None)  # a ClassLabel: ints in the data, names in the schema
        if names and label_names is None:
            label_names = tuple(str(n) for n in names)
        raw_labels = list(part[label_column])
        if names and ours != "train" and raw_labels and all(value == -1 for value in raw_labels):
            continue
        splits[ours] = _hf_rows(
            list(part[text_column]), raw_labels, names, where, strict_rows, allow_empty_labels
        )
    if not splits["train"]:
        raise DataError(f"{source}/train: no rows")
    if label_names is None:
        label_names = tuple(sorted(_label_set(splits["train"].labels)))
    else:
        for data in splits.values():
            _check_known_labels(data, label_names, "the ClassLabel names")
    _check_seen_in_train(splits)
    multi_label = splits["train"].multi_label
    splits = {ours: _in_label_order(data, label_names) for ours, data in splits.items()}
    for data in splits.values():
        _warn_skipped(data, unit="row")  # after the checks, so a refused dataset does not also warn
    if set(splits) == {"train"}:
        splits = {"all": splits["train"]}
    registered = next((s for s in REGISTRY.values() if s.hub_id == name), None)
    tokenizer = registered.tokenizer if registered else DEFAULT_TOKENIZER
    return Corpus(name, label_names, splits, tokenizer, source, multi_label=multi_label)


def load_hub(
    hub_id: str,
    text_column: str = "text",
    label_column: str = "label",
    *,
    strict_rows: bool = False,
    allow_empty_labels: bool = False,
) -> Corpus:
    """Fetch a corpus from the Hugging Face Hub through `datasets` (online machines only);
    `owner/name:config` names one configuration of a dataset that has several (UMSAB's languages)."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"hub:{hub_id}: loading from the Hub needs the `datasets` package (pip install datasets)"
        ) from None
    try:
        repo, _, config = hub_id.partition(":")
        dataset_dict = datasets.load_dataset(repo, config or None)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(
            f"hub:{hub_id}: cannot load from the Hugging Face Hub ({type(exc).__name__}: {first_line}); "
            f"check the id and the network, or use local files"
        ) from None
    if not isinstance(dataset_dict, Mapping):
        raise DataError(f"hub:{hub_id}: expected a dataset with named splits")
    return corpus_from_hf(
        hub_id,
        dataset_dict,
        text_column,
        label_column,
        strict_rows=strict_rows,
        allow_empty_labels=allow_empty_labels,
    )


# `datasets`' packaged builders for a single data file given as --dataset (a folder is left to
# `load_dataset` itself, which picks the builder from the files and the splits from their names).
_HF_BUILDERS: dict[str, tuple[str, dict[str, str]]] = {
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".ndjson": ("json", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".parquet": ("parquet", {}),
}


def _first_lines(exc: BaseException) -> str:
    """`Type: first line` of an exception and of its root cause, which says what was wrong.

    `datasets` wraps a file it cannot parse in `DatasetGenerationError: An error occurred while
    generating the dataset`; only the cause (from pyarrow or pandas) names the problem.
    """
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    parts = [exc] if root is exc else [exc, root]
    return "; ".join(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}" for e in parts)


def load_local(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str = "label",
    *,
    strict_rows: bool = False,
    allow_empty_labels: bool = False,
) -> Corpus:
    """A dataset on this machine, read through `datasets` and converted as a Hub one is.

    `path` is a folder written by `save_to_disk` (read with `load_from_disk`), a folder of data
    files (`load_dataset(folder)`: `train`/`validation`/`dev`/`test` in the file names give the
    splits), or one data file (a single split, so cross-validated). `datasets`' progress bars are
    off while loading, since the library does not print: the CLI's own lines would drown in them.
    """
    path = Path(path).expanduser()
    source = f"local:{path}"
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{source}: a local dataset is read with the `datasets` package (pip install datasets); "
            "or give a JSON Lines, CSV or TSV file with --train"
        ) from None
    saved = (path / datasets.config.DATASETDICT_JSON_FILENAME).is_file() or (
        (path / datasets.config.DATASET_INFO_FILENAME).is_file()
        and (path / datasets.config.DATASET_STATE_JSON_FILENAME).is_file()
    )
    if path.is_file() and path.suffix.lower() not in _HF_BUILDERS:
        known = ", ".join(_HF_BUILDERS)
        raise DataError(f"{source}: unknown data file type {path.suffix or '(no suffix)'!r}; use {known}")
    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        if saved:
            loaded = datasets.load_from_disk(str(path))
        elif path.is_file():
            builder, options = _HF_BUILDERS[path.suffix.lower()]
            loaded = datasets.load_dataset(builder, data_files={"train": str(path)}, **options)
        else:
            loaded = datasets.load_dataset(str(path))
    except datasets.data_files.EmptyDatasetError:
        raise DataError(
            f"{source}: not a dataset folder (no `save_to_disk` files, and no data files `datasets` reads)"
        ) from None
    except Exception as exc:  # `datasets` raises many kinds; the user needs the first line of any
        raise DataError(f"{source}: cannot load with `datasets` ({_first_lines(exc)})") from None
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    if not isinstance(loaded, Mapping):  # a single `Dataset` saved to disk: one split, like one file
        loaded = {"train": loaded}
    return corpus_from_hf(
        str(path),
        loaded,
        text_column,
        label_column,
        strict_rows=strict_rows,
        source=source,
        allow_empty_labels=allow_empty_labels,
    )
