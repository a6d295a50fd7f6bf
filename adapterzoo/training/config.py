"""`TrainingConfig`: every option of `adapterzoo.train`, which are also the flags of ``adapterzoo train`` and the keys
of its YAML config. Values come, lowest priority first, from the defaults here, the method's recipe (its paper's
optimizer and schedule), then what the user passes."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapterzoo.errors import UnknownOptionError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("cosine", "linear", "constant")
PRECISIONS = ("no", "fp16", "bf16")
CACHE_MODES = ("auto", "yes", "no")
NONFINITE_MODES = ("stop", "skip")
PREPROCESS_PLACES = ("cpu", "device")


def _option(default: Any, help: str, **kwargs: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainingConfig:
    """How `adapterzoo.train` trains (see each field's help, also shown by ``adapterzoo train --help``)."""

    output_dir: str = _option("outputs/run", "where checkpoints, logs and the final and best adapters are written")
    epochs: int = _option(10, "passes over the training set")
    max_steps: int | None = _option(None, "stop after this many optimizer steps (overrides epochs)")
    batch_size: int = _option(32, "examples per step and process, before gradient accumulation")
    eval_batch_size: int | None = _option(None, "examples per evaluation batch (default: batch_size)")
    gradient_accumulation_steps: int = _option(1, "micro-batches accumulated per optimizer step")
    optimizer: str = _option("adamw", "adamw or sgd", choices=OPTIMIZERS)
    lr: float | None = _option(None, "learning rate; default base_lr x total batch size / 256 when base_lr is set")
    base_lr: float | None = _option(None, "learning rate per 256 examples, scaled by the total batch size (VPT)")
    weight_decay: float = _option(0.0, "decoupled (adamw) or L2 (sgd) weight decay; never on biases and norms")
    momentum: float = _option(0.9, "SGD momentum")
    scheduler: str = _option("cosine", "learning-rate schedule after warmup", choices=SCHEDULERS)
    warmup_ratio: float = _option(0.0, "fraction of the steps spent warming up")
    warmup_steps: int | None = _option(None, "steps spent warming up (overrides warmup_ratio)")
    warmup_lr: float | None = _option(None, "hold this constant rate during warmup instead of a linear ramp (MaPLe)")
    max_grad_norm: float | None = _option(None, "clip gradients to this total norm")
    mixed_precision: str = _option("no", "no, fp16 (GPU) or bf16", choices=PRECISIONS)
    seed: int = _option(0, "seed of data order, augmentation, initialisation and dropout")
    augment: bool = _option(False, "random resized crop and horizontal flip of training images")
    crop_min_scale: float = _option(0.08, "smallest area fraction a random crop keeps")
    eval_steps: int | None = _option(None, "evaluate every this many steps (default: after every epoch)")
    save_steps: int | None = _option(None, "checkpoint every this many steps (default: after every epoch)")
    save_total_limit: int = _option(2, "checkpoints kept (older ones are deleted)")
    metrics: list[str] = _option(["accuracy"], "metrics computed at evaluation (shipped evaluate modules)")
    metric_for_best: str = _option("accuracy", "metric that picks the best checkpoint")
    greater_is_better: bool = _option(True, "whether a larger metric_for_best is better")
    resume_from: str | None = _option(None, "a checkpoint folder, or 'latest' in output_dir, to resume from")
    push_to_hub: str | None = _option(None, "push the best (or, without evaluation, the final) adapter to this repo")
    log_steps: int = _option(10, "log the training loss every this many steps")
    cache_features: str = _option(
        "auto",
        "compute frozen backbone features once and train the head on them: auto (when the method allows it and "
        "there is no augmentation), yes (or fail saying why not), no",
        choices=CACHE_MODES,
    )
    nonfinite: str = _option(
        "stop",
        "on a NaN or infinite loss or gradient: 'stop' with an error (checkpoints saved before it are kept), or "
        "'skip' that update and go on, as mixed-precision loss scalers do",
        choices=NONFINITE_MODES,
    )
    num_workers: int | str = _option(
        "auto",
        "data-loading worker processes: a count, or auto (feeding an accelerator, every available CPU but one, at "
        "most 8; on the CPU, 0)",
    )
    preprocess_on: str = _option(
        "cpu",
        "where images are resized, cropped, normalised and augmented: cpu (in the data-loading workers), or device "
        "(workers only decode; the model's device does the rest, from the image processor's settings)",
        choices=PREPROCESS_PLACES,
    )
    skip_bad_images: bool = _option(
        False,
        "leave out rows whose image cannot be read (corrupt, truncated, not an image), warning about each and "
        "reporting them at the end, instead of stopping; single-process runs only",
    )
    compile: bool = _option(
        False,
        "train through torch.compile (TorchDynamo); evaluation, saving and checkpoints use the model as it is",
    )
    compile_backend: str = _option("inductor", "the torch.compile backend (inductor; aot_eager to debug)")
    progress: bool = _option(True, "show progress bars (main process only)")

    def __post_init__(self) -> None:
        self.output_dir = str(self.output_dir)
        if self.resume_from is not None:
            self.resume_from = str(self.resume_from)
        for name in ("optimizer", "scheduler", "mixed_precision", "cache_features", "nonfinite", "preprocess_on"):
            choices = self.field_metadata(name)["choices"]
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not '{getattr(self, name)}'.")
        if self.num_workers != "auto":
            if not str(self.num_workers).isdigit():
                raise ValueError(f"num_workers must be 'auto' or a count of at least 0, not '{self.num_workers}'.")
            self.num_workers = int(self.num_workers)
        positive = ("epochs", "batch_size", "gradient_accumulation_steps", "log_steps", "save_total_limit")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}.")

    @classmethod
    def field_metadata(cls, name: str) -> Mapping[str, Any]:
        return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def check_names(cls, options: Mapping[str, Any], source: str = "training option") -> None:
        valid = cls.option_names()
        for name in options:
            if name not in valid:
                close = difflib.get_close_matches(name, valid, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise UnknownOptionError(f"Unknown {source} '{name}'.{hint} Valid: {', '.join(valid)}.")

    @classmethod
    def resolve(cls, recipe: Mapping[str, Any], options: Mapping[str, Any]) -> TrainingConfig:
        """The defaults, overridden by a method's recipe, overridden by the user's options."""
        cls.check_names(recipe, "recipe option")
        cls.check_names(options)
        return cls(**{**recipe, **options})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
