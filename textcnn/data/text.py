"""The vocabulary, the one encode-and-pad path, and what a tokenizer made of the texts (coverage).

Training, evaluation, the CLI and the service all turn text into model input through
`TextEncoder`: a registered tokenizer (`textcnn.data.tokenizers`) and the vocabulary of the
training split, so what the model saw in training is exactly what it sees when serving. The
encoder gives tokens (with their spans in the text) and ids together (`encode_tokens`), so an
explanation never re-derives what the model read.

Coverage: the share of a text's tokens the vocabulary knows. A text with none known (no token
at all, or only unknown ones) is *unread*: the model's answer for it is its biases, and every
prediction says so instead of showing a label (`coverage`). So is a text whose known tokens are
all punctuation (a Russian sentence known only by its "!"): its coverage is 0, since a label made
of its punctuation alone would be read from none of its words. Training checks what the tokenizer made
of the training texts (`TokenizerReport`) and refuses data it cannot read.
Plain Python rather than torchtext: torchtext's last release (0.18) is built against torch 2.3
and cannot load with current torch.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np
import regex
import torch

from textcnn.data.tokenizers import Token, Tokenizer, TokenizerConfig
from textcnn.errors import BundleError, ConfigError, DataError

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1
WORDLIKE = regex.compile(r"[\p{L}\p{M}\p{N}\p{S}]")  # a word, a number or a symbol: not punctuation alone


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
        _check_limits(min_count, max_size)
        return cls.from_counts(
            Counter(token for tokens in tokenized for token in tokens), min_count, max_size
        )

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """`build`'s vocabulary from each token's count in the training texts (`counts` is not changed)."""
        _check_limits(min_count, max_size)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count and t != PAD and t != UNK),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([PAD, UNK, *kept], {t: int(counts[t]) for t in kept})

    def __len__(self) -> int:
        return len(self.itos)

    @cached_property
    def words(self) -> frozenset[int]:
        """The ids of the tokens that hold a letter, mark, digit or symbol (an emoji): all but the
        punctuation runs (and `<pad>`, `<unk>`). A text is read through these (`coverage`)."""
        return frozenset(i for i, token in enumerate(self.itos) if i > UNK_ID and WORDLIKE.search(token))

    @cached_property
    def word_mask(self) -> np.ndarray:
        """`words` as a boolean per id, for reading many texts' ids at once."""
        mask = np.zeros(len(self.itos), dtype=bool)
        mask[list(self.words)] = True
        return mask

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


def _check_limits(min_count: int, max_size: int | None) -> None:
    if min_count < 1:
        raise ConfigError(f"min_count must be >= 1, got {min_count}")
    if max_size is not None and max_size < 2:
        raise ConfigError(f"max_size must be >= 2 (room for {PAD} and {UNK}), got {max_size}")


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


def coverage(ids: Sequence[int], dropped: int = 0, words: Container[int] | None = None) -> float:
    """The share of a text's tokens the vocabulary knows: its known ids over its ids and the words
    its tokenizer dropped (`Tokenizer.dropped`); 0 for a text encoded as the lone `<unk>` of a
    text with no token, and, given the vocabulary's `words`, for a text none of whose known ids is
    one of them (known only by its punctuation: unread)."""
    known = sum(1 for i in ids if i != UNK_ID)
    if words is not None and not any(i in words for i in ids):
        return 0.0
    return known / (len(ids) + dropped) if known else 0.0


@dataclass(frozen=True)
class Encoded:
    """One text as the model reads it: its tokens (with spans) and their ids, truncated alike.

    A text with no token is encoded as one `<unk>` (every text gets a prediction); `tokens` then
    holds the placeholder `<unk>` at span (0, 0), so tokens and ids always align."""

    tokens: list[Token]
    ids: list[int]
    dropped: int = 0  # words the tokenizer could not read (`Tokenizer.dropped`)
    words: Container[int] | None = field(default=None, repr=False, compare=False)  # `Vocabulary.words`

    @property
    def known(self) -> list[bool]:
        return [i != UNK_ID for i in self.ids]

    @property
    def coverage(self) -> float:
        return coverage(self.ids, self.dropped, self.words)


