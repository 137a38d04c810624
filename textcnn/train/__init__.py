"""Training: from a dataset's folds to bundles, through one loop that trains K models as one.

One training, from the command line down, each step a module of its own:

    textcnn train           cli.models.cmd_train: flags -> RunSettings (unset flags take the config
                            dataclasses' defaults: config.TrainConfig, runs.VocabConfig, ModelConfig)
     -> protocol.train_folds  each fold: its bundle folder, resume of finished folds, cv.json;
                            an ensemble per fold with --ensemble K (runs.member_settings: seed + k)
     -> runs.prepare_run    vocabulary from train only, vectors, the initial model, encoded splits
                            (train_classifier: prepare_run, fit, finish_run; train_together: one group)
     -> loop.fit            a group of one ...
     -> loop.fit_group      ... the one loop: a ModelRecord per model, _train_epoch, early stopping;
                            each epoch's batches and dropout masks from batches.plan_epoch and
                            batches.DropoutMasks, its dev score from evaluation.evaluate_group
     -> model.group.ModelGroup  K models as one module, running model.cnn's own forward functions
                            (width_maps: convolve -> ReLU -> mask; pool_maps; dropout_pooled; apply_max_norm)

Beside the loop: `checkpoint` (per-epoch checkpoints, a group of one), `optim` (LazyAdadelta: the
steps of dense Adadelta, on the embedding rows a batch touched), and `runs.finish_run` /
`runs.finish_ensemble` (dev and test metrics, the classifier and its bundle's summary).

Public names are imported on first use (PEP 562), so `textcnn.train.config` (which the CLI reads
for `--help`) is importable without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textcnn.lazy import lazy_getattr

_EXPORTS = {
    "TrainConfig": "textcnn.train.config",
    "RunSettings": "textcnn.train.runs",
    "VocabConfig": "textcnn.train.runs",
    "prepare_run": "textcnn.train.runs",
    "texts_fold": "textcnn.train.runs",
    "train_classifier": "textcnn.train.runs",
    "train_together": "textcnn.train.runs",
    "train_folds": "textcnn.train.protocol",
    "fit": "textcnn.train.loop",
    "fit_group": "textcnn.train.loop",
}
__all__ = [  # noqa: RUF022 - settings first, then the trainings from the top down
    "TrainConfig",
    "RunSettings",
    "VocabConfig",
    "train_folds",
    "train_classifier",
    "train_together",
    "prepare_run",
    "texts_fold",
    "fit",
    "fit_group",
]

if TYPE_CHECKING:
    from textcnn.train.config import TrainConfig
    from textcnn.train.loop import fit, fit_group
    from textcnn.train.protocol import train_folds
    from textcnn.train.runs import (
        RunSettings,
        VocabConfig,
        prepare_run,
        texts_fold,
        train_classifier,
        train_together,
    )


__getattr__ = lazy_getattr(__name__, _EXPORTS)
