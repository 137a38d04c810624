import json
import math

import pytest
import torch
import torch.nn.functional as F

from textcnn.data.text import PAD_ID, TextEncoder
from textcnn.errors import ConfigError
from textcnn.model import cnn as model_module
from textcnn.model.cnn import VARIANTS, ModelConfig, TextCNN, window_mask
from textcnn.model.pooling import POOLINGS, SLOT_POOLINGS

VOCAB, DIM, FILTERS, CLASSES = 50, 8, 4, 3


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**overrides) -> ModelConfig:
    settings = {
        "vocab_size": VOCAB,
        "num_classes": CLASSES,
        "embedding_dim": DIM,
        "num_filters": FILTERS,
        "filter_widths": (3, 4, 5),
    }
    if overrides.get("pooling") in SLOT_POOLINGS:
        # regions of 2 windows, 3 slots: the 9-token test sentences (13 wide windows) fold into the last
        settings |= {"region": 2, "region_slots": 3}
    return ModelConfig(**(settings | overrides))


def tiny_model(seed: int = 0, **overrides) -> TextCNN:
    torch.manual_seed(seed)
    model = TextCNN(tiny_config(**overrides))
    if model.config.pretrained:
        model.load_pretrained(torch.randn(VOCAB, DIM, generator=torch.Generator().manual_seed(seed + 1)))
    with torch.no_grad():
        for conv in model.convs:  # positive biases: an unmasked padding window would show up
            conv.bias.uniform_(0.5, 1.5)
    return model.eval()


def sentences(lengths, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(2, VOCAB, (n,), generator=generator).tolist() for n in lengths]


def padded(seqs, min_length: int):
    batch = TextEncoder.pad(seqs, min_length)
    return batch.ids, batch.lengths


# -- shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("convolution", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_output_shape(variant, pooling, convolution):
    model = tiny_model(variant=variant, pooling=pooling, kmax_k=2, chunks=2, convolution=convolution)
    ids, lengths = padded(sentences([7, 1, 5]), 5)
    with torch.no_grad():
        logits = model(ids, lengths)
        pooled = torch.cat([p.values for p in model.features(ids, lengths)], dim=1)
    assert logits.shape == (3, CLASSES)
    assert pooled.shape == (3, model.config.pooled_size)
    assert torch.isfinite(logits).all()


def test_pooled_size():
    assert tiny_config(pooling="max").pooled_size == 3 * FILTERS
    assert tiny_config(pooling="kmax", kmax_k=2).pooled_size == 3 * FILTERS * 2
    assert tiny_config(pooling="chunk-max", chunks=5).pooled_size == 3 * FILTERS * 5
    assert tiny_config(pooling="max+avg").pooled_size == 3 * FILTERS * 2
    assert tiny_config(pooling="max", convolution=False).pooled_size == DIM  # one value per vector dimension
    assert tiny_config(pooling="kmax", kmax_k=2, convolution=False).pooled_size == DIM * 2
    assert len(TextCNN(tiny_config(convolution=False)).convs) == 0
    assert tiny_config(pooling="local-max", region_slots=7).pooled_size == 3 * FILTERS * 7
    assert tiny_config(pooling="local-avg", region_slots=4, convolution=False).pooled_size == DIM * 4


@pytest.mark.parametrize(
    ("overrides", "longest", "windows", "slots"),
    [
        ({"wide": True}, 10, 14, 5),  # 10 + 5 - 1 windows at the widest filter, regions of 3
        ({"wide": False}, 10, 6, 2),  # 10 - 5 + 1
        ({"wide": False}, 2, 1, 1),  # shorter than the widest filter: its one window
        ({"wide": True, "region": 7}, 10, 14, 2),
        ({"wide": True, "region": 1}, 1, 5, 5),
        ({"convolution": False}, 10, 10, 4),  # a window is one token
    ],
)
def test_region_slots_cover_the_longest_sentences_windows(overrides, longest, windows, slots):
    config = tiny_config(**overrides)
    assert config.windows(longest) == windows
    assert config.region_slots_for(longest) == slots


# -- padding never changes the answer ----------------------------------------------------------

LENGTHS = [1, 2, 3, 4, 5, 9]  # 1 and 2 are shorter than every filter width (3, 4, 5)


