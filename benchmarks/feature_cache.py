"""How much the frozen-feature cache speeds up training a linear probe (same result, computed once vs every step).

python benchmarks/feature_cache.py [--epochs 5] [--output benchmarks/results/feature_cache.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers

from adapterzoo import AutoAdapter, train
from adapterzoo.data import builtin_dataset


def timed_run(backbone: Path, data, epochs: int, cache: str, workdir: Path) -> tuple[float, float]:
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(str(backbone), method="linear-probe", labels=data.features["label"].names)
    started = time.perf_counter()
    result = train(model, data, data, epochs=epochs, batch_size=32, cache_features=cache, output_dir=workdir / cache,
                   progress=False)  # fmt: skip
    return time.perf_counter() - started, result.metrics["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "feature_cache.json")
    args = parser.parse_args()
    config = transformers.ViTConfig(
        hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768, image_size=64, patch_size=8
    )
    data = builtin_dataset("shapes", "train", num_per_class=32, image_size=64)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        torch.manual_seed(0)
        transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(workdir / "backbone")
        transformers.ViTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(workdir / "backbone")
        uncached, accuracy_uncached = timed_run(workdir / "backbone", data, args.epochs, "no", workdir)
        cached, accuracy_cached = timed_run(workdir / "backbone", data, args.epochs, "yes", workdir)
    report = {
        "benchmark": "feature cache, linear probe",
        "backbone": "ViT, d=192, 6 layers, 64 px, patch 8 (random weights)",
        "examples": len(data),
        "epochs": args.epochs,
        "seconds_uncached": round(uncached, 2),
        "seconds_cached": round(cached, 2),
        "speedup": round(uncached / cached, 2),
        "accuracy_uncached": accuracy_uncached,
        "accuracy_cached": accuracy_cached,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
