"""Shared fixtures: where the benchmark data is, and small real training runs reused across tests."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
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


@contextlib.contextmanager
def torch_threads(n: int):
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny tensors: on 2 shared cores OpenMP threads spin against each other (~40x slower)."""
    with torch_threads(1):
        yield


def train_tiny_bundle(out: Path, *flags: str) -> dict:
    """The one training run behind `tiny_bundle`; returns the `train` command's JSON summary.

    `textcnn train` in this process: fold 1 of 3 of the 12 sample sentences (4 held out as its test
    set, which `evaluate` finds again from the bundle), 3 epochs, 16-d embeddings and 8 filters.
    """
    from textcnn.cli import main

    argv = ["train", "--train", str(REPO / "data" / "samples" / "tiny.csv"), "--folds", "3", "--fold", "1"]
    argv += [
        "--out",
        str(out),
        "--epochs",
        "3",
        "--embedding-dim",
        "16",
        "--num-filters",
        "8",
        "--quiet",
        *flags,
    ]
    summary = io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)  # `train` turns SIGTERM into Ctrl-C: pytest's back after
    try:
        with torch_threads(1), contextlib.redirect_stdout(summary):
            code = main(argv)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert code == 0, summary.getvalue()
    return json.loads(summary.getvalue())


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A real 2-class bundle (negative, positive) in a folder named `tiny`, trained once a session.

    Shared by the CLI and service tests: a test may read it, never change it.
    """
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    summary = train_tiny_bundle(out)
    assert summary["folds"][0]["fold"] == "fold-1" and summary["folds"][0]["test"]["n"] == 4
    return out


@pytest.fixture(scope="session")
def tiny_ensemble(tmp_path_factory) -> Path:
    """`tiny_bundle`'s training as an ensemble of 3 (`--ensemble 3`), in a folder named `tiny3`."""
    out = tmp_path_factory.mktemp("ensemble") / "tiny3"
    train_tiny_bundle(out, "--ensemble", "3")
    return out


@pytest.fixture(scope="session")
def tiny_mixed(tmp_path_factory) -> Path:
    """`tiny_bundle`'s training as a mixed ensemble: 3 CNN members (max, avg, max) and an NBSVM
    member, combined by the mean, in a folder named `tinymix`."""
    out = tmp_path_factory.mktemp("mixed") / "tinymix"
    train_tiny_bundle(out, "--ensemble", "3", "--pooling", "max,avg", "--linear", "nbsvm")
    return out
