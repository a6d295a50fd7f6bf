"""Training and evaluation with Accelerate.

The names are imported on first use, so that `TrainingConfig` (whose fields are the command line's flags) loads
without torch.
"""

from typing import TYPE_CHECKING

from adapterzoo.lazy import lazy_attributes

_LAZY = {
    "TrainingConfig": "adapterzoo.training.config",
    "evaluate": "adapterzoo.training.evaluation",
    "fit": "adapterzoo.training.fit",
    "BaseToNovelResult": "adapterzoo.training.protocols",
    "base_to_novel": "adapterzoo.training.protocols",
    "evaluate_base_to_novel": "adapterzoo.training.protocols",
    "TrainingResult": "adapterzoo.training.trainer",
    "train": "adapterzoo.training.trainer",
}

if TYPE_CHECKING:
    from adapterzoo.training.config import TrainingConfig
    from adapterzoo.training.evaluation import evaluate
    from adapterzoo.training.fit import fit
    from adapterzoo.training.protocols import BaseToNovelResult, base_to_novel, evaluate_base_to_novel
    from adapterzoo.training.trainer import TrainingResult, train

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)

__all__ = [
    "BaseToNovelResult",
    "TrainingConfig",
    "TrainingResult",
    "base_to_novel",
    "evaluate",
    "evaluate_base_to_novel",
    "fit",
    "train",
]