class TextEncoder:
    """Text -> tokens and ids -> padded batches: the one path every caller uses."""

    def __init__(
        self, vocab: Vocabulary, tokenizer: Tokenizer | TokenizerConfig | str, max_length: int | None = None
    ):
        if max_length is not None and max_length < 1:
            raise ConfigError(f"max_length must be >= 1, got {max_length}")
        if isinstance(tokenizer, str):
            tokenizer = TokenizerConfig.parse(tokenizer)
        if isinstance(tokenizer, TokenizerConfig):
            tokenizer = tokenizer.build()
        if not tokenizer.fitted:
            raise ConfigError(f"the {tokenizer.name} tokenizer must be fitted before it encodes")
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._digests: dict[str, str] | None = None

    def tokenize(self, text: str) -> list[str]:
        """The tokens' texts, untruncated (`encode_tokens` gives what the model reads)."""
        return self.tokenizer.split(text)

    def encode(self, text: str) -> list[int]:
        """Ids of one text; an empty result becomes one `<unk>` so every text gets a prediction."""
        ids = self.vocab.lookup(self.tokenizer.split(text))
        if self.max_length is not None:
            ids = ids[: self.max_length]
        return ids or [UNK_ID]

    def encode_many(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def encode_flat(self, texts: Iterable[str]) -> FlatIds:
        """`encode` of every text, in one streaming pass, as one flat array (no list per text)."""
        buffer, lengths = IdBuffer(), array("q")
        for text in texts:
            ids = self.encode(text)
            buffer.extend(ids)
            lengths.append(len(ids))
        return FlatIds(buffer.finish(), np.frombuffer(lengths, dtype=np.int64))

    def coverage(self, text: str, ids: Sequence[int]) -> float:
        """The coverage of `text`, encoded as `ids` (`encode`): see `coverage`."""
        return coverage(ids, self.tokenizer.dropped(text), self.vocab.words)

    def encode_tokens(self, text: str) -> Encoded:
        """The tokens the model reads, with their spans, and their ids (the same as `encode`)."""
        tokens = self.tokenizer.tokenize(text)
        if self.max_length is not None:
            tokens = tokens[: self.max_length]
        dropped = self.tokenizer.dropped(text)
        if not tokens:
            return Encoded([Token(UNK, 0, 0)], [UNK_ID], dropped, self.vocab.words)
        return Encoded(tokens, self.vocab.lookup([t.text for t in tokens]), dropped, self.vocab.words)

    @staticmethod
    def pad(sequences: Sequence[Sequence[int]], min_length: int = 1) -> Batch:
        """Right-pad to the longest sequence (at least `min_length`, e.g. the widest filter)."""
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        width = max(min_length, int(lengths.max()) if len(lengths) else 0)
        # One copy of every id into its place (row-major, as the mask orders them), not a tensor
        # per row: a tenth of the service's and `predict`'s per-text cost went to the per-row way.
        flat = np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
        ids = np.full((len(sequences), width), PAD_ID, dtype=np.int64)
        ids[np.arange(width)[None, :] < lengths[:, None]] = flat
        return Batch(torch.from_numpy(ids), torch.from_numpy(lengths))

    @property
    def tokenizer_config(self) -> TokenizerConfig:
        return self.tokenizer.config

    def files(self) -> dict[str, bytes]:
        """The tokenizer's own files (a learned one's model), as a bundle stores them."""
        return self.tokenizer.files()

    def to_json(self) -> dict:
        """The bundle's `text` section: the tokenizer (name, options, its files' sha256) and truncation."""
        if self._digests is None:
            self._digests = {name: hashlib.sha256(data).hexdigest() for name, data in self.files().items()}
        tokenizer = self.tokenizer_config.to_json() | (
            {"files": dict(self._digests)} if self._digests else {}
        )
        return {"tokenizer": tokenizer, "max_length": self.max_length}

    @staticmethod
    def tokenizer_of(section: dict) -> tuple[TokenizerConfig, dict[str, str]]:
        """(the tokenizer, its files' sha256 by name) a bundle's `text` section names. A section
        without a tokenizer is from a bundle saved before tokenizers were registered: Kim's
        clean_str, with its `lowercase` flag, which is what those bundles were trained with."""
        if "tokenizer" not in section:
            return TokenizerConfig.of("kim", lowercase=bool(section.get("lowercase", True))), {}
        spec = section["tokenizer"]
        config = TokenizerConfig.from_json(spec)
        files = spec.get("files") or {}
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ConfigError(f"the tokenizer's files must map names to sha256 digests, got {files!r}")
        return config, dict(files)


def fit_tokenizer(config: TokenizerConfig, texts: Iterable[str]) -> Tokenizer:
    """A tokenizer of `config`, fitted on `texts` (the training split's) if it is a learned one.

    A learned tokenizer is fitted once per training split: the runs of one fold (an ensemble's
    members, a mixed bundle's, a study's arms) share it, so they share one vocabulary. The cache
    is keyed on a sha256 streamed over the texts, not on the texts themselves: holding a tuple of
    every training text (what the key once was) cost more memory than the rest of a run's data."""
    if not config.learned:
        return config.build()
    digest = hashlib.sha256()
    count = 0
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))  # lengths first: no two splits hash alike
        digest.update(encoded)
        count += 1
    key = (config, count, digest.hexdigest())
    for cached_key, tokenizer in _FITTED:
        if cached_key == key:
            return tokenizer
    tokenizer = config.build()
    tokenizer.fit(iter(texts))
    _FITTED.insert(0, (key, tokenizer))
    del _FITTED[4:]
    return tokenizer


