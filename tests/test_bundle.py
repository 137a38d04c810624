import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from textcnn.data.text import TextEncoder, Vocabulary
from textcnn.errors import BundleError
from textcnn.inference.bundle import Classifier, Prediction, bundle_id
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.mixed import MixedEnsemble

LABELS = ["negative", "positive", "neutral"]
INFO = {"metrics": {"dev_accuracy": 0.75}, "data": {"name": "tiny", "train_size": 6}}
CORPUS = [
    "a gripping , funny film",
    "the plot is dull and it does n't work",
    "i 'd watch it again !",
    "flat , tedious , too long",
    "it 's fine",
    "the cast is great but the script is weak",
]
TEXTS = [
    "great",  # shorter than every filter width
    " ".join(["the plot is dull and the cast is weak"] * 20),  # 180 tokens
    "",
    "a funny film",
    "zebra quokka",  # unknown words only
    " ".join(["it 's a gripping film , funny and great"] * 6),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def make_classifier(seed: int = 0, num_filters: int = 4) -> Classifier:
    vocab = Vocabulary.build(TextEncoder(Vocabulary.build([]), "kim").tokenize(text) for text in CORPUS)
    config = ModelConfig(
        vocab_size=len(vocab),
        num_classes=len(LABELS),
        embedding_dim=8,
        num_filters=num_filters,
        filter_widths=(3, 4, 5),
        extra={"note": "tiny"},
    )
    torch.manual_seed(seed)
    model = TextCNN(config)
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)  # spread the probabilities, so rows are told apart
    return Classifier(model, TextEncoder(vocab, "kim", max_length=150), LABELS, INFO)


@pytest.fixture
def classifier() -> Classifier:
    return make_classifier()


@pytest.fixture
def bundle(tmp_path, classifier) -> Path:
    return classifier.save(tmp_path / "bundle")


def read_config(bundle: Path) -> dict:
    return json.loads((bundle / "config.json").read_text(encoding="utf-8"))


def write_config(bundle: Path, config: dict) -> None:
    (bundle / "config.json").write_text(json.dumps(config), encoding="utf-8")


def write_weights(bundle: Path, tensors: dict[str, torch.Tensor]) -> None:
    """New weights with config.json's digest updated, as a consistent (if wrong) bundle would have."""
    data = save_safetensors(tensors, metadata={"format": "textcnn-bundle"})
    (bundle / "weights.safetensors").write_bytes(data)
    config = read_config(bundle)
    config["weights"]["sha256"] = hashlib.sha256(data).hexdigest()
    write_config(bundle, config)


# -- round trips -------------------------------------------------------------------------------


def test_round_trip_gives_identical_logits(bundle, classifier):
    loaded = Classifier.load(bundle, device="cpu")
    assert torch.equal(loaded.logits(TEXTS), classifier.logits(TEXTS))
    for name, tensor in classifier.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
    assert loaded.model.config == classifier.model.config
    assert loaded.model.config.extra == {"note": "tiny"}
    assert not loaded.model.training


def test_half_bundle_is_smaller_and_close(tmp_path, classifier):
    full = classifier.save(tmp_path / "full")
    half = classifier.save(tmp_path / "half", half=True)
    assert read_config(half)["weights"]["dtype"] == "float16"
    assert (half / "weights.safetensors").stat().st_size < 0.6 * (full / "weights.safetensors").stat().st_size
    loaded = Classifier.load(half, device="cpu")
    assert all(t.dtype == torch.float32 for t in loaded.model.state_dict().values())
    expected = classifier.logits(TEXTS)
    got = loaded.logits(TEXTS)
    assert not torch.equal(got, expected)  # the weights really were rounded
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=2e-2)


def test_labels_info_and_text_settings_survive(bundle, classifier):
    loaded = Classifier.load(bundle, device="cpu")
    assert loaded.label_names == LABELS
    assert loaded.info == INFO
    assert loaded.encoder.vocab == classifier.encoder.vocab
    assert loaded.encoder.vocab.counts == classifier.encoder.vocab.counts
    assert loaded.encoder.to_json() == {"tokenizer": {"name": "kim", "lowercase": True}, "max_length": 150}


