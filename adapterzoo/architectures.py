"""The supported families of vision backbones, one `Architecture` entry each in `ARCHITECTURES`.

An entry carries everything adapterzoo knows about a family beyond what its structure tells: how to load it, the
rules `adapterzoo.backbones.describe_backbone` needs for its parts, its name in README's support matrix, and how to
build its tiny random checkpoints for tests. Loading, describing, the tiny kinds of `adapterzoo.testing`, every
method's conformance suite and the support matrix all derive from these entries, so adding an architecture is one
entry (plus its tests).

Only the standard library is imported here; transformers is imported when a tiny checkpoint is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapterzoo.errors import UnsupportedBackboneError

TinyBuilder = Callable[["Architecture", dict[str, Any]], Any]
"""Builds a tiny random model of an architecture from the test sizes (`adapterzoo.testing.TINY_SIZES`)."""


def tiny_tower(arch: Architecture, sizes: dict[str, Any]) -> Any:
    """The architecture's own model class on its own config class: the sizes, then the entry's ``tiny_config``."""
    import transformers

    model_class = getattr(transformers, arch.model_class)
    return model_class(model_class.config_class(**{**arch.tiny_config, **sizes}), **arch.load_kwargs)


def _tiny_clip(arch: Architecture, sizes: dict[str, Any]) -> Any:
    """A whole CLIP (both towers) with the zoo's offline tokenizer, as CLIP classification and MaPLe need."""
    import transformers

    from adapterzoo.data.tokenizer import builtin_clip_tokenizer

    tokenizer = builtin_clip_tokenizer()
    text = _text_sizes(sizes, vocab_size=len(tokenizer), max_position_embeddings=32)
    text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    text.update(pad_token_id=tokenizer.pad_token_id)
    return transformers.CLIPModel(transformers.CLIPConfig(text_config=text, vision_config=sizes, projection_dim=16))


def _tiny_siglip(arch: Architecture, sizes: dict[str, Any]) -> Any:
    """A whole SigLIP (both towers), as released SigLIP checkpoints are."""
    import transformers

    text = _text_sizes(sizes, vocab_size=64, max_position_embeddings=16, bos_token_id=1, eos_token_id=2)
    return transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=sizes))


def _tiny_swin(arch: Architecture, sizes: dict[str, Any]) -> Any:
    """Two stages of 4x4 windows over 4-pixel patches, the second twice as wide (Swin sizes its stages itself)."""
    import transformers

    width, heads = sizes["hidden_size"], sizes["num_attention_heads"]
    config = transformers.SwinConfig(
        image_size=sizes["image_size"], patch_size=4, embed_dim=width, depths=[2, 2],
        num_heads=[heads // 2, heads], window_size=4,
    )  # fmt: skip
    return transformers.SwinModel(config, **arch.load_kwargs)


def _text_sizes(sizes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**{k: v for k, v in sizes.items() if k not in ("image_size", "patch_size")}, **extra}


def _image_size(model: Any) -> int:
    return getattr(model.config, "vision_config", model.config).image_size


def _vit_processor(model: Any) -> Any:
    """A resize to the model's image size with mean and std 0.5, the image processor of a tiny checkpoint."""
    import transformers

    size = _image_size(model)
    return transformers.ViTImageProcessorPil(size={"height": size, "width": size})


def _clip_processor(model: Any) -> Any:
    """CLIP's image processor; with the offline tokenizer beside it for a whole CLIP, as Hub CLIPs ship."""
    import transformers

    from adapterzoo.data.tokenizer import builtin_clip_tokenizer

    size = _image_size(model)
    images = transformers.CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size=size)
    if model.config.model_type != "clip":
        return images
    return transformers.CLIPProcessor(image_processor=images, tokenizer=builtin_clip_tokenizer())


