"""Multi-label classification from the file to the answer: the output activation, the decision rule,
training (CNNs, ensembles, a one-vs-rest linear member, a mixed bundle), bundles, the CLI's train,
evaluate, predict and explain on the three file layouts, and one real GoEmotions run.

The data layer's own tests (layouts, bad rows, folds, the registry) are tests/test_multilabel_data.py;
the service's are tests/test_service_multilabel.py.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import torch_threads

from textcnn.data.splits import Fold, LabeledTexts
from textcnn.errors import BundleError, ConfigError
from textcnn.inference.bundle import Classifier
from textcnn.inference.decisions import Decision, choose_thresholds, decide
from textcnn.inference.explain import explain_text
from textcnn.inference.metrics import multilabel_metrics
from textcnn.model import output
from textcnn.model.mixed import MixedEnsemble
from textcnn.train.config import TrainConfig
from textcnn.train.protocol import train_folds
from textcnn.train.runs import Mixture, RunSettings, train_classifier

LABELS = ("anger", "joy", "love")
WORDS = {
    "anger": ["mad", "angry", "furious"],
    "joy": ["happy", "glad", "great"],
    "love": ["love", "adore", "dear"],
}
FILLER = ["the", "a", "day", "it", "was", "so", "today"]
TINY = {"embedding_dim": 16, "num_filters": 8}


def emotion_rows(n: int, seed: int) -> list[tuple[str, tuple[str, ...]]]:
    """Texts with one or two emotions, each said by one of its words among filler words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels = sorted(rng.sample(LABELS, rng.choice([1, 1, 2])))
        words = [rng.choice(WORDS[label]) for label in labels] + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append((" ".join(words), tuple(labels)))
    return rows


def part(rows, source: str) -> LabeledTexts:
    return LabeledTexts([t for t, _ in rows], [y for _, y in rows], source)


@pytest.fixture(scope="module")
def fold() -> Fold:
    return Fold(
        "split",
        None,
        part(emotion_rows(300, 0), "<train>"),
        part(emotion_rows(80, 1), "<dev>"),
        part(emotion_rows(80, 2), "<test>"),
        "given",
    )


SETTINGS = RunSettings(model_options=TINY, train=TrainConfig(epochs=8, batch_size=25))


@pytest.fixture(scope="module")
def trained(fold):
    with torch_threads(1):
        return train_classifier(fold, LABELS, SETTINGS, progress=False)


# -- the output activation and the decision rule ------------------------------------------------


def test_single_label_combination_is_the_same_computation_as_before():
    """Softmax ensembles are bit-identical to the formula every shipped bundle was recorded with."""
    logits, weights = torch.randn(3, 5, 4), torch.tensor([0.2, 0.3, 0.5])
    tiny = torch.finfo(torch.float32).tiny
    assert torch.equal(
        output.combine(logits, None, False), torch.softmax(logits, 2).mean(0).clamp_min(tiny).log()
    )
    weighted = torch.einsum("m,mbc->bc", weights, torch.softmax(logits, 2)).clamp_min(tiny).log()
    assert torch.equal(output.combine(logits, weights, False), weighted)


def test_multi_label_combination_averages_each_labels_probability():
    logits, weights = torch.randn(3, 5, 4), torch.tensor([0.2, 0.3, 0.5])
    combined = output.combine(logits, weights, True)
    expected = torch.einsum("m,mbc->bc", weights, torch.sigmoid(logits))
    assert torch.allclose(torch.sigmoid(combined), expected, atol=1e-6)
    # one member: its own logits back
    assert torch.allclose(output.combine(logits[:1], None, True), logits[0], atol=1e-4)


def test_the_loss_is_binary_cross_entropy_summed_over_labels():
    logits, targets = torch.randn(2, 6, 4), torch.randint(0, 2, (2, 6, 4)).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
    assert torch.allclose(output.loss(logits, targets, True), expected)
    classes = torch.randint(0, 4, (2, 6))
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), classes.flatten(), reduction="none")
    assert torch.equal(output.loss(logits, classes, False), expected.view(2, 6))


