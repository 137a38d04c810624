"""Scoring one batch of rows: a table in, the same table with the model's answer appended.

What `textcnn predict --input` (`textcnn.inference.stream`) and the Ray pipeline both call, so a
file scored either way gets the same columns. Every input column is kept, unchanged and in order;
the appended columns are `output_columns`: `label` and `score` (null where the row has no label),
`labels` for a multi-label bundle (a JSON list of the given label names, most probable first: JSON
rather than a separated cell because a label name may hold any separator), then on request `top_k`
(a JSON list of `{"label", "score"}`, best first), one `p_<label>` per label and `coverage`, and
last `error`: null for a good row, else why the row has no answer ("empty text", "unread: ...",
a non-string cell, or what a reader found wrong with the line). No row is dropped or reordered.

An input column that holds an output column's name keeps its name; the output column is then
written as `pred_<name>` (`pred_pred_<name>` if that is taken too...), so a labelled file
(`text,label`) scores without renaming anything and its gold `label` sits beside `pred_label`.
`output_columns(classifier, options, input_names)` gives the names actually written.

Encoding (tokenizing) is split from the forward pass (`encode_texts`, then `score_encoded`) so the
tokenizing can run in worker processes while the main process runs the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from textcnn.data.text import UNK_ID
from textcnn.errors import ConfigError

if TYPE_CHECKING:
    from textcnn.data.text import TextEncoder
    from textcnn.inference.classifier import Classifier

EMPTY = "empty text"
UNREAD = "unread: no token known to the model"


@dataclass(frozen=True)
class ScoreOptions:
    text_column: str = "text"
    top_k: int | None = None  # add a `top_k` column: JSON list [{"label":..,"score":..}] of the k best
    probabilities: bool = False  # add one `p_<label>` float column per label
    coverage: bool = True  # add a `coverage` float column (share of tokens known)
    threshold: float | None = None  # multi-label only: replaces the bundle's thresholds
    batch_size: int = 256  # texts per forward pass

    def __post_init__(self):
        if not self.text_column:
            raise ConfigError("the text column needs a name")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ConfigError(f"threshold must be within [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")


def _base_columns(classifier: Classifier, options: ScoreOptions) -> list[tuple[str, pa.DataType]]:
    columns = [("label", pa.string()), ("score", pa.float64())]
    if classifier.multi_label:
        columns.append(("labels", pa.string()))
    if options.top_k is not None:
        columns.append(("top_k", pa.string()))
    if options.probabilities:
        columns += [(f"p_{name}", pa.float64()) for name in classifier.label_names]
    if options.coverage:
        columns.append(("coverage", pa.float64()))
    columns.append(("error", pa.string()))
    return columns


def output_columns(
    classifier: Classifier, options: ScoreOptions, input_names: Sequence[str] = ()
) -> list[tuple[str, pa.DataType]]:
    """The appended columns, in order, as (name, type); named as they are written next to
    `input_names` (an output name an input column holds gets `pred_` in front, see the module)."""
    taken = set(input_names)
    columns = []
    for name, kind in _base_columns(classifier, options):
        while name in taken:
            name = f"pred_{name}"
        taken.add(name)
        columns.append((name, kind))
    if len({name for name, _ in columns}) != len(columns):  # p_<label> of two labels alike
        raise ConfigError("two output columns would share a name; the bundle's label names collide")
    return columns


@dataclass(frozen=True)
class EncodedTexts:
    """A batch's texts as the model reads them, in row order: flat token ids with each row's
    offsets (cheap to send between processes), each row's coverage and, for a row the model is
    not given, why (None for a row to score). An unread row (coverage 0) keeps its ids, unused."""

    ids: np.ndarray  # (total tokens,) int64
    offsets: np.ndarray  # (rows + 1,) int64: row i is ids[offsets[i]:offsets[i + 1]]
    coverage: list[float | None]  # None where the text was not encoded (empty, not a string)
    errors: list[str | None]

    def __len__(self) -> int:
        return len(self.errors)

    def row_ids(self, rows: Sequence[int]) -> list[list[int]]:
        ids, offsets = self.ids, self.offsets
        return [ids[offsets[i] : offsets[i + 1]].tolist() for i in rows]


def text_values(table: pa.Table | pa.RecordBatch, text_column: str) -> tuple[list, str | None]:
    """The text column's cells as Python values, and the column's type when it is not text (each
    non-null cell is then an error, not a text). ConfigError naming the columns if it is absent."""
    not_text = text_type(table.schema, text_column)
    column = table.column(text_column)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.to_pylist(), not_text


def text_type(schema: pa.Schema, text_column: str) -> str | None:
    """None if `schema`'s text column holds text, else its type's name (its cells are then errors);
    ConfigError naming the columns if there is no such column."""
    names = list(schema.names)
    if text_column not in names:
        raise ConfigError(f"no column {text_column!r}; the columns are: {', '.join(names) or '(none)'}")
    kind = schema.field(text_column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return None
    return str(kind)


def encode_texts(encoder: TextEncoder, values: Sequence, not_text: str | None = None) -> EncodedTexts:
    """Tokens ids and coverage of each cell (`text_values`): a null, empty or blank text and a
    cell that is not a string (any cell of a `not_text` column) get an error instead."""
    pieces: list[list[int]] = []
    lengths = np.zeros(len(values), dtype=np.int64)
    dropped = np.zeros(len(values), dtype=np.int64)
    encoded = np.zeros(len(values), dtype=bool)
    errors: list[str | None] = [None] * len(values)
    encode, drops = encoder.encode, encoder.tokenizer.dropped
    for row, value in enumerate(values):
        if value is None or (isinstance(value, str) and not value.strip()):
            errors[row] = EMPTY
        elif not_text is not None or not isinstance(value, str):
            errors[row] = f"text is not a string ({not_text or type(value).__name__})"
        else:
            ids = encode(value)
            pieces.append(ids)
            lengths[row] = len(ids)
            dropped[row] = drops(value)
            encoded[row] = True
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(chain.from_iterable(pieces), dtype=np.int64, count=int(offsets[-1]))
    # Each row's coverage (`textcnn.data.text.coverage`, the same figures) over the flat ids at
    # once: a call per row cost a sixth of the file's time on models/single.
    words = encoder.vocab.word_mask
    rows = np.flatnonzero(encoded)
    starts = offsets[rows]
    known = np.add.reduceat(flat != UNK_ID, starts) if len(rows) else np.zeros(0, dtype=np.int64)
    worded = np.add.reduceat(words[flat], starts) > 0 if len(rows) else np.zeros(0, dtype=bool)
    shares = np.where(known > 0, known / (lengths[rows] + dropped[rows]), 0.0)
    shares[~worded] = 0.0
    coverages: list[float | None] = [None] * len(values)
    for row, share in zip(rows.tolist(), shares.tolist(), strict=True):
        coverages[row] = share
        if share == 0:
            errors[row] = UNREAD
    return EncodedTexts(flat, offsets, coverages, errors)


def score_table(
    classifier: Classifier,
    table: pa.Table | pa.RecordBatch,
    options: ScoreOptions,
    first_row: int = 0,
    *,
    encoded: EncodedTexts | None = None,
    row_errors: Sequence[str | None] | None = None,
) -> pa.Table:
    """`table` with the answer's columns appended (see the module). `first_row` is the row's index
    in its file, named by the error of a row whose cell is not a string. `encoded` is the batch
    already encoded (`encode_texts`, e.g. in a worker); `row_errors` are a reader's findings
    (an undecodable line, broken JSON), which win over any answer for their row."""
    values, not_text = text_values(table, options.text_column)
    if encoded is None:
        encoded = encode_texts(classifier.encoder, values, not_text)
    if len(encoded) != table.num_rows:
        raise ValueError(f"{len(encoded)} encoded rows for a table of {table.num_rows}")
    return score_encoded(classifier, table, encoded, options, first_row, row_errors)


def score_encoded(
    classifier: Classifier,
    table: pa.Table | pa.RecordBatch,
    encoded: EncodedTexts,
    options: ScoreOptions,
    first_row: int = 0,
    row_errors: Sequence[str | None] | None = None,
) -> pa.Table:
    """The forward pass and the appended columns of a batch encoded by `encode_texts`."""
    if options.threshold is not None and not classifier.multi_label:
        raise ConfigError("a threshold is for a multi-label bundle; this one gives one label per text")
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    n = table.num_rows
    names = output_columns(classifier, options, table.schema.names)
    errors = list(encoded.errors)
    if row_errors is not None:
        errors = [mine or theirs for mine, theirs in zip(row_errors, errors, strict=True)]
    errors = [
        f"row {first_row + i}: {e}" if e is not None and e.startswith("text is not") else e
        for i, e in enumerate(errors)
    ]
    scored = [i for i, e in enumerate(errors) if e is None]
    coverages = [encoded.coverage[i] for i in scored]

    logits = classifier.logits_of_ids(encoded.row_ids(scored), options.batch_size)
    from textcnn.model.output import probabilities as to_probabilities

    probabilities = to_probabilities(logits.float(), classifier.multi_label).double().numpy()
    good = np.zeros(n, dtype=bool)
    good[scored] = True
    mask = ~good  # arrow's mask: True is null

    def spread(values: Sequence, kind: pa.DataType) -> pa.Array:
        full = [None] * n
        for i, value in zip(scored, values, strict=True):
            full[i] = value
        return pa.array(full, type=kind)

    if classifier.multi_label:  # which labels a text gets is the bundle's decision
        predictions = classifier.predictions_from_logits(logits, coverages, options.threshold)
        columns: list[pa.Array] = [
            spread([p.label for p in predictions], pa.string()),
            spread([p.score for p in predictions], pa.float64()),
        ]
        given = [json.dumps([name for name, _ in p.labels], ensure_ascii=False) for p in predictions]
        columns.append(spread(given, pa.string()))
    else:  # the most probable class, as `Classifier.predictions_from_logits`, without a dict per row
        best = logits.float().argmax(dim=1).numpy()
        label_names = pa.array(classifier.label_names, type=pa.string())
        index = np.zeros(n, dtype=np.int64)
        index[scored] = best
        score = np.zeros(n)
        score[scored] = probabilities[np.arange(len(scored)), best]
        columns = [
            label_names.take(pa.array(index, mask=mask)),
            pa.array(score, mask=mask),
        ]
    if options.top_k is not None:
        k = min(options.top_k, classifier.num_classes)
        best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        label_names = classifier.label_names
        tops = [
            json.dumps([{"label": label_names[c], "score": float(row[c])} for c in order], ensure_ascii=False)
            for order, row in zip(best.tolist(), probabilities, strict=True)
        ]
        columns.append(spread(tops, pa.string()))
    if options.probabilities:
        full = np.zeros((n, classifier.num_classes))
        full[scored] = probabilities
        columns += [pa.array(full[:, c], mask=mask) for c in range(classifier.num_classes)]
    if options.coverage:
        shares = encoded.coverage
        if row_errors is not None:  # a row the reader could not read whole has no coverage either
            shares = [None if bad else share for share, bad in zip(shares, row_errors, strict=True)]
        columns.append(pa.array(shares, type=pa.float64()))
    columns.append(pa.array(errors, type=pa.string()))
    for (name, _), column in zip(names, columns, strict=True):
        table = table.append_column(name, column)
    return table
