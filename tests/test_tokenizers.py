"""The tokenizer registry and its tokenizers: properties over many scripts (Hypothesis), the examples
the multilingual issue names, the registry's parsing and errors, the learned `subword` tokenizer, and
train/serve agreement through a saved bundle. Separable Russian and Chinese sets show `unicode` learns
what `kim` refuses to read.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import random
import re
import shutil
from pathlib import Path

import pytest
import regex
from conftest import benchmark_data_dir
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_cli import assert_one_line_error, textcnn

from textcnn.data.text import UNK, UNK_ID, TextEncoder, Vocabulary, fit_tokenizer
from textcnn.data.tokenizers import (
    TOKENIZERS,
    Option,
    Token,
    Tokenizer,
    TokenizerConfig,
    TokenizerEntry,
    describe,
    get_tokenizer_entry,
    register,
    unregister,
)
from textcnn.data.tokenizers.kim import clean_str
from textcnn.data.tokenizers.subword import TOKENIZER_FILE
from textcnn.data.tokenizers.unicode import NO_SPACE_SCRIPTS, normalize
from textcnn.errors import BundleError, ConfigError, DataError
from textcnn.inference.bundle import Classifier
from textcnn.train.config import TrainConfig
from textcnn.train.runs import RunSettings, prepare_run, texts_fold, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

# -- texts in many scripts --------------------------------------------------------------------------

# Each alphabet is a list of atoms: a character, or a sequence that belongs together (a letter and
# its combining mark, an emoji sequence). Texts are runs of atoms from any of them.
EMOJI = ["😀", "👍🏽", "👩🏿\u200d💻", "👨\u200d👩\u200d👧\u200d👦", "🇫🇷", "🇯🇵", "©", "™", "\u2764\ufe0f"]
KEYCAPS = ["1\ufe0f\u20e3", "#\ufe0f\u20e3", "*\u20e3"]
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"
ALPHABETS: dict[str, list[str]] = {
    "ascii": [*"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", *"'`(),!?.-_@#:/"],
    "latin": [*"éèçñüßøÅœĳİıǄﬁ", "e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323"],
    "cyrillic": [*"приветмирЖЁёЯщ", "и\u0306"],
    "greek": [*"αβγδΣσςΩάΐϐ", "α\u0301", "ι\u0308"],
    "arabic": [*"العربيةفارسی", "\u064e", "\u064f", "\u0650", "\u0651", "\u0652", "ﻻ", "\ufdfa"],
    "hebrew": [*"שלוםעברית", "\u05b8", "\u05bc", "\u05b4", "\u05b7"],
    "devanagari": [*"हिन्दीभाषा", "क्ष", "\u094d", "\u093e", "\u0902", "\u093c"],
    "bengali": [*"বাংলাভাষা", "\u09cd", "\u09bf"],
    "tamil": [*"தமிழ்மொழி", "\u0bcd"],
    "thai": [*"ภาษาไทยกข", "\u0e31", "\u0e48", "\u0e33"],
    "lao": [*"ພາສາລາວ", "\u0eb1", "\u0ec8"],
    "khmer": [*"ភាសាខ្មែរ", "\u17d2"],
    "myanmar": [*"မြန်မာစာ", "\u1039", "\u103a"],
    "han": [*"中文日本語漢字的是了々〇"],
    "hiragana": [*"のてきすとがぱ", "\u3099"],
    "katakana": [*"テキストカナーｶﾀﾞ"],
    "hangul": [*"한국어글", "\u1100\u1161\u11a8"],  # conjoining jamo
    "digits": [*"0123456789٠١٢٣۴۵०१২৩௪๕໖០၁１２²½Ⅻ"],
    "emoji": [*EMOJI, *KEYCAPS, RAINBOW_FLAG],
    "punct": [*".,;:!?¡¿…—–-«»“”\"'()[]{}/\\%&*·、。「」！？"],
    "symbols": [*"$€£¥+=<>^~|°§¶†•→∑√∞✓★♥´¨▁"],
    "web": [
        "https://example.com/a?b=1",
        "http://x.org",
        "www.site.fr/page",
        "@user_1",
        "@Bob",
        "bob@mail.com",
    ],
    "space": [" ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2009", "\u2028", "\r\n", "\x1c"],
    "joiners": ["\u200c", "\u200d", "\ufe0f", "\u200b", "\u00ad"],
}
ATOM = st.one_of(
    *(st.sampled_from(atoms) for atoms in ALPHABETS.values()),
    st.characters(exclude_categories=("Cs",)),  # now and then, any code point at all
)
TEXTS = st.lists(ATOM, max_size=40).map("".join)
PROPERTY = settings(max_examples=100, deadline=None)

UNICODE_SPECS = [
    "unicode",
    "unicode:lowercase=false",
    "unicode:characters=false",
    "unicode:lowercase=false,characters=false",
]
LETTER_MARK_DIGIT = regex.compile(r"[\p{L}\p{M}\p{N}]")
PUNCT_SYMBOL = regex.compile(r"[\p{P}\p{S}]")
NO_SPACE_CLASS = r"[[\p{L}\p{M}\p{N}]&&[" + "".join(rf"\p{{scx={s}}}" for s in NO_SPACE_SCRIPTS) + "]]"
NO_SPACE_LETTER = regex.compile(NO_SPACE_CLASS, regex.V1)
URL_START = regex.compile(r"https?://|www\.")
HANDLE = regex.compile(r"@[\p{L}\p{M}\p{N}_]+")
EMOJI_START = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}]")
KEYCAP = regex.compile(r"[#*0-9]\uFE0F?\u20E3")
GRAPHEME = regex.compile(r"\X")
WORD = regex.compile(r"[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}]|[\u200c\u200d](?=[\p{L}\p{M}\p{N}]))*")


def mixed_texts(n: int, seed: int) -> list[str]:
    """`n` texts of 3-30 atoms from every alphabet (no arbitrary code points), repeatably."""
    rng = random.Random(seed)
    alphabets = list(ALPHABETS.values())
    return ["".join(rng.choice(rng.choice(alphabets)) for _ in range(rng.randint(3, 30))) for _ in range(n)]


# French-like words with many inflections: a subword model learns their stems and endings.
STEMS = ["parl", "chant", "mang", "aim", "regard", "travaill", "écout", "préfér", "étudi", "développ"]
STEMS += ["oubli", "cré", "jou", "pens", "rêv", "trouv", "demand", "pass", "rest", "arriv"]
ENDINGS = ["e", "es", "ons", "ez", "ent", "er", "é", "ée", "és", "ées", "ais", "ait", "ions", "iez"]
ENDINGS += ["aient", "erai", "eras", "era", "erons", "erez", "eront", "ant", "ement", "eur", "euse", "ation"]
SMALL_WORDS = ["le", "la", "les", "un", "une", "des", "et", "mais", "très", "à", "où", "ça", "l'", "qu'"]


def french_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        words = [
            rng.choice(SMALL_WORDS) if rng.random() < 0.3 else rng.choice(STEMS) + rng.choice(ENDINGS)
            for _ in range(rng.randint(4, 12))
        ]
        if rng.random() < 0.5:
            words[0] = words[0].capitalize()
        texts.append(" ".join(words) + rng.choice([".", " !", "?", "…", ""]))
    return texts


FIT_TEXTS = french_texts(300) + mixed_texts(100, seed=1)


@functools.cache
def tokenizer(spec: str) -> Tokenizer:
    """The tokenizer `spec` names, fitted on `FIT_TEXTS` if it is learned (built once per spec)."""
    built = TokenizerConfig.parse(spec).build()
    if built.config.learned:
        built.fit(FIT_TEXTS)
    return built


def original(text: str, token: Token) -> str:
    return text[token.start : token.end]


def is_url_or_handle(text: str, token: Token) -> bool:
    span = original(text, token)
    return (token.text == "http" and URL_START.match(span) is not None) or (
        token.text == "@user" and span.startswith("@")
    )


def uncovered(text: str, tokens: list[Token], pattern: regex.Pattern) -> list[str]:
    """The characters of `text` that match `pattern` and lie inside no token's span."""
    covered = [False] * len(text)
    for token in tokens:
        covered[token.start : token.end] = [True] * (token.end - token.start)
    return [m.group() for m in pattern.finditer(text) if not covered[m.start()]]


