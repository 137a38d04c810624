"""`textcnn tune` per dataset beside Kim's defaults, Zhang & Wallace's procedure and the linear baselines.

For each dataset this runs `textcnn tune` (its budget below, CNN-non-static on GloVe 6B 50-d as in
the study, a 5-seed ensemble of the choice on the full test protocol: the test split, or every fold
of MR and Subj), and, with `--zw`, the same command restricted to Zhang & Wallace's procedure
(1-max, 100 maps, dropout 0.5, Kim's rate: the line search of single widths, then combinations
around the best). Kim's defaults (widths 3,4,5 x 100, max, dropout 0.5) as a 5-ensemble and the two
linear baselines come from `benchmarks/results/mixed_ensembles.json`, trained on the same folds with
the same seeds. Each tune is resumable (its OUT under benchmarks/results/tune/), so an interrupted
benchmark continues where it stopped.

    python benchmarks/tune_datasets.py --data-dir ../shared/data --datasets trec,sst2 --trials 16 --time-budget 900

Writes benchmarks/results/tune_datasets.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CV = {"mr", "subj"}
ZW_SPACE = {"pooling": ["max"], "maps": [100], "dropout": [0.5], "lr": [1.0], "variant": ["non-static"]}


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def run_tune(dataset: str, arm: str, args: argparse.Namespace) -> dict | None:
    one_fold = dataset in CV and args.fold is not None
    out = RESULTS / "tune" / (f"{dataset}-fold{args.fold}-{arm}" if one_fold else f"{dataset}-{arm}")
    command = [
        sys.executable, "-m", "textcnn", "tune", "--dataset", dataset, "--data-dir", args.data_dir,
        "--vectors", "glove-6b-50d", "--out", str(out), "--trials", str(args.trials),
        "--time-budget", str(args.time_budget), "--ensemble", "5", "--epochs", "25", "--quiet",
    ]  # fmt: skip
    if dataset in CV:
        command += ["--folds", "10", *(["--fold", str(args.fold)] if one_fold else [])]
    if arm == "zw":
        space = out.parent / "zw-space.json"
        space.parent.mkdir(parents=True, exist_ok=True)
        space.write_text(json.dumps(ZW_SPACE))
        command += ["--space", str(space)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(
            f"{dataset} {arm}: exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}",
            file=sys.stderr,
        )
        return None
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    folds = answer["summary"]["folds"]
    per_fold = [row["test"]["accuracy"] for row in folds if row.get("test")]
    return {
        "dataset": dataset,
        "arm": arm,
        "chosen": answer["chosen"][0],
        "trials": len(trials),
        "trial_status": {s: sum(t["status"] == s for t in trials) for s in {t["status"] for t in trials}},
        "best_dev_accuracy": max(t["best_dev_accuracy"] or 0 for t in trials),
        "test_accuracy": sum(per_fold) / len(per_fold),
        "per_fold_test_accuracy": per_fold,
        "seconds_this_call": round(time.monotonic() - started, 1),
        "out": str(out.relative_to(HERE.parent)),
    }


def reference_rows() -> dict[str, dict]:
    """Kim's defaults (max x5) and the linear baselines per dataset, from the mixed-ensembles benchmark."""
    path = RESULTS / "mixed_ensembles.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["rows"]
    wanted = {"max x5": "kim", "nbsvm": "nbsvm", "tfidf-lr": "tfidf-lr"}
    out: dict[str, dict] = {}
    for row in rows:
        if row["bundle"] in wanted:
            out.setdefault(row["dataset"], {})[wanted[row["bundle"]]] = row["per_fold_test_accuracy"]
    return out


def table(rows: list[dict], references: dict) -> list[str]:
    """Per dataset: each column's mean test accuracy over the folds all of them have."""
    lines = [
        "| dataset | folds | Kim defaults x5 | Z&W procedure x5 | tune x5 | best linear | tune - linear "
        "| tune chose |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        tuned = next((r for r in rows if r["dataset"] == dataset and r["arm"] == "tune"), None)
        zw = next((r for r in rows if r["dataset"] == dataset and r["arm"] == "zw"), None)
        ref = references.get(dataset, {})
        n = min(
            len(x)
            for x in [ref.get("kim", []), ref.get("nbsvm", [])]
            + [r["per_fold_test_accuracy"] for r in (tuned, zw) if r]
        )

        def mean(values, n=n):
            return None if not values else 100 * sum(values[:n]) / n

        linear = max(mean(ref.get("nbsvm")) or 0, mean(ref.get("tfidf-lr")) or 0)
        tune_mean = mean(tuned["per_fold_test_accuracy"]) if tuned else None
        chose = tuned["chosen"] if tuned else None
        cells = [
            dataset,
            str(n),
            _f(mean(ref.get("kim"))),
            _f(mean(zw["per_fold_test_accuracy"]) if zw else None)
            + (f" ({zw['chosen']['widths']})" if zw else ""),
            _f(tune_mean),
            _f(linear),
            "" if tune_mean is None else f"{tune_mean - linear:+.1f}",
            ""
            if chose is None
            else f"{chose['pooling']}, {chose['widths']} x {chose['maps']}, {chose['variant']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _f(value) -> str:
    return "" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTCNN_DATA_DIR", "../shared/data"))
    parser.add_argument("--datasets", default="trec,sst2,sst1,mr,subj")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--time-budget", type=float, default=900.0, help="seconds of search per dataset")
    parser.add_argument("--zw", action="store_true", help="also run Zhang & Wallace's procedure")
    parser.add_argument(
        "--fold",
        type=int,
        help="MR and Subj: tune and score this fold only (the table then compares fold 0..)",
    )
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from the finished tunes")
    args = parser.parse_args()
    path = RESULTS / "tune_datasets.json"
    previous = json.loads(path.read_text()) if path.exists() else {"rows": []}
    rows = {(r["dataset"], r["arm"]): r for r in previous["rows"]}
    if not args.table_only:
        for dataset in args.datasets.split(","):
            for arm in ("tune", "zw") if args.zw else ("tune",):
                row = run_tune(dataset, arm, args)
                if row is not None:
                    rows[(dataset, arm)] = row
                    budget = {"trials": args.trials, "time_budget_s": args.time_budget}
                    result = {"machine": machine(), "budget": budget, "rows": list(rows.values())}
                    path.write_text(json.dumps(result, indent=2))
    lines = table(list(rows.values()), reference_rows())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