def test_info_cannot_overwrite_reserved_keys(tmp_path, classifier):
    classifier.info = {"labels": ["x"], "format_version": 99, "notes": "kept"}
    loaded = Classifier.load(classifier.save(tmp_path / "b"), device="cpu")
    assert loaded.label_names == LABELS
    assert loaded.info == {"notes": "kept"}


def test_saving_over_a_bundle_replaces_it(bundle):
    other = make_classifier(seed=1)
    other.save(bundle)
    assert torch.equal(Classifier.load(bundle, device="cpu").logits(TEXTS), other.logits(TEXTS))
    assert sorted(p.name for p in bundle.iterdir()) == ["config.json", "vocab.json", "weights.safetensors"]


def test_bundle_files_are_readable_by_others(tmp_path, classifier):
    old = os.umask(0o022)
    try:
        bundle = classifier.save(tmp_path / "b")
    finally:
        os.umask(old)
    for name in ("config.json", "vocab.json", "weights.safetensors"):
        assert (bundle / name).stat().st_mode & 0o044 == 0o044, name


# -- predict -----------------------------------------------------------------------------------


UNREAD = {"", "zebra quokka"}  # no token at all; unknown words only


def test_predict_returns_label_names_and_probabilities(classifier):
    predictions = classifier.predict(TEXTS)
    assert len(predictions) == len(TEXTS)
    for text, prediction in zip(TEXTS, predictions, strict=True):
        assert isinstance(prediction, Prediction)
        if text in UNREAD:  # the model's output would be its biases: no label, said so
            assert prediction.to_json() == {
                "label": None,
                "score": None,
                "probabilities": None,
                "coverage": 0.0,
                "unread": True,
            }
            continue
        assert 0 < prediction.coverage <= 1
        assert list(prediction.probabilities) == LABELS
        assert math.fsum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert prediction.label in LABELS
        assert prediction.score == prediction.probabilities[prediction.label]
        assert prediction.score == max(prediction.probabilities.values())
        assert prediction.to_json() == {
            "label": prediction.label,
            "score": prediction.score,
            "probabilities": prediction.probabilities,
            "coverage": prediction.coverage,
            "unread": False,
        }


@pytest.mark.parametrize("batch_size", [1, 2, 256])
def test_predict_keeps_input_order(classifier, batch_size):
    alone = [classifier.logits([text])[0] for text in TEXTS]
    together = classifier.logits(TEXTS, batch_size=batch_size)
    for got, expected in zip(together, alone, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # the texts are told apart, so a shuffled order could not pass
    distinct = {tuple(round(v, 3) for v in row.tolist()) for row in alone}
    assert len(distinct) == len(TEXTS)
    read = [p.probabilities for p in classifier.predict(TEXTS, batch_size=batch_size)]
    assert [p is None for p in read] == [text in UNREAD for text in TEXTS]


def test_predict_proba_matches_predict(classifier):
    proba = classifier.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), len(LABELS))
    for text, row, prediction in zip(TEXTS, proba, classifier.predict(TEXTS), strict=True):
        if text not in UNREAD:
            assert row.tolist() == pytest.approx(list(prediction.probabilities.values()), abs=1e-6)


def test_predict_on_nothing(classifier):
    assert classifier.predict([]) == []
    assert classifier.logits([]).shape == (0, len(LABELS))


def test_logits_rejects_a_single_string(classifier):
    with pytest.raises(TypeError, match="sequence of texts"):
        classifier.logits("a funny film")


def test_classifier_checks_labels_and_vocabulary(classifier):
    with pytest.raises(BundleError, match="2 label names for a model with 3 classes"):
        Classifier(classifier.model, classifier.encoder, LABELS[:2])
    small = TextEncoder(Vocabulary(["<pad>", "<unk>", "a"]), "kim")
    with pytest.raises(BundleError, match="vocabulary of 3 for a model expecting"):
        Classifier(classifier.model, small, LABELS)


# -- corrupted bundles -------------------------------------------------------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(BundleError, match="no model bundle here"):
        Classifier.load(tmp_path / "nowhere")


def test_missing_config(bundle):
    (bundle / "config.json").unlink()
    with pytest.raises(BundleError, match=r"config\.json is missing"):
        Classifier.load(bundle)


@pytest.mark.parametrize("content", ['{"format": "textcnn-bundle", ', "", "\xff\xfe"])
def test_invalid_json(bundle, content):
    (bundle / "config.json").write_bytes(content.encode("latin-1"))
    with pytest.raises(BundleError, match=r"config\.json: not valid JSON"):
        Classifier.load(bundle)


