"""Shared fixtures: where the benchmark data is, and small real training runs reused across tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def benchmark_data_dir() -> Path | None:
    """$TEXTCNN_DATA_DIR if set, else ../shared/data beside the repository; None when absent."""
    env = os.environ.get("TEXTCNN_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = benchmark_data_dir()
    if path is None:
        pytest.skip("benchmark data not found (set TEXTCNN_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def glove_file() -> Path:
    path = REPO.parent / "shared" / "vectors" / "glove.6B.50d.trimmed.txt"
    if not path.is_file():
        pytest.skip("shared GloVe file not found")
    return path


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny tensors: on 2 shared cores OpenMP threads spin against each other (~40x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
