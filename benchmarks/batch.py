"""Files of any size: batch prediction and training memory, measured.

    python benchmarks/batch.py --data-dir ../shared/data            # every cell not yet measured
    python benchmarks/batch.py --data-dir ../shared/data --only predict-speed --redo

Cells (each kept in benchmarks/results/batch.json as soon as it is measured, so a run resumes):
- `predict-speed`: rows/s of `textcnn predict BUNDLE --input F.csv --output O.csv` (a subprocess,
  start-up included) against the bundle's bare forward pass in this process on the same texts
  (encoded beforehand, untimed; `Classifier.logits_of_ids`, batches of 256 by similar length), and
  against the service (`textcnn serve`, 64 texts a request, 4 connections, `hey`), for the single
  model and the shipped bundle. Measured one after another in one run: compare ratios, not figures
  across runs.
- `predict-rss`: peak RSS of `predict --input` on 100k, 1M and 5M rows (the single model): flat
  means the stream holds no more rows as the file grows.
- `train-rss`: peak RSS of `textcnn train --train F.csv` on 100k, 1M and 5M rows (a step budget,
  `--max-steps`, and one epoch: the data is read, folded, tokenized, counted and encoded in full
  either way), and bytes per training row: the slope between sizes, which leaves out what does not
  grow with the rows (the interpreter, torch, the model).
- `ray`: `predict --ray` on a local 2-worker cluster against the same scoring in one process.

The texts: every registered benchmark's texts (English sentences, tweets in six languages, Chinese
reviews), repeated and shuffled with a fixed seed, with an id column, a column with quotes and
commas, and a blank text every 1,000 rows. Training files: SST-2 and MR sentences with their labels.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "batch.json"
WORK = REPO / "benchmarks" / "results" / "batch_work"  # generated files (gitignored)

sys.path.insert(0, str(Path(__file__).parent))

PREDICT_POOL = (
    "sst2",
    "mr",
    "subj",
    "trec",
    "sst1",
    *(f"umsab-{x}" for x in ("en", "fr", "de", "it", "pt", "es")),
)
PREDICT_POOL += ("chnsenticorp",)
TRAIN_POOL = ("sst2", "mr")  # both label their sentences negative/positive


def pool(data_dir: Path, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(text, label) of every row of the named datasets' files."""
    rows = []
    for name in names:
        for path in sorted((data_dir / name).glob("*.jsonl")):
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    row = json.loads(line)
                    rows.append((row["text"], str(row["label"])))
    return rows


def _write_csv(path: Path, header: list[str], rows) -> Path:
    """`rows` (an iterator: drawn as written, never held) into `path`, once (kept for later runs)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    with part.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(header)
        out.writerows(rows)
    part.rename(path)
    return path


def write_predict_file(path: Path, rows: int, texts: list[tuple[str, str]], seed: int = 0) -> Path:
    """`rows` rows drawn from `texts` (a fixed seed): an id, the text (empty every 1,000th), a note."""
    rng = random.Random(seed)
    drawn = (
        [f"r{i:08d}", "" if i % 1000 == 999 else rng.choice(texts)[0], f'row {i}, "quoted", {i % 7}']
        for i in range(rows)
    )
    return _write_csv(path, ["id", "text", "note"], drawn)


def write_train_file(path: Path, rows: int, texts: list[tuple[str, str]], seed: int = 0) -> Path:
    rng = random.Random(seed)
    return _write_csv(path, ["text", "label"], (rng.choice(texts) for _ in range(rows)))


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def run_measured(
    command: list[str], log: Path, interval: float = 0.2, timeout: float = 3600, code: Path | None = None
) -> dict:
    """Run `command`; its wall time, its exit code, the peak RSS of its own process and of its whole
    process tree (the sum over processes: pages shared by forked workers count once per process).
    Past `timeout` it is killed (and marked `stopped`); `code`: run the textcnn
    package found there instead (an older commit's tree)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONUNBUFFERED": "1"} | ({"PYTHONPATH": str(code)} if code else {})
    stopped = False
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak_main = peak_tree = 0
        try:
            while process.poll() is None:
                if time.perf_counter() - started > timeout:
                    stopped = True  # the peak is measured: nothing more to learn from this run
                    process.kill()
                    process.wait()
                    break
                peak_main = max(peak_main, _rss_kb(process.pid))
                peak_tree = max(peak_tree, sum(_rss_kb(pid) for pid in _descendants(process.pid)))
                time.sleep(interval)
        except KeyboardInterrupt:
            process.kill()
            raise
    seconds = time.perf_counter() - started
    if process.returncode != 0 and not stopped:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}; see {log}")
    return {
        **({"stopped_after_s": timeout} if stopped else {}),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_main / 1024, 1),
        "peak_tree_rss_mb": round(peak_tree / 1024, 1),
    }


