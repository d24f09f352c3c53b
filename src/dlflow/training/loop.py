"""The one training loop of the project, readable top to bottom.

``fit`` trains any classifier whose forward takes ``model(*features)`` and
returns logits ``(N, classes)``: a CNN on ``(images,)``, an RNN on
``(token_ids, lengths)``. Each epoch: shuffle, (augment), forward, loss,
backward, (clip), step, schedule; then validate, keep the best weights, write
a checkpoint, tell the callbacks. A run with ``checkpoint_dir`` set resumes
from its last checkpoint and ends bit-identical (on CPU) to an uninterrupted run.

Not distributed yet. For DistributedDataParallel: wrap the model after
``model.to``, shard ``TensorDataset.batches`` by rank, all-reduce the epoch
sums, and let only rank 0 write checkpoints and call the callbacks.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dlflow.training.callbacks import Callback
from dlflow.training.checkpoint import LAST_CHECKPOINT, config_key, load_checkpoint, save_checkpoint
from dlflow.training.data import TensorDataset
from dlflow.training.runtime import (
    configure_threads,
    rng_state,
    seed_everything,
    select_device,
    set_rng_state,
)

logger = logging.getLogger("dlflow.training")

Features = tuple[torch.Tensor, ...]
TrainTransform = Callable[[Features, torch.Generator], Features]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "onecycle", "cosine")
DEVICES = ("auto", "cpu", "cuda")


# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained. Defaults: the Keras tutorial recipe.

    ``label_smoothing`` configures the default loss and is ignored when ``fit``
    gets its own ``loss_fn``. ``early_stopping_patience`` counts epochs without
    a lower validation loss; the best epoch's weights are restored at the end.
    ``progress``, ``checkpoint_dir``, ``resume`` and ``num_threads`` do not
    change the result, so they are not part of the checkpoint key.
    ``bucket_by_feature`` names the feature (e.g. sequence lengths) by which
    training batches are grouped, see ``TensorDataset.batches``.
    """

    epochs: int = 5
    batch_size: int = 64
    eval_batch_size: int = 1024
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "constant"
    label_smoothing: float = 0.0
    max_grad_norm: float | None = None
    early_stopping_patience: int | None = None
    seed: int = 42
    deterministic: bool = True
    device: str = "auto"
    num_threads: int | None = None
    channels_last: bool = False
    bucket_by_feature: int | None = None
    checkpoint_dir: str | None = None
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        rules = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, ">= 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("lr", self.lr > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("schedule", self.schedule in SCHEDULES, f"one of {SCHEDULES}"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("max_grad_norm", self.max_grad_norm is None or self.max_grad_norm > 0, "None or > 0"),
            (
                "early_stopping_patience",
                self.early_stopping_patience is None or self.early_stopping_patience >= 1,
                "None or >= 1",
            ),
            ("device", self.device in DEVICES, f"one of {DEVICES}"),
            ("num_threads", self.num_threads is None or self.num_threads >= 1, "None or >= 1"),
            ("bucket_by_feature", self.bucket_by_feature is None or self.bucket_by_feature >= 0, "None or >= 0"),
        ]
        for name, ok, requirement in rules:
            if not ok:
                raise ValueError(f"TrainConfig.{name} must be {requirement}, got {getattr(self, name)!r}")


