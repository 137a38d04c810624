"""The HTTP service in-process: settings, request schemas, the LitAPI hooks called directly, the
LitServer app through FastAPI's TestClient, and the deployment files (Dockerfile, compose).

Real server processes on loopback are in test_service_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shlex
import time
from pathlib import Path

import pytest

pytest.importorskip("litserve", reason="the serve extra is not installed")

import litserve
import litserve.loops.base
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from litserve.loops import BatchedLoop
from litserve.middlewares import MaxSizeMiddleware
from litserve.utils import wrap_litserve_start
from pydantic import ValidationError

from service import metrics
from service.api import TextCNNAPI
from service.app import PAGE_HEADERS, BodyLimitMiddleware, build_server
from service.compat import (
    LITSERVE_VERSION,
    SKIP_VERSIONS_VARIABLE,
    UVICORN_SPEC,
    DependencyError,
    check_dependencies,
)
from service.schemas import (
    NOT_BLANK,
    ExplainRequest,
    PredictRequest,
    PredictResponse,
    RequestLimits,
    configure_limits,
)
from service.settings import ServeSettings
from textcnn.errors import BundleError, ConfigError
from textcnn.inference.bundle import Classifier
from textcnn.inference.bundle import bundle_id as model_id

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors in this process (conftest.py)


@pytest.fixture(scope="module")
def classifier(tiny_bundle) -> Classifier:
    return Classifier.load(tiny_bundle, device="cpu")


@pytest.fixture
def limits():
    """Request limits for one test; the defaults again afterwards."""
    yield configure_limits(max_texts=3, max_text_chars=40, num_classes=2, max_explain_texts=2)
    PredictRequest.limits = RequestLimits()
    ExplainRequest.limits = RequestLimits(max_texts=8)


def sample_texts(n: int, seed: int = 0) -> list[str]:
    """Texts of 1 to 30 words from the sample sentences' words (plus unknown ones)."""
    words = " ".join(json.loads(line)["text"] for line in (SAMPLES / "tiny.jsonl").read_text().splitlines())
    vocabulary = [*sorted(set(words.split())), "zyzzyva", "qwerty"]
    rng = random.Random(seed)
    return [" ".join(rng.choices(vocabulary, k=rng.randint(1, 30))) for _ in range(n)]


# -- settings ---------------------------------------------------------------------------------


