"""Every language, end to end: the character n-gram member, corpora trained together, the tokenizer
chosen by flag or suggested by the data, coverage in the CLI, and the registry's new datasets.

The tokenizers themselves (properties over many scripts, training and serving alike, the separable
Russian and Chinese sets) are tests/test_tokenizers.py; the page is tests/test_page.py.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from conftest import REPO
from test_cli import assert_one_line_error, textcnn
from test_mixed import encoded, synthetic

from textcnn import Classifier, explain_text
from textcnn.cli.flags import tokenizer_from_args
from textcnn.data.corpus import load_corpus
from textcnn.data.splits import Corpus, LabeledTexts
from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.data.tokenizers import TokenizerConfig
from textcnn.errors import ConfigError, DataError
from textcnn.model.linear_member import LinearMember, char_ngrams
from textcnn.model.mixed import MixedEnsemble
from textcnn.study.plan import StudyConfig, study_tokenizer
from textcnn.train.runs import RunSettings, texts_fold
from textcnn.tune.space import check_space
from textcnn.tune.trial import trial_settings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fold():
    return texts_fold(synthetic(300, 0), synthetic(80, 1), synthetic(80, 2))


@pytest.fixture(scope="module")
def encoder(fold) -> TextEncoder:
    probe = TextEncoder(Vocabulary(["<pad>", "<unk>"]), "unicode")
    return TextEncoder(Vocabulary.build(probe.tokenize(t) for t in fold.train.texts), "unicode")


@pytest.fixture(scope="module")
def chars(fold, encoder) -> Classifier:
    member = LinearMember.fit(
        "char-lr",
        encoded(encoder, fold.train),
        encoded(encoder, fold.dev),
        len(encoder.vocab),
        2,
        vocab=encoder.vocab.itos,
    )
    return Classifier(MixedEnsemble([], member), encoder, ["negative", "positive"])


# -- the character n-gram member ------------------------------------------------------------------


def test_char_ngrams_are_scikit_learns_char_wb():
    from sklearn.feature_extraction.text import CountVectorizer

    analyzer = CountVectorizer(analyzer="char_wb", ngram_range=(1, 5), lowercase=False).build_analyzer()
    for word in ["a", "ab", "abc", "película", "日", "👍🏽", "straße"]:
        assert sorted(char_ngrams(word)) == sorted(analyzer(word)), word


def test_a_char_member_round_trips_and_is_rebuilt_from_the_vocabulary(chars, fold, tmp_path):
    bundle = chars.save(tmp_path / "chars")
    loaded = Classifier.load(bundle, device="cpu")
    texts = list(fold.test.texts)
    assert torch.equal(loaded.logits(texts), chars.logits(texts))
    config = json.loads((bundle / "config.json").read_text())
    assert config["mixture"]["linear"]["kind"] == "char-lr"
    assert config["mixture"]["linear"]["features"] == len(chars.model.linear.chars)
    assert loaded.card.members[0]["kind"] == "char-lr"


def test_a_char_members_explanation_is_exact_and_names_its_ngrams(chars):
    for text in ["the plot is not dull", "great great film", "wonderfully boring"]:
        explanation = explain_text(chars, text, top=50)
        assert explanation["exact"] and abs(explanation["residual"]) < 1e-6
        entries = explanation["for"] + explanation["against"]
        assert entries and all(e["kind"] == "char-lr" and e["filter_bias"] == 0 for e in entries)
        assert all(e["characters"] and e["width"] == len(e["ngram"]) for e in entries)
        assert all(e["ngram"] in {g for t in explanation["tokens"] for g in char_ngrams(t)} for e in entries)
        for e in entries:  # each n-gram's part lies on the tokens that hold it
            assert sum(e["token_parts"]) == pytest.approx(e["contribution"], abs=1e-9)


def test_a_char_member_reads_no_ngram_of_a_word_it_never_saw(chars):
    """What the member costs against scikit-learn's char_wb pipeline: an unseen word is <unk>."""
    assert torch.equal(chars.logits(["great zzzyxw"]), chars.logits(["great <unk>"]))


def test_a_char_member_needs_its_vocabulary():
    with pytest.raises(ConfigError, match="vocabulary"):
        LinearMember.fit(
            "char-lr", *[(torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 3]), [0, 1])] * 2, 4, 2
        )


# -- the tokenizer: chosen, or suggested by the data ---------------------------------------------


def corpus(tokenizer: str) -> Corpus:
    data = LabeledTexts(("a", "b"), ("x", "y"), "toy.jsonl", (1, 2))
    return Corpus("toy", ("x", "y"), {"all": data}, tokenizer, "toy.jsonl")


