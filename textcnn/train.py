"""Training: length-bucketed batches, Kim's Adadelta, early stopping on dev, atomic checkpoints.

`fit` trains one model on encoded splits; `train_classifier` goes from a data fold (texts and
label names) to a ready `Classifier`: vocabulary from the training split only, optional
pretrained vectors, training, and test metrics.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from textcnn.bundle import Classifier, atomic_write_bytes, package_versions, resolve_device
from textcnn.errors import ConfigError, TextCNNError
from textcnn.evaluate import classification_metrics
from textcnn.group import ModelGroup, select_rows
from textcnn.model import ModelConfig, TextCNN
from textcnn.names import AMP_MODES, OPTIMIZERS
from textcnn.optim import LazyAdadelta
from textcnn.text import TextEncoder, Vocabulary

CHECKPOINT_FILE = "checkpoint.safetensors"
LOG_FILE = "train_log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adadelta"  # Kim: Adadelta (Zeiler 2012)
    lr: float | None = None  # None: 1.0 for Adadelta, 1e-3 for Adam
    rho: float = 0.95  # Kim's Adadelta decay
    eps: float = 1e-6  # Kim's Adadelta epsilon
    batch_size: int = 50  # Kim: mini-batch size 50
    epochs: int = 25  # Kim's code: 25 epochs
    patience: int | None = 5  # stop after this many epochs without a better dev accuracy; None: never
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present
    amp: str = "auto"  # bf16 autocast: "auto" on CUDA only, "bf16" on any device, "off" never
    bucket_batches: int = 50  # sort this many batches' worth of sentences by length, then cut batches

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 1 or self.epochs < 1 or self.bucket_batches < 1:
            raise ConfigError("batch_size, epochs and bucket_batches must be >= 1")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"unknown amp mode {self.amp!r}; choose one of {', '.join(AMP_MODES)}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1.0 if self.optimizer == "adadelta" else 1e-3)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        return cls(**data)


@dataclass(frozen=True)
class EncodedSplit:
    """A split as padded id rows; a batch is a slice cut to its own longest sentence."""

    ids: torch.Tensor  # (N, T_max) int64, PAD_ID beyond each length
    lengths: torch.Tensor  # (N,) int64
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def encode(
        cls, encoder: TextEncoder, texts: Sequence[str], labels: Sequence[int], min_length: int
    ) -> EncodedSplit:
        batch = encoder.pad(encoder.encode_many(texts), min_length)
        return cls(batch.ids, batch.lengths, torch.as_tensor(list(labels), dtype=torch.long))

    def to(self, device: torch.device) -> EncodedSplit:
        return EncodedSplit(self.ids.to(device), self.lengths.to(device), self.labels.to(device))


def length_bucketed_batches(
    lengths: torch.Tensor, batch_size: int, bucket_batches: int, generator
) -> list[torch.Tensor]:
    """Shuffle, sort each pool of `bucket_batches` batches by length, cut, shuffle the batches.

    Sentences in a batch have similar lengths, so little compute goes to padding, while the
    order still changes every epoch.
    """
    permutation = torch.randperm(len(lengths), generator=generator)
    pool = batch_size * bucket_batches
    batches: list[torch.Tensor] = []
    for start in range(0, len(permutation), pool):
        chunk = permutation[start : start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def make_optimizer(model: TextCNN | ModelGroup, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adadelta":
        # Sparse embedding gradients + LazyAdadelta: the same updates as dense Adadelta, without
        # rewriting the whole table every step (see textcnn.optim).
        model.embedding.sparse = True
        return LazyAdadelta(params, lr=config.learning_rate, rho=config.rho, eps=config.eps)
    model.embedding.sparse = False  # Adam's moments move untouched rows too: keep it dense and exact
    return torch.optim.Adam(params, lr=config.learning_rate)


@torch.inference_mode()
def evaluate_split(model: TextCNN, split: EncodedSplit, batch_size: int = 1000) -> tuple[torch.Tensor, float]:
    """Predicted class ids (N,) on the CPU and the mean cross-entropy, in the split's order."""
    was_training = model.training
    model.eval()
    order = torch.argsort(split.lengths.cpu(), stable=True)
    lengths_cpu = split.lengths.cpu()
    predictions = torch.empty(len(split), dtype=torch.long)
    loss_sum = torch.zeros((), device=split.ids.device)
    widest = max(model.config.filter_widths)
    for chunk in order.split(batch_size):
        width = max(int(lengths_cpu[chunk].max()), widest)
        index = chunk.to(split.ids.device)
        logits = model(split.ids[index, :width], split.lengths[index]).float()
        loss_sum += F.cross_entropy(logits, split.labels[index], reduction="sum")
        predictions[chunk] = logits.argmax(dim=1).cpu()
    model.train(was_training)
    return predictions, float(loss_sum) / max(len(split), 1)


