"""Vision backbones: loading them from the Hub or a folder, and finding their parts by structure.

Module paths change between transformers releases (ViT's layers moved from ``vit.encoder.layer.N`` to
``vit.layers.N``), so nothing here hard-codes one: the parts of a vision tower are found from its structure (the
patch-embedding convolution, the ModuleList of encoder layers, the norms around it) and its ``config.model_type``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import transformers
from torch import nn

from adapterzoo.architectures import Architecture, architecture_for, find_architecture, supported_architectures
from adapterzoo.errors import CheckpointError, LoadingOptionError, UnsupportedBackboneError
from adapterzoo.loading_options import LoadingOptions
from adapterzoo.remote_code import load_auto


@dataclass(frozen=True)
class BackboneParts:
    """Where a vision tower's parts are, as module paths relative to the module that was described."""

    architecture: str
    model_type: str
    root: str
    embeddings: str
    layers: str
    pre_norm: str | None
    final_norm: str
    hidden_size: int
    num_layers: int
    num_prefix_tokens: int
    patch_size: int
    num_channels: int
    sequence_is_normed: bool
    default_pooling: str = "cls"
    default_head_norm: str = "tokens"
    """Where the default head applies ``final_norm``: "tokens" (to each token, unless the sequence is normed already),
    "pooled" (to the pooled vector) or "none"; see `Architecture.head_norm`."""
    block_container: str | None = None
    insertion_blocker: str | None = None
    num_register_tokens: int = 0

    @property
    def num_class_tokens(self) -> int:
        """The prefix tokens that summarise the image: CLS, and DeiT's distillation token; not DINOv2's registers."""
        return self.num_prefix_tokens - self.num_register_tokens

    @property
    def layer_paths(self) -> list[str]:
        """The encoder layers (a hierarchical backbone's stages)."""
        return [f"{self.layers}.{i}" for i in range(self.num_layers)]

    @property
    def is_hierarchical(self) -> bool:
        """Whether the layers are stages of blocks over a shrinking token grid (Swin), not one token sequence."""
        return self.block_container is not None

    @property
    def first_block(self) -> str:
        """The first transformer block: the first layer, or the first block of a hierarchical backbone's first stage."""
        return f"{self.layers}.0" + (f".{self.block_container}.0" if self.block_container else "")

    @property
    def block_pattern(self) -> str:
        """A regex of every transformer block's path."""
        stage = rf"{re.escape(self.layers)}\.\d+"
        return stage + (rf"\.{re.escape(self.block_container)}\.\d+" if self.block_container else "")


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _vision_config(config: transformers.PretrainedConfig) -> transformers.PretrainedConfig:
    return getattr(config, "vision_config", None) or config


def _find_backbone(model: nn.Module) -> tuple[str, transformers.PreTrainedModel, Architecture]:
    """The first submodule (or the module itself) that is a transformers model of a supported architecture."""
    seen_types = []
    for path, module in model.named_modules():
        model_type = getattr(getattr(module, "config", None), "model_type", None)
        if isinstance(module, transformers.PreTrainedModel) and model_type:
            seen_types.append(model_type)
            arch = find_architecture(model_type)
            if arch is not None:
                return path, module, arch
    found = f"model_type '{seen_types[0]}'" if seen_types else f"a {type(model).__name__} with no transformers config"
    raise UnsupportedBackboneError(
        f"Expected a vision backbone, found {found}. Supported architectures: {', '.join(supported_architectures())}."
    )


WRAPPED_AS = ("base_layer", "original_module")
"""Where adapters' wrappers hold the module they wrap: PEFT's tuner layers (LoRA's, LN tuning's, every zoo method's)
as ``base_layer``, PEFT's wrapper of a module trained whole (``modules_to_save``) as ``original_module``."""


def _wrapped(module: nn.Module | None) -> nn.Module | None:
    """The module that ``module`` wraps when it is an adapter's wrapper, else None."""
    return next((getattr(module, name) for name in WRAPPED_AS if hasattr(module, name)), None)


