"""Where CoOp's, CoCoOp's and MaPLe's prompts go.

Text side: `CoOpContext` and `MaPLePromptLearner` wrap CLIP's token embedding. The prompts are tokenized from a
template (``"X X ... X {}."`` or ``"a photo of a {}."``); the embeddings of the n tokens after SOS are replaced by
the learnable context, and CLIP's position embeddings are then added, so the text prompts carry positions 1..n:
``[SOS][ctx_1..ctx_n][rest of the phrase][class][.][EOS]``.

CoCoOp (`CoCoOpPromptLearner`) adds to every context vector the same bias π = Meta-Net(f̂) of each image's
normalised features f̂, so each image has its own class prompts; `CLIPClassifier` runs every (image, class) prompt of a
batch in one text pass (`CLIPClassifier.image_conditioner`).

MaPLe also prompts the vision tower (`MaPLeVisionEmbeddings`): after the patch embeddings, which already carry the
position embeddings, it appends n vision prompts, ``proj(ctx)``, *after* the patches (before CLIP's pre-encoder norm),
with no position embedding. In the layers 1..J-1 of both towers (`MaPLeEncoderLayer`) the prompt slots are replaced
by deep prompts (text: positions 1..n; vision: the last n tokens); the vision deep prompts are the text deep prompts
mapped by one linear layer per depth. `MaPLePromptLearner` holds every MaPLe parameter, as the reference's
``MultiModalPromptLearner`` does.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from adapterzoo.tuners import WrappingLayer

from .config import CoCoOpConfig, CoOpConfig, MaPLeConfig

MERGE_REFUSAL = "prompt learning adds context tokens; there are no weights to fold them into."


def splice(tokens: torch.Tensor, new: torch.Tensor, at: int, replaced: int) -> torch.Tensor:
    """``tokens`` with ``replaced`` tokens from position ``at`` swapped for ``new``: (1, k, d) for every sample, or
    (samples, k, d), one each."""
    new = new.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
    return torch.cat([tokens[:, :at], new, tokens[:, at + replaced :]], dim=1)


def initial_context(
    embedding: nn.Embedding, tokenizer, phrase: str | None, num_context: int | None
) -> tuple[str, torch.Tensor]:
    """The prompt template and the initial (n, d) context.

    With a ``phrase``, the template is "<phrase> {}." and the context starts as the embeddings of its first
    ``num_context`` tokens (all of them when ``num_context`` is None, as CoOp); without one, the template holds n
    placeholder words "X" and the context starts from N(0, 0.02), as both references do.
    """
    if phrase:
        ids = tokenizer(phrase)["input_ids"][1:-1]
        count = len(ids) if num_context is None else num_context
        if count > len(ids):
            raise ValueError(f"context_init '{phrase}' has {len(ids)} tokens; {count} learnable ones need as many.")
        with torch.no_grad():
            vectors = embedding.weight[torch.tensor(ids[:count])].detach().clone()
        return f"{phrase} {{}}.", vectors
    vectors = torch.empty(num_context, embedding.weight.shape[1]).normal_(std=0.02)
    return " ".join(["X"] * num_context) + " {}.", vectors


def whole_phrase_context(embedding: nn.Embedding, tokenizer, config: CoOpConfig) -> tuple[str, torch.Tensor]:
    """CoOp's and CoCoOp's template and context: every token of ``context_init`` learnable, or ``num_context``
    random vectors without a phrase."""
    count = None if config.context_init else config.num_context
    return initial_context(embedding, tokenizer, config.context_init, count)


class PromptLayer(WrappingLayer):
    merge_refusal = MERGE_REFUSAL


class ContextAfterSOS(PromptLayer):
    """Wraps the text token embedding: the embeddings of the n tokens after SOS become the active adapter's context.

    Subclasses name their (n, d) contexts and prompt templates, per adapter, in ``adapter_layer_names[0]`` and
    ``other_param_names[0]``.
    """

    def _contexts(self) -> nn.ParameterDict:
        return getattr(self, self.adapter_layer_names[0])

    def _templates(self) -> dict[str, str]:
        return getattr(self, self.other_param_names[0])

    def active_template(self) -> str | None:
        """The template the active adapter's context was laid out in (`CLIPClassifier` fills in the class names)."""
        adapter = self.active_adapter_here()
        return None if adapter is None else self._templates()[adapter]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeddings = self.base_layer(input_ids)
        adapter = self.active_adapter_here()
        if adapter is None:
            return embeddings
        context = self._contexts()[adapter]
        return splice(embeddings, context[None], at=1, replaced=context.shape[0])


