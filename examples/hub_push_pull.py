"""Share an adapter through a Hub: push it with a model card, pull it back by repo id, pin a revision.

Everything runs against the zoo's local Hub (the embedded server over ~/.cache/adapterzoo/hub), so it works offline.
Against huggingface.co or a lab's own `adapterzoo hub serve`, the same calls work: set HF_ENDPOINT / HF_TOKEN and drop
the `local_hub()` block.

    python examples/hub_push_pull.py [--repo me/vit-lora-shapes]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from huggingface_hub import HfApi

import adapterzoo
from adapterzoo import AutoAdapter
from adapterzoo.data import builtin_dataset
from adapterzoo.pretraining import TARGET_SHAPES, local_hub, pretrained_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default="me/vit-lora-shapes", help="the adapter's repo id")
    parser.add_argument("--output", type=Path, default=Path("outputs/hub-push-pull"))
    parser.add_argument("--quick", action="store_true", help="the seconds-long backbone and one epoch (for tests)")
    args = parser.parse_args()

    shapes = list(TARGET_SHAPES)
    train = builtin_dataset("shapes", "train", num_per_class=64, classes=shapes)
    test = builtin_dataset("shapes", "test", num_per_class=25, classes=shapes)
    with local_hub() as hub:
        print(f"Hub at {hub.url}")
        backbone = pretrained_backbone("vit", quick=args.quick)  # itself a repo on this Hub
        torch.manual_seed(0)
        model = AutoAdapter.from_backbone(backbone, method="lora", labels=shapes)
        adapterzoo.train(model, train, test, epochs=1 if args.quick else 20, batch_size=32, output_dir=args.output)

        first = model.push_to_hub(args.repo, commit_message="LoRA r=8 on q, v")
        api = HfApi()
        tag = f"v{len(api.list_repo_refs(args.repo).tags) + 1}"  # a new tag each run of this script
        api.create_tag(args.repo, tag=tag, revision=first.oid)
        files = ", ".join(sorted(api.list_repo_files(args.repo)))
        print(f"pushed {args.repo} at {first.oid[:12]} (tag {tag}): {files}")
        print(f"model card tags: {api.model_info(args.repo).card_data.tags}")

        loaded = AutoAdapter.from_pretrained(args.repo)  # backbone + adapter + head, backbone at its recorded commit
        pixel_values = loaded.image_processor(list(test["image"])[:8], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            same = torch.equal(loaded(pixel_values).logits, model.eval()(pixel_values).logits)
        backbone_at = f"{loaded.backbone_name}@{loaded.backbone_revision}"
        print(f"pulled by repo id: identical logits: {same}; backbone {backbone_at}")

        adapterzoo.train(model, train, epochs=1, batch_size=32, output_dir=args.output / "more")
        second = model.push_to_hub(args.repo, commit_message="one more epoch")
        pinned = AutoAdapter.from_pretrained(args.repo, revision=tag)
        with torch.no_grad():
            unchanged = torch.equal(pinned(pixel_values).logits, loaded(pixel_values).logits)
        print(f"pushed again at {second.oid[:12]}; revision {tag} still gives the first adapter: {unchanged}")
        print(f"accuracy of the pulled adapter: {adapterzoo.evaluate(loaded, test)['accuracy']:.1%}")


if __name__ == "__main__":
    main()