def assert_spans_tile(text: str, tokens: list[Token]) -> None:
    """Spans are non-empty, inside the text, in order and non-overlapping."""
    end = 0
    for token in tokens:
        assert end <= token.start < token.end <= len(text), (text, tokens)
        end = token.end


# -- properties: unicode ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", UNICODE_SPECS)
@PROPERTY
@given(text=TEXTS)
def test_unicode_loses_no_letter_mark_or_digit(spec, text):
    assert uncovered(text, tokenizer(spec).tokenize(text), LETTER_MARK_DIGIT) == []


@pytest.mark.parametrize("spec", UNICODE_SPECS)
@PROPERTY
@given(text=TEXTS)
def test_unicode_keeps_every_punctuation_and_symbol(spec, text):
    assert uncovered(text, tokenizer(spec).tokenize(text), PUNCT_SYMBOL) == []


@pytest.mark.parametrize("spec", UNICODE_SPECS)
@PROPERTY
@given(text=TEXTS)
def test_unicode_spans_tile_the_text_and_map_back(spec, text):
    unicode = tokenizer(spec)
    tokens = unicode.tokenize(text)
    assert_spans_tile(text, tokens)
    for token in tokens:
        assert token.text and not any(c.isspace() for c in token.text), (text, token)
        if is_url_or_handle(text, token):
            span = original(text, token)
            assert not regex.search(r"\s", span) and (token.text == "http" or HANDLE.fullmatch(span))
        else:
            assert token.text == normalize(original(text, token), unicode.lowercase), (text, token)