def _unwrapped(module: nn.Module | None) -> nn.Module | None:
    """The module itself, or the original one inside adapters' wrappers (a wrapper may wrap another one)."""
    while (inner := _wrapped(module)) is not None:
        module = inner
    return module


def _unwrapped_path(path: str) -> str:
    """A module path without the wrappers' own steps: where the module sits in the backbone without adapters."""
    return ".".join(part for part in path.split(".") if part not in WRAPPED_AS)


def _backbone_modules(owner: nn.Module) -> dict[str, nn.Module]:
    """The backbone's own modules by path, leaving out what adapters attached to it hold (their prompts, modules)."""
    modules, adapter_parts = {}, []
    for path, module in owner.named_modules():
        if any(path == part or path.startswith(part + ".") for part in adapter_parts):
            continue
        modules[path] = module
        if _wrapped(module) is not None:
            adapter_parts += [_join(path, name) for name, _ in module.named_children() if name not in WRAPPED_AS]
    return modules


def describe_backbone(model: nn.Module) -> BackboneParts:
    """Find the vision tower's parts inside ``model`` (a backbone, a task model, or a PEFT model around either).

    Parts that adapters have wrapped are found as the original modules would be, at the wrappers' paths, so a second
    adapter attaches to a model that holds one already.
    """
    owner_path, owner, arch = _find_backbone(model)
    config = _vision_config(owner.config)
    modules = _backbone_modules(owner)

    conv_path = next((p for p, m in modules.items() if isinstance(_unwrapped(m), nn.Conv2d)), None)
    if conv_path is None:
        raise UnsupportedBackboneError(f"No patch-embedding convolution found in the '{config.model_type}' backbone.")

    tower = _tower_around(modules, conv_path, config.num_hidden_layers)
    if tower is None:
        raise UnsupportedBackboneError(
            f"No list of {config.num_hidden_layers} encoder layers found in the '{config.model_type}' backbone."
        )
    root, layers_path = tower

    relative = lambda path: path[len(root) + 1 :] if root else path  # noqa: E731
    embeddings = _join(root, relative(conv_path).split(".")[0])
    layers_child = _join(root, relative(layers_path).split(".")[0])

    pre_norm = final_norm = None
    after_layers = False
    for name, child in owner.get_submodule(root).named_children():
        path = _join(root, name)
        if path == layers_child:
            after_layers = True
        elif isinstance(_unwrapped(child), nn.LayerNorm):
            if after_layers and final_norm is None:
                final_norm = path
            elif not after_layers:
                pre_norm = path
    sequence_is_normed, pooling, head_norm = arch.sequence_is_normed, arch.head_pooling or "cls", arch.head_norm
    pooled_norm = _unwrapped(modules.get(_join(root, arch.pooled_norm))) if arch.pooled_norm else None
    if final_norm is None and isinstance(pooled_norm, nn.LayerNorm):
        final_norm, sequence_is_normed, pooling, head_norm = _join(root, arch.pooled_norm), False, "mean", "pooled"
    if final_norm is None:
        raise UnsupportedBackboneError(f"No final norm found after the encoder of the '{config.model_type}' backbone.")
    registers = getattr(config, arch.register_tokens) if arch.register_tokens else 0
    num_prefix_tokens = arch.num_prefix_tokens + registers

    patch_size = config.patch_size
    return BackboneParts(
        architecture=arch.name,
        model_type=config.model_type,
        root=_join(owner_path, root),
        embeddings=_join(owner_path, embeddings),
        layers=_join(owner_path, layers_path),
        pre_norm=_join(owner_path, pre_norm) if pre_norm else None,
        final_norm=_join(owner_path, final_norm),
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_prefix_tokens=num_prefix_tokens,
        patch_size=patch_size if isinstance(patch_size, int) else patch_size[0],
        num_channels=getattr(config, "num_channels", 3),
        sequence_is_normed=sequence_is_normed,
        default_pooling=pooling if num_prefix_tokens else "mean",
        default_head_norm=head_norm,
        block_container=arch.block_container,
        insertion_blocker=arch.insertion_blocker,
        num_register_tokens=registers,
    )


