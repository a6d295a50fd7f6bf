"""Training on several processes with no change to the code: the same script on 1 CPU, N CPU processes, or N GPUs.

    python examples/multi_process.py                                         # one process
    torchrun --nproc_per_node 2 examples/multi_process.py                    # two CPU processes (gloo), or 2 GPUs
    accelerate launch --multi_gpu --num_processes 4 examples/multi_process.py   # four GPUs (after `accelerate config`)

`adapterzoo.train` runs on Accelerate: each process trains on its share of every batch (``batch_size`` is per
process), gradients are averaged, evaluation gathers every example exactly once, and only the main process writes
checkpoints, logs and adapters.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from accelerate import PartialState

import adapterzoo
from adapterzoo import AutoAdapter
from adapterzoo.data import builtin_dataset
from adapterzoo.pretraining import TARGET_SHAPES, zoo_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="a Hub id or a folder (default: the zoo's small pretrained ViT)")
    parser.add_argument("--method", default="vpt")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--output", type=Path, default=Path("outputs/multi-process"))
    parser.add_argument("--quick", action="store_true", help="the seconds-long backbone (for tests)")
    args = parser.parse_args()

    # The launcher's processes, joined (on CPUs, Accelerate joins torchrun's gloo group only when told cpu=True).
    state = PartialState(cpu=not torch.accelerator.is_available())
    shapes = list(TARGET_SHAPES)
    train = builtin_dataset("shapes", "train", num_per_class=64, classes=shapes)
    test = builtin_dataset("shapes", "test", num_per_class=25, classes=shapes)
    # The main process fetches (or pretrains and publishes) the backbone first; the others then find it published.
    with state.main_process_first(), zoo_backbone("vit", args.backbone, quick=args.quick) as backbone:
        torch.manual_seed(0)  # the same initial adapter in every process
        model = AutoAdapter.from_backbone(backbone, method=args.method, labels=shapes)
    result = adapterzoo.train(
        model, train, test, epochs=args.epochs, batch_size=16, output_dir=args.output, progress=state.is_main_process
    )
    if state.is_main_process:
        print(f"{state.num_processes} process(es) on {state.device}: accuracy {result.metrics['accuracy']:.1%} "
              f"over {result.metrics['num_examples']} test images; adapter in {result.final_dir}")  # fmt: skip


if __name__ == "__main__":
    main()