@pytest.mark.parametrize("spec", UNICODE_SPECS)
@PROPERTY
@given(text=TEXTS)
def test_unicode_tokens_are_words_punctuation_runs_emoji_or_characters(spec, text):
    unicode = tokenizer(spec)
    for token in unicode.tokenize(text):
        span = original(text, token)
        if is_url_or_handle(text, token):
            continue
        if EMOJI_START.match(span):  # an emoji sequence: its whole grapheme cluster
            assert GRAPHEME.match(text, token.start).end() == token.end, (text, token)
        elif KEYCAP.match(span):
            assert KEYCAP.fullmatch(span), (text, token)
        elif NO_SPACE_LETTER.match(span):  # Han, kana, Thai...: one grapheme each, or the run whole
            if unicode.characters:  # the grapheme cluster from here, as the text around it makes it
                assert GRAPHEME.match(text, token.start).end() == token.end, (text, token)
            else:
                assert regex.fullmatch(NO_SPACE_CLASS + "+", span, flags=regex.V1), (text, token)
        elif PUNCT_SYMBOL.match(span):  # a character and its repeats
            assert set(span) == {span[0]}, (text, token)
        else:
            assert WORD.fullmatch(span), (text, token)
            assert not NO_SPACE_LETTER.search(span), (text, token)


@pytest.mark.parametrize("name", list(TOKENIZERS))
@pytest.mark.parametrize("lowercase", [True, False])
@PROPERTY
@given(text=TEXTS)
def test_split_gives_the_texts_of_tokenize(name, lowercase, text):
    built = tokenizer(f"{name}:lowercase={lowercase}")
    assert built.split(text) == [t.text for t in built.tokenize(text)]


@pytest.mark.parametrize("spec", [*UNICODE_SPECS, "kim", "kim:lowercase=false", "subword"])
@PROPERTY
@given(text=TEXTS)
def test_tokenizing_is_deterministic(spec, text):
    first = tokenizer(spec).tokenize(text)
    assert tokenizer(spec).tokenize(text) == first
    if not TokenizerConfig.parse(spec).learned:
        assert TokenizerConfig.parse(spec).build().tokenize(text) == first  # a fresh one too


def test_split_and_tokenize_agree_for_unigram_too():
    unigram = TokenizerConfig.parse("subword:model=unigram,vocab=1000").build()
    unigram.fit(FIT_TEXTS)
    for text in mixed_texts(200, seed=5) + french_texts(50, seed=5):
        assert unigram.split(text) == [t.text for t in unigram.tokenize(text)]


# Unigram's trainer raises a bare Exception ("The vocabulary is not large enough to contain all
# chars") when vocab < the training texts' characters: it must reach the user as one line.
def test_a_unigram_vocab_too_small_for_the_characters_is_a_config_error():
    unigram = TokenizerConfig.parse("subword:model=unigram,vocab=50").build()
    with pytest.raises(ConfigError, match="--tokenizer"):
        unigram.fit(["абвгдеёжзийклмнопрстуфхцчшщъыьэюя abcdefghijklmnopqrstuvwxyz 0123456789"])


# -- properties: kim ------------------------------------------------------------------------------


@pytest.mark.parametrize("lowercase", [True, False])
@PROPERTY
@given(text=TEXTS)
def test_kim_is_clean_str_and_its_spans_map_back(lowercase, text):
    tokens = tokenizer(f"kim:lowercase={lowercase}").tokenize(text)
    assert [t.text for t in tokens] == clean_str(text, lowercase).split()
    assert_spans_tile(text, tokens)
    for token in tokens:
        span = original(text, token)
        assert span.isascii() and (span.lower() if lowercase else span) == token.text, (text, token)


# -- properties: subword --------------------------------------------------------------------------