def test_settings_defaults_env_and_flags_in_that_order():
    assert ServeSettings() == ServeSettings.from_env({})
    env = {
        "TEXTCNN_PORT": "9001",
        "TEXTCNN_MODEL": "models/x",
        "TEXTCNN_FAST_QUEUE": "off",
        "TEXTCNN_HOST": "",
    }
    settings = ServeSettings.from_env(env, port=9002, workers=None)
    assert settings.port == 9002  # the flag wins
    assert settings.model == Path("models/x") and settings.fast_queue is False  # from the environment
    assert settings.host == "127.0.0.1" and settings.workers == 1  # empty variable, None flag: defaults
    assert ServeSettings.from_env({"TEXTCNN_BATCH_TIMEOUT": "0.01"}).batch_timeout == 0.01
    assert json.dumps(settings.to_json())
    assert (settings.max_explain_texts, settings.explain_workers) == (8, 1)
    explain = ServeSettings.from_env({"TEXTCNN_MAX_EXPLAIN_TEXTS": "3"}, explain_workers=2)
    assert (explain.max_explain_texts, explain.explain_workers) == (3, 2)
    assert (
        ServeSettings.from_env({"TEXTCNN_MAX_EXPLAIN_TEXTS": "3"}, max_explain_texts=5).max_explain_texts == 5
    )


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"TEXTCNN_PORT": "eighty"}, "TEXTCNN_PORT: expected an integer"),
        ({"TEXTCNN_BATCH_TIMEOUT": "soon"}, "TEXTCNN_BATCH_TIMEOUT: expected a number"),
        ({"TEXTCNN_FAST_QUEUE": "maybe"}, "TEXTCNN_FAST_QUEUE: expected true or false"),
        ({"TEXTCNN_PORT": "80"}, "port must be from 1024"),
        ({"TEXTCNN_HOST": "localhost"}, "host must be one of"),
        ({"TEXTCNN_ACCELERATOR": "tpu"}, "accelerator must be one of"),
        ({"TEXTCNN_WORKERS": "0"}, "workers must be a positive integer"),
        ({"TEXTCNN_THREADS": "0"}, "threads must be a positive integer"),
        ({"TEXTCNN_MAX_TEXTS": "-1"}, "max_texts must be a positive integer"),
        ({"TEXTCNN_MAX_EXPLAIN_TEXTS": "0"}, "max_explain_texts must be a positive integer"),
        ({"TEXTCNN_MAX_EXPLAIN_TEXTS": "many"}, "TEXTCNN_MAX_EXPLAIN_TEXTS: expected an integer"),
        ({"TEXTCNN_EXPLAIN_WORKERS": "0"}, "explain_workers must be a positive integer"),
        ({"TEXTCNN_BATCH_TIMEOUT": "-0.1"}, "batch_timeout must be >= 0"),
        ({"TEXTCNN_BATCH_TIMEOUT": "60"}, "must be below timeout"),
        ({"TEXTCNN_API_SERVER_WORKER_TYPE": "thread"}, "needs api_server_worker_type 'process'"),
    ],
)
def test_settings_reject_bad_values_naming_them(env, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        ServeSettings.from_env(env)


def test_settings_http_servers_default_to_two_processes_and_threads_take_one():
    settings = ServeSettings()
    assert (settings.api_server_worker_type, settings.num_api_servers) == ("process", 2)
    threaded = ServeSettings.from_env(
        {"TEXTCNN_API_SERVER_WORKER_TYPE": "thread", "TEXTCNN_NUM_API_SERVERS": "1"}
    )
    assert threaded.num_api_servers == 1


# -- the litserve and uvicorn the service reaches into ------------------------------------


def test_the_installed_litserve_and_uvicorn_pass_the_dependency_check():
    check_dependencies({})
    assert litserve.__version__ == "0.2.19"


UNTESTED = {
    "litserve upgraded": (
        lambda mp: mp.setattr(litserve, "__version__", "0.3.0"),
        "litserve 0.3.0 is installed; this service was written against litserve 0.2.19 (service/server.py",
    ),
    "uvicorn upgraded": (
        lambda mp: mp.setattr(uvicorn, "__version__", "0.60.1"),
        "uvicorn 0.60.1 is installed; this service was tested with uvicorn >=0.29,<0.55",
    ),
    "worker monitor gone": (
        lambda mp: mp.delattr(litserve.LitServer, "_start_worker_monitoring"),
        "litserve 0.2.19 has no LitServer._start_worker_monitoring(self, manager, uvicorn_workers)",
    ),
    "stop sentinel gone": (
        lambda mp: mp.delattr(litserve.loops.base, "_SENTINEL_VALUE"),
        "has no litserve.loops.base._SENTINEL_VALUE",
    ),
    "batch collecting reshaped": (
        lambda mp: mp.setattr(
            BatchedLoop, "get_batch_requests", lambda self, lit_api, queues, transport: None
        ),
        "has no BatchedLoop.get_batch_requests(self, lit_api, request_queue, transport)",
    ),
    "uvicorn signal capture gone": (
        lambda mp: mp.delattr(uvicorn.Server, "capture_signals"),
        "has no uvicorn.Server.capture_signals",
    ),
}


@pytest.mark.parametrize("case", list(UNTESTED))
def test_serve_stops_in_one_line_on_an_untested_litserve_or_uvicorn(monkeypatch, capsys, tmp_path, case):
    from textcnn.cli import main

    patch, fragment = UNTESTED[case]
    monkeypatch.delenv(SKIP_VERSIONS_VARIABLE, raising=False)
    patch(monkeypatch)
    # No bundle there: the dependencies are checked first, before the bundle, the port, any process.
    assert main(["serve", "--model", str(tmp_path / "nothing"), "--port", "8123"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textcnn: error: "), lines
    assert fragment in lines[0] and "pip install" in lines[0]
    with pytest.raises(DependencyError):  # and building a server in-process stops the same way
        build_server(ServeSettings(model=tmp_path / "nothing"))


def test_the_serve_extra_installs_the_versions_the_check_wants():
    tomllib = pytest.importorskip("tomllib")
    serve = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    assert f"litserve=={LITSERVE_VERSION}" in serve and f"uvicorn{UVICORN_SPEC}" in serve


def test_the_escape_hatch_skips_the_versions_but_not_the_private_names(monkeypatch):
    monkeypatch.setattr(litserve, "__version__", "0.3.0")
    monkeypatch.setattr(uvicorn, "__version__", "0.60.1")
    check_dependencies({SKIP_VERSIONS_VARIABLE: "1"})
    with pytest.raises(DependencyError, match=re.escape("0.3.0 is installed")):
        check_dependencies({SKIP_VERSIONS_VARIABLE: "0"})
    monkeypatch.delattr(litserve.LitServer, "_start_worker_monitoring")
    with pytest.raises(DependencyError, match=re.escape("has no LitServer._start_worker_monitoring")):
        check_dependencies({SKIP_VERSIONS_VARIABLE: "1"})


# -- request schema ---------------------------------------------------------------------------


def test_request_takes_one_text_or_several(limits):
    assert PredictRequest.model_validate({"text": "a fine film"}).all_texts == ["a fine film"]
    request = PredictRequest.model_validate({"texts": ["a", "b"], "top_k": 2, "probabilities": True})
    assert request.all_texts == ["a", "b"] and request.top_k == 2 and request.probabilities


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "exactly one of"),
        ({"text": "a", "texts": ["b"]}, "exactly one of"),
        ({"text": None}, "exactly one of"),
        ({"text": ""}, "empty or only whitespace"),
        ({"text": " \n\t"}, "empty or only whitespace"),
        ({"texts": ["fine", "  "]}, "texts[1] is empty"),
        ({"texts": []}, "texts is empty"),
        ({"text": "x" * 41}, "41 characters; at most 40"),
        ({"texts": ["ok", "x" * 41]}, "texts[1] has 41 characters"),
        ({"texts": ["a", "b", "c", "d"]}, "4 texts in one request; at most 3"),
        ({"text": "a", "top_k": 3}, "the model has 2 labels"),
        ({"text": "a", "top_k": 0}, "greater than or equal to 1"),
        ({"text": "a", "top_k": "2"}, "valid integer"),
        ({"text": "a", "probabilities": "yes"}, "valid boolean"),
        ({"text": 7}, "valid string"),
        ({"texts": "a b"}, "valid list"),
        ({"text": "a", "language": "en"}, "Extra inputs are not permitted"),
    ],
)
def test_request_rejects(limits, body, fragment):
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        PredictRequest.model_validate(body)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "exactly one of"),
        ({"text": ""}, "empty or only whitespace"),
        ({"texts": ["a", "\x1e"]}, "texts[1] is empty"),
        ({"text": "x" * 41}, "41 characters; at most 40"),
        ({"texts": ["a", "b", "c"]}, "3 texts in one request; at most 2"),
        ({"text": "a", "top": 0}, "greater than or equal to 1"),
        ({"text": "a", "top": 21}, "less than or equal to 20"),
        ({"text": "a", "top": "5"}, "valid integer"),
        ({"text": "a", "top": 2.5}, "valid integer"),
        ({"text": "a", "top_k": 2}, "Extra inputs are not permitted"),
    ],
)
def test_explain_request_rejects(limits, body, fragment):
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        ExplainRequest.model_validate(body)