@dataclass
class FitResult:
    best_epoch: int  # 1-based; 0 if no epoch finished
    best_dev_accuracy: float
    epochs_run: int
    history: list[dict]
    interrupted: bool  # Ctrl-C: the best model so far was kept
    stopped_early: bool
    seconds: float


def _epoch_seed(seed: int, epoch: int) -> int:
    # One seed per (run, epoch): a resumed run draws the same batches and dropout masks as an
    # uninterrupted one, without having to store RNG states.
    return (seed * 1_000_003 + epoch * 7919) % (2**63)


def fit(
    model: TextCNN,
    train: EncodedSplit,
    dev: EncodedSplit,
    config: TrainConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    fingerprint: dict | None = None,
) -> FitResult:
    """Train `model` in place; on return it holds the weights of the best dev epoch.

    A group of one (`fit_group`): one training loop whatever the number of models. With `run_dir`,
    every epoch appends a line to train_log.jsonl and rewrites checkpoint.safetensors atomically;
    `resume=True` continues from that checkpoint (which must come from the same settings).
    """
    return fit_group([model], [train], [dev], [config], run_dir, resume, progress, fingerprint)[0]


@dataclass
class StackedSplits:
    """K splits as one tensor each, padded to the largest: row `filler` (the last) is all <pad>,
    for the empty slots of a batch (a model whose epoch has fewer or smaller batches)."""

    ids: torch.Tensor  # (K, N_max + 1, T_max)
    lengths: torch.Tensor  # (K, N_max + 1)
    labels: torch.Tensor  # (K, N_max + 1)
    sizes: list[int]

    @property
    def filler(self) -> int:
        return self.ids.shape[1] - 1

    @classmethod
    def stack(cls, splits: Sequence[EncodedSplit], device: torch.device) -> StackedSplits:
        rows = max(len(s) for s in splits) + 1
        width = max(s.ids.shape[1] for s in splits)
        ids = torch.zeros((len(splits), rows, width), dtype=torch.long)
        lengths = torch.zeros((len(splits), rows), dtype=torch.long)
        labels = torch.zeros((len(splits), rows), dtype=torch.long)
        for k, split in enumerate(splits):
            ids[k, : len(split), : split.ids.shape[1]] = split.ids.cpu()
            lengths[k, : len(split)] = split.lengths.cpu()
            labels[k, : len(split)] = split.labels.cpu()
        return cls(ids.to(device), lengths.to(device), labels.to(device), [len(s) for s in splits])

    def select(self, keep: Sequence[int]) -> StackedSplits:
        index = torch.as_tensor(list(keep), device=self.ids.device)
        return StackedSplits(
            self.ids.index_select(0, index),
            self.lengths.index_select(0, index),
            self.labels.index_select(0, index),
            [self.sizes[k] for k in keep],
        )


@dataclass
class _EpochPlan:
    """One epoch of a group, decided up front on the CPU so the steps never wait for the device."""

    index: torch.Tensor  # (S, K, B) row of each batch slot (the filler row for empty slots)
    steps: list[int]  # per model: its own number of batches this epoch
    weight: torch.Tensor  # (S, K, B) 1 / (model's batch size) for real rows, 0 for empty slots
    widths: list[list[int]]  # per step and model: its batch's longest sentence (at least the widest filter)


def _plan_epoch(
    lengths: Sequence[torch.Tensor],
    seeds: Sequence[int],
    epoch: int,
    config: TrainConfig,
    filler: int,
    widest: int,
) -> _EpochPlan:
    per_model = [
        length_bucketed_batches(
            model_lengths,
            config.batch_size,
            config.bucket_batches,
            torch.Generator().manual_seed(_epoch_seed(seed, epoch)),
        )
        for model_lengths, seed in zip(lengths, seeds, strict=True)
    ]
    steps, K, B = max(len(b) for b in per_model), len(per_model), config.batch_size
    index = torch.full((steps, K, B), filler, dtype=torch.long)
    weight = torch.zeros((steps, K, B))
    widths = [[widest] * K for _ in range(steps)]
    for k, batches in enumerate(per_model):
        for s, batch in enumerate(batches):
            index[s, k, : len(batch)] = batch
            weight[s, k, : len(batch)] = 1.0 / len(batch)
            widths[s][k] = max(widest, int(lengths[k][batch].max()))
    return _EpochPlan(index, [len(b) for b in per_model], weight, widths)


