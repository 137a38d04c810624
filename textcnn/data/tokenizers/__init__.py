"""Tokenizers, one registry entry each: text in, tokens with their spans out.

- `registry`: the `TokenizerEntry`, its options, `TokenizerConfig` (a choice of tokenizer and its
  options, as `RunSettings`, studies and bundles hold it) and the registry every list reads;
- `catalog`: the tokenizers shipped (`kim`, `unicode`, `subword`);
- `base`: `Token` and the `Tokenizer` every entry builds;
- `kim`, `unicode`, `subword`: each tokenizer.

Nothing here imports torch; `regex` and `tokenizers` are imported when a tokenizer is built.
"""

from __future__ import annotations

from textcnn.data.tokenizers import catalog  # noqa: F401 - registers the shipped tokenizers
from textcnn.data.tokenizers.base import Token, Tokenizer
from textcnn.data.tokenizers.registry import (
    TOKENIZERS,
    Option,
    TokenizerConfig,
    TokenizerEntry,
    describe,
    get_tokenizer_entry,
    register,
    unregister,
)

# What a registered dataset suggests when it names none, and what files and Hub sets get.
DEFAULT_TOKENIZER = "unicode"

__all__ = [
    "DEFAULT_TOKENIZER",
    "TOKENIZERS",
    "Option",
    "Token",
    "Tokenizer",
    "TokenizerConfig",
    "TokenizerEntry",
    "describe",
    "get_tokenizer_entry",
    "register",
    "unregister",
]