def textcnn() -> list[str]:
    return [sys.executable, "-m", "textcnn"]


def bare_forward(bundle: Path, path: Path, rows: int, batch_size: int = 256) -> dict:
    """Sentences/s of the bundle's forward pass alone, on the file's texts encoded beforehand."""
    import torch

    from textcnn.inference.classifier import Classifier

    classifier = Classifier.load(bundle, device="cpu")
    texts = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["text"].strip():
                texts.append(row["text"])
            if len(texts) >= rows:
                break
    encoded = classifier.encoder.encode_many(texts)
    classifier.logits_of_ids(encoded[:2000], batch_size)  # warm-up
    started = time.perf_counter()
    classifier.logits_of_ids(encoded, batch_size)
    seconds = time.perf_counter() - started
    return {
        "rows": len(texts),
        "seconds": round(seconds, 2),
        "rows_per_second": round(len(texts) / seconds, 1),
        "threads": torch.get_num_threads(),
    }


def service_rate(bundle: Path, path: Path, seconds: float = 20.0, per_request: int = 64) -> dict:
    """Texts/s through `textcnn serve` (its defaults), `per_request` texts a request from the file,
    4 connections, `hey` closed-loop for `seconds`."""
    from serve_load import Server, hey

    texts = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["text"].strip():
                texts.append(row["text"])
            if len(texts) >= per_request:
                break
    body = json.dumps({"texts": texts})
    with Server(f"batch-{bundle.name}", [*textcnn(), "serve", "--model", str(bundle)]) as server:
        hey(server.url + "/predict", body, 4, 3.0)  # warm-up
        answers = hey(server.url + "/predict", body, 4, seconds)
    ok = sum(1 for _, status in answers if status == 200)
    return {
        "texts_per_request": per_request,
        "connections": 4,
        "requests": len(answers),
        "ok": ok,
        "rows_per_second": round(ok * per_request / seconds, 1),
    }


def predict_command(bundle: Path, source: Path, target: Path, extra: list[str] = ()) -> list[str]:
    return [
        *textcnn(),
        "predict",
        str(bundle),
        "--input",
        str(source),
        "--output",
        str(target),
        "--quiet",
        *extra,
    ]


def cell_predict_speed(args, results: dict) -> None:
    texts = pool(args.data_dir, PREDICT_POOL)
    for name, bundle, rows in (
        ("single", REPO / "models/single", 200_000),
        ("default", REPO / "models/default", 50_000),
    ):
        key = f"predict-speed/{name}"
        if key in results and not args.redo:
            continue
        source = write_predict_file(WORK / f"predict-{rows}.csv", rows, texts)
        target = WORK / f"out-{name}-{rows}.csv"
        target.unlink(missing_ok=True)
        cli = run_measured(predict_command(bundle, source, target), WORK / f"{key.replace('/', '-')}.log")
        cli["rows_per_second"] = round(rows / cli["seconds"], 1)
        bare = bare_forward(bundle, source, rows)
        service = service_rate(bundle, source)
        results[key] = {
            "bundle": str(bundle.relative_to(REPO)),
            "rows": rows,
            "predict_input": cli,
            "bare_forward": bare,
            "service": service,
            "predict_over_bare": round(cli["rows_per_second"] / bare["rows_per_second"], 3),
            "predict_over_service": round(cli["rows_per_second"] / service["rows_per_second"], 3),
        }
        save(results)
        print(key, json.dumps(results[key]), flush=True)


def cell_predict_rss(args, results: dict) -> None:
    texts = pool(args.data_dir, PREDICT_POOL)
    for rows in args.predict_sizes:
        key = f"predict-rss/single/{rows}"
        if key in results and not args.redo:
            continue
        source = write_predict_file(WORK / f"predict-{rows}.csv", rows, texts)
        target = WORK / f"out-rss-{rows}.csv"
        target.unlink(missing_ok=True)
        measured = run_measured(
            predict_command(REPO / "models/single", source, target), WORK / f"predict-rss-{rows}.log"
        )
        measured["rows"] = rows
        measured["rows_per_second"] = round(rows / measured["seconds"], 1)
        measured["output_rows"] = _count_rows(target)
        target.unlink(missing_ok=True)
        results[key] = measured
        save(results)
        print(key, json.dumps(measured), flush=True)
    if not args.keep_files:
        for rows in args.predict_sizes:
            (WORK / f"predict-{rows}.csv").unlink(missing_ok=True)


