"""The service on a multi-label bundle: /predict's `labels` and `threshold`, /explain's split per label
given, /info's task and thresholds; the hooks called directly, the app in-process, and one real
server on loopback. A single-label bundle's answers (no `labels` key) are test_service.py's.

The bundle is trained here, in a few seconds: three emotions, each named by its own words among
filler words, one or two of them a text.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

pytest.importorskip("litserve", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from litserve.utils import wrap_litserve_start  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from test_service import run_hooks  # noqa: E402
from test_service_e2e import serving, stop  # noqa: E402

from service import metrics  # noqa: E402
from service.api import ExplainAPI, TextCNNAPI  # noqa: E402
from service.app import build_server  # noqa: E402
from service.schemas import (  # noqa: E402
    ExplainRequest,
    PredictRequest,
    RequestLimits,
    configure_limits,
)
from service.settings import ServeSettings  # noqa: E402
from textcnn.inference.bundle import Classifier  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors in this process (conftest.py)

LABELS = ("anger", "joy", "love")
WORDS = {
    "anger": ("mad", "angry", "furious"),
    "joy": ("happy", "glad", "great"),
    "love": ("love", "adore", "dear"),
}
FILLER = ("the", "day", "was", "and", "it", "so", "very", "today", "we", "a")
TEXTS = ["so happy and glad today", "mad and furious , but i adore you dear", "the day was very great"]
UNREAD = "zyzzyva qwerty"


def emotion_rows(n: int, seed: int) -> tuple[list[str], list[tuple[str, ...]]]:
    """n texts of filler words with the words of one or two emotions among them, and those emotions."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        given = tuple(sorted(rng.sample(LABELS, rng.choice((1, 1, 2)))))
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
        for name in given:
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS[name]))
        texts.append(" ".join(words))
        labels.append(given)
    return texts, labels


def train_multilabel_bundle(out: Path) -> Path:
    """A multi-label bundle (anger, joy, love; max pooling) saved at `out`: 300 texts, 10 epochs, ~7 s."""
    from conftest import torch_threads

    import textcnn

    fold = textcnn.texts_fold(emotion_rows(300, 0), emotion_rows(80, 1))
    settings = textcnn.RunSettings(
        model_options={"embedding_dim": 16, "num_filters": 8},
        train=textcnn.TrainConfig(epochs=10, batch_size=25),
    )
    with torch_threads(1):
        outcome = textcnn.train_classifier(fold, list(LABELS), settings, progress=False)
    outcome.classifier.save(out)
    return out


@pytest.fixture(scope="module")
def multilabel_bundle(tmp_path_factory) -> Path:
    return train_multilabel_bundle(tmp_path_factory.mktemp("multilabel") / "emotions")


@pytest.fixture(scope="module")
def classifier(multilabel_bundle) -> Classifier:
    classifier = Classifier.load(multilabel_bundle, device="cpu")
    assert classifier.multi_label and classifier.card.task == "multi-label"
    return classifier


@pytest.fixture
def limits():
    """Request limits of a multi-label model for one test; the defaults again afterwards."""
    yield configure_limits(max_texts=4, max_text_chars=200, num_classes=3, multi_label=True)
    PredictRequest.limits = RequestLimits()
    ExplainRequest.limits = RequestLimits(max_texts=8)


# -- the request schema -----------------------------------------------------------------------


def test_threshold_lies_strictly_between_0_and_1_and_is_for_multi_label_models_only(limits):
    assert PredictRequest(text="a", threshold=0.3).threshold == 0.3
    assert ExplainRequest.model_validate_json('{"text": "a", "threshold": 0.7}').threshold == 0.7
    for bad in (0, 0.0, 1, 1.5, -0.2, "0.5", True):
        with pytest.raises(ValidationError, match="threshold"):
            PredictRequest.model_validate({"text": "a", "threshold": bad})
    schema = PredictRequest.model_json_schema()["properties"]["threshold"]["anyOf"][0]
    assert schema == {"type": "number", "exclusiveMinimum": 0.0, "exclusiveMaximum": 1.0}
    assert {
        "text": "so glad you are here , love you",
        "threshold": 0.3,
    } in PredictRequest.model_json_schema()["examples"]
    # A single-label model: refused with a message, and the schema takes only null.
    configure_limits(max_texts=4, max_text_chars=200, num_classes=2, multi_label=False)
    for model in (PredictRequest, ExplainRequest):
        with pytest.raises(ValidationError, match="threshold is for a multi-label model"):
            model(text="a", threshold=0.5)
        assert model(text="a", threshold=None).threshold is None
        threshold = model.model_json_schema()["properties"]["threshold"]
        assert (
            threshold["type"] == "null"
            and "anyOf" not in threshold
            and "single-label" in threshold["description"]
        )


