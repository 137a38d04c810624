"""The training loop: K models of one shape trained in lock-step as one computation.

Every training goes through `fit_group`; `fit` is a group of one. Each model keeps its own data
order and dropout masks (from its seed), early stopping and best epoch (`ModelRecord`), so it
ends as it would have trained alone. Around the loop: `textcnn.train.batches` (what a step
consumes: the epoch's batches and dropout masks, planned up front), `textcnn.train.evaluation`
(each epoch's dev evaluation), `textcnn.train.checkpoint` (per-epoch checkpoints of a group of
one), `textcnn.train.runs` (from texts to a classifier) and `textcnn.train.protocol` (the folds
of a cross-validation, and ensembles).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from textcnn.errors import ConfigError, TextCNNError
from textcnn.model import output
from textcnn.model.cnn import TextCNN
from textcnn.model.group import ModelGroup, select_rows
from textcnn.runtime import atomic_write_bytes, resolve_device
from textcnn.train.batches import DropoutMasks, EncodedSplit, StackedSplits, plan_epoch
from textcnn.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from textcnn.train.config import TrainConfig
from textcnn.train.evaluation import evaluate_group
from textcnn.train.optim import LazyAdadelta

LOG_FILE = "train_log.jsonl"


@dataclass
class FitResult:
    best_epoch: int  # 1-based; 0 if no epoch finished
    best_dev_accuracy: float
    epochs_run: int
    history: list[dict]
    interrupted: bool  # Ctrl-C: the best model so far was kept
    stopped_early: bool
    seconds: float


def fit(
    model: TextCNN,
    train: EncodedSplit,
    dev: EncodedSplit,
    config: TrainConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    fingerprint: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train `model` in place; on return it holds the weights of the best dev epoch.

    A group of one (`fit_group`). With `run_dir`, every epoch appends a line to train_log.jsonl
    and rewrites checkpoint.safetensors atomically; `resume=True` continues from that checkpoint
    (which must come from the same settings and data). `on_epoch(record)` is called after each
    epoch (and its checkpoint) with the epoch's log record: how `textcnn tune` reports a trial's curve.
    """
    on_epoch_records = None if on_epoch is None else (lambda records: on_epoch(records[0]))
    return fit_group(
        [model], [train], [dev], [config], run_dir, resume, progress, fingerprint, on_epoch=on_epoch_records
    )[0]


