"""Mixed ensembles: members of several poolings and shapes, a linear n-gram member, one bundle.

What is checked: the linear member predicts what the scikit-learn baseline predicts; a mixed
ensemble's forward is the weighted mean of its members' own probabilities; bundles round-trip
(and old bundles load and predict exactly as before); broken linear members and mismatched
members are refused in one line; explanations add up exactly with every member's part; the
`train` and `ensemble` commands make such bundles.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from textcnn import BundleError, Classifier, explain_text
from textcnn.data.splits import Fold, LabeledTexts
from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.inference.compose import compose
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.ensemble import Ensemble
from textcnn.model.linear import fit_baseline, make_baseline
from textcnn.model.linear_member import LinearMember, fit_scale, ngram_keys
from textcnn.model.mixed import MixedEnsemble, dev_weights
from textcnn.train.protocol import train_folds
from textcnn.train.runs import Mixture, RunSettings, texts_fold

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")

GOOD = ["great", "wonderful", "moving", "funny", "brilliant", "warm"]
BAD = ["dull", "flat", "boring", "tedious", "lifeless", "thin"]
FILLER = ["the", "film", "plot", "a", "is", "and", "of", "story", "acting", "was", "not"]


def synthetic(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Sentences whose label follows their sentiment words, with "not" flipping the next one."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(3, 9))
        positive = rng.random() < 0.5
        cue = rng.choice(GOOD if positive else BAD)
        if rng.random() < 0.2:  # "not dull" reads positive
            cue = "not " + rng.choice(BAD if positive else GOOD)
        words.insert(rng.randrange(len(words) + 1), cue)
        texts.append(" ".join(words))
        labels.append("positive" if positive else "negative")
    return texts, labels


@pytest.fixture(scope="module")
def fold() -> Fold:
    return texts_fold(synthetic(300, 0), synthetic(80, 1), synthetic(80, 2))


@pytest.fixture(scope="module")
def encoder(fold) -> TextEncoder:
    probe = TextEncoder(Vocabulary(["<pad>", "<unk>"]), "kim")
    return TextEncoder(Vocabulary.build((probe.tokenize(t) for t in fold.train.texts), 1, None), "kim")


def encoded(encoder: TextEncoder, part: LabeledTexts, labels=("negative", "positive")):
    batch = encoder.pad(encoder.encode_many(part.texts), 1)
    return batch.ids, batch.lengths, [labels.index(y) for y in part.labels]


@pytest.mark.parametrize("kind", ["nbsvm", "tfidf-lr", "char-lr"])
def test_the_linear_member_predicts_what_the_scikit_learn_baseline_predicts(fold, encoder, kind):
    member = LinearMember.fit(
        kind,
        encoded(encoder, fold.train),
        encoded(encoder, fold.dev),
        len(encoder.vocab),
        2,
        vocab=encoder.vocab.itos,
    )
    baseline = fit_baseline(kind, fold, ["negative", "positive"], "kim")
    assert member.config.C == baseline.C  # the same choice on dev
    ids, lengths, _ = encoded(encoder, fold.test)
    with torch.no_grad():
        scores = member.scores(ids, lengths)
    # The fitted pipeline's decision function, from the same tokens and C.
    tokenized = [" ".join(encoder.tokenize(t)) for t in fold.train.texts]
    pipeline = make_baseline(kind, baseline.C).fit(
        tokenized, [int(y == "positive") for y in fold.train.labels]
    )
    decision = pipeline.decision_function([" ".join(encoder.tokenize(t)) for t in fold.test.texts])
    np.testing.assert_allclose((scores[:, 1] - scores[:, 0]).numpy(), decision, rtol=1e-4, atol=1e-4)
    assert scores.argmax(dim=1).tolist() == baseline.test_predictions


def test_ngram_keys_skip_padding_and_binarize_repeats(encoder):
    member = LinearMember.fit(
        "nbsvm",
        encoded(encoder, texts_fold(synthetic(50, 3), synthetic(20, 4)).train),
        encoded(encoder, texts_fold(synthetic(50, 3), synthetic(20, 4)).dev),
        len(encoder.vocab),
        2,
    )
    once = encoder.pad([encoder.encode("great film")], 1)
    twice = encoder.pad([encoder.encode("great film great film")], 1)
    padded = encoder.pad([encoder.encode("great film"), encoder.encode("a b c d e f g")], 1)
    with torch.no_grad():
        a, b = member(once.ids, once.lengths), member(twice.ids, twice.lengths)
        c = member(padded.ids, padded.lengths)[:1]
    # "film great" is the one bigram the repeat adds; padding adds nothing.
    rows, keys = ngram_keys(twice.ids, twice.lengths, len(encoder.vocab))
    assert len(keys) == 4 + 3 and rows.tolist() == [0] * 7
    assert torch.allclose(a, c, atol=1e-6)
    V = len(encoder.vocab)
    film_great = V * (encoder.vocab.lookup(["film"])[0] + 1) + encoder.vocab.lookup(["great"])[0]
    if film_great not in member.keys.tolist():
        assert torch.allclose(a, b, atol=1e-6)  # binarized: repeats count once


def test_fit_scale_finds_the_temperature_that_made_the_data():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(4000, 3, generator=generator) * 2
    labels = torch.multinomial(torch.softmax(scores * 0.5, dim=1), 1, generator=generator).squeeze(1)
    assert fit_scale(scores, labels) == pytest.approx(0.5, rel=0.1)


def small_cnn(vocab_size: int, pooling: str, widths=(2, 3), seed: int = 0) -> TextCNN:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab_size,
        num_classes=2,
        embedding_dim=8,
        filter_widths=widths,
        num_filters=4,
        pooling=pooling,
    )
    return TextCNN(config).eval()


@pytest.fixture(scope="module")
def mixed(fold, encoder) -> Classifier:
    V = len(encoder.vocab)
    maxes = [small_cnn(V, "max", seed=s) for s in (0, 1)]
    avgs = [small_cnn(V, "avg", widths=(3, 4, 5), seed=s) for s in (2, 3, 4)]
    linear = LinearMember.fit("nbsvm", encoded(encoder, fold.train), encoded(encoder, fold.dev), V, 2)
    model = MixedEnsemble([Ensemble.of(maxes), Ensemble.of(avgs)], linear, [1, 1, 2, 2, 2, 4])
    return Classifier(model.eval(), encoder, ["negative", "positive"], {"data": {"dataset": "synthetic"}})


def test_the_forward_is_the_weighted_mean_of_the_members_own_probabilities(mixed, fold):
    texts = [*fold.test.texts[:20], "great", "x"]
    weights = torch.tensor([1, 1, 2, 2, 2, 4]) / 12
    assert mixed.model.weights.tolist() == pytest.approx(weights.tolist())
    expected = 0
    for member, weight in zip(mixed.member_list(), weights, strict=True):
        alone = Classifier(member.model, mixed.encoder, mixed.label_names) if member.kind == "cnn" else None
        if alone is not None:
            probabilities = torch.as_tensor(alone.predict_proba(texts))
        else:
            batch = mixed.encoder.pad(mixed.encoder.encode_many(texts), 1)
            probabilities = torch.softmax(member.model(batch.ids, batch.lengths), dim=1)
        expected = expected + weight * probabilities
    assert torch.allclose(torch.as_tensor(mixed.predict_proba(texts)), expected.float(), atol=1e-6)
    assert [m.kind for m in mixed.member_list()] == ["cnn"] * 5 + ["nbsvm"]
    assert mixed.min_length == 5  # the widest filter of any group


def test_a_mixed_bundle_round_trips_and_reports_its_members(mixed, tmp_path, fold):
    mixed.save(tmp_path / "mixed")
    loaded = Classifier.load(tmp_path / "mixed", device="cpu")
    texts = list(fold.test.texts)
    assert torch.equal(loaded.logits(texts), mixed.logits(texts))
    config = json.loads((tmp_path / "mixed" / "config.json").read_text())
    assert config["format_version"] == 2 and "model" not in config
    assert [g["size"] for g in config["mixture"]["groups"]] == [2, 3]
    assert config["mixture"]["linear"]["kind"] == "nbsvm"
    card = loaded.card
    assert [m["kind"] for m in card.members] == ["cnn"] * 5 + ["nbsvm"]
    assert [m.get("pooling") for m in card.members[:5]] == ["max", "max", "avg", "avg", "avg"]
    assert card.pooling["name"] == "max+avg" and card.pooling["exact"]
    assert sum(m["weight"] for m in card.members) == pytest.approx(1)
    # a plain model saved over the mixed bundle leaves no stale linear member behind
    Classifier(mixed.members[0], mixed.encoder, mixed.label_names).save(tmp_path / "mixed")
    assert not (tmp_path / "mixed" / "linear.safetensors").exists()
    half = Classifier.load(mixed.save(tmp_path / "half", half=True), device="cpu")
    assert torch.allclose(half.logits(texts), mixed.logits(texts), atol=2e-2)


def test_a_broken_or_missing_linear_member_is_refused_in_one_line(mixed, tmp_path):
    bundle = mixed.save(tmp_path / "m")
    data = (bundle / "linear.safetensors").read_bytes()
    (bundle / "linear.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"linear.safetensors: does not match the sha256") as caught:
        Classifier.load(bundle)
    assert "\n" not in str(caught.value)
    (bundle / "linear.safetensors").unlink()
    with pytest.raises(BundleError, match=r"linear.safetensors \(the linear member\) is missing"):
        Classifier.load(bundle)
    result = subprocess.run(
        [sys.executable, "-m", "textcnn", "predict", str(bundle), "great"], capture_output=True, text=True
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "linear member" in result.stderr


def test_a_linear_member_whose_keys_are_tampered_with_is_refused(mixed, tmp_path):
    from safetensors.torch import load, save

    bundle = mixed.save(tmp_path / "m")
    state = load((bundle / "linear.safetensors").read_bytes())
    state["keys"] = state["keys"].flip(0).contiguous()
    data = save(state)
    (bundle / "linear.safetensors").write_bytes(data)
    config = json.loads((bundle / "config.json").read_text())
    import hashlib

    config["mixture"]["linear"]["sha256"] = hashlib.sha256(data).hexdigest()  # a consistent forgery
    (bundle / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="n-gram keys are not sorted"):
        Classifier.load(bundle)


RECORDED = {  # logits of three texts, recorded with the code before mixed ensembles (commit 88f15c4)
    # models/default as it was then: 5 max members, format 1; today's default holds them unchanged
    "max x5": [
        [-2.8083088397979736, -0.062201954424381256],
        [-0.964043915271759, -0.4802117943763733],
        [-0.551849365234375, -0.8577477931976318],
    ],
    "single": [
        [-1.4943833351135254, 1.4612456560134888],
        [-0.617569625377655, 0.4314609169960022],
        [0.07020244002342224, -0.05545583367347717],
    ],
}
RECORDED_TEXTS = [
    "a gripping, beautifully acted film",
    "not funny, not moving, just long",
    "it is what it is",
]


def test_format_1_bundles_predict_exactly_as_before(tmp_path):
    """models/single (a format-1 single model) as shipped, and the 5-member ensemble shipped as the
    default before (its members are today's default's CNN group, bit for bit), saved as a format-1
    ensemble and loaded back: the same logits, to the last bit, as the code before mixed ensembles."""
    single = Classifier.load(REPO / "models" / "single", device="cpu")
    assert not isinstance(single.model, MixedEnsemble) and len(single.member_list()) == 1
    assert single.logits(RECORDED_TEXTS).tolist() == RECORDED["single"]
    assert explain_text(single, RECORDED_TEXTS[1], top=3)["members"] is None
    default = Classifier.load(REPO / "models" / "default", device="cpu")
    (group,) = default.model.groups
    old = Classifier(group, default.encoder, default.label_names, {"ensemble": {"members": [{}] * 5}})
    old.save(tmp_path / "max5", half=True)
    assert json.loads((tmp_path / "max5" / "config.json").read_text())["format_version"] == 1
    reloaded = Classifier.load(tmp_path / "max5", device="cpu")
    assert isinstance(reloaded.model, Ensemble) and not isinstance(reloaded.model, MixedEnsemble)
    assert reloaded.logits(RECORDED_TEXTS).tolist() == RECORDED["max x5"]
    explanation = explain_text(reloaded, RECORDED_TEXTS[1], top=3)
    assert abs(explanation["residual"]) < 1e-5 and len(explanation["members"]) == 5


def test_the_shipped_default_is_the_old_ensemble_and_nbsvm_weighed_on_dev():
    default = Classifier.load(REPO / "models" / "default", device="cpu")
    assert [m.kind for m in default.member_list()] == ["cnn"] * 5 + ["nbsvm"]
    shares = default.info["ensemble"]["shares"]
    assert sum(shares) == pytest.approx(1) and len(shares) == 2
    assert default.info["metrics"]["test"]["accuracy"] > 0.79
    explanation = explain_text(default, RECORDED_TEXTS[1], top=5)
    assert abs(explanation["residual"]) < 1e-5 and explanation["members"][5]["kind"] == "nbsvm"


def test_a_mixed_explanation_adds_up_and_shows_every_members_part(mixed):
    for text in ["the plot is not dull and the acting great", "boring", "great great film film"]:
        explanation = explain_text(mixed, text, top=50)
        c = mixed.label_names.index(explanation["label"])
        assert explanation["exact"] and abs(explanation["residual"]) < 1e-5
        verdicts = explanation["members"]
        assert [v["kind"] for v in verdicts] == ["cnn"] * 5 + ["nbsvm"]
        assert [v["pooling"] for v in verdicts] == ["max", "max", "avg", "avg", "avg", None]
        # The explained logit is the weighted mean of the members' own logits of the label ...
        assert explanation["logit"] == pytest.approx(
            sum(v["weight"] * v["logit"] for v in verdicts), abs=1e-6
        )
        # ... and the members' weighted token parts add up to the text's.
        summed = np.sum([v["token_parts"] for v in verdicts], axis=0)
        np.testing.assert_allclose(summed, explanation["token_parts"], atol=1e-9)
        # The linear member's part: its n-grams, exactly (no filter bias), with its kind.
        linear = [e for e in explanation["for"] + explanation["against"] if e.get("kind") == "nbsvm"]
        assert linear and all(e["member"] == 5 and e["filter_bias"] == 0 for e in linear)
        batch = mixed.encoder.pad([mixed.encoder.encode(text)], 1)
        with torch.no_grad():
            own = mixed.model.linear(batch.ids, batch.lengths)[0, c].item()
        assert verdicts[5]["logit"] == pytest.approx(own, abs=1e-5)
        bias = mixed.model.linear.config.scale * mixed.model.linear.bias[c].item()
        assert sum(verdicts[5]["token_parts"]) / verdicts[5]["weight"] == pytest.approx(own - bias, abs=1e-5)
        probabilities = mixed.predict([text])[0].probabilities
        assert explanation["probabilities"] == pytest.approx(probabilities, abs=1e-6)


def test_dev_weights_give_the_better_part_the_larger_share():
    labels = torch.tensor([0, 1] * 50)
    right = torch.nn.functional.one_hot(labels, 2).float() * 0.8 + 0.1
    noise = torch.full((100, 2), 0.5)
    probabilities = torch.stack([noise, noise, right])
    weights, chosen = dev_weights(probabilities, labels, [[0, 1], [2]])
    assert chosen["shares"] == [0.0, 1.0] and weights == pytest.approx([0, 0, 1])
    even, _ = dev_weights(torch.stack([right, right]), labels, [[0], [1]])
    assert even == pytest.approx([0.5, 0.5])  # ties keep equal shares


def sample_corpus():
    from textcnn.data.corpus import load_corpus

    return load_corpus(None, train=str(REPO / "data" / "samples" / "tiny.csv"))


def test_train_folds_makes_a_mixed_bundle_and_a_linear_only_one(tmp_path):
    from textcnn.data.folds import make_folds
    from textcnn.train.config import TrainConfig

    corpus = sample_corpus()
    folds = make_folds(corpus, 3, 1, seed=0)
    settings = RunSettings({"embedding_dim": 8, "num_filters": 4}, TrainConfig(epochs=2))
    mixture = Mixture(("max", "avg"), "nbsvm", "dev")
    run = train_folds(corpus, folds, tmp_path / "mix", settings, progress=False, ensemble=3, mixture=mixture)
    classifier = Classifier.load(run.bundles[0], device="cpu")
    members = classifier.info["ensemble"]["members"]
    assert [m["kind"] for m in members] == ["cnn", "cnn", "cnn", "nbsvm"]
    assert [m.get("pooling") for m in members] == ["max", "max", "avg", None]
    assert [m.get("seed") for m in members[:3]] == [0, 2, 1]  # member k: seed 0 + k, pooling k mod 2
    assert sum(classifier.model.weights.tolist()) == pytest.approx(1)
    assert len(classifier.info["ensemble"]["shares"]) == 3
    linear = train_folds(
        corpus,
        folds,
        tmp_path / "lin",
        settings,
        progress=False,
        ensemble=0,
        mixture=Mixture(linear="tfidf-lr"),
    )
    alone = Classifier.load(linear.bundles[0], device="cpu")
    assert [m.kind for m in alone.member_list()] == ["tfidf-lr"] and alone.card.pooling["name"] is None
    assert len(alone.predict(["a warm film"])) == 1


def textcnn(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textcnn", *map(str, args)], capture_output=True, text=True)


def test_the_cli_trains_composes_and_refuses_mismatched_members_in_one_line(tmp_path):
    tiny = REPO / "data" / "samples" / "tiny.csv"
    common = [
        "--train",
        tiny,
        "--folds",
        "3",
        "--fold",
        "1",
        "--epochs",
        "2",
        "--embedding-dim",
        "8",
        "--num-filters",
        "4",
        "--quiet",
    ]
    assert textcnn("train", *common, "--out", tmp_path / "avg", "--pooling", "avg").returncode == 0
    assert textcnn("train", *common, "--out", tmp_path / "max", "--ensemble", "2").returncode == 0
    made = textcnn("train", *common, "--out", tmp_path / "lin", "--ensemble", "0", "--linear", "nbsvm")
    assert made.returncode == 0, made.stderr
    composed = textcnn(
        "ensemble", tmp_path / "max", tmp_path / "avg", tmp_path / "lin", "--out", tmp_path / "all"
    )
    assert composed.returncode == 0, composed.stderr
    assert "4 members (max x2, avg, nbsvm), mean | dev" in composed.stderr  # the data of the members is here
    bundle = Classifier.load(tmp_path / "all", device="cpu")
    assert [m.kind for m in bundle.member_list()] == ["cnn", "cnn", "cnn", "nbsvm"]
    assert bundle.info["ensemble"]["composed_from"] == [str(tmp_path / p) for p in ("max", "avg", "lin")]
    explained = textcnn("explain", tmp_path / "all", "a warm and funny film")
    assert explained.returncode == 0 and "(nbsvm, weight 0.250)" in explained.stdout
    into_a_member = textcnn("ensemble", tmp_path / "max", tmp_path / "avg", "--out", tmp_path / "avg")
    assert into_a_member.returncode == 1 and "is one of the member bundles" in into_a_member.stderr
    # the same shape twice: a plain ensemble, format 1
    same = textcnn("ensemble", tmp_path / "max", tmp_path / "max", "--out", tmp_path / "same")
    assert (
        same.returncode == 0
        and json.loads((tmp_path / "same" / "config.json").read_text())["format_version"] == 1
    )
    # another split (fold 2), another label set, two linear members: one line each
    other = textcnn("train", *common[:5], "2", *common[6:], "--out", tmp_path / "fold2")
    assert other.returncode == 0
    import shutil

    shutil.copytree(tmp_path / "avg", tmp_path / "swapped")  # the same model, its labels the other way round
    config = json.loads((tmp_path / "swapped" / "config.json").read_text())
    config["labels"] = config["labels"][::-1]
    (tmp_path / "swapped" / "config.json").write_text(json.dumps(config))
    for members, fragment in [
        ((tmp_path / "max", tmp_path / "fold2"), "trained on another split"),
        ((tmp_path / "lin", tmp_path / "lin"), "at most one linear member"),
        ((tmp_path / "max", tmp_path / "swapped"), "labels ['positive', 'negative'] differ from"),
        ((tmp_path / "max", tmp_path / "nowhere"), "no model bundle here"),
    ]:
        refused = textcnn("ensemble", *members, "--out", tmp_path / "bad")
        assert refused.returncode == 1 and fragment in refused.stderr, refused.stderr
        assert refused.stderr.strip().count("\n") == 0 and not (tmp_path / "bad").exists()
    for flags, fragment in [
        (("--pooling", "max,avg"), "ask for at least 2 (--ensemble)"),
        (("--ensemble", "0"), "give --linear KIND"),
        (("--pooling", "max,median", "--ensemble", "2"), "unknown pooling 'median'"),
    ]:
        refused = textcnn("train", *common, "--out", tmp_path / "bad", *flags)
        assert refused.returncode != 0 and fragment in refused.stderr, refused.stderr


def test_compose_in_the_library_weights_on_dev(mixed, fold):
    halves = []
    for keep in ([0, 1], [2, 3, 4]):
        models = [mixed.member_list()[k].model for k in keep]
        model = models[0] if len(models) == 1 else Ensemble.of(models)
        halves.append(Classifier(model, mixed.encoder, mixed.label_names, {"data": {"dataset": "synthetic"}}))
    composed = compose(halves, ["a", "b"], "dev", (fold.dev.texts, fold.dev.labels))
    assert isinstance(composed.model, MixedEnsemble) and len(composed.info["ensemble"]["shares"]) == 2
    assert sum(composed.model.weights.tolist()) == pytest.approx(1)