# -- the hooks, called directly ---------------------------------------------------------------


@pytest.fixture(scope="module")
def api(multilabel_bundle) -> TextCNNAPI:
    api = TextCNNAPI(multilabel_bundle, max_batch_size=8, max_batch_tokens=40)
    api.setup("cpu")
    return api


def as_pairs(labels: list) -> list[tuple[str, float]]:
    return [(entry.label, entry.score) for entry in labels]


def test_hooks_give_each_text_its_labels_as_the_library_does(api, classifier, limits):
    texts = [*TEXTS, UNREAD]
    (plain, low, high, top1) = run_hooks(
        api,
        [
            PredictRequest(texts=texts),
            PredictRequest(texts=texts, threshold=1e-6, probabilities=True),
            PredictRequest(texts=texts, threshold=0.999999),
            PredictRequest(texts=texts, threshold=1e-6, top_k=1),
        ],
    )
    for response, threshold in ((plain, None), (low, 1e-6), (high, 0.999999)):
        for got, want in zip(
            response.predictions, classifier.predict(texts, threshold=threshold), strict=True
        ):
            assert (got.label, got.coverage, got.unread) == (want.label, want.coverage, want.unread)
            if want.unread:
                assert got.labels is None and "labels" in got.model_dump()  # null, not left out
                continue
            assert [name for name, _ in as_pairs(got.labels)] == [name for name, _ in want.labels]
            assert [score for _, score in as_pairs(got.labels)] == pytest.approx(
                [s for _, s in want.labels], abs=1e-5
            )
            scores = [entry.score for entry in got.labels]
            assert scores == sorted(scores, reverse=True)  # most probable first
            if got.labels:
                assert (got.label, got.score) == (got.labels[0].label, got.labels[0].score)
    # The threshold changes the answer: every label above 1e-6, at most one (the top) above 0.999999.
    read = slice(0, len(TEXTS))
    assert all(len(p.labels) == 3 for p in low.predictions[read])
    at_least_one = classifier.decision.at_least_one
    assert all(len(p.labels) == (1 if at_least_one else 0) for p in high.predictions[read])
    assert [len(p.labels) for p in plain.predictions[read]] != [3] * len(TEXTS)
    # probabilities on request: each label's own sigmoid, not summing to 1
    first = low.predictions[0]
    assert set(first.probabilities) == set(LABELS) and sum(first.probabilities.values()) != pytest.approx(1)
    assert plain.predictions[0].probabilities is None
    # top_k caps `labels` (most probable first) and lists the k most probable labels
    for capped, full in zip(top1.predictions[read], low.predictions[read], strict=True):
        assert as_pairs(capped.labels) == as_pairs(full.labels)[:1]
        assert as_pairs(capped.top_k) == as_pairs(full.labels)[:1]


def test_explain_hooks_pass_the_threshold(multilabel_bundle, classifier, limits):
    from textcnn import explain_text

    api = ExplainAPI(multilabel_bundle)
    api.setup("cpu")
    request = ExplainRequest(text=TEXTS[1], top=2, threshold=1e-6)
    (answer,) = api.unbatch(api.predict(api.batch([api.decode_request(request, {})])))
    response = api.encode_response(answer, {})
    (explanation,) = response.model_dump(mode="json")["explanations"]
    assert [entry["label"] for entry in explanation["labels"]] == [
        entry["label"] for entry in explain_text(classifier, TEXTS[1], top=2, threshold=1e-6)["labels"]
    ]
    assert len(explanation["labels"]) == 3


# -- the app in-process -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(multilabel_bundle):
    settings = ServeSettings(
        model=multilabel_bundle, max_texts=4, max_text_chars=200, max_body_bytes=4000, max_explain_texts=2
    )
    with metrics.multiprocess_dir():
        server = build_server(settings)
        with wrap_litserve_start(server) as started, TestClient(started.app) as client:
            for _ in range(600):  # the workers are spawned processes: wait for their models
                if client.get("/health").status_code == 200:
                    break
                time.sleep(0.1)
            yield client
    PredictRequest.limits = RequestLimits()
    ExplainRequest.limits = RequestLimits(max_texts=8)


