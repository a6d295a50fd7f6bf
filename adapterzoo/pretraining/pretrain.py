"""Pretraining one small backbone from its recipe, and saving it as a Hub checkpoint (weights, processor, recipe).

ViT: supervised on the source shapes, a linear head on CLS (the head is dropped afterwards). CLIP: CLIP's own
symmetric contrastive loss on image-caption pairs from all three built-in tasks. Both use AdamW with warmup and cosine
decay on batches drawn with the recipe's seed, so a recipe always makes the same weights on a given machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import datasets
import torch
import transformers
from torch import nn
from tqdm.auto import tqdm

from adapterzoo.data.builtin import TASKS, builtin_dataset
from adapterzoo.data.tokenizer import builtin_clip_tokenizer
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.pretraining.recipes import PRETRAINING_DATA_SEED, SOURCE_SHAPES, PretrainingRecipe

PRETRAINING_FILE = "pretraining.json"


def tower_config(recipe: PretrainingRecipe) -> dict:
    """The transformer sizes shared by the ViT and both CLIP towers."""
    return {
        "hidden_size": recipe.hidden_size,
        "num_hidden_layers": recipe.num_layers,
        "num_attention_heads": recipe.num_heads,
        "intermediate_size": 2 * recipe.hidden_size,
    }


def pretrain(recipe: PretrainingRecipe, folder: str | Path, *, progress: bool = True) -> Path:
    """Pretrain ``recipe``'s backbone and save it to ``folder`` with its processor, recipe and final loss."""
    torch.manual_seed(recipe.seed)
    make = _pretrain_vit if recipe.kind == "vit" else _pretrain_clip
    model, processor, loss = make(recipe, progress)
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    record = {"recipe": recipe.as_dict(), "final_loss": loss}
    (folder / PRETRAINING_FILE).write_text(json.dumps(record, indent=2) + "\n")
    (folder / "README.md").write_text(_model_card(recipe, loss))
    return folder


def _pretrain_vit(recipe: PretrainingRecipe, progress: bool):
    sizes = {**tower_config(recipe), "image_size": recipe.image_size, "patch_size": recipe.patch_size}
    vit = transformers.ViTModel(transformers.ViTConfig(**sizes), add_pooling_layer=False)
    processor = transformers.ViTImageProcessorPil(size={"height": recipe.image_size, "width": recipe.image_size})
    data = builtin_dataset(
        "shapes", "train", num_per_class=recipe.images_per_class, image_size=recipe.image_size,
        seed=PRETRAINING_DATA_SEED, classes=SOURCE_SHAPES,
    )  # fmt: skip
    pixel_values = processor(list(data["image"]), return_tensors="pt")["pixel_values"]
    labels = torch.tensor(list(data["label"]))
    classifier = ImageClassifier(vit, SOURCE_SHAPES)
    loss = _optimise(
        classifier, recipe, len(labels), lambda batch: classifier(pixel_values[batch], labels=labels[batch]).loss,
        description=f"pretraining {recipe.repo_id} (supervised, {len(SOURCE_SHAPES)} source shapes)", progress=progress,
    )  # fmt: skip
    return vit, processor, loss


def _pretrain_clip(recipe: PretrainingRecipe, progress: bool):
    tokenizer = builtin_clip_tokenizer()
    text = {
        **tower_config(recipe),
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 32,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {**tower_config(recipe), "image_size": recipe.image_size, "patch_size": recipe.patch_size}
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=recipe.hidden_size)
    clip = transformers.CLIPModel(config)
    size = recipe.image_size
    image_processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size=size)
    processor = transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    parts = [
        builtin_dataset(task, "train", num_per_class=recipe.images_per_class, image_size=size,
                        seed=PRETRAINING_DATA_SEED).remove_columns("label")
        for task in TASKS
    ]  # fmt: skip
    data = datasets.concatenate_datasets(parts)
    pixel_values = image_processor(list(data["image"]), return_tensors="pt")["pixel_values"]
    input_ids = tokenizer(list(data["caption"]), padding=True, return_tensors="pt")["input_ids"]
    loss = _optimise(
        clip, recipe, len(input_ids),
        lambda batch: clip(input_ids=input_ids[batch], pixel_values=pixel_values[batch], return_loss=True).loss,
        description=f"pretraining {recipe.repo_id} (contrastive, {len(input_ids)} captioned images)", progress=progress,
    )  # fmt: skip
    return clip, processor, loss


def _optimise(
    model: nn.Module,
    recipe: PretrainingRecipe,
    num_examples: int,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    *,
    description: str,
    progress: bool,
) -> float:
    """Run ``recipe.steps`` AdamW steps on random batches; returns the mean loss of the last tenth of the steps."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = transformers.get_cosine_schedule_with_warmup(
        optimizer, round(recipe.warmup_ratio * recipe.steps), recipe.steps
    )
    generator = torch.Generator().manual_seed(recipe.seed)
    tail = []
    bar = tqdm(range(recipe.steps), desc=description, disable=not progress)
    for step in bar:
        loss = batch_loss(torch.randint(num_examples, (recipe.batch_size,), generator=generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step >= recipe.steps - max(1, recipe.steps // 10):
            tail.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return sum(tail) / len(tail)


def _model_card(recipe: PretrainingRecipe, loss: float) -> str:
    task = (
        f"supervised classification of {', '.join(SOURCE_SHAPES)} (built-in shapes)"
        if recipe.kind == "vit"
        else "CLIP's contrastive loss on images of the built-in shapes, colors and counts tasks and their captions"
    )
    return f"""---
library_name: transformers
tags:
- adapterzoo
- pretrained-offline
---

# {recipe.repo_id}

A small {recipe.kind.upper()} ({recipe.num_layers} layers, width {recipe.hidden_size}, {recipe.image_size}px images,
patch {recipe.patch_size}) pretrained by adapterzoo on this machine, with no network, so that its demo, examples and
benchmarks adapt a pretrained backbone to a new task: {task}; {recipe.steps} AdamW steps of batch
{recipe.batch_size}, lr {recipe.lr}, seed {recipe.seed}; final loss {loss:.3f}. `{PRETRAINING_FILE}` holds the recipe.
"""