def fit_group(
    models: Sequence[TextCNN],
    trains: Sequence[EncodedSplit],
    devs: Sequence[EncodedSplit],
    configs: Sequence[TrainConfig],
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    fingerprint: dict | None = None,
    on_finished: Callable[[int, FitResult], None] | None = None,
    on_epoch: Callable[[list[dict]], None] | None = None,
) -> list[FitResult]:
    """Train K models of one shape in lock-step, as one computation (`ModelGroup`); each in place.

    Each model keeps its own data, data order, dropout masks (all from its config's seed), early
    stopping and best epoch, so it ends as it would have trained alone (to rounding). A model that
    stops early leaves the group, and the rest go on as a smaller group. The one exception: a model
    whose epoch has fewer batches than the group's longest (training sets whose sizes straddle a
    multiple of the batch size) sits the missing steps out with a zero gradient, so Adadelta's
    running averages decay once more per missing step, while its weights do not move.

    `on_finished(k, result)` is called as model k stops, after it holds its best weights;
    `on_epoch(records)` after each epoch's checkpoint, with the epoch records of the models that
    trained it, in the group's order. The configs may differ only in their seeds. Checkpoints
    (`run_dir`) are for a group of one.
    """
    config = _group_config(models, trains, devs, configs, run_dir)
    device = resolve_device(config.device)
    for model in models:
        model.to(device)
    group = ModelGroup.from_models(models)
    optimizer = make_optimizer(group, config)
    # bf16 on the CPU is opt-in: ~25% faster on CPUs with AVX512-BF16 here, but fp32 is the reference.
    use_amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    run_dir = Path(run_dir) if run_dir is not None else None
    fingerprint = {"model": models[0].config.to_json(), "train": config.to_json(), **(fingerprint or {})}
    records = [ModelRecord(k, c.seed, config.patience) for k, c in enumerate(configs)]
    start_epoch = _start(run_dir, resume, group, optimizer, records, fingerprint, config)
    steps_done = records[0].history[-1].get("steps", 0) if resume and records[0].history else 0
    active = list(records)  # the models still training, in the group's order
    train, dev = StackedSplits.stack(trains, device), StackedSplits.stack(devs, device)
    started, interrupted = time.perf_counter(), False
    epochs = tqdm(
        range(start_epoch, config.epochs),
        desc="epochs",
        unit="epoch",
        disable=not progress,
        initial=start_epoch,
        total=config.epochs,
    )
    try:
        for epoch in epochs:
            epoch_started = time.perf_counter()
            seeds = [record.seed for record in active]
            budget = None if config.max_steps is None else config.max_steps - steps_done
            train_losses, train_accuracies, steps_run = _train_epoch(
                group, optimizer, train, seeds, epoch, config, use_amp, progress, budget
            )
            steps_done += steps_run
            train_seconds = time.perf_counter() - epoch_started
            dev_predictions, dev_loss_tensor = evaluate_group(group, dev)
            dev_accuracies, dev_losses = dev.accuracies(dev_predictions), dev_loss_tensor.tolist()
            # Multi-label data selects on dev macro-F1 (at the best shared threshold), not exact match.
            dev_f1s = dev.macro_f1s(dev_predictions) if dev.multi_label else None
            stopping, epoch_records = [], []
            for position, record in enumerate(active):
                epoch_record = {
                    "epoch": epoch + 1,
                    "train_loss": train_losses[position],
                    "train_accuracy": train_accuracies[position],
                    "dev_loss": dev_losses[position],
                    "dev_accuracy": dev_accuracies[position],
                    **({"dev_macro_f1": dev_f1s[position]} if dev_f1s is not None else {}),
                    "seconds": round(time.perf_counter() - epoch_started, 3),  # with the dev evaluation
                    # training steps only; in a group, the group's time (every model's share)
                    # (an epoch cut by --max-steps saw at most its steps' batches)
                    "sentences_per_second": round(
                        min(train.sizes[position], steps_run * config.batch_size) / train_seconds, 1
                    ),
                    "group_size": len(active),
                    **({"steps": steps_done} if config.max_steps is not None else {}),
                }
                epoch_records.append(epoch_record)
                if record.observe(epoch_record, group.model_state(position)):
                    stopping.append(position)
            epochs.set_postfix(
                dev_acc=f"{sum(dev_accuracies) / len(active):.3f}",
                best=f"{sum(r.best_dev_accuracy for r in active) / len(active):.3f}",
                training=len(active),
            )
            _save(run_dir, group, optimizer, records, fingerprint, epoch + 1)
            if on_epoch is not None:
                on_epoch(epoch_records)
            for position in stopping:
                _finish(active[position], models, group, position, False, True, started, on_finished)
            keep = [position for position in range(len(active)) if position not in stopping]
            if not keep or (config.max_steps is not None and steps_done >= config.max_steps):
                break  # every model stopped, or the step budget is spent (the rest end below)
            if stopping:  # one assignment, so a Ctrl-C never sees the group and `active` disagree
                group, optimizer, train, dev, active = (
                    *_shrink(group, optimizer, config, keep),
                    train.select(keep),
                    dev.select(keep),
                    [active[position] for position in keep],
                )
    except KeyboardInterrupt:
        interrupted = True  # keep the best models so far; a group of one's checkpoint allows --resume
    finally:
        epochs.close()
    for position, record in enumerate(active):
        if record.result is None:
            _finish(record, models, group, position, interrupted, False, started, on_finished)
    return [record.result for record in records]  # type: ignore[misc]


