import json
import random

import pytest
import torch

from textcnn.data.text import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    TextEncoder,
    Vocabulary,
    similar_length_chunks,
)
from textcnn.data.tokenizers import TokenizerConfig
from textcnn.data.tokenizers.kim import clean_str
from textcnn.errors import BundleError, ConfigError


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    return TokenizerConfig.of("kim", lowercase=lowercase).build().split(text)


CORPUS = [
    ["the", "cat", "sat"],
    ["the", "dog", "sat"],
    ["the", "cat", "ran"],
    ["a", "bird"],
]  # the: 3; cat, sat: 2; dog, ran, a, bird: 1


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.build(CORPUS)


# -- clean_str / tokenize ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It's good", "it 's good"),
        ("Doesn't work!", "does n't work !"),
        ("I'd say (maybe), yes?", "i 'd say ( maybe ) , yes ?"),
        ("We've they're we'll", "we 've they 're we 'll"),
        ("café — naïve #1 @x", "caf na ve 1 x"),  # outside [A-Za-z0-9(),!?'`]: becomes a space
        ('x.y say "hi"; a-b', "x y say hi a b"),
        ("  spaced \t out\n ", "spaced out"),
        ("", ""),
    ],
)
def test_clean_str_follows_kim(text, expected):
    assert clean_str(text) == expected


def test_clean_str_keeps_case_for_trec():
    assert clean_str("What's the capital of France?", lowercase=False) == "What 's the capital of France ?"
    assert clean_str("What's the capital of France?") == "what 's the capital of france ?"


def test_tokenize_splits_clitics_and_punctuation():
    assert tokenize("Doesn't it, (really)?") == ["does", "n't", "it", ",", "(", "really", ")", "?"]
    assert tokenize("NASA's", lowercase=False) == ["NASA", "'s"]
    assert tokenize("...") == []


# -- Vocabulary -------------------------------------------------------------------------------


def test_build_orders_by_frequency_then_alphabet(vocab):
    assert vocab.itos == [PAD, UNK, "the", "cat", "sat", "a", "bird", "dog", "ran"]
    assert vocab.stoi[PAD] == PAD_ID == 0
    assert vocab.stoi[UNK] == UNK_ID == 1
    assert vocab.counts == {"the": 3, "cat": 2, "sat": 2, "a": 1, "bird": 1, "dog": 1, "ran": 1}


def test_build_does_not_depend_on_input_order(vocab):
    shuffled = [list(reversed(sentence)) for sentence in reversed(CORPUS)]
    assert Vocabulary.build(shuffled).itos == vocab.itos


def test_build_min_count_and_max_size():
    assert Vocabulary.build(CORPUS, min_count=2).itos == [PAD, UNK, "the", "cat", "sat"]
    assert Vocabulary.build(CORPUS, max_size=4).itos == [PAD, UNK, "the", "cat"]
    assert Vocabulary.build(CORPUS, max_size=2).itos == [PAD, UNK]
    assert Vocabulary.build(CORPUS, min_count=3, max_size=10).itos == [PAD, UNK, "the"]


def test_build_never_duplicates_specials():
    built = Vocabulary.build([[UNK, PAD, "x"], [UNK, UNK, "x"]])
    assert built.itos == [PAD, UNK, "x"]
    assert built.counts == {"x": 2}


@pytest.mark.parametrize(("min_count", "max_size"), [(0, None), (1, 1), (1, 0)])
def test_build_rejects_bad_limits(min_count, max_size):
    with pytest.raises(ConfigError):
        Vocabulary.build(CORPUS, min_count=min_count, max_size=max_size)


@pytest.mark.parametrize(
    "tokens",
    [
        [],
        [PAD],
        [UNK, PAD, "a"],
        ["a", PAD, UNK],
        [PAD, "a", UNK],
        [PAD, UNK, "a", "a"],
        [PAD, UNK, PAD],
    ],
)
def test_vocabulary_rejects_bad_token_lists(tokens):
    with pytest.raises(ConfigError):
        Vocabulary(tokens)


def test_lookup_maps_unknown_to_unk(vocab):
    assert vocab.lookup(["the", "zebra", "ran", PAD]) == [2, UNK_ID, 8, PAD_ID]
    assert "cat" in vocab
    assert "zebra" not in vocab
    assert len(vocab) == 9


def test_save_load_round_trip(tmp_path, vocab):
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab
    assert loaded.itos == vocab.itos
    assert loaded.counts == vocab.counts
    assert loaded.stoi == vocab.stoi


def test_load_round_trips_non_ascii(tmp_path):
    words = Vocabulary([PAD, UNK, "naïve", "東京"], {"naïve": 2, "東京": 1})
    words.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").counts == {"naïve": 2, "東京": 1}


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"words": [PAD, UNK]}),
        json.dumps({"tokens": [PAD, UNK], "counts": [0]}),
    ],
)
def test_load_reports_unreadable_vocabulary(tmp_path, content):
    path = tmp_path / "vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BundleError, match="not a readable vocabulary"):
        Vocabulary.load(path)


def test_load_missing_file_is_bundle_error(tmp_path):
    with pytest.raises(BundleError, match=r"vocab\.json"):
        Vocabulary.load(tmp_path / "vocab.json")