def test_decide_gives_labels_over_their_threshold_and_at_least_one_on_request():
    p = np.array([[0.9, 0.2, 0.6], [0.1, 0.3, 0.2]])
    assert decide(p, np.array([0.5, 0.5, 0.5]), False).tolist() == [[1, 0, 1], [0, 0, 0]]
    assert decide(p, np.array([0.5, 0.5, 0.5]), True).tolist() == [[1, 0, 1], [0, 1, 0]]
    assert decide(p, np.array([0.95, 0.1, 0.7]), False).tolist() == [[0, 1, 0], [0, 1, 0]]


def test_thresholds_follow_dev_and_a_rare_label_keeps_the_shared_one():
    """Label 0 is well separated above 0.7, label 1 below 0.2; label 2 has 5 dev rows, too few for
    its own cut (`MIN_SUPPORT`): it gets the shared one."""
    rng = np.random.default_rng(0)
    n = 400
    targets = np.zeros((n, 3), dtype=int)
    targets[:200, 0] = 1
    targets[100:300, 1] = 1
    targets[:5, 2] = 1
    p = np.zeros((n, 3))
    p[:, 0] = np.where(targets[:, 0] == 1, rng.uniform(0.75, 1.0, n), rng.uniform(0.0, 0.7, n))
    p[:, 1] = np.where(targets[:, 1] == 1, rng.uniform(0.2, 0.5, n), rng.uniform(0.0, 0.18, n))
    p[:, 2] = np.where(targets[:, 2] == 1, rng.uniform(0.3, 0.6, n), rng.uniform(0.0, 0.5, n))
    decision, info = choose_thresholds(p, targets, "per-label")
    assert 0.7 <= decision.thresholds[0] <= 0.75 and 0.18 <= decision.thresholds[1] <= 0.2
    assert decision.thresholds[2] == info["shared"] and info["own"] == 2
    f1 = multilabel_metrics(targets, decision.decide(p), ["a", "b", "c"])["macro_f1"]
    shared, _ = choose_thresholds(p, targets, "global")
    assert len(set(shared.thresholds)) == 1
    assert f1 > multilabel_metrics(targets, shared.decide(p), ["a", "b", "c"])["macro_f1"]
    with pytest.raises(ConfigError, match="threshold mode"):
        choose_thresholds(p, targets, "best")


def test_a_decision_round_trips_and_refuses_a_bad_threshold():
    decision = Decision((0.3, 0.6), True, "chosen on dev")
    assert Decision.from_json(decision.to_json(), 2) == decision
    assert decision.with_threshold(0.4).thresholds == (0.4, 0.4)
    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ConfigError, match="between 0 and 1"):
            decision.with_threshold(bad)
    with pytest.raises(ConfigError, match="2 thresholds for 3 labels"):
        Decision.from_json(decision.to_json(), 3)


def test_multilabel_metrics_match_scikit_learn():
    from sklearn.metrics import f1_score, jaccard_score

    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, (50, 4)), rng.integers(0, 2, (50, 4))
    m = multilabel_metrics(y, p, list("abcd"))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert m["micro_f1"] == pytest.approx(f1_score(y, p, average="micro", zero_division=0))
    assert m["samples_f1"] == pytest.approx(f1_score(y, p, average="samples", zero_division=0))
    assert m["jaccard"] == pytest.approx(jaccard_score(y, p, average="samples", zero_division=0))
    assert m["exact_match"] == pytest.approx((y == p).all(axis=1).mean())
    assert [m["per_class"][c]["support"] for c in "abcd"] == y.sum(axis=0).tolist()


# -- training, bundles, explanations -------------------------------------------------------------


