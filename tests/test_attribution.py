"""`explain_text`: the predicted logit split over biases and tokens, checked three ways.

The parts must add up to the model's own float32 logit; each token's part must equal gradient x
input at that token's word vector (the logit is piecewise linear in the word vectors, and the
split is exactly that linear map; for logsumexp the softmax weights are its derivative too); and
hand-built models give answers computed here by hand.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from textcnn.data.files import read_labeled_file
from textcnn.data.text import PAD, UNK, TextEncoder, Vocabulary
from textcnn.inference.bundle import Classifier
from textcnn.inference.explain import explain_text
from textcnn.model.cnn import (
    ModelConfig,
    TextCNN,
    banked_maps,
    cached_filter_bank,
    pad_for_windows,
    pad_ids,
    pool_maps,
    width_maps,
    width_parameters,
)
from textcnn.model.pooling import POOLINGS, SLOT_POOLINGS
from textcnn.model.pooling.functions import learned_pool
from textcnn.train.config import TrainConfig
from textcnn.train.runs import RunSettings, texts_fold, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

LETTERS = [PAD, UNK, *"abcdefgh"]
TEXTS = ["a b c d e f g", "a b", "h", "a b c d e f g h a b c d e", "zzz unknown a"]
WORDS = [PAD, UNK, "good", "movie", "the"]


def random_classifier(pooling: str, variant: str, wide: bool, convolution: bool, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=len(LETTERS),
        num_classes=3,
        embedding_dim=6,
        variant=variant,
        filter_widths=(2, 3, 5),
        num_filters=4,
        wide=wide,
        convolution=convolution,
        pooling=pooling,
        kmax_k=3,
        chunks=2,
        temperature=0.5,
        region=2,
        region_slots=3,  # the 13-token text folds into the last slot, "h" leaves slots empty
    )
    model = TextCNN(config)
    with torch.no_grad():
        if model.static_embedding is not None:  # a second table that differs from the first
            model.static_embedding.weight.uniform_(-0.3, 0.3)
            model.static_embedding.weight[0].zero_()  # <pad> embeds to zeros, as padding_idx keeps it
        for conv in model.convs:
            conv.bias.uniform_(-0.1, 0.3)  # some windows pass the ReLU, some do not
    return Classifier(model, TextEncoder(Vocabulary(LETTERS), "kim"), ["x", "y", "z"])


def _pooled(model, i: int, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Width i's pooled values; a learned pooling's softmax weights held fixed: the weighted mean is
    then linear in the activations, the map its explanation splits (its weights, not their motion)."""
    learned = width_parameters(model, i)
    if learned is None:
        return pool_maps(maps, mask, model.config).values
    return learned_pool(maps, mask, learned.detach(), hold_weights=True).values


def gradient_x_input(classifier: Classifier, text: str, label: int) -> torch.Tensor:
    """(L,) d logit / d x_t · x_t per token, through the model's own forward functions (float32).

    With convolution, through the prediction path (`banked_maps`), as `explain` follows it: where a
    repeated n-gram ties two windows, rounding picks the one a max keeps, and the gradient credits
    only that one, so both must see the same maps."""
    model, config = classifier.model, classifier.model.config
    ids = torch.tensor([classifier.encoder.encode(text)])
    lengths = torch.tensor([ids.shape[1]])
    if config.convolution:
        x0 = model.word_vectors(pad_ids(ids, config)).detach().requires_grad_()  # (1, T, D): channels summed
        bank = [t.clone() for t in cached_filter_bank(model)]  # explain may have built it in inference mode
        per_width = banked_maps(x0[None], lengths, config, *bank)
    else:
        x0 = model.embed(pad_ids(ids, config)).detach().requires_grad_()  # (1, D, T)
        per_width = [width_maps(pad_for_windows(x0, config), lengths, config, 1)]
    pooled = torch.cat([_pooled(model, i, maps, mask) for i, (maps, mask) in enumerate(per_width)], dim=1)
    model.classifier(pooled)[0, label].backward()
    vector_axis = 1 if config.convolution else 0  # sum each token's part over its vector
    return (x0.grad * x0)[0].sum(dim=vector_axis)[: ids.shape[1]].detach()