# -- TextEncoder ------------------------------------------------------------------------------


def test_encode_tokenizes_and_maps_unknown(vocab):
    encoder = TextEncoder(vocab, "kim")
    assert encoder.encode("The CAT sat on a zebra!") == [2, 3, 4, UNK_ID, 5, UNK_ID, UNK_ID]


def test_encode_respects_the_tokenizers_lowercase_option(vocab):
    assert TextEncoder(vocab, "kim:lowercase=false").encode("The cat") == [UNK_ID, 3]
    assert TextEncoder(vocab, "kim:lowercase=true").encode("The cat") == [2, 3]
    assert TextEncoder(vocab, "unicode:lowercase=false").encode("The cat") == [UNK_ID, 3]
    assert TextEncoder(vocab, "unicode").encode("THE Cat") == [2, 3]


@pytest.mark.parametrize("text", ["", "   ", "...", "— #"])
def test_encode_empty_text_is_one_unk(vocab, text):
    assert TextEncoder(vocab, "kim").encode(text) == [UNK_ID]
    encoded = TextEncoder(vocab, "kim").encode_tokens(text)
    assert (encoded.ids, [t.text for t in encoded.tokens], encoded.coverage) == ([UNK_ID], [UNK], 0.0)


def test_encode_truncates_to_max_length(vocab):
    encoder = TextEncoder(vocab, "kim", max_length=2)
    assert encoder.encode("the cat sat") == [2, 3]
    assert [t.text for t in encoder.encode_tokens("the cat sat").tokens] == ["the", "cat"]
    assert encoder.encode("cat") == [3]
    assert encoder.encode_many(["the cat sat", ""]) == [[2, 3], [UNK_ID]]


def test_encoder_rejects_bad_max_length(vocab):
    with pytest.raises(ConfigError):
        TextEncoder(vocab, "kim", max_length=0)


def test_pad_right_pads_with_pad_id():
    batch = TextEncoder.pad([[5, 6, 7], [8], [9, 10]])
    assert batch.ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert batch.lengths.tolist() == [3, 1, 2]
    assert batch.ids.dtype == torch.long
    assert batch.lengths.dtype == torch.long


def test_pad_honours_min_length():
    batch = TextEncoder.pad([[5], [6, 7]], min_length=5)
    assert batch.ids.tolist() == [[5, 0, 0, 0, 0], [6, 7, 0, 0, 0]]
    assert batch.lengths.tolist() == [1, 2]
    assert TextEncoder.pad([[1, 2, 3]], min_length=2).ids.tolist() == [[1, 2, 3]]


def test_encoder_to_json(vocab):
    assert TextEncoder(vocab, "kim:lowercase=false", max_length=7).to_json() == {
        "tokenizer": {"name": "kim", "lowercase": False},
        "max_length": 7,
    }


def test_a_bundle_section_from_before_tokenizers_is_kim():
    config, files = TextEncoder.tokenizer_of({"lowercase": False, "max_length": None})
    assert (config, files) == (TokenizerConfig.of("kim", lowercase=False), {})
    assert TextEncoder.tokenizer_of({"lowercase": True})[0] == TokenizerConfig.parse("kim")


def test_encode_tokens_gives_spans_ids_and_coverage(vocab):
    encoded = TextEncoder(vocab, "unicode").encode_tokens("The CAT, on a zebra")
    assert [(t.text, t.start, t.end) for t in encoded.tokens] == [
        ("the", 0, 3),
        ("cat", 4, 7),
        (",", 7, 8),
        ("on", 9, 11),
        ("a", 12, 13),
        ("zebra", 14, 19),
    ]
    assert encoded.ids == [2, 3, UNK_ID, UNK_ID, 5, UNK_ID]
    assert encoded.known == [True, True, False, False, True, False]
    assert encoded.coverage == 0.5


# -- similar_length_chunks --------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [None, 100])
def test_similar_length_chunks_cover_every_index_once_within_every_bound(max_tokens):
    rng = random.Random(1)
    lengths = [rng.randint(1, 60) for _ in range(300)]
    chunks = similar_length_chunks(lengths, max_rows=32, max_tokens=max_tokens, min_length=5)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(300))
    for chunk in chunks:
        widths = [max(5, lengths[i]) for i in chunk]
        assert len(chunk) <= 32
        assert max_tokens is None or len(chunk) == 1 or len(chunk) * max(widths) <= max_tokens
        # padding to the longest costs at most a quarter more than the real tokens, plus the slack
        assert len(chunk) * max(widths) <= 1.25 * sum(widths) + 64


def test_similar_length_chunks_keep_short_texts_together_and_long_ones_apart():
    lengths = [5] * 40 + [80] * 3
    chunks = similar_length_chunks(lengths, max_rows=256)
    assert chunks[0] == list(range(40))  # one batch of the short ones, not 40 rows padded to 80
    assert sorted(chunks[1]) == [40, 41, 42]
    assert similar_length_chunks([500], max_rows=8, max_tokens=100) == [[0]]  # over budget: alone
    assert similar_length_chunks([], max_rows=8) == []
