"""The model card (``README.md``) written beside every saved adapter."""

from __future__ import annotations

import os

from huggingface_hub import ModelCard, ModelCardData

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
"""


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and not os.path.isabs(name) and not os.path.exists(name) and name.count("/") <= 1


def render_model_card(record: AdapterRecord, *, location: str) -> str:
    """The card's text. ``location`` is where users load the adapter from (a Hub repo id or a folder)."""
    data = ModelCardData(
        library_name="adapterzoo",
        base_model=record.backbone if _is_hub_id(record.backbone) else None,
        tags=["adapterzoo", record.method, record.task],
        pipeline_tag=record.task,
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
    )
    return str(card)