@dataclass(frozen=True)
class TextParts:
    """Where a CLIP text tower's parts are, as module paths relative to the module that was described."""

    root: str
    token_embedding: str
    layers: str
    num_layers: int
    hidden_size: int
    max_length: int

    @property
    def layer_paths(self) -> list[str]:
        return [f"{self.layers}.{i}" for i in range(self.num_layers)]


def describe_text_tower(model: nn.Module) -> TextParts:
    """Find the text tower of the vision-language model inside ``model`` (its token embedding and encoder layers)."""
    owner_path, owner, arch = _find_backbone(model)
    config = getattr(owner.config, "text_config", None)
    if config is None:
        raise UnsupportedBackboneError(f"The '{owner.config.model_type}' backbone has no text tower.")
    modules = _backbone_modules(owner)
    embedding = next(
        (
            p
            for p, m in modules.items()
            if isinstance(_unwrapped(m), nn.Embedding) and _unwrapped(m).num_embeddings == config.vocab_size
        ),
        None,
    )
    if embedding is None:
        raise UnsupportedBackboneError(f"No token embedding found in the '{owner.config.model_type}' text tower.")
    vision_root = describe_backbone(owner).root
    text_modules = {p: m for p, m in modules.items() if not p.startswith(vision_root + ".")}
    tower = _tower_around(text_modules, embedding, config.num_hidden_layers)
    if tower is None:
        raise UnsupportedBackboneError(f"No text encoder layers found in the '{owner.config.model_type}' backbone.")
    root, layers = tower
    return TextParts(
        root=_join(owner_path, root),
        token_embedding=_join(owner_path, embedding),
        layers=_join(owner_path, layers),
        num_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        max_length=config.max_position_embeddings,
    )


def _tower_around(modules: dict[str, nn.Module], anchor: str, num_layers: int) -> tuple[str, str] | None:
    """(root, layers): the nearest ancestor of ``anchor`` (a tower's input embedding) that also holds a list of
    ``num_layers`` encoder layers, and that list's path; None when no ancestor does."""
    ancestors = anchor.split(".")[:-1]
    for depth in range(len(ancestors), -1, -1):
        root = ".".join(ancestors[:depth])
        for path, module in modules.items():
            inside = not root or path.startswith(root + ".")
            if inside and isinstance(module, nn.ModuleList) and len(module) == num_layers:
                return root, path
    return None


# Local names of the linear layers inside an encoder layer, per role, across architectures and transformers releases.
# Roles are matched in this order and a layer takes the first role it matches, so the attention output's
# "attention.output.dense" (old ViT) is claimed before the MLP's "output.dense".
LINEAR_ROLES: dict[str, tuple[str, ...]] = {
    "q": ("q_proj", "query"),
    "k": ("k_proj", "key"),
    "v": ("v_proj", "value"),
    "o": ("o_proj", "out_proj", "attention.output.dense"),
    "fc1": ("fc1", "intermediate.dense", "up_proj", "gate_proj", "weights_in"),  # the last three: SwiGLU MLPs
    "fc2": ("fc2", "output.dense", "down_proj", "weights_out"),
}


def role_of(relative_path: str) -> str | None:
    for role, aliases in LINEAR_ROLES.items():
        if any(relative_path == alias or relative_path.endswith("." + alias) for alias in aliases):
            return role
    return None


def _linear_layers(layer: nn.Module) -> list[str]:
    """Paths of the role-bearing linear layers inside an encoder layer, seeing through adapters wrapped around them
    (and leaving out the adapters' own linear layers)."""
    paths = []
    for path, module in _backbone_modules(layer).items():
        plain = _unwrapped_path(path)
        if isinstance(_unwrapped(module), nn.Linear) and role_of(plain) is not None and plain not in paths:
            paths.append(plain)
    return paths