@dataclass
class EpochRecord:
    """Metrics of one epoch. ``lr`` is the rate of the epoch's last step; throughput counts training only."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    epoch_seconds: float
    samples_per_second: float


@dataclass
class FitResult:
    """What ``fit`` returns.

    ``best_epoch`` has the lowest validation loss; the model holds its weights
    when early stopping is on, the last epoch's otherwise. ``train_seconds``
    sums the epochs' times, including epochs done before a resume.
    """

    model: nn.Module
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool
    resumed_from_epoch: int
    train_seconds: float


@dataclass
class _Progress:
    """The loop's own state, saved in every checkpoint."""

    epoch: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stopped_early: bool = False


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` over all model parameters."""
    params, lr, wd = model.parameters(), config.lr, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step learning-rate schedule; ``onecycle`` peaks at ``config.lr``."""
    total_steps = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


# --------------------------------------------------------------------------- training


def fit(
    model: nn.Module,
    train: TensorDataset,
    val: TensorDataset,
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    train_transform: TrainTransform | None = None,
    loss_fn: LossFn | None = None,
    run_key: str | None = None,
) -> FitResult:
    """Train ``model`` on ``train``, validating on ``val`` after every epoch.

    Args:
        model: called as ``model(*features)``, returns logits ``(N, classes)``.
        train, val: in-memory, non-empty datasets.
        config: the recipe.
        callbacks: told of the start, of every epoch and of the end.
        train_transform: ``(features, generator) -> features``, a batch
            augmentation for training batches only; draw randomness from
            ``generator`` (a CPU generator) so runs are reproducible.
        loss_fn: ``(logits, targets) -> mean loss``; default cross-entropy with
            ``config.label_smoothing``.
        run_key: checkpoint sub-folder; default ``checkpoint.config_key(...)``.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"train and val must not be empty, got {len(train)} and {len(val)} samples")

    # -- where and how to run
    configure_threads(config.num_threads)
    device = select_device(config.device)
    seed_everything(config.seed, config.deterministic)
    checkpoint_path = None
    if config.checkpoint_dir is not None:
        run_key = run_key or config_key(
            config, model, train, val, train_transform=train_transform, loss_fn=loss_fn
        )
        checkpoint_path = Path(config.checkpoint_dir) / run_key / LAST_CHECKPOINT

    # -- model, data, loss, optimizer, schedule, shuffling
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    train, val = train.to(device), val.to(device)
    if loss_fn is None:
        loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)  # batch order and augmentation
    progress = _Progress()

    # -- resume from the last checkpoint, if any
    checkpoint = load_checkpoint(checkpoint_path) if checkpoint_path and config.resume else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        generator.set_state(checkpoint["generator"])
        set_rng_state(checkpoint["rng"])
        progress = _progress_from_dict(checkpoint["progress"])
        logger.info("resuming from %s after epoch %d", checkpoint_path, progress.epoch)
    resumed_from_epoch = progress.epoch

    remaining = range(0) if progress.stopped_early else range(progress.epoch + 1, config.epochs + 1)
    if remaining:
        logger.info(
            "training %s on %s: %d train / %d val samples, epochs %d-%d",
            type(model).__name__, device, len(train), len(val), remaining[0], remaining[-1],
        )  # fmt: skip
    else:
        logger.info("run already finished after epoch %d: nothing to train", progress.epoch)
    for callback in callbacks:
        callback.on_train_start(config, progress.epoch)

    for epoch in remaining:
        # -- train one epoch
        started = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        batches = tqdm(
            train.batches(config.batch_size, shuffle=True, generator=generator, bucket_by=config.bucket_by_feature),
            total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
            disable=not config.progress, leave=False,
        )  # fmt: skip
        for step, (features, targets) in enumerate(batches, start=1):
            if train_transform is not None:
                features = train_transform(features, generator)
            if config.channels_last:
                features = _channels_last(features)
            logits = model(*features)
            loss = loss_fn(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()

            loss_sum += loss.detach() * len(targets)
            correct += (logits.argmax(dim=1) == targets).sum()
            seen += len(targets)
            if config.progress and (step % 20 == 0 or step == steps_per_epoch):
                batches.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.4f}")
        train_loss, train_accuracy = loss_sum.item() / seen, correct.item() / seen  # waits for the device
        train_time = time.perf_counter() - started

        # -- validate, record
        val_loss, val_accuracy = evaluate(
            model, val, loss_fn, batch_size=config.eval_batch_size, channels_last=config.channels_last
        )
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            lr=lr,
            epoch_seconds=time.perf_counter() - started,
            samples_per_second=seen / train_time,
        )
        progress.history.append(record)
        progress.epoch = epoch
        logger.info(
            "epoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  lr %.2e  %.1f s  %.0f samples/s",
            epoch, config.epochs, train_loss, train_accuracy, val_loss, val_accuracy, lr,
            record.epoch_seconds, record.samples_per_second,
        )  # fmt: skip

        # -- best weights and early stopping (on validation loss)
        if val_loss < progress.best_val_loss:
            progress.best_val_loss, progress.best_epoch, progress.bad_epochs = val_loss, epoch, 0
            if config.early_stopping_patience is not None:
                progress.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            progress.bad_epochs += 1
            patience = config.early_stopping_patience
            progress.stopped_early = patience is not None and progress.bad_epochs >= patience

        # -- checkpoint, then callbacks
        if checkpoint_path is not None:
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "rng": rng_state(),
                    "progress": _progress_to_dict(progress),
                    "config": dataclasses.asdict(config),
                },
                checkpoint_path,
            )
        for callback in callbacks:
            callback.on_epoch_end(record, model)
        if progress.stopped_early:
            logger.info("early stop after epoch %d; best epoch %d", epoch, progress.best_epoch)
            break

    # -- hand back the best weights (early stopping) and the history
    if progress.best_weights is not None:
        model.load_state_dict(progress.best_weights)
    model.eval()
    result = FitResult(
        model=model,
        history=progress.history,
        best_epoch=progress.best_epoch,
        stopped_early=progress.stopped_early,
        resumed_from_epoch=resumed_from_epoch,
        train_seconds=sum(r.epoch_seconds for r in progress.history),
    )
    for callback in callbacks:
        callback.on_train_end(result)
    return result


# --------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: TensorDataset,
    loss_fn: LossFn,
    *,
    batch_size: int = 1024,
    channels_last: bool = False,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``data`` (already on the model's device), in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=data.targets.device)
    correct = torch.zeros((), device=data.targets.device, dtype=torch.long)
    for features, targets in data.batches(batch_size, shuffle=False):
        if channels_last:
            features = _channels_last(features)
        logits = model(*features)
        loss_sum += loss_fn(logits, targets) * len(targets)
        correct += (logits.argmax(dim=1) == targets).sum()
    return loss_sum.item() / len(data), correct.item() / len(data)


@torch.inference_mode()
def predict(
    model: nn.Module,
    features: Features,
    *,
    batch_size: int = 1024,
    device: torch.device | str = "auto",
    transform_tta: Callable[[Features], Features] | None = None,
) -> torch.Tensor:
    """Class probabilities ``(N, classes)`` on the CPU, computed in eval mode, batch by batch.

    Moves ``model`` to ``device``. With ``transform_tta`` (e.g. a horizontal
    flip) the probabilities of the original and the transformed batch are averaged.
    """
    device = select_device(device) if isinstance(device, str) and device in DEVICES else torch.device(device)
    was_training = model.training
    model.eval().to(device)
    probabilities = []
    for start in range(0, features[0].shape[0], batch_size):
        batch = tuple(f[start : start + batch_size].to(device) for f in features)
        probs = model(*batch).softmax(dim=-1)
        if transform_tta is not None:
            probs = (probs + model(*transform_tta(batch)).softmax(dim=-1)) / 2
        probabilities.append(probs.cpu())
    model.train(was_training)
    return torch.cat(probabilities)


# --------------------------------------------------------------------------- helpers


def _channels_last(features: Features) -> Features:
    """4-D (image) features in channels-last memory format; other features unchanged."""
    return tuple(f.contiguous(memory_format=torch.channels_last) if f.dim() == 4 else f for f in features)


def _progress_to_dict(progress: _Progress) -> dict[str, Any]:
    """Plain values and tensors only, so the checkpoint loads with ``weights_only=True``."""
    state = {f.name: getattr(progress, f.name) for f in dataclasses.fields(progress)}
    state["history"] = [dataclasses.asdict(record) for record in progress.history]
    return state


def _progress_from_dict(state: dict[str, Any]) -> _Progress:
    return _Progress(**{**state, "history": [EpochRecord(**r) for r in state["history"]]})
