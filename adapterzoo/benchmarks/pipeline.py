"""The data pipeline's throughput: images per second from encoded files to a batch of pixel values, per worker count.

Images are 500×375 photographs' worth of JPEG or PNG bytes (smooth colour fields with texture, so that they compress
as photographs do), decoded, augmented (random resized crop and flip) and preprocessed to the timed backbone's input
size in the loader exactly as `adapterzoo.train` does; and, as ``preprocess_on="device"`` runs, decoded only in the
loader (with the augmentation drawn there) and cropped, flipped, resized and normalised on the device in the main
process. Each worker count's loader is iterated once to start its workers, then timed over a second pass.
"""

from __future__ import annotations

import io
import time

import datasets
import numpy as np
import torch
from accelerate.utils import send_to_device
from PIL import Image
from torch.utils.data import DataLoader

from adapterzoo.data.device_preprocessing import DevicePreprocessing
from adapterzoo.data.loading import find_columns
from adapterzoo.data.transforms import Collate, ImageExamples
from adapterzoo.data.workers import loader_options, resolve_workers

PHOTO_SIZE = (500, 375)


def encoded_images(count: int, image_format: str, size: tuple[int, int] = PHOTO_SIZE) -> datasets.Dataset:
    """``count`` photograph-like images encoded as ``image_format`` bytes, in an image-feature dataset."""
    rng = np.random.default_rng(0)
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / max(size)
    rows = []
    for _ in range(count):
        phase = rng.uniform(0, 2 * np.pi, size=3)
        field = np.stack([np.sin(6 * x + 4 * y + p) for p in phase], axis=-1)
        pixels = 127 + 80 * field + rng.normal(0, 12, size=field.shape)
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format=image_format)
        rows.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["photo"])})
    return datasets.Dataset.from_dict({"image": rows, "label": [0] * count}, features=features)


def throughput(
    image_processor,
    *,
    images: int = 64,
    batch: int = 32,
    workers: tuple[int | str, ...] = (0, 1, 2, "auto"),
    formats: tuple[str, ...] = ("JPEG", "PNG"),
    device: str = "cpu",
) -> dict:
    """Images per second the training loader delivers, for each format and worker count, preprocessing in the
    workers (``images_per_second``) and on ``device`` (``device_images_per_second``), with the mean encoded file
    size; ``"auto"`` is resolved for ``device`` and recorded as such."""
    target = torch.device(device)
    on_device = DevicePreprocessing(image_processor)
    results: dict = {}
    for image_format in formats:
        data = encoded_images(images, image_format)
        columns = find_columns(data)
        collate = Collate(image_processor)
        measured: dict = {}
        for key, decode_only in (("images_per_second", False), ("device_images_per_second", True)):
            examples = ImageExamples(
                data, columns, data["label"], split="benchmark", augment=True, decode_only=decode_only
            )
            prepare = (lambda batch: on_device(send_to_device(batch, target))) if decode_only else None
            counts = {}
            for count in workers:
                loader = DataLoader(examples, batch_size=batch, collate_fn=collate, **loader_options(count, target))
                _drain(loader, prepare, target)  # start the (persistent) workers
                started = time.perf_counter()
                _drain(loader, prepare, target)
                label = f"auto ({resolve_workers(count, target)})" if count == "auto" else str(count)
                counts[label] = images / (time.perf_counter() - started)
            measured[key] = counts
        file_bytes = np.mean(
            [len(row["bytes"]) for row in data.cast_column("image", datasets.Image(decode=False))["image"]]
        )
        results[image_format] = {**measured, "mean_file_kib": float(file_bytes) / 1024}
    return results


def _drain(loader: DataLoader, prepare, device: torch.device) -> None:
    """One pass over ``loader``, each batch made into pixel values by ``prepare`` when given (and finished: a device
    computes asynchronously)."""
    for batch in loader:
        if prepare is not None:
            prepare(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
