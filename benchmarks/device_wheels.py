"""Wheels for `textcnn tune` on the lent GPU machine, which has torch but no Ray and no internet.

The device tool carries at most 64 MiB with the working tree, and Ray's wheel alone is about 79 MB:
32 MB of it is the Java workers' jar, and a few more MB the dashboard's web page and RLlib, none of
which a local Python Tune run loads. This downloads Ray (with the few packages it needs that the
machine lacks) for the machine's Python and rewrites Ray's wheel without those parts, so that the
wheels and this repository travel together.

    python benchmarks/device_wheels.py                      # into .whl/ for the device (CPython 3.12)
    python benchmarks/device_wheels.py --python 3.11 --out /tmp/whl311   # the same set for this machine

`.whl/` must be ignored by git (`echo /.whl/ >> .git/info/exclude`) and named in the run's `carry`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

RAY = "ray==2.60.0"
# What Ray and its Tune need and the device's image lacks (its package list: the device tool's KINDS.md).
MISSING = ["jsonschema", "jsonschema-specifications", "referencing", "rpds-py", "tensorboardx"]
# Parts of Ray's wheel that a local Python Tune run never loads.
DROPPED = ("ray/jars/", "ray/dashboard/client/", "ray/rllib/")
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]


def download(requirements: list[str], python: str, out: Path) -> None:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", python, "--implementation", "cp", *platforms, "-d", str(out), *requirements],
        check=True,
    )  # fmt: skip


def strip_wheel(wheel: Path) -> tuple[int, int]:
    """Rewrite `wheel` without the DROPPED folders (RECORD loses their lines too); (bytes before, after)."""
    before = wheel.stat().st_size
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename.startswith(DROPPED):
                continue
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                kept = [line for line in data.decode().splitlines() if not line.startswith(DROPPED)]
                data = ("\n".join(kept) + "\n").encode()
            target.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED)
    slim.replace(wheel)
    return before, wheel.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="3.12", help="the target machine's Python (default 3.12)")
    parser.add_argument("--out", type=Path, default=Path(".whl"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    download([RAY, *MISSING], args.python, args.out)
    wheel = next(args.out.glob("ray-*.whl"))
    before, after = strip_wheel(wheel)
    total = sum(p.stat().st_size for p in args.out.glob("*.whl"))
    print(f"{wheel.name}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB; all wheels {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