@pytest.mark.parametrize(
    ("flag", "lowercase", "suggested", "expected"),
    [
        (None, None, "kim:lowercase=false", "kim:lowercase=false"),  # TREC's own
        (None, True, "kim:lowercase=false", "kim"),
        (None, None, "unicode", "unicode"),
        ("subword:vocab=500", None, "kim", "subword:vocab=500"),  # the flag wins
        ("unicode", False, "kim", "unicode:lowercase=false"),
    ],
)
def test_the_flag_chooses_the_tokenizer_and_the_data_only_suggests(flag, lowercase, suggested, expected):
    args = argparse.Namespace(tokenizer=TokenizerConfig.parse(flag) if flag else None, lowercase=lowercase)
    assert str(tokenizer_from_args(args, corpus(suggested))) == expected
    settings = RunSettings(tokenizer=flag).for_corpus(corpus(suggested))
    assert str(settings.tokenizer) == (flag or suggested)


def test_run_settings_take_a_tokenizer_by_name_and_default_to_unicode():
    assert RunSettings(tokenizer="kim:lowercase=false").tokenizer == TokenizerConfig.of(
        "kim", lowercase=False
    )
    assert RunSettings().tokenizer_config == TokenizerConfig.parse("unicode")
    with pytest.raises(ConfigError, match="unknown tokenizer 'klingon'"):
        RunSettings(tokenizer="klingon")


def test_the_study_reads_english_with_kim_lowercased_and_the_rest_as_registered():
    config = StudyConfig(datasets=("trec", "umsab-fr"), poolings=("max",))
    assert str(study_tokenizer(config, "trec")) == "kim"  # lowercased, as every committed study run
    assert str(study_tokenizer(config, "mr")) == "kim"
    assert str(study_tokenizer(config, "umsab-fr")) == "unicode"
    chosen = StudyConfig(datasets=("umsab-fr",), poolings=("max",), tokenizer="subword")
    assert str(study_tokenizer(chosen, "umsab-fr")) == "subword"
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        StudyConfig(datasets=("mr",), poolings=("max",), tokenizer="nope")
    assert StudyConfig(datasets=("mr",), poolings=("max",)).run_settings()["tokenizer"] is None


def test_tune_can_search_the_tokenizer():
    space = check_space({"tokenizer": ["unicode", "subword:vocab=2000"]}, vectors=False)
    assert space.tokenizer == ("unicode", "subword:vocab=2000")
    assert space.to_json()["tokenizer"] == ["unicode", "subword:vocab=2000"]
    assert "tokenizer" not in check_space({}, vectors=False).to_json()  # not searched: tune.json as before
    with pytest.raises(ConfigError, match=r"tokenizer: .*unknown tokenizer 'nope'"):
        check_space({"tokenizer": ["nope"]}, vectors=False)
    base = RunSettings({}, tokenizer="unicode")
    config = {"pooling": "max", "widths": "3", "maps": 100, "dropout": 0.5, "lr": 1.0, "variant": "rand"}
    assert str(trial_settings(base, config).tokenizer) == "unicode"
    assert str(trial_settings(base, config | {"tokenizer": "subword"}).tokenizer) == "subword"


# -- datasets ------------------------------------------------------------------------------------


def test_registered_sets_with_one_label_set_train_as_one(data_dir):
    joined = load_corpus("umsab-en,umsab-fr", data_dir=data_dir)
    alone = [load_corpus(name, data_dir=data_dir) for name in ("umsab-en", "umsab-fr")]
    assert joined.name == "umsab-en,umsab-fr" and joined.tokenizer == "unicode"
    for split in ("train", "dev", "test"):
        assert joined.splits[split].texts == alone[0].splits[split].texts + alone[1].splits[split].texts
    with pytest.raises(DataError, match="cannot train together"):
        load_corpus("mr,trec", data_dir=data_dir)


def test_the_datasets_command_lists_every_language(data_dir):
    listed = json.loads(textcnn("datasets", "--json", "--data-dir", data_dir).stdout)
    rows = {row["name"]: row for row in listed}
    assert rows["umsab-pt"]["language"] == "pt" and rows["umsab-pt"]["metric"] == "macro_f1"
    assert rows["umsab-pt"]["reference"]["fasttext-mono"] == 55.1 and rows["umsab-pt"]["rows"]["test"] == 870
    assert rows["chnsenticorp"]["tokenizer"] == "unicode" and rows["chnsenticorp"]["rows"] == {"all": 7765}
    assert rows["trec"]["tokenizer"] == "kim:lowercase=false"


