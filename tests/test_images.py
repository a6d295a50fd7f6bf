"""Images as their users mean them: what the model sees from each image mode, and errors naming the bad row."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from adapterzoo import AutoAdapter, train
from adapterzoo.data.images import ImageDecodeError, to_rgb
from adapterzoo.data.loading import find_columns
from adapterzoo.data.transforms import SKIPPED, Collate, ImageExamples, Skipped, SkippedRows

FOUR = ["circle", "square", "triangle", "cross"]


def image_dataset(paths: list[Path]) -> datasets.Dataset:
    """Files loaded as a user would: an Image() feature over their paths."""
    rows = {"image": [str(path) for path in paths], "label": [0] * len(paths)}
    return datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())


def seen(tmp_path: Path, image: Image.Image, suffix: str, **save: object) -> tuple[str, np.ndarray]:
    """(the mode `datasets` decodes ``image`` to once saved, the pixels the model gets through `ImageExamples`)."""
    path = tmp_path / f"image{suffix}"
    image.save(path, **save)
    dataset = image_dataset([path])
    example, _ = ImageExamples(dataset, find_columns(dataset), [0], split="train")[0]
    assert example.mode == "RGB"
    return dataset[0]["image"].mode, np.asarray(example)


def grey(pixels: np.ndarray) -> list[int]:
    """The first row's values, checking the three channels agree."""
    assert (pixels == pixels[..., :1]).all()
    return pixels[0, :, 0].tolist()


def test_16_bit_images_are_scaled_by_their_full_range(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    mode, pixels = seen(tmp_path, Image.fromarray(values), ".png")
    # 32768 * 255 / 65535 = 127.502 rounds to 128; 1000 -> 3.89 -> 4. PIL's convert("RGB") gives 0, 255, 255, 255.
    assert mode == "I;16" and grey(pixels) == [0, 4, 128, 255]
    big_endian = Image.frombytes("I;16B", (4, 1), values.astype(">u2").tobytes())
    mode, pixels = seen(tmp_path, big_endian, ".tif")
    assert mode == "I;16B" and grey(pixels) == [0, 4, 128, 255]


def test_32_bit_integer_images_are_scaled_by_their_full_range(tmp_path: Path) -> None:
    values = np.array([[-5, 0, 2**30, 2**31 - 1]], dtype=np.int32)
    mode, pixels = seen(tmp_path, Image.fromarray(values), ".tif")
    assert mode == "I" and grey(pixels) == [0, 0, 128, 255]  # negatives are 0; 2**30 -> 127.50000006 -> 128


def test_float_images_are_fractions_of_full_intensity(tmp_path: Path) -> None:
    values = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    mode, pixels = seen(tmp_path, Image.fromarray(values), ".tif")
    assert mode == "F" and grey(pixels) == [0, 64, 128, 255]  # 63.75 -> 64; 127.5 rounds half up to 128
    outside = np.array([[-1.0, np.nan, 2.0, 0.5]], dtype=np.float32)
    with pytest.warns(UserWarning, match=r"outside \[0, 1\]; they were clipped"):
        _, pixels = seen(tmp_path, Image.fromarray(outside), ".tif")
    assert grey(pixels) == [0, 0, 255, 128]


def test_transparency_is_composited_over_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)])
    mode, pixels = seen(tmp_path, rgba, ".png")
    assert mode == "RGBA" and pixels[0].tolist() == [[255, 255, 255], [255, 0, 0], [127, 127, 127]]
    grey_alpha = Image.new("LA", (2, 1))
    grey_alpha.putdata([(0, 0), (40, 255)])
    mode, pixels = seen(tmp_path, grey_alpha, ".png")
    assert mode == "LA" and grey(pixels) == [255, 40]
    premultiplied = Image.frombytes("La", (1, 1), bytes([50, 128]))  # straight grey 99 at alpha 128
    assert to_rgb(premultiplied).getpixel((0, 0)) == (177, 177, 177)


