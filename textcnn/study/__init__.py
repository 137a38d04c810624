"""The pooling study: the same runs with only the pooling changed, then paired statistics and a report.

Every arm shares everything but the pooling: the folds (fixed by the split seed), the training
seed (so the same batches and dropout masks where shapes agree, and the same initial embeddings
and convolutions: the model is built right after seeding, and the pooling only changes the size
of the last layer), the epochs and the early stopping. A run is one (dataset, fold, seed,
pooling); each finished run is appended to `results.jsonl` at once, so an interrupted study
continues where it stopped.

The path of a study (`textcnn compare`), one module a step:

- `plan`: `StudyConfig`, the runs it plans (`plan_runs`), their folds (`study_folds`) and the
  groups of one model shape that train together (`group_runs`); `arms` turns an arm's name
  (`max`, `kmax:5`, `local-avg:3`, `avg:no-conv`, ...) into model options.
- `run`: `run_study` trains the runs not yet recorded, alone or in groups, in this process or
  sent out by a `GroupRunner` (`ray_executor`: on a Ray cluster).
- `results`: the study folder's files; each run lands as one line of `results.jsonl`
  (`append_row`, `load_results`), the study's only record.
- `summary`: `summarize` turns the rows into each arm's mean ± std and max against each arm,
  paired over shared (fold, seed) runs (`stats`: t-interval, t-test, Wilcoxon, McNemar).
- `report`: `write_report` writes summary.json, REPORT.md and the plots; `zhang_wallace` sets our
  arms beside Zhang & Wallace (2015)'s published figures (`reference`); `cells` formats the
  numbers both write.

Beside the main path, on the same folds: `baselines` (TF-IDF + LR and NBSVM) and `probe_study`
(the questions of `probes`, asked of one max and one average model per dataset); each gives the
report a section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textcnn.lazy import lazy_getattr

# The entry points are imported on first use (PEP 562), so `import textcnn.study` does not pay
# for what only training or the report needs.
_EXPORTS = {
    "StudyConfig": "textcnn.study.plan",
    "run_study": "textcnn.study.run",
    "load_results": "textcnn.study.results",
    "summarize": "textcnn.study.summary",
    "write_report": "textcnn.study.report",
}
__all__ = ["StudyConfig", "load_results", "run_study", "summarize", "write_report"]

if TYPE_CHECKING:
    from textcnn.study.plan import StudyConfig
    from textcnn.study.report import write_report
    from textcnn.study.results import load_results
    from textcnn.study.run import run_study
    from textcnn.study.summary import summarize


__getattr__ = lazy_getattr(__name__, _EXPORTS)