@PROPERTY
@given(text=TEXTS)
def test_subword_pieces_lie_in_the_text_in_order_and_keep_every_letter(text):
    tokens = tokenizer("subword").tokenize(text)
    for token in tokens:
        assert 0 <= token.start < token.end <= len(text), (text, token)
    assert [t.start for t in tokens] == sorted(t.start for t in tokens)
    assert uncovered(text, tokens, LETTER_MARK_DIGIT) == []


WORDS = TokenizerConfig.parse("unicode:characters=false").build()  # what subword splits into pieces


# NFKC can move characters without changing a word's length (canonical reordering of marks; an
# expansion, ß -> ss, beside a composition, o + U+0308 -> ö): a piece's offsets in the normalized word
# then do not point at its original characters, and it takes its word's span instead.
@PROPERTY
@given(text=TEXTS)
@example(text="Gro\u0308ße")  # "Größe" as NFD text spells it (macOS, some web pages)
@example(text="\u0628\u0651\u064e")  # Arabic: shadda typed before fatha, NFKC puts fatha first
def test_subword_piece_spans_map_back(text):
    words = {(w.start, w.end) for w in WORDS.tokenize(text)}
    for piece in tokenizer("subword").tokenize(text):
        if piece.text in ("▁", UNK) or (piece.start, piece.end) in words:
            continue  # a whole word's span: its normalized form differs in length from the original
        assert normalize(original(text, piece)) == piece.text.removeprefix("▁"), (text, piece)


# -- examples -------------------------------------------------------------------------------------


def split(text: str, spec: str = "unicode") -> list[str]:
    return tokenizer(spec).split(text)


@pytest.mark.parametrize(
    "word",
    [
        "हिन्दी",  # Devanagari: vowel signs and a virama
        "العَرَبِيَّة",  # Arabic with harakat
        "עִבְרִית",  # Hebrew with niqqud
        "বাংলা",
        "தமிழ்",
        "привет",
        "película",
        "نمی\u200cخواهم",  # Persian: a ZWNJ inside the word
    ],
)
def test_a_word_with_marks_stays_one_token(word):
    assert tokenizer("unicode").tokenize(word) == [Token(word, 0, len(word))]


def test_python_re_would_have_split_hindi_and_arabic():
    assert re.findall(r"\w+", "हिन्दी") != ["हिन्दी"]  # marks are not \w in Python's re
    assert len(re.findall(r"\w+", "العَرَبِيَّة")) > 1


@pytest.mark.parametrize(
    "emoji", ["👨\u200d👩\u200d👧\u200d👦", "👍🏽", "👩🏿\u200d💻", "🇫🇷", "🏳️\u200d🌈", "1️⃣", "#️⃣", "❤️"]
)
def test_an_emoji_sequence_is_one_token(emoji):
    text = f"so {emoji} good"
    assert tokenizer("unicode").tokenize(text) == [
        Token("so", 0, 2),
        Token(emoji, 3, 3 + len(emoji)),
        Token("good", 4 + len(emoji), 8 + len(emoji)),
    ]
    assert split("🇫🇷🇯🇵👍🏽👍") == ["🇫🇷", "🇯🇵", "👍🏽", "👍"]  # two flags side by side stay two


@pytest.mark.parametrize("text", ["ภาษาไทย", "日本語のテキスト", "ພາສາລາວ", "ភាសាខ្មែរ", "中文文本"])
def test_scripts_without_spaces_give_one_token_per_grapheme(text):
    graphemes = regex.findall(r"\X", text)
    assert split(text) == graphemes
    assert split(text, "unicode:characters=false") == [text]  # what subword learns pieces over


def test_japanese_and_thai_split_per_character():
    assert split("ภาษาไทย") == list("ภาษาไทย")
    assert split("日本語のテキスト") == list("日本語のテキスト")


def test_kim_splits_accented_words_where_unicode_keeps_them():
    assert split("película") == ["película"]
    assert split("película", "kim") == ["pel", "cula"]
    assert split("Película", "unicode:lowercase=false") == ["Película"]


def test_urls_and_handles_are_normalized():
    text = "Read https://example.com/x?y=1 and www.site.org/page now @Alice_99! Mail bob@example.com"
    assert split(text) == [
        *["read", "http", "and", "http", "now", "@user", "!"],
        *["mail", "bob", "@", "example", ".", "com"],  # an address is no handle
    ]
    tokens = tokenizer("unicode").tokenize(text)
    assert original(text, tokens[1]) == "https://example.com/x?y=1"
    assert original(text, tokens[5]) == "@Alice_99"