@pytest.mark.parametrize("tag", ["pytorch-checkpoint", None])
def test_wrong_format_tag(bundle, tag):
    config = read_config(bundle)
    config["format"] = tag
    write_config(bundle, config)
    with pytest.raises(BundleError, match="not a textcnn bundle config"):
        Classifier.load(bundle)


def test_config_that_is_not_an_object(bundle):
    write_config(bundle, ["textcnn-bundle"])
    with pytest.raises(BundleError, match="not a textcnn bundle config"):
        Classifier.load(bundle)


@pytest.mark.parametrize("version", [3, 0, "1", None])
def test_wrong_format_version(bundle, version):
    config = read_config(bundle)
    config["format_version"] = version
    write_config(bundle, config)
    with pytest.raises(BundleError, match=f"bundle format version {version!r}; this textcnn reads 1 and 2"):
        Classifier.load(bundle)


def test_a_version_1_config_marked_version_2_is_refused_in_one_line(bundle):
    config = read_config(bundle)
    config["format_version"] = 2  # a mixed bundle's version, without its mixture section
    write_config(bundle, config)
    with pytest.raises(BundleError, match=r"config\.json: missing mixture"):
        Classifier.load(bundle)


@pytest.mark.parametrize("key", ["labels", "model", "weights"])
def test_missing_section(bundle, key):
    config = read_config(bundle)
    del config[key]
    write_config(bundle, config)
    with pytest.raises(BundleError, match=f"missing {key}"):
        Classifier.load(bundle)


def test_truncated_weights(bundle):
    weights = bundle / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(BundleError, match="does not match the sha256"):
        Classifier.load(bundle)


def test_truncated_weights_without_digest(bundle):
    weights = bundle / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    config = read_config(bundle)
    del config["weights"]["sha256"]
    write_config(bundle, config)
    with pytest.raises(BundleError, match="unreadable safetensors file"):
        Classifier.load(bundle)


def test_missing_weights(bundle):
    (bundle / "weights.safetensors").unlink()
    with pytest.raises(BundleError, match=r"weights\.safetensors is missing"):
        Classifier.load(bundle)


def test_weights_from_another_model(tmp_path, bundle):
    other = make_classifier(seed=1).save(tmp_path / "other")
    (bundle / "weights.safetensors").write_bytes((other / "weights.safetensors").read_bytes())
    with pytest.raises(BundleError, match="does not match the sha256"):
        Classifier.load(bundle)


@pytest.mark.parametrize("keep_digest", [True, False])
def test_config_edited_to_another_shape(bundle, keep_digest):
    # The digest still matches the weights: only the shape check can tell they no longer fit.
    config = read_config(bundle)
    config["model"]["num_filters"] = 6
    if not keep_digest:
        del config["weights"]["sha256"]
    write_config(bundle, config)
    with pytest.raises(BundleError) as caught:
        Classifier.load(bundle)
    saved = make_classifier().model.state_dict()
    implied = make_classifier(num_filters=6).model.state_dict()
    # whichever misfit tensor is checked first is named, with both shapes
    possible = {
        f"{bundle / 'weights.safetensors'}: {name} has shape {tuple(saved[name].shape)}, "
        f"config.json implies {tuple(implied[name].shape)}"
        for name in saved
        if saved[name].shape != implied[name].shape
    }
    assert len(possible) == 7  # 3 conv weights, 3 conv biases, the classifier weight
    assert str(caught.value) in possible


def test_weights_missing_a_tensor(bundle):
    tensors = load_safetensors((bundle / "weights.safetensors").read_bytes())
    del tensors["classifier.bias"]
    write_weights(bundle, tensors)
    with pytest.raises(BundleError, match=r"tensors do not fit the config \(missing \['classifier.bias'\]"):
        Classifier.load(bundle)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_weights(bundle, bad):
    tensors = load_safetensors((bundle / "weights.safetensors").read_bytes())
    tensors["convs.1.weight"][0, 0, 0] = bad
    write_weights(bundle, tensors)
    with pytest.raises(BundleError, match=r"convs\.1\.weight holds NaN or infinite values"):
        Classifier.load(bundle)


