"""Preprocessing on the model's device (``preprocess_on="device"``): data-loading workers only decode images to uint8
tensors (and draw each example's augmentation), and the main process resizes, crops, rescales and normalises them
where the model computes, from the image processor's own settings.

What it reproduces: a resize to a height and width (ViT, DeiT, SigLIP, BEiT, Swin) or of the shortest edge (CLIP,
DINOv2's BiT processor), ConvNeXt's ``crop_pct`` resize, a center crop, the rescale and the normalisation, with
bilinear or bicubic resampling. Resizing is antialiased as PIL's is, and rounded to 8 bits as PIL's output is, but
interpolation still differs slightly from PIL's fixed-point arithmetic (see README's "Data loading"). A processor
with settings outside these (another resampling filter, padding, a longest-edge bound, a class it does not know) is
refused by `DevicePreprocessing` with a clear error, before anything loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from adapterzoo.errors import UnsupportedProcessorError

# The image processors whose steps are resize, center crop, rescale and normalise (and ConvNeXt's crop_pct resize).
KNOWN_PROCESSORS = (
    "ViTImageProcessor",
    "CLIPImageProcessor",
    "DeiTImageProcessor",
    "BitImageProcessor",
    "SiglipImageProcessor",
    "BeitImageProcessor",
    "ConvNextImageProcessor",
)
RESAMPLING = {2: "bilinear", 3: "bicubic"}  # PIL's filter numbers
CONVNEXT_FULL_RESIZE = 384  # ConvNeXt resizes shortest_edge >= 384 to a square instead of cropping by crop_pct


@dataclass(frozen=True)
class Decoded:
    """A decoded image as a worker gives it: uint8 (height, width, 3) pixels (as decoded: no transposing copy), the
    crop box ``(left, top, width, height)`` its augmentation drew (None without augmentation) and whether it flips
    it."""

    pixels: torch.Tensor
    box: tuple[int, int, int, int] | None = None
    flip: bool = False


def decoded_batch(examples: list[Decoded], labels: list[int]) -> dict[str, Any]:
    """The batch a worker hands over: the images (of any sizes), their augmentation draws and the labels."""
    return {
        "images": [example.pixels for example in examples],
        "augmentation": [(example.box, example.flip) for example in examples],
        "labels": torch.tensor(labels),
    }


def _base_name(image_processor: Any) -> str:
    name = type(image_processor).__name__
    for suffix in ("Pil", "Fast"):
        name = name.removesuffix(suffix)
    return name


def _refuse(image_processor: Any, why: str) -> UnsupportedProcessorError:
    return UnsupportedProcessorError(
        f"preprocess_on='device' cannot reproduce {type(image_processor).__name__}: {why}. Preprocess on the CPU "
        "instead (preprocess_on='cpu', the default)."
    )


class DevicePreprocessing:
    """Turns decode-only batches (`decoded_batch`) into ``pixel_values`` on the device their images are on, as
    ``image_processor`` would make them; batches that already hold ``pixel_values`` pass unchanged."""

    def __init__(self, image_processor: Any):
        image_processor = getattr(image_processor, "image_processor", image_processor)  # a CLIPProcessor's
        if _base_name(image_processor) not in KNOWN_PROCESSORS:
            raise _refuse(image_processor, f"it knows only {', '.join(KNOWN_PROCESSORS)} (and their Pil, Fast forms)")
        resample = image_processor.resample
        self.mode = RESAMPLING.get(resample) if isinstance(resample, int) else None
        if self.mode is None:
            raise _refuse(image_processor, f"resampling filter {image_processor.resample!r} (bilinear or bicubic only)")
        if getattr(image_processor, "do_pad", False):
            raise _refuse(image_processor, "it pads images")
        self.size = dict(image_processor.size) if image_processor.do_resize else {}
        if self.size and set(self.size) not in ({"height", "width"}, {"shortest_edge"}):
            raise _refuse(image_processor, f"resize size {self.size} (height and width, or shortest_edge, only)")
        convnext = _base_name(image_processor) == "ConvNextImageProcessor"
        self.crop_pct = image_processor.crop_pct if convnext else None
        crop = dict(image_processor.crop_size or {}) if image_processor.do_center_crop else {}
        self.crop = (crop["height"], crop["width"]) if crop else None
        # Rescaling and normalising, (x · rescale - mean) / std, as one multiply-add: x · weight + bias.
        rescale = image_processor.rescale_factor if image_processor.do_rescale else 1.0
        mean, std = (image_processor.image_mean, image_processor.image_std) if image_processor.do_normalize else (0, 1)
        std = torch.tensor(std, dtype=torch.float32).expand(3).reshape(3, 1, 1)
        self.weight = rescale / std
        self.bias = -torch.tensor(mean, dtype=torch.float32).expand(3).reshape(3, 1, 1) / std

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if "images" not in batch:
            return batch
        pairs = zip(batch["images"], batch["augmentation"], strict=True)
        pixels = torch.stack([self.sized(image, box, flip) for image, (box, flip) in pairs]).float()
        weight, bias = self.weight.to(pixels.device), self.bias.to(pixels.device)
        return {"pixel_values": torch.addcmul(bias, pixels, weight), "labels": batch["labels"]}

    def sized(self, image: torch.Tensor, box: tuple[int, ...] | None = None, flip: bool = False) -> torch.Tensor:
        """One uint8 (height, width, 3) image cropped to ``box`` and flipped as augmented, then resized and center
        cropped: (3, height, width) 8-bit intensities (uint8 on the CPU, rounded floats elsewhere), before rescaling."""
        if box is not None:
            left, top, width, height = box
            image = image[top : top + height, left : left + width]
        if flip:
            image = image.flip(1)
        image = image.permute(2, 0, 1)  # channels first, laid out channels last: what the resizing kernels prefer
        if self.size:
            image = self._resize(image)
        if self.crop is not None:
            image = _center_crop(image, self.crop)
        return image

    def _resize(self, pixels: torch.Tensor) -> torch.Tensor:
        if "height" in self.size:
            return self._resized(pixels, (self.size["height"], self.size["width"]))
        shortest = self.size["shortest_edge"]
        if self.crop_pct is None:
            return self._resized(pixels, _shortest_edge_size(pixels.shape[-2:], shortest))
        if shortest >= CONVNEXT_FULL_RESIZE:
            return self._resized(pixels, (shortest, shortest))
        resized = self._resized(pixels, _shortest_edge_size(pixels.shape[-2:], int(shortest / self.crop_pct)))
        return _center_crop(resized, (shortest, shortest))

    def _resized(self, pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Antialiased as PIL resizes, and in 8 bits as PIL's resize of a uint8 image gives it: on the CPU by torch's
        uint8 kernels (PIL's algorithm, vectorised), elsewhere in float32, rounded."""
        if tuple(pixels.shape[-2:]) == tuple(size):
            return pixels
        if pixels.device.type != "cpu":
            pixels = pixels.float()
        pixels = pixels[None].contiguous(memory_format=torch.channels_last)
        resized = F.interpolate(pixels, size=size, mode=self.mode, align_corners=False, antialias=True)[0]
        return resized if resized.dtype == torch.uint8 else resized.round().clamp(0, 255)


def _shortest_edge_size(size: torch.Size, shortest: int) -> tuple[int, int]:
    """transformers' output size for a shortest-edge resize: the short side to ``shortest``, the long one truncated."""
    height, width = int(size[0]), int(size[1])
    if width <= height:
        return int(shortest * height / width), shortest
    return shortest, int(shortest * width / height)


def _center_crop(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The center ``size`` of ``pixels`` (offsets rounded down, as transformers' center crop places it), centred on
    zeros where ``pixels`` is smaller."""
    height, width = pixels.shape[-2:]
    crop_height, crop_width = size
    pad_height, pad_width = max(0, crop_height - height), max(0, crop_width - width)
    if pad_height or pad_width:
        top, left = (pad_height + 1) // 2, (pad_width + 1) // 2
        pixels = F.pad(pixels, (left, pad_width - left, top, pad_height - top))
        height, width = pixels.shape[-2:]
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return pixels[:, top : top + crop_height, left : left + crop_width]