def test_full_width_and_compatibility_characters_are_nfkc_normalized():
    text = "ＨＥＬＬＯ\u3000Ｗｏｒｌｄ１２３！ ﬁne Straße ｶﾞ"
    assert split(text) == ["hello", "world123", "!", "fine", "strasse", "ガ"]
    assert split(text, "unicode:lowercase=false") == ["HELLO", "World123", "!", "fine", "Straße", "ガ"]
    assert tokenizer("unicode").tokenize(text)[0] == Token("hello", 0, 5)  # the full-width span


def test_punctuation_repeats_are_one_token():
    assert split("Wow!!! Really?! ...") == ["wow", "!!!", "really", "?", "!", "..."]


# -- the registry ---------------------------------------------------------------------------------


def test_parse_and_str_round_trip():
    config = TokenizerConfig.parse("subword:model=bpe,vocab=500")
    assert config.name == "subword" and config.learned
    assert (config.get("model"), config.get("vocab"), config.get("lowercase")) == ("bpe", 500, True)
    assert str(config) == "subword:vocab=500"  # defaults are not spelled out
    for spec in ["subword:model=bpe,vocab=500", "unicode:lowercase=off,characters=no", "kim", " unicode "]:
        parsed = TokenizerConfig.parse(spec)
        assert TokenizerConfig.parse(str(parsed)) == parsed
        assert TokenizerConfig.from_json(json.loads(json.dumps(parsed.to_json()))) == parsed
        assert hash(TokenizerConfig.parse(str(parsed))) == hash(parsed)
    assert str(TokenizerConfig.parse("unicode:characters=0")) == "unicode:characters=false"
    assert TokenizerConfig.parse("subword:vocab=500") == TokenizerConfig.of("subword", vocab=500)
    assert TokenizerConfig.parse("unicode").replace(lowercase=False).get("lowercase") is False


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("nope", ["unknown tokenizer 'nope'", "kim, unicode, subword"]),
        ("", ["unknown tokenizer ''"]),
        ("unicode:colour=red", ["'unicode' has no option 'colour'", "lowercase, characters"]),
        ("kim:characters=true", ["'kim' has no option 'characters'", "lowercase"]),
        ("subword:vocab=many", ["option vocab must be an integer", "'many'"]),
        ("subword:vocab=10", ["option vocab must be >= 50", "10"]),
        ("subword:vocab=true", ["option vocab must be an integer"]),
        ("subword:model=wordpiece", ["option model is one of bpe, unigram", "'wordpiece'"]),
        ("unicode:lowercase=maybe", ["option lowercase is on or off", "'maybe'"]),
        ("unicode:lowercase", ["options are OPTION=VALUE", "'lowercase'"]),
        ("unicode:=true", ["options are OPTION=VALUE"]),
        ("unicode:lowercase=true,lowercase=false", ["an option is given twice"]),
    ],
)
def test_bad_tokenizer_choices_are_one_clear_line(spec, fragments):
    with pytest.raises(ConfigError) as caught:
        TokenizerConfig.parse(spec)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_bad_values_from_json_are_refused():
    with pytest.raises(ConfigError, match="option vocab must be an integer"):
        TokenizerConfig.from_json({"name": "subword", "vocab": 5.5})
    with pytest.raises(ConfigError, match="option lowercase is true or false"):
        TokenizerConfig.from_json({"name": "unicode", "lowercase": 1})
    with pytest.raises(ConfigError, match="a tokenizer is a JSON object with a name"):
        TokenizerConfig.from_json({"lowercase": True})


def test_describe_lists_every_entry_with_its_options():
    described = describe()
    assert list(TOKENIZERS) == ["kim", "unicode", "subword"]
    for name in TOKENIZERS:
        entry = get_tokenizer_entry(name)
        assert f"{name}: {entry.summary}" in described
        for option in entry.options:
            assert f"{option.name}=" in described
    assert "vocab=8000" in described and "model=bpe" in described and "characters=true" in described


class Characters(Tokenizer):
    """A throw-away tokenizer: every non-space character is a token (upper-cased with `upper`)."""

    name = "test-chars"

    def tokenize(self, text):
        return [
            Token(c.upper() if self.options["upper"] else c, i, i + 1)
            for i, c in enumerate(text)
            if not c.isspace()
        ]


CHARACTERS = TokenizerEntry(
    name="test-chars",
    summary="one token per character (a test's throw-away tokenizer)",
    use="tests",
    make=Characters,
    options=(Option("upper", False, "upper-case each character"),),
)


