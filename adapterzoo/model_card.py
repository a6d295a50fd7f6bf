"""The model card (``README.md``) written beside every saved adapter.

Its metadata is what the Hub indexes: ``base_model`` with ``base_model_relation: adapter`` (the adapter tree of the
backbone), ``library_name`` ("peft" where plain PEFT loads the adapter, so the Hub shows PEFT's usage; "adapterzoo"
otherwise), ``pipeline_tag``, ``license`` and ``datasets`` when the record has them, and a ``model-index`` of the
recorded metrics.
"""

from __future__ import annotations

import os
from numbers import Real

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from adapterzoo.saving import AdapterRecord

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A **{{ method }}** adapter for **{{ task }}**, made with [adapterzoo](https://github.com/adapterzoo/adapterzoo).

| | |
|---|---|
| Method | `{{ method }}` (from `{{ distribution }}` {{ distribution_version }}) |
| Backbone | {{ backbone_line }} |
| Trainable parameters | {{ "{:,}".format(trainable_parameters) }} |
| Labels | {{ labels | length }}: {{ labels_preview }} |

## Evaluation

{% if metrics %}| metric | value |
|---|---|
{% for name, value in metrics.items() %}| {{ name }} | {{ value }} |
{% endfor %}{% else %}No evaluation has been recorded for this adapter yet.
{% endif %}
## Usage

```bash
pip install {{ distribution }}
```

```python
from adapterzoo import AutoAdapter

model = AutoAdapter.from_pretrained("{{ location }}")
model.predict(image)  # a PIL image or an array
```

{% if transformers_class %}### With PEFT and transformers

The adapter is laid out for transformers' `{{ transformers_class }}`, so plain PEFT loads it; `config.json` holds
the labels (`id2label`):

```python
from peft import PeftModel
from transformers import AutoConfig, AutoModelForImageClassification

config = AutoConfig.from_pretrained("{{ location }}")
base = AutoModelForImageClassification.from_pretrained("{{ backbone }}"{{ revision_argument }}, config=config)
model = PeftModel.from_pretrained(base, "{{ location }}")
model(pixel_values=pixel_values).logits
```
{% else %}Plain PEFT cannot load this adapter onto a transformers classification model ({{ peft_blocker }}); load it
with adapterzoo as above.
{% endif %}"""

PIPELINE_TAGS = {"image-classification": "image-classification", "clip-classification": "image-classification"}
"""The Hub's pipeline tag of each task: a CLIP classifier classifies images among its fixed labels."""


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and not os.path.isabs(name) and not os.path.exists(name) and name.count("/") <= 1


def render_model_card(record: AdapterRecord, *, location: str, peft_blocker: str | None = None) -> str:
    """The card's text. ``location`` is where users load the adapter from (a Hub repo id or a folder);
    ``peft_blocker`` why plain PEFT cannot load it, when the record names no ``transformers_class``."""
    base_model = record.backbone if _is_hub_id(record.backbone) else None
    data = ModelCardData(
        library_name="peft" if record.transformers_class else "adapterzoo",
        base_model=base_model,
        base_model_relation="adapter" if base_model else None,
        tags=["adapterzoo", record.method, record.task],
        pipeline_tag=PIPELINE_TAGS.get(record.task),
        license=record.license,
        datasets=record.datasets or None,
        model_name=location,
        eval_results=_eval_results(record) or None,
    )
    revision = f" @ `{record.backbone_revision}`" if record.backbone_revision else ""
    preview = ", ".join(record.labels[:10]) + (", ..." if len(record.labels) > 10 else "")
    card = ModelCard.from_template(
        data,
        template_str=TEMPLATE,
        title=f"{record.method} adapter on {record.backbone or 'a local backbone'}",
        method=record.method,
        task=record.task,
        distribution=record.distribution,
        distribution_version=record.distribution_version,
        backbone_line=f"`{record.backbone}`{revision}",
        trainable_parameters=record.trainable_parameters,
        labels=record.labels,
        labels_preview=preview,
        metrics=record.metrics,
        location=location,
        backbone=record.backbone,
        revision_argument=f', revision="{record.backbone_revision}"' if record.backbone_revision else "",
        transformers_class=record.transformers_class,
        peft_blocker=peft_blocker or "it is not laid out for a transformers class",
    )
    return str(card)


def _eval_results(record: AdapterRecord) -> list[EvalResult]:
    """The recorded numeric metrics as the Hub's ``model-index`` entries, on the first recorded dataset if any."""
    dataset = record.datasets[0] if record.datasets else "custom"
    return [
        EvalResult(
            task_type=PIPELINE_TAGS.get(record.task, record.task),
            dataset_type=dataset,
            dataset_name=dataset,
            metric_type=name,
            metric_value=value,
        )
        for name, value in record.metrics.items()
        if isinstance(value, Real) and not isinstance(value, bool)
    ]
