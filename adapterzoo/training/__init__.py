"""Training and evaluation with Accelerate."""

from adapterzoo.training.config import TrainingConfig
from adapterzoo.training.evaluation import evaluate
from adapterzoo.training.protocols import BaseToNovelResult, base_to_novel, evaluate_base_to_novel
from adapterzoo.training.trainer import TrainingResult, train

__all__ = [
    "BaseToNovelResult",
    "TrainingConfig",
    "TrainingResult",
    "base_to_novel",
    "evaluate",
    "evaluate_base_to_novel",
    "train",
]
