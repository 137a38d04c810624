"""The OpenAPI document tells the truth: `schemathesis run` (every check, response schemas included)
against a real server on loopback finds nothing, on a single-label model and on a multi-label one
(whose requests take a `threshold` and whose answers carry `labels`).

Its limits are small enough that no schema-valid request can pass max_body_bytes (4 texts of 100
characters, each at most 12 bytes as JSON escapes, is under 1 MiB): the body limit is the one rule
JSON Schema cannot state, and schemathesis would count its 413 as a valid request refused.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("litserve", reason="the serve extra is not installed")
pytest.importorskip("schemathesis", reason="schemathesis is not installed (the dev extra)")
httpx = pytest.importorskip("httpx")

from test_service_e2e import CHILD_ENV, serving, stop  # noqa: E402
from test_service_multilabel import train_multilabel_bundle  # noqa: E402

MAX_EXAMPLES = 400  # per operation and phase: ~20 s on 2 cores (a fixed seed: the same run each time)
LIMITS = ["--max-texts", "4", "--max-text-chars", "100", "--max-explain-texts", "2"]


@contextlib.contextmanager
def small_server(bundle):
    args = ["--model", str(bundle), *LIMITS, "--num-api-servers", "1", "--log-level", "warning"]
    with serving(*args) as (process, url):
        yield url
        code, output = stop(process)
    assert code == 0 and "Traceback" not in output, output


@pytest.fixture(scope="module")
def url(tiny_bundle):
    with small_server(tiny_bundle) as url:
        yield url


def schemathesis_command() -> list[str]:
    found = shutil.which("schemathesis") or shutil.which("st")
    return [found] if found else [sys.executable, "-m", "schemathesis.cli"]


def test_schemathesis_finds_nothing_with_every_check(url, tmp_path):
    schemathesis_finds_nothing(url, tmp_path, MAX_EXAMPLES)


def test_schemathesis_finds_nothing_on_a_multi_label_model(tmp_path):
    """`threshold` taken (and its bounds), `labels` in predictions and explanations: as the schema says."""
    bundle = train_multilabel_bundle(tmp_path / "emotions")
    with small_server(bundle) as url:
        schemathesis_finds_nothing(url, tmp_path, MAX_EXAMPLES // 4)
        body = httpx.post(f"{url}/predict", json={"text": "so glad", "threshold": 0.5}).json()
        assert "labels" in body["predictions"][0]


def schemathesis_finds_nothing(url: str, tmp_path, max_examples: int) -> None:
    result = subprocess.run(
        [
            *schemathesis_command(),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(max_examples),
            "--workers",
            "1",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,  # its .hypothesis and report folders
        env=CHILD_ENV,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout, result.stdout[-3000:]
    assert "5 selected / 5 total" in result.stdout  # GET / /health /info, POST /predict /explain
    assert httpx.post(f"{url}/explain", json={"text": "still answering"}).status_code == 200
