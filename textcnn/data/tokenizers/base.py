"""What every tokenizer gives: tokens with their character spans in the original text.

A `Token` is what the model reads (`text`, normalized: lowercased, NFKC, a URL as `http`) and
where it came from (`start`, `end`: code-point offsets into the text as given, so `text[start:end]`
is the original spelling the page shades and `explain` points at). `split` is the same tokens'
texts without their spans, the fast path training and serving encode with; the tests hold the two
to the same tokens for every registered tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from textcnn.data.tokenizers.registry import TokenizerConfig


class Token(NamedTuple):
    text: str  # as the model reads it
    start: int  # its span in the original text: text[start:end], in code points
    end: int


class Tokenizer:
    """A tokenizer built by its registry entry (`TokenizerConfig.build`) from its options.

    A learned one (`entry.learned`) is fitted on the training texts (`fit`) before it tokenizes,
    and its state is files that travel in the bundle (`files`, restored by `restore`)."""

    name: str = ""

    def __init__(self, options: dict[str, Any]):
        self.options = dict(options)

    @property
    def config(self) -> TokenizerConfig:
        """The registry's name and every option: what a bundle records to build it again."""
        from textcnn.data.tokenizers.registry import TokenizerConfig

        return TokenizerConfig(self.name, tuple(self.options.items()))

    def tokenize(self, text: str) -> list[Token]:
        raise NotImplementedError

    def split(self, text: str) -> list[str]:
        """The tokens' texts, without spans: what encoding needs."""
        return [token.text for token in self.tokenize(text)]

    def dropped(self, text: str) -> int:
        """How many words of `text` this tokenizer cannot read (drops, or cuts through): they count
        as unknown in a prediction's coverage. 0 for a tokenizer that keeps every letter."""
        return 0

    # -- learned tokenizers -------------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        return True

    def fit(self, texts: Iterable[str]) -> None:
        """Learn from the training texts (a rule-based tokenizer has nothing to learn)."""

    def files(self) -> dict[str, bytes]:
        """The files its state needs in a bundle, by file name (none for a rule-based one)."""
        return {}

    def restore(self, files: dict[str, bytes]) -> None:
        """Take back the state `files` gave (a bundle's copy, its sha256 already checked)."""
        if files:
            raise ValueError(f"tokenizer {self.name!r} keeps no files, got {sorted(files)}")