def _count_rows(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def cell_train_rss(args, results: dict) -> None:
    texts = pool(args.data_dir, TRAIN_POOL)
    for rows in args.train_sizes:
        key = f"train-rss/{rows}"
        if key in results and not args.redo:
            continue
        source = write_train_file(WORK / f"train-{rows}.csv", rows, texts)
        out = WORK / f"train-out-{rows}"
        command = [
            *textcnn(),
            "train",
            "--train",
            str(source),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--max-steps",
            str(args.max_steps),
            "--quiet",
            "--device",
            "cpu",
        ]
        measured = run_measured(command, WORK / f"train-rss-{rows}.log")
        measured["rows"] = rows
        results[key] = measured
        save(results)
        print(key, json.dumps(measured), flush=True)
    sizes = sorted(int(k.rsplit("/", 1)[1]) for k in results if k.startswith("train-rss/"))
    for small, large in itertools.pairwise(sizes):
        a, b = results[f"train-rss/{small}"], results[f"train-rss/{large}"]
        results[f"train-bytes-per-row/{small}-{large}"] = round(
            (b["peak_rss_mb"] - a["peak_rss_mb"]) * 2**20 / (large - small), 1
        )
    save(results)


def cell_train_rss_before(args, results: dict) -> None:
    """Today's training (`--before REV`, default the commit before this issue) on the same files: it
    has no step budget, so it is killed once its data is encoded and stacked and steps run (its log
    shows the epoch had begun: the peak of that code comes before its first step)."""
    import tarfile

    code = WORK / f"code-{args.before}"
    if not code.exists():
        archive = subprocess.run(
            ["git", "archive", args.before, "textcnn"], cwd=REPO, capture_output=True, check=True
        )
        code.mkdir(parents=True)
        with tarfile.open(fileobj=__import__("io").BytesIO(archive.stdout)) as tar:
            tar.extractall(code, filter="data")
    texts = pool(args.data_dir, TRAIN_POOL)
    for rows in args.before_sizes:
        key = f"train-rss-before/{rows}"
        if key in results and not args.redo:
            continue
        source = write_train_file(WORK / f"train-{rows}.csv", rows, texts)
        command = [*textcnn(), "train", "--train", str(source), "--out", str(WORK / f"before-out-{rows}")]
        command += ["--epochs", "1", "--device", "cpu"]
        timeout = args.before_seconds * max(1, rows // 100_000)
        measured = run_measured(command, WORK / f"train-rss-before-{rows}.log", timeout=timeout, code=code)
        results[key] = measured | {"rows": rows, "code": args.before}
        save(results)
        print(key, json.dumps(results[key]), flush=True)


def cell_ray(args, results: dict) -> None:
    key = "ray/single"
    if key in results and not args.redo:
        return
    texts = pool(args.data_dir, PREDICT_POOL)
    rows = 100_000
    folder = WORK / "ray-inputs"
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(4):  # four input files: Ray reads them as blocks in parallel
        write_predict_file(folder / f"part-{part}.csv", rows // 4, texts, seed=part)
    one = WORK / "ray-one.csv"
    one.unlink(missing_ok=True)
    out = WORK / "ray-out"
    shutil.rmtree(out, ignore_errors=True)
    single = run_measured(
        predict_command(REPO / "models/single", folder / "*.csv", one), WORK / "ray-one.log"
    )
    ray = run_measured(
        [
            *textcnn(),
            "predict",
            str(REPO / "models/single"),
            "--ray",
            "--input",
            str(folder / "*.csv"),
            "--output",
            str(out),
            "--quiet",
        ],
        WORK / "ray.log",
    )
    results[key] = {
        "rows": rows,
        "one_process": single | {"rows_per_second": round(rows / single["seconds"], 1)},
        "ray_2_workers": ray | {"rows_per_second": round(rows / ray["seconds"], 1)},
    }
    save(results)
    print(key, json.dumps(results[key]), flush=True)


def cell_million(args, results: dict) -> None:
    """The issue's check: a 1M-row CSV (an id, a column of quotes and commas, a blank text every
    1,000 rows, tweets in six languages and Chinese reviews among the English) scored to CSV, JSON
    Lines and Parquet, row for row with its columns kept; the JSON Lines run is stopped by a Ctrl-C
    part-way, leaves nothing at its target, and `--resume` finishes it with the same answers."""
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    key = "million"
    if key in results and not args.redo:
        return
    rows = 1_000_000
    source = write_predict_file(WORK / f"predict-{rows}.csv", rows, pool(args.data_dir, PREDICT_POOL))
    strings = pacsv.ConvertOptions(column_types={"id": "string", "text": "string", "note": "string"})
    given = pacsv.read_csv(source, convert_options=strings)
    outputs, checks = {}, {}
    for fmt in ("csv", "parquet", "jsonl"):
        target = WORK / f"million.{fmt}"
        command = predict_command(REPO / "models/single", source, target)
        if fmt != "jsonl" and target.exists() and args.keep_files:
            outputs[fmt] = "kept from an earlier run of this cell"
        elif fmt == "jsonl":  # a Ctrl-C a third of the way in, then --resume
            target.unlink(missing_ok=True)
            # SIG_DFL: started in the background (`nohup ... &`), this process and its children
            # would ignore SIGINT, and Python then never turns it into a KeyboardInterrupt.
            process = subprocess.Popen(
                command,
                cwd=REPO,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            progress = target.with_name(f".{target.name}.progress.json")
            while process.poll() is None:
                done = json.loads(progress.read_text())["rows"] if progress.exists() else 0
                if done >= rows // 3:
                    process.send_signal(signal.SIGINT)
                    break
                time.sleep(0.5)
            message = (process.communicate()[1].strip().splitlines() or [""])[-1]
            checks["interrupted"] = {
                "exit": process.returncode,
                "message": message,
                "target_exists": target.exists(),
            }
            outputs[fmt] = run_measured([*command, "--resume"], WORK / "million-resume.log")
        else:
            target.unlink(missing_ok=True)
            outputs[fmt] = run_measured(command, WORK / f"million-{fmt}.log")
        if fmt == "csv":
            table = pacsv.read_csv(
                target,
                convert_options=pacsv.ConvertOptions(
                    strings_can_be_null=True,
                    column_types={"id": "string", "text": "string", "note": "string"},
                ),
            )
        elif fmt == "parquet":
            table = pq.read_table(target)
        else:
            table = pajson.read_json(target)
        errors = table.column("error").to_pylist()
        checks[fmt] = {
            "rows": table.num_rows,
            "columns": table.column_names,
            "ids_in_order": table.column("id").to_pylist() == given.column("id").to_pylist(),
            "notes_kept": table.column("note").to_pylist() == given.column("note").to_pylist(),
            "empty_text_rows": sum(e == "empty text" for e in errors),
            "unread_rows": sum(bool(e) and e.startswith("unread") for e in errors),
        }
        checks[fmt]["_labels"] = table.column("label").to_pylist()
    base = checks["csv"].pop("_labels")
    for fmt in ("parquet", "jsonl"):
        checks[fmt]["same_labels_as_csv"] = checks[fmt].pop("_labels") == base
    results[key] = {"rows": rows, "runs": outputs, "checks": checks}
    save(results)
    print(key, json.dumps(results[key]), flush=True)


def save(results: dict) -> None:
    from accuracy import machine

    results["machine"] = machine()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    part = RESULTS.with_suffix(".part")
    part.write_text(json.dumps(results, indent=2) + "\n")
    part.replace(RESULTS)


CELLS = {
    "predict-speed": cell_predict_speed,
    "predict-rss": cell_predict_rss,
    "train-rss": cell_train_rss,
    "ray": cell_ray,
    "train-rss-before": cell_train_rss_before,
    "million": cell_million,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("TEXTCNN_DATA_DIR", "../shared/data"))
    )
    parser.add_argument("--only", nargs="*", choices=sorted(CELLS), help="cells to measure (default: all)")
    parser.add_argument("--redo", action="store_true", help="measure again cells already in the results")
    parser.add_argument("--predict-sizes", type=int, nargs="*", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--train-sizes", type=int, nargs="*", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--max-steps", type=int, default=200, help="training steps per training cell")
    parser.add_argument("--before", default="8f0e9d8", help="the commit `train-rss-before` measures")
    parser.add_argument("--before-sizes", type=int, nargs="*", default=[100_000, 500_000])
    parser.add_argument("--before-seconds", type=float, default=60.0, help="when it is killed, per 100k rows")
    parser.add_argument("--keep-files", action="store_true", help="keep the generated inputs")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in args.only or list(CELLS):
        CELLS[name](args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