def _dropout_masks(
    seeds: Sequence[int],
    epoch: int,
    steps: Sequence[int],
    batch: int,
    width: int,
    p: float,
    device: torch.device,
) -> torch.Tensor | None:
    """(S, K, B, P) keep-masks, each model's from its own generator and for its own number of
    steps: a model draws the same masks in any group, so in a group or alone it trains the same."""
    if p == 0:
        return None
    masks = torch.ones((max(steps), len(seeds), batch, width), dtype=torch.bool, device=device)
    for k, (seed, count) in enumerate(zip(seeds, steps, strict=True)):
        generator = torch.Generator(device=device).manual_seed(_epoch_seed(seed, epoch) + 1)
        masks[:count, k] = torch.rand((count, batch, width), generator=generator, device=device) >= p
    return masks


@torch.inference_mode()
def evaluate_group(
    group: ModelGroup, splits: StackedSplits, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class ids (K, N_max) on the CPU and each model's mean cross-entropy (K,)."""
    was_training = group.training
    group.eval()
    K, device = group.models, splits.ids.device
    lengths_cpu = splits.lengths[:, :-1].cpu()
    real = torch.arange(lengths_cpu.shape[1])[None, :] < torch.as_tensor(splits.sizes)[:, None]
    # Each model's rows shortest first, so a chunk of positions holds similar lengths in every model.
    order = torch.argsort(lengths_cpu.masked_fill(~real, 10**9), dim=1, stable=True)
    predictions = torch.zeros(lengths_cpu.shape, dtype=torch.long)
    loss_sum = torch.zeros(K, device=device)
    rows = torch.arange(K)[:, None]
    device_rows = rows.to(device)
    widest = max(group.config.map_widths)
    for start in range(0, order.shape[1], batch_size):
        chunk = order[:, start : start + batch_size]  # (K, b)
        # Each model at its own chunk's width (looped mode), as it would be evaluated alone.
        widths = [max(int(lengths_cpu[k, chunk[k]].max()), widest) for k in range(K)]
        index = chunk.to(device)
        logits = group(
            splits.ids[:, :, : max(widths)][device_rows, index],
            splits.lengths[device_rows, index],
            widths=widths,
        ).float()
        ce = F.cross_entropy(
            logits.flatten(0, 1), splits.labels[device_rows, index].flatten(), reduction="none"
        )
        loss_sum += (ce.view(K, -1) * real[rows, chunk].to(device)).sum(dim=1)
        predictions[rows, chunk] = logits.argmax(dim=2).cpu()
    group.train(was_training)
    return predictions, loss_sum / torch.as_tensor(splits.sizes, device=device).clamp_min(1)


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
) -> list[FitResult]:
    """Train K models of one shape in lock-step, as one computation (`ModelGroup`); each in place.

    Each model keeps its own data, data order, dropout masks (all from its config's seed), early
    stopping and best epoch, so it ends as it would have trained alone (to rounding). A model that
    stops early leaves the group, and the rest go on as a smaller group. The one exception: a model
    whose epoch has fewer batches than the group's longest (training sets whose sizes straddle a
    multiple of the batch size) sits the missing steps out with a zero gradient, so Adadelta's
    running averages decay once more per missing step, while its weights do not move.

    `on_finished(k, result)` is called as model k stops, after it holds its best weights. The
    configs may differ only in their seeds. Checkpoints (`run_dir`) are for a group of one.
    """
    K = len(models)
    if not (K == len(trains) == len(devs) == len(configs)) or K == 0:
        raise ConfigError("fit_group needs as many models, training splits, dev splits and configs")
    config = configs[0]
    if any(dataclasses.replace(c, seed=config.seed) != config for c in configs):
        raise ConfigError("the models of a group must share their training settings (seeds may differ)")
    if run_dir is not None and K > 1:
        raise ConfigError("checkpoints (run_dir) are kept for a group of one model only")
    for train, dev in zip(trains, devs, strict=True):
        if len(train) == 0 or len(dev) == 0:
            raise TextCNNError("training needs at least one training and one dev sentence")
    device = resolve_device(config.device)
    for model in models:
        model.to(device)
    group = ModelGroup.from_models(models)
    optimizer = make_optimizer(group, config)
    # bf16 on the CPU is opt-in: ~25% faster on CPUs with AVX512-BF16 here, but fp32 is the reference.
    use_amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    run_dir = Path(run_dir) if run_dir is not None else None
    fingerprint = {"model": models[0].config.to_json(), "train": config.to_json(), **(fingerprint or {})}

    members = list(range(K))  # original index of each model still in the group
    seeds = [c.seed for c in configs]
    histories: list[list[dict]] = [[] for _ in range(K)]
    best_states: list[dict | None] = [None] * K
    best_epochs, best_accuracies, bad_epochs = [0] * K, [-1.0] * K, [0] * K
    results: list[FitResult | None] = [None] * K
    start_epoch = 0
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            saved = load_checkpoint(run_dir / CHECKPOINT_FILE, group, optimizer, fingerprint)
            histories[0], best_epochs[0], best_accuracies[0] = (
                saved["history"],
                saved["best_epoch"],
                saved["best_dev_accuracy"],
            )
            bad_epochs[0], start_epoch, best_states[0] = (
                saved["bad_epochs"],
                saved["epoch"],
                saved["best_state"],
            )
            if (
                config.patience is not None and bad_epochs[0] >= config.patience
            ) or start_epoch >= config.epochs:
                start_epoch = config.epochs  # that run had already finished
            # The log may hold an epoch the checkpoint missed (killed between the two writes).
            log_lines = "".join(json.dumps(record) + "\n" for record in histories[0])
            atomic_write_bytes(run_dir / LOG_FILE, log_lines.encode())
        else:
            (run_dir / LOG_FILE).unlink(missing_ok=True)

    train = StackedSplits.stack(trains, device)
    dev = StackedSplits.stack(devs, device)
    lengths_cpu = [split.lengths.cpu() for split in trains]
    widest = max(group.config.map_widths)
    started, interrupted = time.perf_counter(), False

    def finish(position: int, stopped_early: bool) -> None:
        k = members[position]
        if best_states[k] is not None:
            models[k].load_state_dict(best_states[k])
        else:  # no epoch ended: the weights as they are
            group.export(position, models[k])
        models[k].embedding.sparse = False
        models[k].eval()
        results[k] = FitResult(
            best_epochs[k],
            best_accuracies[k],
            len(histories[k]),
            histories[k],
            interrupted,
            stopped_early,
            time.perf_counter() - started,
        )
        if on_finished is not None:
            on_finished(k, results[k])

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
            plan = _plan_epoch(
                [lengths_cpu[k] for k in members],
                [seeds[k] for k in members],
                epoch,
                config,
                train.filler,
                widest,
            )
            steps_count, B = len(plan.widths), config.batch_size
            masks = _dropout_masks(
                [seeds[k] for k in members],
                epoch,
                plan.steps,
                B,
                group.config.pooled_size,
                group.config.dropout,
                device,
            )
            index, weight = plan.index.to(device), plan.weight.to(device)
            rows = torch.arange(len(members), device=device)[:, None]
            group.train()
            loss_sum = torch.zeros(len(members), device=device)
            correct = torch.zeros(len(members), dtype=torch.long, device=device)
            steps = tqdm(
                range(steps_count), desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not progress
            )
            for step in steps:
                batch, widths = index[step], plan.widths[step]  # (K, B), K widths
                labels = train.labels[rows, batch]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = group(
                        train.ids[:, :, : max(widths)][rows, batch],
                        train.lengths[rows, batch],
                        masks[step] if masks is not None else None,
                        widths,
                    )
                ce = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none").view(
                    len(members), B
                )
                loss = (ce * weight[step]).sum()  # the sum of each model's mean loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                group.apply_max_norm()
                real = weight[step] > 0
                loss_sum += (ce.detach() * real).sum(dim=1)
                correct += ((logits.detach().argmax(dim=2) == labels) & real).sum(dim=1)
                if progress and step % 25 == 0:
                    steps.set_postfix(loss=f"{float(loss) / len(members):.3f}")
            sizes = torch.as_tensor(train.sizes, device=device)
            train_losses, train_accuracies = (loss_sum / sizes).tolist(), (correct / sizes).tolist()  # syncs
            train_seconds = time.perf_counter() - epoch_started
            dev_predictions, dev_losses = evaluate_group(group, dev)
            dev_losses = dev_losses.tolist()
            finished: list[tuple[int, bool]] = []
            for position, k in enumerate(members):
                n_dev = dev.sizes[position]
                dev_accuracy = float(
                    (dev_predictions[position, :n_dev] == devs[k].labels.cpu()).float().mean()
                )
                record = {
                    "epoch": epoch + 1,
                    "train_loss": train_losses[position],
                    "train_accuracy": train_accuracies[position],
                    "dev_loss": dev_losses[position],
                    "dev_accuracy": dev_accuracy,
                    "seconds": round(time.perf_counter() - epoch_started, 3),  # with the dev evaluation
                    # training steps only; in a group, the group's time (every model's share)
                    "sentences_per_second": round(train.sizes[position] / train_seconds, 1),
                }
                if K > 1:
                    record["group_size"] = len(members)
                histories[k].append(record)
                if dev_accuracy > best_accuracies[k]:
                    best_accuracies[k], best_epochs[k], bad_epochs[k] = dev_accuracy, epoch + 1, 0
                    best_states[k] = {
                        n: v.detach().to("cpu", copy=True) for n, v in group.model_state(position).items()
                    }
                else:
                    bad_epochs[k] += 1
                if config.patience is not None and bad_epochs[k] >= config.patience:
                    finished.append((position, True))
            if K == 1:
                epochs.set_postfix(
                    dev_acc=f"{dev_accuracy:.3f}", best=f"{best_accuracies[0]:.3f}@{best_epochs[0]}"
                )
            else:
                epochs.set_postfix(training=len(members))
            if run_dir is not None:
                with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log:
                    log.write(json.dumps(histories[0][-1]) + "\n")
                save_checkpoint(
                    run_dir / CHECKPOINT_FILE,
                    group,
                    optimizer,
                    best_states[0],
                    fingerprint,
                    {
                        "epoch": epoch + 1,
                        "history": histories[0],
                        "best_epoch": best_epochs[0],
                        "best_dev_accuracy": best_accuracies[0],
                        "bad_epochs": bad_epochs[0],
                    },
                )
            if finished:
                for position, stopped_early in finished:
                    finish(position, stopped_early)
                keep = [p for p in range(len(members)) if p not in {f[0] for f in finished}]
                if not keep:
                    break
                group, optimizer = _shrink(group, optimizer, config, keep)
                train, dev = train.select(keep), dev.select(keep)
                members = [members[p] for p in keep]
    except KeyboardInterrupt:
        interrupted = True  # keep the best models so far; a group of one's checkpoint allows --resume
    finally:
        epochs.close()
    for position in range(len(members)):
        if results[members[position]] is None:
            finish(position, False)
    return results  # type: ignore[return-value]


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


