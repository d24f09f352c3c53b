"""The one training loop of the project, readable top to bottom.

``fit`` trains any classifier whose forward takes ``model(*features)`` and
returns logits ``(N, classes)``: a CNN on ``(images,)``, an RNN on
``(token_ids, lengths)``. Each epoch: shuffle, (augment), forward, loss,
backward, (clip), step, schedule; then validate, keep the best weights, write
a checkpoint, tell the callbacks. A run with ``checkpoint_dir`` set resumes
from its last checkpoint and ends bit-identical (on CPU) to an uninterrupted run.

With ``processes > 1`` it trains with DistributedDataParallel: launch the
program with ``torchrun --nproc_per_node=<processes>``; every process calls
``fit``, which joins the launcher's process group (see ``training.distributed``).
Every process draws the same global batches from the same seeded generator and
trains on its slice of each (``batch_size`` stays the global batch size; DDP
averages the gradients), the epoch sums are all-reduced, validation is
sharded, and rank 0 alone writes checkpoints, logs and calls the callbacks.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from dlflow.training.callbacks import Callback
from dlflow.training.checkpoint import (
    LAST_CHECKPOINT,
    config_key,
    load_checkpoint,
    save_checkpoint,
)
from dlflow.training.config import TrainConfig
from dlflow.training.data import TensorDataset
from dlflow.training.distributed import World, launched_world
from dlflow.training.history import EpochRecord, FitResult, Progress
from dlflow.training.runtime import (
    configure_threads,
    rng_state,
    seed_everything,
    select_device,
    set_rng_state,
    usable_cores,
)
from dlflow.training.streaming import ShardStream

logger = logging.getLogger("dlflow.training")

Features = tuple[torch.Tensor, ...]
TrainTransform = Callable[[Features, torch.Generator], Features]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TrainLoss = Callable[[nn.Module, Features, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def fit(
    model: nn.Module,
    train: TensorDataset | ShardStream,
    val: TensorDataset,
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    train_transform: TrainTransform | None = None,
    loss_fn: LossFn | None = None,
    training_loss: TrainLoss | None = None,
    run_key: str | None = None,
) -> FitResult:
    """Train ``model`` on ``train``, validating on ``val`` after every epoch.

    Args:
        model: called as ``model(*features)``, returns logits ``(N, classes)``.
        train, val: non-empty datasets: in memory, or (``train`` only) streamed from parquet
            shards (``training.streaming.ShardStream``) for data larger than memory.
        config: the recipe.
        callbacks: told of the start, of every epoch and of the end.
        train_transform: ``(features, generator) -> features``, a batch
            augmentation for training batches only; draw randomness from
            ``generator`` (a CPU generator) so runs are reproducible.
        loss_fn: ``(logits, targets) -> mean loss``; default cross-entropy with
            ``config.label_smoothing``.
        training_loss: ``(model, features, targets) -> (logits, mean loss)``, the
            training batches' loss when it needs the model, not only the logits
            (e.g. ``training.adversarial.EmbeddingAdversarialLoss``); validation
            still uses ``loss_fn``. One process only. The gradients are zeroed
            before it is called, so it may back-propagate a part of the loss
            itself and return that part detached: ``fit`` back-propagates the rest.
        run_key: checkpoint sub-folder; default ``checkpoint.config_key(...)``.

    With ``config.processes > 1`` the program must run under ``torchrun`` with
    as many processes (or in an initialised process group): every process
    calls ``fit`` and gets the same result.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"train and val must not be empty, got {len(train)} and {len(val)} samples")
    if len(train) < config.processes:
        raise ValueError(f"{config.processes} processes need at least as many training samples, got {len(train)}")
    if training_loss is not None and config.processes > 1:
        raise ValueError(f"training_loss needs one process (it calls the model itself), got processes={config.processes}")
    if config.epochs_for(len(train)) != config.epochs:  # a small data set: at least min_steps optimiser steps
        logger.info(
            "%d training samples make %d steps an epoch: %d epochs instead of %d, for min_steps=%d",
            len(train), math.ceil(len(train) / config.batch_size), config.epochs_for(len(train)), config.epochs, config.min_steps,
        )  # fmt: skip
        config = config.model_copy(update={"epochs": config.epochs_for(len(train))})
    checkpoint_path = None
    if config.checkpoint_dir is not None:
        run_key = run_key or config_key(
            config, model, train, val, train_transform=train_transform, loss_fn=loss_fn, training_loss=training_loss
        )
        checkpoint_path = Path(config.checkpoint_dir) / run_key / LAST_CHECKPOINT
    with launched_world(config.processes, select_device(config.device).type) as world:
        return _fit(
            world, model, train, val, config,
            callbacks=callbacks, train_transform=train_transform, loss_fn=loss_fn, training_loss=training_loss,
            checkpoint_path=checkpoint_path,
        )  # fmt: skip


