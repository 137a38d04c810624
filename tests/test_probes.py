"""The probes on hand-built models whose answers are known."""

import pytest
import torch

from textcnn.data.text import PAD, UNK, TextEncoder, Vocabulary
from textcnn.inference.bundle import Classifier
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.pooling import POOLINGS, SLOT_POOLINGS, get_pooling
from textcnn.study.probes import (
    compare_texts,
    explain,
    key_phrase_moved,
    max_statistics,
    move_span,
    pooled_vectors,
    pure_shift,
    winning_ngrams,
    with_filler,
)

WORDS = [PAD, UNK, "good", "movie", "bad", "the"]
GOOD, MOVIE = WORDS.index("good"), WORDS.index("movie")


def bigram_classifier(wide: bool = False, pooling: str = "max") -> Classifier:
    """One-hot embeddings; filter 0 fires (value 1) only on the bigram "good movie" and votes
    "positive"; filter 1 has zero weights and bias: it never fires."""
    config = ModelConfig(
        vocab_size=len(WORDS),
        num_classes=2,
        embedding_dim=len(WORDS),
        filter_widths=(2,),
        num_filters=2,
        wide=wide,
        pooling=pooling,
        **({"region": 2, "region_slots": 2} if pooling in SLOT_POOLINGS else {}),
    )
    model = TextCNN(config)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(len(WORDS)))
        model.embedding.weight[0].zero_()
        conv = model.convs[0]
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, GOOD, 0] = 1.0
        conv.weight[0, MOVIE, 1] = 1.0
        conv.bias[0] = -1.0  # 1 on "good movie", at most 0 elsewhere
        model.classifier.weight.zero_()
        model.classifier.weight[:, 0] = torch.tensor([-1.0, 1.0])  # filter 0's first pooled value
        model.classifier.bias.zero_()
    return Classifier(model, TextEncoder(Vocabulary(WORDS), "kim"), ["negative", "positive"])


def test_max_statistics_counts_ties_silence_dead_maps_and_collapse():
    texts = ["good movie", "the good movie", "bad movie", "the bad movie"]
    stats = max_statistics(bigram_classifier(), texts)
    # Narrow windows of width 2: one window for two tokens, two for three.
    # filter 0: [1], [0, 1], [0], [0, 0]  -> silent twice, tied once (the bad movie: 0 = 0)
    # filter 1: [0], [0, 0], [0], [0, 0]  -> silent four times, tied twice
    assert stats.feature_maps == 2
    assert stats.silent_fraction == pytest.approx(6 / 8)
    assert stats.tied_fraction == pytest.approx(3 / 8)
    assert stats.tied_above_zero_fraction == 0.0
    assert stats.dead_maps == 1
    assert (stats.distinct_texts, stats.distinct_pooled_vectors) == (4, 2)  # [1, 0] twice, [0, 0] twice


def test_a_repeated_phrase_ties_above_zero():
    stats = max_statistics(bigram_classifier(), ["good movie good movie"])  # windows: 1, 0, 1
    assert stats.tied_above_zero_fraction == pytest.approx(1 / 2)  # filter 0 of the two maps


@pytest.mark.parametrize("wide", [False, True])
def test_winning_ngrams_find_the_bigram(wide):
    texts = ["the good movie", "good movie", "bad movie", "the good movie the"]
    maps = winning_ngrams(bigram_classifier(wide=wide), texts)
    assert maps[0]["fired"] == 3
    assert maps[0]["top"] == [("good movie", 3)]
    assert maps[1] == {"width": 2, "filter": 1, "fired": 0, "top": []}


@pytest.mark.parametrize("wide", [False, True])
def test_explain_names_the_deciding_ngram(wide):
    explanation = explain(bigram_classifier(wide=wide), "the good movie")
    assert explanation["label"] == "positive"
    [ngram] = explanation["for"]
    expected = {"ngram": "good movie", "start": 1, "end": 3, "width": 2, "filter": 0, "value": 1.0}
    assert {key: ngram[key] for key in expected} == expected
    assert (ngram["weight"], ngram["contribution"], ngram["activation"]) == (1.0, 1.0, 1.0)
    assert explanation["against"] == []
    assert explanation["logit"] == pytest.approx(explanation["bias"] + 1.0)


def test_explain_spreads_an_average_over_its_windows():
    explanation = explain(bigram_classifier(pooling="avg"), "the good movie")  # narrow: 2 windows
    [ngram] = explanation["for"]
    assert (ngram["ngram"], ngram["value"], ngram["contribution"]) == ("good movie", 0.5, 0.5)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("wide", [False, True])
def test_every_masked_pooling_is_exactly_invariant_to_a_pure_shift(pooling, wide):
    classifier = bigram_classifier(wide=wide, pooling=pooling)
    texts = ["the good movie", "good movie", "bad movie the good movie", "the"]
    result = pure_shift(classifier, texts, shift=3)
    # The learned pooling's softmax reduces over the padded length, in SIMD lanes laid out by that
    # length: the masked columns weigh exactly 0, but the sum of the rest may round differently.
    assert result.max_abs_change <= (1e-6 if get_pooling(pooling).learned else 0.0)
    assert result.unchanged_predictions == 1.0


