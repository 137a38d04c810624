"""A study folder's files, and results.jsonl, the one record of its finished runs.

Each finished run is one JSON line, appended and synced at once; everything else in the folder
(summary.json, REPORT.md, the plots) is written again from these lines, so the lines are what a
study is, and reading them back mends the one damage a kill can do (a last line cut short).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from textcnn.errors import ConfigError

RESULTS_FILE, SUMMARY_FILE, REPORT_FILE, PLAN_FILE, FINDINGS_FILE = (
    "results.jsonl",
    "summary.json",
    "REPORT.md",
    "study.json",
    "FINDINGS.md",
)


def load_results(path: Path) -> list[dict]:
    """Finished runs; a last line cut short by a kill is dropped (and the file mended)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise ConfigError(f"{path}:{number}: not a JSON line; the results file is damaged") from None
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def append_row(path: Path, row: dict) -> None:
    """One JSON line, flushed and synced at once: a kill loses at most the line being written."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
        out.flush()
        os.fsync(out.fileno())


def training_seconds(rows: Sequence[dict]) -> float:
    """Wall time of the training behind `rows`: a group's runs overlap, so a group counts once."""
    groups: dict[str, float] = {}
    alone = 0.0
    for row in rows:
        if row.get("group"):
            groups[row["group"]] = max(groups.get(row["group"], 0.0), row["seconds"])
        else:
            alone += row["seconds"]
    return alone + sum(groups.values())