def test_a_tokenizer_registered_from_outside_is_usable_everywhere():
    register(CHARACTERS)
    try:
        assert "test-chars" in TOKENIZERS and "test-chars: one token per character" in describe()
        with pytest.raises(ValueError, match="already registered"):
            register(CHARACTERS)
        config = TokenizerConfig.parse("test-chars:upper=yes")
        assert str(config) == "test-chars:upper=true" and TokenizerConfig.parse(str(config)) == config
        assert config.build().split("a b") == ["A", "B"]
        encoder = TextEncoder(Vocabulary.build([["a", "b"]]), "test-chars")
        assert encoder.encode_tokens("ab c").coverage == pytest.approx(2 / 3)
        fold = texts_fold((["ab", "ba", "cd", "dc"], ["x", "x", "y", "y"]), (["ab", "cd"], ["x", "y"]))
        run = prepare_run(fold, ["x", "y"], RunSettings(tokenizer=config))
        assert run.encoder.tokenizer.split("ab") == ["A", "B"]
        assert run.fingerprint["tokenizer"] == "test-chars:upper=true"
        assert run.tokens is not None and run.tokens.vocab_size == 4
    finally:
        unregister("test-chars")
    assert "test-chars" not in TOKENIZERS and "test-chars" not in describe()
    with pytest.raises(ConfigError, match="unknown tokenizer 'test-chars'"):
        TokenizerConfig.parse("test-chars")


@pytest.mark.parametrize("name", ["", "a:b", "a,b"])
def test_a_tokenizer_name_with_a_separator_is_refused(name):
    with pytest.raises(ValueError, match="name"):
        register(dataclasses.replace(CHARACTERS, name=name))
    assert name not in TOKENIZERS


# -- subword --------------------------------------------------------------------------------------


def assert_pieces_rebuild_the_words(subword: Tokenizer, texts: list[str]) -> None:
    words_of = TokenizerConfig.parse("unicode:characters=false").build().split
    pieces_per_word = []
    for text in texts:
        words, pieces = words_of(text), subword.split(text)
        assert UNK not in pieces, (text, pieces)
        assert "".join(pieces) == "".join("▁" + word for word in words), (text, pieces)
        assert sum(piece.startswith("▁") for piece in pieces) == len(words)
        pieces_per_word.append(len(pieces) / max(len(words), 1))
    # It learned something: most words are not spelled letter by letter.
    assert sum(pieces_per_word) / len(pieces_per_word) < 2.5


def test_subword_pieces_concatenate_back_to_the_words():
    texts = french_texts(300)
    subword = TokenizerConfig.parse("subword:vocab=500").build()
    subword.fit(texts)
    assert_pieces_rebuild_the_words(subword, texts)
    # An unseen mix of a known stem and ending is read as pieces the model knows, not as <unk>.
    assert subword.split("Rêveraient")[0].startswith("▁rêv") and UNK not in subword.split("rêveraient")


def test_subword_pieces_concatenate_back_on_umsab_fr():
    data = benchmark_data_dir()
    path = data / "umsab-fr" / "train.jsonl" if data else None
    if path is None or not path.is_file():
        pytest.skip("umsab-fr not found (set TEXTCNN_DATA_DIR)")
    lines = path.read_text(encoding="utf-8").splitlines()[:400]
    texts = [json.loads(line)["text"] for line in lines]
    subword = TokenizerConfig.parse("subword:vocab=2000").build()
    subword.fit(texts)
    assert_pieces_rebuild_the_words(subword, texts)


def test_bpe_fitting_is_repeatable():
    config = TokenizerConfig.parse("subword:vocab=300")
    first, second = config.build(), config.build()
    first.fit(FIT_TEXTS)
    second.fit(FIT_TEXTS)
    assert first.files() == second.files()
    assert list(first.files()) == [TOKENIZER_FILE]


def test_files_and_restore_round_trip():
    fitted = tokenizer("subword")
    restored = TokenizerConfig.parse("subword").build()
    assert not restored.fitted
    with pytest.raises(ConfigError, match="not fitted"):
        restored.split("x")
    restored.restore(fitted.files())
    assert restored.fitted and restored.files() == fitted.files()
    for text in mixed_texts(300, seed=7) + french_texts(50, seed=7):
        assert restored.tokenize(text) == fitted.tokenize(text)
    with pytest.raises(BundleError, match=TOKENIZER_FILE):
        TokenizerConfig.parse("subword").build().restore({})
    with pytest.raises(BundleError, match="not a readable tokenizers file"):
        TokenizerConfig.parse("subword").build().restore({TOKENIZER_FILE: b"{not json"})


def test_fit_tokenizer_reuses_a_fit_of_the_same_texts():
    config = TokenizerConfig.parse("subword:vocab=300")
    texts = french_texts(100, seed=3)
    assert fit_tokenizer(config, texts) is fit_tokenizer(config, list(texts))
    assert fit_tokenizer(config, texts) is not fit_tokenizer(config, texts[:-1])


