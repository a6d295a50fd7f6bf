"""`train`: any installed method, on a CPU, one GPU or many processes, through Accelerate.

One loop serves every method: only trainable parameters reach the optimizer; the method's recipe supplies its
paper's optimizer and schedule; checkpoints hold the trainable state and resume exactly; the best adapter (by a chosen
metric) and the final one are saved as adapters; progress bars and logs come from the main process only.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DataLoaderConfiguration, DistributedType, set_seed
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from adapterzoo.auto import AdapterModel, AutoAdapter
from adapterzoo.compiling import check_training_compile, compiled_for_training
from adapterzoo.data.device_preprocessing import DevicePreprocessing
from adapterzoo.data.loading import Columns, find_columns, label_ids, split_name
from adapterzoo.data.pixel_values import check_pixel_values
from adapterzoo.data.transforms import Collate, ImageExamples, SkippedRows
from adapterzoo.data.workers import loader_options
from adapterzoo.faults import fault_point
from adapterzoo.precision import check_mixed_precision, training_device
from adapterzoo.training.checkpoint import (
    Progress,
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    restore_rng,
    rng_untouched,
    save_checkpoint,
)
from adapterzoo.training.config import TrainingConfig
from adapterzoo.training.evaluation import check_metrics, compute_metrics, evaluation_loader, gather_logits
from adapterzoo.training.feature_cache import encode_features
from adapterzoo.training.finite import FiniteGuard
from adapterzoo.training.logs import RunLogger
from adapterzoo.training.optim import build_optimizer, build_scheduler, learning_rate, trainable_parameters


@dataclass
class TrainingResult:
    """What a run produced: the last evaluation, the best metric, where the adapters were saved, the rows of each
    split skipped for unreadable images (with ``skip_bad_images``), the updates left out for a non-finite loss or
    gradient (with ``nonfinite="skip"``) and those fp16's loss scaler left out for overflowing gradients."""

    metrics: dict[str, float] = field(default_factory=dict)
    best_metric: float | None = None
    best_step: int | None = None
    steps: int = 0
    final_dir: Path | None = None
    best_dir: Path | None = None
    train_seconds: float = 0.0
    skipped_images: dict[str, list[int]] = field(default_factory=dict)
    skipped_updates: int = 0
    scaler_skipped_updates: int = 0


def feature_cache_blocker(model: AdapterModel, config: TrainingConfig) -> str | None:
    """Why backbone features cannot be computed once for this run, or None when they can."""
    if config.augment:
        return "augmentation changes the training images every epoch"
    peft_config = model.peft_model.peft_config[model.adapter_name]
    blocker = getattr(peft_config, "feature_cache_blocker", None)
    if blocker is None:
        return f"'{model.method.name}' adapts the backbone, so its features change while training"
    return blocker()


def train(
    model: AdapterModel,
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset | None = None,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    **options: Any,
) -> TrainingResult:
    """Train ``model``'s adapter and head on ``train_dataset``; evaluate on ``eval_dataset`` when given.

    ``options`` are `TrainingConfig` fields (``epochs=``, ``lr=``, ``output_dir=``, ...), over the method's recipe.
    Datasets are checked before training starts: image and label columns, labels the model knows, non-empty splits.
    A Ctrl-C saves a checkpoint that ``resume_from="latest"`` continues from.
    """
    trainable_parameters(model)
    config = TrainingConfig.resolve(model.method.recipe, options)
    check_mixed_precision(config.mixed_precision, training_device())
    preprocess = DevicePreprocessing(model.image_processor) if config.preprocess_on == "device" else None
    check_metrics(config.metrics, config.metric_for_best if eval_dataset is not None else None)
    if config.compile:
        check_training_compile(model, config.compile_backend)
    columns = find_columns(train_dataset, image_column, label_column)
    train_labels = label_ids(train_dataset, columns, model.labels)
    check_pixel_values(train_dataset, columns, model.image_processor, augment=config.augment)
    eval_loader = None
    if eval_dataset is not None:
        batch_size = config.eval_batch_size or config.batch_size
        eval_loader = evaluation_loader(
            model, eval_dataset, batch_size, image_column, label_column, skip_bad_images=config.skip_bad_images,
            num_workers=config.num_workers, decode_only=preprocess is not None,
        )  # fmt: skip
    blocker = feature_cache_blocker(model, config)
    if config.cache_features == "yes" and blocker:
        raise ValueError(f"Cannot cache backbone features: {blocker}.")
    run = _Run(model, config, use_cache=config.cache_features != "no" and blocker is None, preprocess=preprocess)
    return run.fit(train_dataset, columns, train_labels, eval_loader)


