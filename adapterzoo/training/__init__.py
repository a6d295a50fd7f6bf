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
    "Adaptation": "adapterzoo.training.protocols",
    "BaseToNovelResult": "adapterzoo.training.protocols",
    "FewShotPoint": "adapterzoo.training.protocols",
    "adapt": "adapterzoo.training.protocols",
    "base_to_novel": "adapterzoo.training.protocols",
    "evaluate_base_to_novel": "adapterzoo.training.protocols",
    "few_shot_curve": "adapterzoo.training.protocols",
    "TrainingResult": "adapterzoo.training.trainer",
    "train": "adapterzoo.training.trainer",
}

if TYPE_CHECKING:
    from adapterzoo.training.config import TrainingConfig
    from adapterzoo.training.evaluation import evaluate
    from adapterzoo.training.fit import fit
    from adapterzoo.training.protocols import (
        Adaptation,
        BaseToNovelResult,
        FewShotPoint,
        adapt,
        base_to_novel,
        evaluate_base_to_novel,
        few_shot_curve,
    )
    from adapterzoo.training.trainer import TrainingResult, train

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)

__all__ = [
    "Adaptation",
    "BaseToNovelResult",
    "FewShotPoint",
    "TrainingConfig",
    "TrainingResult",
    "adapt",
    "base_to_novel",
    "evaluate",
    "evaluate_base_to_novel",
    "few_shot_curve",
    "fit",
    "train",
]
