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
# Every Ray these tests start listens on loopback only. Ray turns 127.0.0.1 into the machine's
# network address, except where it believes clusters unsupported, which this variable makes it
# believe on Linux too. Ray reads it once, when it is imported, and any test module may import it
# first (textcnn.tune imports ray), so it is set before any test module loads; Ray's workers and
# the CLI's drivers inherit it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


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


@contextlib.contextmanager
def ray_on_loopback():
    """Ray in this process, 2 CPUs, on loopback (above); shut down and its settings put back at the
    end. Its workers inherit this process's environment, PYTHONPATH included, so they import this
    checkout's textcnn. `ray.init()` turns token authentication on and sets RAY_AUTH_MODE=token
    here (so the CLI's drivers, its children, send the token); that is undone at the end."""
    ray = pytest.importorskip("ray")
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_mode


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
