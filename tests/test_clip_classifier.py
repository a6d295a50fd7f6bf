"""CLIP classification: the offline tokenizer, `CLIPClassifier` (zero-shot logits, open vocabulary, the text-feature
cache), zero-shot CLIP as a method, and the base-to-novel protocol through the API and the CLI."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import transformers

from adapterzoo import AutoAdapter, CLIPClassifier, base_to_novel, train
from adapterzoo.backbones import load_clip
from adapterzoo.cli import main
from adapterzoo.clip_classifier import DEFAULT_TEMPLATE
from adapterzoo.data import builtin_dataset
from adapterzoo.data.builtin import COLORS, COUNTS, SHAPES
from adapterzoo.data.loading import class_split
from adapterzoo.data.tokenizer import builtin_clip_tokenizer
from adapterzoo.testing import LABELS, images
from adapterzoo.training import evaluate_base_to_novel


def test_every_builtin_word_is_one_token_in_clips_format() -> None:
    tokenizer = builtin_clip_tokenizer()
    for word in [*SHAPES, *COLORS, *COUNTS, "photo", "X"]:
        ids = tokenizer(word)["input_ids"]
        assert len(ids) == 3, word
        assert tokenizer.convert_ids_to_tokens(ids[1]) == word.lower() + "</w>"
    ids = tokenizer("a photo of a circle.")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    words = ["a", "photo", "of", "a", "circle", "."]
    assert tokenizer.convert_ids_to_tokens(ids[1:-1]) == [word + "</w>" for word in words]


def test_auto_classes_load_the_tokenizer_from_a_checkpoint_folder(clip_path: Path) -> None:
    saved = json.loads((clip_path / "tokenizer.json").read_text())
    assert saved["model"]["type"] == "BPE" and saved["model"]["end_of_word_suffix"] == "</w>"
    tokenizer = transformers.AutoTokenizer.from_pretrained(clip_path)
    processor = transformers.AutoProcessor.from_pretrained(clip_path)
    expected = builtin_clip_tokenizer()("two red stars")["input_ids"]
    assert tokenizer("two red stars")["input_ids"] == expected
    assert processor(text=["two red stars"])["input_ids"][0] == expected
    assert isinstance(tokenizer, transformers.CLIPTokenizer) and tokenizer.model_max_length == 77


def test_zero_shot_logits_are_clips_own(clip_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=LABELS).eval()
    clip, tokenizer = load_clip(str(clip_path))
    prompts = tokenizer([f"a photo of a {name}." for name in LABELS], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = clip.eval()(input_ids=prompts["input_ids"], pixel_values=images()).logits_per_image
        assert torch.allclose(model(images()).logits, expected, atol=1e-5)
    assert model.trainable_parameters == 0


def test_set_classes_is_open_vocabulary(clip_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=["circle", "square", "star"]).eval()
    with torch.no_grad():
        three = model(images()).logits
        model.task_model.set_classes(["star", "circle"])
        two = model(images()).logits
    assert torch.allclose(two, three[:, [2, 0]], atol=1e-6)
    assert model.labels == ["star", "circle"]
    pictures = builtin_dataset("shapes", "test", num_per_class=1, classes=["star", "circle"])["image"]
    assert {ranked[0]["label"] for ranked in model.predict(pictures)} <= {"star", "circle"}


def test_the_template_is_used_and_checked(clip_path: Path) -> None:
    plain = AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=LABELS).eval()
    custom = AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=LABELS, template="a {} shape.")
    with torch.no_grad():
        assert not torch.allclose(plain(images()).logits, custom.eval()(images()).logits)
    with pytest.raises(ValueError, match="one '\\{\\}' for the class name"):
        AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=LABELS, template="a photo")
    with pytest.raises(ValueError, match="Class names must be unique; repeated: cat"):
        AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=["cat", "dog", "cat"])


def count_text_passes(model) -> list[int]:
    clip = model.task_model.clip
    calls, original = [0], clip.get_text_features

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    clip.get_text_features = counted
    return calls


def test_text_features_are_cached_only_while_the_text_side_is_fixed(clip_path: Path) -> None:
    zero_shot = AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=LABELS).eval()
    calls = count_text_passes(zero_shot)
    with torch.no_grad():
        zero_shot(images())
        zero_shot(images())
        assert calls[0] == 1
        zero_shot.task_model.set_classes(["circle", "square"])
        zero_shot(images())
        assert calls[0] == 2
    coop = AutoAdapter.from_backbone(str(clip_path), method="coop", labels=LABELS, num_context=2)
    calls = count_text_passes(coop)
    coop(images()).logits.sum().backward()
    coop(images())
    assert calls[0] == 2
    with coop.peft_model.disable_adapter(), torch.no_grad():
        coop(images())
        coop(images())
    assert calls[0] == 3  # the plain template's features, once


class ShiftByImage(torch.nn.Module):
    """A toy image-conditioned token embedding: every token of image i's prompts shifted by the sum of its features."""

    def __init__(self, embedding: torch.nn.Embedding):
        super().__init__()
        self.embedding = embedding
        self.image = None

    def image_conditioned(self) -> bool:
        return True

    @contextmanager
    def conditioned_on(self, image: torch.Tensor):
        self.image = image
        yield
        self.image = None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        shift = self.image.sum(-1).repeat_interleave(len(input_ids) // len(self.image))
        return self.embedding(input_ids) + shift[:, None, None]


def test_an_image_conditioned_embedding_gets_per_image_class_texts_in_one_pass(clip_path: Path) -> None:
    classifier = CLIPClassifier(*load_clip(str(clip_path)), LABELS).eval()
    embeddings = classifier.clip.text_model.embeddings
    plain_embedding = embeddings.token_embedding
    embeddings.token_embedding = ShiftByImage(plain_embedding)
    calls = count_text_passes(SimpleNamespace(task_model=classifier))
    with torch.no_grad():
        logits = classifier(images()).logits
        assert calls[0] == 1
        with pytest.raises(ValueError, match="conditions the class prompts on each image: pass the image features"):
            classifier.encode_text()
        embeddings.token_embedding = plain_embedding
        for row, image in zip(logits, classifier.encode(images()), strict=True):
            shift = plain_embedding.register_forward_hook(lambda module, args, out, image=image: out + image.sum())
            text = classifier.clip.get_text_features(input_ids=classifier.prompt_ids(DEFAULT_TEMPLATE)).pooler_output
            shift.remove()
            assert torch.allclose(row, classifier.clip.logit_scale.exp() * F.normalize(text, dim=-1) @ image, atol=1e-5)


def test_zero_shot_saves_its_classes_and_template_and_trains_nothing(clip_path: Path, tmp_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=LABELS, template="a {} shape.")
    model.save_pretrained(tmp_path / "zs")
    loaded = AutoAdapter.from_pretrained(tmp_path / "zs")
    assert loaded.labels == list(LABELS) and loaded.task_model.template == "a {} shape."
    with torch.no_grad():
        assert torch.equal(loaded(images()).logits, model.eval()(images()).logits)
    data = builtin_dataset("shapes", "train", num_per_class=1, classes=["circle", "square"])
    model.task_model.set_classes(["circle", "square"])
    with pytest.raises(ValueError, match="no trainable parameters: its method trains nothing"):
        train(model, data, output_dir=tmp_path / "run", progress=False)


def test_clip_classification_refuses_a_vision_only_backbone(vit_path: Path) -> None:
    with pytest.raises(Exception, match="Method 'zero-shot'.*needs a vision-language CLIP"):
        AutoAdapter.from_backbone(str(vit_path), method="zero-shot", labels=LABELS)


def accuracy_by_hand(model, dataset, classes: list[str]) -> float:
    """Accuracy of ``model`` among ``classes`` on ``dataset``, computed without the protocol's code."""
    model.task_model.set_classes(classes)
    pixel_values = model.image_processor(list(dataset["image"]), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        predictions = model(pixel_values).logits.argmax(-1)
    return (predictions == torch.tensor(list(dataset["label"]))).float().mean().item()


def test_base_to_novel_scores_each_half_among_its_own_classes(clip_path: Path) -> None:
    shapes = ["circle", "square", "triangle", "cross", "star"]
    train_data = builtin_dataset("shapes", "train", num_per_class=3, classes=shapes)
    test_data = builtin_dataset("shapes", "test", num_per_class=4, classes=shapes)
    model = AutoAdapter.from_backbone(str(clip_path), method="zero-shot", labels=shapes).eval()
    result = base_to_novel(model, train_data, test_data)
    assert result.training is None
    assert result.base_classes == ["circle", "square", "triangle"] and result.novel_classes == ["cross", "star"]
    base = accuracy_by_hand(model, class_split(test_data, "base"), result.base_classes)
    novel = accuracy_by_hand(model, class_split(test_data, "novel"), result.novel_classes)
    assert result.base_accuracy == pytest.approx(base) and result.novel_accuracy == pytest.approx(novel)
    assert result.harmonic_mean == pytest.approx(0 if base + novel == 0 else 2 * base * novel / (base + novel))


def test_base_to_novel_trains_on_few_base_shots_only(clip_path: Path, tmp_path: Path) -> None:
    shapes = ["circle", "square", "triangle", "cross"]
    train_data = builtin_dataset("shapes", "train", num_per_class=5, classes=shapes)
    test_data = builtin_dataset("shapes", "test", num_per_class=2, classes=shapes)
    model = AutoAdapter.from_backbone(str(clip_path), method="coop", labels=shapes, num_context=2)
    result = base_to_novel(
        model, train_data, test_data, shots=2, epochs=1, batch_size=2, output_dir=tmp_path, progress=False
    )
    assert result.training.steps == 2  # 2 shots x 2 base classes, batch 2, one epoch
    assert model.labels == ["circle", "square"]  # the trained classifier is left on the base classes
    assert 0 <= result.harmonic_mean <= 1
    assert set(evaluate_base_to_novel(model, test_data)) == {"base_accuracy", "novel_accuracy", "harmonic_mean"}


def test_base_to_novel_needs_an_open_vocabulary_classifier(vit_path: Path) -> None:
    data = builtin_dataset("shapes", "train", num_per_class=1, classes=["circle", "square"])
    model = AutoAdapter.from_backbone(str(vit_path), method="linear-probe", labels=["circle", "square"])
    with pytest.raises(ValueError, match="open-vocabulary CLIP classifier; 'linear-probe' here classifies with a"):
        base_to_novel(model, data, data)


def test_the_cli_runs_base_to_novel(clip_path: Path, tmp_path: Path, capsys) -> None:
    args = ["--backbone", str(clip_path), "--dataset", "builtin:shapes", "--eval-split", "test"]
    options = ["--protocol", "base-to-novel", "--shots", "2", "--epochs", "1", "--batch-size", "4", "--no-progress"]
    assert main(["train", *args, "--method", "coop", "--option", "num_context=2", *options,
                 "--output-dir", str(tmp_path / "run")]) == 0  # fmt: skip
    summary = json.loads(re.search(r"\{.*\}", capsys.readouterr().out, re.S).group())
    assert summary["base_classes"] == list(SHAPES[:4]) and summary["novel_classes"] == list(SHAPES[4:])
    base, novel = summary["base_accuracy"], summary["novel_accuracy"]
    assert summary["harmonic_mean"] == pytest.approx(2 * base * novel / (base + novel) if base + novel else 0)
    assert main(["evaluate", str(tmp_path / "run" / "final"), "--dataset", "builtin:shapes", "--split",
                 "test", "--protocol", "base-to-novel", "--output", str(tmp_path / "scores.json")]) == 0  # fmt: skip
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores == pytest.approx({key: summary[key] for key in ("base_accuracy", "novel_accuracy", "harmonic_mean")})