def test_requests_take_an_integral_number_as_an_integer(limits):
    """JSON has one number type: 2.0 is the integer 2 to JSON Schema, so the server takes it too."""
    assert PredictRequest.model_validate({"text": "a", "top_k": 2.0}).top_k == 2
    assert ExplainRequest.model_validate({"text": "a", "top": 3.0}).top == 3
    assert ExplainRequest.model_validate({"texts": ["a", "b"]}).top == 5


def test_the_schemas_not_blank_pattern_is_what_the_server_checks():
    """`pattern` is a search for one character str.strip() would keep, in JSON Schema's (ECMA) syntax."""
    import sys

    pattern = re.compile(NOT_BLANK)
    assert all(
        bool(pattern.fullmatch(character)) != character.isspace()
        for character in map(chr, range(sys.maxunicode + 1))
    )


def test_request_schemas_say_exactly_one_of_text_or_texts(limits):
    jsonschema = pytest.importorskip("jsonschema")
    for model in (PredictRequest, ExplainRequest):
        validator = jsonschema.Draft202012Validator(model.model_json_schema())
        for body in (
            {"text": "a"},
            {"texts": ["a"]},
            {"text": "a", "texts": None},
            {"text": None, "texts": ["a"]},
        ):
            assert validator.is_valid(body), body
            model.model_validate(body)
        for body in ({}, {"text": None}, {"text": "a", "texts": ["b"]}, {"text": " \u3000"}, {"texts": []}):
            assert not validator.is_valid(body), body
            with pytest.raises(ValidationError):
                model.model_validate(body)


def test_request_schema_shows_the_configured_limits_and_examples(limits):
    configure_limits(max_texts=3, max_text_chars=60, num_classes=2, max_explain_texts=2)
    schema = PredictRequest.model_json_schema()
    assert schema["additionalProperties"] is False and len(schema["examples"]) == 2
    text = next(option for option in schema["properties"]["text"]["anyOf"] if option.get("type") == "string")
    assert text["maxLength"] == 60 and text["minLength"] == 1
    texts = next(option for option in schema["properties"]["texts"]["anyOf"] if option.get("type") == "array")
    assert texts["maxItems"] == 3 and texts["items"]["maxLength"] == 60
    top_k = next(
        option for option in schema["properties"]["top_k"]["anyOf"] if option.get("type") == "integer"
    )
    assert top_k["maximum"] == 2
    for example in schema["examples"]:
        PredictRequest.model_validate(example)
    explain = ExplainRequest.model_json_schema()
    texts = next(
        option for option in explain["properties"]["texts"]["anyOf"] if option.get("type") == "array"
    )
    assert texts["maxItems"] == 2 and texts["items"]["maxLength"] == 60
    assert explain["properties"]["top"]["maximum"] == 20 and explain["properties"]["top"]["minimum"] == 1
    for example in explain["examples"]:
        ExplainRequest.model_validate(example)


# -- the LitAPI hooks, called directly --------------------------------------------------------


@pytest.fixture(scope="module")
def api(tiny_bundle) -> TextCNNAPI:
    api = TextCNNAPI(tiny_bundle, max_batch_size=8, max_batch_tokens=40)  # small: several chunks
    api.setup("cpu")
    return api