@dataclass
class _Training:
    """What the epochs change, and a checkpoint saves besides the progress."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # batch order and augmentation, the same in every process


def _fit(
    world: World, model: nn.Module, train: TensorDataset | ShardStream, val: TensorDataset, config: TrainConfig, *,
    callbacks: Sequence[Callback], train_transform: TrainTransform | None, loss_fn: LossFn | None,
    training_loss: TrainLoss | None, checkpoint_path: Path | None,
) -> FitResult:  # fmt: skip
    """The loop itself, run by every process of ``world``."""
    # -- where and how to run
    configure_threads(config.num_threads or max(1, usable_cores() // world.local_size))
    device = world.device(select_device(config.device))
    seed_everything(config.seed + world.rank, config.deterministic)
    callbacks = callbacks if world.is_main else ()
    log = logger.info if world.is_main else logger.debug

    # -- model, data, loss, optimizer, schedule, shuffling
    model.to(device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    train, val = train.to(device), val.to(device)
    if isinstance(train, ShardStream):
        train = train.for_rank(world.rank, world.size)  # decodes only this process's slice of each global batch
    if loss_fn is None:
        loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch=math.ceil(len(train) / config.batch_size))
    training = _Training(model, optimizer, scheduler, torch.Generator().manual_seed(config.seed))

    # -- resume from the last checkpoint, if any
    restored = _restore(checkpoint_path if config.resume else None, world, training)
    progress = restored or Progress()
    resumed_from_epoch = progress.epoch
    net = world.wrap(model)  # DistributedDataParallel with several processes
    val_part = TensorDataset(world.shard(val.features), *world.shard([val.targets]))  # this process's part
    remaining = range(0) if progress.stopped_early else range(progress.epoch + 1, config.epochs + 1)
    _log_plan(log, world, model, device, train, val, config, remaining, progress)
    for callback in callbacks:
        if restored is not None:
            callback.on_resume(list(progress.history))
        callback.on_train_start(config, progress.epoch)

    # -- the epochs: train, validate, record (best weights, early stopping), checkpoint, callbacks
    for epoch in remaining:
        started = time.perf_counter()
        train_loss, train_accuracy, seen, lr = _train_one_epoch(
            world, net, training, train, config, epoch, loss_fn, train_transform, training_loss
        )
        samples_per_second = seen / (time.perf_counter() - started)
        validated = epoch % config.validate_every == 0 or epoch == config.epochs
        val_loss, val_accuracy = (math.nan, math.nan)  # recorded for the epochs not validated
        if validated:
            val_loss, val_accuracy = _validate(world, model, val_part, len(val), loss_fn, config)
        epoch_seconds = time.perf_counter() - started
        record = EpochRecord(epoch, train_loss, train_accuracy, val_loss, val_accuracy, lr, epoch_seconds, samples_per_second)
        progress.add(record, validated, model, config.early_stopping_patience)
        log(
            "epoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  lr %.2e  %.1f s  %.0f samples/s",
            epoch, config.epochs, train_loss, train_accuracy, val_loss, val_accuracy, lr,
            record.epoch_seconds, record.samples_per_second,
        )  # fmt: skip
        if checkpoint_path is not None:
            _save(checkpoint_path, world, training, progress, config)
        for callback in callbacks:
            callback.on_epoch_end(record, model)
        if progress.stopped_early:
            log("early stop after epoch %d; best epoch %d", epoch, progress.best_epoch)
            break

    # -- hand back the best weights (early stopping) and the history
    world.unwrap(model)
    if progress.best_weights is not None:
        model.load_state_dict(progress.best_weights)
    model.eval()
    train_seconds = sum(r.epoch_seconds for r in progress.history)
    result = FitResult(model, progress.history, progress.best_epoch, progress.stopped_early, resumed_from_epoch, train_seconds)
    for callback in callbacks:
        callback.on_train_end(result)
    return result


# --------------------------------------------------------------------------- the steps of _fit


def _train_one_epoch(
    world: World,
    net: nn.Module,
    training: _Training,
    train: TensorDataset | ShardStream,
    config: TrainConfig,
    epoch: int,
    loss_fn: LossFn,
    train_transform: TrainTransform | None,
    training_loss: TrainLoss | None = None,
) -> tuple[float, float, int, float]:
    """One pass over ``train``: mean loss and accuracy (over all processes), samples trained on, last lr."""
    model, optimizer, scheduler, generator = training.model, training.optimizer, training.scheduler, training.generator
    model.train()
    loss_sum = torch.zeros((), device=train.device)
    correct = torch.zeros((), device=train.device, dtype=torch.long)
    seen = 0
    steps = math.ceil(len(train) / config.batch_size)
    batches = tqdm(
        train.batches(config.batch_size, shuffle=True, generator=generator, bucket_by=config.bucket_by_feature),
        total=steps, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
        disable=None if config.progress and world.is_main else True, leave=False,  # None: off where stderr is no terminal
    )  # fmt: skip
    for step, (features, targets) in enumerate(batches, start=1):
        if train_transform is not None:
            features = train_transform(features, generator)  # on the global batch: the same draws in every process
        local = world.local_batch(features, targets)
        if local is None:
            continue  # fewer samples than processes: skipped by every process, see World.local_batch
        features, targets, weight = local
        if config.channels_last:
            features = _channels_last(features)
        optimizer.zero_grad(set_to_none=True)
        if training_loss is not None:
            logits, loss = training_loss(net, features, targets)  # may have back-propagated a part already
        else:
            logits = net(*features)
            loss = loss_fn(logits, targets)
        (loss * weight).backward()  # weight 1 in a world of one
        if config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()

        loss_sum += loss.detach() * len(targets)
        correct += (logits.argmax(dim=1) == targets).sum()
        seen += len(targets)
        if config.progress and world.is_main and (step % 20 == 0 or step == steps):
            batches.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.4f}")
    loss_total, correct_total, seen = world.sum(loss_sum, correct, seen)  # waits for the device
    return loss_total / seen, correct_total / seen, seen, lr


def _validate(
    world: World, model: nn.Module, val_part: TensorDataset, val_size: int, loss_fn: LossFn, config: TrainConfig
) -> tuple[float, float]:
    """Mean loss and accuracy on the whole validation set (``val_size`` samples), each process evaluating its part."""
    world.broadcast_buffers(model)  # rank 0's BatchNorm running statistics in every process
    model.eval()
    with torch.inference_mode():
        loss_sum = torch.zeros((), device=val_part.targets.device)
        correct = torch.zeros((), device=val_part.targets.device, dtype=torch.long)
        for features, targets in val_part.batches(config.eval_batch_size, shuffle=False):
            if config.channels_last:
                features = _channels_last(features)
            logits = model(*features)
            loss_sum += loss_fn(logits, targets) * len(targets)
            correct += (logits.argmax(dim=1) == targets).sum()
    loss_total, correct_total = world.sum(loss_sum, correct)
    return loss_total / val_size, correct_total / val_size


def _save(path: Path, world: World, training: _Training, progress: Progress, config: TrainConfig) -> None:
    """Rank 0 writes the checkpoint: weights, optimizer, schedule, generator, every process's RNG states, progress."""
    rng = world.gather_object(rng_state())
    if world.is_main:
        save_checkpoint(
            {
                "model": training.model.state_dict(),
                "optimizer": training.optimizer.state_dict(),
                "scheduler": training.scheduler.state_dict(),
                "generator": training.generator.get_state(),
                "rng": rng[0],
                **({"rank_rng": rng} if world.size > 1 else {}),
                "progress": progress.to_dict(),
                "config": config.model_dump(),
            },
            path,
        )


