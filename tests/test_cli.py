"""The `textcnn` command end to end, through subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from textcnn.data.registry import REGISTRY
from textcnn.inference.bundle import Classifier

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
TINY_MODEL = ["--embedding-dim", "16", "--num-filters", "8", "--quiet"]
TINIER_MODEL = ["--embedding-dim", "8", "--num-filters", "4", "--epochs", "1", "--quiet"]
# `datasets` never goes online in these tests, and keeps its cache out of the home folder.
HF_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def textcnn(*args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "textcnn", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textcnn: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_and_version():
    result = textcnn("--help")
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout
    for command in ("train", "evaluate", "predict", "datasets"):
        help_text = textcnn(command, "--help").stdout
        assert "usage: textcnn " + command in help_text
    assert textcnn("--version").stdout.startswith("textcnn ")


def test_predict_arguments_and_stdin_give_json_lines(tiny_bundle):
    result = textcnn("predict", tiny_bundle, "a warm and funny film .", "the plot is thin .")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["a warm and funny film .", "the plot is thin ."]
    for row in rows:
        assert row["label"] in {"negative", "positive"}
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-5
        assert row["score"] == row["probabilities"][row["label"]]
    piped = textcnn("predict", tiny_bundle, stdin="a warm and funny film .\n\nthe plot is thin .\n")
    assert [json.loads(line) for line in piped.stdout.splitlines()] == rows  # blank lines skipped


def test_predict_matches_the_library(tiny_bundle):
    texts = ["a warm and funny film .", "x", "the plot is thin and the jokes fall flat ."]
    result = textcnn("predict", tiny_bundle, *texts)
    library = Classifier.load(tiny_bundle).predict(texts)
    for line, prediction in zip(result.stdout.splitlines(), library, strict=True):
        row = json.loads(line)
        assert row["label"] == prediction.label and row["score"] == pytest.approx(prediction.score, abs=1e-6)


def test_evaluate_reuses_the_fold_the_bundle_was_tested_on(tiny_bundle):
    result = textcnn(
        "evaluate", tiny_bundle, "--train", SAMPLES / "tiny.csv", "--folds", "3", "--fold", "1", "--json"
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    trained = Classifier.load(tiny_bundle).info["metrics"]["test"]
    assert metrics["n"] == 4 and metrics["accuracy"] == pytest.approx(trained["accuracy"])
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert sum(map(sum, metrics["confusion_matrix"])) == 4
    # Without fold flags, evaluate finds the fold (1 of 3) and split seed the bundle was trained with.
    text = textcnn("evaluate", tiny_bundle, "--train", SAMPLES / "tiny.csv")
    assert text.returncode == 0, text.stderr
    assert "(fold-1)" in text.stdout and f"accuracy {100 * trained['accuracy']:.1f}%" in text.stdout
    assert "precision" in text.stdout
    # Without data flags at all: the file the bundle records (as given at training) and its fold.
    bare = textcnn("evaluate", tiny_bundle)
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout == text.stdout


def test_evaluate_without_data_flags_names_a_training_file_that_is_gone(tiny_bundle, tmp_path):
    moved = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, moved)
    config = json.loads((moved / "config.json").read_text())
    assert config["data"]["files"] == {"train": str(SAMPLES / "tiny.csv")}
    config["data"]["files"] = {"train": "gone/tiny.csv"}
    (moved / "config.json").write_text(json.dumps(config))
    result = textcnn("evaluate", moved)
    assert result.returncode == 1
    assert_one_line_error(result, "was trained on gone/tiny.csv", "give --train FILE")


def test_datasets_lists_the_registry(data_dir):
    result = textcnn("datasets", "--data-dir", data_dir)
    assert result.returncode == 0
    for name in ("mr", "sst1", "sst2", "subj", "trec"):
        assert name in result.stdout
    rows = json.loads(textcnn("datasets", "--json", env={"TEXTCNN_DATA_DIR": str(data_dir)}).stdout)
    assert {r["name"]: r["rows"] for r in rows}["trec"] == {"train": 5452, "test": 500}


def test_train_and_evaluate_a_registered_dataset(data_dir, tmp_path):
    out = tmp_path / "trec"
    result = textcnn(
        "train",
        "--dataset",
        "trec",
        "--out",
        out,
        "--epochs",
        "1",
        "--max-length",
        "20",
        *TINY_MODEL,
        env={"TEXTCNN_DATA_DIR": str(data_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stderr and (out / "train_log.jsonl").exists()
    evaluated = textcnn("evaluate", out, "--json", env={"TEXTCNN_DATA_DIR": str(data_dir)})
    metrics = json.loads(evaluated.stdout)
    assert metrics["dataset"] == "trec" and metrics["split"] == "test" and metrics["n"] == 500
    assert metrics["accuracy"] == pytest.approx(json.loads(result.stdout)["folds"][0]["test"]["accuracy"])


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["predict", "/nonexistent/bundle", "text"], ["/nonexistent/bundle", "no model bundle"]),
        (["train", "--dataset", "nosuch", "--out", "x"], ["unknown dataset", "nosuch"]),
        (["train", "--train", "/nonexistent.csv", "--out", "x"], ["/nonexistent.csv"]),
        (["train", "--train", str(SAMPLES / "tiny.csv"), "--out", "x", "--variant", "static"], ["--vectors"]),
        (["train", "--train", str(SAMPLES / "tiny.csv"), "--out", "x", "--dropout", "1.5"], ["dropout"]),
        (
            ["train", "--dataset", "mr", "--out", "x", "--data-dir", "/nonexistent"],
            ["/nonexistent", "--data-dir"],
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, fragments):
    assert_one_line_error(textcnn(*args), *fragments)


def test_bad_rows_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood film,positive\n   ,negative\n", encoding="utf-8")
    refused = textcnn("train", "--train", bad, "--out", tmp_path / "m", "--strict-rows")
    assert_one_line_error(refused, "bad.csv:3: empty text")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "\xff\xfe", "label": "b"}\n')
    assert_one_line_error(textcnn("train", "--train", binary, "--out", tmp_path / "m"), "binary.jsonl:2")


def warning_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "DataWarning" not in stderr, stderr  # not Python's format
    return [line for line in stderr.splitlines() if "warning" in line.lower()]


def test_rows_with_empty_text_are_one_warning_line_and_evaluate_counts_them(tmp_path):
    tiny = iter((SAMPLES / "tiny.jsonl").read_text(encoding="utf-8").splitlines())
    blank = {3: "", 7: "   ", 12: None}  # line: text; the 12 sample rows fill the other lines
    lines = [
        json.dumps({"text": blank[n], "label": "positive"}) if n in blank else next(tiny)
        for n in range(1, 16)
    ]
    data = tmp_path / "blanks.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "model"
    folds = ["--folds", "3", "--fold", "0"]
    trained = textcnn("train", "--train", data, *folds, "--out", out, *TINIER_MODEL)
    assert trained.returncode == 0, trained.stderr
    expected = (
        f"textcnn: warning: {data}: skipped 3 rows with empty text (lines 3, 7, 12); "
        "--strict-rows refuses them"
    )
    assert warning_lines(trained.stderr) == [expected]
    assert json.loads(trained.stdout)["folds"][0]["test"]["n"] == 4  # the 12 rows with text, in 3 folds

    evaluated = textcnn("evaluate", out, "--train", data, *folds)
    assert evaluated.returncode == 0, evaluated.stderr
    assert warning_lines(evaluated.stderr) == [expected]
    assert "(n=4; 3 rows with empty text skipped)" in evaluated.stdout
    as_json = json.loads(textcnn("evaluate", out, "--train", data, *folds, "--json").stdout)
    assert as_json["n"] == 4 and as_json["skipped_empty_text"] == {"rows": 3, "lines": [3, 7, 12]}

    refused = textcnn("evaluate", out, "--train", data, *folds, "--strict-rows")
    assert_one_line_error(refused, f"{data}:3: empty text")


def test_train_and_evaluate_a_local_datasets_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def part(rows):
        return datasets.Dataset.from_dict(
            {"text": [r[0] for r in rows], "label": [r[1] for r in rows]}, features
        )

    train = (
        [(f"a good film {i}", 1) for i in range(5)] + [("", 0)] + [(f"a bad film {i}", 0) for i in range(5)]
    )
    saved = tmp_path / "reviews"
    datasets.DatasetDict(
        train=part(train),
        validation=part([("good again", 1), ("bad again", 0)]),
        test=part([("fine film", 1), (None, 1), ("poor film", 0)]),
    ).save_to_disk(str(saved))
    env = {**HF_OFFLINE, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache")}
    out = tmp_path / "model"
    trained = textcnn("train", "--dataset", saved, "--out", out, *TINIER_MODEL, env=env)
    assert trained.returncode == 0, trained.stderr
    assert warning_lines(trained.stderr) == [
        f"textcnn: warning: local:{saved}/train: skipped 1 row with empty text (row 6); --strict-rows refuses them",
        f"textcnn: warning: local:{saved}/test: skipped 1 row with empty text (row 2); --strict-rows refuses them",
    ]
    summary = json.loads(trained.stdout)
    assert summary["dataset"] == str(saved) and summary["folds"][0]["test"]["n"] == 2
    assert list(Classifier.load(out).label_names) == ["neg", "pos"]  # the ClassLabel's names, in its order

    # The bundle names the folder, so evaluate finds the data again without --dataset.
    evaluated = json.loads(textcnn("evaluate", out, "--json", env=env).stdout)
    assert (evaluated["dataset"], evaluated["n"]) == (str(saved), 2)
    assert evaluated["skipped_empty_text"] == {"rows": 1, "lines": [2]}

    # `textcnn datasets` lists the registry only; a dataset folder in the data dir changes nothing.
    listed = textcnn("datasets", "--json", "--data-dir", tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == list(REGISTRY)
    missing = textcnn("train", "--dataset", tmp_path / "nothing", "--out", out, env=env)
    assert_one_line_error(missing, f"{tmp_path / 'nothing'}: no such file or folder")


def test_usage_errors_exit_2():
    assert textcnn("train").returncode == 2  # --out missing
    assert textcnn("train", "--out", "x", "--filter-widths", "3,a").returncode == 2
    assert textcnn("frobnicate").returncode == 2


def test_corrupted_bundle_is_one_line(tiny_bundle, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "vocab.json"):
        (broken / name).write_bytes((tiny_bundle / name).read_bytes())
    (broken / "weights.safetensors").write_bytes((tiny_bundle / "weights.safetensors").read_bytes()[:100])
    assert_one_line_error(textcnn("predict", broken, "text"), "weights.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_the_best_model_and_resume_finishes(data_dir, tmp_path, stop_signal):
    out = tmp_path / "sst2"
    epochs = 12  # enough that the signal lands mid-run (an epoch of this model: ~0.5 s)
    args = [
        "train",
        "--dataset",
        "sst2",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--patience",
        "0",
        "--embedding-dim",
        "16",
        "--num-filters",
        "8",
        "--quiet",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "textcnn", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell starts background jobs with SIGINT ignored, and Python then never turns it into
        # KeyboardInterrupt: give the child the default, as an interactive terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (out / "checkpoint.safetensors").exists(), "no checkpoint appeared"
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    epochs_before = len((out / "train_log.jsonl").read_text().splitlines())
    assert 1 <= epochs_before < epochs
    Classifier.load(out)  # the best model so far is a complete bundle
    resumed = textcnn(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, epochs + 1))
    assert not (out / "checkpoint.safetensors").exists()


def test_explain_prints_the_deciding_ngrams(tiny_bundle):
    result = textcnn("explain", tiny_bundle, "--json", "--top", "2", stdin="a warm and funny film\n\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1 and lines[0]["text"] == "a warm and funny film"
    assert lines[0]["label"] in Classifier.load(tiny_bundle).label_names
    for side in ("for", "against"):
        assert len(lines[0][side]) <= 2
        for item in lines[0][side]:
            assert set(item["ngram"].split()) <= {"a", "warm", "and", "funny", "film"}
    text = textcnn("explain", tiny_bundle, "a warm and funny film")
    assert text.returncode == 0 and "->" in text.stdout
    missing = textcnn("explain", tiny_bundle.parent / "nothing", "x")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1


def test_explain_splits_an_average_pooled_logit(tmp_path):
    import torch

    from textcnn.data.text import PAD, UNK, TextEncoder, Vocabulary
    from textcnn.model.cnn import ModelConfig, TextCNN

    words = [PAD, UNK, "a", "warm", "and", "funny", "film"]
    torch.manual_seed(0)
    model = TextCNN(
        ModelConfig(vocab_size=len(words), num_classes=2, embedding_dim=4, num_filters=3, pooling="avg")
    )
    with torch.no_grad():
        for conv in model.convs:
            conv.bias.fill_(0.2)  # windows that pass the ReLU
    Classifier(model, TextEncoder(Vocabulary(words), "kim"), ["negative", "positive"]).save(tmp_path / "avg")
    result = textcnn("explain", tmp_path / "avg", "a warm and funny film", "--json")
    assert result.returncode == 0, result.stderr
    e = json.loads(result.stdout)
    assert e["tokens"] == ["a", "warm", "and", "funny", "film"] and e["exact"] is True
    parts = e["output_bias"] + e["filter_bias"] + sum(e["token_parts"])
    assert abs(parts - e["logit"]) <= 1e-4 and abs(e["residual"]) <= 1e-4
    assert e["for"] or e["against"]
    text = textcnn("explain", tmp_path / "avg", "a warm and funny film")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[1].startswith("  -> ") and "(width " in lines[2]
    assert lines[-1].startswith("  parts: a ") and "film " in lines[-1] and "filter biases" in lines[-1]


def test_train_a_local_pooling_and_its_bundle_reloads_and_predicts(tmp_path):
    out = tmp_path / "local"
    result = textcnn(
        "train", "--train", SAMPLES / "tiny.csv", "--out", out, "--pooling", "local-max", "--region", "3",
        "--folds", "3", "--fold", "1", *TINY_MODEL, "--epochs", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())["model"]
    # The longest training sentence has at most 14 tokens: at most ceil((14 + 5 - 1) / 3) = 6 slots.
    assert config["pooling"] == "local-max" and config["region"] == 3 and 1 <= config["region_slots"] <= 6
    classifier = Classifier.load(out, device="cpu")
    assert classifier.model.config.region_slots == config["region_slots"]
    longer = " ".join(["a warm , funny and surprisingly moving film ."] * 4)  # folds into the last slot
    predicted = textcnn("predict", out, "a warm film", longer)
    assert predicted.returncode == 0, predicted.stderr
    labels = [json.loads(line)["label"] for line in predicted.stdout.splitlines()]
    assert labels == [p.label for p in classifier.predict(["a warm film", longer])]
    bad = textcnn("train", "--train", SAMPLES / "tiny.csv", "--out", tmp_path / "x", "--pooling", "local-avg",
                  "--region", "0")  # fmt: skip
    assert bad.returncode == 2 and "must be >= 1" in bad.stderr


def test_compare_quick_study_and_a_bad_pooling(data_dir, tmp_path):
    out = tmp_path / "study"
    arms = ["max", "avg", "kmax:2", "local-max:2", "local-avg:2", "padded-avg"]
    args = [
        "compare",
        "--datasets",
        "trec",
        "--poolings",
        ",".join(arms),
        "--seeds",
        "1",
        "--quick",
        "--quiet",
    ]
    result = textcnn(*args, "--data-dir", data_dir, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "6 runs" in result.stdout
    assert (out / "REPORT.md").exists() and (out / "plots" / "trec.png").exists()
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["pooling"] for r in rows] == arms  # the arm names as typed
    report = (out / "REPORT.md").read_text()
    assert "| dataset | max | avg | kmax:2 | local-max:2 | local-avg:2 | padded-avg |" in report
    assert "| trec | padded-avg | " in report and "[Table 17 all]" in report  # beside their average
    assert "## Linear baselines on the same folds" in report and "| trec | 1 |" in report
    assert len((out / "baselines.jsonl").read_text().splitlines()) == 2  # TF-IDF + LR, NBSVM
    (out / "REPORT.md").unlink()
    again = textcnn(*args, "--data-dir", data_dir, "--out", out, "--report-only", "--no-baselines")
    assert again.returncode == 0, again.stderr
    assert (out / "results.jsonl").read_text().splitlines() == [
        json.dumps(r) for r in rows
    ]  # nothing trained
    report = (out / "REPORT.md").read_text()
    assert "## Linear baselines" not in report and "--report-only" not in report
    assert f"Command: `textcnn {' '.join(args)} --data-dir" in report
    empty = textcnn(*args, "--data-dir", data_dir, "--out", tmp_path / "empty", "--report-only")
    assert_one_line_error(empty, "holds no study")
    assert not (tmp_path / "empty").exists()
    bad = textcnn("compare", "--poolings", "max,median", "--data-dir", data_dir, "--out", tmp_path / "bad")
    assert bad.returncode == 1 and "unknown pooling median" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = textcnn(
        "compare", "--poolings", "kmax:0,local-max:x", "--data-dir", data_dir, "--out", tmp_path / "bad"
    )
    assert_one_line_error(
        bad, "'kmax:0': k must be a positive integer", "'local-max:x': the region", "kmax:K"
    )
    assert not (tmp_path / "bad").exists()


def test_train_flags_fall_through_to_the_config_defaults():
    """A default lives in its dataclass only: the flags default to "not given", and --help reads
    the dataclass. If a flag got a default of its own again, or a config field lost its flag, this
    fails."""
    import dataclasses

    from textcnn.cli import build_parser
    from textcnn.cli.flags import MODEL_FLAGS, TRAIN_FLAGS, VOCAB_FLAGS, run_settings_from_args
    from textcnn.model.cnn import ModelConfig
    from textcnn.train.config import TrainConfig
    from textcnn.train.runs import VocabConfig

    def names(config, *ignored):
        return {f.name for f in dataclasses.fields(config)} - set(ignored)

    assert set(MODEL_FLAGS.values()) == names(
        ModelConfig, "vocab_size", "num_classes", "multi_label", "extra"
    )
    assert set(TRAIN_FLAGS.values()) == names(TrainConfig, "rho", "eps", "bucket_batches")  # no flags
    assert set(VOCAB_FLAGS.values()) == names(VocabConfig)
    parser = build_parser()
    args = parser.parse_args(["train", "--dataset", "mr", "--out", "x"])
    assert all(getattr(args, dest) is None for dest in (*MODEL_FLAGS, *TRAIN_FLAGS, *VOCAB_FLAGS))
    settings = run_settings_from_args(args)
    assert (
        settings.model_options == {} and settings.train == TrainConfig() and settings.vocab == VocabConfig()
    )

    given = [
        "--k",
        "7",
        "--max-norm",
        "0",
        "--patience",
        "0",
        "--max-vocab",
        "100",
        "--no-wide",
        "--seed",
        "3",
    ]
    settings = run_settings_from_args(parser.parse_args(["train", "--dataset", "mr", "--out", "x", *given]))
    assert settings.model_options == {"kmax_k": 7, "max_norm": None, "wide": False}
    assert settings.train == TrainConfig(patience=None, seed=3) and settings.vocab == VocabConfig(
        max_size=100
    )

    train_help = " ".join(textcnn("train", "--help").stdout.split())
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    assert f"feature maps per width (default: {defaults['num_filters']})" in train_help
    assert f"(default: {','.join(map(str, defaults['filter_widths']))})" in train_help
    assert f"most epochs to train (default: {TrainConfig().epochs})" in train_help


def test_compare_flags_fall_through_to_the_study_defaults():
    import dataclasses

    from textcnn.cli import build_parser
    from textcnn.cli.flags import STUDY_FLAGS
    from textcnn.study.plan import StudyConfig

    assert set(STUDY_FLAGS.values()) <= {f.name for f in dataclasses.fields(StudyConfig)}
    args = build_parser().parse_args(["compare", "--out", "x"])
    assert all(getattr(args, dest) is None for dest in STUDY_FLAGS)
    compare_help = " ".join(textcnn("compare", "--help").stdout.split())
    assert f"training seeds per arm (0, 1, ...) (default: {StudyConfig.seeds})" in compare_help
