"""`textcnn tune` with a share of a GPU per trial beside the same tune on CPU cores only.

The issue-26 question for a lent GPU machine: how much faster does the search go when trials share
a GPU? Both arms run the same command on the same data with the same seed, trial count and time
budget; only `--gpus-per-trial` (and the device) differs. Per arm: the search's wall time, trials
ended per minute, epochs trained per minute, the best dev accuracy. The search alone is compared:
each arm then trains its choice once (`--ensemble 1`) only to prove the bundle is written.

    python benchmarks/tune_gpu.py --data-dir ../shared/data --dataset trec --arms cpu,gpu

`--arms cpu` runs here (no GPU); the `gpu` arm stops with one line where torch sees no CUDA.
On the device machine Ray must be carried as wheels: `benchmarks/device_wheels.py` prepares them
(README "GPU figures"). Writes benchmarks/results/tune_gpu.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict:
    """tune_datasets.py's machine, with the GPU torch sees (None here)."""
    import torch
    from tune_datasets import machine as cpu_machine  # benchmarks/ is this script's folder

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return cpu_machine() | {"gpu": gpu}


def tune_command(arm: str, out: Path, args: argparse.Namespace) -> list[str]:
    command = [
        sys.executable, "-m", "textcnn", "tune", "--dataset", args.dataset, "--data-dir", args.data_dir,
        "--out", str(out), "--trials", str(args.trials), "--time-budget", str(args.time_budget),
        "--epochs", str(args.epochs), "--grace", str(args.grace), "--searcher", args.searcher,
        "--seed", "0", "--ensemble", "1", "--cpus-per-trial", str(args.cpus_per_trial), "--quiet",
    ]  # fmt: skip
    if arm == "gpu":
        return [*command, "--gpus-per-trial", str(args.gpus_per_trial), "--device", "cuda"]
    return [*command, "--device", "cpu"]


def run_arm(arm: str, args: argparse.Namespace) -> dict | None:
    out = RESULTS / "tune_gpu" / arm
    shutil.rmtree(out, ignore_errors=True)  # a fresh search each time: a resumed one would time less
    started = time.monotonic()
    done = subprocess.run(tune_command(arm, out, args), capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        print(f"{arm}: {said[0]}", file=sys.stderr)
        return None
    stages = json.loads((out / "ray" / "stages.json").read_text())
    search_seconds = sum(stage["seconds"] for stage in stages.values())
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    ended = [t for t in trials if t["epochs"] > 0]
    epochs = sum(t["epochs"] for t in trials)
    per_epoch = [t["seconds_per_epoch"] for t in ended if t.get("seconds_per_epoch")]
    return {
        "arm": arm,
        "gpus_per_trial": args.gpus_per_trial if arm == "gpu" else 0.0,
        "cpus_per_trial": args.cpus_per_trial,
        "search_seconds": round(search_seconds, 1),
        "trials": len(trials),
        "trials_with_an_epoch": len(ended),
        "trials_per_minute": round(60 * len(ended) / search_seconds, 2),
        "epochs": epochs,
        "epochs_per_minute": round(60 * epochs / search_seconds, 1),
        "median_seconds_per_epoch": round(sorted(per_epoch)[len(per_epoch) // 2], 2) if per_epoch else None,
        "best_dev_accuracy": max(t["best_dev_accuracy"] for t in ended),
        "whole_command_seconds": round(wall, 1),
    }


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| arm | GPU per trial | search s | trials (with an epoch) | trials/min | epochs/min | s/epoch (median) "
        "| best dev |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['gpus_per_trial']:g} | {r['search_seconds']:.0f} | {r['trials']} "
            f"({r['trials_with_an_epoch']}) | {r['trials_per_minute']:.2f} | {r['epochs_per_minute']:.1f} "
            f"| {r['median_seconds_per_epoch']} | {100 * r['best_dev_accuracy']:.1f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTCNN_DATA_DIR", "../shared/data"))
    parser.add_argument("--dataset", default="trec")
    parser.add_argument("--arms", default="cpu,gpu", help="cpu, gpu or both (default)")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--time-budget", type=float, default=120.0, help="seconds of search per arm")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--grace", type=int, default=2)
    parser.add_argument("--searcher", default="random", help="random needs no optuna on the device")
    parser.add_argument("--cpus-per-trial", type=int, default=2)
    parser.add_argument("--gpus-per-trial", type=float, default=0.125)
    parser.add_argument("--json", type=Path, default=RESULTS / "tune_gpu.json")
    args = parser.parse_args()
    arms = args.arms.split(",")
    if unknown := set(arms) - {"cpu", "gpu"}:
        parser.error(f"--arms: unknown arm(s) {', '.join(sorted(unknown))}; use cpu and/or gpu")
    if "gpu" in arms:
        import torch

        if not torch.cuda.is_available():
            print(
                "tune_gpu: the gpu arm needs CUDA, and torch sees none here (--arms cpu runs)",
                file=sys.stderr,
            )
            return 1
    rows = [row for arm in arms if (row := run_arm(arm, args)) is not None]
    settings = {k: v for k, v in vars(args).items() if k not in ("data_dir", "json", "arms")}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "settings": settings, "rows": rows}, indent=2))
    print("\n".join(table(rows)))
    return 0 if len(rows) == len(arms) else 1


if __name__ == "__main__":
    sys.exit(main())
