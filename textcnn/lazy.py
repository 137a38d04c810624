"""Lazy public names (PEP 562) for the root package and its parts.

A package lists its public names and the modules that define them; a name is imported on first
use. So `import textcnn` or `import textcnn.data` (and `textcnn --help`) does not pay for torch,
and each part still shows its public face in one place.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str], renamed: Mapping[str, str] = {}) -> Callable:
    """A module `__getattr__` for `package`: `exports[name]` is the module defining `name`
    (under `renamed[name]` there, if it is exported under another name)."""

    renamed = renamed or {}

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), renamed.get(name, name))
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