def run_hooks(api: TextCNNAPI, requests: list[PredictRequest]) -> list[PredictResponse]:
    """What LitServe's BatchedLoop does with one batch (litserve/loops/simple_loops.py)."""
    contexts = [{} for _ in requests]
    decoded = [
        api.decode_request(request, context) for request, context in zip(requests, contexts, strict=True)
    ]
    outputs = api.unbatch(api.predict(api.batch(decoded)))
    return [api.encode_response(output, context) for output, context in zip(outputs, contexts, strict=True)]


def test_decode_request_encodes_with_the_bundles_encoder(api, classifier, limits):
    context: dict = {}
    request = PredictRequest(texts=["A warm, funny film!", "zyzzyva"], top_k=1)
    decoded = api.decode_request(request, context)
    assert [ids for ids, _ in decoded] == classifier.encoder.encode_many(request.all_texts)
    assert [share for _, share in decoded] == [5 / 6, 0.0]  # "zyzzyva" alone is unknown: unread
    assert context == {"top_k": 1, "probabilities": False, "threshold": None}


def test_batched_hooks_answer_each_request_as_predict_does(api, classifier):
    texts = sample_texts(23)
    sizes = [1, 5, 1, 3, 7, 1, 4, 1]  # ragged: single and multi-text requests in one batch
    groups, start = [], 0
    for size in sizes:
        groups.append(texts[start : start + size])
        start += size
    requests = [
        PredictRequest(texts=group) if len(group) > 1 else PredictRequest(text=group[0]) for group in groups
    ]
    batch = api.batch([api.decode_request(request, {}) for request in requests])
    assert len(batch.chunks) > 1  # max_batch_tokens=40 cut the batch
    responses = run_hooks(api, requests)
    assert [len(response.predictions) for response in responses] == sizes
    for group, response in zip(groups, responses, strict=True):
        expected = classifier.predict(group)
        for want, got in zip(expected, response.predictions, strict=True):
            assert got.label == want.label
            assert got.score == pytest.approx(want.score, abs=1e-5)


def test_encode_response_shapes(api, classifier):
    logits = torch.tensor([[0.5, -0.25], [-1.0, 2.0]])  # (2 texts, 2 classes)
    output = (logits, [1.0, 0.5])  # with each text's coverage
    plain = api.encode_response(output, {"top_k": None, "probabilities": False})
    assert plain.model == model_id(api.model_path) and re.fullmatch(r"tiny@[0-9a-f]{12}", plain.model)
    assert [p.label for p in plain.predictions] == ["negative", "positive"]
    assert all(p.probabilities is None and p.top_k is None for p in plain.predictions)
    assert [(p.coverage, p.unread) for p in plain.predictions] == [(1.0, False), (0.5, False)]
    full = api.encode_response(output, {"top_k": 2, "probabilities": True})
    first = full.predictions[0]
    probabilities = torch.softmax(logits, dim=1)[0].tolist()
    assert first.probabilities == pytest.approx({"negative": probabilities[0], "positive": probabilities[1]})
    assert [entry.label for entry in first.top_k] == ["negative", "positive"]  # most probable first
    assert first.top_k[0].score == pytest.approx(first.score)
    assert len(api.encode_response(output, {"top_k": 1, "probabilities": False}).predictions[1].top_k) == 1
    json.loads(full.model_dump_json())
    unread = api.encode_response((logits, [0.0, 1.0]), {"top_k": 2, "probabilities": True}).predictions[0]
    assert (unread.label, unread.score, unread.probabilities, unread.top_k) == (None, None, None, None)
    assert (unread.coverage, unread.unread) == (0.0, True)


def test_setup_sets_the_workers_torch_threads_on_the_cpu_only(tiny_bundle):
    before = torch.get_num_threads()
    try:
        TextCNNAPI(tiny_bundle, threads=1).setup("cpu")
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        TextCNNAPI(tiny_bundle).setup("cpu")  # None: torch's own choice stays
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("name", "limit", "members"), [("default", 12_000_000, 5), ("single", 2_500_000, 1)])
def test_shipped_bundles_are_small_half_precision_and_predict(name, limit, members):
    """models/default (5 CNN members and an NBSVM member) is what a fresh clone serves, models/single
    the cheaper single model: each must load, stay within a few MB, and make sense."""
    bundle = REPO / "models" / name
    size = sum(f.stat().st_size for f in bundle.iterdir())
    assert size < limit, size
    classifier = Classifier.load(bundle, device="cpu")
    assert len(classifier.members) == members and classifier.is_ensemble == (members > 1)
    assert next(classifier.model.parameters()).dtype == torch.float32  # fp16 on disk, fp32 to run
    assert json.loads((bundle / "config.json").read_text())["weights"]["dtype"] == "float16"
    labels = [
        p.label for p in classifier.predict(["a gorgeous , witty , seductive movie .", "dull and tedious ."])
    ]
    assert labels == ["positive", "negative"]
    assert classifier.info["metrics"]["test"]["accuracy"] > 0.7