@pytest.mark.parametrize("layout", ["narrow", "wide", "no-convolution"])
@pytest.mark.parametrize("variant", ["rand", "multichannel"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_logits_alone_equal_logits_in_a_long_padded_batch(variant, pooling, layout):
    model = tiny_model(
        variant=variant, pooling=pooling, wide=layout == "wide", convolution=layout != "no-convolution"
    )
    seqs = sentences(LENGTHS)
    with torch.no_grad():
        batched = model(*padded(seqs, 40))
        for i, seq in enumerate(seqs):
            alone = model(*padded([seq], 5))
            torch.testing.assert_close(batched[i : i + 1], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("length", [1, 2, 4])
def test_inputs_narrower_than_the_widest_filter(pooling, length, wide):
    model = tiny_model(pooling=pooling, wide=wide)
    seq = sentences([length])[0]
    with torch.no_grad():
        narrow = model(torch.tensor([seq]), torch.tensor([length]))  # (1, length): no padding at all
        wide = model(*padded([seq], 30))
    torch.testing.assert_close(narrow, wide, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_would_show_without_the_mask(monkeypatch, pooling):
    # The equalities above can fail: with every window counted, padding changes the logits.
    model = tiny_model(pooling=pooling, wide=False)  # wide: the mask also hides the edge windows
    seqs = sentences(LENGTHS)
    with torch.no_grad():
        masked = model(*padded(seqs, 40))
        monkeypatch.setattr(
            model_module, "window_mask", lambda lengths, w, n: torch.ones(len(lengths), n) > 0
        )
        unmasked = model(*padded(seqs, 40))
    assert not torch.allclose(masked, unmasked, atol=1e-4)


def test_wide_convolution_sees_every_window_that_overlaps_the_sentence():
    """Width w over L words: L + w - 1 windows, the first and last holding one word and w - 1 pads."""
    model = tiny_model(pooling="avg", wide=True, filter_widths=(2, 3))
    with torch.no_grad():
        for conv in model.convs:  # each map sums its window: the mean over windows is then checkable
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        model.embedding.weight.copy_(torch.arange(VOCAB, dtype=torch.float)[:, None].expand(VOCAB, DIM))
        model.embedding.weight[PAD_ID].zero_()
        seq = [5, 6, 7, 8]
        pooled = [p.values for p in model.features(*padded([seq], 9))]
    for width, values in zip((2, 3), pooled, strict=True):
        windows = len(seq) + width - 1
        # every word lies in w windows, each summing its D embedding values
        expected = width * DIM * sum(seq) / windows
        torch.testing.assert_close(values, torch.full_like(values, expected))


def test_wide_and_narrow_differ_and_wide_is_saved_in_the_config():
    narrow, wide = tiny_model(seed=3, wide=False), tiny_model(seed=3)
    ids, lengths = padded(sentences([6, 2]), 5)
    with torch.no_grad():
        assert not torch.allclose(narrow(ids, lengths), wide(ids, lengths))
    assert ModelConfig.from_json(wide.config.to_json()).wide is True
    with pytest.raises(ConfigError, match="wide must be true or false"):
        tiny_config(wide="yes")


def test_window_mask_exact():
    mask = window_mask(torch.tensor([1, 2, 3, 5, 7]), width=3, num_windows=5)
    assert mask.tolist() == [
        [True, False, False, False, False],  # shorter than the filter: its one window
        [True, False, False, False, False],
        [True, False, False, False, False],
        [True, True, True, False, False],
        [True, True, True, True, True],
    ]
    assert window_mask(torch.tensor([4]), width=1, num_windows=6).tolist() == [[True] * 4 + [False] * 2]


# -- variants ----------------------------------------------------------------------------------


def test_rand_initialises_uniformly_with_zero_pad_row():
    model = tiny_model(variant="rand")
    weight = model.embedding.weight
    assert torch.all(weight[PAD_ID] == 0)
    assert weight.abs().max() <= 0.25
    assert weight[1:].abs().max() > 0.2  # spread over U[-0.25, 0.25], not a narrower default
    assert model.static_embedding is None


@pytest.mark.parametrize("variant", ["rand", "non-static"])
def test_trainable_variants_train_the_embedding(variant):
    model = tiny_model(variant=variant)
    assert model.embedding.weight.requires_grad
    assert model.static_embedding is None


def test_static_freezes_the_embedding():
    model = tiny_model(variant="static").train()
    assert not model.embedding.weight.requires_grad
    ids, lengths = padded(sentences([6, 3]), 5)
    model(ids, lengths).sum().backward()
    assert model.embedding.weight.grad is None
    assert all(conv.weight.grad is not None for conv in model.convs)


def test_multichannel_has_one_trainable_and_one_frozen_table():
    model = tiny_model(variant="multichannel").train()
    assert model.embedding.weight.requires_grad
    assert not model.static_embedding.weight.requires_grad
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "embedding.weight" in trainable
    assert "static_embedding.weight" not in trainable
    ids, lengths = padded(sentences([6, 3]), 5)
    model(ids, lengths).sum().backward()
    assert model.embedding.weight.grad is not None
    assert model.static_embedding.weight.grad is None


@pytest.mark.parametrize("variant", ["static", "non-static", "multichannel"])
def test_load_pretrained_fills_every_table_with_zero_pad_row(variant):
    model = TextCNN(tiny_config(variant=variant))
    vectors = torch.randn(VOCAB, DIM) + 1.0  # row 0 nonzero: it must be zeroed
    model.load_pretrained(vectors)
    tables = [model.embedding] + ([model.static_embedding] if variant == "multichannel" else [])
    for table in tables:
        assert torch.equal(table.weight[1:], vectors[1:])
        assert torch.all(table.weight[PAD_ID] == 0)
    assert torch.all(vectors[0] != 0)  # the caller's table is left alone


def test_load_pretrained_rejects_wrong_shape():
    model = TextCNN(tiny_config(variant="static"))
    with pytest.raises(ConfigError, match=r"\(50, 7\)"):
        model.load_pretrained(torch.zeros(VOCAB, DIM - 1))


def test_multichannel_is_a_filter_over_each_channel_summed():
    model = tiny_model(variant="multichannel", wide=False)  # the narrow windows are spelled out below
    with torch.no_grad():
        model.embedding.weight.add_(torch.randn(VOCAB, DIM) * 0.5)  # the tuned channel has moved
        model.embedding.weight[PAD_ID].zero_()
    seqs = sentences([7, 2, 5, 6])
    ids, lengths = padded(seqs, 5)
    with torch.no_grad():
        tuned = model.embedding(ids).transpose(1, 2)  # (B, D, T)
        static = model.static_embedding(ids).transpose(1, 2)  # (B, D, T)
        assert not torch.allclose(tuned, static)
        pooled = []
        for conv in model.convs:
            # Kim: each filter applied to both channels, the results added (one bias, not two).
            pre = F.conv1d(tuned, conv.weight, conv.bias) + F.conv1d(static, conv.weight, conv.bias)
            pre = pre - conv.bias[None, :, None]  # (B, F, T - w + 1)
            torch.testing.assert_close(pre, conv(model.embed(ids)), rtol=1e-5, atol=1e-5)
            maps = F.relu(pre)
            width = conv.weight.shape[2]
            pooled.append(
                torch.stack(
                    [maps[b, :, : max(n - width + 1, 1)].max(dim=1).values for b, n in enumerate(lengths)]
                )
            )
        expected = model.classifier(torch.cat(pooled, dim=1))
        torch.testing.assert_close(model(ids, lengths), expected, rtol=1e-5, atol=1e-5)


# -- dropout -----------------------------------------------------------------------------------


def test_dropout_is_the_callers_mask_or_drawn_in_training_mode():
    model = tiny_model(dropout=0.25)
    ids, lengths = padded(sentences([7, 1, 5, 9]), 5)
    with torch.no_grad():
        pooled = torch.cat([p.values for p in model.features(ids, lengths)], dim=1)
        keep = torch.rand(pooled.shape, generator=torch.Generator().manual_seed(0)) >= 0.25
        expected = model.classifier(pooled * keep / 0.75)  # inverted dropout, as F.dropout scales
        torch.testing.assert_close(model(ids, lengths, keep), expected)
        evaluated = model(ids, lengths)  # eval mode, no mask: no dropout
        torch.testing.assert_close(evaluated, model.classifier(pooled))
        model.train()  # a plain PyTorch loop: the model draws its own masks
        assert not torch.allclose(model(ids, lengths), evaluated)
        model.eval()


# -- max-norm ----------------------------------------------------------------------------------


def test_apply_max_norm_rescales_only_long_rows():
    model = tiny_model(num_classes=4, max_norm=3.0)
    size = model.config.pooled_size
    rows = torch.zeros(4, size)
    rows[0, :2] = torch.tensor([6.0, 8.0])  # norm 10 -> rescaled to 3
    rows[1, 0] = 3.0  # norm exactly s: left alone
    rows[2, :2] = torch.tensor([0.6, 0.8])  # norm 1: left alone
    rows[3] = torch.randn(size, generator=torch.Generator().manual_seed(4))
    rows[3] *= 5.0 / rows[3].norm()  # norm 5 -> rescaled to 3
    bias = model.classifier.bias.detach().clone()
    with torch.no_grad():
        model.classifier.weight.copy_(rows)
    model.apply_max_norm()
    weight = model.classifier.weight.detach()
    torch.testing.assert_close(weight[0, :2], torch.tensor([1.8, 2.4]))
    assert torch.all(weight[0, 2:] == 0)
    assert torch.equal(weight[1:3], rows[1:3])
    torch.testing.assert_close(weight[3], rows[3] * 0.6)
    torch.testing.assert_close(weight.norm(dim=1), torch.tensor([3.0, 3.0, 1.0, 3.0]))
    assert torch.equal(model.classifier.bias.detach(), bias)


def test_apply_max_norm_none_is_a_no_op():
    model = tiny_model(max_norm=None)
    with torch.no_grad():
        model.classifier.weight.mul_(100.0)
    before = model.classifier.weight.detach().clone()
    model.apply_max_norm()
    assert torch.equal(model.classifier.weight.detach(), before)


# -- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"variant": "dynamic"}, "unknown variant 'dynamic'"),
        ({"pooling": "min"}, "unknown pooling 'min'"),
        ({"filter_widths": ()}, "filter_widths"),
        ({"filter_widths": (3, 0)}, "filter_widths"),
        ({"filter_widths": (-1,)}, "filter_widths"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": math.nan}, "dropout"),
        ({"vocab_size": 1}, "vocab_size"),
        ({"num_classes": 1}, "num_classes"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"num_filters": 0}, "num_filters"),
        ({"max_norm": 0.0}, "max_norm"),
        ({"max_norm": -3.0}, "max_norm"),
        ({"max_norm": math.nan}, "max_norm"),
        ({"kmax_k": 0}, "k >= 1"),
        ({"chunks": 0}, "chunks"),
        ({"temperature": 0.0}, "temperature"),
        ({"region": 0}, "region >= 1"),
        ({"pooling": "local-max", "region": 0}, "region >= 1"),
        ({"pooling": "local-max", "region_slots": 0}, "local-max pooling needs region_slots >= 1"),
        ({"pooling": "local-avg", "region_slots": 0}, "local-avg pooling needs region_slots >= 1"),
        ({"region_slots": -1}, "region_slots must be >= 0"),
        ({"region": 2.5}, "region must be an integer"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**overrides)


@pytest.mark.parametrize("widths", [(2.5, 4), "345", (True, 3)])
def test_config_rejects_non_integer_filter_widths(widths):
    with pytest.raises(ConfigError, match="filter_widths"):
        tiny_config(filter_widths=widths)


def test_config_rejects_non_integer_sizes():
    with pytest.raises(ConfigError, match="vocab_size"):
        tiny_config(vocab_size=5.5)


def test_config_json_round_trip():
    config = tiny_config(
        variant="multichannel",
        filter_widths=[2, 3],
        pooling="kmax",
        kmax_k=2,
        dropout=0.25,
        max_norm=None,
        extra={"note": "tiny"},
    )
    assert config.filter_widths == (2, 3)
    data = json.loads(json.dumps(config.to_json()))
    assert data["filter_widths"] == [2, 3]
    loaded = ModelConfig.from_json(data)
    assert loaded == config
    assert loaded.filter_widths == (2, 3)
    assert loaded.extra == {"note": "tiny"}
    assert loaded.max_norm is None


def test_a_local_pooling_config_round_trips_and_old_configs_get_the_defaults():
    config = tiny_config(pooling="local-avg", region=4, region_slots=6)
    assert ModelConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    old = {k: v for k, v in tiny_config().to_json().items() if k not in ("region", "region_slots")}
    assert (ModelConfig.from_json(old).region, ModelConfig.from_json(old).region_slots) == (3, 0)


def test_config_from_json_rejects_unknown_keys():
    data = tiny_config().to_json() | {"num_layers": 2, "activation": "tanh"}
    with pytest.raises(ConfigError, match="unknown model config keys: activation, num_layers"):
        ModelConfig.from_json(data)


# -- the filter bank: prediction's one product equals the per-width convolutions ---------------


@pytest.mark.parametrize("variant", ["rand", "multichannel"])
@pytest.mark.parametrize("filter_widths", [(3, 4, 5), (2, 5), (4,)])
@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_the_filter_bank_gives_what_the_convolutions_give(pooling, wide, filter_widths, variant):
    model = tiny_model(pooling=pooling, wide=wide, filter_widths=filter_widths, variant=variant, kmax_k=2)
    ids, lengths = padded(sentences([9, 1, 4, 6]), 5)  # a 1-token text: shorter than every filter
    ids = torch.cat([ids, torch.zeros(4, 3, dtype=ids.dtype)], dim=1)  # and padding beyond the longest
    with torch.enable_grad():  # training's path: one convolution per width
        by_convolution = model.pooled(ids, lengths).detach()
    with torch.no_grad():  # prediction's: the filter bank
        by_bank = model.pooled(ids, lengths)
        assert model.__dict__["_filter_bank"][1][0].shape == (
            1,
            max(filter_widths) * DIM,
            len(filter_widths) * FILTERS,
        )
    torch.testing.assert_close(by_bank, by_convolution, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(model(ids[:1, :9], lengths[:1]), model(ids[:1], lengths[:1]))


def test_the_filter_bank_follows_the_weights():
    model = tiny_model()
    ids, lengths = padded(sentences([6]), 5)
    with torch.no_grad():
        before = model(ids, lengths)
        model.convs[0].weight.mul_(2.0)  # an in-place change, as an optimizer step makes
        after = model(ids, lengths)
        with torch.enable_grad():
            expected = model(ids, lengths).detach()
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