# -- train and serve ------------------------------------------------------------------------------

TINY = {"embedding_dim": 8, "num_filters": 4}


def alternating(texts: list[str]) -> tuple[list[str], list[str]]:
    return texts, ["a" if i % 2 else "b" for i in range(len(texts))]


@pytest.mark.parametrize("spec", ["unicode", "subword:vocab=300"])
def test_train_and_serve_give_the_same_ids(spec, tmp_path):
    train = mixed_texts(60, seed=11) + french_texts(40, seed=11)
    fold = texts_fold(alternating(train), alternating(mixed_texts(10, seed=12)))
    settings = RunSettings(TINY, TrainConfig(epochs=1, device="cpu"), tokenizer=spec)
    outcome = train_classifier(fold, ["a", "b"], settings, progress=False)
    trained = outcome.classifier.encoder
    path = outcome.classifier.save(tmp_path / "b")
    loaded = Classifier.load(path, device="cpu").encoder

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert TokenizerConfig.from_json(config["text"]["tokenizer"]) == TokenizerConfig.parse(spec)
    assert loaded.tokenizer_config == trained.tokenizer_config == TokenizerConfig.parse(spec)
    assert loaded.vocab == trained.vocab
    texts = [*mixed_texts(300, seed=13), *french_texts(30, seed=13), *train[:20], "", "   "]
    for text in texts:
        assert loaded.encode(text) == trained.encode(text), text
        assert loaded.encode_tokens(text) == trained.encode_tokens(text), text
    assert sum(UNK_ID not in trained.encode(t) for t in texts) > 20  # many texts are read in full


@pytest.fixture(scope="module")
def subword_bundle(tmp_path_factory) -> Path:
    fold = texts_fold(alternating(french_texts(60, seed=21)), alternating(french_texts(10, seed=22)))
    settings = RunSettings(TINY, TrainConfig(epochs=1, device="cpu"), tokenizer="subword:vocab=200")
    outcome = train_classifier(fold, ["a", "b"], settings, progress=False)
    return outcome.classifier.save(tmp_path_factory.mktemp("subword") / "b")