# -- checkpoints: one safetensors file (tensors) with the JSON state in its metadata ------------


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: Path, model, optimizer, best_state, fingerprint: dict, progress_state: dict
) -> None:
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors |= {f"best.{k}": v.contiguous() for k, v in best_state.items()}
    optimizer_tensors, optimizer_meta = _flatten_optimizer(optimizer)
    tensors |= optimizer_tensors
    meta = {"fingerprint": fingerprint, "optimizer": optimizer_meta, **progress_state}
    atomic_write_bytes(path, save(tensors, metadata={"state": json.dumps(meta)}))


def load_checkpoint(path: Path, model, optimizer, fingerprint: dict) -> dict:
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        raise TextCNNError(f"{path}: no checkpoint to resume from (start without --resume)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads(handle.metadata()["state"])
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise TextCNNError(f"{path}: unreadable checkpoint ({exc})") from None
    if json.loads(json.dumps(fingerprint)) != meta["fingerprint"]:
        raise TextCNNError(f"{path}: the checkpoint was made with other settings or data; cannot resume")
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer_state = _unflatten_optimizer(tensors, meta["optimizer"])
    optimizer.load_state_dict(optimizer_state)
    for state in optimizer.state.values():  # load_state_dict casts to the params' device already
        for key, value in state.items():
            if torch.is_tensor(value):
                state[key] = value.to(device)
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return {**meta, "best_state": best}


# -- from texts to a classifier ---------------------------------------------------------------


@dataclass(frozen=True)
class VocabConfig:
    min_count: int = 1  # Kim keeps every training word
    max_size: int | None = None
    max_length: int | None = None  # truncate longer texts (tokens); None: keep everything


@dataclass
class TrainOutcome:
    classifier: Classifier
    fit: FitResult
    dev_metrics: dict
    test_metrics: dict | None
    vectors: dict | None  # coverage report of the pretrained vectors, if any
    test_predictions: list[int] | None = None  # class ids, in the order of the test texts


@dataclass
class PreparedRun:
    """Everything one training needs before `fit`: vocabulary, model, encoded splits."""

    model: TextCNN
    encoder: TextEncoder
    label_names: list[str]
    train: EncodedSplit
    dev: EncodedSplit
    test: EncodedSplit | None
    train_config: TrainConfig
    vocab_config: VocabConfig
    coverage: dict | None
    fingerprint: dict
    info: dict | None


def prepare_run(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    dev_texts: Sequence[str],
    dev_labels: Sequence[str],
    label_names: Sequence[str],
    model_options: dict | None = None,
    train_config: TrainConfig | None = None,
    vocab_config: VocabConfig | None = None,
    lowercase: bool = True,
    vectors: str | None = None,
    test_texts: Sequence[str] | None = None,
    test_labels: Sequence[str] | None = None,
    info: dict | None = None,
) -> PreparedRun:
    """Vocabulary from the training texts only, optional pretrained vectors, the initial model
    (drawn right after seeding with the run's seed, so it is the same wherever it will train)."""
    train_config = train_config or TrainConfig()
    vocab_config = vocab_config or VocabConfig()
    options = dict(model_options or {})
    variant = options.get("variant", "rand")
    if variant != "rand" and vectors is None:
        raise ConfigError(f"variant {variant!r} needs pretrained vectors (--vectors)")
    label_index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(
        {label for label in [*train_labels, *dev_labels, *(test_labels or [])]} - set(label_index)
    )
    if unknown:
        raise ConfigError(f"labels not among the label names: {', '.join(map(repr, unknown[:5]))}")

    torch.manual_seed(train_config.seed)
    probe = TextEncoder(Vocabulary(["<pad>", "<unk>"]), lowercase, vocab_config.max_length)
    vocab = Vocabulary.build(
        (probe.tokenize(t) for t in train_texts), vocab_config.min_count, vocab_config.max_size
    )
    encoder = TextEncoder(vocab, lowercase, vocab_config.max_length)

    coverage = None
    table = None
    if vectors is not None:
        from textcnn.vectors import load_pretrained

        pretrained = load_pretrained(vocab, vectors, seed=train_config.seed)
        options["embedding_dim"] = pretrained.dim
        table = torch.from_numpy(pretrained.matrix)
        coverage = {
            "source": str(vectors),
            **pretrained.coverage.to_json(),
            "summary": str(pretrained.coverage),
        }
    config = ModelConfig(vocab_size=len(vocab), num_classes=len(label_names), **options)
    model = TextCNN(config)
    if table is not None:
        model.load_pretrained(table)

    widest = max(config.filter_widths)
    train_split = EncodedSplit.encode(encoder, train_texts, [label_index[y] for y in train_labels], widest)
    dev_split = EncodedSplit.encode(encoder, dev_texts, [label_index[y] for y in dev_labels], widest)
    test_split = None
    if test_texts is not None and test_labels is not None and len(test_texts):
        test_split = EncodedSplit.encode(encoder, test_texts, [label_index[y] for y in test_labels], widest)
    fingerprint = {
        "vocab_size": len(vocab),
        "train_rows": len(train_split),
        "dev_rows": len(dev_split),
        "vectors": str(vectors) if vectors else None,
    }
    return PreparedRun(
        model,
        encoder,
        list(label_names),
        train_split,
        dev_split,
        test_split,
        train_config,
        vocab_config,
        coverage,
        fingerprint,
        info,
    )


def finish_run(run: PreparedRun, result: FitResult) -> TrainOutcome:
    """Metrics of the trained model on dev (and test), and the classifier with its summary."""
    model, label_names = run.model, run.label_names
    dev_predictions, _ = evaluate_split(model, run.dev)
    dev_metrics = classification_metrics(run.dev.labels.tolist(), dev_predictions.tolist(), label_names)
    test_metrics = test_predictions = None
    if run.test is not None:
        predicted, _ = evaluate_split(model, run.test)
        test_predictions = predicted.tolist()
        test_metrics = classification_metrics(run.test.labels.tolist(), test_predictions, label_names)

    model.to("cpu")
    summary = {
        "training": {
            "config": run.train_config.to_json(),
            "vocab": dataclasses.asdict(run.vocab_config),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "interrupted": result.interrupted,
            "seconds": round(result.seconds, 2),
            "versions": package_versions(),
        },
        "vectors": run.coverage,
        "metrics": {"dev": _headline(dev_metrics), "test": _headline(test_metrics) if test_metrics else None},
        **(run.info or {}),
    }
    classifier = Classifier(model, run.encoder, label_names, summary)
    return TrainOutcome(classifier, result, dev_metrics, test_metrics, run.coverage, test_predictions)


def train_classifier(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    dev_texts: Sequence[str],
    dev_labels: Sequence[str],
    label_names: Sequence[str],
    model_options: dict | None = None,
    train_config: TrainConfig | None = None,
    vocab_config: VocabConfig | None = None,
    lowercase: bool = True,
    vectors: str | None = None,
    test_texts: Sequence[str] | None = None,
    test_labels: Sequence[str] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    info: dict | None = None,
) -> TrainOutcome:
    """`prepare_run`, `fit`, `finish_run`: from texts to a trained classifier with its metrics.

    `model_options` are ModelConfig fields other than vocab_size and num_classes (which follow
    from the data); with `vectors`, embedding_dim follows from the vectors.
    """
    run = prepare_run(
        train_texts,
        train_labels,
        dev_texts,
        dev_labels,
        label_names,
        model_options,
        train_config,
        vocab_config,
        lowercase,
        vectors,
        test_texts,
        test_labels,
        info,
    )
    result = fit(run.model, run.train, run.dev, run.train_config, run_dir, resume, progress, run.fingerprint)
    return finish_run(run, result)


def train_together(
    runs: Sequence[PreparedRun],
    progress: bool = True,
    on_outcome: Callable[[int, TrainOutcome], None] | None = None,
) -> list[TrainOutcome]:
    """Train prepared runs of one model shape as one group (`fit_group`); `on_outcome(k, outcome)`
    as each run finishes, so its result can be kept before the others are done."""
    outcomes: list[TrainOutcome | None] = [None] * len(runs)

    def finished(k: int, result: FitResult) -> None:
        outcomes[k] = finish_run(runs[k], result)
        if on_outcome is not None:
            on_outcome(k, outcomes[k])

    fit_group(
        [r.model for r in runs],
        [r.train for r in runs],
        [r.dev for r in runs],
        [r.train_config for r in runs],
        progress=progress,
        on_finished=finished,
    )
    return outcomes  # type: ignore[return-value]


def _headline(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("n", "accuracy", "macro_f1")}


# -- a data protocol: one fixed split, or the folds of a cross-validation ----------------------


@dataclass
class ProtocolRun:
    outcomes: list[TrainOutcome]  # one per fold, in order
    bundles: list[Path]
    summary: dict  # JSON-ready: per-fold metrics, and mean ± std when there are several folds


def train_folds(
    corpus,
    folds,
    out: str | Path,
    model_options: dict | None = None,
    train_config: TrainConfig | None = None,
    vocab_config: VocabConfig | None = None,
    vectors: str | None = None,
    resume: bool = False,
    progress: bool = True,
    half: bool = False,
    on_fold=None,
    together: bool = False,
) -> ProtocolRun:
    """Train one bundle per fold and summarise; a single fold writes its bundle straight to `out`.

    Several folds write `out/fold-K/` each, plus `out/cv.json` with every fold's metrics and their
    mean and standard deviation. `on_fold(fold, outcome)` is called as each fold ends.
    `together=True` trains the folds as one group (`fit_group`): faster, but without per-epoch
    checkpoints; after an interruption, `resume` keeps the folds that finished and trains the
    others again, one at a time.
    """
    from textcnn.evaluate import summarize_folds

    out = Path(out)
    train_config = train_config or TrainConfig()
    done: dict[int, tuple[TrainOutcome, Path | None]] = {}  # position in `folds` -> outcome, bundle

    def run_dir_of(fold) -> Path:
        return out if len(folds) == 1 else out / fold.name

    def info_of(fold) -> dict:
        return {
            "data": {
                "dataset": corpus.name,
                "source": corpus.source,
                "fold": fold.name,
                "fold_index": fold.index,
                "folds": fold.of,
                "split_seed": train_config.seed,
                "dev": fold.dev_source,
                "rows": {
                    "train": len(fold.train),
                    "dev": len(fold.dev),
                    "test": len(fold.test) if fold.test else 0,
                },
            }
        }

    def keep(position: int, outcome: TrainOutcome) -> None:
        fold, run_dir = folds[position], run_dir_of(folds[position])
        bundle = None
        if outcome.fit.best_epoch > 0:  # interrupted before any epoch ended: nothing worth writing
            bundle = outcome.classifier.save(run_dir, half=half)
        if not outcome.fit.interrupted:  # finished: nothing left to resume
            (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        done[position] = (outcome, bundle)
        if on_fold is not None:
            on_fold(fold, outcome)

    pending = []
    for position, fold in enumerate(folds):
        run_dir = run_dir_of(fold)
        if resume and _finished_bundle(run_dir):  # this fold completed before the interruption
            done[position] = (_finished_outcome(run_dir), run_dir)
            if on_fold is not None:
                on_fold(fold, done[position][0])
        else:
            pending.append(position)

    arguments = (model_options, train_config, vocab_config, corpus.lowercase, vectors)
    if together and len(pending) > 1:
        prepared = [
            prepare_run(
                folds[i].train.texts,
                folds[i].train.labels,
                folds[i].dev.texts,
                folds[i].dev.labels,
                corpus.label_names,
                *arguments,
                folds[i].test.texts if folds[i].test else None,
                folds[i].test.labels if folds[i].test else None,
                info_of(folds[i]),
            )
            for i in pending
        ]
        train_together(prepared, progress, on_outcome=lambda k, outcome: keep(pending[k], outcome))
    else:
        for position in pending:
            fold, run_dir = folds[position], run_dir_of(folds[position])
            outcome = train_classifier(
                fold.train.texts,
                fold.train.labels,
                fold.dev.texts,
                fold.dev.labels,
                corpus.label_names,
                *arguments,
                fold.test.texts if fold.test else None,
                fold.test.labels if fold.test else None,
                run_dir,
                resume and (run_dir / CHECKPOINT_FILE).exists(),  # a fold never started starts afresh
                progress,
                info_of(fold),
            )
            keep(position, outcome)
            if outcome.fit.interrupted:
                break
    ordered = [position for position in range(len(folds)) if position in done]
    outcomes = [done[position][0] for position in ordered]
    bundles = [done[position][1] for position in ordered if done[position][1] is not None]
    rows = [
        _fold_row(folds[position], run_dir_of(folds[position]), done[position][0]) for position in ordered
    ]
    summary: dict = {"dataset": corpus.name, "folds": rows}
    tested = [o.test_metrics for o in outcomes if o.test_metrics]
    if len(tested) > 1:
        summary["test"] = summarize_folds(tested)
    if len(folds) > 1:
        atomic_write_bytes(out / "cv.json", json.dumps(summary, indent=2).encode())
    return ProtocolRun(outcomes, bundles, summary)


def _finished_bundle(run_dir: Path) -> bool:
    """A bundle from a run that ended (not one kept at an interruption, and no checkpoint left)."""
    if (run_dir / CHECKPOINT_FILE).exists() or not (run_dir / "config.json").exists():
        return False
    try:
        training = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("training", {})
    except (OSError, ValueError):
        return False
    return not training.get("interrupted", False)


def _fold_row(fold, run_dir: Path, outcome: TrainOutcome) -> dict:
    return {
        "fold": fold.name,
        "bundle": str(run_dir),
        "dev": _headline(outcome.dev_metrics),
        "test": _headline(outcome.test_metrics) if outcome.test_metrics else None,
        "best_epoch": outcome.fit.best_epoch,
        "seconds": round(outcome.fit.seconds, 2),
    }


def _finished_outcome(run_dir: Path) -> TrainOutcome:
    """What a completed fold's bundle and log say about its run (for --resume of a CV run)."""
    classifier = Classifier.load(run_dir)
    training, metrics = classifier.info.get("training", {}), classifier.info.get("metrics", {})
    log = run_dir / LOG_FILE
    history = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    fit_result = FitResult(
        best_epoch=training.get("best_epoch", 0),
        best_dev_accuracy=(metrics.get("dev") or {}).get("accuracy", float("nan")),
        epochs_run=training.get("epochs_run", len(history)),
        history=history,
        interrupted=False,
        stopped_early=training.get("stopped_early", False),
        seconds=training.get("seconds", 0.0),
    )
    return TrainOutcome(
        classifier, fit_result, metrics.get("dev") or {}, metrics.get("test"), classifier.info.get("vectors")
    )