_FITTED: list[tuple[tuple, Tokenizer]] = []  # the last few fitted, newest first

# Above this many bytes of token ids, a split's flat ids are kept in a temporary file mapped into
# memory (deleted with the array) instead of in RAM: 512 MiB is 128 million tokens, about six
# million texts of SST-2's length (21 tokens on average), so the benchmarks never touch the disk.
MEMMAP_BYTES = 512 * 2**20


class IdBuffer:
    """Token ids appended text by text: an `array('i')` (4 bytes an id, no object per id), moved
    into a temporary file each time it reaches `MEMMAP_BYTES`; `finish` gives the ids as one array
    (a memory map of that file once anything was moved there)."""

    def __init__(self, limit: int = MEMMAP_BYTES):
        self._ids = array("i")
        self._limit = max(limit // self._ids.itemsize, 1)
        self._file = None
        self._spilled = 0  # ids already in the file

    def extend(self, ids: Iterable[int]) -> None:
        self._ids.extend(ids)
        if len(self._ids) >= self._limit:
            if self._file is None:
                # No name: the file is gone once closed and unmapped; it outlives this block on purpose.
                self._file = tempfile.TemporaryFile(prefix="textcnn-ids-")  # noqa: SIM115
            self._ids.tofile(self._file)
            self._spilled += len(self._ids)
            self._ids = array("i")

    def append(self, value: int) -> None:
        self._ids.append(value)

    def finish(self) -> np.ndarray:
        """(T,) int32, writable (the training pass maps its ids in place)."""
        if self._file is None:
            return np.frombuffer(self._ids, dtype=np.int32)
        self._ids.tofile(self._file)
        total = self._spilled + len(self._ids)
        self._file.flush()
        self._ids = array("i")
        # The map keeps its own descriptor: the file lives as long as the array, then is freed.
        ids = np.memmap(self._file, dtype=np.int32, mode="r+", shape=(total,))
        self._file.close()
        return ids


@dataclass(frozen=True)
class FlatIds:
    """Encoded texts one after another: text i's ids are `tokens[starts[i] : starts[i] + lengths[i]]`."""

    tokens: np.ndarray  # (T,) int32
    lengths: np.ndarray  # (N,) int64, each >= 1 (a text with no token is one <unk>)

    @property
    def starts(self) -> np.ndarray:
        return np.cumsum(self.lengths) - self.lengths  # (N,) int64


def encode_training_texts(
    tokenizer: Tokenizer,
    texts: Iterable[str],
    min_count: int = 1,
    max_size: int | None = None,
    max_length: int | None = None,
    where: Callable[[int], str] | None = None,
) -> tuple[Vocabulary, FlatIds, TokenizerReport]:
    """The training texts' vocabulary (`Vocabulary.build`'s), their ids (`TextEncoder.encode`'s)
    and the `TokenizerReport`, from one pass over the texts that keeps no list per text.

    Each token gets a provisional id as it first appears (1, 2, ...; 0 stands for the `<unk>` of a
    text with no token), the texts' provisional ids go into one flat int32 buffer, the counts come
    from `numpy.bincount` over it (plus the tokens truncation cut off, which count but are not
    kept), and the buffer is then mapped in place to the vocabulary's ids. `where(i)` names text i
    (`file:line`) in the report."""
    _check_limits(min_count, max_size)
    if max_length is not None and max_length < 1:
        raise ConfigError(f"max_length must be >= 1, got {max_length}")
    provisional: dict[str, int] = {}
    cut: Counter[int] = Counter()  # provisional id -> its occurrences past max_length
    buffer, lengths = IdBuffer(), array("q")
    empty: list[int] = []
    empty_count = tokens = 0
    letters = _LetterCount()
    split, assign = tokenizer.split, provisional.setdefault
    for i, text in enumerate(texts):
        if i < REPORT_SAMPLE:
            letters.add(tokenizer, text)
        ids = [assign(token, len(provisional) + 1) for token in split(text)]
        tokens += len(ids)
        if not ids:
            empty_count += 1
            if len(empty) < 10:
                empty.append(i)
            buffer.append(0)
            lengths.append(1)
            continue
        if max_length is not None and len(ids) > max_length:
            cut.update(ids[max_length:])
            del ids[max_length:]
        buffer.extend(ids)
        lengths.append(len(ids))
    flat = buffer.finish()
    counts = np.bincount(flat, minlength=len(provisional) + 1)  # (P + 1,) int64
    for pid, extra in cut.items():
        counts[pid] += extra
    vocab = Vocabulary.from_counts(
        {token: int(counts[pid]) for token, pid in provisional.items()}, min_count, max_size
    )
    table = np.full(len(provisional) + 1, UNK_ID, dtype=np.int32)  # provisional -> final id
    stoi = vocab.stoi
    for token, pid in provisional.items():
        table[pid] = stoi.get(token, UNK_ID)
    del provisional
    step = 1 << 22  # in place, 16 MiB at a time: no second copy of the ids
    for start in range(0, len(flat), step):
        flat[start : start + step] = table[flat[start : start + step]]
    report = TokenizerReport(
        tokenizer=str(tokenizer.config),
        texts=len(lengths),
        tokens=tokens,
        vocab_size=len(vocab) - 2,
        empty=tuple((where(i) if where else f"text {i + 1}") for i in empty),
        empty_count=empty_count,
        letters_kept=letters.share,
        commonest=_commonest(vocab),
    )
    return vocab, FlatIds(flat, np.frombuffer(lengths, dtype=np.int64)), report


class _LetterCount:
    """The letters and digits of some texts, and how many of them some token covers."""

    LETTER = regex.compile(r"[\p{L}\p{N}]")

    def __init__(self) -> None:
        self.seen = self.kept = 0

    def add(self, tokenizer: Tokenizer, text: str) -> None:
        covered = bytearray(len(text))
        for t in tokenizer.tokenize(text):
            covered[t.start : t.end] = b"\x01" * (t.end - t.start)
        for m in self.LETTER.finditer(text):
            self.seen += 1
            self.kept += covered[m.start()]

    @property
    def share(self) -> float | None:
        return self.kept / self.seen if self.seen else None


def _commonest(vocab: Vocabulary) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(vocab.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10])


