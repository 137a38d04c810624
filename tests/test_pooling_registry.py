"""The pooling registry: every registered pooling is padding-invariant and explained exactly (or says
it is not), and a pooling registered from outside the package is usable from `textcnn train
--pooling`, the study's arms and `explain` with no other edit.

The throw-away pooling here is a lower median over each map's real windows: a selection, so its
explanation is exact by the `winners` rule, as max's is.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from test_attribution import gradient_x_input

from textcnn.cli import main
from textcnn.data.text import PAD, UNK, TextEncoder, Vocabulary
from textcnn.errors import ConfigError
from textcnn.inference.bundle import Classifier
from textcnn.inference.explain import explain_text
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.pooling import (
    POOLINGS,
    SLOT_POOLINGS,
    Pooling,
    get_pooling,
    pool,
    register,
    unregister,
)
from textcnn.model.pooling.attribution import winners
from textcnn.model.pooling.functions import Pooled
from textcnn.study.arms import arm_grammar, arm_options

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
LETTERS = [PAD, UNK, *"abcdefghijklmn"]


def median_pool(x: torch.Tensor, mask: torch.Tensor, config) -> Pooled:
    """The lower median of each map's real windows; ties go to the earlier window (a stable sort)."""
    B, C, _ = x.shape
    values, order = x.masked_fill(~mask[:, None, :], float("inf")).sort(dim=2, stable=True)
    middle = ((mask.sum(dim=1) - 1) // 2).view(B, 1, 1).expand(B, C, 1)  # (B, C, 1)
    return Pooled(values.gather(2, middle)[:, :, 0], order.gather(2, middle))


MEDIAN = Pooling(
    name="median",
    summary="the lower median of each map's real windows (a test's throw-away pooling)",
    forward=median_pool,
    attribution=lambda config, activations, positions: [(None, winners(activations, positions))],
    explained="each pooled value is the activation of its map's median window",
)


@pytest.fixture(autouse=True)
def with_median():
    register(MEDIAN)
    try:
        yield
    finally:
        unregister("median")


NAMES = [*POOLINGS, "median"]  # collected before the fixture registers it


def slots_for(name: str) -> dict:
    return {"region": 2, "region_slots": 3} if name in SLOT_POOLINGS else {}


def random_classifier(name: str, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=len(LETTERS),
        num_classes=3,
        embedding_dim=6,
        filter_widths=(2, 3),
        num_filters=4,
        pooling=name,
        kmax_k=2,
        chunks=2,
        temperature=0.5,
        **slots_for(name),
    )
    model = TextCNN(config)
    with torch.no_grad():
        for conv in model.convs:
            conv.bias.uniform_(0.5, 1.5)  # positive: an unmasked padding window would show up
        for log_sharpness in model.pooling_sharpness or ():  # the learned pooling: away from the mean
            log_sharpness.normal_(0.0, 1.5)
    return Classifier(model.eval(), TextEncoder(Vocabulary(LETTERS), "kim"), ["x", "y", "z"])


def test_the_throw_away_pooling_is_in_every_list():
    assert "median" in POOLINGS and POOLINGS[-1] == "median" and "median" not in SLOT_POOLINGS
    assert arm_options("median") == {"pooling": "median"}
    assert arm_options("median:no-conv") == {"pooling": "median", "convolution": False}
    with pytest.raises(ConfigError, match="median takes no number"):
        arm_options("median:3")
    assert ModelConfig(vocab_size=4, num_classes=2, pooling="median").pooled_size == 3 * 100
    assert "median" not in arm_grammar()  # it takes no number: plain POOLING covers it


def test_a_name_is_registered_once_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        register(MEDIAN)
    with pytest.raises(ConfigError, match=r"unknown pooling 'mode'.*median"):
        get_pooling("mode")
    with pytest.raises(ValueError, match="unknown parameters"):
        Pooling("bad", "", median_pool, MEDIAN.attribution, "", reads=("window",))


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_pooling_ignores_padding(name):
    """Padding columns hold huge values: a pooling that read them would change."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 4, 6, generator=generator)
    mask = torch.arange(6)[None, :] < torch.tensor([6, 1, 4])[:, None]
    padded = torch.cat([x.masked_fill(~mask[:, None, :], 1e6), torch.full((3, 4, 5), 1e6)], dim=2)
    padded_mask = torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], dim=1)
    options = {"k": 2, "chunks": 2, "region": 2, "slots": 3}
    alone, in_padding = pool(name, x, mask, **options), pool(name, padded, padded_mask, **options)
    assert torch.allclose(alone.values, in_padding.values)
    assert (alone.positions is None) == (in_padding.positions is None)
    if alone.positions is not None:
        assert torch.equal(alone.positions, in_padding.positions)


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_model_predicts_the_same_alone_and_in_a_padded_batch(name):
    classifier = random_classifier(name)
    texts = ["a b c d e f g", "h", "i j k", "a b c d e f g h i j k l m n"]
    together = classifier.logits(texts)
    for i, text in enumerate(texts):
        assert torch.allclose(classifier.logits([text])[0], together[i], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_pooling_is_explained_exactly_or_says_it_is_not(name):
    classifier = random_classifier(name)
    for text in ["a b c d e f g", "h", "i j k l m n a b c"]:
        e = explain_text(classifier, text, top=3)
        label = classifier.label_names.index(e["label"])
        assert e["exact"] is get_pooling(name).exact
        assert e["logit"] == pytest.approx(float(classifier.logits([text])[0, label]), abs=1e-6)
        parts = e["output_bias"] + e["filter_bias"] + sum(e["token_parts"])
        if e["exact"]:
            assert e["residual"] == pytest.approx(0.0, abs=1e-4)
            assert e["token_parts"] == pytest.approx(
                gradient_x_input(classifier, text, label).tolist(), abs=1e-4
            )
        assert parts + e["residual"] == pytest.approx(e["logit"], abs=1e-9)
        assert e["attribution"].startswith(f"{name} pooling: {get_pooling(name).explained}")


def run_cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def test_a_registered_pooling_trains_from_the_cli_and_explains(tmp_path):
    bundle = tmp_path / "median"
    code, _ = run_cli(
        "train", "--train", SAMPLES / "tiny.csv", "--out", bundle, "--pooling", "median",
        "--folds", "3", "--fold", "1", "--embedding-dim", "8", "--num-filters", "4", "--epochs", "1", "--quiet",
    )  # fmt: skip
    assert code == 0
    assert json.loads((bundle / "config.json").read_text())["model"]["pooling"] == "median"
    code, printed = run_cli("explain", bundle, "a warm and funny film", "--json")
    assert code == 0
    explanation = json.loads(printed)
    assert explanation["exact"] is True and explanation["attribution"].startswith("median pooling: ")
    assert abs(explanation["residual"]) < 1e-4
    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "median" in help_text.getvalue()


def test_a_registered_pooling_is_a_study_arm(data_dir, tmp_path):
    out = tmp_path / "study"
    code, _ = run_cli(
        "compare", "--datasets", "trec", "--poolings", "max,median", "--seeds", "1", "--quick", "--quiet",
        "--no-baselines", "--data-dir", data_dir, "--out", out,
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [row["pooling"] for row in rows] == ["max", "median"]
    assert "median" in (out / "REPORT.md").read_text()


def test_the_report_says_what_each_arm_is():
    from textcnn.study.arms import arms_legend

    assert arms_legend(["kmax:5", "median:no-conv", "max"]) == [
        f"- `kmax:5`: {get_pooling('kmax').summary} (k = 5)",
        f"- `median:no-conv`: {MEDIAN.summary} (no convolution: pooled over the word vectors)",
        f"- `max`: {get_pooling('max').summary}",
    ]