def test_setup_fails_clearly_on_a_broken_bundle(tmp_path):
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        TextCNNAPI(tmp_path).setup("cpu")


def test_build_server_checks_the_bundle_and_the_device_first(tmp_path, tiny_bundle):
    with pytest.raises(BundleError, match="no model bundle here"):
        build_server(ServeSettings(model=tmp_path / "missing"))
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="torch sees no CUDA device"):
            build_server(ServeSettings(model=tiny_bundle, accelerator="cuda"))


def test_health_is_503_json_until_the_workers_are_ready(tiny_bundle):
    server = build_server(ServeSettings(model=tiny_bundle))  # no worker started: not ready
    response = TestClient(server.app).get("/health")  # no `with`: no lifespan, no LitServe queues
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "not ready", "model": model_id(tiny_bundle)}
    PredictRequest.limits = RequestLimits()
    ExplainRequest.limits = RequestLimits(max_texts=8)


# -- the app in-process (one inference worker process, as LitServe's own tests do) -----------


@pytest.fixture(scope="module")
def client(tiny_bundle):
    settings = ServeSettings(
        model=tiny_bundle, max_texts=4, max_text_chars=200, max_body_bytes=4000, max_explain_texts=2
    )
    with metrics.multiprocess_dir():
        server = build_server(settings)
        with wrap_litserve_start(server) as started, TestClient(started.app) as client:
            for _ in range(600):  # the worker is a spawned process: wait for its model
                if client.get("/health").status_code == 200:
                    break
                time.sleep(0.1)
            yield client
    PredictRequest.limits = RequestLimits()
    ExplainRequest.limits = RequestLimits(max_texts=8)


def test_app_predicts_one_text_and_several_in_order(client, classifier):
    texts = ["a warm , funny and moving film .", "a tedious , overlong mess .", "zyzzyva"]
    single = client.post("/predict", json={"text": texts[0]})
    assert single.status_code == 200, single.text
    body = single.json()
    assert set(body) == {"model", "predictions"} and len(body["predictions"]) == 1
    several = client.post("/predict", json={"texts": texts, "top_k": 2, "probabilities": True}).json()
    for want, got in zip(classifier.predict(texts[:2]), several["predictions"][:2], strict=True):
        assert got["label"] == want.label and got["score"] == pytest.approx(want.score, abs=1e-5)
        assert got["probabilities"] == pytest.approx(want.probabilities, abs=1e-5)
        assert next(entry["label"] for entry in got["top_k"]) == want.label
        assert got["coverage"] == pytest.approx(want.coverage) and 0 < got["coverage"] <= 1
        assert got["unread"] is False
    # "zyzzyva" is no word the model knows: said to be unread, with no label
    assert several["predictions"][2] == {
        "label": None,
        "score": None,
        "probabilities": None,
        "top_k": None,
        "coverage": 0.0,
        "unread": True,
    }


# Bodies both POST routes refuse alike, under the `client` fixture's limits.
BAD_BODIES = [
    ({"content": b'{"text": ', "headers": {"content-type": "application/json"}}, 422, "JSON decode error"),
    ({"content": b'{"text": "\xff\xfe"}', "headers": {"content-type": "application/json"}}, 400, "parsing"),
    ({"json": ["a list"]}, 422, "must be a JSON object"),
    ({"json": {"text": 1}}, 422, "valid string"),
    ({"json": {"text": "   "}}, 422, "only whitespace"),
    ({"json": {"text": "x" * 201}}, 422, "at most 200"),
    ({"json": {"text": "x" * 5000}}, 413, "larger than 4000 bytes"),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        *BAD_BODIES,
        ({"content": b'{"text": "a"}', "headers": {"content-type": "text/plain"}}, 422, "Content-Type"),
        ({"json": {"texts": ["a"], "top_k": 5}}, 422, "2 labels"),
        ({"json": {"text": "a", "threshold": 0.5}}, 422, "threshold is for a multi-label model"),
        ({"json": {"text": "a", "extra": 1}}, 422, "Extra inputs"),
        ({"json": {"texts": ["a"] * 5}}, 422, "at most 4"),
    ],
)
def test_app_answers_bad_input_with_a_4xx_and_keeps_serving(client, kwargs, status, fragment):
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    assert fragment in response.text
    assert "x" * 100 not in response.text  # the input is not echoed back
    assert client.post("/predict", json={"text": "still here"}).status_code == 200


def post_through(
    middleware, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, dict, int]:
    """POST `chunks` through `middleware` around an app that reads the body: status, JSON, receives."""
    app = FastAPI()

    @app.post("/predict")
    async def read_all(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    cls, options = middleware
    app.add_middleware(cls, **options)
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    received, sent = [], []

    async def receive() -> dict:
        received.append(1)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "server": ("testserver", 80),
        "client": ("testclient", 1),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), len(received)


