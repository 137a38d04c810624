"""The docker-compose deployment's figures: image size, start time to healthy, the container's memory,
and single-text requests/s through the container's port against the same server run outside it.

    TEXTCNN_DEPLOYMENT_BENCHMARK=1 bash .ci/deployment     # a private daemon, the image, the test, this
    python benchmarks/deployment.py                        # against a running daemon (DOCKER_HOST) and
                                                           # an image textcnn:latest already built

The container is `docker compose up -d serve` from the repository's docker-compose.yml with
deploy/compose.host-network.yml (the daemon here has no bridge network: the container shares the
host's network, the server on loopback), serving the shipped models/default with compose's settings.
The same server outside is `python -m service` with the same settings. Both up at once, single-text
(and 32-text) load from `hey` alternates between them in short rounds (serve_load.compare_servers);
the ratio container/outside is taken within each round, its median reported, with the CPU the
server's processes spent per request. Writes benchmarks/results/deployment.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))

from accuracy import machine  # noqa: E402
from serve_load import (  # noqa: E402
    Server,
    compare_servers,
    compare_table,
    cpu_seconds_of_tree,
    free_port,
    process_tree,
    sample_texts,
)

DOCKER = os.environ.get("TEXTCNN_DOCKER", "docker")
COMPOSE = os.environ.get("TEXTCNN_COMPOSE", "docker-compose")
IMAGE = "textcnn:latest"
LEVELS = [(1, 1), (1, 16), (1, 64), (32, 16)]  # (texts per request, concurrency)


def run(*command: str, env: dict | None = None, timeout: float = 300) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])}…: {result.stderr.strip()[-400:]}")
    return result.stdout


class Container:
    """`docker compose up -d serve` on a free loopback port; what it took to come up."""

    def __init__(self, models: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.project = f"textcnn-bench-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "TEXTCNN_MODELS_DIR": str(models), "TEXTCNN_PUBLISH_PORT": str(self.port)}
        self.env.pop("TEXTCNN_MODEL", None)
        files = ["-f", str(REPO / "docker-compose.yml"), "-f", str(REPO / "deploy/compose.host-network.yml")]
        self.compose = [COMPOSE, *files, "-p", self.project]
        started = time.monotonic()
        run(*self.compose, "up", "-d", "--no-build", "serve", env=self.env)
        self.up_seconds = time.monotonic() - started  # create (a copy of the image on vfs) and start
        self.id = run(*self.compose, "ps", "-q", "serve", env=self.env).strip()
        self.answers_seconds = self._wait(lambda: self._health() == 200, started)
        self.healthy_seconds = self._wait(
            lambda: self._inspect("{{.State.Health.Status}}") == "healthy", started
        )
        # The container's init, as the host sees it: the root of the server's process tree.
        self.process = SimpleNamespace(pid=int(self._inspect("{{.State.Pid}}")))

    def _inspect(self, what: str) -> str:
        return run(DOCKER, "inspect", "--format", what, self.id).strip()

    def _health(self) -> int | None:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as answer:
                return answer.status
        except OSError:
            return None

    @staticmethod
    def _wait(ready, started: float, timeout: float = 300) -> float:
        while not ready():
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the container was not ready in {timeout:.0f} s")
            time.sleep(0.25)
        return time.monotonic() - started

    def memory(self) -> dict:
        stats = json.loads(run(DOCKER, "stats", "--no-stream", "--format", "{{json .}}", self.id))
        return {"docker_stats_mem_usage": stats["MemUsage"], "docker_stats_mem_percent": stats["MemPerc"]}

    def stop(self) -> None:
        run(*self.compose, "down", "--timeout", "30", env=self.env)


def tree_rss_mib(root: int) -> float:
    """Resident memory of a process and its descendants (MiB; shared pages counted in each)."""
    kib = 0
    for pid in process_tree(root) or ():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:  # exited meanwhile
            continue
        kib += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(kib / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per load level")
    parser.add_argument(
        "--round-seconds", type=float, default=4.0, help="measured seconds per level and round"
    )
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "results" / "deployment.json")
    args = parser.parse_args()
    for tool in ("hey", DOCKER, COMPOSE):
        if shutil.which(tool) is None:
            print(f"deployment.py: error: needs {tool} on PATH", file=sys.stderr)
            return 1
    size = int(run(DOCKER, "image", "inspect", "--format", "{{.Size}}", IMAGE))
    bodies = {1: json.dumps({"text": sample_texts(1)[0]}), 32: json.dumps({"texts": sample_texts(32)})}
    results: dict = {
        "machine": machine(),
        "docker_server": run(DOCKER, "version", "--format", "{{.Server.Version}}").strip(),
        "storage_driver": run(DOCKER, "info", "--format", "{{.Driver}}").strip(),
        "image": IMAGE,
        "image_bytes": size,
        "load_generator": "hey (closed loop, keep-alive, same machine), loopback",
    }
    models = REPO / "models"
    container = Container(models)
    try:
        results["start"] = {
            "compose_up_seconds": round(container.up_seconds, 1),
            "answers_health_seconds": round(container.answers_seconds, 1),
            "healthy_seconds": round(container.healthy_seconds, 1),
        }
        results["memory_idle"] = container.memory() | {"tree_rss_mib": tree_rss_mib(container.process.pid)}
        outside_command = [
            sys.executable,
            "-m",
            "service",
            "--model",
            "models/default",
            "--log-level",
            "warning",
        ]
        with Server("outside-container", outside_command) as outside:
            results["outside_memory_idle"] = {"tree_rss_mib": tree_rss_mib(outside.process.pid)}
            results["paired"] = compare_servers(
                outside, container, LEVELS, args.rounds, args.round_seconds, bodies
            )
        results["memory_after_load"] = container.memory() | {
            "tree_rss_mib": tree_rss_mib(container.process.pid)
        }
        cpu = cpu_seconds_of_tree(container.process.pid)
        results["container_cpu_seconds_total"] = round(cpu, 1) if cpu is not None else None
    finally:
        container.stop()
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(table(results))
    return 0


def table(results: dict) -> str:
    start = results["start"]
    lines = [
        f"image {results['image']}: {results['image_bytes'] / 1e6:,.0f} MB "
        f"(docker {results['docker_server']}, {results['storage_driver']})",
        f"compose up: {start['compose_up_seconds']} s; /health answers at {start['answers_health_seconds']} s; "
        f"health check healthy at {start['healthy_seconds']} s",
        f"memory idle: {results['memory_idle']['docker_stats_mem_usage']} (docker stats), "
        f"{results['memory_idle']['tree_rss_mib']} MiB RSS; outside: "
        f"{results['outside_memory_idle']['tree_rss_mib']} MiB RSS; after load: "
        f"{results['memory_after_load']['docker_stats_mem_usage']}",
        "",
        compare_table(results["paired"]["summary"], base="outside", other="container"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
