"""The feature cache: a frozen backbone's image features, computed once, for training and fitting on top of them.

`adapterzoo.train` uses it when nothing before the head adapts (a linear probe, Moment Probing, CoOp's text side),
and `adapterzoo.fit` always (GDA and Tip-Adapter only read frozen features).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from accelerate.utils import send_to_device
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm


def encode_features(
    model,
    batches: Iterable[dict[str, torch.Tensor]],
    device: torch.device,
    *,
    keep: Callable[[dict], bool] | None = None,
    prepare: Callable[[dict], dict] | None = None,
    progress: bool = False,
) -> TensorDataset:
    """The task model's ``encode`` output for every batch (eval mode, no gradients) and the batches' labels, on the
    CPU; ``keep`` may drop a batch (all its images unreadable); ``prepare`` makes a kept batch's pixel values (device
    preprocessing); ``progress`` shows a bar."""
    features, labels = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in tqdm(batches, desc="caching features", disable=not progress):
            if keep is not None and not keep(batch):
                continue
            if prepare is not None:
                batch = prepare(send_to_device(batch, device))
            features.append(model.task_model.encode(batch["pixel_values"].to(device)).cpu())
            labels.append(batch["labels"])
    model.train(was_training)
    if not features:  # every batch dropped: the caller says why
        return TensorDataset(torch.empty(0), torch.empty(0, dtype=torch.long))
    return TensorDataset(torch.cat(features), torch.cat(labels))
