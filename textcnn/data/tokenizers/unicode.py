"""`unicode`: any language, any script, emoji, with no training: the default for user data.

The text is cut on the original (so every token keeps its span), then each token is normalized
alone (NFKC, and casefold unless `lowercase=false`). In order of precedence at each position:

- a URL (`http://...`, `https://...`, `www....`) is the one token `http`, and an @handle `@user`,
  as XLM-T's tweets spell them (UMSAB's files hold them so): a model trained there reads live
  tweets the same way;
- an emoji sequence is one token: one extended grapheme cluster starting with a pictographic
  character or a regional indicator, so skin tones, ZWJ families, flags and keycaps stay whole;
- a letter, mark or digit of a script written without spaces (Han, Hiragana, Katakana, Thai, Lao,
  Khmer, Myanmar) is one token per grapheme cluster (`characters=true`): filter widths 2-5 then
  see character n-grams, the usual unit for Chinese and Japanese text CNNs. `characters=false`
  keeps such runs whole instead (what the `subword` tokenizer splits further);
- a word is a run of letters, marks and digits (`\\p{L}\\p{M}\\p{N}`: Devanagari's vowel signs and
  virama, Arabic's harakat stay inside their word, where Python's `re` `\\w` would split them),
  with ZWNJ/ZWJ kept between letters (Persian, Indic scripts);
- a punctuation or symbol character is a token, repeats of it one token (`!!!`, `...`);
- everything else (spaces, control and format characters, unassigned code points) separates.

So no letter, mark or digit is ever dropped: each lies inside some token's span (the tests check
this with Hypothesis over many scripts).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from textcnn.data.tokenizers.base import Token, Tokenizer

NO_SPACE_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
URL_TOKEN, USER_TOKEN = "http", "@user"

_NO_SPACE = "[[\\p{L}\\p{M}\\p{N}]&&[" + "".join(f"\\p{{scx={s}}}" for s in NO_SPACE_SCRIPTS) + "]]"
_WORD_CHAR = "[[\\p{L}\\p{M}\\p{N}]--" + _NO_SPACE + "]"
_EMOJI_START = "[\\p{Extended_Pictographic}\\p{Regional_Indicator}]"
_PARTS = {
    "url": r"(?:https?://|www\.)[^\s]+",
    "user": r"(?<![\p{L}\p{M}\p{N}_])@[\p{L}\p{M}\p{N}_]+",
    "emoji": rf"(?={_EMOJI_START})\X|[#*0-9]\uFE0F?\u20E3",
    "cjk": None,  # by `characters`
    "word": rf"{_WORD_CHAR}(?:{_WORD_CHAR}|[\u200c\u200d](?={_WORD_CHAR}))*",
    "punct": rf"(?P<punct_char>(?!{_EMOJI_START})[\p{{P}}\p{{S}}])(?P=punct_char)*",
}


@lru_cache(maxsize=2)
def _pattern(characters: bool):
    import regex

    parts = dict(_PARTS)
    parts["cjk"] = rf"(?={_NO_SPACE})\X" if characters else rf"{_NO_SPACE}+"
    return regex.compile("|".join(f"(?P<{name}>{body})" for name, body in parts.items()), regex.V1)


def normalize(text: str, lowercase: bool = True) -> str:
    """NFKC (full-width forms, ligatures and compatibility characters to their plain form), then
    casefold; whitespace a compatibility form expands to (U+FDFA) is dropped, so a token is one word."""
    if text.isascii():
        return text.lower() if lowercase else text
    text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = unicodedata.normalize("NFKC", text.casefold())
    return "".join(text.split()) or text


class UnicodeTokenizer(Tokenizer):
    name = "unicode"

    def __init__(self, options):
        super().__init__(options)
        self.lowercase = bool(options["lowercase"])
        self.characters = bool(options.get("characters", True))
        self._pattern = _pattern(self.characters)

    def _text(self, match) -> str:
        kind = match.lastgroup
        if kind == "url":
            return URL_TOKEN
        if kind == "user":
            return USER_TOKEN
        return normalize(match.group(), self.lowercase)

    def tokenize(self, text: str) -> list[Token]:
        return [Token(self._text(m), m.start(), m.end()) for m in self._pattern.finditer(text)]

    def split(self, text: str) -> list[str]:
        return [self._text(m) for m in self._pattern.finditer(text)]
