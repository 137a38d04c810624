"""The service as users run it: `python -m service` (and `textcnn serve`) as real processes on a free
loopback port, talked to over HTTP. One server for the module, one inference worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("litserve", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx")

from test_service import dockerfile_instruction, healthcheck_command, sample_texts  # noqa: E402

from textcnn.inference.bundle import Classifier  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/json"}
# The test's own processes: one thread each, and lowest priority next to whatever else runs.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
pytestmark = pytest.mark.usefixtures("one_thread")  # and in this process (conftest.py)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(*args: str, own_process_group: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--workers", "1", *args],
        cwd=REPO,
        env=CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=own_process_group,
        # As in a terminal: a shell's background jobs start with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_healthy(process: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server not healthy after {timeout} s:\n{process.stdout.read()}")


@contextlib.contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """A server on a free loopback port, healthy: (process, url); stopped at the end if still up."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(*args, "--port", str(port))
    try:
        wait_healthy(process, url)
        yield process, url
    finally:
        if process.poll() is None:
            stop(process)


def stop(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    """SIGTERM, as `docker stop` sends; the exit code and everything the server printed."""
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"no exit {timeout} s after SIGTERM:\n{output}") from None
    return process.returncode, output


@pytest.fixture(scope="module")
def classifier(tiny_bundle) -> Classifier:
    return Classifier.load(tiny_bundle, device="cpu")


@pytest.fixture(scope="module")
def server_process(tiny_bundle):
    """The server, with small limits to hit and a small token budget so batches get cut in chunks."""
    limits = [
        "--max-texts",
        "8",
        "--max-text-chars",
        "300",
        "--max-body-bytes",
        "8000",
        "--max-explain-texts",
        "3",
    ]
    batching = ["--max-batch-size", "16", "--batch-timeout", "0.02", "--max-batch-tokens", "64"]
    with serving("--model", str(tiny_bundle), *limits, *batching, "--log-level", "warning") as (process, url):
        yield process, url


@pytest.fixture(scope="module")
def server(server_process):
    _, url = server_process
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


def metric(client, pattern: str) -> float:
    text = client.get("/metrics").text
    values = [
        float(m.group(1)) for m in re.finditer(re.escape(pattern) + r" ([0-9.e+]+)$", text, re.MULTILINE)
    ]
    return sum(values)


def check_answers(texts: list[str], body: dict, classifier: Classifier) -> None:
    assert len(body["predictions"]) == len(texts)
    for want, got in zip(classifier.predict(texts), body["predictions"], strict=True):
        assert got["label"] == want.label
        assert got["score"] == pytest.approx(want.score, abs=1e-5)


def test_single_and_multi_text(server, classifier, tiny_bundle):
    single = server.post("/predict", json={"text": "a warm , funny film ."})
    assert single.status_code == 200, single.text
    assert single.json()["model"].startswith("tiny@")
    check_answers(["a warm , funny film ."], single.json(), classifier)
    texts = sample_texts(8, seed=3)
    several = server.post("/predict", json={"texts": texts, "probabilities": True, "top_k": 2})
    check_answers(texts, several.json(), classifier)
    for want, got in zip(classifier.predict(texts), several.json()["predictions"], strict=True):
        assert got["probabilities"] == pytest.approx(want.probabilities, abs=1e-5)
        assert got["top_k"][0]["label"] == want.label


def chunked(body: bytes):
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