def _launched_but_not_joined() -> bool:
    """Whether a launcher started several processes but this one's Accelerate state was made single-process.

    A plain ``PartialState()`` made before training, on a machine with no accelerator, settles on one process (it
    joins the gloo group only with ``cpu=True``); training would then run alone in every process, so that state is
    dropped and remade. A state that did join its group is kept.
    """
    made = PartialState._shared_state  # read without making one
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and made.get("distributed_type") == DistributedType.NO


class _Run:
    """One training run."""

    def __init__(
        self, model: AdapterModel, config: TrainingConfig, use_cache: bool, preprocess: DevicePreprocessing | None
    ):
        self.model = model
        self.config = config
        self.use_cache = use_cache
        self.preprocess = preprocess  # None: the loader's workers preprocess
        # Each run chooses its own precision and accumulation; Accelerate keeps them in a process-wide state that
        # refuses changes, so reset that state (not the distributed one) before making this run's Accelerator.
        AcceleratorState._reset_state(reset_partial_state=_launched_but_not_joined())
        self.accelerator = Accelerator(
            # On a machine with no accelerator, cpu=True is what makes Accelerate join the gloo process group that
            # torchrun sets up; without it each process would train alone.
            cpu=not torch.accelerator.is_available(),
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        if config.skip_bad_images and self.accelerator.num_processes > 1:
            # Processes that drop different rows would fall out of step: uneven gathers, or one waiting forever.
            raise ValueError("skip_bad_images works in single-process runs only.")
        self.main = self.accelerator.is_main_process
        self.output_dir = Path(config.output_dir)
        self.logger = RunLogger(self.output_dir, enabled=self.main)
        self.progress = Progress()
        self.result = TrainingResult()
        self.skipped = SkippedRows()
        self.guard = FiniteGuard(self.accelerator, config.nonfinite)
        self.evaluated_at: int | None = None
        self.saved_at: int | None = None
        set_seed(config.seed)

    def fit(self, dataset: datasets.Dataset, columns: Columns, labels, eval_loader) -> TrainingResult:
        config, accelerator, model = self.config, self.accelerator, self.model
        model.to(accelerator.device).train()
        examples = ImageExamples(
            dataset,
            columns,
            labels,
            split=split_name(dataset, "train"),
            augment=config.augment,
            seed=config.seed,
            crop_scale=(config.crop_min_scale, 1.0),
            skip_bad_images=config.skip_bad_images,
            decode_only=self.preprocess is not None,
        )
        loading = loader_options(config.num_workers, accelerator.device)
        if self.use_cache:
            batch_size = config.eval_batch_size or config.batch_size
            images = DataLoader(examples, batch_size=batch_size, collate_fn=Collate(model.image_processor), **loading)
            train_loader = self._shuffled_loader(self._encoded(images), _feature_batch)
            if eval_loader is not None:
                eval_loader = DataLoader(self._encoded(eval_loader), batch_size=batch_size, collate_fn=_feature_batch)
        else:
            train_loader = self._shuffled_loader(examples, Collate(model.image_processor), **loading)
        total_batch = config.batch_size * config.gradient_accumulation_steps * accelerator.num_processes
        lr = learning_rate(config, total_batch)
        optimizer = build_optimizer(model, config, lr)
        prepared, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
        if eval_loader is not None:
            eval_loader = accelerator.prepare(eval_loader)
        if config.compile:
            # Only the training step runs compiled: evaluation runs `model` (no second, eval-mode graph), and saving
            # and checkpoints read `model`, whose parameter names the compiled wrapper leaves unprefixed.
            prepared = compiled_for_training(model, prepared, config.compile_backend)
        self.eval_loader = eval_loader
        steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
        total_steps = config.max_steps or config.epochs * steps_per_epoch
        scheduler = build_scheduler(optimizer, config, total_steps)
        self.optimizer, self.scheduler = optimizer, scheduler
        self._resume()

        self.logger.console(
            f"{model.method.name}: {model.trainable_parameters:,} trainable parameters; {total_steps} steps of "
            f"{total_batch} examples at lr {lr:g} on {accelerator.num_processes} process(es)"
            + ("; backbone features cached" if self.use_cache else "")
        )
        start = {"config": config.to_dict(), "total_steps": total_steps, "lr": lr, "cached_features": self.use_cache}
        self.logger.write({"event": "start", **start})
        progress = self.progress
        show = self.main and config.progress
        bar = tqdm(total=total_steps, initial=progress.step, desc="training", disable=not show)
        synced, synced_rng = replace(progress), capture_rng()
        started = time.perf_counter()
        interrupts = DeferredInterrupts(enabled=accelerator.num_processes == 1)
        try:
            interrupts.install()
            while progress.step < total_steps:
                examples.set_epoch(progress.epoch)
                train_loader.set_epoch(progress.epoch)
                # Skipping makes a new loader (new workers): only a resumed epoch does it.
                done = progress.batches_done
                for batch in accelerator.skip_first_batches(train_loader, done) if done else train_loader:
                    if interrupts.pending:
                        raise _DeferredStop
                    if not self.skipped.take(batch):  # every image of this batch was unreadable
                        progress.batches_done += 1
                        continue
                    if self.preprocess is not None:
                        batch = self.preprocess(batch)
                    with accelerator.accumulate(prepared):
                        loss = self._update(prepared, batch)
                    progress.batches_done += 1
                    if not accelerator.sync_gradients:
                        continue
                    scheduler.step()
                    progress.step += 1
                    bar.update(1)
                    self._after_step(loss, bar, total_steps)
                    synced, synced_rng = replace(progress), capture_rng()
                    if progress.step >= total_steps:
                        break
                else:
                    fault_point("epoch-end")
                    self.skipped.check_some_left(examples)
                    progress.epoch, progress.batches_done = progress.epoch + 1, 0
                    if config.eval_steps is None:
                        self._evaluate()
                    if config.save_steps is None:
                        self._checkpoint(capture_rng())
                    synced, synced_rng = replace(progress), capture_rng()
        except _DeferredStop:
            # Save where the last optimizer step left off, with the RNG as it was then, so a resume repeats nothing.
            self.progress = synced
            self._checkpoint(synced_rng)
            folder = latest_checkpoint(self.output_dir)
            self.logger.console(f"interrupted: checkpoint saved to {folder}; resume with resume_from='latest'")
            raise
        except KeyboardInterrupt:
            # Not deferred (a second Ctrl-C, or several processes): the weights may be mid-update, so nothing is saved.
            self.logger.console(
                f"stopped at once: no checkpoint written; the last one is {latest_checkpoint(self.output_dir)}"
            )
            raise
        finally:
            interrupts.uninstall()
            bar.close()
        self.result.train_seconds = time.perf_counter() - started
        self._evaluate()
        self._checkpoint(capture_rng())
        return self._finish()

    def _update(self, prepared: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One micro-batch: forward, backward and (on the last micro-batch of a step) the optimizer's update, each
        refused when its loss or gradient norm is not finite."""
        config, accelerator, optimizer = self.config, self.accelerator, self.optimizer
        step, lr = self.progress.step + 1, self.scheduler.get_last_lr()[0]
        fault_point("forward")
        loss = prepared(**batch).loss
        update = self.guard.finite(loss, "loss", step=step, lr=lr)
        if update:
            fault_point("backward")
            accelerator.backward(loss)
        # Only an update that will be made is clipped: clipping unscales fp16's gradients, which a loss scaler allows
        # once per update it makes.
        if update and accelerator.sync_gradients and config.max_grad_norm is not None:
            norm = accelerator.clip_grad_norm_(prepared.parameters(), config.max_grad_norm)
            if accelerator.scaler is None:  # a loss scaler leaves out updates with overflowing gradients itself
                update = self.guard.finite(norm, "gradient norm", step=step, lr=lr)
        fault_point("optimizer-step")
        if update:
            optimizer.step()
            if accelerator.sync_gradients and optimizer.step_was_skipped:
                self.result.scaler_skipped_updates += 1
        optimizer.zero_grad()
        return loss

    def _shuffled_loader(self, dataset: torch.utils.data.Dataset, collate_fn, **loading) -> DataLoader:
        """Batches in a seeded shuffled order; ``loading`` are `loader_options` (none for in-memory features)."""
        # The loader's own generator keeps iterator creation off the global RNG, which dropout draws from: a resumed
        # run restores that RNG and must see the very draws an uninterrupted run saw.
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=True,
            collate_fn=collate_fn,
            generator=torch.Generator().manual_seed(self.config.seed),
            **loading,
        )

    def _encoded(self, loader: DataLoader) -> TensorDataset:
        """The backbone features of every readable example of ``loader`` (see `encode_features`)."""
        show = self.main and self.config.progress
        encoded = encode_features(
            self.model, loader, self.accelerator.device, keep=self.skipped.take, prepare=self.preprocess, progress=show
        )
        self.skipped.check_some_left(loader.dataset)
        return encoded

    def _resume(self) -> None:
        if self.config.resume_from is None:
            return
        folder = Path(self.config.resume_from)
        if self.config.resume_from == "latest":
            folder = latest_checkpoint(self.output_dir)
            if folder is None:
                raise FileNotFoundError(f"No checkpoint to resume from in {self.output_dir / 'checkpoints'}.")
        scaler = self.accelerator.scaler
        self.progress, rng = load_checkpoint(folder, self.model, self.optimizer, self.scheduler, scaler)
        restore_rng(rng)
        self.result.best_metric, self.result.best_step = self.progress.best_metric, self.progress.best_step
        self.logger.console(f"resumed from {folder} at step {self.progress.step}")

    def _after_step(self, loss: torch.Tensor, bar: tqdm, total_steps: int) -> None:
        config, step = self.config, self.progress.step
        if step % config.log_steps == 0 or step == total_steps:
            loss_value = self.accelerator.reduce(loss.detach(), reduction="mean").item()
            lr = self.scheduler.get_last_lr()[0]
            self.logger.write({"step": step, "epoch": self.progress.epoch, "loss": loss_value, "lr": lr})
            bar.set_postfix(loss=f"{loss_value:.4f}")
        if config.eval_steps is not None and step % config.eval_steps == 0:
            self._evaluate()
        if config.save_steps is not None and step % config.save_steps == 0:
            self._checkpoint(capture_rng())

    def _evaluate(self) -> None:
        progress = self.progress
        if self.eval_loader is None or self.evaluated_at == progress.step:
            return
        self.evaluated_at = progress.step
        with rng_untouched():
            logits, labels = gather_logits(
                self.model, self.eval_loader, self.accelerator, self.skipped, progress=self.config.progress,
                preprocess=None if self.use_cache else self.preprocess,
            )  # fmt: skip
        metrics = compute_metrics(self.config.metrics, logits, labels)
        self.result.metrics = metrics
        self.model.metrics = {k: v for k, v in metrics.items() if k != "num_examples"}
        evaluation = {f"eval_{k}": v for k, v in metrics.items()}
        self.logger.write({"step": progress.step, "epoch": progress.epoch, **evaluation})
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "num_examples")
        self.logger.console(f"step {progress.step}: {shown}")
        value, best = metrics[self.config.metric_for_best], progress.best_metric
        if best is None or (value > best if self.config.greater_is_better else value < best):
            progress.best_metric, progress.best_step = value, progress.step
            self.result.best_metric, self.result.best_step = value, progress.step
            if self.main:
                self.model.save_pretrained(self.output_dir / "best")

    def _checkpoint(self, rng: dict[str, Any]) -> Path | None:
        folder = None
        if self.saved_at != self.progress.step:
            self.saved_at = self.progress.step
            if self.main:
                config = self.config
                folder = save_checkpoint(
                    self.output_dir, self.model, self.optimizer, self.scheduler, self.progress, rng, config.to_dict(),
                    self.accelerator.scaler,
                )  # fmt: skip
                prune_checkpoints(self.output_dir, config.save_total_limit)
        self.accelerator.wait_for_everyone()
        return folder

    def _finish(self) -> TrainingResult:
        result = self.result
        result.steps = self.progress.step
        result.final_dir = self.output_dir / "final"
        result.best_dir = self.output_dir / "best" if result.best_step is not None else None
        result.skipped_images = self.skipped.report()
        result.skipped_updates = self.guard.skipped_updates
        if result.skipped_updates:
            self.logger.console(f"left out {result.skipped_updates} update(s) with a non-finite loss or gradient")
        if result.scaler_skipped_updates:
            self.logger.console(f"fp16's loss scaler left out {result.scaler_skipped_updates} overflowing update(s)")
        for split, rows in result.skipped_images.items():
            self.logger.console(f"skipped {len(rows)} unreadable image(s) of split '{split}': rows {rows}")
        if self.main:
            self.model.save_pretrained(result.final_dir)
            if self.config.push_to_hub:
                source = result.best_dir or result.final_dir
                AutoAdapter.from_pretrained(source).push_to_hub(self.config.push_to_hub)
                self.logger.console(f"pushed {source} to {self.config.push_to_hub}")
        summary = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}
        self.logger.write({"event": "end", **summary})
        self.logger.close()
        self.accelerator.wait_for_everyone()
        self.model.eval()
        return result


class _DeferredStop(KeyboardInterrupt):
    """A Ctrl-C honoured between micro-batches, where the run's state is whole and can be checkpointed."""


class DeferredInterrupts:
    """Turns Ctrl-C into a flag the loop checks between micro-batches, so that it never lands mid-update.

    A second Ctrl-C interrupts at once. Only for single-process runs: several processes could see the flag at
    different batches and wait on each other forever.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.pending = False
        self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.pending = True
        signal.signal(signal.SIGINT, self._previous)

    def install(self) -> None:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        if self.enabled and self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _feature_batch(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    features, labels = zip(*batch, strict=True)
    return {"features": torch.stack(features), "labels": torch.stack(labels)}
