"""Device-side preprocessing (``preprocess_on="device"``): workers only decode, the model's device resizes, crops,
rescales, normalises and augments, as the image processor would.

The tolerance: torch's antialiased interpolation and PIL's fixed-point one, both giving 8-bit intensities, differ by
at most two of the 255 levels in a pixel, and by a fraction of a level on average. Measured on every tiny kind and on
ConvNeXt's, DeiT's and BiT's processors, images from 20×50 to 500×375: torch's uint8 kernels (the CPU's path) differ
by at most 2 levels in a few pixels, 0.001 to 0.06 levels on average; its float32 kernels rounded (every other
device's path, tested here on float images) by at most 1 level, 0.1 to 0.2 on average. So pixel values may differ by
2 / (255 · std) after normalisation, and on average by 0.25 / (255 · std) at most.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import torch
import transformers
from transformers.image_utils import PILImageResampling

from adapterzoo import AutoAdapter, evaluate, train
from adapterzoo.benchmarks.pipeline import encoded_images
from adapterzoo.data.device_preprocessing import DevicePreprocessing
from adapterzoo.data.loading import find_columns
from adapterzoo.data.transforms import Collate, ImageExamples
from adapterzoo.errors import UnsupportedProcessorError
from adapterzoo.testing import VISION_KINDS

FOUR = ["circle", "square", "triangle", "cross"]
OTHER_PROCESSORS = {
    "convnext": lambda: transformers.ConvNextImageProcessorPil(size={"shortest_edge": 32}),  # crop_pct
    "deit": lambda: transformers.DeiTImageProcessorPil(size={"height": 40, "width": 40}, crop_size=32),
    "bit": lambda: transformers.BitImageProcessorPil(size={"shortest_edge": 36}, crop_size=32),
}


@pytest.fixture(scope="module")
def photos() -> datasets.Dataset:
    """Photograph-like PNGs of a few sizes: downscaled (500×375, portrait and landscape) and upscaled (20×50)."""
    sizes = [(500, 375), (375, 500), (40, 30), (20, 50)]
    return datasets.concatenate_datasets([encoded_images(1, "PNG", size) for size in sizes])


def assert_like_the_image_processor(image_processor, photos: datasets.Dataset) -> None:
    columns = find_columns(photos)
    on_device = DevicePreprocessing(image_processor)
    std = min(getattr(image_processor, "image_processor", image_processor).image_std)
    for augment in (False, True):
        options = dict(split="photos", augment=augment, seed=3)
        cpu = ImageExamples(photos, columns, photos["label"], **options)
        decoded = ImageExamples(photos, columns, photos["label"], decode_only=True, **options)
        collate = Collate(image_processor)
        expected = collate([cpu[i] for i in range(len(photos))])["pixel_values"]
        batch = collate([decoded[i] for i in range(len(photos))])
        in_floats = {**batch, "images": [image.float() for image in batch["images"]]}  # as devices but the CPU resize
        for got in (on_device(batch)["pixel_values"], on_device(in_floats)["pixel_values"]):
            assert got.shape == expected.shape and got.dtype == torch.float32
            levels = (got - expected).abs() * 255 * std
            assert levels.max() <= 2 + 1e-4, f"{levels.max():.3f} levels"
            assert levels.mean() <= 0.25, f"{levels.mean():.3f} levels on average"


@pytest.mark.parametrize("kind", VISION_KINDS)
def test_device_pixel_values_equal_the_image_processors_within_one_level(kind, tiny_backbone_path, photos) -> None:
    assert_like_the_image_processor(transformers.AutoImageProcessor.from_pretrained(tiny_backbone_path(kind)), photos)


@pytest.mark.parametrize("name", OTHER_PROCESSORS)
def test_crop_pct_and_center_crops_are_reproduced(name, photos) -> None:
    assert_like_the_image_processor(OTHER_PROCESSORS[name](), photos)


@pytest.mark.parametrize(
    "image_processor, why",
    [
        (transformers.ViTImageProcessorPil(resample=PILImageResampling.LANCZOS), "resampling filter"),
        (transformers.CLIPImageProcessorPil(size={"shortest_edge": 32, "longest_edge": 64}), "resize size"),
        (transformers.DonutImageProcessorPil(), "it knows only ViTImageProcessor"),
    ],
)
def test_a_processor_it_cannot_reproduce_is_refused_before_training(
    image_processor, why, vit_path, shapes, tmp_path: Path
) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR, image_processor=image_processor)
    expected = f"preprocess_on='device' cannot reproduce {type(image_processor).__name__}: {why}"
    with pytest.raises(UnsupportedProcessorError, match=expected + r".*preprocess_on='cpu'"):
        train(model, shapes, max_steps=1, preprocess_on="device", output_dir=tmp_path, progress=False)
    assert not (tmp_path / "log.jsonl").exists()
    with pytest.raises(ValueError, match="preprocess_on must be one of cpu, device, not 'gpu'"):
        train(model, shapes, max_steps=1, preprocess_on="gpu", output_dir=tmp_path, progress=False)


def test_training_with_device_preprocessing_learns_and_evaluates_as_on_the_cpu(
    vit_path, shapes, shapes_eval, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR)
    options = dict(epochs=3, batch_size=8, lr=1e-2, log_steps=1, augment=True, crop_min_scale=0.5)
    result = train(model, shapes, shapes_eval, preprocess_on="device", output_dir=tmp_path, progress=False, **options)
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    on_cpu = evaluate(model, shapes_eval, split="validation", batch_size=6)
    on_device = evaluate(model, shapes_eval, split="validation", batch_size=6, preprocess_on="device")
    assert on_device["accuracy"] == on_cpu["accuracy"] == result.metrics["accuracy"]
    assert on_device["loss"] == pytest.approx(on_cpu["loss"], abs=1e-2)


def test_cached_features_are_computed_from_device_preprocessed_images(vit_path, shapes, tmp_path: Path) -> None:
    results = {}
    for place in ("cpu", "device"):
        torch.manual_seed(0)
        model = AutoAdapter.from_backbone(str(vit_path), method="linear-probe", labels=FOUR)
        results[place] = train(
            model, shapes, shapes, epochs=2, batch_size=8, cache_features="yes", preprocess_on=place,
            output_dir=tmp_path / place, progress=False,
        )  # fmt: skip
    assert results["device"].metrics["loss"] == pytest.approx(results["cpu"].metrics["loss"], abs=1e-2)


def test_a_run_with_device_preprocessing_resumes_exactly(vit_path, shapes, tmp_path: Path) -> None:
    """The augmentation is drawn in the workers from (seed, epoch, index) and applied on the device without
    randomness, so a run resumed mid-epoch, with another worker count, ends where the uninterrupted one does."""
    options = dict(epochs=2, batch_size=4, augment=True, save_steps=4, save_total_limit=10, progress=False)
    method = {"method": "vpt", "num_tokens": 2, "deep": True, "dropout": 0.3}
    torch.manual_seed(0)
    whole = AutoAdapter.from_backbone(str(vit_path), labels=FOUR, **method)
    train(whole, shapes, output_dir=tmp_path / "whole", num_workers=0, preprocess_on="device", **options)
    torch.manual_seed(0)
    resumed = AutoAdapter.from_backbone(str(vit_path), labels=FOUR, **method)
    checkpoint = tmp_path / "whole" / "checkpoints" / "step-00000008"  # epoch 2, batch 2
    train(
        resumed, shapes, output_dir=tmp_path / "resumed", num_workers=1, preprocess_on="device",
        resume_from=str(checkpoint), **options,
    )  # fmt: skip
    first = {n: p for n, p in whole.named_parameters() if p.requires_grad}
    second = {n: p for n, p in resumed.named_parameters() if p.requires_grad}
    assert first.keys() == second.keys() and all(torch.equal(first[n], second[n]) for n in first)