def test_a_cnn_learns_several_labels_and_its_bundle_answers_the_same(trained, fold, tmp_path):
    classifier = trained.classifier
    assert classifier.multi_label and classifier.model.config.multi_label
    assert trained.test_metrics["multi_label"] and trained.test_metrics["macro_f1"] > 0.9
    assert set(trained.test_metrics) >= {"micro_f1", "samples_f1", "jaccard", "exact_match", "per_class"}
    # early stopping selected on dev macro-F1, which every epoch record carries
    assert all("dev_macro_f1" in epoch for epoch in trained.fit.history)
    assert trained.fit.best_dev_accuracy == max(e["dev_macro_f1"] for e in trained.fit.history)
    # every training row has a label: a text always gets at least its top one
    assert classifier.decision.at_least_one and len(classifier.decision.thresholds) == 3
    (both,) = classifier.predict(["so mad and happy today"])
    assert {name for name, _ in both.labels} == {"anger", "joy"} and both.label in ("anger", "joy")
    assert [score for _, score in both.labels] == sorted((s for _, s in both.labels), reverse=True)
    assert both.to_json()["labels"] == [{"label": n, "score": s} for n, s in both.labels]
    # the bundle keeps the thresholds and answers exactly as the classifier did
    classifier.save(tmp_path / "ml")
    config = json.loads((tmp_path / "ml" / "config.json").read_text())
    assert config["model"]["multi_label"] is True and config["decision"]["thresholds"]
    loaded = Classifier.load(tmp_path / "ml", device="cpu")
    assert loaded.decision == classifier.decision and loaded.card.task == "multi-label"
    assert loaded.card.decision == classifier.decision.to_json()
    texts = list(fold.test.texts)
    assert torch.equal(loaded.logits(texts), classifier.logits(texts))
    assert loaded.score(texts, fold.test.labels)["macro_f1"] == trained.test_metrics["macro_f1"]


def test_a_threshold_overrides_the_bundles_and_an_unread_text_gets_no_label(trained):
    classifier = trained.classifier
    low = classifier.predict(["the day was"], threshold=0.01)[0]
    assert len(low.labels) == 3  # every label clears 0.01
    high = classifier.predict(["so mad today"], threshold=0.99)[0]
    assert len(high.labels) == 1  # none clears 0.99: the top one, as the bundle says
    (unread,) = classifier.predict(["zzz qqq"])
    assert unread.unread and unread.labels is None and unread.to_json()["labels"] is None
    # a single-label bundle takes no threshold
    single = Classifier.load(Path(__file__).resolve().parents[1] / "models" / "single", device="cpu")
    with pytest.raises(ConfigError, match="multi-label"):
        single.predict(["a fine film"], threshold=0.3)
    assert "labels" not in single.predict(["a fine film"])[0].to_json()


def test_explain_splits_each_given_labels_logit_exactly(trained):
    explanation = explain_text(trained.classifier, "so mad and happy today")
    given = explanation["labels"]
    assert {g["label"] for g in given} == {"anger", "joy"}
    for g in given:  # max pooling splits exactly
        assert abs(g["residual"]) < 1e-4
        parts = g["output_bias"] + g["filter_bias"] + sum(g["token_parts"])
        assert parts == pytest.approx(g["logit"], abs=1e-4)
        assert g["score"] == pytest.approx(explanation["probabilities"][g["label"]])
    top = max(given, key=lambda g: g["score"])
    assert explanation["label"] == top["label"] and explanation["logit"] == pytest.approx(top["logit"])
    assert explain_text(trained.classifier, "zzz")["labels"] is None


def test_a_mixed_bundle_with_a_one_vs_rest_linear_member(fold, tmp_path):
    with torch_threads(1):
        run = train_folds(
            _corpus(fold),
            [fold],
            tmp_path / "mix",
            SETTINGS,
            progress=False,
            ensemble=2,
            mixture=Mixture(poolings=("max", "avg"), linear="char-lr", combine="dev"),
        )
    outcome = run.outcomes[0]
    model = outcome.classifier.model
    assert isinstance(model, MixedEnsemble) and model.multi_label and model.linear.config.multi_label
    linear = outcome.classifier.info["ensemble"]["members"][-1]
    assert linear["kind"] == "char-lr" and linear["dev_macro_f1"] > 0.9
    assert "dev_macro_f1" in outcome.classifier.info["ensemble"]  # the weights chose on dev
    assert outcome.test_metrics["macro_f1"] > 0.9
    loaded = Classifier.load(tmp_path / "mix", device="cpu")
    texts = list(fold.test.texts)
    assert torch.allclose(loaded.logits(texts), outcome.classifier.logits(texts), atol=1e-6)
    (answer,) = loaded.predict(["adore it so much, so glad"])
    assert {name for name, _ in answer.labels} == {"joy", "love"}
    # each member's probabilities are sigmoids: the combination is each label's weighted mean
    batch = loaded.encoder.pad(loaded.encoder.encode_many(texts[:4]), loaded.min_length)
    members = torch.sigmoid(model.member_logits(batch.ids, batch.lengths))
    mean = torch.einsum("m,mbc->bc", model.weights, members)
    assert torch.allclose(torch.sigmoid(loaded.logits_for_batch(batch)), mean, atol=1e-5)
    explanation = explain_text(loaded, "adore it so much, so glad")
    assert {g["label"] for g in explanation["labels"]} == {"joy", "love"}
    assert all(abs(g["residual"]) < 1e-3 for g in explanation["labels"])  # max + avg + linear: exact