class CoOpContext(ContextAfterSOS):
    """CoOp's shared context after SOS (``coop_context``: (n, d_text))."""

    adapter_layer_names = ("coop_context",)
    other_param_names = ("coop_templates",)

    def __init__(self, base_layer: nn.Embedding, adapter_name: str, config: CoOpConfig, *, tokenizer):
        super().__init__(base_layer)
        object.__setattr__(self, "tokenizer", tokenizer)
        self.coop_context = nn.ParameterDict()
        self.coop_templates: dict[str, str] = {}
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: CoOpConfig) -> None:
        template, vectors = whole_phrase_context(self.base_layer, self.tokenizer, config)
        self.coop_context[adapter_name] = nn.Parameter(vectors)
        self.coop_templates[adapter_name] = template


def meta_net(feature_dim: int, text_width: int) -> nn.Sequential:
    """CoCoOp's Meta-Net, Linear(D, D/16)-ReLU-Linear(D/16, d_text), with PyTorch's default initialisation."""
    hidden = max(1, feature_dim // 16)
    return nn.Sequential(
        OrderedDict(linear1=nn.Linear(feature_dim, hidden), relu=nn.ReLU(), linear2=nn.Linear(hidden, text_width))
    )


class CoCoOpPromptLearner(ContextAfterSOS):
    """CoCoOp's context after SOS (``cocoop_context``: (n, d_text)) and Meta-Net (``cocoop_meta_net``), per adapter.

    The prompts depend on the image: inside `conditioned_on(image)` the token ids are read as one block of the
    classes' prompts per image, and block i gets the context ``ctx + Meta-Net(image[i])``.
    """

    adapter_layer_names = ("cocoop_context", "cocoop_meta_net")
    other_param_names = ("cocoop_templates",)

    def __init__(self, base_layer: nn.Embedding, adapter_name: str, config: CoCoOpConfig, *, tokenizer,
                 feature_dim: int):  # fmt: skip
        super().__init__(base_layer)
        object.__setattr__(self, "tokenizer", tokenizer)
        self._image: torch.Tensor | None = None
        self.feature_dim = feature_dim
        self.cocoop_context = nn.ParameterDict()
        self.cocoop_meta_net = nn.ModuleDict()
        self.cocoop_templates: dict[str, str] = {}
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: CoCoOpConfig) -> None:
        template, vectors = whole_phrase_context(self.base_layer, self.tokenizer, config)
        self.cocoop_context[adapter_name] = nn.Parameter(vectors)
        self.cocoop_meta_net[adapter_name] = meta_net(self.feature_dim, vectors.shape[1])
        self.cocoop_templates[adapter_name] = template

    def image_conditioned(self) -> bool:
        """Whether the prompts depend on the image: while an adapter of this layer is active."""
        return self.active_adapter_here() is not None

    @contextmanager
    def conditioned_on(self, image: torch.Tensor) -> Iterator[None]:
        """Condition the prompts of the text passes inside on ``image``, the (batch, D) normalised image features."""
        self._image = image
        try:
            yield
        finally:
            self._image = None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeddings = self.base_layer(input_ids)
        adapter = self.active_adapter_here()
        if adapter is None:
            return embeddings
        if self._image is None:
            raise RuntimeError("CoCoOp's prompts depend on the image: encode text through CLIPClassifier.encode_text.")
        meta_net = self.cocoop_meta_net[adapter]
        bias = meta_net(self._image.to(meta_net.linear1.weight.dtype))
        contexts = self.cocoop_context[adapter][None] + bias[:, None]  # π is shared by every context vector
        per_prompt = contexts.repeat_interleave(input_ids.shape[0] // self._image.shape[0], dim=0)
        return splice(embeddings, per_prompt, at=1, replaced=contexts.shape[1])


class MaPLePromptLearner(ContextAfterSOS):
    """MaPLe's text context after SOS, and the holder of all of MaPLe's parameters, per adapter:

    ``maple_context`` (n, d_t), the shallow text prompts, from the template's words; ``maple_vision_projection``,
    Linear(d_t, d_v), the coupling function of the vision prompts; ``maple_deep_text`` (J-1, n, d_t) from
    N(0, 0.02); ``maple_deep_projections``, J-1 copies of one freshly initialised Linear(d_t, d_v), as the reference
    clones one layer.
    """

    adapter_layer_names = ("maple_context", "maple_vision_projection", "maple_deep_text", "maple_deep_projections")
    other_param_names = ("maple_templates",)

    def __init__(self, base_layer: nn.Embedding, adapter_name: str, config: MaPLeConfig, *, tokenizer,
                 vision_width: int):  # fmt: skip
        super().__init__(base_layer)
        object.__setattr__(self, "tokenizer", tokenizer)
        self.vision_width = vision_width
        self.maple_context = nn.ParameterDict()
        self.maple_vision_projection = nn.ModuleDict()
        self.maple_deep_text = nn.ParameterDict()
        self.maple_deep_projections = nn.ModuleDict()
        self.maple_templates: dict[str, str] = {}
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: MaPLeConfig) -> None:
        template, vectors = initial_context(self.base_layer, self.tokenizer, config.context_init, config.num_context)
        text_width = self.base_layer.weight.shape[1]
        self.maple_context[adapter_name] = nn.Parameter(vectors)
        self.maple_vision_projection[adapter_name] = nn.Linear(text_width, self.vision_width)
        deep = torch.empty(config.depth - 1, config.num_context, text_width).normal_(std=0.02)
        self.maple_deep_text[adapter_name] = nn.Parameter(deep)
        single = nn.Linear(text_width, self.vision_width)
        self.maple_deep_projections[adapter_name] = nn.ModuleList(
            copy.deepcopy(single) for _ in range(config.depth - 1)
        )
        self.maple_templates[adapter_name] = template

    def text_prompts(self, adapter_name: str, layer_index: int) -> torch.Tensor | None:
        """The (1, n, d_t) deep text prompts entering text layer ``layer_index`` >= 1 (None past the depth)."""
        deep = self.maple_deep_text[adapter_name]
        return deep[layer_index - 1][None] if layer_index <= deep.shape[0] else None

    def vision_prompts(self, adapter_name: str, layer_index: int) -> torch.Tensor | None:
        """The (1, n, d_v) vision prompts entering vision layer ``layer_index`` (None past the depth)."""
        if layer_index == 0:
            return self.maple_vision_projection[adapter_name](self.maple_context[adapter_name])[None]
        deep = self.maple_deep_text[adapter_name]
        if layer_index > deep.shape[0]:
            return None
        return self.maple_deep_projections[adapter_name][layer_index - 1](deep[layer_index - 1])[None]


