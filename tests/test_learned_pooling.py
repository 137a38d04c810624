"""The learned pooling: one sharpness per map that moves it between the average and the max.

The registry-wide tests (padding, exact explanation, groups) run over it too; these check what is
its own: the two ends, that training moves the sharpness, that a bundle keeps it, and the study's
record of where the maps sit.
"""

from __future__ import annotations

import pytest
import torch

from textcnn.data.text import PAD, UNK, TextEncoder, Vocabulary
from textcnn.inference.bundle import Classifier
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.group import ModelGroup
from textcnn.model.pooling import get_pooling, pool
from textcnn.model.pooling.functions import SHARPNESS_RATE, avg_pool, learned_pool, max_pool, sharpness
from textcnn.study.learned import BINS, learned_record, learned_section, map_positions
from textcnn.train.config import TrainConfig
from textcnn.train.runs import RunSettings, texts_fold, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")
LETTERS = [PAD, UNK, *"abcdefgh"]


def maps_and_mask(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 4, 7, generator=generator) * 2
    mask = torch.arange(7)[None, :] < torch.tensor([7, 2, 5])[:, None]
    return x, mask


def test_it_is_the_average_at_small_sharpness_and_the_max_at_large():
    x, mask = maps_and_mask()
    at_zero = learned_pool(x, mask, torch.full((4,), -10.0))  # β = e^-50
    torch.testing.assert_close(at_zero.values, avg_pool(x, mask).values)
    sharp = learned_pool(x, mask, torch.full((4,), 10.0 / SHARPNESS_RATE))  # β = e^10
    torch.testing.assert_close(sharp.values, max_pool(x, mask).values, atol=1e-4, rtol=0)
    middle = learned_pool(x, mask, torch.zeros(4)).values  # β = 1: strictly between the two
    assert bool(
        (middle >= avg_pool(x, mask).values - 1e-6).all() & (middle <= max_pool(x, mask).values + 1e-6).all()
    )


def test_each_map_has_its_own_sharpness_and_padding_never_counts():
    x, mask = maps_and_mask(1)
    theta = torch.tensor([-5.0, 0.0, 0.3, 2.0])
    alone = pool("learned", x, mask, log_sharpness=theta).values
    padded = torch.cat([x.masked_fill(~mask[:, None, :], 1e6), torch.full((3, 4, 4), 1e6)], dim=2)
    padded_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(pool("learned", padded, padded_mask, log_sharpness=theta).values, alone)
    for f in range(4):  # map f pooled alone with its own sharpness gives column f
        column = learned_pool(x[:, f : f + 1], mask, theta[f : f + 1]).values[:, 0]
        torch.testing.assert_close(alone[:, f], column)


def test_a_group_of_models_pools_each_with_its_own_maps_sharpness():
    x, mask = maps_and_mask(2)
    thetas = torch.tensor([[0.0, 1.0, -1.0, 0.5], [2.0, -2.0, 0.0, 0.1]])
    together = learned_pool(torch.cat([x, x]), torch.cat([mask, mask]), thetas.reshape(-1)).values
    for k in range(2):
        torch.testing.assert_close(together[3 * k : 3 * (k + 1)], learned_pool(x, mask, thetas[k]).values)


def test_the_sharpness_is_a_parameter_of_each_width_that_training_moves(tmp_path):
    config = ModelConfig(vocab_size=10, num_classes=2, embedding_dim=8, num_filters=4, pooling="learned")
    model = TextCNN(config)
    assert [tuple(p.shape) for p in model.pooling_sharpness] == [(4,), (4,), (4,)]
    assert ModelGroup(config, 3).pooling_sharpness[0].shape == (12,)
    assert TextCNN(ModelConfig(vocab_size=10, num_classes=2)).pooling_sharpness is None
    assert get_pooling("learned").exact and get_pooling("learned").learned

    texts = ["a b c", "d e f", "a a b", "e e f", "b c a", "f d e"] * 6
    labels = ["x", "y", "x", "y", "x", "y"] * 6
    fold = texts_fold((texts, labels), (texts[:6], labels[:6]))
    settings = RunSettings(
        {"pooling": "learned", "embedding_dim": 8, "num_filters": 4, "filter_widths": (2,)},
        TrainConfig(epochs=5, patience=None, batch_size=6),
    )
    outcome = train_classifier(fold, ["x", "y"], settings, progress=False)
    theta = outcome.classifier.model.pooling_sharpness[0].detach()
    assert theta.abs().max() > 1e-3  # trained: not the zeros it started from
    outcome.classifier.save(tmp_path / "bundle")
    loaded = Classifier.load(tmp_path / "bundle")
    torch.testing.assert_close(loaded.model.pooling_sharpness[0].detach(), theta)
    torch.testing.assert_close(loaded.logits(texts[:6]), outcome.classifier.logits(texts[:6]))