def test_single_and_multi_label_bundles_do_not_compose(trained, tmp_path):
    from textcnn.inference.compose import check_compatible

    single = Classifier.load(Path(__file__).resolve().parents[1] / "models" / "single", device="cpu")
    trained.classifier.label_names = list(single.label_names)  # same labels, other question
    try:
        with pytest.raises(BundleError, match="multi-label"):
            check_compatible([single, trained.classifier], ["single", "ml"])
    finally:
        trained.classifier.label_names = list(LABELS)


def _corpus(fold: Fold):
    from textcnn.data.splits import Corpus

    splits = {"train": fold.train, "dev": fold.dev, "test": fold.test}
    return Corpus("emotions", LABELS, splits, "unicode", "<memory>", None, multi_label=True)


# -- the CLI on the three layouts -------------------------------------------------------------


def _write_layouts(folder: Path) -> dict[str, list[str]]:
    """The same rows as JSON Lines with a list, CSV with "|" in one cell, and TSV with 0/1 columns;
    the `textcnn train` data flags of each."""
    folder.mkdir(parents=True, exist_ok=True)
    layouts = {}
    for split, n, seed in (("train", 240, 0), ("dev", 60, 1), ("test", 60, 2)):
        rows = emotion_rows(n, seed)
        with open(folder / f"{split}.jsonl", "w") as handle:
            for text, labels in rows:
                handle.write(json.dumps({"text": text, "labels": list(labels), "id": len(text)}) + "\n")
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "emotions"])
            writer.writerows([text, "|".join(labels)] for text, labels in rows)
        with open(folder / f"{split}.tsv", "w", newline="") as handle:
            handle.write("id\ttext\t" + "\t".join(LABELS) + "\n")
            for i, (text, labels) in enumerate(rows):
                handle.write(f"{i}\t{text}\t" + "\t".join(str(int(x in labels)) for x in LABELS) + "\n")
    for suffix, flags in (
        ("jsonl", ["--label-column", "labels"]),
        ("csv", ["--label-column", "emotions", "--label-separator", "|"]),
        ("tsv", ["--label-columns", ",".join(LABELS)]),
    ):
        files = [f"--{s}" if s != "train" else "--train" for s in ("train", "dev", "test")]
        layouts[suffix] = [
            arg
            for s, flag in zip(("train", "dev", "test"), files, strict=True)
            for arg in (flag, str(folder / f"{s}.{suffix}"))
        ] + flags
    return layouts


def run_cli(*argv: str) -> tuple[int, str, str]:
    from textcnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)  # `train` turns SIGTERM into Ctrl-C: pytest's back after
    try:
        with torch_threads(1), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return code, out.getvalue(), err.getvalue()