def test_an_edited_tokenizer_file_is_refused_in_one_line(subword_bundle, tmp_path):
    bundle = shutil.copytree(subword_bundle, tmp_path / "b")
    data = bytearray((bundle / TOKENIZER_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte changed
    (bundle / TOKENIZER_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError) as caught:
        Classifier.load(bundle, device="cpu")
    message = str(caught.value)
    assert "\n" not in message and TOKENIZER_FILE in message and "sha256" in message, message


def test_a_missing_tokenizer_file_is_refused_in_one_line(subword_bundle, tmp_path):
    bundle = shutil.copytree(subword_bundle, tmp_path / "b")
    (bundle / TOKENIZER_FILE).unlink()
    with pytest.raises(BundleError) as caught:
        Classifier.load(bundle, device="cpu")
    message = str(caught.value)
    assert "\n" not in message and TOKENIZER_FILE in message and "missing" in message, message


# -- separable sets: unicode learns them, kim refuses them ----------------------------------------

SPORT = ["футбол", "матч", "гол", "команда", "игрок", "тренер", "стадион", "победа", "судья", "болельщик"]
FOOD = ["суп", "хлеб", "сыр", "молоко", "каша", "пирог", "обед", "ужин", "завтрак", "яблоко"]
RUSSIAN_SHARED = ["и", "в", "на", "очень", "сегодня", "был"]
NATURE = list("山水花草树木风雨云雪")
TRAVEL = list("车船飞机路桥站票港航")
CHINESE_SHARED = list("的了是在很")


def russian_rows(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = ("спорт", "еда")[i % 2]
        words = rng.sample(SPORT if label == "спорт" else FOOD, 3) + rng.sample(RUSSIAN_SHARED, 2)
        rng.shuffle(words)
        texts.append(" ".join(words).capitalize() + rng.choice(["!", ".", ""]))
        labels.append(label)
    return texts, labels


def chinese_rows(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = ("自然", "旅行")[i % 2]
        characters = rng.sample(NATURE if label == "自然" else TRAVEL, 4) + rng.sample(CHINESE_SHARED, 2)
        rng.shuffle(characters)
        texts.append("".join(characters) + rng.choice(["。", "！", ""]))
        labels.append(label)
    return texts, labels


SEPARABLE = {"russian": (russian_rows, ["спорт", "еда"]), "chinese": (chinese_rows, ["自然", "旅行"])}


@pytest.mark.parametrize("language", list(SEPARABLE))
def test_unicode_learns_a_separable_set(language):
    rows, labels = SEPARABLE[language]
    fold = texts_fold(rows(140, seed=1), rows(30, seed=2), rows(30, seed=3))
    train = TrainConfig(epochs=10, batch_size=20, seed=0, device="cpu", patience=None)
    outcome = train_classifier(fold, labels, RunSettings(TINY, train), progress=False)  # unicode: the default
    assert outcome.classifier.encoder.tokenizer_config == TokenizerConfig.parse("unicode")
    assert outcome.tokens is not None and outcome.tokens.letters_kept == 1.0
    assert outcome.test_metrics["accuracy"] >= 0.95, outcome.test_metrics


@pytest.mark.parametrize("language", list(SEPARABLE))
def test_kim_refuses_a_set_it_cannot_read(language):
    rows, labels = SEPARABLE[language]
    fold = texts_fold(rows(140, seed=1), rows(30, seed=2))
    with pytest.raises(DataError) as caught:
        prepare_run(fold, labels, RunSettings(TINY, TrainConfig(epochs=1), tokenizer="kim"))
    message = str(caught.value)
    assert "\n" not in message and "--tokenizer kim" in message and "--tokenizer unicode" in message


def test_the_cli_refuses_russian_with_kim_in_one_line(tmp_path):
    texts, labels = russian_rows(200, seed=1)
    data = tmp_path / "ru.csv"
    with data.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    out = tmp_path / "out"
    result = textcnn("train", "--train", data, "--out", out, "--tokenizer", "kim", "--epochs", "1")
    assert_one_line_error(result, "--tokenizer")
    assert not out.exists() or not any(out.iterdir())


# -- coverage -------------------------------------------------------------------------------------


def test_coverage_is_the_share_of_known_tokens():
    encoder = TextEncoder(Vocabulary.build([["the", "cat", "!"]]), "unicode")
    encoded = encoder.encode_tokens("The cat sat down!")
    assert [t.text for t in encoded.tokens] == ["the", "cat", "sat", "down", "!"]
    assert encoded.known == [True, True, False, False, True]
    assert encoded.coverage == pytest.approx(3 / 5)
    assert encoder.coverage("The cat sat down!", encoder.encode("The cat sat down!")) == encoded.coverage


def test_kim_counts_the_words_it_drops_as_unknown():
    encoder = TextEncoder(Vocabulary.build([["hello", "!"]]), "kim")
    encoded = encoder.encode_tokens("hello Привет мир!")
    assert [t.text for t in encoded.tokens] == ["hello", "!"] and encoded.dropped == 2
    assert encoded.coverage == pytest.approx(2 / 4)
    assert encoder.coverage("hello Привет мир!", encoder.encode("hello Привет мир!")) == pytest.approx(2 / 4)
    assert TextEncoder(Vocabulary.build([["!"]]), "unicode").encode_tokens("Привет мир!").dropped == 0


@pytest.mark.parametrize("spec", ["kim", "unicode"])
def test_a_text_known_only_by_its_punctuation_is_unread(spec):
    """The issue's Russian text decided by its "!" alone: a known "!" reads none of its words."""
    encoder = TextEncoder(Vocabulary.build([["!", ",", "😍", "42"]]), spec)
    for text in ["Привет, мир!", "!!! ,", "Это лучший день!"]:
        encoded = encoder.encode_tokens(text)
        assert any(encoded.known) and encoded.coverage == 0.0
        assert encoder.coverage(text, encoder.encode(text)) == 0.0
    assert encoder.encode_tokens("zebra 42 !").coverage == pytest.approx(2 / 3)  # a number is read
    if spec == "unicode":
        assert encoder.encode_tokens("mdr 😍 !").coverage == pytest.approx(2 / 3)  # so is an emoji


@pytest.mark.parametrize(("spec", "text"), [("unicode", ""), ("unicode", " \t\n"), ("kim", "Привет мир")])
def test_a_text_with_no_token_has_coverage_zero(spec, text):
    encoder = TextEncoder(Vocabulary.build([["the"]]), spec)
    encoded = encoder.encode_tokens(text)
    assert encoded.tokens == [Token(UNK, 0, 0)] and encoded.ids == [UNK_ID]
    assert encoded.coverage == 0.0 and encoder.coverage(text, encoder.encode(text)) == 0.0


def test_a_text_of_unknown_tokens_only_has_coverage_zero():
    encoded = TextEncoder(Vocabulary.build([["the"]]), "unicode").encode_tokens("zebra quokka")
    assert encoded.ids == [UNK_ID, UNK_ID] and encoded.coverage == 0.0
