"""`bpiml train`: distil pseudo masks into the student, resumably.

Run folder layout: ``config.json`` (the whole TrainConfig), ``metrics.csv`` (one row per
epoch: losses, the fit to the training targets, validation scores, throughput), ``init.json``
(which encoder tensors were pretrained), ``checkpoints/epoch-NNNN/`` (one complete group per kept
epoch: weights, optimizer, state, metrics), and the links ``last`` (the newest group) and
``best`` (best validation pixel F1), switched atomically (see checkpoint.py). Starting the same
command again continues after the last finished epoch (also after a stop at
``optim.max_minutes``); a different config in the same folder is refused. Randomness is
seeded per epoch, so a resumed run sees the same batches.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.images import PathLike, read_image
from ..data.readers import load_datasets
from ..data.samples import Dataset
from ..devices import autocast, grad_scaler, precision_warning, resolve_precision
from ..errors import ConfigError, DataError, TrainingError
from ..evaluation import metrics as M
from ..evaluation.evaluate import EvaluationReport, evaluate_predictor
from ..fileio import write_json_atomic, write_text_atomic
from ..outputs import folder_lock
from ..runner import run_per_sample
from ..student.inference import predict_image, torch_runner
from ..student.model import Resolution, Student, build_student
from ..student.pretrained import initialise_encoder
from ..synthesis.online import OnlineSynthesisConfig
from . import distributed
from .averaging import weight_average
from .checkpoint import (
    METRICS,
    load_optimizer_state,
    load_student,
    load_training_weights,
    resume_point,
    save_run_checkpoint,
)
from .config import DataConfig, Supervision, TrainConfig
from .data import EpochSampler, TrainingSet, TrainItem, collect_items, load_target
from .init_from import adopt_init_architecture, load_init_weights
from .losses import DistillationLoss
from .run_folder import BadSamples, TrainResult, check_run_folder, metrics_csv, read_metrics

log = logging.getLogger(__name__)


def learning_rate_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def validate(model: Student, dataset: Dataset) -> EvaluationReport:
    """The `bpiml evaluate` numbers of the model on a validation dataset."""
    runner = torch_runner(model)
    return evaluate_predictor(dataset, lambda image: predict_image(runner, model.config, image), desc="validate")[0]


def fit_to_targets(model: Student, items: list[TrainItem], supervision: Supervision,
                   resize_masks: bool = False) -> float | None:
    """Mean pixel F1 (threshold 0.5) of the model against the training targets of ``items``,
    seen without augmentation: how well the student fits what it is taught."""
    runner = torch_runner(model)
    scores = []
    for item in items:
        try:
            image = read_image(item.sample.image)
            target = load_target(item, supervision, image.shape[:2], resize_masks) > 0.5
        except DataError:  # listed by the training loop's BadSamples when it meets it
            continue
        prob = predict_image(runner, model.config, image).probability
        scores.append(M.f1(M.confusion(prob, target)))
    return float(np.mean(scores)) if scores else None


def _readable_items(items):
    """Decode every training image once; unreadable ones are reported and left out."""
    run = run_per_sample([i.sample for i in items], lambda s: read_image(s.image).shape, desc="check images",
                         total=len(items))
    return [i for i in items if i.sample.name in run.results], run.failures


def synthetic_hosts(data: DataConfig) -> list[Path]:
    """Authentic photos that host on-the-fly forgeries (none unless a synthetic fraction is set)."""
    if not data.synthetic_fraction:
        return []
    if not data.synthetic:
        raise ConfigError("data.synthetic_fraction needs data.synthetic: datasets whose authentic images host "
                          "the forgeries")
    if not 0 < data.synthetic_fraction <= 1:
        raise ConfigError(f"data.synthetic_fraction must be in (0, 1], got {data.synthetic_fraction}")
    photos = [s.image for s in load_datasets(list(data.synthetic)) if not s.is_tampered]
    if not photos:
        raise DataError(f"no authentic image in data.synthetic {list(data.synthetic)}")
    return photos


def _build_model(config: TrainConfig, device: torch.device) -> tuple[Student, torch.optim.Optimizer]:
    """The student (decoder seeded) and its optimizer; pretrained encoder weights are applied by the caller."""
    torch.manual_seed(config.optim.seed)  # the decoder's random initialisation
    model = build_student(config.student).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    optim = config.optim
    optimizer = torch.optim.AdamW([
        {"params": list(model.encoder.parameters()), "base_lr": optim.lr * optim.encoder_lr_scale},
        {"params": [p for p in model.parameters() if id(p) not in encoder_ids], "base_lr": optim.lr},
    ], lr=optim.lr, weight_decay=optim.weight_decay)
    return model, optimizer


def _set_train_mode(model: Student, freeze_batchnorm: bool) -> None:
    model.train()
    if freeze_batchnorm:  # running statistics stay as loaded; the affine weights still learn
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def train(config: TrainConfig, run_dir: PathLike) -> TrainResult:
    """Train (or resume) a student as ``config`` says, writing the run folder (rank 0 only under torchrun,
    holding the folder's lock, so that a second run on the same folder is refused)."""
    run_dir = Path(run_dir)
    config = adopt_init_architecture(config)  # fine-tuning: the init model's architecture, checked
    ctx, device = distributed.setup(config.optim.device)
    with folder_lock(run_dir, "train") if ctx.is_main else nullcontext():
        return _train(config, run_dir, ctx, device)


def _train(config: TrainConfig, run_dir: Path, ctx: distributed.Distributed, device: torch.device) -> TrainResult:
    check_run_folder(run_dir, config, write=ctx.is_main)
    torch.set_num_threads(max(1, config.optim.threads))
    items, skipped = _readable_items(collect_items(config.data.train, config.data.supervision))
    if not items:
        raise DataError("no readable training image")
    val = load_datasets(list(config.data.val)) if config.data.val else None
    if val is not None and config.data.val_limit:
        val = val.replace_samples(val.samples[: config.data.val_limit])
    if val is None:
        log.warning("no validation dataset: the 'best' checkpoint is the last epoch")

    optim = config.optim
    model, optimizer = _build_model(config, device)
    last = resume_point(run_dir, clean=ctx.is_main)
    start_epoch, best_f1 = 0, None
    averaged = None
    if last is not None:
        resumed, state = load_student(last)
        model.load_state_dict(resumed.state_dict())
        if optim.ema_decay:  # model.safetensors holds the average; the optimised weights are kept beside it
            averaged = weight_average(model, optim.ema_decay)
            if not load_training_weights(last, model):
                raise ConfigError(f"{last} has no training weights to resume a weight-averaged run from")
        load_optimizer_state(last, optimizer)
        start_epoch, best_f1 = state["epoch"] + 1, state.get("best_val_f1")
        log.info("%s: resuming after epoch %d (checkpoint %s)", run_dir, state["epoch"] + 1, last.resolve().name)
    elif optim.init:
        init_state = load_init_weights(model, optim.init)
        if ctx.is_main:
            write_json_atomic(run_dir / "init.json", {"source": f"fine-tuned from {optim.init}",
                                                      "init_state": init_state})
    else:
        report = initialise_encoder(config.student.encoder, model.encoder, config.student.encoder_init)
        if ctx.is_main:
            write_json_atomic(run_dir / "init.json", {"source": report.source, "loaded": report.loaded,
                                                      "kept_random": report.kept_random})
    if last is None and optim.ema_decay:  # a fresh run's average starts from its starting weights
        averaged = weight_average(model, optim.ema_decay)
    trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ctx.enabled else model

    native = config.student.resolution is Resolution.NATIVE
    photos = synthetic_hosts(config.data)
    dataset = TrainingSet(items, config.data.supervision, config.student.input_size, config.augment, optim.seed,
                          native, photos, config.data.resize_masks,
                          OnlineSynthesisConfig(object_share=config.data.synthetic_objects,
                                                clone_share=config.data.synthetic_clones))
    fit_items = [i for i in items if i.sample.is_tampered][: config.data.fit_limit]
    loss_fn = DistillationLoss(config.loss)
    precision = resolve_precision(device, optim.precision)
    if optim.precision == "auto" and ctx.is_main:
        log.info("optim.precision=auto: training in %s on %s", precision, device)
    scaler = grad_scaler(device, precision)
    if ctx.is_main and (slow := precision_warning(device, precision)):
        log.warning(slow)
    per_epoch = optim.samples_per_epoch or len(dataset)
    if ctx.enabled and per_epoch % optim.batch_size:
        per_epoch -= per_epoch % optim.batch_size  # every process must take the same number of steps
        log.warning("data-parallel: %d samples per epoch (whole global batches of %d)", per_epoch, optim.batch_size)
    steps_per_epoch = math.ceil(per_epoch / optim.batch_size)
    total_steps = optim.epochs * steps_per_epoch
    warmup = max(1, int(optim.warmup_epochs * steps_per_epoch))
    if averaged is not None and start_epoch:  # the average is under way: its decay continues where it stood
        averaged.n_averaged.fill_(start_epoch * steps_per_epoch)
    # the metrics of the group resumed from (the copy at the run folder's top may be an epoch ahead of it)
    rows = read_metrics((last if last is not None and (last / METRICS).is_file() else run_dir) / METRICS,
                        start_epoch)
    sampler = EpochSampler(len(dataset), per_epoch, optim.seed, config.data.synthetic_fraction if photos else 0.0,
                           rank=ctx.rank, world=ctx.world, global_batch=optim.batch_size)
    # Spawned, not forked, workers: a fork inherits OpenCV's / OpenMP's thread pools mid-state and can hang
    # (seen here after GrabCut ran in the parent). Persistent, so they start once per run, not per epoch.
    loader = DataLoader(dataset, batch_size=distributed.local_batch_size(optim.batch_size, ctx), sampler=sampler,
                        num_workers=optim.workers, worker_init_fn=_worker_init, persistent_workers=optim.workers > 0,
                        pin_memory=device.type == "cuda",
                        multiprocessing_context="spawn" if optim.workers > 0 else None)
    invocation_started = time.perf_counter()
    epochs_done = start_epoch
    bad = BadSamples(run_dir / "skipped_samples.json" if ctx.is_main else None, config.data.max_bad_fraction)
    for epoch in range(start_epoch, optim.epochs):
        started = time.perf_counter()
        torch.manual_seed(optim.seed + epoch)
        sampler.epoch = epoch
        _set_train_mode(model, optim.freeze_batchnorm)
        sums: dict[str, float] = {}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{optim.epochs}", unit="batch", file=sys.stderr,
                   disable=None if ctx.is_main else True, dynamic_ncols=True)
        for i, batch in enumerate(bar):
            factor = learning_rate_factor(epoch * steps_per_epoch + i, total_steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            bad.note(batch.pop("skipped"))
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            # Dice is a mean over the global batch's tampered images, however they fall on the processes
            tampered = ctx.sum(float((batch["label"] > 0.5).sum()), device) / ctx.world
            with autocast(device, precision):
                if model.score_head is not None:
                    logits, score_logits = trained(batch["image"], with_score=True)
                else:
                    logits, score_logits = trained(batch["image"]), None
                loss, terms = loss_fn(logits, batch["target"], batch["region"], batch["label"], tampered,
                                      score_logits, progress=(epoch * steps_per_epoch + i) / total_steps)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value) and precision != "fp16":  # fp16's loss scaler skips such steps itself
                raise TrainingError(
                    f"the loss became {loss_value} at step {i + 1} of epoch {epoch + 1}: training stopped before "
                    f"the weights took it in, and {run_dir} keeps the checkpoints of the epochs before. Try a lower "
                    "optim.lr in a new --out, or check the training targets")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if averaged is not None:
                averaged.update_parameters(model)
            for key, value in {"train_loss": loss_value, **terms}.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{sums['train_loss'] / (i + 1):.4f}")
        train_seconds = time.perf_counter() - started
        bad.check(len(sampler))
        row = {k: round(ctx.sum(v, device) / ctx.world / max(1, len(loader)), 6) for k, v in sorted(sums.items())}
        stop = False
        if ctx.is_main:
            best_f1, stop = _end_epoch(config, run_dir, model, optimizer, val, fit_items, rows, row, epoch, best_f1,
                                       per_epoch, started, train_seconds, invocation_started,
                                       averaged.module if averaged is not None else None)
        epochs_done = epoch + 1
        ctx.barrier()  # the others wait while rank 0 validates and writes
        if ctx.from_main(stop, device):
            break
    if ctx.is_main:
        write_json_atomic(run_dir / "skipped_images.json", skipped)
    return TrainResult(run_dir, epochs_done, optim.epochs, best_f1, skipped, dict(bad.reasons))


