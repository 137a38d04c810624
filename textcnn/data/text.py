"""Tokenizing, the vocabulary, and the one encode-and-pad path.

Training, evaluation, the CLI and the service all turn text into model input through
`TextEncoder`, so what the model saw in training is exactly what it sees when serving.
Plain Python rather than torchtext: torchtext's last release (0.18) is built against torch 2.3
and cannot load with current torch.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from textcnn.errors import BundleError, ConfigError

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1

# Kim (2014)'s clean_str (github.com/yoonkim/CNN_sentence, process_data.py): keep a small
# character set, split clitics the way the word2vec/GloVe vocabularies spell them ("it 's",
# "does n't"), and put spaces around punctuation.
_NOT_KEPT = re.compile(r"[^A-Za-z0-9(),!?\'\`]")
_CLITICS = [
    (re.compile(r"\'s"), " 's"),
    (re.compile(r"\'ve"), " 've"),
    (re.compile(r"n\'t"), " n't"),
    (re.compile(r"\'re"), " 're"),
    (re.compile(r"\'d"), " 'd"),
    (re.compile(r"\'ll"), " 'll"),
]
_PUNCTUATION = [
    (re.compile(r","), " , "),
    (re.compile(r"!"), " ! "),
    (re.compile(r"\("), " ( "),
    (re.compile(r"\)"), " ) "),
    (re.compile(r"\?"), " ? "),
]


def clean_str(text: str, lowercase: bool = True) -> str:
    """Kim's normalisation. TREC keeps case (Kim's `TREC=True`); everything else is lowercased."""
    text = _NOT_KEPT.sub(" ", text)
    for pattern, replacement in _CLITICS + _PUNCTUATION:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    return text if not lowercase else text.lower()


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    return clean_str(text, lowercase).split()


class Vocabulary:
    """Token <-> id map with `<pad>` = 0 and `<unk>` = 1; built from the training split only."""

    def __init__(self, tokens: Sequence[str], counts: dict[str, int] | None = None):
        if len(tokens) < 2 or tokens[PAD_ID] != PAD or tokens[UNK_ID] != UNK:
            raise ConfigError(f"a vocabulary must start with {PAD!r}, {UNK!r}")
        if len(set(tokens)) != len(tokens):
            raise ConfigError("a vocabulary must not list a token twice")
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(self.itos)}
        self.counts: dict[str, int] = dict(counts or {})

    @classmethod
    def build(
        cls, tokenized: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Most frequent first (ties alphabetical, so the ids never depend on input order)."""
        if min_count < 1:
            raise ConfigError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 2:
            raise ConfigError(f"max_size must be >= 2 (room for {PAD} and {UNK}), got {max_size}")
        counter = Counter(token for tokens in tokenized for token in tokens)
        counter.pop(PAD, None)
        counter.pop(UNK, None)
        kept = sorted((t for t, c in counter.items() if c >= min_count), key=lambda t: (-counter[t], t))
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([PAD, UNK, *kept], {t: counter[t] for t in kept})

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def lookup(self, tokens: Sequence[str]) -> list[int]:
        get = self.stoi.get
        return [get(token, UNK_ID) for token in tokens]

    def to_json(self) -> dict:
        return {"tokens": self.itos, "counts": [self.counts.get(t, 0) for t in self.itos]}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        tokens, counts = data["tokens"], data.get("counts") or [0] * len(data["tokens"])
        return cls(tokens, {t: c for t, c in zip(tokens, counts, strict=True) if c})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{path}: not a readable vocabulary ({exc})") from None


@dataclass(frozen=True)
class Batch:
    """Padded token ids and the true lengths; padding positions hold `PAD_ID`."""

    ids: torch.Tensor  # (B, T) int64
    lengths: torch.Tensor  # (B,) int64, each >= 1

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.ids.to(device, non_blocking=True), self.lengths.to(device, non_blocking=True))


def similar_length_chunks(
    lengths: Sequence[int], max_rows: int, max_tokens: int | None = None, min_length: int = 1
) -> list[list[int]]:
    """Indices sorted by length, cut into batches that waste little on padding.

    Prediction pads each batch to its longest member, so a batch mixing 5- and 50-token texts
    would be mostly padding; a chunk is therefore closed once padding it would cost more than a
    quarter of extra work (plus a little slack, so short texts still batch), once it has
    `max_rows` members, or once rows x padded length would pass `max_tokens` (a memory bound: one
    2,000-token text never pads 2,000 short ones). A text longer than `max_tokens` goes alone.
    Padding changes no prediction (every pooling is masked); this is only about speed and memory.
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        width = max(lengths[i], min_length)  # the widest so far: sorted ascending
        if current and (
            len(current) >= max_rows
            or (len(current) + 1) * width > 1.25 * (tokens + width) + 64
            or (max_tokens is not None and (len(current) + 1) * width > max_tokens)
        ):
            chunks.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += width
    if current:
        chunks.append(current)
    return chunks


class TextEncoder:
    """Text -> token ids -> padded batches: the one path every caller uses."""

    def __init__(self, vocab: Vocabulary, lowercase: bool = True, max_length: int | None = None):
        if max_length is not None and max_length < 1:
            raise ConfigError(f"max_length must be >= 1, got {max_length}")
        self.vocab = vocab
        self.lowercase = lowercase
        self.max_length = max_length

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.lowercase)

    def encode(self, text: str) -> list[int]:
        """Ids of one text; an empty result becomes one `<unk>` so every text gets a prediction."""
        ids = self.vocab.lookup(self.tokenize(text))
        if self.max_length is not None:
            ids = ids[: self.max_length]
        return ids or [UNK_ID]

    def encode_many(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    @staticmethod
    def pad(sequences: Sequence[Sequence[int]], min_length: int = 1) -> Batch:
        """Right-pad to the longest sequence (at least `min_length`, e.g. the widest filter)."""
        lengths = [len(seq) for seq in sequences]
        width = max([min_length, *lengths])
        ids = torch.full((len(sequences), width), PAD_ID, dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        return Batch(ids, torch.as_tensor(lengths, dtype=torch.long))

    def to_json(self) -> dict:
        return {"lowercase": self.lowercase, "max_length": self.max_length}