def test_missing_vocabulary(bundle):
    (bundle / "vocab.json").unlink()
    with pytest.raises(BundleError, match=r"vocab\.json"):
        Classifier.load(bundle)


def test_vocabulary_of_the_wrong_size(bundle):
    vocab = json.loads((bundle / "vocab.json").read_text(encoding="utf-8"))
    vocab["tokens"].append("extra")
    vocab["counts"].append(1)
    (bundle / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(BundleError, match="vocabulary of"):
        Classifier.load(bundle)


def test_unknown_model_key(bundle):
    config = read_config(bundle)
    config["model"]["num_layers"] = 2
    write_config(bundle, config)
    with pytest.raises(BundleError, match="unknown model config keys: num_layers"):
        Classifier.load(bundle)


def test_label_count_mismatch(bundle):
    config = read_config(bundle)
    config["labels"] = ["negative", "positive"]
    write_config(bundle, config)
    with pytest.raises(BundleError, match="2 label names for a model with 3 classes"):
        Classifier.load(bundle)


# -- the bundle's card -------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def test_card_tells_which_bundle_and_how_it_was_made(bundle):
    config = read_config(bundle)
    card = Classifier.load(bundle, device="cpu").card
    assert card.id == f"bundle@{config['weights']['sha256'][:12]}" == bundle_id(bundle)
    assert card.path == bundle.resolve()
    assert card.labels == tuple(LABELS)
    assert card.vocab_size == config["vocab_size"] == config["model"]["vocab_size"]
    assert card.model == config["model"] and card.text == {
        "tokenizer": {"name": "kim", "lowercase": True},
        "max_length": 150,
    }
    assert card.created == config["created"] and card.versions == config["versions"]
    assert card.data == INFO["data"] and card.metrics == INFO["metrics"]
    assert card.training == {"best_epoch": None, "epochs_run": None, "stopped_early": None, "config": None}
    assert card.ensemble is None and card.vectors is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.id = "other"


def test_saving_gives_the_card_that_loading_gives(tmp_path, classifier):
    with pytest.raises(BundleError, match="neither loaded from a bundle nor saved to one"):
        classifier.card  # noqa: B018 - the property raises
    saved = classifier.save(tmp_path / "again").resolve()
    assert classifier.card == Classifier.load(saved, device="cpu").card
    assert classifier.card.path == saved and classifier.card.id.startswith("again@")


def test_card_keeps_the_training_summary_only(tmp_path, classifier):
    training = {
        "best_epoch": 3,
        "epochs_run": 5,
        "stopped_early": True,
        "config": {"lr": 0.1},
        "seconds": 2.0,
    }
    classifier.info = INFO | {"training": training}
    card = Classifier.load(classifier.save(tmp_path / "trained"), device="cpu").card
    assert card.training == {"best_epoch": 3, "epochs_run": 5, "stopped_early": True, "config": {"lr": 0.1}}


@pytest.mark.parametrize("weights", ["no digest", "empty digest", "not a section"])
def test_bundle_id_without_a_digest_hashes_the_config(bundle, weights):
    config = read_config(bundle)
    if weights == "no digest":
        del config["weights"]["sha256"]
    elif weights == "empty digest":
        config["weights"]["sha256"] = ""
    else:
        config["weights"] = "weights.safetensors"
    write_config(bundle, config)
    digest = hashlib.sha256((bundle / "config.json").read_bytes()).hexdigest()
    assert bundle_id(bundle) == f"bundle@{digest[:12]}"
    if weights != "not a section":
        assert Classifier.load(bundle, device="cpu").card.id == f"bundle@{digest[:12]}"


def test_bundle_id_of_a_config_that_is_not_json(bundle):
    (bundle / "config.json").write_text("{", encoding="utf-8")
    assert bundle_id(bundle) == f"bundle@{hashlib.sha256(b'{').hexdigest()[:12]}"


@pytest.mark.parametrize(("name", "members"), [("default", 6), ("single", None)])
def test_shipped_bundles_cards(name, members):
    path = REPO / "models" / name
    config = read_config(path)
    classifier = Classifier.load(path, device="cpu")
    card = classifier.card
    assert card.id == bundle_id(path) == f"{name}@{config['weights']['sha256'][:12]}"
    assert card.labels == ("negative", "positive") and card.path == path.resolve()
    assert card.vocab_size == config["vocab_size"] == len(classifier.encoder.vocab)
    # a mixed bundle's card shows its first CNN shape (each member's is in `members`)
    model = classifier.members[0].config.to_json()  # with today's defaults for keys added since
    saved = config["mixture"]["groups"][0]["model"] if "mixture" in config else config["model"]
    assert card.model == model and card.model.items() >= saved.items()
    # saved before tokenizers were registered: `text` says lowercase, and it loads as Kim's clean_str
    assert config["text"] == {"lowercase": True, "max_length": None}
    assert card.text == {"tokenizer": {"name": "kim", "lowercase": True}, "max_length": None}
    assert card.tokenizer["name"] == "kim" and card.tokens is None
    assert card.created == config["created"] and card.versions == config["versions"]
    assert card.metrics["test"]["accuracy"] > 0.7 and card.data == config["data"]
    assert card.vectors == config["vectors"]
    training = config.get("training") or {}  # a composed bundle's is its members' (in `ensemble`)
    assert card.training == {
        k: training.get(k) for k in ("best_epoch", "epochs_run", "stopped_early", "config")
    }
    assert (card.ensemble or {}).get("size") == members
    assert [m["kind"] for m in card.members] == (["cnn"] * 5 + ["nbsvm"] if members else ["cnn"])
    json.dumps(dataclasses.asdict(card) | {"path": str(card.path)})  # what a server may show


# -- batches -----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [None, 40])
def test_batches_cover_every_sequence_once_within_the_bounds(classifier, max_tokens):
    encoded = classifier.encoder.encode_many(TEXTS * 3)
    batches = list(classifier.batches(encoded, max_rows=4, max_tokens=max_tokens))
    assert sorted(i for rows, _ in batches for i in rows) == list(range(len(encoded)))
    for rows, batch in batches:
        assert len(rows) <= 4 and batch.ids.shape[0] == len(rows)
        assert batch.ids.shape[1] >= classifier.min_length
        assert batch.lengths.tolist() == [len(encoded[i]) for i in rows]
        if max_tokens is not None and len(rows) > 1:
            assert batch.ids.numel() <= max_tokens
    logits = torch.empty(len(encoded), len(LABELS))
    for rows, batch in batches:
        logits[rows] = classifier.logits_for_batch(batch)
    torch.testing.assert_close(logits, classifier.logits(TEXTS * 3))


# The shipped bundles' logits and one explanation, computed by the code before the layout moved into
# subpackages (commit 7953586, on an AMD EPYC): the restructure changed where code lives, not what
# a saved bundle predicts.
SHIPPED_TEXTS = [
    "a gorgeous , witty , seductive movie .",
    "the plot is thin and the jokes fall flat .",
    "not bad at all",
    "x",
]
SHIPPED_BEFORE = {
    "default": {
        "logits": [[-5.25485, -0.00524], [-0.04716, -3.07762], [-0.0479, -3.06259], [-0.81414, -0.58522]],
        "explain": {"logit": 1.67958, "token_parts": [-0.10118, 2.23211, 0.02281, -0.15385]},
    },
    "single": {
        "logits": [[-3.34019, 3.22175], [1.38703, -1.51191], [1.91689, -1.95893], [-0.44669, 0.45453]],
        "explain": {"logit": 1.91689, "token_parts": [-0.1511, 2.66366, -0.37304, -0.01125]},
    },
}


@pytest.mark.parametrize("name", sorted(SHIPPED_BEFORE))
def test_the_shipped_bundles_predict_and_explain_as_before_the_restructure(name):
    from textcnn import explain_text

    classifier = Classifier.load(Path(__file__).resolve().parents[1] / "models" / name, device="cpu")
    # today's default holds the default of then (its CNN group) and NBSVM
    if isinstance(classifier.model, MixedEnsemble):
        classifier = Classifier(classifier.model.groups[0], classifier.encoder, classifier.label_names)
    expected = SHIPPED_BEFORE[name]
    assert torch.allclose(classifier.logits(SHIPPED_TEXTS), torch.tensor(expected["logits"]), atol=1e-4)
    explanation = explain_text(classifier, "not bad at all", top=3)
    assert explanation["logit"] == pytest.approx(expected["explain"]["logit"], abs=1e-4)
    assert explanation["token_parts"] == pytest.approx(expected["explain"]["token_parts"], abs=1e-3)