def _train_epoch(
    group: ModelGroup,
    optimizer: torch.optim.Optimizer,
    train: StackedSplits,
    seeds: Sequence[int],
    epoch: int,
    config: TrainConfig,
    use_amp: bool,
    progress: bool,
    max_steps: int | None = None,
) -> tuple[list[float], list[float], int]:
    """One epoch of steps for every model in the group (its first `max_steps` only, if given):
    each model's mean training loss and accuracy over the rows it saw, and the steps taken."""
    device, K, B = train.device, group.models, config.batch_size
    plan = plan_epoch(train.host_lengths, seeds, epoch, config, train.filler, max(group.config.map_widths))
    p = group.config.dropout
    masks = DropoutMasks(seeds, epoch, plan.steps, B, group.config.pooled_size, p, device) if p else None
    index, weight = plan.index.to(device), plan.weight.to(device)
    rows = torch.arange(K, device=device)[:, None]
    group.train()
    loss_sum = torch.zeros(K, device=device)
    correct = torch.zeros(K, dtype=torch.long, device=device)
    multi = train.multi_label
    count = len(plan.widths) if max_steps is None else min(len(plan.widths), max_steps)
    steps = tqdm(range(count), desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not progress)
    for step in steps:
        batch, widths = index[step], plan.widths[step]  # (K, B), K widths
        labels = train.labels[rows, batch]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = group(
                train.ids(rows, batch, max(widths)),
                train.lengths[rows, batch],
                masks[step] if masks is not None else None,
                widths,
            )
        ce = output.loss(logits.float(), labels, multi)  # (K, B)
        loss = (ce * weight[step]).sum()  # the sum of each model's mean loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        group.apply_max_norm()
        real = weight[step] > 0
        loss_sum += (ce.detach() * real).sum(dim=1)
        if multi:  # every label right at 0.5
            correct += (((logits.detach() > 0) == labels.bool()).all(dim=2) & real).sum(dim=1)
        else:
            correct += ((logits.detach().argmax(dim=2) == labels) & real).sum(dim=1)
        if progress and step % 25 == 0:
            steps.set_postfix(loss=f"{float(loss.detach()) / K:.3f}")
    sizes = torch.as_tensor(train.sizes, device=device)
    if count < len(plan.widths):  # a cut epoch: the rows its steps saw
        sizes = (weight[:count] > 0).sum(dim=(0, 2)).clamp_min(1)
    return (loss_sum / sizes).tolist(), (correct / sizes).tolist(), count  # one sync per epoch


# -- what the loop keeps of each model, and how a model leaves the group ---------------------


def selection_score(epoch: dict) -> float:
    """What early stopping (and the best epoch) selects on: dev accuracy, or for multi-label data
    dev macro-F1 (GoEmotions' metric; exact match rewards predicting "neutral" alone)."""
    return epoch.get("dev_macro_f1", epoch["dev_accuracy"])


