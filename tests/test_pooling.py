import math

import pytest
import torch

from textcnn.errors import ConfigError
from textcnn.model.pooling import POOLINGS, output_multiplier, pool, validate_pooling

HUGE = 1e30  # stands in for whatever a padding window computes: it must never reach the output
K, CHUNKS = 3, 3
REGION, SLOTS = 2, 3  # local poolings: length 7 fills three slots of 2 and folds its 7th window into the last


def pooled(name: str, x: torch.Tensor, mask: torch.Tensor):
    return pool(name, x, mask, K, CHUNKS, region=REGION, slots=SLOTS)


pytestmark = pytest.mark.usefixtures("one_thread")


def lengths_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)


def row(*values: float) -> torch.Tensor:
    return torch.tensor([[list(values)]])  # (1, 1, T)


def full(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(x.shape[0], x.shape[2], dtype=torch.bool)


@pytest.fixture
def feature_maps() -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Non-negative maps (as after the ReLU) for sentences of lengths 7, 1, 4, 2; HUGE at padding."""
    lengths = [7, 1, 4, 2]
    x = torch.rand(len(lengths), 3, 7, generator=torch.Generator().manual_seed(0)) * 5  # (B, C, T)
    mask = lengths_mask(lengths, 7)
    return x.masked_fill(~mask[:, None, :], HUGE), mask, lengths


# -- padding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", POOLINGS)
def test_padding_never_matters(name, feature_maps):
    x, mask, lengths = feature_maps
    batched = pooled(name, x, mask)
    assert torch.isfinite(batched.values).all()
    for i, length in enumerate(lengths):
        alone_x = x[i : i + 1, :, :length]  # the same row without its padding columns
        alone = pooled(name, alone_x, full(alone_x))
        torch.testing.assert_close(batched.values[i : i + 1], alone.values, rtol=1e-6, atol=1e-6)
        if alone.positions is not None:
            assert torch.equal(batched.positions[i : i + 1], alone.positions)


@pytest.mark.parametrize("name", POOLINGS)
def test_padding_gets_no_gradient(name, feature_maps):
    x, mask, _ = feature_maps
    x = x.masked_fill(~mask[:, None, :], 3.0).requires_grad_(True)  # finite, so gradients are defined
    pooled(name, x, mask).values.sum().backward()
    assert torch.all(x.grad.masked_select(~mask[:, None, :]) == 0)
    assert x.grad.masked_select(mask[:, None, :]).abs().sum() > 0


SCATTERED_MASK = torch.tensor([[False, True, True, False, True, True, True, False]])  # (1, 8)


@pytest.mark.parametrize(
    "name",
    list(POOLINGS),
)
def test_mask_need_not_be_a_prefix(name):
    # The module's contract is any mask with one True per row; the model happens to pass prefixes.
    x = torch.arange(1.0, 17.0).reshape(1, 2, 8)  # (B, C, T) = (1, 2, 8)
    x = x.masked_fill(~SCATTERED_MASK[:, None, :], HUGE)
    real = x[:, :, SCATTERED_MASK[0]]  # (1, 2, 5): the real columns alone
    torch.testing.assert_close(pooled(name, x, SCATTERED_MASK).values, pooled(name, real, full(real)).values)


# -- exact values per pooling ------------------------------------------------------------------


def test_max_values_and_positions():
    x = torch.tensor(
        [[[1.0, 5.0, 2.0, 9.0], [0.0, 0.0, 3.0, 4.0]], [[7.0, 1.0, 8.0, 2.0], [2.0, 6.0, 6.0, 1.0]]]
    )
    out = pool("max", x, lengths_mask([3, 4], 4))
    assert out.values.tolist() == [[5.0, 3.0], [8.0, 6.0]]
    assert out.positions.tolist() == [[[1], [2]], [[2], [1]]]  # a tie goes to the earliest position


def test_avg_counts_real_positions_only():
    x = torch.tensor([[[1.0, 5.0, 3.0, 100.0, 100.0]], [[2.0, 4.0, 6.0, 8.0, 10.0]]])
    out = pool("avg", x, lengths_mask([3, 5], 5))
    assert out.values.tolist() == [[3.0], [6.0]]
    assert out.positions is None


def test_kmax_keeps_original_order():
    x = row(4.0, 1.0, 7.0, 3.0, 7.0, 2.0)
    out = pool("kmax", x, full(x), k=3)
    assert out.values.tolist() == [[4.0, 7.0, 7.0]]
    assert out.positions.tolist() == [[[0, 2, 4]]]
    shorter = pool("kmax", x, lengths_mask([4], 6), k=3)
    assert shorter.values.tolist() == [[4.0, 7.0, 3.0]]
    assert shorter.positions.tolist() == [[[0, 2, 3]]]


def test_kmax_lays_out_channels_one_after_another():
    x = torch.tensor([[[1.0, 9.0, 8.0], [6.0, 5.0, 7.0]]])  # (1, 2, 3)
    out = pool("kmax", x, full(x), k=2)
    assert out.values.tolist() == [[9.0, 8.0, 6.0, 7.0]]
    assert out.positions.tolist() == [[[1, 2], [0, 2]]]


def test_kmax_with_fewer_real_positions_than_k_fills_zero():
    x = row(5.0, 2.0, HUGE, HUGE, HUGE)
    out = pool("kmax", x, lengths_mask([2], 5), k=4)
    assert out.values.tolist() == [[5.0, 2.0, 0.0, 0.0]]
    assert out.positions.tolist() == [[[0, 1, -1, -1]]]


def test_kmax_with_fewer_columns_than_k():
    x = row(3.0, 8.0)
    out = pool("kmax", x, full(x), k=4)
    assert out.values.tolist() == [[3.0, 8.0, 0.0, 0.0]]
    assert out.positions.tolist() == [[[0, 1, -1, -1]]]


def test_kmax_ties_choose_earliest_positions():
    x = row(2.0, 5.0, 2.0, 2.0, 5.0)
    out = pool("kmax", x, full(x), k=3)
    assert out.values.tolist() == [[2.0, 5.0, 5.0]]
    assert out.positions.tolist() == [[[0, 1, 4]]]
    zeros = torch.zeros(1, 1, 40)  # after a ReLU whole rows tie at 0
    assert pool("kmax", zeros, full(zeros), k=3).positions.tolist() == [[[0, 1, 2]]]


def test_chunk_max_regions_follow_each_rows_length():
    x = torch.tensor([[[1.0, 6.0, 2.0, 5.0, 3.0, 4.0]]]).repeat(4, 1, 1)  # (4, 1, 6)
    out = pool("chunk-max", x, lengths_mask([6, 5, 3, 2], 6), chunks=3)
    # length 6: [0,1] [2,3] [4,5];  5: [0,1] [2,3] [4];  3: [0] [1] [2];  2: [0] [1] and an empty region
    assert out.values.tolist() == [[6.0, 5.0, 4.0], [6.0, 5.0, 3.0], [1.0, 6.0, 2.0], [1.0, 6.0, 0.0]]
    assert out.positions.tolist() == [[[1, 3, 5]], [[1, 3, 4]], [[0, 1, 2]], [[0, 1, -1]]]


def test_chunk_max_with_one_chunk_is_max():
    x = torch.rand(3, 2, 6, generator=torch.Generator().manual_seed(1))
    mask = lengths_mask([6, 2, 4], 6)
    assert torch.equal(pool("chunk-max", x, mask, chunks=1).values, pool("max", x, mask).values)


LOCAL = torch.tensor([[[1.0, 6.0, 2.0, 5.0, 3.0, 4.0, 9.0, HUGE]]]).repeat(4, 1, 1)  # (4, 1, 8)
LOCAL_MASK = lengths_mask([7, 5, 3, 1], 8)


def test_local_max_regions_of_r_windows_from_the_first():
    out = pool("local-max", LOCAL, LOCAL_MASK, region=2, slots=3)
    # length 7: [0,1] [2,3] and [4,5,6] (the 7th window folds into the last slot);
    # 5: [0,1] [2,3] [4];  3: [0,1] [2] and an empty slot;  1: [0] and two empty slots
    assert out.values.tolist() == [[6.0, 5.0, 9.0], [6.0, 5.0, 3.0], [6.0, 2.0, 0.0], [1.0, 0.0, 0.0]]
    assert out.positions.tolist() == [[[1, 3, 6]], [[1, 3, 4]], [[1, 2, -1]], [[0, -1, -1]]]


def test_local_avg_counts_each_regions_real_windows_only():
    out = pool("local-avg", LOCAL, LOCAL_MASK, region=2, slots=3)
    expected = [
        [3.5, 3.5, (3.0 + 4.0 + 9.0) / 3],  # the last slot is the mean of every remaining window
        [3.5, 3.5, 3.0],
        [3.5, 2.0, 0.0],
        [1.0, 0.0, 0.0],
    ]
    torch.testing.assert_close(out.values, torch.tensor(expected))
    assert out.positions is None


def test_local_pooling_of_a_sentence_far_longer_than_the_slots_drops_nothing():
    x = torch.arange(1.0, 13.0).flip(0)[None, None, :]  # 12, 11, ..., 1: the last windows are the smallest
    out = pool("local-max", x, full(x), region=3, slots=2)
    assert out.values.tolist() == [[12.0, 9.0]] and out.positions.tolist() == [[[0, 3]]]
    mean = pool("local-avg", x, full(x), region=3, slots=2)
    assert mean.values.tolist() == [[11.0, 5.0]]  # (9 + 8 + ... + 1) / 9


def test_local_pooling_lays_out_channels_one_after_another_and_one_slot_is_global():
    x = torch.tensor([[[1.0, 9.0, 8.0, 2.0], [6.0, 5.0, 7.0, 0.0]]])  # (1, 2, 4)
    out = pool("local-max", x, full(x), region=2, slots=2)
    assert out.values.tolist() == [[9.0, 8.0, 6.0, 7.0]]
    assert out.positions.tolist() == [[[1, 2], [0, 2]]]
    assert pool("local-avg", x, full(x), region=2, slots=2).values.tolist() == [[5.0, 5.0, 5.5, 3.5]]
    mask = lengths_mask([3], 4)
    assert torch.equal(pool("local-max", x, mask, region=2, slots=1).values, pool("max", x, mask).values)
    torch.testing.assert_close(
        pool("local-avg", x, mask, region=5, slots=1).values, pool("avg", x, mask).values
    )


@pytest.mark.parametrize("name", ["local-max", "local-avg"])
def test_local_pooling_gives_the_same_values_and_gradients_padded_at_the_end_or_the_front(name):
    # Padded at the end only, the real windows are already in front and the compaction is skipped;
    # one padding column in front takes the general path. Both must agree, gradients included.
    torch.manual_seed(0)
    x = torch.randn(4, 5, 9, dtype=torch.float64, requires_grad=True)
    mask = lengths_mask([9, 6, 1, 4], 9)
    front = torch.cat([torch.full((4, 5, 1), HUGE, dtype=torch.float64), x], dim=2)
    front_mask = torch.cat([torch.zeros(4, 1, dtype=torch.bool), mask], dim=1)
    end, shifted = pool(name, x, mask, region=2, slots=3), pool(name, front, front_mask, region=2, slots=3)
    assert torch.equal(end.values, shifted.values)
    if end.positions is not None:
        assert torch.equal(torch.where(end.positions >= 0, end.positions + 1, -1), shifted.positions)
    weights = torch.randn_like(end.values)
    (grad_end,) = torch.autograd.grad((end.values * weights).sum(), x)
    (grad_shifted,) = torch.autograd.grad((shifted.values * weights).sum(), x)
    assert torch.equal(grad_end, grad_shifted)


def test_local_max_with_region_one_keeps_every_window_in_order():
    x = row(4.0, 1.0, 7.0, HUGE)
    out = pool("local-max", x, lengths_mask([3], 4), region=1, slots=4)
    assert out.values.tolist() == [[4.0, 1.0, 7.0, 0.0]] and out.positions.tolist() == [[[0, 1, 2, -1]]]


def test_padded_avg_divides_by_the_padded_length_and_padding_adds_nothing():
    # Slots 5: the training split's longest sentence had 5 windows. Length 3: (1 + 6 + 2) / 5, not / 3;
    # length 7 (longer than any training sentence): its own mean, nothing is dropped.
    out = pool("padded-avg", LOCAL, LOCAL_MASK, slots=5)
    expected = [[30.0 / 7], [17.0 / 5], [9.0 / 5], [1.0 / 5]]
    torch.testing.assert_close(out.values, torch.tensor(expected))
    assert out.positions is None


def test_padded_avg_is_the_average_for_a_sentence_of_the_padded_length_and_shrinks_below_it():
    x = torch.rand(3, 4, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.1
    mask = lengths_mask([6, 3, 2], 6)
    avg, padded = pool("avg", x, mask).values, pool("padded-avg", x, mask, slots=6).values
    torch.testing.assert_close(padded[0], avg[0])
    torch.testing.assert_close(
        padded[1:], avg[1:] * torch.tensor([[3.0 / 6], [2.0 / 6]], dtype=torch.float64)
    )


def test_logsumexp_exact_value():
    x = row(1.0, 2.0, 4.0, HUGE)
    out = pool("logsumexp", x, lengths_mask([3], 4), temperature=2.0)
    expected = 2.0 * math.log((math.exp(0.5) + math.exp(1.0) + math.exp(2.0)) / 3)
    assert out.values.item() == pytest.approx(expected, rel=1e-6)


def test_logsumexp_lies_between_avg_and_max():
    x = torch.rand(4, 3, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 4
    mask = lengths_mask([6, 3, 2, 5], 6)
    avg, top = pool("avg", x, mask).values, pool("max", x, mask).values
    for temperature in (0.1, 1.0, 10.0):
        smooth = pool("logsumexp", x, mask, temperature=temperature).values
        assert torch.all(smooth >= avg) and torch.all(smooth <= top)
        assert torch.all(smooth > avg + 1e-9) and torch.all(smooth < top - 1e-9)  # strictly, values differ


def test_logsumexp_tends_to_max_and_to_avg():
    x = torch.rand(4, 3, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 4
    mask = lengths_mask([6, 3, 2, 5], 6)
    avg, top = pool("avg", x, mask).values, pool("max", x, mask).values
    smooth = {t: pool("logsumexp", x, mask, temperature=t).values for t in (1e-4, 1e-2, 1.0, 1e2, 1e4)}
    cold = [(smooth[t] - top).abs().max().item() for t in (1.0, 1e-2, 1e-4)]
    hot = [(smooth[t] - avg).abs().max().item() for t in (1.0, 1e2, 1e4)]
    assert cold[0] > cold[1] > cold[2] and cold[2] < 1e-3
    assert hot[0] > hot[1] > hot[2] and hot[2] < 1e-3


def test_max_avg_concatenates_max_then_avg():
    x = torch.tensor([[[1.0, 5.0, 3.0, HUGE], [4.0, 0.0, 2.0, HUGE]]])  # (1, 2, 4)
    out = pool("max+avg", x, lengths_mask([3], 4))
    assert out.values.tolist() == [[5.0, 4.0, 3.0, 2.0]]
    assert out.positions.tolist() == [[[1], [0]]]


@pytest.mark.parametrize("name", POOLINGS)
def test_output_width_is_multiplier_times_channels(name):
    x = torch.rand(2, 5, 9)
    mask = lengths_mask([9, 4], 9)
    out = pool(name, x, mask, k=2, chunks=4, region=2, slots=5)
    assert out.values.shape == (2, output_multiplier(name, k=2, chunks=4, slots=5) * 5)


def test_output_multiplier_values():
    assert [output_multiplier(name, k=2, chunks=4, slots=5) for name in POOLINGS] == [
        1,
        1,
        2,
        4,
        1,
        2,
        5,
        5,
        1,
        1,
    ]


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "region", "region_slots", "message"),
    [
        ("local-max", 0, 3, "region >= 1"),
        ("max", -1, 0, "region >= 1"),
        ("local-max", 3, 0, "local-max pooling needs region_slots >= 1"),
        ("local-avg", 3, 0, "local-avg pooling needs region_slots >= 1"),
        ("padded-avg", 3, 0, "padded-avg pooling needs region_slots >= 1 .the number of windows"),
        ("max", 3, -1, "region_slots must be >= 0"),
    ],
)
def test_validate_local_pooling_errors(name, region, region_slots, message):
    with pytest.raises(ConfigError, match=message):
        validate_pooling(name, 3, 3, 1.0, region, region_slots)


def test_pool_refuses_a_local_pooling_without_slots():
    x = torch.rand(1, 1, 3)
    with pytest.raises(ConfigError, match="region_slots >= 1"):
        pool("local-avg", x, full(x))


@pytest.mark.parametrize(
    ("name", "k", "chunks", "temperature", "message"),
    [
        ("median", 3, 3, 1.0, "unknown pooling 'median'"),
        ("kmax", 0, 3, 1.0, "k >= 1"),
        ("chunk-max", 3, 0, 1.0, "chunks >= 1"),
        ("logsumexp", 3, 3, 0.0, "positive finite temperature"),
        ("logsumexp", 3, 3, -1.0, "positive finite temperature"),
        ("logsumexp", 3, 3, math.inf, "positive finite temperature"),
        ("logsumexp", 3, 3, math.nan, "positive finite temperature"),
    ],
)
def test_validate_pooling_errors(name, k, chunks, temperature, message):
    with pytest.raises(ConfigError, match=message):
        validate_pooling(name, k, chunks, temperature)


@pytest.mark.parametrize("name", POOLINGS)
def test_validate_pooling_accepts_every_name(name):
    validate_pooling(name, 1, 1, 0.5, 1, 1)


def test_pool_rejects_unknown_name():
    x = torch.rand(1, 1, 3)
    with pytest.raises(ConfigError, match="unknown pooling"):
        pool("min", x, full(x))