def logsumexp_gap(classifier: Classifier, text: str, label: int) -> float:
    """Σ_j W[c, j] (pooled_j - Σ_p softmax_p a_p): what the softmax weights leave out, from the model's maps."""
    model, config = classifier.model, classifier.model.config
    ids = torch.tensor([classifier.encoder.encode(text)])
    gaps = []
    with torch.no_grad():
        for maps, mask in model.feature_maps(pad_ids(ids, config), torch.tensor([ids.shape[1]])):
            a = maps[0][:, mask[0]].double()  # (F, n) real windows
            pooled = config.temperature * (
                torch.logsumexp(a / config.temperature, dim=1)
                - torch.log(torch.tensor(float(a.shape[1]), dtype=torch.float64))
            )
            gaps.append(pooled - (torch.softmax(a / config.temperature, dim=1) * a).sum(dim=1))
    return float(model.classifier.weight[label].detach().double() @ torch.cat(gaps))


def check_explanation(classifier: Classifier, text: str, top: int = 4) -> dict:
    """Every invariant of one explanation; returns it."""
    e = explain_text(classifier, text, top=top)
    label = classifier.label_names.index(e["label"])
    tokens = e["tokens"]
    assert len(e["token_parts"]) == len(tokens)
    parts = e["output_bias"] + e["filter_bias"] + sum(e["token_parts"])
    assert parts + e["residual"] == pytest.approx(e["logit"], abs=1e-9)
    assert e["logit"] == pytest.approx(float(classifier.logits([text])[0, label]), abs=1e-6)
    assert e["exact"] == (classifier.model.config.pooling != "logsumexp")
    if e["exact"]:
        assert abs(e["residual"]) <= 1e-4
    else:
        assert e["residual"] == pytest.approx(logsumexp_gap(classifier, text, label), abs=1e-4)
    assert e["token_parts"] == pytest.approx(gradient_x_input(classifier, text, label).tolist(), abs=1e-4)
    assert sum(e["probabilities"].values()) == pytest.approx(1.0)
    assert max(e["probabilities"], key=e["probabilities"].get) == e["label"]
    for side, sign in (("for", 1), ("against", -1)):
        contributions = [g["contribution"] for g in e[side]]
        assert len(contributions) <= top and all(sign * c > 0 for c in contributions)
        assert contributions == sorted(contributions, key=lambda c: -sign * c)
        for g in e[side]:
            assert 0 <= g["start"] < g["end"] <= len(tokens)
            assert g["ngram"] == " ".join(tokens[g["start"] : g["end"]])
            assert len(g["token_parts"]) == g["end"] - g["start"] <= g["width"]
            assert g["filter_bias"] + sum(g["token_parts"]) == pytest.approx(g["contribution"], abs=1e-9)
            assert g["weight"] * g["activation"] == pytest.approx(g["contribution"], abs=1e-9)
            assert ("part" in g) == (classifier.model.config.pooling == "max+avg")
    return e


@pytest.mark.parametrize(
    ("pooling", "variant", "wide", "convolution"),
    list(itertools.product(POOLINGS, ("rand", "multichannel"), (True, False), (True, False))),
)
def test_the_parts_add_up_to_the_logit(pooling, variant, wide, convolution):
    classifier = random_classifier(pooling, variant, wide, convolution)
    for text in TEXTS:  # "h" and "a b" are shorter than the widest filter (5)
        check_explanation(classifier, text)


@pytest.fixture(scope="module")
def trained() -> dict[str, Classifier]:
    """Tiny real models, one per pooling (and max without convolution), trained on the sample sentences."""
    train = read_labeled_file(Path(__file__).parents[1] / "data" / "samples" / "tiny.jsonl")
    texts, labels = train.texts, train.labels
    fold = texts_fold((texts, labels), (texts[:4], labels[:4]))
    models = {}
    for pooling, convolution in [(p, True) for p in POOLINGS] + [("max", False)]:
        options = {"embedding_dim": 16, "num_filters": 8, "pooling": pooling, "convolution": convolution}
        outcome = train_classifier(
            fold, sorted(set(labels)), RunSettings(options, TrainConfig(epochs=2)), progress=False
        )
        models[pooling if convolution else "max:no-conv"] = outcome.classifier
    return models