def _restore(path: Path | None, world: World, training: _Training) -> Progress | None:
    """Load the checkpoint at ``path`` into ``training`` and the RNGs; its progress, or ``None`` without one.

    Rank 0 reads the file and sends it to the other processes (every process must call this).
    """
    checkpoint = load_checkpoint(path) if path is not None and world.is_main else None
    checkpoint = world.broadcast_object(checkpoint)
    if checkpoint is None:
        return None
    if world.is_main:
        logger.info("resuming from %s after epoch %d", path, checkpoint["progress"]["epoch"])
    training.model.load_state_dict(checkpoint["model"])
    training.optimizer.load_state_dict(checkpoint["optimizer"])
    training.scheduler.load_state_dict(checkpoint["scheduler"])
    training.generator.set_state(checkpoint["generator"])
    set_rng_state(checkpoint["rank_rng"][world.rank] if world.size > 1 else checkpoint["rng"])
    return Progress.from_dict(checkpoint["progress"])


def _log_plan(
    log: Callable[..., None],
    world: World,
    model: nn.Module,
    device: torch.device,
    train: TensorDataset | ShardStream,
    val: TensorDataset,
    config: TrainConfig,
    remaining: range,
    progress: Progress,
) -> None:
    """Say what is about to be trained, and which samples of each epoch several processes must skip."""
    if not remaining:
        log("run already finished after epoch %d: nothing to train", progress.epoch)
        return
    log(
        "training %s on %s%s: %d train%s / %d val samples, epochs %d-%d",
        type(model).__name__, device, f" x {world.size} processes" if world.size > 1 else "",
        len(train), f" (streamed from {len(train.table.parts)} shards)" if isinstance(train, ShardStream) else "",
        len(val), remaining[0], remaining[-1],
    )  # fmt: skip
    skipped = world.skipped_samples(len(train), config.batch_size)
    if skipped and world.is_main:
        logger.warning(
            "the last batch of every epoch holds %d samples, fewer than the %d processes: it is skipped, "
            "so each epoch trains on %d of %d samples (choose a batch_size that leaves no such remainder)",
            skipped, world.size, len(train) - skipped, len(train),
        )  # fmt: skip


# --------------------------------------------------------------------------- optimizer and schedule


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` over all model parameters.

    Adam and AdamW use PyTorch's fused kernel on CPU and CUDA: one pass over each
    parameter instead of six (the same update; an RNN batch over an 18k-word
    embedding trains about 1.6x faster on CPU, ``benchmarks/optimizer_benchmark.py``).
    """
    params, lr, wd = list(model.parameters()), config.lr, config.weight_decay
    fused = all(p.device.type in ("cpu", "cuda") for p in params) or None
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=fused)
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


# --------------------------------------------------------------------------- prediction


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

    Moves ``model`` to ``device`` (see ``runtime.select_device``). With
    ``transform_tta`` (e.g. a horizontal flip) the probabilities of the
    original and the transformed batch are averaged.
    """
    device = select_device(device)
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


def _channels_last(features: Features) -> Features:
    """4-D (image) features in channels-last memory format; other features unchanged."""
    return tuple(f.contiguous(memory_format=torch.channels_last) if f.dim() == 4 else f for f in features)