def test_palette_colours_are_kept_and_a_transparent_index_is_white(tmp_path: Path) -> None:
    palette = Image.new("P", (3, 1))
    palette.putpalette([10, 20, 30, 200, 100, 50, 0, 0, 0])
    palette.putdata([0, 1, 2])
    mode, pixels = seen(tmp_path, palette, ".png")
    assert mode == "P" and pixels[0].tolist() == [[10, 20, 30], [200, 100, 50], [0, 0, 0]]
    mode, pixels = seen(tmp_path, palette, ".png", transparency=2)
    assert mode == "P" and pixels[0].tolist() == [[10, 20, 30], [200, 100, 50], [255, 255, 255]]


def test_other_modes_go_through_pils_conversion(tmp_path: Path) -> None:
    bilevel = Image.new("1", (2, 1))
    bilevel.putpixel((1, 0), 1)
    mode, pixels = seen(tmp_path, bilevel, ".png")
    assert mode == "1" and grey(pixels) == [0, 255]
    mode, pixels = seen(tmp_path, Image.new("CMYK", (1, 1), (0, 255, 255, 0)), ".tif")
    assert mode == "CMYK" and pixels[0].tolist() == [[255, 0, 0]]
    mode, pixels = seen(tmp_path, Image.fromarray(np.array([[7, 200]], dtype=np.uint8)), ".png")
    assert mode == "L" and grey(pixels) == [7, 200]
    assert to_rgb(Image.new("YCbCr", (1, 1), (200, 128, 128))).getpixel((0, 0)) == (200, 200, 200)


def test_the_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (2, 1))
    image.putdata([(255, 0, 0), (0, 0, 255)])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    _, pixels = seen(tmp_path, image, ".png", exif=exif)
    assert pixels[:, 0].tolist() == [[255, 0, 0], [0, 0, 255]]  # red above blue
    rotated = to_rgb(Image.open(tmp_path / "image.png"))  # also when the image did not come through `datasets`
    assert rotated.size == (1, 2) and rotated.getpixel((0, 1)) == (0, 0, 255)


def test_an_rgb_image_is_passed_through() -> None:
    image = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(image) is image


def test_arrays_follow_the_same_rules() -> None:
    def as_uint16(batch: dict) -> dict:  # as a user's transform reading 16-bit scans would give them
        return {**batch, "image": [np.asarray(image, dtype=np.uint16) for image in batch["image"]]}

    rows = {"image": [[[0, 32768, 65535]]], "label": [0]}
    dataset = datasets.Dataset.from_dict(rows).with_transform(as_uint16)
    image, _ = ImageExamples(dataset, find_columns(dataset, "image"), [0], split="train")[0]
    assert grey(np.asarray(image)) == [0, 128, 255]
    colour = np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32)  # an RGB float array, which PIL cannot take as is
    assert to_rgb(colour).getpixel((0, 0)) == (0, 128, 255)
    assert grey(np.asarray(to_rgb(np.array([[-3, 0, 16384, 32767]], dtype=np.int16)))) == [0, 0, 128, 255]


@pytest.fixture
def bad_files(tmp_path: Path) -> list[Path]:
    """Eight readable PNGs, two of each class, then a truncated PNG (row 8) and a text file (row 9)."""
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"good{i}.png")
        Image.new("RGB", (24, 24), (30 * i, 255 - 30 * i, 60)).save(paths[-1])
    whole = paths[0].read_bytes()
    paths.append(tmp_path / "truncated.png")
    paths[-1].write_bytes(whole[: len(whole) // 2])
    paths.append(tmp_path / "notes.png")
    paths[-1].write_text("not an image")
    return paths


def labelled(paths: list[Path]) -> datasets.Dataset:
    rows = {"image": [str(p) for p in paths], "label": [i % 4 for i in range(len(paths))]}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FOUR)})
    return datasets.Dataset.from_dict(rows, features=features)