@dataclass(frozen=True)
class Architecture:
    """One family of vision backbones: what adapterzoo knows about it that structure alone cannot tell."""

    name: str
    display_name: str  # its column in README's support matrix
    model_types: tuple[str, ...]
    model_class: str  # the transformers class a checkpoint of any of ``model_types`` is loaded as
    load_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # Tokens before the patch tokens: CLS (1), CLS and distillation (DeiT, 2), none (SigLIP, Swin); plus the
    # config's count of register tokens, where ``register_tokens`` names that config field (DINOv2 with registers).
    num_prefix_tokens: int = 1
    register_tokens: str | None = None
    # Whether the backbone's ``last_hidden_state`` has already passed the final norm (ViT) or not (CLIP, which
    # normalises only its pooled CLS token).
    sequence_is_normed: bool = True
    # Where the norm sits when the backbone normalises only its pooled output (BEiT's mean pooling: ``pooler.layernorm``
    # after the mean of the patch tokens, no per-token final norm); such a backbone pools the mean by default.
    pooled_norm: str | None = None
    # The default head is the one transformers' ``*ForImageClassification`` class puts on this architecture, so that
    # a weight tuner's adapter loads in plain PEFT onto that class with the same logits: how it pools the tokens (None:
    # the CLS token, or the mean where there is none) and whether a final norm the sequence has not passed applies
    # to every token ("tokens") or not at all ("none", CLIP's classifier). A ``pooled_norm`` applies to the pooled
    # vector ("pooled"), as BEiT's pooler does.
    head_pooling: str | None = None
    head_norm: str = "tokens"
    # transformers' image-classification class for this architecture and the attribute holding the backbone in it
    # (``ViTForImageClassification.vit``); None where transformers has none.
    classification_class: str | None = None
    classification_prefix: str | None = None
    # The child list of blocks inside each stage of a hierarchical backbone (Swin: ``blocks``), None for a flat one.
    block_container: str | None = None
    # Why tokens cannot be inserted into this architecture's sequence (VPT's, DVPT's prompts), None if they can.
    insertion_blocker: str | None = None
    # Tests: the tiny checkpoint of kind ``name`` (the one the support matrix and the conformance suites run on),
    # config fields it sets beyond the tiny sizes, further tiny kinds by name, and the image processor saved beside.
    tiny: TinyBuilder = tiny_tower
    tiny_config: Mapping[str, Any] = field(default_factory=dict)
    extra_tiny: Mapping[str, TinyBuilder] = field(default_factory=dict)
    tiny_processor: Callable[[Any], Any] = _vit_processor

    @property
    def tiny_kinds(self) -> dict[str, TinyBuilder]:
        """Every tiny checkpoint of this architecture by kind, its own (named after it) first."""
        return {self.name: self.tiny, **self.extra_tiny}


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        "vit",
        "ViT",
        ("vit",),
        "ViTModel",
        {"add_pooling_layer": False},
        classification_class="ViTForImageClassification",
        classification_prefix="vit",
    ),  # fmt: skip
    Architecture(
        "clip",
        "CLIP",
        ("clip", "clip_vision_model"),
        "CLIPVisionModel",
        sequence_is_normed=False,
        head_pooling="mean",
        head_norm="none",
        classification_class="CLIPForImageClassification",
        classification_prefix="vision_model",
        tiny=_tiny_clip,
        extra_tiny={"clip_vision_model": tiny_tower},
        tiny_processor=_clip_processor,
    ),  # fmt: skip
    Architecture(
        "deit",
        "DeiT",
        ("deit",),
        "DeiTModel",
        {"add_pooling_layer": False},
        num_prefix_tokens=2,
        classification_class="DeiTForImageClassification",
        classification_prefix="deit",
    ),  # fmt: skip
    Architecture(
        "dinov2",
        "DINOv2",
        ("dinov2",),
        "Dinov2Model",
        head_pooling="cls+mean",
        classification_class="Dinov2ForImageClassification",
        classification_prefix="dinov2",
    ),  # fmt: skip
    Architecture(
        "dinov2_with_registers",
        "DINOv2 + registers",
        ("dinov2_with_registers",),
        "Dinov2WithRegistersModel",
        register_tokens="num_register_tokens",
        head_pooling="cls+mean",
        classification_class="Dinov2WithRegistersForImageClassification",
        classification_prefix="dinov2_with_registers",
        tiny_config={"num_register_tokens": 2},
    ),  # fmt: skip
    # SigLIP's attention-pooling head is left out: heads here pool the tokens themselves (the mean, as transformers'
    # SiglipForImageClassification does).
    Architecture(
        "siglip",
        "SigLIP",
        ("siglip", "siglip_vision_model"),
        "SiglipVisionModel",
        {"vision_use_head": False},
        num_prefix_tokens=0,
        classification_class="SiglipForImageClassification",
        classification_prefix="vision_model",
        tiny=_tiny_siglip,
    ),  # fmt: skip
    Architecture(
        "beit",
        "BEiT",
        ("beit",),
        "BeitModel",
        pooled_norm="pooler.layernorm",
        classification_class="BeitForImageClassification",
        classification_prefix="beit",
        insertion_blocker="inserted tokens have no entry in the learned relative position bias, sized to CLS and the "
        "patch grid, that every attention adds",
        tiny_config={"use_relative_position_bias": True},  # as released BEiTs have
    ),  # fmt: skip
    Architecture(
        "swin",
        "Swin",
        ("swin",),
        "SwinModel",
        {"add_pooling_layer": False},
        num_prefix_tokens=0,
        block_container="blocks",
        classification_class="SwinForImageClassification",
        classification_prefix="swin",
        insertion_blocker="tokens attend within local windows of a patch grid that each stage merges into a smaller "
        "one, with no global token sequence to insert tokens into",
        tiny=_tiny_swin,
    ),  # fmt: skip
)


def supported_architectures() -> list[str]:
    return [arch.name for arch in ARCHITECTURES]


def find_architecture(model_type: str) -> Architecture | None:
    """The architecture that serves ``model_type``, None when none does."""
    return next((arch for arch in ARCHITECTURES if model_type in arch.model_types), None)


def architecture_for(model_type: str) -> Architecture:
    """The architecture that serves ``model_type``, or an error listing the supported ones."""
    arch = find_architecture(model_type)
    if arch is None:
        raise UnsupportedBackboneError(
            f"Backbones of model_type '{model_type}' are not supported. "
            f"Supported architectures: {', '.join(supported_architectures())}."
        )
    return arch


def tiny_kinds() -> dict[str, Architecture]:
    """Every tiny checkpoint kind, each with its architecture."""
    return {kind: arch for arch in ARCHITECTURES for kind in arch.tiny_kinds}
