"""`kim`: Kim (2014)'s `clean_str`, unchanged, so every published English figure stays reproducible.

It keeps ASCII letters, digits and `(),!?'`` ` only (every other character becomes a space), splits
clitics the way the word2vec/GloVe vocabularies spell them ("it 's", "does n't") and puts spaces
around punctuation. Text in any other script comes out empty: the coverage check in training and
every prediction's coverage say so (`textcnn.data.text`).
"""

from __future__ import annotations

import re

from textcnn.data.tokenizers.base import Token, Tokenizer

# Kim (2014)'s clean_str (github.com/yoonkim/CNN_sentence, process_data.py).
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
# str.lower() changes only A-Z here (clean_str has dropped everything else), so a lowered copy of
# the original with the same length finds each token where it stood.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def clean_str(text: str, lowercase: bool = True) -> str:
    """Kim's normalisation. TREC keeps case (Kim's `TREC=True`); everything else is lowercased."""
    text = _NOT_KEPT.sub(" ", text)
    for pattern, replacement in _CLITICS + _PUNCTUATION:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    return text if not lowercase else text.lower()


# A run of letters, marks and digits holding any that clean_str drops ("película" holds "í",
# "Привет" is all such): a word Kim's rules cannot read.
_DROPPED_WORD = r"(?V1)[[\p{L}\p{M}\p{N}]--[A-Za-z0-9]]+"


class KimTokenizer(Tokenizer):
    name = "kim"

    def __init__(self, options):
        super().__init__(options)
        self.lowercase = bool(options["lowercase"])

    def split(self, text: str) -> list[str]:
        return clean_str(text, self.lowercase).split()

    def dropped(self, text: str) -> int:
        if text.isascii():
            return 0
        import regex

        return len(regex.findall(_DROPPED_WORD, text))

    def tokenize(self, text: str) -> list[Token]:
        # clean_str only turns characters into spaces and inserts spaces: every token is a run of
        # the original text, in order, with nothing but dropped characters between two tokens.
        tokens = self.split(text)
        haystack = text.translate(_ASCII_LOWER) if self.lowercase else text
        out, cursor = [], 0
        for token in tokens:
            start = haystack.find(token, cursor)
            cursor = start + len(token)
            out.append(Token(token, start, cursor))
        return out