@dataclass
class ModelRecord:
    """One model's way through `fit_group`: its epochs, its best so far, the patience it has used."""

    index: int  # its position in fit_group's arguments
    seed: int
    patience: int | None
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0 while no epoch has ended
    best_dev_accuracy: float = -1.0  # the best `selection_score` (dev macro-F1 for multi-label data)
    best_state: dict[str, torch.Tensor] | None = None  # the best epoch's weights, on the CPU
    bad_epochs: int = 0  # epochs since the best one
    result: FitResult | None = None  # set when the model stops

    def observe(self, epoch: dict, weights: dict[str, torch.Tensor]) -> bool:
        """Take one epoch's record (and the weights it ended with); True: patience is spent, stop."""
        self.history.append(epoch)
        score = selection_score(epoch)
        if score > self.best_dev_accuracy:
            self.best_dev_accuracy, self.best_epoch, self.bad_epochs = (
                score,
                epoch["epoch"],
                0,
            )
            self.best_state = {name: value.detach().to("cpu", copy=True) for name, value in weights.items()}
        else:
            self.bad_epochs += 1
        return self.patience_spent

    @property
    def patience_spent(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def progress(self, epoch: int) -> dict:
        """What a checkpoint keeps of the record, besides the best weights."""
        return {
            "epoch": epoch,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_dev_accuracy": self.best_dev_accuracy,
            "bad_epochs": self.bad_epochs,
        }

    def restore(self, saved: dict) -> None:
        self.history, self.best_state = saved["history"], saved["best_state"]
        self.best_epoch, self.best_dev_accuracy = saved["best_epoch"], saved["best_dev_accuracy"]
        self.bad_epochs = saved["bad_epochs"]


def _finish(
    record: ModelRecord,
    models: Sequence[TextCNN],
    group: ModelGroup,
    position: int,
    interrupted: bool,
    stopped_early: bool,
    started: float,
    on_finished: Callable[[int, FitResult], None] | None,
) -> None:
    """The record's model takes its best weights (or, if no epoch ended, the group's current
    ones), the record its result, and the caller hears of it."""
    model = models[record.index]
    if record.best_state is not None:
        model.load_state_dict(record.best_state)
    else:
        group.export(position, model)
    model.embedding.sparse = False
    model.eval()
    record.result = FitResult(
        record.best_epoch,
        record.best_dev_accuracy,
        len(record.history),
        record.history,
        interrupted,
        stopped_early,
        time.perf_counter() - started,
    )
    if on_finished is not None:
        on_finished(record.index, record.result)


def _shrink(group: ModelGroup, optimizer: torch.optim.Optimizer, config: TrainConfig, keep: list[int]):
    """The group without its finished models, and an optimizer that carries the rest's state."""
    smaller = group.select(keep)
    new_optimizer = make_optimizer(smaller, config)
    by_name = dict(group.named_parameters())
    for name, parameter in smaller.named_parameters():
        state = optimizer.state.get(by_name[name])
        if state:
            new_optimizer.state[parameter] = {
                key: select_rows(value, group.models, keep) if torch.is_tensor(value) else value
                for key, value in state.items()
            }
    return smaller, new_optimizer


def make_optimizer(model: TextCNN | ModelGroup, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adadelta":
        # Sparse embedding gradients + LazyAdadelta: the same updates as dense Adadelta, without
        # rewriting the whole table every step (see textcnn.train.optim).
        model.embedding.sparse = True
        return LazyAdadelta(params, lr=config.learning_rate, rho=config.rho, eps=config.eps)
    model.embedding.sparse = False  # Adam's moments move untouched rows too: keep it dense and exact
    return torch.optim.Adam(params, lr=config.learning_rate)


def _group_config(
    models: Sequence[TextCNN],
    trains: Sequence[EncodedSplit],
    devs: Sequence[EncodedSplit],
    configs: Sequence[TrainConfig],
    run_dir: str | Path | None,
) -> TrainConfig:
    """The one training config of a group, after checking that the group can train at all."""
    K = len(models)
    if not (K == len(trains) == len(devs) == len(configs)) or K == 0:
        raise ConfigError("fit_group needs as many models, training splits, dev splits and configs")
    config = configs[0]
    if any(dataclasses.replace(c, seed=config.seed) != config for c in configs):
        raise ConfigError("the models of a group must share their training settings (seeds may differ)")
    if run_dir is not None and K > 1:
        raise ConfigError("checkpoints (run_dir) are kept for a group of one model only")
    if any(len(train) == 0 or len(dev) == 0 for train, dev in zip(trains, devs, strict=True)):
        raise TextCNNError("training needs at least one training and one dev sentence")
    return config


# -- the run folder of a group of one: train_log.jsonl and checkpoint.safetensors ---------------


def _start(
    run_dir: Path | None,
    resume: bool,
    group: ModelGroup,
    optimizer: torch.optim.Optimizer,
    records: list[ModelRecord],
    fingerprint: dict,
    config: TrainConfig,
) -> int:
    """The epoch to start from: 0, or (`resume`) where the checkpoint in `run_dir` left off."""
    if run_dir is None:
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        (run_dir / LOG_FILE).unlink(missing_ok=True)
        return 0
    (record,) = records  # checked by _group_config: checkpoints are for a group of one
    saved = load_checkpoint(run_dir / CHECKPOINT_FILE, group, optimizer, fingerprint)
    record.restore(saved)
    # The log may hold an epoch the checkpoint missed (killed between the two writes).
    atomic_write_bytes(run_dir / LOG_FILE, "".join(json.dumps(r) + "\n" for r in record.history).encode())
    spent = (
        config.max_steps is not None
        and record.history
        and record.history[-1].get("steps", 0) >= config.max_steps
    )
    if record.patience_spent or saved["epoch"] >= config.epochs or spent:
        return config.epochs  # that run had already finished
    return saved["epoch"]


def _save(
    run_dir: Path | None,
    group: ModelGroup,
    optimizer: torch.optim.Optimizer,
    records: list[ModelRecord],
    fingerprint: dict,
    epoch: int,
) -> None:
    """After each epoch: the epoch's log line, then the checkpoint, rewritten atomically."""
    if run_dir is None:
        return
    (record,) = records
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log:
        log.write(json.dumps(record.history[-1]) + "\n")
    save_checkpoint(
        run_dir / CHECKPOINT_FILE, group, optimizer, record.best_state, fingerprint, record.progress(epoch)
    )