@pytest.mark.parametrize("pooling", [*POOLINGS, "max:no-conv"])
def test_trained_models_split_exactly(trained, pooling):
    for text in [
        "a warm , funny and surprisingly moving film .",
        "flat",
        "the jokes fall flat and the plot is thin",
    ]:
        check_explanation(trained[pooling], text)


def test_a_trained_multichannel_model_splits_exactly(glove_file):
    train = read_labeled_file(Path(__file__).parents[1] / "data" / "samples" / "tiny.jsonl")
    fold = texts_fold((train.texts, train.labels), (train.texts[:4], train.labels[:4]))
    options = {"variant": "multichannel", "num_filters": 8, "pooling": "max+avg"}
    settings = RunSettings(options, TrainConfig(epochs=2), vectors=str(glove_file))
    classifier = train_classifier(fold, sorted(set(train.labels)), settings, progress=False).classifier
    model = classifier.model
    assert not torch.equal(model.embedding.weight, model.static_embedding.weight)  # the tuned channel moved
    for text in ["a warm , funny and surprisingly moving film .", "flat"]:
        check_explanation(classifier, text)


def test_the_tiny_bundle_splits_exactly(tiny_bundle):
    e = check_explanation(Classifier.load(tiny_bundle, device="cpu"), "a warm and funny film")
    assert e["tokens"] == ["a", "warm", "and", "funny", "film"]