class MaPLeFollower(PromptLayer):
    """A MaPLe wrapper whose prompts come from the `MaPLePromptLearner` (a plain reference, so they are saved once)."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, *, learner: MaPLePromptLearner):
        super().__init__(base_layer)
        object.__setattr__(self, "learner", learner)
        self.update_layer(adapter_name)


class MaPLeVisionEmbeddings(MaPLeFollower):
    """Wraps the vision patch embeddings and appends the vision prompts after the patches (no position embedding)."""

    def forward(self, *args, **kwargs) -> torch.Tensor:
        tokens = self.base_layer(*args, **kwargs)
        adapter = self.active_adapter_here()
        if adapter is None:
            return tokens
        return splice(tokens, self.learner.vision_prompts(adapter, 0), at=tokens.shape[1], replaced=0)


class MaPLeEncoderLayer(MaPLeFollower):
    """Wraps layer ``index`` (1..J-1) of one tower and replaces that tower's prompt slots with the deep prompts."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, *, learner: MaPLePromptLearner, index: int,
                 tower: str):  # fmt: skip
        super().__init__(base_layer, adapter_name, learner=learner)
        self.index = index
        self.tower = tower

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        adapter = self.active_adapter_here()
        if adapter is not None:
            if self.tower == "text":
                prompts = self.learner.text_prompts(adapter, self.index)
                hidden_states = splice(hidden_states, prompts, at=1, replaced=prompts.shape[1])
            else:
                prompts = self.learner.vision_prompts(adapter, self.index)
                at = hidden_states.shape[1] - prompts.shape[1]
                hidden_states = splice(hidden_states, prompts, at=at, replaced=prompts.shape[1])
        return self.base_layer(hidden_states, *args, **kwargs)
