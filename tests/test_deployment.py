"""The docker-compose deployment, run for real: the image the Dockerfile builds, started by
`docker compose up serve` from the repository's own docker-compose.yml, until its health check says
healthy; its answers; a killed server brought back by compose's restart policy; the train profile
writing a bundle that serve then serves; the non-root user and the read-only model mount; and
`docker compose down` leaving nothing behind.

It needs a Docker daemon and the image `textcnn:latest`: `.ci/deployment` starts a daemon, builds the
image and runs this module with TEXTCNN_DEPLOYMENT_TEST=1 (else it is skipped). The daemon there has no
bridge network, so deploy/compose.host-network.yml puts the containers on the host's network, the
server listening on loopback. The tests run in order, on one deployment; each wait has a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

if os.environ.get("TEXTCNN_DEPLOYMENT_TEST") != "1":
    pytest.skip("needs a Docker daemon: run by `.ci/deployment`", allow_module_level=True)
httpx = pytest.importorskip("httpx")

from textcnn.inference.bundle import Classifier  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOCKER = os.environ.get("TEXTCNN_DOCKER", "docker")
COMPOSE = os.environ.get("TEXTCNN_COMPOSE", "docker-compose")  # Compose v2's binary
IMAGE = "textcnn:latest"  # the tag docker-compose.yml names
# The README's texts, and what the shipped model says of them.
README_TEXTS = {
    "a gorgeous , witty , seductive movie .": "positive",
    "the plot is thin and the jokes fall flat .": "negative",
}
SERVER_UID = 10001
TEXTCNN = "/opt/venv/bin/textcnn"  # the image's entry point
HEALTHY_WITHIN = 240.0  # seconds: the image's start period is 60 s, checks every 15 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Deployment:
    """The repository's compose files as a project of their own, with its models and data in a
    temporary folder (TEXTCNN_MODELS_DIR, TEXTCNN_DATA_DIR), on a free loopback port."""

    def __init__(self, root: Path):
        self.models = root / "models"
        self.data = root / "data"
        shutil.copytree(REPO / "models" / "default", self.models / "default")
        self.data.mkdir()
        shutil.copy(REPO / "data" / "samples" / "tiny.csv", self.data / "tiny.csv")
        # The train service writes as the image's user; compose documents the same chown.
        os.chown(self.models, SERVER_UID, SERVER_UID)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.project = f"textcnn-test-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "TEXTCNN_MODELS_DIR": str(self.models),
            "TEXTCNN_DATA_DIR": str(self.data),
            "TEXTCNN_PUBLISH_PORT": str(self.port),
        }
        self.env.pop("TEXTCNN_MODEL", None)

    def compose(self, *args: str, timeout: float = 300, check: bool = True, **env: str):
        files = ["-f", str(REPO / "docker-compose.yml"), "-f", str(REPO / "deploy/compose.host-network.yml")]
        result = subprocess.run(
            [COMPOSE, *files, "-p", self.project, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **env},
            cwd=REPO,
        )
        if check:
            assert result.returncode == 0, f"compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def container(self) -> str:
        """The id of the serve container, running or not (compose keeps it across restarts and
        recreates it when its settings change)."""
        ids = self.compose("ps", "-aq", "serve").stdout.split()
        assert len(ids) == 1, ids
        return ids[0]

    def inspect(self, what: str) -> str:
        return docker("inspect", "--format", what, self.container()).strip()

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        """`docker exec` in the serve container, as the image's user."""
        return subprocess.run(
            [DOCKER, "exec", self.container(), *command], capture_output=True, text=True, timeout=60
        )

    def wait_healthy(self, since: float | None = None) -> float:
        """Seconds until the container's own health check says healthy (from `since`, else now)."""
        since = time.monotonic() if since is None else since
        deadline = since + HEALTHY_WITHIN
        status = ""
        while time.monotonic() < deadline:
            status = self.inspect("{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}")
            if status == "running healthy":
                return time.monotonic() - since
            if status.startswith("created") and self.inspect("{{.State.Error}}"):
                break  # it could not start, and never will
            time.sleep(1)
        logs = self.compose("logs", "--no-color", "--tail", "40", "serve", check=False).stdout
        error = self.inspect("{{.State.Error}}")  # a container that never started says why here
        raise AssertionError(f"not healthy after {HEALTHY_WITHIN:.0f} s ({status}; {error}); logs:\n{logs}")


