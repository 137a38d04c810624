"""`textcnn predict BUNDLE --input FILE...`: files scored as a stream, every row kept in place.

The shipped `models/single` bundle (a real SST-2 CNN) scores real files written here; a tiny
multi-label bundle is trained for its `labels` column. The interrupted run is a real process sent
SIGINT once its first chunk is committed.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, torch_threads

from textcnn.inference.classifier import Classifier
from textcnn.inference.scoring import ScoreOptions, output_columns, score_table

SINGLE = REPO / "models" / "single"
ROWS = [
    {"id": "1", "text": "a great , moving film", "note": "plain"},
    {"id": "2", "text": 'a "quoted" line,\nthen a dull second line', "note": "quotes, commas\nnewlines"},
    {"id": "3", "text": "", "note": "blank"},
    {"id": "4", "text": "   ", "note": "whitespace"},
    {"id": "5", "text": "ein wunderbarer Film", "note": "German"},
    {"id": "6", "text": "这部电影很好", "note": "Chinese"},
    {"id": "7", "text": "awful , boring , too long", "note": "plain"},
]
WORDS = [  # sentences of these, for files of any length
    "the",
    "film",
    "movie",
    "great",
    "awful",
    "boring",
    "fun",
    "a",
    "is",
    "was",
    "not",
    "very",
    "good",
    "bad",
    "story",
    "acting",
]


@pytest.fixture(scope="module")
def single() -> Classifier:
    return Classifier.load(SINGLE, device="cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def run_cli(*argv: str) -> tuple[int, str, str]:
    from textcnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))


def sentences(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": str(i), "text": " ".join(rng.choices(WORDS, k=rng.randint(3, 25)))} for i in range(n)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_csv_scores_row_for_row_with_its_columns_kept_and_errors_in_place(single, tmp_path, suffix):
    source = write_csv(tmp_path / "in.csv", ROWS)
    out = tmp_path / f"out{suffix}"
    code, _, err = run_cli("predict", str(SINGLE), "--input", str(source), "--output", str(out), "--quiet")
    assert code == 0, err
    rows = read_output(out)
    assert [(r["id"], r["text"], r["note"]) for r in rows] == [(r["id"], r["text"], r["note"]) for r in ROWS]
    assert list(rows[0]) == ["id", "text", "note", "label", "score", "coverage", "error"]
    expected = single.predict([r["text"] for r in ROWS if r["text"].strip()])
    answers = iter(expected)
    for row in rows:
        blank = not row["text"].strip()
        if blank:
            assert row["error"] == "empty text" and row["label"] in (None, "")
            continue
        want = next(answers)
        if want.unread:
            assert row["error"] == "unread: no token known to the model" and row["label"] in (None, "")
        else:
            assert row["label"] == want.label and float(row["score"]) == pytest.approx(want.score, abs=1e-12)
            assert row["error"] in (None, "")
    assert rows[5]["error"].startswith("unread")  # Chinese: no token this English model knows
    assert not list(tmp_path.glob(".out*"))  # no leftovers beside the target


def test_jsonl_and_parquet_inputs_keep_their_fields(single, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"text": "a great film", "meta": {"a": 1}, "n": 3}),
        "{broken json",
        json.dumps({"text": 5, "n": 4}),
        json.dumps({"text": "boring", "n": None}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert run_cli("predict", str(SINGLE), "--input", str(source), "--output", str(out), "--quiet")[0] == 0
    rows = read_output(out)
    assert [r["n"] for r in rows] == ["3", None, "4", None]  # non-text values kept as their JSON
    assert rows[0]["meta"] == '{"a": 1}' and rows[0]["label"] == single.predict(["a great film"])[0].label
    assert rows[1]["error"].startswith(f"{source}:2: not JSON")
    assert rows[2]["error"] == f"{source}:3: text is not a string (int)" and rows[2]["label"] is None
    assert rows[3]["error"] is None and rows[3]["label"] is not None

    table = pa.table({"k": pa.array([10, 20, 30]), "text": ["good fun", None, "bad acting"]})
    pq.write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "p.parquet"
    code, _, err = run_cli(
        "predict", str(SINGLE), "--input", str(tmp_path / "in.parquet"), "--output", str(out), "--quiet"
    )
    assert code == 0, err
    scored = pq.read_table(out)
    assert scored.schema.field("k").type == pa.int64() and scored.column("k").to_pylist() == [10, 20, 30]
    assert scored.column("error").to_pylist() == [None, "empty text", None]


def test_a_glob_of_two_inputs_is_one_output_in_order_and_gzip_reads(single, tmp_path):
    first = write_csv(tmp_path / "a.csv", sentences(5, 1))
    plain = write_csv(tmp_path / "b.plain", sentences(4, 2))
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    out = tmp_path / "out.tsv"
    code, _, err = run_cli(
        "predict", str(SINGLE), "--input", str(tmp_path / "*.csv*"), "--output", str(out), "--quiet"
    )
    assert code == 0, err
    rows = read_output(out)
    texts = [r["text"] for r in sentences(5, 1) + sentences(4, 2)]
    assert [r["text"] for r in rows] == texts
    assert [r["label"] for r in rows] == [p.label for p in single.predict(texts)]
    assert first.exists()


def test_top_k_probabilities_and_coverage_columns(single):
    texts = ["a great film", "zzqx", "boring and too long"]
    table = pa.table({"text": texts, "label": ["gold"] * 3})
    options = ScoreOptions(top_k=2, probabilities=True)
    scored = score_table(single, table, options)
    names = [name for name, _ in output_columns(single, options, table.schema.names)]
    assert scored.schema.names == ["text", "label", *names]
    assert names == ["pred_label", "score", "top_k", "p_negative", "p_positive", "coverage", "error"]
    assert scored.column("label").to_pylist() == ["gold"] * 3  # the input's own column, untouched
    predictions = single.predict(texts)
    for i, want in enumerate(predictions):
        row = scored.slice(i, 1).to_pylist()[0]
        assert row["coverage"] == want.coverage
        if want.unread:
            assert row["top_k"] is None and row["p_positive"] is None and row["pred_label"] is None
            continue
        top = json.loads(row["top_k"])
        assert [t["label"] for t in top] == sorted(
            want.probabilities, key=want.probabilities.get, reverse=True
        )
        assert top[0]["label"] == row["pred_label"] == want.label
        assert row["p_positive"] == pytest.approx(want.probabilities["positive"], abs=1e-7)
    without = score_table(single, table.select(["text"]), ScoreOptions(coverage=False))
    assert without.schema.names == ["text", "label", "score", "error"]


@pytest.fixture(scope="module")
def multi_label_bundle(tmp_path_factory) -> Path:
    from textcnn.data.splits import Fold, LabeledTexts
    from textcnn.train.config import TrainConfig
    from textcnn.train.runs import RunSettings, train_classifier

    words = {"anger": ["mad", "angry"], "joy": ["happy", "glad"], "love": ["love", "adore"]}
    rng = random.Random(0)

    def part(n: int, source: str) -> LabeledTexts:
        texts, labels = [], []
        for _ in range(n):
            given = sorted(rng.sample(sorted(words), rng.choice([1, 1, 2])))
            tokens = [rng.choice(words[g]) for g in given] + rng.sample(["the", "day", "was", "so", "a"], 3)
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            labels.append(tuple(given))
        return LabeledTexts(texts, labels, source)

    fold = Fold("split", None, part(200, "<train>"), part(60, "<dev>"), part(60, "<test>"), "given")
    settings = RunSettings(
        model_options={"embedding_dim": 16, "num_filters": 8}, train=TrainConfig(epochs=6, batch_size=25)
    )
    classifier = train_classifier(fold, sorted(words), settings, progress=False).classifier
    return classifier.save(tmp_path_factory.mktemp("ml") / "emotions")


def test_a_multi_label_bundle_writes_its_labels_column(multi_label_bundle, tmp_path):
    texts = ["so happy and glad today", "mad and angry", "i adore the day", "qqq"]
    source = write_csv(tmp_path / "in.csv", [{"text": t} for t in texts])
    out = tmp_path / "out.jsonl"
    argv = ["predict", str(multi_label_bundle), "--input", str(source), "--output", str(out), "--quiet"]
    assert run_cli(*argv, "--threshold", "0.3")[0] == 0
    rows = read_output(out)
    expected = Classifier.load(multi_label_bundle).predict(texts, threshold=0.3)
    for row, want in zip(rows, expected, strict=True):
        if want.unread:
            assert row["labels"] is None and row["error"].startswith("unread")
        else:
            assert json.loads(row["labels"]) == [name for name, _ in want.labels]
            assert row["label"] == want.label
    assert any(len(json.loads(r["labels"] or "[]")) > 1 for r in rows)


def test_workers_give_the_same_output_as_in_process(tmp_path):
    source = write_csv(tmp_path / "in.csv", sentences(300, 3))
    outputs = []
    for workers in ("0", "2"):
        out = tmp_path / f"out{workers}.csv"
        argv = ["predict", str(SINGLE), "--input", str(source), "--output", str(out)]
        code, _, err = run_cli(*argv, "--workers", workers, "--chunk-rows", "128", "--quiet")
        assert code == 0, err
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and outputs[0].count(b"\n") == 301


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "textcnn", "predict", str(SINGLE), *argv, "--quiet", "--workers", "0"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_interrupted_run_leaves_no_output_and_resumes_to_the_same_bytes(tmp_path, suffix):
    # Enough rows that the run is still going when the signal arrives, on a loaded machine too.
    source = write_csv(tmp_path / "in.csv", sentences(12000, 4))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    target = tmp_path / f"out{suffix}"
    progress = tmp_path / f".{target.name}.progress.json"
    flags = ["--input", str(source), "--output", str(target), "--chunk-rows", "100"]
    process = subprocess.Popen(_cli(*flags), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not progress.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert not target.exists()
    assert "--resume" in err and len(err.strip().splitlines()) == 1
    done = json.loads(progress.read_text())["rows"]
    assert 0 < done < 12000

    resumed = subprocess.run(_cli(*flags, "--resume"), env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / f"whole{suffix}"
    fresh = subprocess.run(
        _cli(*flags[:3], str(whole), *flags[4:]), env=env, capture_output=True, timeout=120
    )
    assert fresh.returncode == 0
    assert target.read_bytes() == whole.read_bytes()
    assert not list(tmp_path.glob(".out*"))


def test_bad_inputs_are_one_line_and_exit_1(tmp_path):
    source = write_csv(tmp_path / "in.csv", sentences(3))
    out = str(tmp_path / "out.csv")
    cases = {
        "no column 'body'; the columns are: id, text": [
            "--input",
            str(source),
            "--text-column",
            "body",
            "--output",
            out,
        ],
        "missing.csv: file not found": ["--input", str(tmp_path / "missing.csv"), "--output", out],
        "cannot write there": ["--input", str(source), "--output", str(tmp_path / "no" / "out.csv")],
        "cannot tell the format": ["--input", str(source), "--output", str(tmp_path / "out.xyz")],
        "not a readable Parquet file": [
            "--input",
            str(write_bytes(tmp_path / "x.parquet", b"nope")),
            "--output",
            out,
        ],
    }
    for expected, flags in cases.items():
        code, _, err = run_cli("predict", str(SINGLE), *flags, "--quiet")
        assert code == 1 and expected in err and len(err.strip().splitlines()) == 1, (expected, err)
        assert not Path(out).exists()

    # a leftover of another run is refused by --resume, in one line
    (tmp_path / ".out.csv.partial").write_bytes(b"")
    (tmp_path / ".out.csv.progress.json").write_text(
        json.dumps({"rows": 1, "offset": 0, "parts": 0, "of": {}})
    )
    code, _, err = run_cli(
        "predict", str(SINGLE), "--input", str(source), "--output", out, "--resume", "--quiet"
    )
    assert code == 1 and "leftover of another run" in err and len(err.strip().splitlines()) == 1


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_without_input_predict_is_unchanged(single):
    code, out, _ = run_cli("predict", str(SINGLE), "a great film", "  ")
    assert code == 0
    (line,) = out.splitlines()
    assert json.loads(line) == {"text": "a great film", **single.predict(["a great film"])[0].to_json()}