MLP_NORMS = ("layernorm_after", "layer_norm2", "norm2", "ln_2")


def mlp_norm(layer: nn.Module) -> str | None:
    """The local name, inside an encoder layer, of the norm applied right before its MLP (None without one)."""
    children = dict(_unwrapped(layer).named_children())
    return next((name for name in MLP_NORMS if name in children), None)


def mlp_block(model: nn.Module) -> tuple[str, str]:
    """Local names, inside each encoder layer, of the MLP and of the norm applied right before it."""
    parts = describe_backbone(model)
    layer = _unwrapped(model.get_submodule(parts.first_block))
    children = dict(layer.named_children())
    with_fc1 = [
        name for name, child in children.items() if any(role_of(f"{name}.{p}") == "fc1" for p in _linear_layers(child))
    ]
    mlp = with_fc1[0] if with_fc1 else None
    norm = mlp_norm(layer)
    if mlp is None or norm is None:
        raise UnsupportedBackboneError(f"No MLP with a norm before it found in the '{parts.architecture}' layers.")
    return norm, mlp


def is_role_list(value: Any) -> bool:
    """Whether ``value`` names roles (``["q", "v"]``) rather than PEFT module names or a regex."""
    return isinstance(value, (list, tuple, set)) and bool(value) and all(v in LINEAR_ROLES for v in value)


def resolve_linear_roles(model: nn.Module, roles: Iterable[str]) -> str:
    """A PEFT ``target_modules`` regex matching the linear layers with these roles in every transformer block."""
    roles = list(roles)
    parts = describe_backbone(model)
    linears = _linear_layers(model.get_submodule(parts.first_block))
    found = {role: [path for path in linears if role_of(path) == role] for role in roles}
    missing = [role for role, paths in found.items() if not paths]
    if missing:
        present = sorted({role_of(path) for path in linears} - {None})
        raise UnsupportedBackboneError(
            f"The '{parts.architecture}' backbone has no linear layer for role(s) {missing}; it has: {present}."
        )
    return _roles_pattern(parts, [path for paths in found.values() for path in paths])


def role_patterns(model: nn.Module) -> set[str]:
    """Every regex `resolve_linear_roles` can produce on ``model``: one per non-empty set of the roles it has.

    A loaded adapter's ``target_modules`` regex must be one of these (see `adapterzoo.pattern_check`).
    """
    parts = describe_backbone(model)
    by_role: dict[str, list[str]] = {}
    for path in _linear_layers(model.get_submodule(parts.first_block)):
        by_role.setdefault(role_of(path), []).append(path)
    return {
        _roles_pattern(parts, [path for role in chosen for path in by_role[role]])
        for size in range(1, len(by_role) + 1)
        for chosen in combinations(by_role, size)
    }


def _roles_pattern(parts: BackboneParts, local_paths: Iterable[str]) -> str:
    """The regex of these linear layers (paths local to a block) in every transformer block."""
    return rf"{parts.block_pattern}\.(?:{'|'.join(re.escape(p) for p in sorted(set(local_paths)))})"


def load_backbone(name_or_path: str, options: LoadingOptions | None = None) -> transformers.PreTrainedModel:
    """Load the vision tower of a supported backbone from a Hub id or a local folder, with transformers' loading
    ``options`` (dtype, device map, revision, token, ...).

    A checkpoint that ships custom code is refused unless ``options.trust_remote_code`` (see `adapterzoo.remote_code`).
    """
    options = options or LoadingOptions()
    config = load_auto("AutoConfig", name_or_path, **options.config_kwargs())
    arch = architecture_for(config.model_type)
    model_class = getattr(transformers, arch.model_class)
    return _load_checked(model_class, name_or_path, options, **arch.load_kwargs)


