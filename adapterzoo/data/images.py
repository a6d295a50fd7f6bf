"""Reading a dataset's images as the RGB pictures their users mean, and naming the row when one cannot be read.

PIL's own ``convert("RGB")`` clips 16-bit and 32-bit values to 255 (a 16-bit scan turns white), truncates float
values (a 0..1 float image turns black) and drops alpha (transparent pixels show whatever colour they hide).
`to_rgb` follows these rules instead, for PIL images and numpy arrays alike:

- Integer pixels wider than 8 bits (modes ``I;16*`` and ``I``; uint16, int16, uint32, int32 and int8 arrays) are
  scaled by their type's full range, 0 to the type's maximum, rounded to the nearest value (halves up); negative
  values become 0. The full range, not each image's min-max, because it is deterministic: one stored value is one
  grey in every image, so contrast is comparable across a dataset and between training and test, as in medical
  viewers' "full range" display. Data that fills only part of its type (12-bit scans in 16-bit files) comes out
  dark: rescale it before training.
- Float pixels (mode ``F``; float arrays) are fractions of full intensity: 0..1 becomes 0..255 (rounded, halves
  up); values outside [0, 1] are clipped, with a warning, and NaN becomes 0.
- Transparency (modes RGBA, RGBa, LA, La, PA, and palette or other images with a transparent colour) is
  composited over white, as image viewers and browsers show it.
- Other modes (L, 1, P, CMYK, YCbCr, ...) go through PIL's conversion; palettes keep their colours.
- An EXIF orientation is applied.
"""

from __future__ import annotations

import warnings

import datasets
import numpy as np
from PIL import ExifTags, Image, ImageOps

from adapterzoo.data.loading import DatasetError

_ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA")
_WIDE_INTEGERS = ("int8", "int16", "uint16", "int32", "uint32")


class ImageDecodeError(DatasetError):
    """A dataset row whose image cannot be read: a corrupt, truncated or non-image file."""


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """``image`` as an RGB image by the module's rules; an RGB image without EXIF rotation is returned as is."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(_eight_bit(np.asarray(image)))
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = Image.fromarray(_eight_bit(np.asarray(image)))
    if image.mode == "La":  # PIL converts premultiplied grey only to its straight form
        image = image.convert("LA")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def _eight_bit(values: np.ndarray) -> np.ndarray:
    """Float and wide-integer pixels as uint8 by the module's rules; other types are left to PIL."""
    if values.dtype.kind == "f":
        if np.nanmin(values, initial=0.0) < 0 or np.nanmax(values, initial=0.0) > 1:
            warnings.warn("A float image has values outside [0, 1]; they were clipped.", stacklevel=3)
        fractions = np.clip(np.nan_to_num(values.astype(np.float64), nan=0.0), 0.0, 1.0)
        return np.floor(fractions * 255 + 0.5).astype(np.uint8)
    if values.dtype.name in _WIDE_INTEGERS:
        maximum = np.iinfo(values.dtype).max
        return np.floor(np.clip(values, 0, None).astype(np.float64) * 255 / maximum + 0.5).astype(np.uint8)
    return values


def read_image(dataset: datasets.Dataset, column: str, index: int, split: str, *, skip: bool) -> Image.Image | None:
    """Row ``index``'s image as RGB. One that cannot be read raises an `ImageDecodeError` naming the split, the row
    and the file, or, with ``skip``, is warned about and gives None. A decompression bomb is always refused, skipping
    or not: it is an attack or a genuinely huge image, and only the user can tell which."""
    try:
        return to_rgb(dataset[index][column])
    except Image.DecompressionBombError as error:
        where = _describe(dataset, column, index, split)
        raise Image.DecompressionBombError(
            f"{where}: {error} Raise PIL.Image.MAX_IMAGE_PIXELS if the image is genuine."
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        where = _describe(dataset, column, index, split)
        if skip:
            warnings.warn(f"Skipped {where}: its image cannot be read ({error}).", stacklevel=2)
            return None
        raise ImageDecodeError(
            f"Cannot read the image of {where}: {error}. Fix or remove the file, or train with "
            "skip_bad_images=True (--skip-bad-images) to skip unreadable rows."
        ) from error


def _describe(dataset: datasets.Dataset, column: str, index: int, split: str) -> str:
    """'row 3 of split 'train' (file a.png)': the file read from the stored column, without decoding it."""
    where = f"row {index} of split '{split}'"
    if isinstance(dataset.features.get(column), datasets.Image):
        stored = dataset.with_format("arrow")[index][column].to_pylist()[0]
        if stored.get("path"):
            where += f" (file {stored['path']})"
    return where