@pytest.mark.parametrize("pooling", ["local-max", "local-avg"])
def test_the_probes_read_a_local_pooling_model(pooling):
    # The statistics are of each map's max over time, whatever the model pools; explain is its own.
    texts = ["good movie", "the good movie", "bad movie", "the bad movie"]
    local, maxed = bigram_classifier(pooling=pooling), bigram_classifier()
    assert max_statistics(local, texts) == max_statistics(maxed, texts)
    assert winning_ngrams(local, texts)[0]["top"] == [("good movie", 2)]
    # "the good movie": windows (the, good) 0, (good, movie) 1, one region of 2; column 0 = slot 0
    [ngram] = explain(local, "the good movie")["for"]
    value = 1.0 if pooling == "local-max" else 0.5
    assert (ngram["ngram"], ngram["slot"], ngram["value"]) == ("good movie", 0, value)
    pooled, _ = pooled_vectors(local, texts)
    assert pooled.shape == (4, local.model.config.pooled_size) == (4, 2 * 2)


def test_filler_words_leave_the_max_and_dilute_the_average():
    texts = ["good movie", "the good movie"]
    shifted = [with_filler(t, 3, filler="bad") for t in texts]
    assert shifted[0] == "bad bad bad good movie"
    maxed = compare_texts(bigram_classifier(pooling="max"), texts, shifted)
    averaged = compare_texts(bigram_classifier(pooling="avg"), texts, shifted)
    assert maxed.max_abs_change == 0.0  # the bigram's feature is 1 wherever the bigram is
    assert averaged.max_abs_change > 0.1  # 1 / windows: 1/1 -> 1/4 for "good movie"
    pooled, _ = pooled_vectors(bigram_classifier(pooling="avg"), shifted)
    assert pooled[0, 0].item() == pytest.approx(1 / 4)


def test_pooled_vectors_keep_the_input_order():
    classifier = bigram_classifier()
    texts = ["bad movie the good movie the bad", "good movie", "bad"]  # sorted by length inside
    pooled, logits = pooled_vectors(classifier, texts)
    assert pooled[:, 0].tolist() == [1.0, 1.0, 0.0]
    assert logits.argmax(dim=1).tolist() == [1, 1, logits[2].argmax().item()]


def test_without_convolution_the_winners_are_single_words(tmp_path):
    config = ModelConfig(
        vocab_size=len(WORDS), num_classes=2, embedding_dim=len(WORDS), convolution=False, pooling="max"
    )
    model = TextCNN(config)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(len(WORDS)))
        model.embedding.weight[0].zero_()
        model.classifier.weight.zero_()
        model.classifier.weight[:, GOOD] = torch.tensor([-1.0, 1.0])  # the "good" dimension votes positive
        model.classifier.bias.zero_()
    classifier = Classifier(model, TextEncoder(Vocabulary(WORDS), "kim"), ["negative", "positive"])
    explanation = explain(classifier, "the good movie")
    assert explanation["label"] == "positive"
    assert [(c["ngram"], c["width"], c["filter"]) for c in explanation["for"]] == [("good", 1, GOOD)]
    maps = winning_ngrams(classifier, ["the good movie", "good"])
    assert maps[GOOD]["top"] == [("good", 2)]
    classifier.save(tmp_path / "no-conv")  # a bundle without convolutions loads back the same
    again = Classifier.load(tmp_path / "no-conv", device="cpu")
    assert again.model.config.convolution is False
    assert explain(again, "the good movie") == explanation


def test_move_span_moves_the_phrase_to_the_front_or_else_to_the_back():
    tokens = ["a", "b", "c", "d", "e"]
    assert move_span(tokens, 2, 4) == ["c", "d", "a", "b", "e"]
    assert move_span(tokens, 0, 2) == ["c", "d", "e", "a", "b"]
    assert move_span(tokens, 4, 5) == ["e", "a", "b", "c", "d"]
    with pytest.raises(ValueError, match="not inside"):
        move_span(tokens, 3, 6)


@pytest.mark.parametrize("wide", [False, True])
def test_moving_the_key_phrase_keeps_its_max_and_shifts_the_average(wide):
    texts = ["the bad the good movie", "good movie the the", "good movie", "bad bad"]
    originals, variants = key_phrase_moved(bigram_classifier(wide=wide), texts)
    # "good movie" alone is one phrase (nothing to move); "bad bad" has no n-gram speaking for it.
    assert originals == ["the bad the good movie", "good movie the the"]
    assert variants == ["good movie the bad the", "the the good movie"]
    maxed = compare_texts(bigram_classifier(wide=wide), originals, variants)
    assert maxed.max_abs_change == 0.0 and maxed.unchanged_predictions == 1.0
    averaged = compare_texts(bigram_classifier(wide=wide, pooling="avg"), originals, variants)
    assert averaged.max_abs_change == 0.0  # same windows, same mean: the move only reorders them
