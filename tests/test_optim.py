import copy
import math

import pytest
import torch
from torch import nn

from textcnn.errors import ConfigError
from textcnn.train.optim import LazyAdadelta, catch_up_state

VOCAB, DIM, CLASSES, STEPS = 50, 8, 3, 50


pytestmark = pytest.mark.usefixtures("one_thread")


class Tiny(nn.Module):
    """An embedding (sparse or dense gradient) feeding a dense linear layer."""

    def __init__(self, sparse: bool):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, DIM, padding_idx=0, sparse=sparse)
        self.linear = nn.Linear(DIM, CLASSES)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.linear(self.embedding(ids).mean(dim=1))  # (B, CLASSES)


def twins() -> tuple[Tiny, Tiny]:
    torch.manual_seed(0)
    sparse = Tiny(sparse=True)
    dense = Tiny(sparse=False)
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def batches(steps: int = STEPS, seed: int = 0):
    """Each step touches a few rows (and <pad>) from a small window, so most rows sit out many steps."""
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        low = 1 + (step * 7) % 30
        ids = torch.randint(low, low + 6, (4, 5), generator=generator)  # (B, T), rows 1..35
        ids[:, -1] = 0  # padding in every batch
        if step % 5 == 0:
            ids[0, 0] = VOCAB - 1  # one rare row, touched every 5 steps
        yield ids, torch.randint(0, CLASSES, (4,), generator=generator)


def train_step(model: Tiny, optimizer: torch.optim.Optimizer, ids, labels) -> None:
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(ids), labels).backward()
    optimizer.step()


def reference_adadelta(model: Tiny) -> torch.optim.Adadelta:
    return torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-6)


def test_batches_leave_rows_untouched_for_several_steps():
    last_seen, longest_gap = {}, 0
    for step, (ids, _) in enumerate(batches()):
        for row in ids.unique().tolist():
            longest_gap = max(longest_gap, step - last_seen.get(row, step))
            last_seen[row] = step
    assert longest_gap >= 5
    assert len(last_seen) == 37  # <pad>, rows 1..35 and the rare row: 13 rows never touched


def test_lazy_adadelta_matches_dense_adadelta():
    sparse, dense = twins()
    lazy, reference = LazyAdadelta(sparse.parameters()), reference_adadelta(dense)
    for ids, labels in batches():
        train_step(sparse, lazy, ids, labels)
        train_step(dense, reference, ids, labels)
        assert sparse.embedding.weight.grad.is_sparse
        for (name, p), q in zip(sparse.named_parameters(), dense.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)
    moved = (sparse.embedding.weight - twins()[0].embedding.weight).abs().sum(dim=1)
    assert moved[0] == 0  # <pad> never moves
    assert (moved[1:] > 0).sum() >= 20


@pytest.mark.parametrize(
    "rho",
    [
        0.5,
        0.9,
        0.0,
    ],
)
def test_lazy_adadelta_matches_dense_adadelta_for_any_rho(rho):
    sparse, dense = twins()
    lazy = LazyAdadelta(sparse.parameters(), lr=1.0, rho=rho, eps=1e-6)
    reference = torch.optim.Adadelta(dense.parameters(), lr=1.0, rho=rho, eps=1e-6)
    for ids, labels in batches(20):
        train_step(sparse, lazy, ids, labels)
        train_step(dense, reference, ids, labels)
    for p, q in zip(sparse.parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_catch_up_state_matches_dense_accumulators():
    sparse, dense = twins()
    lazy, reference = LazyAdadelta(sparse.parameters()), reference_adadelta(dense)
    for ids, labels in batches():
        train_step(sparse, lazy, ids, labels)
        train_step(dense, reference, ids, labels)
    embedding_state = lazy.state[sparse.embedding.weight]
    stale = embedding_state["last_step"] < embedding_state["step"]
    dense_square_avg = reference.state[dense.embedding.weight]["square_avg"]
    assert stale.any()
    assert not torch.allclose(embedding_state["square_avg"][stale], dense_square_avg[stale], atol=1e-9)
    catch_up_state(lazy)
    for p, q in zip(sparse.parameters(), dense.parameters(), strict=True):
        for key in ("square_avg", "acc_delta"):
            torch.testing.assert_close(lazy.state[p][key], reference.state[q][key], rtol=1e-5, atol=1e-9)
    assert torch.all(embedding_state["last_step"] == embedding_state["step"])


def test_catch_up_state_does_not_change_later_steps():
    a, _ = twins()
    b = copy.deepcopy(a)
    opt_a, opt_b = LazyAdadelta(a.parameters()), LazyAdadelta(b.parameters())
    for step, (ids, labels) in enumerate(batches(20)):
        train_step(a, opt_a, ids, labels)
        train_step(b, opt_b, ids, labels)
        if step % 3 == 0:
            catch_up_state(opt_b)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_dense_gradients_match_adadelta_too():
    torch.manual_seed(1)
    lazy_model = Tiny(sparse=False)
    dense = copy.deepcopy(lazy_model)
    lazy, reference = (
        LazyAdadelta(lazy_model.parameters(), lr=0.5),
        torch.optim.Adadelta(dense.parameters(), lr=0.5, rho=0.95, eps=1e-6),
    )
    for ids, labels in batches(10):
        train_step(lazy_model, lazy, ids, labels)
        train_step(dense, reference, ids, labels)
    for p, q in zip(lazy_model.parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "settings",
    [
        {"lr": 0.0},
        {"lr": -1.0},
        {"lr": math.nan},
        {"rho": 1.0},
        {"rho": -0.1},
        {"rho": math.nan},
        {"eps": 0.0},
        {"eps": -1e-6},
    ],
)
def test_bad_hyperparameters(settings):
    with pytest.raises(ConfigError, match="Adadelta needs"):
        LazyAdadelta(Tiny(sparse=True).parameters(), **settings)


def test_state_dict_round_trip_continues_identically():
    # torch.optim.Optimizer.load_state_dict casts every state tensor but "step" to the parameter's
    # dtype; the int64 "last_step" must come back as int64 or the next sparse step fails.
    sparse, _ = twins()
    optimizer = LazyAdadelta(sparse.parameters())
    stream = list(batches(30))
    for ids, labels in stream[:15]:
        train_step(sparse, optimizer, ids, labels)

    resumed_model = Tiny(sparse=True)
    resumed_model.load_state_dict(copy.deepcopy(sparse.state_dict()))
    resumed = LazyAdadelta(resumed_model.parameters())
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))

    for ids, labels in stream[15:]:
        train_step(sparse, optimizer, ids, labels)
        train_step(resumed_model, resumed, ids, labels)
    for p, q in zip(sparse.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(sparse.parameters(), resumed_model.parameters(), strict=True):
        for key in ("step", "square_avg", "acc_delta", "last_step"):
            assert resumed.state[q][key].dtype == optimizer.state[p][key].dtype, key
            assert torch.equal(optimizer.state[p][key], resumed.state[q][key]), key
