"""The machine-facing helpers: atomic writes (bundles, checkpoints, study files) and devices."""

import stat

import pytest

from textcnn import runtime as runtime_module
from textcnn.errors import TextCNNError
from textcnn.runtime import atomic_write_bytes, resolve_device


def test_atomic_write_writes_and_replaces(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temporary files left


def test_atomic_write_keeps_old_content_when_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(runtime_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_atomic_write_cleans_up_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(runtime_module.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_mode_follows_umask(tmp_path, monkeypatch, umask, mode):
    # mkstemp creates 0600 files; the bundle must be readable by a service user like any new file.
    # The umask is read once at import (reading it means setting it), so the test sets that copy.
    monkeypatch.setattr(runtime_module, "_UMASK", umask)
    atomic_write_bytes(tmp_path / "file.bin", b"x")
    assert stat.S_IMODE((tmp_path / "file.bin").stat().st_mode) == mode


def test_resolve_device_names_what_is_wrong():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(TextCNNError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