OURS = (BodyLimitMiddleware, {"max_body_bytes": 100})
LITSERVES = (MaxSizeMiddleware, {"max_size": 100})  # what LitServer(max_payload_size=100) adds


def test_body_limit_refuses_a_declared_oversize_body_without_reading_it():
    """Why BodyLimitMiddleware and not LitServe's max_payload_size: both answer a JSON 413 as the
    body streams in, but only ours answers from Content-Length before reading a byte (uvicorn sends
    `100 Continue` on the first read: a client that waits for it then never uploads the body)."""
    declared = [(b"content-length", b"1000")]
    status, body, reads = post_through(OURS, declared, [b"x" * 50] * 20)
    assert (status, reads) == (413, 0) and body == {"detail": "request body is larger than 100 bytes"}
    status, body, reads = post_through(LITSERVES, declared, [b"x" * 50] * 20)
    assert (status, reads) == (413, 3) and body == {"detail": "Payload too large"}  # 150 bytes read first
    for middleware in (OURS, LITSERVES):  # chunked, or a Content-Length that lies: stopped as it streams
        for headers in ([(b"transfer-encoding", b"chunked")], [(b"content-length", b"50")]):
            status, body, reads = post_through(middleware, headers, [b"x" * 50] * 20)
            assert (status, reads) == (413, 3) and body["detail"]
        assert post_through(middleware, [(b"content-length", b"50")], [b"x" * 50])[:2] == (200, {"bytes": 50})


def test_app_health_info_metrics_and_docs(client, tiny_bundle):
    health = client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok", "model": model_id(tiny_bundle)}
    info = client.get("/info").json()
    model = info["model"]
    assert model["id"] == model_id(tiny_bundle) and model["labels"] == ["negative", "positive"]
    assert model["model"]["pooling"] == "max" and model["model"]["variant"] == "rand"
    assert model["task"] == "single-label" and model["decision"] is None
    assert model["vocab_size"] > 2 and model["metrics"]["dev"]["accuracy"] is not None
    assert model["versions"]["serving"]["litserve"] == "0.2.19" and model["limits"]["max_texts"] == 4
    assert model["limits"]["max_explain_texts"] == 2 and model["batching"]["explain_workers"] == 1
    client.post("/predict", json={"text": "count me"})
    exposition = client.get("/metrics")
    assert exposition.status_code == 200 and exposition.headers["content-type"].startswith("text/plain")
    assert re.search(
        r'textcnn_http_requests_total\{method="POST",path="/predict",status="200"\} [1-9]', exposition.text
    )
    assert re.search(r"textcnn_batch_texts_count [1-9]", exposition.text)  # from the worker process
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictRequest"
    )
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictResponse"
    )
    assert {"413", "422"} <= set(operation["responses"])
    assert "maxItems" in json.dumps(schema["components"]["schemas"]["PredictRequest"])
    assert client.get("/docs").status_code == 200