BAD_REQUESTS = {
    "malformed JSON": ({"content": b'{"text": "unfinished', "headers": JSON}, 422),
    "not UTF-8": ({"content": b'{"text": "caf\xe9"}', "headers": JSON}, 400),
    "not JSON at all": ({"content": b"\x00\x01\x02", "headers": JSON}, 422),
    "empty body": ({"content": b"", "headers": JSON}, 422),
    "wrong type": ({"json": {"text": ["a"]}}, 422),
    "missing field": ({"json": {"top_k": 1}}, 422),
    "unknown field": ({"json": {"text": "a", "model": "other"}}, 422),
    "empty text": ({"json": {"text": ""}}, 422),
    "whitespace text": ({"json": {"texts": ["fine", "\u2003 \n"]}}, 422),
    "text too long": ({"json": {"text": "word " * 61}}, 422),
    "too many texts": ({"json": {"texts": ["a"] * 9}}, 422),
    "body too large": ({"json": {"text": "x" * 9000}}, 413),
    "body too large, chunked": (
        {"content": chunked(b'{"text": "' + b"y" * 9000 + b'"}'), "headers": JSON},
        413,
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_and_the_server_keeps_serving(server, classifier, case):
    kwargs, status = BAD_REQUESTS[case]
    response = server.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"]  # a message: a string, or FastAPI's list of {loc, msg, type}
    good = server.post("/predict", json={"texts": ["still", "answering"]})
    assert good.status_code == 200
    check_answers(["still", "answering"], good.json(), classifier)


EXPLAIN_BAD_REQUESTS = {
    "malformed JSON": ({"content": b'{"text": "unfinished', "headers": JSON}, 422),
    "not UTF-8": ({"content": b'{"text": "caf\xe9"}', "headers": JSON}, 400),
    "wrong type": ({"json": {"texts": "a"}}, 422),
    "empty text": ({"json": {"text": ""}}, 422),
    "text too long": ({"json": {"text": "word " * 61}}, 422),
    "too many texts": ({"json": {"texts": ["a"] * 4}}, 422),
    "top too large": ({"json": {"text": "a", "top": 21}}, 422),
    "body too large": ({"json": {"text": "x" * 9000}}, 413),
}


@pytest.mark.parametrize("case", list(EXPLAIN_BAD_REQUESTS))
def test_bad_explain_input_is_a_4xx_like_predict(server, case):
    kwargs, status = EXPLAIN_BAD_REQUESTS[case]
    response = server.post("/explain", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json") and response.json()["detail"]
    assert server.post("/explain", json={"text": "still answering"}).status_code == 200


def test_explain_parts_and_biases_sum_to_the_logit_and_match_the_cli(server, tiny_bundle):
    """POST /explain and `textcnn explain --json` call the same library function on the same bundle."""
    texts = ["a warm , funny film .", "zyzzyva qwerty", "the plot is thin ; the jokes fall flat ."]
    response = server.post("/explain", json={"texts": texts, "top": 4})
    assert response.status_code == 200, response.text
    answers = response.json()["explanations"]
    cli = subprocess.run(
        [sys.executable, "-m", "textcnn", "explain", str(tiny_bundle), *texts, "--top", "4", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=CHILD_ENV,
    )
    assert cli.returncode == 0, cli.stderr
    printed = [json.loads(line) for line in cli.stdout.splitlines()]
    assert len(printed) == len(answers) == 3
    for answer, expected in zip(answers, printed, strict=True):
        if answer["text"] == "zyzzyva qwerty":  # no token known: said to be unread, with no label or logit
            assert answer["unread"] and answer["coverage"] == 0.0 and answer["label"] is None
            assert answer["logit"] is None and answer["for"] == answer["against"] == []
            assert answer == expected
            continue
        assert not answer["unread"] and answer["coverage"] > 0
        total = sum(answer["token_parts"]) + answer["output_bias"] + answer["filter_bias"]
        assert total == pytest.approx(answer["logit"], abs=1e-4)
        for side in ("for", "against"):
            for ngram in answer[side]:
                # the response's schema names them; max pooling has no parts, one model no members
                assert ngram.pop("part") is None and ngram.pop("member") is None and ngram.pop("kind") is None
        assert answer == expected  # the same numbers, to the last bit


def test_a_body_declared_too_large_is_refused_before_it_is_sent(server, classifier):
    """curl sends `Expect: 100-continue` before a large body: the 413 comes instead of the go-ahead,
    so the body is never uploaded (LitServe's max_payload_size would say 100 Continue and read it)."""
    with socket.create_connection(("127.0.0.1", server.base_url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:  # a server waiting for the body: socket.timeout fails the test
            answer += sock.recv(4096)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), answer
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += sock.recv(4096)
    assert json.loads(body) == {"detail": "request body is larger than 8000 bytes"}
    good = server.post("/predict", json={"text": "still answering"})
    assert good.status_code == 200
    check_answers(["still answering"], good.json(), classifier)


def test_health_info_and_metrics_move(server, tiny_bundle):
    health = server.get("/health")
    assert health.status_code == 200 and health.headers["content-type"] == "application/json"
    info = server.get("/info").json()["model"]
    assert health.json() == {"status": "ok", "model": info["id"]}
    assert info["labels"] == ["negative", "positive"] and info["id"].startswith("tiny@")
    assert info["limits"] == {
        "max_texts": 8,
        "max_text_chars": 300,
        "max_body_bytes": 8000,
        "max_explain_texts": 3,
    }
    ok = 'textcnn_http_requests_total{method="POST",path="/predict",status="200"}'
    unprocessable = 'textcnn_http_requests_total{method="POST",path="/predict",status="422"}'
    before_ok, before_bad, before_texts = (
        metric(server, ok),
        metric(server, unprocessable),
        metric(server, "textcnn_texts_total"),
    )
    server.post("/predict", json={"texts": ["one", "two", "three"]})
    server.post("/predict", json={"text": ""})
    assert metric(server, ok) == before_ok + 1
    assert metric(server, unprocessable) == before_bad + 1
    assert metric(server, "textcnn_texts_total") == before_texts + 3
    assert metric(server, "textcnn_forward_seconds_count") >= 1


def test_concurrent_requests_are_never_mixed_up(server, classifier):
    rng_texts = sample_texts(200, seed=7)
    requests, start = [], 0
    for i in range(64):  # mixed single-text and multi-text requests, all different
        size = 1 if i % 3 else 1 + i % 8
        texts = rng_texts[start : start + size]
        start = (start + size) % 190
        requests.append({"text": texts[0]} if size == 1 and i % 2 else {"texts": texts})
    batches_before = metric(server, "textcnn_batch_requests_count")
    requests_before = metric(server, "textcnn_batch_requests_sum")

    def send(body: dict) -> dict:
        response = server.post("/predict", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(send, requests))
    for body, answer in zip(requests, answers, strict=True):
        check_answers(body.get("texts") or [body["text"]], answer, classifier)
    batches = metric(server, "textcnn_batch_requests_count") - batches_before
    answered = metric(server, "textcnn_batch_requests_sum") - requests_before
    assert answered == 64 and batches < 64  # some requests shared a batch


def cpu_seconds_of_tree(root: int) -> float:
    """User + system CPU time of a process and all its descendants, from /proc."""
    parents, times = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(times.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_an_idle_server_does_not_spin(server, server_process):
    """LitServe's own loop polls its request queue and kept a core busy while idle (service/loop.py)."""
    assert server.post("/predict", json={"text": "warm up"}).status_code == 200
    time.sleep(1.0)
    before = cpu_seconds_of_tree(server_process[0].pid)
    time.sleep(3.0)
    used = cpu_seconds_of_tree(server_process[0].pid) - before
    assert used < 0.6, f"the idle server used {used:.2f} s of CPU in 3 s"  # a polling loop: about 3 s
    assert server.post("/predict", json={"text": "still answers"}).status_code == 200


def test_dockerfile_healthcheck_works_against_a_real_server(server):
    command = healthcheck_command()
    assert command[0] == "python"

    def check(port: int) -> subprocess.CompletedProcess:
        env = {**CHILD_ENV, "TEXTCNN_PORT": str(port)}
        return subprocess.run(
            [sys.executable, *command[1:]], capture_output=True, text=True, timeout=30, env=env
        )

    result = check(server.base_url.port)
    assert result.returncode == 0, result.stderr
    assert check(free_port()).returncode != 0


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(server):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    url = str(server.base_url)
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operation = schema["/predict"]["POST"]
    statuses: list[int] = []
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case) -> None:
            response = case.call(base_url=url, timeout=30)
            statuses.append(response.status_code)
            assert response.status_code < 500, (case.body, response.text)

        no_server_error()
    assert 200 in statuses and any(400 <= status < 500 for status in statuses), statuses
    assert server.post("/predict", json={"text": "alive"}).status_code == 200


def test_server_stops_cleanly_on_sigterm(tiny_bundle):
    port = free_port()
    process = start_server("--model", str(tiny_bundle), "--port", str(port), "--log-level", "warning")
    wait_healthy(process, f"http://127.0.0.1:{port}")
    assert httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "bye"}).status_code == 200
    code, output = stop(process)
    assert code == 0, output
    assert "Traceback" not in output and "ERROR" not in output, output


def _spawned_workers(root: int) -> list[int]:
    """Pids of the inference workers under a server: multiprocessing's spawned children, oldest first."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if parent == root and b"multiprocessing.spawn" in command:
            children.append(int(entry.name))
    return sorted(children)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_dead_explain_worker_stops_the_server_with_an_error(tiny_bundle):
    """The worker monitor watches both LitAPIs' workers: /explain's worker is started after /predict's."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server("--model", str(tiny_bundle), "--port", str(port), "--log-level", "warning")
    wait_healthy(process, url)
    assert httpx.post(f"{url}/explain", json={"text": "fine"}).status_code == 200
    workers = _spawned_workers(process.pid)
    assert len(workers) == 2, workers  # one for /predict, one for /explain
    os.kill(workers[-1], signal.SIGKILL)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"still serving 60 s after a worker died:\n{process.communicate()[0]}") from None
    assert process.returncode == 1, output
    assert f"inference worker {workers[-1]} died" in output, output


@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, signal.SIGTERM],
    ids=["ctrl-c in a terminal", "sigterm to every process, as systemd stops a service"],
)
def test_a_signal_to_the_whole_process_group_stops_it_without_a_traceback(tiny_bundle, signum):
    """Ctrl-C signals the terminal's whole process group: server, HTTP servers, queue manager,
    worker; systemd's default stop (KillMode=control-group) sends SIGTERM to all of them too."""
    port = free_port()
    process = start_server(
        "--model", str(tiny_bundle), "--port", str(port), "--log-level", "warning", own_process_group=True
    )
    wait_healthy(process, f"http://127.0.0.1:{port}")
    assert httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "bye"}).status_code == 200
    os.killpg(process.pid, signum)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"still running 60 s after the signal:\n{process.communicate()[0]}") from None
    assert "Traceback" not in output, output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _group_alive(process.pid):
        time.sleep(0.2)
    assert not _group_alive(process.pid), "a process of the server outlived the signal"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_fresh_clone_serves_the_shipped_model_with_no_flags():
    """The README's first command: `textcnn serve` in the repository, no model given, no data."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "textcnn", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env={k: v for k, v in CHILD_ENV.items() if not k.startswith("TEXTCNN_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(process, url)
    texts = ["a gorgeous , witty , seductive movie .", "the plot is thin and the jokes fall flat ."]
    body = httpx.post(f"{url}/predict", json={"texts": texts, "probabilities": True}).json()
    assert [p["label"] for p in body["predictions"]] == ["positive", "negative"]
    assert body["model"].startswith("default@")
    info = httpx.get(f"{url}/info").json()["model"]
    assert info["data"]["dataset"] == "mr" and info["labels"] == ["negative", "positive"]
    code, output = stop(process)
    assert code == 0, output


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textcnn: error: "), result.stderr
    assert fragment in lines[0]


def test_missing_bundle_exits_at_once_with_one_line(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "service", "--model", str(tmp_path / "nothing"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=CHILD_ENV,
    )
    assert_one_line_error(result, "no model bundle here")
    assert time.monotonic() - started < 60


def test_textcnn_serve_reports_a_port_in_use_in_one_line(tiny_bundle):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "textcnn", "serve", "--model", str(tiny_bundle), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=CHILD_ENV,
        )
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_textcnn_serve_help_lists_every_flag():
    result = subprocess.run(
        [sys.executable, "-m", "textcnn", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    flags = [
        "--model",
        "--host",
        "--port",
        "--workers",
        "--max-batch-size",
        "--batch-timeout",
        "--accelerator",
    ]
    more = ["--threads", "--max-texts", "--max-text-chars", "--max-body-bytes", "--fast-queue"]
    for flag in [*flags, *more, "--max-explain-texts", "--explain-workers"]:
        assert flag in result.stdout
    assert json.loads(dockerfile_instruction("CMD"))[0] == "serve"


def predicts_as_the_library(url: str, classifier: Classifier, texts: list[str]) -> None:
    body = httpx.post(f"{url}/predict", json={"texts": texts, "probabilities": True}).json()
    for got, expected in zip(body["predictions"], classifier.predict(texts), strict=True):
        assert got["label"] == expected.label and got["score"] == pytest.approx(expected.score, abs=1e-5)


def test_an_ensemble_bundle_serves_predictions_explanations_and_its_members(tiny_ensemble):
    ensemble = Classifier.load(tiny_ensemble, device="cpu")
    texts = ["a wonderful film", "dull and lifeless", "fine"]
    with serving("--model", str(tiny_ensemble), "--num-api-servers", "1") as (process, url):
        predicts_as_the_library(url, ensemble, texts)
        explained = httpx.post(f"{url}/explain", json={"text": texts[0]}).json()["explanations"][0]
        assert explained["label"] == ensemble.predict(texts[:1])[0].label
        assert {entry["member"] for entry in explained["for"] + explained["against"]} <= {0, 1, 2}
        info = httpx.get(f"{url}/info").json()["model"]
        assert info["ensemble"]["size"] == 3 and [m["seed"] for m in info["ensemble"]["members"]] == [0, 1, 2]
        assert all(0 <= m["dev_accuracy"] <= 1 for m in info["ensemble"]["members"])
        code, output = stop(process)
    assert code == 0 and "Traceback" not in output


def test_a_mixed_bundle_serves_and_explains_every_members_part(tiny_mixed):
    """Members of two poolings and a linear one: /predict as the library, /explain with what each
    member said (the linear member's n-grams among the entries), /info listing members and kinds."""
    mixed = Classifier.load(tiny_mixed, device="cpu")
    texts = ["a warm , funny and surprisingly moving film .", "dull and lifeless", "not bad at all"]
    with serving("--model", str(tiny_mixed), "--num-api-servers", "1") as (process, url):
        predicts_as_the_library(url, mixed, texts)
        explained = httpx.post(f"{url}/explain", json={"text": texts[0], "top": 20}).json()["explanations"][0]
        members = explained["members"]
        assert [m["kind"] for m in members] == ["cnn", "cnn", "cnn", "nbsvm"]
        assert [m["pooling"] for m in members] == ["max", "max", "avg", None]
        assert explained["logit"] == pytest.approx(sum(m["weight"] * m["logit"] for m in members), abs=1e-5)
        parts = explained["output_bias"] + explained["filter_bias"] + sum(explained["token_parts"])
        assert explained["logit"] == pytest.approx(parts, abs=1e-5)
        assert {entry["kind"] for entry in explained["for"] + explained["against"]} <= {"cnn", "nbsvm"}
        linear_parts = members[3]["token_parts"]  # the linear member's n-grams, over the tokens
        assert len(linear_parts) == len(explained["tokens"]) and any(part != 0 for part in linear_parts)
        info = httpx.get(f"{url}/info").json()["model"]
        assert [m["kind"] for m in info["members"]] == ["cnn", "cnn", "cnn", "nbsvm"]
        assert info["pooling"]["name"] == "max+avg" and info["ensemble"]["size"] == 4
        assert sum(m["weight"] for m in info["members"]) == pytest.approx(1)
        code, output = stop(process)
    assert code == 0 and "Traceback" not in output