def test_an_unreadable_image_names_the_split_the_row_and_the_file(bad_files: list[Path]) -> None:
    dataset = labelled(bad_files)
    examples = ImageExamples(dataset.select([0, 9, 8]), find_columns(dataset), [0, 1, 2], split="validation")
    with pytest.raises(ImageDecodeError, match=r"row 1 of split 'validation' \(file .*notes\.png\).*skip_bad_images"):
        examples[1]
    with pytest.raises(ImageDecodeError, match=r"row 2 of split 'validation' \(file .*truncated\.png\): .*truncated"):
        examples[2]
    examples.skip_bad_images = True
    with pytest.warns(UserWarning, match=r"Skipped row 2 of split 'validation' \(file .*truncated\.png\)"):
        assert examples[2] == Skipped("validation", 2)


def test_a_decompression_bomb_is_refused_with_its_row_even_when_skipping(tmp_path, monkeypatch) -> None:
    Image.new("L", (30, 30)).save(tmp_path / "big.png")
    dataset = image_dataset([tmp_path / "big.png"])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    examples = ImageExamples(dataset, find_columns(dataset), [0], split="train", skip_bad_images=True)
    with pytest.raises(Image.DecompressionBombError, match=r"row 0 of split 'train' \(file .*big\.png\).*MAX_IMAGE"):
        examples[0]


def test_collate_drops_skipped_rows_and_records_them(bad_files: list[Path]) -> None:
    dataset = labelled(bad_files[:2])
    examples = ImageExamples(dataset, find_columns(dataset), [3, 1], split="train")
    collate = Collate(lambda images, return_tensors: {"pixel_values": torch.zeros(len(images), 3, 2, 2)})
    skipped = SkippedRows()
    batch = collate([Skipped("train", 7), examples[0], Skipped("train", 9), examples[1]])
    assert batch[SKIPPED] == [("train", 7), ("train", 9)]
    assert skipped.take(batch) and SKIPPED not in batch and batch["labels"].tolist() == [3, 1]
    everything_bad = collate([Skipped("train", 7), Skipped("test", 2)])
    assert not skipped.take(everything_bad) and len(everything_bad["pixel_values"]) == 0
    assert skipped.report() == {"test": [2], "train": [7, 9]}
    assert SKIPPED not in collate([examples[0]])


@pytest.mark.parametrize("method", ["lora", "linear-probe"])  # a full forward per step, and cached features
def test_training_stops_at_a_bad_image_or_skips_and_reports_it(vit_path, bad_files, tmp_path, method, capsys) -> None:
    dataset = labelled(bad_files)
    model = AutoAdapter.from_backbone(str(vit_path), method=method, labels=FOUR)
    options = {"epochs": 1, "batch_size": 1, "progress": False}
    with pytest.raises(ImageDecodeError, match=r"row (8|9) of split 'train' \(file .*(truncated|notes)\.png\)"):
        train(model, dataset, output_dir=tmp_path / "stopped", **options)
    with pytest.warns(UserWarning, match="Skipped row"):
        result = train(model, dataset, dataset, output_dir=tmp_path / "run", skip_bad_images=True, **options)
    assert result.skipped_images == {"evaluation": [8, 9], "train": [8, 9]}
    assert "skipped 2 unreadable image(s) of split 'train': rows [8, 9]" in capsys.readouterr().out
    assert result.metrics["num_examples"] == 8
    # The planned steps: one per batch of the ten, the two empty ones taking none; with cached features, one per image.
    assert result.steps == (10 if method == "lora" else 8)


def test_a_split_with_no_readable_image_is_refused(vit_path, bad_files, tmp_path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=FOUR)
    good, bad = labelled(bad_files[:8]), labelled(bad_files[8:])
    options = {"skip_bad_images": True, "progress": False, "max_steps": 1}
    with pytest.warns(UserWarning), pytest.raises(ImageDecodeError, match="No image of split 'train' can be read"):
        train(model, bad, output_dir=tmp_path / "a", **options)
    with pytest.warns(UserWarning), pytest.raises(ImageDecodeError, match="No image of split 'evaluation' can be"):
        train(model, good, bad, output_dir=tmp_path / "b", **options)