def docker(*args: str, timeout: float = 60) -> str:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    assert IMAGE in docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split(), (
        f"build the image first: deploy/build-image.sh --tag {IMAGE}"
    )
    here = Deployment(tmp_path_factory.mktemp("deployment"))
    try:
        yield here
    finally:
        here.compose("--profile", "train", "down", "--timeout", "10", check=False)


@pytest.fixture(scope="module")
def serving(deployment) -> Deployment:
    """`docker compose up -d serve`, waited for until healthy."""
    started = time.monotonic()
    deployment.compose("up", "-d", "--no-build", "serve")
    deployment.seconds_to_healthy = deployment.wait_healthy(started)
    return deployment


def post(deployment: Deployment, path: str, body: dict) -> dict:
    response = httpx.post(deployment.url + path, json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_gpu_override_is_a_valid_compose_file(deployment):
    result = subprocess.run(
        [COMPOSE, "-f", "docker-compose.yml", "-f", "docker-compose.gpu.yml", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=deployment.env,
    )
    assert result.returncode == 0, result.stderr


def test_serve_comes_up_healthy_as_the_image_user(serving):
    assert serving.inspect("{{.Config.Image}}") == IMAGE
    assert serving.inspect("{{.HostConfig.RestartPolicy.Name}}") == "unless-stopped"
    health = httpx.get(serving.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["model"].startswith("default@")
    # Every process in the container, the server and its workers, runs as the image's user.
    processes = container_processes(serving)
    assert {p["uid"] for p in processes.values()} == {SERVER_UID}, processes
    assert len(server_processes(serving)[1]) == 2


def test_the_readme_texts_get_the_libraries_answers(serving):
    """The container serves the shipped model exactly as the library on the host reads it."""
    texts = list(README_TEXTS)
    answer = post(serving, "/predict", {"texts": texts, "probabilities": True})
    labels = [prediction["label"] for prediction in answer["predictions"]]
    assert labels == list(README_TEXTS.values())
    here = Classifier.load(REPO / "models" / "default", device="cpu").predict(texts)
    for served, local in zip(answer["predictions"], here, strict=True):
        assert served["score"] == pytest.approx(local.score, abs=1e-4)

    explained = post(serving, "/explain", {"texts": texts, "top": 3})["explanations"]
    assert [e["label"] for e in explained] == labels
    for explanation in explained:
        total = sum(explanation["token_parts"]) + explanation["output_bias"] + explanation["filter_bias"]
        assert total + explanation["residual"] == pytest.approx(explanation["logit"], abs=1e-4)
        assert explanation["for"], explanation


def test_the_page_info_and_metrics(serving):
    page = httpx.get(serving.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in page.headers
    info = httpx.get(serving.url + "/info", timeout=10).json()
    assert info["model"]["labels"] == ["negative", "positive"]
    assert info["model"]["id"] == httpx.get(serving.url + "/health", timeout=10).json()["model"]
    metrics = httpx.get(serving.url + "/metrics", timeout=10).text
    ok = 'textcnn_http_requests_total{method="POST",path="/predict",status="200"}'
    assert any(line.startswith(ok) and float(line.split()[-1]) >= 1 for line in metrics.splitlines())


def test_the_model_mount_is_read_only(serving):
    wrote = serving.exec("python", "-c", "open('/app/models/default/x', 'w')")
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr, wrote.stderr
    assert serving.exec("id", "-u").stdout.strip() == str(SERVER_UID)


PROCESSES = """
import json, os
processes = {}
for name in filter(str.isdigit, os.listdir('/proc')):
    try:
        argv = open(f'/proc/{name}/cmdline', 'rb').read().split(b'\\0')
        parent = int(open(f'/proc/{name}/stat').read().rpartition(')')[2].split()[1])
        uid = int(next(l for l in open(f'/proc/{name}/status') if l.startswith('Uid:')).split()[1])
    except (OSError, ValueError):  # not a process, or gone meanwhile
        continue
    processes[name] = {'argv': [a.decode(errors='replace') for a in argv if a], 'parent': parent, 'uid': uid}
print(json.dumps(processes))
"""


def container_processes(deployment: Deployment) -> dict[int, dict]:
    """Every process in the serve container (pid inside it → argv, parent pid, real uid)."""
    result = deployment.exec("python", "-c", PROCESSES)
    assert result.returncode == 0, result.stderr
    return {int(pid): process for pid, process in json.loads(result.stdout).items()}


def server_processes(deployment: Deployment) -> tuple[int, list[int]]:
    """The pid, inside the container, of the `textcnn serve` process, and of its two inference
    workers (/predict's and /explain's: its children that multiprocessing spawned)."""
    processes = container_processes(deployment)
    # The container's init (pid 1) starts the server; its forked HTTP servers share its command line.
    servers = [pid for pid, p in processes.items() if p["parent"] == 1 and p["argv"][1:2] == [TEXTCNN]]
    assert len(servers) == 1, processes
    workers = sorted(
        pid
        for pid, p in processes.items()
        if p["parent"] == servers[0] and "multiprocessing.spawn" in " ".join(p["argv"])
    )
    return servers[0], workers


@pytest.mark.parametrize("victim", ["server", "worker"])
def test_a_killed_server_is_restarted_and_answers_again(serving, victim):
    """SIGKILL to the server (the container's main process under its init) ends the container;
    a dead inference worker makes the server exit 1 (the service's own rule). Either way compose's
    restart policy starts it again, and it answers."""
    restarts = int(serving.inspect("{{.RestartCount}}"))
    server, workers = server_processes(serving)
    assert len(workers) == 2, workers  # /predict's and /explain's
    pid = server if victim == "server" else workers[0]
    killed = serving.exec("sh", "-c", f"kill -KILL {pid}")
    assert killed.returncode == 0, killed.stderr
    deadline = time.monotonic() + HEALTHY_WITHIN
    while int(serving.inspect("{{.RestartCount}}")) == restarts:
        assert time.monotonic() < deadline, f"not restarted after its {victim} was killed"
        time.sleep(0.5)
    serving.wait_healthy()
    answer = post(serving, "/predict", {"text": "a gorgeous , witty , seductive movie ."})
    assert answer["predictions"][0]["label"] == "positive"


def test_the_train_profile_writes_a_bundle_that_serve_then_serves(serving):
    trained = serving.compose(
        "--profile",
        "train",
        "run",
        "--rm",
        "train",
        # the service's command replaced by a seconds-long run on the mounted sample data
        *("train", "--train", "/data/tiny.csv", "--folds", "3", "--fold", "1", "--out", "models/tiny"),
        *("--epochs", "3", "--embedding-dim", "16", "--num-filters", "8", "--quiet"),
        timeout=600,
    )
    bundle = serving.models / "tiny"
    assert (bundle / "config.json").is_file() and (bundle / "weights.safetensors").is_file(), trained.stdout
    assert (bundle / "weights.safetensors").stat().st_uid == SERVER_UID
    assert serving.compose("ps", "-aq", "train").stdout.strip() == ""  # --rm left no container

    started = time.monotonic()
    serving.compose("up", "-d", "--no-build", "serve", TEXTCNN_MODEL="models/tiny")
    serving.wait_healthy(started)
    info = httpx.get(serving.url + "/info", timeout=10).json()["model"]
    assert info["id"].startswith("tiny@")
    texts = ["a warm , funny film .", "the plot is thin ."]
    answer = post(serving, "/predict", {"texts": texts})
    local = Classifier.load(bundle, device="cpu").predict(texts)
    assert [p["label"] for p in answer["predictions"]] == [p.label for p in local]
    for served, here in zip(answer["predictions"], local, strict=True):
        assert served["score"] == pytest.approx(here.score, abs=1e-4)


def test_down_leaves_nothing_running(serving):
    serving.compose("--profile", "train", "down", "--timeout", "30")
    label = f"label=com.docker.compose.project={serving.project}"
    assert docker("ps", "-aq", "--filter", label).strip() == ""
    assert docker("network", "ls", "-q", "--filter", label).strip() == ""
    with pytest.raises(httpx.TransportError):
        httpx.get(serving.url + "/health", timeout=5)