def bigram_classifier(pooling: str = "max", wide: bool = False, **options) -> Classifier:
    """One filter of width 2, K[:, 0] = (1, 0), K[:, 1] = (0, 1), bias -0.5: the first word's first
    coordinate plus the second word's second. good = (2, 0), movie = (0, 3), the = (1, 1).
    Output: positive = 0.25 + 2 × pooled, negative = -pooled (every further column weighs 0)."""
    config = ModelConfig(
        vocab_size=len(WORDS),
        num_classes=2,
        embedding_dim=2,
        filter_widths=(2,),
        num_filters=1,
        wide=wide,
        pooling=pooling,
        **({"region": 2, "region_slots": 2} if pooling in SLOT_POOLINGS else {}) | options,
    )
    model = TextCNN(config)
    with torch.no_grad():
        model.embedding.weight.copy_(
            torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
        )
        model.convs[0].weight.copy_(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
        model.convs[0].bias.fill_(-0.5)
        model.classifier.weight.zero_()
        model.classifier.weight[:, 0] = torch.tensor([-1.0, 2.0])
        model.classifier.bias.copy_(torch.tensor([0.0, 0.25]))
    return Classifier(model, TextEncoder(Vocabulary(WORDS), "kim"), ["negative", "positive"])


@pytest.mark.parametrize("wide", [False, True])
def test_max_pooling_by_hand(wide):
    # Windows (the, good): -0.5 + 1 + 0 = 0.5; (good, movie): -0.5 + 2 + 3 = 4.5; wide adds
    # (<0>, the): -0.5 + 1 = 0.5 and (movie, <0>): -0.5 (blocked). The max is "good movie".
    e = check_explanation(bigram_classifier(wide=wide), "the good movie")
    assert (e["label"], e["logit"], e["output_bias"]) == ("positive", 9.25, 0.25)
    assert e["filter_bias"] == -1.0 and e["token_parts"] == [0.0, 4.0, 6.0] and e["residual"] == 0.0
    assert e["for"] == [
        {
            "start": 1,
            "end": 3,
            "ngram": "good movie",
            "width": 2,
            "filter": 0,
            "slot": 0,
            "activation": 4.5,
            "weight": 2.0,
            "contribution": 9.0,
            "filter_bias": -1.0,
            "token_parts": [4.0, 6.0],
            "characters": False,
        }
    ]
    assert e["against"] == []
    assert "winning window" in e["attribution"]


def test_avg_pooling_by_hand():
    # Both narrow windows pass: pooled = (0.5 + 4.5) / 2 = 2.5, positive = 0.25 + 5.
    # Each window at weight 2 / 2 = 1: (the, good) gives the 1, good 0; (good, movie) good 2, movie 3.
    e = check_explanation(bigram_classifier(pooling="avg"), "the good movie")
    assert (e["label"], e["logit"]) == ("positive", 5.25)
    assert e["filter_bias"] == -1.0 and e["token_parts"] == [1.0, 2.0, 3.0]
    assert [
        (g["ngram"], g["activation"], g["contribution"], g["filter_bias"], g["token_parts"]) for g in e["for"]
    ] == [
        ("good movie", 2.25, 4.5, -0.5, [2.0, 3.0]),
        ("the good", 0.25, 0.5, -0.5, [1.0, 0.0]),
    ]
    assert "1/n" in e["attribution"]


def test_avg_pooling_in_wide_mode_counts_the_edge_windows():
    # Wide: 4 windows, (<0>, the) 0.5 and (movie, <0>) blocked; n = 4, weight 2 / 4 each.
    e = check_explanation(bigram_classifier(pooling="avg", wide=True), "the good movie")
    assert e["logit"] == pytest.approx(0.25 + 2 * (0.5 + 0.5 + 4.5) / 4)
    assert [g["ngram"] for g in e["for"]] == ["good movie", "the", "the good"]  # "the": its edge window
    assert e["for"][1]["activation"] == 0.125 and e["for"][1]["token_parts"] == [0.5]
    assert e["token_parts"] == pytest.approx([0.5 + 0.5, 1.0, 1.5])


def test_kmax_and_chunk_max_by_hand():
    kmax = check_explanation(bigram_classifier(pooling="kmax", kmax_k=3), "the good movie")
    # Two windows for three slots: slots 0, 1 hold them in sentence order, slot 2 is empty (0).
    # The classifier reads column 0 = slot 0 of filter 0 only: (the, good) at 0.5.
    assert [(g["ngram"], g["slot"], g["contribution"]) for g in kmax["for"]] == [("the good", 0, 1.0)]
    assert kmax["logit"] == 1.25
    chunked = check_explanation(bigram_classifier(pooling="chunk-max", chunks=2), "good movie the good")
    # Windows (good, movie) 4.5, (movie, the) -0.5 + 0 + 1 = 0.5, (the, good) 0.5; region 0 holds
    # window 0 (rank 0 × 2 // 3 = 0) and window 1, region 1 window 2: column 0 is region 0's winner.
    assert [(g["ngram"], g["slot"], g["activation"]) for g in chunked["for"]] == [("good movie", 0, 4.5)]


def test_local_max_and_local_avg_by_hand():
    # Narrow windows of "good movie the good movie": (good, movie) 4.5, (movie, the) 0.5,
    # (the, good) 0.5, (good, movie) 4.5. Regions of 2 windows, 2 slots: slot 0 = windows 0, 1,
    # slot 1 = windows 2, 3. The classifier reads column 0 = slot 0 of filter 0 only.
    text = "good movie the good movie"
    local_max = check_explanation(bigram_classifier(pooling="local-max"), text)
    assert [(g["ngram"], g["slot"], g["activation"]) for g in local_max["for"]] == [("good movie", 0, 4.5)]
    assert local_max["logit"] == 0.25 + 2 * 4.5
    local_avg = check_explanation(bigram_classifier(pooling="local-avg"), text)
    # slot 0 = (4.5 + 0.5) / 2: each of its windows at weight 2 × 1/2
    assert local_avg["logit"] == 0.25 + 2 * 2.5
    assert [(g["ngram"], g["slot"], g["activation"], g["contribution"]) for g in local_avg["for"]] == [
        ("good movie", 0, 2.25, 4.5),
        ("movie the", 0, 0.25, 0.5),
    ]
    # One slot: a longer sentence folds every window into it, so local-avg is avg and local-max is max.
    folded = check_explanation(bigram_classifier(pooling="local-avg", region_slots=1), text)
    assert folded["logit"] == pytest.approx(0.25 + 2 * (4.5 + 0.5 + 0.5 + 4.5) / 4)
    assert "1/n of the slot" in folded["attribution"]
    # Short: "good" has one window; slot 1 is empty and gives nothing.
    short = check_explanation(bigram_classifier(pooling="local-max"), "good")
    assert [(g["ngram"], g["slot"]) for g in short["for"]] == [("good", 0)]


def test_padded_avg_by_hand():
    # Narrow windows of "good movie the good movie": 4.5, 0.5, 0.5, 4.5. A padded length of 8
    # windows: the sum over 8, each window at weight 2 × 1/8; a padded length under the sentence's
    # 4 windows: its own mean, as avg.
    text = "good movie the good movie"
    padded = check_explanation(bigram_classifier(pooling="padded-avg", region_slots=8), text)
    assert padded["logit"] == 0.25 + 2 * 10.0 / 8
    assert [(g["ngram"], g["activation"], g["contribution"]) for g in padded["for"]] == [
        ("good movie", 4.5 / 8, 9.0 / 8),
        ("good movie", 4.5 / 8, 9.0 / 8),
        ("movie the", 0.5 / 8, 1.0 / 8),
        ("the good", 0.5 / 8, 1.0 / 8),
    ]
    assert "padded length" in padded["attribution"]
    short = check_explanation(bigram_classifier(pooling="padded-avg", region_slots=2), text)
    assert short["logit"] == check_explanation(bigram_classifier(pooling="avg"), text)["logit"] == 0.25 + 5.0


def test_max_plus_avg_names_each_half():
    e = check_explanation(bigram_classifier(pooling="max+avg"), "the good movie")
    assert [(g["part"], g["ngram"]) for g in e["for"]] == [("max", "good movie")]  # the avg column weighs 0


def test_without_convolution_the_parts_are_the_word_vectors():
    config = ModelConfig(
        vocab_size=len(WORDS), num_classes=2, embedding_dim=2, convolution=False, pooling="max"
    )
    model = TextCNN(config)
    with torch.no_grad():
        model.embedding.weight.copy_(
            torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, -1.0], [-3.0, -2.0], [1.0, -4.0]])
        )
        model.classifier.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0]]))
        model.classifier.bias.zero_()
    classifier = Classifier(model, TextEncoder(Vocabulary(WORDS), "kim"), ["negative", "positive"])
    e = check_explanation(classifier, "the good movie")
    # Coordinate 0: max 2 at "good" (weight 1); coordinate 1: max -1 at "good" (weight -1), no bias.
    assert (e["label"], e["logit"], e["filter_bias"]) == ("positive", 3.0, 0.0)
    assert e["token_parts"] == [0.0, 3.0, 0.0]
    assert [(g["ngram"], g["filter"], g["activation"], g["contribution"]) for g in e["for"]] == [
        ("good", 0, 2.0, 2.0),
        ("good", 1, -1.0, 1.0),
    ]


