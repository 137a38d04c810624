"""Training: length-bucketed batches, Kim's Adadelta, early stopping on dev, atomic checkpoints.

`fit` trains one model on encoded splits; `train_classifier` goes from a data fold (texts and
label names) to a ready `Classifier`: vocabulary from the training split only, optional
pretrained vectors, training, and test metrics.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from textcnn.bundle import Classifier, atomic_write_bytes, package_versions, resolve_device
from textcnn.errors import ConfigError, TextCNNError
from textcnn.evaluate import classification_metrics
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


def make_optimizer(model: TextCNN, config: TrainConfig) -> torch.optim.Optimizer:
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

    With `run_dir`, every epoch appends a line to train_log.jsonl and rewrites checkpoint.safetensors
    atomically; `resume=True` continues from that checkpoint (which must come from the same settings).
    """
    if len(train) == 0 or len(dev) == 0:
        raise TextCNNError("training needs at least one training and one dev sentence")
    device = resolve_device(config.device)
    model.to(device)
    train, dev = train.to(device), dev.to(device)
    optimizer = make_optimizer(model, config)
    # bf16 on the CPU is opt-in: ~25% faster on CPUs with AVX512-BF16 here, but fp32 is the reference.
    use_amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    run_dir = Path(run_dir) if run_dir is not None else None
    fingerprint = {"model": model.config.to_json(), "train": config.to_json(), **(fingerprint or {})}

    history: list[dict] = []
    best_state, best_epoch, best_accuracy, bad_epochs, start_epoch = None, 0, -1.0, 0, 0
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            saved = load_checkpoint(run_dir / CHECKPOINT_FILE, model, optimizer, fingerprint)
            history, best_epoch, best_accuracy = (
                saved["history"],
                saved["best_epoch"],
                saved["best_dev_accuracy"],
            )
            bad_epochs, start_epoch, best_state = saved["bad_epochs"], saved["epoch"], saved["best_state"]
            if (
                config.patience is not None and bad_epochs >= config.patience
            ) or start_epoch >= config.epochs:
                start_epoch = config.epochs  # that run had already finished
            # The log may hold an epoch the checkpoint missed (killed between the two writes).
            log_lines = "".join(json.dumps(record) + "\n" for record in history)
            atomic_write_bytes(run_dir / LOG_FILE, log_lines.encode())
        else:
            (run_dir / LOG_FILE).unlink(missing_ok=True)

    lengths_cpu = train.lengths.cpu()
    widest = max(model.config.filter_widths)
    started, interrupted, stopped_early = time.perf_counter(), False, False
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
            torch.manual_seed(_epoch_seed(config.seed, epoch))  # dropout masks
            order = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
            batches = length_bucketed_batches(lengths_cpu, config.batch_size, config.bucket_batches, order)
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            steps = tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not progress)
            for step, batch in enumerate(steps):
                width = max(int(lengths_cpu[batch].max()), widest)  # CPU-side: no device sync
                index = batch.to(device, non_blocking=True)
                labels = train.labels[index]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = model(train.ids[index, :width], train.lengths[index])
                loss = F.cross_entropy(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                model.apply_max_norm()
                loss_sum += loss.detach() * len(batch)
                correct += (logits.detach().argmax(dim=1) == labels).sum()
                if progress and step % 25 == 0:
                    steps.set_postfix(loss=f"{float(loss):.3f}")
            train_loss, train_accuracy = float(loss_sum) / len(train), float(correct) / len(train)  # syncs
            train_seconds = time.perf_counter() - epoch_started
            dev_predictions, dev_loss = evaluate_split(model, dev)
            dev_accuracy = float((dev_predictions == dev.labels.cpu()).float().mean())
            record = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_accuracy,
                "dev_loss": dev_loss,
                "dev_accuracy": dev_accuracy,
                "seconds": round(time.perf_counter() - epoch_started, 3),  # with the dev evaluation
                "sentences_per_second": round(len(train) / train_seconds, 1),  # training steps only
            }
            history.append(record)
            if dev_accuracy > best_accuracy:
                best_accuracy, best_epoch, bad_epochs = dev_accuracy, epoch + 1, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            epochs.set_postfix(dev_acc=f"{dev_accuracy:.3f}", best=f"{best_accuracy:.3f}@{best_epoch}")
            if run_dir is not None:
                with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
                save_checkpoint(
                    run_dir / CHECKPOINT_FILE,
                    model,
                    optimizer,
                    best_state,
                    fingerprint,
                    {
                        "epoch": epoch + 1,
                        "history": history,
                        "best_epoch": best_epoch,
                        "best_dev_accuracy": best_accuracy,
                        "bad_epochs": bad_epochs,
                    },
                )
            if config.patience is not None and bad_epochs >= config.patience:
                stopped_early = True
                break
    except KeyboardInterrupt:
        interrupted = True  # keep the best model so far; the checkpoint allows --resume
    finally:
        epochs.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.embedding.sparse = False
    model.eval()
    return FitResult(
        best_epoch,
        best_accuracy,
        len(history),
        history,
        interrupted,
        stopped_early,
        time.perf_counter() - started,
    )


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
    """Vocabulary from the training texts only, optional pretrained vectors, `fit`, then metrics.

    `model_options` are ModelConfig fields other than vocab_size and num_classes (which follow
    from the data); with `vectors`, embedding_dim follows from the vectors.
    """
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
    fingerprint = {
        "vocab_size": len(vocab),
        "train_rows": len(train_split),
        "dev_rows": len(dev_split),
        "vectors": str(vectors) if vectors else None,
    }
    result = fit(model, train_split, dev_split, train_config, run_dir, resume, progress, fingerprint)

    dev_predictions, _ = evaluate_split(model, dev_split)
    dev_metrics = classification_metrics(dev_split.labels.tolist(), dev_predictions.tolist(), label_names)
    test_metrics = test_predictions = None
    if test_texts is not None and test_labels is not None and len(test_texts):
        test_split = EncodedSplit.encode(encoder, test_texts, [label_index[y] for y in test_labels], widest)
        predicted, _ = evaluate_split(model, test_split)
        test_predictions = predicted.tolist()
        test_metrics = classification_metrics(test_split.labels.tolist(), test_predictions, label_names)

    model.to("cpu")
    summary = {
        "training": {
            "config": train_config.to_json(),
            "vocab": dataclasses.asdict(vocab_config),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "interrupted": result.interrupted,
            "seconds": round(result.seconds, 2),
            "versions": package_versions(),
        },
        "vectors": coverage,
        "metrics": {"dev": _headline(dev_metrics), "test": _headline(test_metrics) if test_metrics else None},
        **(info or {}),
    }
    classifier = Classifier(model, encoder, label_names, summary)
    return TrainOutcome(classifier, result, dev_metrics, test_metrics, coverage, test_predictions)


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
) -> ProtocolRun:
    """Train one bundle per fold and summarise; a single fold writes its bundle straight to `out`.

    Several folds write `out/fold-K/` each, plus `out/cv.json` with every fold's metrics and their
    mean and standard deviation. `on_fold(fold, outcome)` is called as each fold ends.
    """
    from textcnn.evaluate import summarize_folds

    out = Path(out)
    train_config = train_config or TrainConfig()
    outcomes, bundles, rows = [], [], []
    for fold in folds:
        run_dir = out if len(folds) == 1 else out / fold.name
        info = {
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
        finished = resume and not (run_dir / CHECKPOINT_FILE).exists() and (run_dir / "config.json").exists()
        if finished:  # this fold completed before the interruption: keep its bundle
            outcome = _finished_outcome(run_dir)
            outcomes.append(outcome)
            bundles.append(run_dir)
            rows.append(_fold_row(fold, run_dir, outcome))
            if on_fold is not None:
                on_fold(fold, outcome)
            continue
        outcome = train_classifier(
            fold.train.texts,
            fold.train.labels,
            fold.dev.texts,
            fold.dev.labels,
            corpus.label_names,
            model_options,
            train_config,
            vocab_config,
            corpus.lowercase,
            vectors,
            fold.test.texts if fold.test else None,
            fold.test.labels if fold.test else None,
            run_dir,
            resume and (run_dir / CHECKPOINT_FILE).exists(),  # a fold never started starts afresh
            progress,
            info,
        )
        if outcome.fit.best_epoch > 0:  # interrupted before any epoch ended: nothing worth writing
            bundles.append(outcome.classifier.save(run_dir, half=half))
        if not outcome.fit.interrupted:  # finished: nothing left to resume
            (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        outcomes.append(outcome)
        rows.append(_fold_row(fold, run_dir, outcome))
        if on_fold is not None:
            on_fold(fold, outcome)
        if outcome.fit.interrupted:
            break
    summary: dict = {"dataset": corpus.name, "folds": rows}
    tested = [o.test_metrics for o in outcomes if o.test_metrics]
    if len(tested) > 1:
        summary["test"] = summarize_folds(tested)
    if len(folds) > 1:
        atomic_write_bytes(out / "cv.json", json.dumps(summary, indent=2).encode())
    return ProtocolRun(outcomes, bundles, summary)


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
