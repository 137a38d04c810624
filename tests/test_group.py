"""Many models as one computation: the group computes what each model computes, and a model
trained in a group ends as it would have trained alone."""

import dataclasses

import pytest
import torch

from textcnn.errors import ConfigError
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.group import ModelGroup, select_rows
from textcnn.model.pooling import POOLINGS, SLOT_POOLINGS
from textcnn.train.batches import EncodedSplit
from textcnn.train.config import TrainConfig
from textcnn.train.loop import fit, fit_group

BASE = {"num_classes": 3, "embedding_dim": 12, "num_filters": 5, "filter_widths": (2, 3, 4)}


def random_batch(vocab_size: int, rows: int = 7, width: int = 9, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=generator)
    ids = torch.randint(2, vocab_size, (rows, width), generator=generator)
    ids[torch.arange(width)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize(
    "shape", [{"wide": True}, {"wide": False}, {"convolution": False}, {"variant": "multichannel"}]
)
@pytest.mark.parametrize("conv_mode", ["grouped", "looped"])
def test_a_group_computes_what_each_of_its_models_computes(pooling, shape, conv_mode):
    torch.manual_seed(0)
    local = {"region": 2, "region_slots": 3} if pooling in SLOT_POOLINGS else {}  # 9 tokens fold
    models = [
        TextCNN(ModelConfig(vocab_size=v, pooling=pooling, **BASE, **shape, **local)).eval()
        for v in (20, 31, 25)
    ]
    for model in models:  # each model its own sharpness per map: a mixed-up model order shows
        for log_sharpness in model.pooling_sharpness or ():
            with torch.no_grad():
                log_sharpness.normal_(0.0, 2.0)
    if shape.get("variant") == "multichannel":
        for model in models:
            with torch.no_grad():
                model.static_embedding.weight.normal_()
                model.static_embedding.weight[0].zero_()
    group = ModelGroup.from_models(models, conv_mode).eval()
    batches = [random_batch(m.config.vocab_size, seed=k) for k, m in enumerate(models)]
    ids = torch.stack([b[0] for b in batches])
    lengths = torch.stack([b[1] for b in batches])
    with torch.no_grad():
        together = group(ids, lengths)  # (K, B, C)
        for k, model in enumerate(models):
            torch.testing.assert_close(together[k], model(*batches[k]), rtol=1e-5, atol=1e-5)
            with torch.enable_grad():  # the convolutions of training, not prediction's filter bank
                torch.testing.assert_close(together[k], model(*batches[k]).detach(), rtol=1e-5, atol=1e-5)
                by_convolution = group(ids, lengths).detach()
            torch.testing.assert_close(together, by_convolution, rtol=1e-5, atol=1e-5)
        # Each model convolved at its own batch's width: only padding columns are cut.
        own_widths = [int(b[1].max()) for b in batches]
        torch.testing.assert_close(group(ids, lengths, widths=own_widths), together, rtol=1e-5, atol=1e-5)


def test_a_group_of_one_has_the_state_dict_of_its_model():
    model = TextCNN(ModelConfig(vocab_size=20, **BASE))
    group = ModelGroup.from_models([model])
    assert {k: v.shape for k, v in group.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    assert all(torch.equal(group.state_dict()[k], v) for k, v in model.state_dict().items())


def test_export_and_select_hand_back_each_model():
    torch.manual_seed(1)
    models = [TextCNN(ModelConfig(vocab_size=v, **BASE)) for v in (20, 31, 25)]
    group = ModelGroup.from_models(models)
    smaller = group.select([2, 0])
    for position, k in enumerate([2, 0]):
        copy = TextCNN(models[k].config)
        smaller.export(position, copy)
        assert all(torch.equal(copy.state_dict()[n], v) for n, v in models[k].state_dict().items())
    stacked = torch.arange(12).view(6, 2)  # 3 models x 2 rows
    assert select_rows(stacked, 3, [2, 0]).tolist() == [[8, 9], [10, 11], [0, 1], [2, 3]]


def test_models_of_one_group_must_share_their_shape():
    with pytest.raises(ConfigError, match="differ in pooling"):
        ModelGroup.from_models(
            [
                TextCNN(ModelConfig(vocab_size=20, **BASE)),
                TextCNN(ModelConfig(vocab_size=20, pooling="avg", **BASE)),
            ]
        )


def synthetic_split(vocab_size: int, rows: int, seed: int) -> EncodedSplit:
    """Sentences whose class is set by which third of the vocabulary its words come from."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (rows,), generator=generator)
    lengths = torch.randint(2, 12, (rows,), generator=generator)
    third = (vocab_size - 2) // 3
    ids = 2 + labels[:, None] * third + torch.randint(0, third, (rows, 12), generator=generator)
    ids[torch.arange(12)[None, :] >= lengths[:, None]] = 0
    return EncodedSplit.from_padded(ids, lengths, labels)


@pytest.mark.parametrize(
    ("optimizer", "conv_mode"), [("adadelta", "looped"), ("adam", "looped"), ("adadelta", "grouped")]
)
def test_a_model_trained_in_a_group_ends_as_it_would_alone(optimizer, conv_mode, one_thread, monkeypatch):
    # looped is the CPU's way, grouped the GPU's: both are checked here, on the CPU.
    import textcnn.train.loop as train_module

    original = ModelGroup.from_models
    monkeypatch.setattr(
        train_module.ModelGroup, "from_models", lambda models: original(models, conv_mode=conv_mode)
    )
    # Three models with their own vocabularies, data (610 to 650 sentences: 13 batches each) and
    # seeds. Patience 1 on noisy dev sets makes some stop early: the group shrinks as they leave.
    vocab_sizes, sizes = (32, 41, 35), (610, 640, 650)
    configs = [ModelConfig(vocab_size=v, **BASE) for v in vocab_sizes]
    trains = [synthetic_split(v, n, seed=k) for k, (v, n) in enumerate(zip(vocab_sizes, sizes, strict=True))]
    devs = [synthetic_split(v, 40, seed=10 + k) for k, v in enumerate(vocab_sizes)]
    train_configs = [
        TrainConfig(
            optimizer=optimizer, lr=None if optimizer == "adadelta" else 0.01, epochs=6, patience=1, seed=s
        )
        for s in (3, 4, 5)
    ]

    def fresh(k):
        torch.manual_seed(100 + k)
        return TextCNN(configs[k])

    finished = []
    grouped = [fresh(k) for k in range(3)]
    results = fit_group(
        grouped, trains, devs, train_configs, progress=False, on_finished=lambda k, r: finished.append(k)
    )
    assert sorted(finished) == [0, 1, 2]
    for k in range(3):
        alone = fresh(k)
        result = fit(alone, trains[k], devs[k], train_configs[k], progress=False)
        assert (results[k].best_epoch, results[k].epochs_run) == (result.best_epoch, result.epochs_run)
        assert [h["dev_accuracy"] for h in results[k].history] == [h["dev_accuracy"] for h in result.history]
        # every epoch's training loss, also those after the group shrank
        assert [h["train_loss"] for h in results[k].history] == pytest.approx(
            [h["train_loss"] for h in result.history], rel=1e-5
        )
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(grouped[k].state_dict()[name], value, rtol=1e-4, atol=1e-5)
    assert len({r.epochs_run for r in results}) > 1, "no model stopped before another: shrinking untested"


def test_group_training_settings_may_differ_only_in_the_seed():
    model = TextCNN(ModelConfig(vocab_size=20, **BASE))
    split = synthetic_split(20, 60, seed=0)
    with pytest.raises(ConfigError, match="share their training settings"):
        fit_group(
            [model, TextCNN(model.config)],
            [split, split],
            [split, split],
            [TrainConfig(epochs=1), dataclasses.replace(TrainConfig(epochs=2), seed=1)],
            progress=False,
        )