def test_the_study_records_where_the_maps_sit_between_average_and_max(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=len(LETTERS),
        num_classes=2,
        embedding_dim=6,
        filter_widths=(2,),
        num_filters=3,
        pooling="learned",
    )
    model = TextCNN(config).eval()
    with torch.no_grad():
        model.convs[0].bias.fill_(0.5)  # every window fires: each map has a max above its mean
        model.pooling_sharpness[0].copy_(torch.tensor([-10.0, 0.0, 10.0]))  # avg, between, max
    classifier = Classifier(model, TextEncoder(Vocabulary(LETTERS), "kim"), ["x", "y"])
    texts = ["a b c d e", "f g h a", "b d f h a c"]
    positions, beta = map_positions(classifier, texts)
    assert positions[0] == pytest.approx(0.0, abs=1e-4) and positions[2] == pytest.approx(1.0, abs=1e-3)
    assert 0.0 < positions[1] < 1.0
    torch.testing.assert_close(beta, sharpness(model.pooling_sharpness[0].detach()))
    record = learned_record(classifier, texts)
    assert sum(record["position_histogram"]) == 3 and len(record["position_histogram"]) == BINS
    expected = [0] * BINS
    for position in positions.tolist():
        expected[min(int(position * BINS), BINS - 1)] += 1
    assert record["position_histogram"] == expected and expected[0] >= 1 and expected[-1] == 1
    run = {"dataset": "toy", "fold": None, "seed": 0, "test_accuracy": 0.5}
    rows = [run | {"pooling": "learned", "learned_maps": record}, run | {"pooling": "max"}]
    section = learned_section(rows, tmp_path)
    assert (tmp_path / "plots" / "learned-positions.png").stat().st_size > 1000
    assert any(line.startswith("| toy | 1 | 3 |") for line in section)
    assert learned_section(rows[1:], tmp_path) == []
    with pytest.raises(ValueError, match="no learned pooling"):
        map_positions(
            Classifier(
                TextCNN(ModelConfig(vocab_size=len(LETTERS), num_classes=2)), classifier.encoder, ["x", "y"]
            ),
            texts,
        )


def test_the_report_says_whether_the_learned_pooling_beats_both_ends(tmp_path):
    record = {"position_histogram": [1] + [0] * (BINS - 1), "position_median": 0.0, "position_mean": 0.0,
              "maps": 1, "sharpness_median": 1.0, "sharpness_range": [1.0, 1.0]}  # fmt: skip
    rows = []
    for seed, (learned, top, mean) in enumerate([(0.82, 0.80, 0.79), (0.83, 0.80, 0.81), (0.81, 0.78, 0.79)]):
        for arm, accuracy in (("learned", learned), ("max", top), ("avg", mean)):
            extra = {"learned_maps": record} if arm == "learned" else {}
            rows.append(
                {
                    "dataset": "toy",
                    "fold": None,
                    "seed": seed,
                    "pooling": arm,
                    "test_accuracy": accuracy,
                    **extra,
                }
            )
    section = "\n".join(learned_section(rows, tmp_path))
    assert "| toy | 3 | 82.00 | 79.33 | 79.67 | +2.67" in section and "| beats both |" in section
    rows[0]["test_accuracy"] = 0.70  # seed 0's learned run now loses to both
    assert "| beats both |" not in "\n".join(learned_section(rows, tmp_path))