def _end_epoch(config: TrainConfig, run_dir: Path, model: Student, optimizer: torch.optim.Optimizer,
               val: Dataset | None, fit_items: list[TrainItem], rows: list[dict], row: dict, epoch: int,
               best_f1: float | None, per_epoch: int, started: float, train_seconds: float,
               invocation_started: float, average: Student | None = None) -> tuple[float | None, bool]:
    """Validate, checkpoint and log one finished epoch; returns the best F1 and whether to stop now.
    With a weight average, the average is what is validated, fitted and saved as the model."""
    optim = config.optim
    training_model, model = (model, average) if average is not None else (None, model)
    report = validate(model, val) if val is not None else None
    f1 = report.pixel_f1 if report is not None else None
    improved = best_f1 is None or (f1 is not None and f1 > best_f1) or report is None
    if improved:
        best_f1 = f1
    row.update(epoch=epoch, samples_seen=(epoch + 1) * per_epoch, lr=optimizer.param_groups[1]["lr"],
               fit_pixel_f1=fit_to_targets(model, fit_items, config.data.supervision, config.data.resize_masks),
               samples_per_second=round(per_epoch / train_seconds, 2),
               seconds=round(time.perf_counter() - started, 1),
               val_pixel_f1=f1, val_pixel_iou=report.pixel_iou if report else None,
               val_pixel_auc=report.pixel_auc if report else None,
               val_image_auc=report.image_auc if report else None)
    rows.append(row)
    state = {"epoch": epoch, "best_val_f1": best_f1, "val": report.to_dict() if report else None}
    metrics = metrics_csv(rows)
    save_run_checkpoint(run_dir, epoch, model, state, optimizer, metrics, best=improved,
                        training_model=training_model)
    write_text_atomic(run_dir / METRICS, metrics)  # a copy at the top, for people and plots
    log.info("epoch %d: loss %.4f, fit F1 %.4f, val pixel F1 %s%s", epoch + 1, row["train_loss"],
             row["fit_pixel_f1"] or 0.0, "n/a" if f1 is None else f"{f1:.4f}", " (best)" if improved else "")
    elapsed = (time.perf_counter() - invocation_started) / 60
    stop = optim.max_minutes is not None and epoch + 1 < optim.epochs and \
        elapsed + row["seconds"] / 60 > optim.max_minutes
    if stop:
        log.warning("stopping after epoch %d of %d: the next epoch would pass max_minutes=%s (%.1f min so far); "
                    "run the same command to continue", epoch + 1, optim.epochs, optim.max_minutes, elapsed)
    return best_f1, stop