def test_each_layout_trains_evaluates_predicts_and_explains(tmp_path):
    layouts = _write_layouts(tmp_path / "data")
    answers = {}
    for suffix, flags in layouts.items():
        out = tmp_path / f"bundle-{suffix}"
        code, stdout, stderr = run_cli(
            "train",
            *flags,
            "--out",
            str(out),
            "--epochs",
            "3",
            "--quiet",
            "--embedding-dim",
            "16",
            "--num-filters",
            "8",
        )
        assert code == 0, stderr
        summary = json.loads(stdout)["folds"][0]
        assert {"macro_f1", "micro_f1", "samples_f1", "jaccard", "exact_match"} <= set(summary["test"])
        assert "thresholds chosen on dev macro-F1" in stderr and "per label, on test" in stderr
        assert all(name in stderr for name in LABELS)  # the per-label table
        card = json.loads((out / "config.json").read_text())
        assert card["metrics"]["per_label"]["joy"]["support"] > 0 and card["decision"]["at_least_one"]
        # evaluate re-reads the files as they were read at training (the bundle records how)
        code, stdout, stderr = run_cli("evaluate", str(out))
        assert code == 0, stderr
        assert "macro-F1" in stdout and "micro-F1" in stdout and "threshold" in stdout
        assert f"{summary['test']['macro_f1']:.1%}".rstrip("%") in stdout
        code, stdout, _ = run_cli("evaluate", str(out), "--json")
        assert json.loads(stdout)["macro_f1"] == summary["test"]["macro_f1"]
        code, stdout, _ = run_cli("predict", str(out), "so mad today", "zzz")
        first, unread = map(json.loads, stdout.splitlines())
        assert first["labels"] and first["label"] == first["labels"][0]["label"] and unread["labels"] is None
        answers[suffix] = first["labels"]
        code, stdout, _ = run_cli("explain", str(out), "so mad today", "--top", "2")
        assert code == 0 and "->" in stdout
    # the three layouts hold the same rows: the same model, the same answer
    assert answers["jsonl"] == answers["csv"] == answers["tsv"]


def test_bad_multilabel_input_is_one_line_and_writes_nothing(tmp_path):
    from test_cli import assert_one_line_error, textcnn

    layouts = _write_layouts(tmp_path / "data")
    bad = tmp_path / "bad.tsv"
    lines = (tmp_path / "data" / "train.tsv").read_text().splitlines()
    lines[7] = lines[7][: lines[7].rindex("\t")] + "\t2"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "never"
    result = textcnn("train", "--train", bad, "--label-columns", ",".join(LABELS), "--out", out)
    assert_one_line_error(result, f"{bad}:8", "'love'", "2")
    assert not out.exists()
    unknown = tmp_path / "dev.jsonl"
    unknown.write_text(json.dumps({"text": "so mad", "labels": ["anger", "rage"]}) + "\n")
    flags = [*layouts["jsonl"][:2], "--dev", str(unknown), "--label-column", "labels"]
    result = textcnn("train", *flags, "--out", out)
    assert_one_line_error(result, f"{unknown}:1", "'rage'")
    empty = tmp_path / "empty.csv"
    empty.write_text("text,emotions\nso mad,anger\nthe day,\n")
    result = textcnn(
        "train", "--train", empty, "--label-column", "emotions", "--label-separator", "|", "--out", out
    )
    assert_one_line_error(result, f"{empty}:3", "no label")
    assert not out.exists()
    result = textcnn("predict", "models/single", "--threshold", "0.3", "a fine film")
    assert result.returncode != 0 and "Traceback" not in result.stderr


# -- real data ---------------------------------------------------------------------------------


def test_goemotions_trains_on_a_small_budget(data_dir, tmp_path):
    """Real GoEmotions, small budget: 8,000 training comments, five epochs of a small CNN. Far from
    the benchmark (benchmarks/multilabel.py), but it must learn: its dev macro-F1 is well above a
    constant answer's, and the easy labels are found."""
    from textcnn.data.corpus import load_corpus
    from textcnn.data.folds import make_folds

    corpus = load_corpus("goemotions", data_dir=data_dir)
    (full,) = make_folds(corpus)
    assert corpus.multi_label and len(corpus.label_names) == 28
    small = Fold(
        "split", None, full.train.subset(range(4000)), full.dev.subset(range(1000)), None, "dev split"
    )
    settings = RunSettings(
        model_options={"embedding_dim": 32, "num_filters": 32},
        train=TrainConfig(epochs=5),
        tokenizer="unicode",
    )
    with torch_threads(2):
        run = train_folds(corpus, [small], tmp_path / "go", settings, progress=False)
    outcome = run.outcomes[0]
    # "neutral" on every comment: macro-F1 = F1(neutral) / 28, about 0.02
    assert outcome.dev_metrics["macro_f1"] > 0.1, outcome.dev_metrics["macro_f1"]
    assert outcome.classifier.decision.at_least_one
    assert outcome.dev_metrics["per_class"]["gratitude"]["f1"] > 0.5  # "thanks" is easy