# -- the command line ----------------------------------------------------------------------------


def test_predict_says_what_it_could_not_read(tiny_bundle):
    lines = textcnn("predict", tiny_bundle, "a warm , funny and moving film .", "日本語のテキスト").stdout
    read, unread = (json.loads(line) for line in lines.splitlines())
    assert read["label"] in ("negative", "positive") and 0 < read["coverage"] <= 1 and not read["unread"]
    assert unread == {
        "text": "日本語のテキスト",
        "label": None,
        "score": None,
        "probabilities": None,
        "coverage": 0.0,
        "unread": True,
    }
    explained = textcnn("explain", tiny_bundle, "日本語のテキスト").stdout
    assert "not read" in explained and "no label" in explained


def test_train_prints_what_the_tokenizer_made_of_the_data_and_refuses_what_it_cannot_read(tmp_path):
    rows = ["text,label"] + [
        f"{w} очень {w},{'a' if i % 2 else 'b'}" for i, w in enumerate(["хорошо", "плохо"] * 20)
    ]
    data = tmp_path / "ru.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    flags = ("--epochs", "1", "--embedding-dim", "8", "--num-filters", "4")
    trained = textcnn("train", "--train", data, "--out", tmp_path / "ok", *flags)
    assert trained.returncode == 0, trained.stderr
    # 40 rows: fold 0 of 10 holds 4 out for test, and a tenth of the rest for dev
    assert "tokenizer unicode: 32 training texts" in trained.stderr and "commonest: очень" in trained.stderr
    refused = textcnn("train", "--train", data, "--out", tmp_path / "no", "--tokenizer", "kim", *flags)
    assert_one_line_error(refused, "--tokenizer kim cannot read these training texts", "--tokenizer unicode")
    assert not (tmp_path / "no").exists()
    bad = textcnn("train", "--train", data, "--out", tmp_path / "no", "--tokenizer", "subword:vocab=x")
    assert bad.returncode == 2 and "vocab must be an integer" in bad.stderr
    np.testing.assert_equal(bad.stdout, "")


def test_the_registry_and_help_import_no_tokenizer_library_and_no_torch():
    code = (
        "import sys\nfrom textcnn.cli.parser import build_parser\n"
        "from textcnn.data.tokenizers import TOKENIZERS, describe\n"
        "build_parser(); describe()\n"
        "print(sorted(m for m in ('torch', 'regex', 'tokenizers') if m in sys.modules), list(TOKENIZERS))"
    )
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "[] ['kim', 'unicode', 'subword']"
    helped = textcnn("train", "--help").stdout
    assert all(name in helped for name in ("kim", "unicode", "subword", "--tokenizer", "char-lr"))


# models/tweets as shipped (trained on the six UMSAB languages together, see the README); these
# numbers were computed when it was made (AMD EPYC, torch 2.13.0+cpu): later formats must load it
# and predict the same, as for models/default.
TWEETS_TEXTS = [
    "Je suis tellement content de ce film, une pure merveille 😍",
    "Qué asco de tráfico, llevo una hora parado",
    "Das war der beste Tag meines Lebens",
    "Это был лучший день в моей жизни",  # a script it never saw
]
TWEETS_LOGITS = [
    [-2.03437, -1.55896, -0.41721],
    [-0.36782, -1.71114, -2.06277],
    [-1.56896, -1.30657, -0.65202],
    [-1.07786, -0.9086, -1.36027],
]


def test_the_shipped_multilingual_model_is_small_reads_its_languages_and_says_what_it_cannot():
    path = REPO / "models" / "tweets"
    assert sum(f.stat().st_size for f in path.iterdir()) < 10_000_000
    classifier = Classifier.load(path, device="cpu")
    config = json.loads((path / "config.json").read_text())
    assert config["weights"]["dtype"] == "float16" and list(classifier.label_names) == [
        "negative",
        "neutral",
        "positive",
    ]
    assert classifier.card.tokenizer["name"] == "unicode" and classifier.card.tokens["vocab_size"] == 12_020
    assert [m["kind"] for m in classifier.card.members] == ["cnn"] * 3 + ["char-lr"]
    assert torch.allclose(classifier.logits(TWEETS_TEXTS), torch.tensor(TWEETS_LOGITS), atol=1e-4)
    french, spanish, german, russian = classifier.predict(TWEETS_TEXTS)
    assert (french.label, spanish.label, german.label) == ("positive", "negative", "positive")
    assert min(french.coverage, spanish.coverage, german.coverage) > 0.7
    assert russian.label is None and russian.score is None and russian.coverage == 0.0