def test_a_text_shorter_than_the_filter():
    # Narrow: "good" alone gets its one window (good, <pad>): -0.5 + 2 + 0 = 1.5.
    e = check_explanation(bigram_classifier(), "good")
    assert e["logit"] == 3.25 and e["token_parts"] == [4.0] and e["filter_bias"] == -1.0
    assert [(g["start"], g["end"], g["ngram"], g["activation"]) for g in e["for"]] == [(0, 1, "good", 1.5)]
    wide = check_explanation(random_classifier("max", "rand", wide=False, convolution=True), "a")
    assert len(wide["token_parts"]) == 1


@pytest.mark.parametrize("pooling", POOLINGS)
def test_dead_maps_leave_only_the_output_bias(pooling):
    classifier = bigram_classifier(pooling=pooling)
    with torch.no_grad():
        classifier.model.convs[0].bias.fill_(-100.0)  # no window passes the ReLU
    e = check_explanation(classifier, "the good movie")
    assert e["filter_bias"] == 0.0 and e["token_parts"] == [0.0, 0.0, 0.0]
    assert e["for"] == [] and e["against"] == []
    assert e["logit"] == pytest.approx(e["output_bias"], abs=1e-6)  # logsumexp of zeros: log n - log n
    if pooling != "logsumexp":
        assert e["logit"] == e["output_bias"] and e["residual"] == 0.0


def test_top_limits_each_side():
    classifier = random_classifier("avg", "rand", wide=True, convolution=True)
    e = explain_text(classifier, TEXTS[3], top=2)
    assert len(e["for"]) <= 2 and len(e["against"]) <= 2
    assert explain_text(classifier, TEXTS[3], top=50)["for"][:2] == e["for"]