def _load_checked(model_class: type, name_or_path: str, options: LoadingOptions, **kwargs: Any) -> Any:
    """``model_class.from_pretrained`` (a built-in class), refusing a checkpoint that lacks weights the model needs,
    and a ``device_map`` that leaves weights on the disk (training and prediction need them in memory).

    Checkpoint weights the model does not use (CLIP's text tower for a vision tower, ViT's pooler) are skipped
    quietly; missing ones would otherwise be filled with random values.
    """
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model, info = model_class.from_pretrained(
            name_or_path,
            output_loading_info=True,
            **options.model_kwargs(),
            **kwargs,
        )
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = sorted(info["missing_keys"])
    if missing:
        raise CheckpointError(
            f"The checkpoint '{name_or_path}' lacks {len(missing)} weight(s) of its {model_class.__name__}, "
            f"e.g. {', '.join(missing[:3])}."
        )
    offloaded = sorted(path or "the whole model" for path, place in model_device_map(model).items() if place == "disk")
    if offloaded:
        raise LoadingOptionError(
            f"device_map={options.device_map!r} leaves {', '.join(offloaded[:3])} of '{name_or_path}' on the disk: "
            "the devices' free memory cannot hold it. Free memory, load in a smaller dtype (dtype=torch.bfloat16), "
            "or name a device with room for it (device_map='cuda:0')."
        )
    return model


def model_device_map(model: nn.Module) -> dict[str, Any]:
    """Where a model loaded with an Accelerate ``device_map`` keeps each part ({} for a model on one device)."""
    return dict(getattr(model, "hf_device_map", None) or {})


def load_clip(name_or_path: str, options: LoadingOptions | None = None) -> tuple[transformers.CLIPModel, Any]:
    """A whole CLIP (vision and text towers, projections) and its tokenizer, from a Hub id or a local folder, with
    transformers' loading ``options``."""
    options = options or LoadingOptions()
    config = load_auto("AutoConfig", name_or_path, **options.config_kwargs())
    if config.model_type != "clip":
        needs = "CLIP classification needs a vision-language CLIP (model_type 'clip': a text tower and a tokenizer)"
        raise UnsupportedBackboneError(f"'{name_or_path}' is a '{config.model_type}' model; {needs}.", reason=needs)
    model = _load_checked(transformers.CLIPModel, name_or_path, options)
    return model, load_auto("AutoTokenizer", name_or_path, **options.config_kwargs())


def backbone_name(backbone: transformers.PreTrainedModel) -> str | None:
    """Where a backbone was loaded from: its Hub id, or its folder as an absolute path."""
    name = backbone.config.name_or_path or None
    return os.path.abspath(name) if name is not None and os.path.isdir(name) else name


def resolve_revision(name_or_path: str, options: LoadingOptions | None = None) -> str | None:
    """The commit that ``options.revision`` (default: the main branch) of a Hub backbone points to; None for a
    folder. With ``local_files_only`` (or ``HF_HUB_OFFLINE=1``) it is read from the cache."""
    options = options or LoadingOptions()
    if os.path.isdir(name_or_path):
        return None
    resolved = transformers.utils.hub.resolve_revision(
        name_or_path,
        options.revision,
        token=options.token,
        local_files_only=options.local_files_only,
        cache_dir=options.cache_dir,
    )
    return getattr(resolved, "resolved", None) or options.revision


def load_image_processor(backbone: transformers.PreTrainedModel, options: LoadingOptions | None = None) -> Any:
    """The backbone's own image processor, loaded with ``options``; a default one built from its config when it was
    saved without one.

    One that ships custom code raises `RemoteCodeError` (no fallback) unless ``options.trust_remote_code``.
    """
    options = options or LoadingOptions()
    name = backbone_name(backbone)
    if name is not None:
        try:
            return load_auto("AutoImageProcessor", name, **options.config_kwargs())
        except (OSError, ValueError):
            pass
    config = _vision_config(backbone.config)
    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    warnings.warn(
        f"No image processor found with backbone '{name}'; using a resize to {size}x{size} with mean and std 0.5. "
        "Save the backbone's image processor beside it, or pass image_processor=, to silence this.",
        stacklevel=2,
    )
    return transformers.ViTImageProcessorPil(size={"height": size, "width": size})