# The share of the training texts' letters and digits a tokenizer must keep, and of the texts
# that must give a token, below which training refuses the data (Kim's clean_str on Russian keeps
# none of its letters: a vocabulary of `,` and `!` would train to chance, silently).
MIN_LETTERS_KEPT = 0.5
MIN_TEXTS_READ = 0.5
REPORT_SAMPLE = 20_000  # texts the letter count reads (the first ones: cheap on any size of data)


@dataclass(frozen=True)
class TokenizerReport:
    """What a tokenizer made of the training texts: the first thing `textcnn train` prints."""

    tokenizer: str  # as `--tokenizer` takes it
    texts: int
    tokens: int
    vocab_size: int  # without <pad> and <unk>
    empty: tuple[str, ...]  # where each text that gave no token is (`file:line`), at most 10
    empty_count: int
    letters_kept: float | None  # the share of letters and digits inside some token (None: no letters)
    commonest: tuple[tuple[str, int], ...] = field(default=())

    def to_json(self) -> dict:
        return {
            "tokenizer": self.tokenizer,
            "texts": self.texts,
            "tokens": self.tokens,
            "vocab_size": self.vocab_size,
            "empty_texts": self.empty_count,
            "letters_kept": self.letters_kept,
            "commonest": [list(pair) for pair in self.commonest],
        }

    def summary(self) -> str:
        letters = (
            "" if self.letters_kept is None else f", {self.letters_kept:.1%} of their letters and digits read"
        )
        empty = ""
        if self.empty_count:
            listed = ", ".join(self.empty[:3]) + (", ..." if self.empty_count > 3 else "")
            empty = f"; {self.empty_count:,} gave no token ({listed})"
        common = " ".join(token for token, _ in self.commonest[:10])
        return (
            f"tokenizer {self.tokenizer}: {self.texts:,} training texts, {self.tokens:,} tokens, "
            f"vocabulary {self.vocab_size:,}{letters}{empty}; commonest: {common}"
        )

    def check(self) -> None:
        """Refuse, in one line naming `--tokenizer`, training texts this tokenizer cannot read."""
        problems = []
        if self.letters_kept is not None and self.letters_kept < MIN_LETTERS_KEPT:
            problems.append(f"it reads {self.letters_kept:.0%} of their letters and digits")
        if self.texts and self.empty_count / self.texts > MIN_TEXTS_READ:
            problems.append(f"{self.empty_count / self.texts:.0%} of them give no token")
        if self.vocab_size == 0:
            problems.append("they give no token at all")
        if problems:
            name = TokenizerConfig.parse(self.tokenizer).name
            hint = "--tokenizer unicode (any script)" if name == "kim" else "another --tokenizer"
            raise DataError(
                f"--tokenizer {self.tokenizer} cannot read these training texts: {' and '.join(problems)} "
                f"(vocabulary of {self.vocab_size}: {' '.join(t for t, _ in self.commonest[:5]) or 'empty'}); "
                f"use {hint}"
            )


def tokenizer_report(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    tokenized: Sequence[Sequence[str]],
    vocab: Vocabulary,
    where: Sequence[str] | None = None,
) -> TokenizerReport:
    """What `tokenizer` made of `texts` (`tokenized`: each text's tokens; `vocab`: their vocabulary);
    `where[i]` names text i (`file:line`) for those that gave no token. The letters and digits kept
    are counted on the first `REPORT_SAMPLE` texts."""
    letters = _LetterCount()
    for text in texts[:REPORT_SAMPLE]:
        letters.add(tokenizer, text)
    empty = [i for i, tokens in enumerate(tokenized) if not tokens]
    tokens = sum(len(t) for t in tokenized)
    return TokenizerReport(
        tokenizer=str(tokenizer.config),
        texts=len(texts),
        tokens=tokens,
        vocab_size=len(vocab) - 2,
        empty=tuple((where[i] if where else f"text {i + 1}") for i in empty[:10]),
        empty_count=len(empty),
        letters_kept=letters.share,
        commonest=_commonest(vocab),
    )
