"""Load test of the prediction service, next to LitServe's and HTTP's own ceilings.

    python benchmarks/serve_load.py                      # models/default, about 4 minutes
    python benchmarks/serve_load.py --sweep              # also try LitServe settings (about 10 more)
    python benchmarks/serve_load.py --paired-only        # only the paired ratio (2 min), into serve.json
    python benchmarks/serve_load.py --versus models/ensemble --out benchmarks/results/serve_ensemble.json
                                                         # --model against another bundle, paired (3 min)

Closed loop: `hey` (Debian package `hey`) keeps C connections busy for a fixed time, each sending
its next request when the last is answered, on loopback only. Three servers, started here one
after another as processes of their own: `textcnn serve` with the shipped model, a constant LitAPI
with the same LitServe settings, and a bare FastAPI + uvicorn endpoint (benchmarks/serve_references.py).
Each gets single-text and 32-text requests at concurrency 1, 16 and 64: requests/s, sentences/s,
p50/p95/p99 latency, errors. Also the in-process `Classifier.predict` rate at batch 1 and 256.

On a 2-core machine shared with the load generator, rates drift by 10-30% from minute to minute,
more than the differences asked about. So the service/constant-LitAPI ratio is also measured
paired: both servers up at once, single-text load alternating between them in short rounds, the
ratio taken within each round and its median reported. Every level also records the CPU time the
server's processes spent per request (from /proc), which drifts far less than requests/s.
Writes benchmarks/results/serve.json and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results" / "serve.json"
LOGS = BENCHMARKS / "results" / "logs"  # each server's output, for when one fails (not committed)
sys.path.insert(0, str(BENCHMARKS))

from accuracy import machine  # noqa: E402
from throughput import inference_throughput  # noqa: E402

# Settings swept with --sweep, each a change from the defaults (flags of `textcnn serve`).
SWEEP = {
    "defaults (2 process HTTP servers, batch_timeout 0)": [],
    "LitServe's own (polling) loop": ["--loop", "litserve"],
    "1 thread HTTP server": ["--api-server-worker-type", "thread", "--num-api-servers", "1"],
    "1 process HTTP server": ["--num-api-servers", "1"],
    "3 process HTTP servers": ["--num-api-servers", "3"],
    "manager queues (no fast_queue)": ["--no-fast-queue"],
    "batch_timeout 0.002": ["--batch-timeout", "0.002"],
    "batch_timeout 0.005": ["--batch-timeout", "0.005"],
    "max_batch_size 8": ["--max-batch-size", "8"],
    "max_batch_size 64": ["--max-batch-size", "64"],
    "2 inference workers": ["--workers", "2"],
    "2 torch threads per worker": ["--threads", "2"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process on a free loopback port, waited for until /health answers 200."""

    def __init__(self, name: str, command: list[str], startup_seconds: float = 120.0):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = open(LOGS / f"{name}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{name} did not become healthy in {startup_seconds:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def hey(url: str, body: str, concurrency: int, seconds: float) -> list[tuple[float, int]]:
    """(latency in seconds, status) of every request answered in `seconds` of closed-loop load."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json"]
    out = subprocess.run(
        [*command, "-d", body, "-o", "csv", url], capture_output=True, text=True, timeout=seconds + 60
    )
    if out.returncode != 0:
        raise RuntimeError(f"hey failed: {out.stderr.strip()[:300]}")
    rows = csv.DictReader(io.StringIO(out.stdout))
    return [(float(r["response-time"]), int(r["status-code"])) for r in rows]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def process_tree(root: int) -> set[int] | None:
    """A process and all its descendants, from /proc (Linux; else None)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    parents = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except OSError:  # exited meanwhile
                continue
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    return tree


def cpu_seconds_of_tree(root: int) -> float | None:
    """User + system CPU time of a process and all its descendants (Linux /proc; else None)."""
    tree = process_tree(root)
    if tree is None:
        return None
    ticks = 0
    for pid in tree:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(
    url: str,
    body: str,
    texts_per_request: int,
    concurrency: int,
    seconds: float,
    server_pid: int | None = None,
) -> dict:
    """One load level. With `server_pid`, also the CPU the server's processes spent per request:
    on a machine shared with the load generator, requests/s drift with everything else running,
    but CPU time per request measures what the server itself costs."""
    hey(url, body, concurrency, min(1.0, seconds))  # warm-up: connections, caches, batch sizes
    cpu_before = cpu_seconds_of_tree(server_pid) if server_pid else None
    results = hey(url, body, concurrency, seconds)
    cpu_after = cpu_seconds_of_tree(server_pid) if server_pid else None
    latencies = sorted(latency for latency, _ in results)
    errors = sum(status != 200 for _, status in results)
    requests_per_second = len(results) / seconds
    return {
        "concurrency": concurrency,
        "texts_per_request": texts_per_request,
        "requests": len(results),
        "errors": errors,
        "requests_per_second": round(requests_per_second, 1),
        "sentences_per_second": round((len(results) - errors) * texts_per_request / seconds, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 2),
        "p95_ms": round(1000 * percentile(latencies, 95), 2),
        "p99_ms": round(1000 * percentile(latencies, 99), 2),
        "server_cpu_ms_per_request": (
            round(1000 * (cpu_after - cpu_before) / len(results), 3)
            if cpu_before is not None and cpu_after is not None and results
            else None
        ),
    }


def sample_texts(count: int) -> list[str]:
    """MR sentences when the benchmark data is here (realistic lengths), else the repo's samples."""
    try:
        from textcnn.data.corpus import load_registered

        corpus = load_registered("mr", os.environ.get("TEXTCNN_DATA_DIR") or str(REPO.parent / "shared/data"))
        texts = list(corpus.splits["all"].texts)
    except Exception:  # no data here: the hand-made samples
        lines = (REPO / "data" / "samples" / "tiny.jsonl").read_text().splitlines()
        texts = [json.loads(line)["text"] for line in lines]
    return [texts[(i * 37) % len(texts)] for i in range(count)]


def run_server(name: str, command: list[str], args, bodies: dict[int, str]) -> list[dict]:
    rows = []
    with Server(name, command) as server:
        for texts_per_request, body in bodies.items():
            for concurrency in args.concurrency:
                row = measure(
                    server.url + "/predict",
                    body,
                    texts_per_request,
                    concurrency,
                    args.seconds,
                    server.process.pid,
                )
                rows.append({"server": name, **row})
                print(_row_line(row, name), file=sys.stderr, flush=True)
    return rows


def _row_line(row: dict, name: str) -> str:
    return (
        f"{name:<16} texts {row['texts_per_request']:>2}  c {row['concurrency']:>2}: "
        f"{row['requests_per_second']:>7.0f} req/s {row['sentences_per_second']:>8.0f} sent/s  "
        f"p50 {row['p50_ms']:6.1f}  p99 {row['p99_ms']:6.1f} ms  errors {row['errors']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/default", help="bundle the service serves")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per load level")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument("--sweep", action="store_true", help="also measure other LitServe settings")
    parser.add_argument("--sweep-seconds", type=float, default=5.0, help="measured seconds per sweep level")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the paired ratio measurement")
    parser.add_argument("--round-seconds", type=float, default=4.0, help="measured seconds per paired level")
    parser.add_argument("--paired-only", action="store_true", help="only the paired ratio measurement")
    parser.add_argument(
        "--versus",
        metavar="BUNDLE",
        help="only: --model and BUNDLE served side by side, single-text and 32-text load alternating "
        "between them in --rounds rounds (e.g. an ensemble against the single model)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("serve_flags", nargs="*", help="extra `textcnn serve` flags (after --)")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("hey") is None:
        print("serve_load.py: error: needs `hey` (apt-get install hey)", file=sys.stderr)
        return 1
    (BENCHMARKS / "results").mkdir(exist_ok=True)

    from service.settings import ServeSettings
    from textcnn.inference.bundle import Classifier

    single, many = sample_texts(1), sample_texts(32)
    bodies = {1: json.dumps({"text": single[0]}), 32: json.dumps({"texts": many})}
    serve = [
        sys.executable,
        "-m",
        "service",
        "--model",
        args.model,
        "--log-level",
        "warning",
        *args.serve_flags,
    ]
    settings = ServeSettings.from_env(model=args.model)
    results: dict = {
        "machine": machine(),
        "model": args.model,
        "settings": settings.to_json(),
        "extra_serve_flags": args.serve_flags,
        "seconds_per_level": args.seconds,
        "load_generator": "hey (closed loop, keep-alive, same machine)",
    }
    reference = [sys.executable, str(BENCHMARKS / "serve_references.py")]
    constant = [*reference, "constant-litapi", *args.serve_flags]
    if args.versus:
        other = [*serve[:4], args.versus, *serve[5:]]
        results |= {"versus": args.versus, "versus_paired": versus(serve, other, args, bodies)}
        args.out.write_text(json.dumps(results, indent=2))
        print(versus_table(results), file=sys.stderr)
        return 0
    if args.paired_only:  # added to the results already in --out, if any
        if args.out.exists():
            results = {**json.loads(args.out.read_text()), "machine": results["machine"]}
        results["paired"] = paired(serve, constant, args, bodies[1])
        args.out.write_text(json.dumps(results, indent=2))
        print(json.dumps(results["paired"]["summary"], indent=2))
        return 0

    import torch

    torch.set_num_threads(2)
    classifier = Classifier.load(args.model, device="cpu")
    texts = sample_texts(1024)
    results["in_process"] = [inference_throughput(classifier, texts, b, args.seconds) for b in (1, 256)]
    del classifier
    for row in results["in_process"]:
        print(
            f"in-process batch {row['batch_size']}: {row['texts_per_second']:,.0f} texts/s", file=sys.stderr
        )

    runs = run_server("textcnn", serve, args, bodies)
    runs += run_server("constant-litapi", constant, args, bodies)
    runs += run_server("fastapi", [*reference, "fastapi"], args, bodies)
    results["runs"] = runs
    results["ratios"] = ratios(runs)
    results["paired"] = paired(serve, constant, args, bodies[1])
    if args.sweep:
        results["sweep"] = sweep(serve, reference, args, bodies[1])
    args.out.write_text(json.dumps(results, indent=2))
    print(table(results))
    return 0


def ratios(runs: list[dict]) -> list[dict]:
    """The service's requests/s as a fraction of each ceiling's, per load level."""
    by_key = {(r["server"], r["texts_per_request"], r["concurrency"]): r for r in runs}
    out = []
    for (server, texts, concurrency), row in by_key.items():
        if server != "textcnn":
            continue
        litapi = by_key.get(("constant-litapi", texts, concurrency))
        fastapi = by_key.get(("fastapi", texts, concurrency))
        out.append(
            {
                "texts_per_request": texts,
                "concurrency": concurrency,
                "vs_constant_litapi": round(row["requests_per_second"] / litapi["requests_per_second"], 3),
                "vs_fastapi": round(row["requests_per_second"] / fastapi["requests_per_second"], 3),
            }
        )
    return out


def paired(serve: list[str], constant: list[str], args, body: str) -> dict:
    """Service / constant-LitAPI requests/s, single text, measured in alternating short rounds."""
    levels = [c for c in args.concurrency if c > 1]
    rows = []
    with Server("paired-textcnn", serve) as service, Server("paired-constant-litapi", constant) as ceiling:
        for round_index in range(args.rounds):
            for concurrency in levels:
                pair = {}
                for name, server in (("textcnn", service), ("constant-litapi", ceiling)):
                    pair[name] = measure(
                        server.url + "/predict", body, 1, concurrency, args.round_seconds, server.process.pid
                    )
                ratio = (
                    pair["textcnn"]["requests_per_second"] / pair["constant-litapi"]["requests_per_second"]
                )
                rows.append(
                    {"round": round_index, "concurrency": concurrency, "ratio": round(ratio, 3), **pair}
                )
                print(
                    f"round {round_index} c {concurrency:>2}: textcnn {pair['textcnn']['requests_per_second']:.0f}"
                    f" / constant {pair['constant-litapi']['requests_per_second']:.0f} req/s = {ratio:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    summary = []
    for concurrency in levels:
        ratios_here = sorted(r["ratio"] for r in rows if r["concurrency"] == concurrency)
        mine = [r["textcnn"] for r in rows if r["concurrency"] == concurrency]
        summary.append(
            {
                "concurrency": concurrency,
                "median_ratio": statistics.median(ratios_here),
                "min_ratio": ratios_here[0],
                "max_ratio": ratios_here[-1],
                "textcnn_median_requests_per_second": statistics.median(
                    m["requests_per_second"] for m in mine
                ),
                "textcnn_worst_p99_ms": max(m["p99_ms"] for m in mine),
                "textcnn_median_cpu_ms_per_request": _median_cpu(mine),
                "constant_median_cpu_ms_per_request": _median_cpu(
                    [r["constant-litapi"] for r in rows if r["concurrency"] == concurrency]
                ),
                "errors": sum(
                    r[name]["errors"]
                    for r in rows
                    for name in ("textcnn", "constant-litapi")
                    if r["concurrency"] == concurrency
                ),
            }
        )
    return {"rounds": args.rounds, "seconds_per_level": args.round_seconds, "rows": rows, "summary": summary}


def versus(serve: list[str], other: list[str], args, bodies: dict[int, str]) -> dict:
    """--model (`base`) and --versus (`other`) up at once; each round measures both at every level
    (single text at each concurrency > 1, 32 texts at 16), alternating, and takes their ratio."""
    levels = [(1, c) for c in args.concurrency if c > 1] + [(32, 16)]
    with Server("versus-base", serve) as base, Server("versus-other", other) as challenger:
        return compare_servers(base, challenger, levels, args.rounds, args.round_seconds, bodies)


def compare_servers(
    base, other, levels: list[tuple[int, int]], rounds: int, round_seconds: float, bodies: dict[int, str]
) -> dict:
    """Two servers already up (anything with `.url` and `.process.pid`), measured in alternating
    rounds at every (texts per request, concurrency) level; per level, the median ratio other/base."""
    rows = []
    for round_index in range(rounds):
        for texts, concurrency in levels:
            pair = {}
            order = (("base", base), ("other", other))
            for name, server in order if round_index % 2 == 0 else order[::-1]:
                url = server.url + "/predict"
                pair[name] = measure(
                    url, bodies[texts], texts, concurrency, round_seconds, server.process.pid
                )
            ratio = pair["other"]["requests_per_second"] / pair["base"]["requests_per_second"]
            rows.append(
                {
                    "round": round_index,
                    "texts_per_request": texts,
                    "concurrency": concurrency,
                    "ratio": round(ratio, 3),
                    **pair,
                }
            )
            print(
                f"round {round_index} texts {texts:>2} c {concurrency:>2}: "
                f"base {pair['base']['requests_per_second']:.0f} / other "
                f"{pair['other']['requests_per_second']:.0f} req/s, ratio {ratio:.2f}",
                file=sys.stderr,
                flush=True,
            )
    summary = []
    for texts, concurrency in levels:
        here = [r for r in rows if (r["texts_per_request"], r["concurrency"]) == (texts, concurrency)]
        entry = {
            "texts_per_request": texts,
            "concurrency": concurrency,
            "median_ratio": statistics.median(r["ratio"] for r in here),
        }
        for name in ("base", "other"):
            mine = [r[name] for r in here]
            entry[name] = {
                "median_requests_per_second": statistics.median(m["requests_per_second"] for m in mine),
                "median_sentences_per_second": statistics.median(m["sentences_per_second"] for m in mine),
                "worst_p99_ms": max(m["p99_ms"] for m in mine),
                "median_cpu_ms_per_request": _median_cpu(mine),
                "errors": sum(m["errors"] for m in mine),
            }
        summary.append(entry)
    return {"rounds": rounds, "seconds_per_level": round_seconds, "rows": rows, "summary": summary}


def versus_table(results: dict) -> str:
    header = f"base: {results['model']}; other: {results['versus']}"
    return header + "\n" + compare_table(results["versus_paired"]["summary"])


def compare_table(summary: list[dict], base: str = "base", other: str = "other") -> str:
    """compare_servers' summary as a Markdown table, the two servers under the names given."""
    lines = [
        f"| texts/request | concurrency | {base} req/s | {other} req/s | {other} / {base} (median of rounds) "
        f"| {base} sentences/s | {other} sentences/s | {base} p99 ms | {other} p99 ms | {base} CPU ms/req "
        f"| {other} CPU ms/req | errors |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for e in summary:
        b, o = e["base"], e["other"]
        lines.append(
            f"| {e['texts_per_request']} | {e['concurrency']} | {b['median_requests_per_second']:,.0f} | "
            f"{o['median_requests_per_second']:,.0f} | {e['median_ratio']:.2f} | "
            f"{b['median_sentences_per_second']:,.0f} | {o['median_sentences_per_second']:,.0f} | "
            f"{b['worst_p99_ms']:.1f} | {o['worst_p99_ms']:.1f} | {_cpu(b, 'median_cpu_ms_per_request')} | "
            f"{_cpu(o, 'median_cpu_ms_per_request')} | {b['errors'] + o['errors']} |"
        )
    return "\n".join(lines)


def _median_cpu(rows: list[dict]) -> float | None:
    values = [r["server_cpu_ms_per_request"] for r in rows if r.get("server_cpu_ms_per_request") is not None]
    return statistics.median(values) if values else None


def sweep(serve: list[str], reference: list[str], args, body: str) -> list[dict]:
    """Single-text load at each concurrency for each settings variant, service and constant LitAPI."""
    rows = []
    for label, flags in SWEEP.items():
        for name, command in (("textcnn", serve), ("constant-litapi", [*reference, "constant-litapi"])):
            with Server(f"sweep-{name}", [*command, *flags]) as server:
                for concurrency in args.concurrency:
                    row = measure(
                        server.url + "/predict", body, 1, concurrency, args.sweep_seconds, server.process.pid
                    )
                    rows.append({"variant": label, "flags": flags, "server": name, **row})
                    print(f"[{label}] " + _row_line(row, name), file=sys.stderr, flush=True)
    return rows


def table(results: dict) -> str:
    lines = [
        "| server | texts/request | concurrency | requests/s | sentences/s | p50 ms | p95 ms | p99 ms | errors "
        "| server CPU ms/request |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['server']} | {r['texts_per_request']} | {r['concurrency']} | {r['requests_per_second']:,.0f} | "
            f"{r['sentences_per_second']:,.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['errors']} | {_cpu(r)} |"
        )
    lines += ["", "| texts/request | concurrency | service / constant LitAPI | service / FastAPI |"]
    lines += ["|--:|--:|--:|--:|"]
    for r in results["ratios"]:
        lines.append(
            f"| {r['texts_per_request']} | {r['concurrency']} | {r['vs_constant_litapi']:.2f} | {r['vs_fastapi']:.2f} |"
        )
    if "paired" in results:
        lines += [
            "",
            "| paired, single text: concurrency | service / constant LitAPI, requests/s: median | range "
            "| server CPU ms/request, service | constant LitAPI |",
            "|--:|--:|--:|--:|--:|",
        ]
        for r in results["paired"]["summary"]:
            spread = f"{r['min_ratio']:.2f}-{r['max_ratio']:.2f}"
            lines.append(
                f"| {r['concurrency']} | {r['median_ratio']:.2f} | {spread} | "
                f"{_cpu(r, 'textcnn_median_cpu_ms_per_request')} | {_cpu(r, 'constant_median_cpu_ms_per_request')} |"
            )
    lines += ["", "| in-process Classifier.predict | texts/s | ms a call |", "|--:|--:|--:|"]
    for r in results["in_process"]:
        lines.append(f"| batch {r['batch_size']} | {r['texts_per_second']:,.0f} | {r['median_call_ms']} |")
    if "sweep" in results:
        lines += ["", "| settings | server | concurrency | requests/s | p99 ms | server CPU ms/request |"]
        lines += ["|---|---|--:|--:|--:|--:|"]
        for r in results["sweep"]:
            lines.append(
                f"| {r['variant']} | {r['server']} | {r['concurrency']} | {r['requests_per_second']:,.0f} | "
                f"{r['p99_ms']:.1f} | {_cpu(r)} |"
            )
    return "\n".join(lines)


def _cpu(row: dict, key: str = "server_cpu_ms_per_request") -> str:
    return "—" if row.get(key) is None else f"{row[key]:.2f}"


if __name__ == "__main__":
    sys.exit(main())