def test_app_predicts_labels_and_takes_a_threshold(client, classifier):
    texts = [*TEXTS, UNREAD]
    body = client.post("/predict", json={"texts": texts, "probabilities": True}).json()
    for got, want in zip(body["predictions"], classifier.predict(texts), strict=True):
        assert set(got) == {"label", "score", "probabilities", "top_k", "coverage", "unread", "labels"}
        if want.unread:
            assert got["labels"] is None and got["label"] is None and got["probabilities"] is None
            continue
        assert [entry["label"] for entry in got["labels"]] == [name for name, _ in want.labels]
        assert got["probabilities"] == pytest.approx(want.probabilities, abs=1e-5)
    low = client.post("/predict", json={"texts": TEXTS, "threshold": 1e-6}).json()["predictions"]
    assert [len(p["labels"]) for p in low] == [3] * len(TEXTS)
    assert all(p["probabilities"] is None for p in low)  # only on request


@pytest.mark.parametrize("path", ["/predict", "/explain"])
@pytest.mark.parametrize("threshold", [0, 1, 1.5, -0.1, "0.5"])
def test_app_refuses_a_threshold_outside_0_to_1(client, path, threshold):
    response = client.post(path, json={"text": TEXTS[0], "threshold": threshold})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "threshold"]
    assert client.post(path, json={"text": TEXTS[0], "threshold": 0.5}).status_code == 200


def test_app_explains_each_label_given(client, classifier):
    from textcnn import explain_text

    response = client.post("/explain", json={"texts": [TEXTS[1], UNREAD], "top": 3, "threshold": 0.2})
    assert response.status_code == 200, response.text
    explanation, unread = response.json()["explanations"]
    expected = explain_text(classifier, TEXTS[1], top=3, threshold=0.2)
    assert explanation["labels"] and [e["label"] for e in explanation["labels"]] == [
        e["label"] for e in expected["labels"]
    ]
    assert explanation["label"] == explanation["labels"][0]["label"]
    for given in explanation["labels"]:
        assert set(given) == {
            "label",
            "score",
            "logit",
            "output_bias",
            "filter_bias",
            "token_parts",
            "residual",
            "for",
            "against",
        }
        assert given["score"] >= 0.2 and len(given["token_parts"]) == len(explanation["tokens"])
        total = sum(given["token_parts"]) + given["output_bias"] + given["filter_bias"] + given["residual"]
        assert total == pytest.approx(given["logit"], abs=1e-6)
        assert abs(given["residual"]) < 1e-4  # max pooling: split exactly
        assert len(given["for"]) <= 3 and len(given["against"]) <= 3
    # The library's own answer, field for field (the response adds `part`, `member` and `kind`).
    for side in ("for", "against"):
        for entry in [*explanation[side], *(n for given in explanation["labels"] for n in given[side])]:
            assert entry.pop("part") is None and entry.pop("member") is None and entry.pop("kind") is None
    assert explanation == expected
    assert unread["unread"] and unread["labels"] is None and unread["label"] is None


def test_info_says_the_task_and_the_thresholds_by_label(client, classifier):
    model = client.get("/info").json()["model"]
    assert model["task"] == "multi-label" and model["labels"] == list(LABELS)
    decision = classifier.decision
    assert model["decision"] == {
        "thresholds": dict(zip(LABELS, decision.thresholds, strict=True)),
        "at_least_one": decision.at_least_one,
        "chosen": decision.chosen,
    }
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert (
        "labels" in schema["TextPrediction"]["properties"] and "labels" in schema["Explanation"]["properties"]
    )
    assert set(schema["LabelExplanation"]["required"]) >= {"label", "score", "logit", "residual", "for"}
    threshold = schema["PredictRequest"]["properties"]["threshold"]["anyOf"][0]
    assert threshold["exclusiveMinimum"] == 0 and threshold["exclusiveMaximum"] == 1


# -- a real server on loopback ----------------------------------------------------------------


def test_a_real_server_answers_with_labels(multilabel_bundle, classifier):
    args = ["--model", str(multilabel_bundle), "--num-api-servers", "1", "--log-level", "warning"]
    with serving(*args) as (process, url):
        body = httpx.post(f"{url}/predict", json={"texts": [TEXTS[0], UNREAD], "threshold": 0.4}).json()
        read, unread = body["predictions"]
        want = classifier.predict([TEXTS[0]], threshold=0.4)[0]
        assert [(e["label"], pytest.approx(e["score"], abs=1e-5)) for e in read["labels"]] == list(
            want.labels
        )
        assert unread["labels"] is None and unread["unread"]
        assert httpx.get(f"{url}/info").json()["model"]["task"] == "multi-label"
        code, output = stop(process)
    assert code == 0 and "Traceback" not in output
