"""Training and evaluation with Accelerate."""

from adapterzoo.training.config import TrainingConfig
from adapterzoo.training.evaluation import evaluate
from adapterzoo.training.trainer import TrainingResult, train

__all__ = ["TrainingConfig", "TrainingResult", "evaluate", "train"]