def test_app_explains_each_text_and_the_parts_sum_to_the_logit(client, classifier):
    from textcnn.inference.explain import explain_text

    texts = ["a warm , funny and moving film .", "a tedious , overlong mess ."]
    response = client.post("/explain", json={"texts": texts, "top": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"].startswith("tiny@") and len(body["explanations"]) == 2
    for text, explanation in zip(texts, body["explanations"], strict=True):
        assert explanation["text"] == text and len(explanation["token_parts"]) == len(explanation["tokens"])
        assert len(explanation["for"]) <= 3 and len(explanation["against"]) <= 3
        total = sum(explanation["token_parts"]) + explanation["output_bias"] + explanation["filter_bias"]
        assert total == pytest.approx(explanation["logit"], abs=1e-4)
        assert explanation["exact"] and abs(explanation["residual"]) < 1e-4
        assert explanation["label"] == classifier.predict([text])[0].label
        for ngram in explanation["for"] + explanation["against"]:
            assert ngram["contribution"] == pytest.approx(
                ngram["filter_bias"] + sum(ngram["token_parts"]), abs=1e-6
            )
            assert ngram["ngram"] == " ".join(explanation["tokens"][ngram["start"] : ngram["end"]])
        # The library's own answer, field for field (the response adds `part` and `member`: null
        # to each n-gram of a single model with one pooled part).
        expected = explain_text(classifier, text, top=3)
        for side in ("for", "against"):
            for ngram in explanation[side]:
                assert ngram.pop("part") is None and ngram.pop("member") is None and ngram.pop("kind") is None
        assert explanation == expected  # JSON round-trips floats exactly
    one = client.post("/explain", json={"text": texts[0]}).json()["explanations"]
    assert len(one) == 1 and len(one[0]["for"]) <= 5


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        *BAD_BODIES,
        ({"json": {"texts": ["a"] * 3}}, 422, "3 texts in one request; at most 2"),
        ({"json": {"text": "a", "top": 21}}, 422, "less than or equal to 20"),
        ({"json": {"text": "a", "top_k": 1}}, 422, "Extra inputs"),
        ({"json": {"text": "a", "threshold": 0.5}}, 422, "threshold is for a multi-label model"),
    ],
)
def test_app_answers_bad_explain_input_like_predict(client, kwargs, status, fragment):
    response = client.post("/explain", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json") and response.json()["detail"]
    assert fragment in response.text and "x" * 100 not in response.text
    assert client.post("/explain", json={"text": "still here"}).status_code == 200


def test_app_counts_explanations_in_metrics(client):
    def value(pattern: str) -> float:
        found = re.search(re.escape(pattern) + r" ([0-9.e+]+)$", client.get("/metrics").text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    ok = 'textcnn_http_requests_total{method="POST",path="/explain",status="200"}'
    bad = 'textcnn_http_requests_total{method="POST",path="/explain",status="422"}'
    before = (
        value(ok),
        value(bad),
        value("textcnn_explained_texts_total"),
        value("textcnn_explain_seconds_count"),
    )
    assert client.post("/explain", json={"texts": ["one", "two"]}).status_code == 200
    assert client.post("/explain", json={"text": ""}).status_code == 422
    after = (
        value(ok),
        value(bad),
        value("textcnn_explained_texts_total"),
        value("textcnn_explain_seconds_count"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 2, 1]


def test_app_serves_the_page_with_a_content_security_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for path, media_type in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
        static = client.get(path)
        assert static.status_code == 200 and static.headers["content-type"].startswith(media_type)
        assert {k: static.headers[k.lower()] for k in PAGE_HEADERS} == PAGE_HEADERS
    missing = client.get("/static/../server.py")
    assert missing.status_code == 404
    assert client.get("/static/index.html").status_code == 404  # only the page's own script and style


def test_the_page_has_no_inline_script_and_never_writes_html():
    """What the CSP forbids is not there (so the page works under it), and user text cannot become
    markup: the script sets textContent, never innerHTML and the like."""
    static = REPO / "service" / "static"
    html = (static / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert scripts and all('src="/static/' in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"\son\w+\s*=", html) and " style=" not in html and "<style" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from another origin
    script = re.sub(r"//[^\n]*", "", (static / "app.js").read_text())  # the code, not its comments
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("):
        assert sink not in script, sink
    assert 'setAttribute("style"' not in script  # style attributes need 'unsafe-inline'


def test_the_page_is_package_data():
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    static = REPO / "service" / "static"
    shipped = {path.name for pattern in data["service"] for path in (REPO / "service").glob(pattern)}
    assert shipped == {path.name for path in static.iterdir()} >= {"index.html", "app.js", "style.css"}


def test_openapi_describes_the_page_health_and_explain(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {"/", "/health", "/info", "/predict", "/explain"}
    assert "text/html" in paths["/"]["get"]["responses"]["200"]["content"]
    health = paths["/health"]["get"]["responses"]
    for status in ("200", "503"):
        assert health[status]["content"]["application/json"]["schema"]["$ref"].endswith("/HealthResponse")
    for path in ("/predict", "/explain"):
        responses = paths[path]["post"]["responses"]
        assert {"200", "400", "413", "422", "504"} <= set(responses)
        for status in ("400", "413", "504"):
            assert responses[status]["content"]["application/json"]["schema"]["required"] == ["detail"]
    explain = paths["/explain"]["post"]
    assert explain["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ExplainRequest")
    assert explain["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ExplainResponse"
    )
    components = schema["components"]["schemas"]
    texts = components["ExplainRequest"]["properties"]["texts"]["anyOf"][0]
    assert texts["maxItems"] == 2 and texts["items"]["maxLength"] == 200 and texts["items"]["pattern"]
    assert (
        "for" in components["Explanation"]["properties"]
        and "for_" not in components["Explanation"]["properties"]
    )


# -- deployment files -------------------------------------------------------------------------


def dockerfile_instruction(name: str) -> str:
    """The (joined) text of the Dockerfile's last NAME instruction."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().upper().startswith(name + " ")]
    assert lines, f"no {name} in the Dockerfile"
    return lines[-1][len(name) + 1 :].strip()


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's CMD, as an argument list (exec form)."""
    instruction = dockerfile_instruction("HEALTHCHECK")
    return json.loads(instruction[instruction.index("CMD") + 3 :])


def parse_textcnn(argv: list[str]):
    from textcnn.cli import build_parser

    return build_parser().parse_args(argv)


def dockerfile_env() -> dict[str, str]:
    """The final stage's ENV settings (its last ENV instruction, `KEY=value` pairs)."""
    return dict(pair.split("=", 1) for pair in shlex.split(dockerfile_instruction("ENV")))


def test_dockerfile_runs_the_serve_command_the_cli_knows():
    entrypoint = json.loads(dockerfile_instruction("ENTRYPOINT"))
    command = json.loads(dockerfile_instruction("CMD"))
    assert entrypoint == ["textcnn"]
    args = parse_textcnn(command)
    assert args.command == "serve"
    # Host and port come from the image's environment, so a deployment can move them.
    environment = {k: v for k, v in dockerfile_env().items() if k.startswith("TEXTCNN_")}
    settings = ServeSettings.from_env(
        environment, **{k: v for k, v in vars(args).items() if k in ServeSettings.__dataclass_fields__}
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    assert "8000" in dockerfile_instruction("EXPOSE")
    assert any("/health" in part and "TEXTCNN_PORT" in part for part in healthcheck_command())
    assert re.search(r"^USER\s+(?!root)\S+", (REPO / "Dockerfile").read_text(), re.MULTILINE)


def test_the_build_context_holds_what_the_image_needs():
    """.dockerignore starts from `*` and the Dockerfile copies the context whole: whatever the build
    reads must be let back in, or the build breaks (or, for the wheels, an air-gapped build does)."""
    allowed = {
        line[1:].strip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^COPY \. \./$", text, re.MULTILINE)
    needed = ["pyproject.toml", "README.md", "textcnn", "service", "models/default", "deploy/wheels"]
    for path in needed:
        assert path in allowed, path
        assert (REPO / path).exists(), path
    # The final stage takes the shipped model and the environment from the build stage only.
    copies = [line.split()[2:] for line in text.splitlines() if line.startswith("COPY --from=build")]
    assert sorted(source for source, _ in copies) == ["/opt/venv", "/src/models/default"]


def load_yaml(path: Path) -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_files_follow_the_compose_specification(name):
    jsonschema = pytest.importorskip("jsonschema")
    # check-jsonschema ships the Compose Specification's JSON schema (vendor/compose-spec.json).
    schemas = pytest.importorskip(
        "check_jsonschema.builtin_schemas", reason="check-jsonschema is not installed"
    )
    from importlib.resources import files

    spec = json.loads((files(schemas) / "vendor" / "compose-spec.json").read_text())
    jsonschema.validate(load_yaml(REPO / name), spec)


def test_compose_serve_and_train_services():
    compose = load_yaml(REPO / "docker-compose.yml")
    serve, train = compose["services"]["serve"], compose["services"]["train"]
    assert "healthcheck" not in serve  # the image's own HEALTHCHECK
    assert "${TEXTCNN_MODELS_DIR:-./models}:/app/models:ro" in serve["volumes"]
    assert serve["restart"] == "unless-stopped"
    assert str(serve["user"]).split(":")[0] not in ("0", "root")
    # Every value is valid, with compose's ${NAME:-default} taken at its default.
    environment = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in serve["environment"].items()}
    assert ServeSettings.from_env(environment).model == Path("models/default")
    assert train["profiles"] == ["train"] and "TEXTCNN_DATA_DIR" in train["environment"]
    for service in (serve, train):  # what each runs parses with the real CLI
        command = service.get("command") or json.loads(dockerfile_instruction("CMD"))
        command = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
        args = parse_textcnn(command)
        assert args.command in ("serve", "train")
    gpu = load_yaml(REPO / "docker-compose.gpu.yml")["services"]["serve"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    assert gpu["environment"]["TEXTCNN_ACCELERATOR"] == "cuda"


def test_info_carries_the_registry_summary_of_the_pooling(client):
    from textcnn.model.pooling import get_pooling

    pooling = client.get("/info").json()["model"]["pooling"]
    entry = get_pooling("max")
    assert pooling == {"name": "max", "summary": entry.summary, "explained": entry.explained, "exact": True}


def test_every_texts_coverage_is_in_metrics_and_unread_ones_are_counted(client):
    def value(pattern: str) -> float:
        found = re.search(re.escape(pattern) + r" ([0-9.e+]+)$", client.get("/metrics").text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    count = 'textcnn_token_coverage_count{route="predict"}'
    low = 'textcnn_token_coverage_bucket{le="0.0",route="predict"}'
    unread = 'textcnn_unread_texts_total{route="predict"}'
    before = value(count), value(low), value(unread)
    texts = ["a warm , funny and moving film .", "日本語のテキスト", "zyzzyva quux"]
    answer = client.post("/predict", json={"texts": texts}).json()["predictions"]
    assert [p["unread"] for p in answer] == [False, True, True]
    after = value(count), value(low), value(unread)
    assert [b - a for a, b in zip(before, after, strict=True)] == [3, 2, 2]
    explained = 'textcnn_token_coverage_count{route="explain"}'
    was = value(explained)
    assert client.post("/explain", json={"text": "日本語"}).json()["explanations"][0]["unread"] is True
    assert value(explained) - was == 1


def test_info_names_the_tokenizer_and_what_it_made_of_the_training_texts(client):
    model = client.get("/info").json()["model"]
    assert model["tokenizer"]["name"] == "unicode" and model["tokenizer"]["summary"]
    assert model["text"]["tokenizer"]["name"] == "unicode"
    assert model["tokens"]["vocab_size"] == model["vocab_size"] - 2 and model["tokens"]["commonest"]
