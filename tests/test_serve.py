"""`adapterzoo serve` on a real socket: adapters pushed to the embedded Hub are loaded on first use and classify the
images of one request, each through its own adapter, exactly as each adapter alone; clients' mistakes get 4xx."""

from __future__ import annotations

import base64
import io
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import transformers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from adapterzoo import AutoAdapter
from adapterzoo.cli import main
from adapterzoo.hub import EmbeddedHub
from adapterzoo.serving import AdapterPool
from adapterzoo.serving.app import create_app, running
from adapterzoo.testing import LABELS, perturb_trainable, tiny_backbone

BACKBONE = "zoo/tiny-vit"
LABEL_COUNTS = {"me/lora-a": len(LABELS), "me/lora-b": 2, "me/vpt": 2}
ADAPTERS = tuple(LABEL_COUNTS)
MAX_IMAGES, MAX_BODY = 4, 64_000


def pictures(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(count)]


def encoded(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def call(url: str, method: str = "GET", body: object = None, raw: bytes | None = None) -> tuple[int, dict | list]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def push(repo: str, backbone: str, method: str, labels: list[str], seed: int, **options: object) -> None:
    model = AutoAdapter.from_backbone(backbone, method=method, labels=labels, **options)
    perturb_trainable(model, seed=seed)
    model.push_to_hub(repo)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The server over the embedded Hub holding two LoRA adapters and a VPT one of the tiny ViT, and one LoRA
    adapter of another backbone."""
    with EmbeddedHub(tmp_path_factory.mktemp("hub")) as hub, hub.activate():
        for repo, seed in ((BACKBONE, 0), ("zoo/other-vit", 1)):
            tiny_backbone("vit", seed=seed).push_to_hub(repo)
            transformers.ViTImageProcessor(size={"height": 32, "width": 32}).push_to_hub(repo)
        push("me/lora-a", BACKBONE, "lora", list(LABELS), seed=0, r=2)
        push("me/lora-b", BACKBONE, "lora", ["sun", "moon"], seed=1, r=2)
        push("me/vpt", BACKBONE, "vpt", ["left", "right"], seed=2, num_tokens=2)
        push("me/other", "zoo/other-vit", "lora", list(LABELS), seed=3, r=2)
        pool = AdapterPool(backbone=BACKBONE, max_adapters=len(ADAPTERS))
        with running(create_app(pool, max_images=MAX_IMAGES, max_body_bytes=MAX_BODY)) as url:
            yield url


def test_one_request_classifies_each_image_through_its_adapter_as_each_alone(server: str) -> None:
    status, body = call(f"{server}/adapters", "POST", {"adapter": "me/other"})  # before the cap is reached
    assert status == 409 and "adapts the backbone 'zoo/other-vit'" in body["detail"], body
    assert f"serves adapters of '{BACKBONE}'" in body["detail"]
    status, body = call(f"{server}/adapters", "POST", {"adapter": BACKBONE})
    assert status == 422 and "holds neither an adapterzoo adapter nor a PEFT one" in body["detail"], body
    images = pictures(4)
    names = ["me/lora-a", "me/lora-b", "me/vpt", "me/lora-a"]
    inputs = [{"image": encoded(image), "adapter": name} for image, name in zip(images, names, strict=True)]
    status, body = call(f"{server}/classify", "POST", {"inputs": inputs, "top_k": 2})
    assert status == 200, body
    for image, name, predictions in zip(images, names, body["predictions"], strict=True):
        alone = AutoAdapter.from_pretrained(name).predict(image, top_k=2)
        assert [p["label"] for p in predictions] == [p["label"] for p in alone], name
        assert np.allclose([p["score"] for p in predictions], [p["score"] for p in alone], atol=1e-5), name
    status, listed = call(f"{server}/adapters")
    assert status == 200 and [a["adapter"] for a in listed] == ["me/lora-a", "me/lora-b", "me/vpt"]
    assert [a["method"] for a in listed] == ["lora", "lora", "vpt"] and listed[1]["labels"] == ["sun", "moon"]
    assert call(f"{server}/health") == (200, {"status": "ok", "backbone": BACKBONE, "adapters": 3})

    one = {"image": encoded(images[0]), "adapter": "me/lora-a"}
    refusals = {
        "is not an image file": {"inputs": [{"image": base64.b64encode(b"hello").decode(), "adapter": "me/vpt"}]},
        "is not base64": {"inputs": [{"image": "not base64!", "adapter": "me/vpt"}]},
        "takes at most 4": {"inputs": [one] * 5},
        "inputs is empty": {"inputs": []},
    }
    for message, request in refusals.items():
        status, body = call(f"{server}/classify", "POST", request)
        assert status == 422 and message in body["detail"], (message, body)
    status, body = call(f"{server}/classify", "POST", {"inputs": [{**one, "adapter": "me/nope"}]})
    assert status == 409 and "maximum of 3 adapters" in body["detail"], body  # full: the cap answers first
    status, body = call(f"{server}/classify", "POST", raw=b"{" + b" " * MAX_BODY + b"}")
    assert status == 413 and f"limit of {MAX_BODY} bytes" in body["detail"], body


def test_an_adapter_not_on_the_hub_or_badly_named_is_refused(tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate(), running(create_app(AdapterPool())) as url:
        status, body = call(f"{url}/adapters", "POST", {"adapter": "me/nope"})
        assert status == 404 and "me/nope" in body["detail"], body
        status, body = call(f"{url}/adapters", "POST", {"adapter": "../etc"})
        assert status == 422 and "../etc" in body["detail"], body


def test_the_command_line_preloads_adapters_and_passes_its_caps(server: str, monkeypatch) -> None:
    served = {}
    monkeypatch.setattr("uvicorn.run", lambda app, host, port: served.update(app=app, host=host, port=port))
    assert main(["serve", "--adapter", "me/vpt", "--max-images", "1", "--port", "8123"]) == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    with running(served["app"]) as url:
        assert [adapter["adapter"] for adapter in call(f"{url}/adapters")[1]] == ["me/vpt"]
        example = {"image": encoded(pictures(1)[0]), "adapter": "me/vpt"}
        status, body = call(f"{url}/classify", "POST", {"inputs": [example] * 2})
        assert status == 422 and "takes at most 1" in body["detail"], body


def test_without_fastapi_the_command_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what an absent package looks like to import
    with pytest.raises(SystemExit) as refused:
        main(["serve"])
    assert str(refused.value) == (
        'adapterzoo serve: Serving over HTTP needs fastapi (not installed): pip install "adapterzoo[serve]"'
    )


# Mostly well-formed requests (so that many reach the adapters), with broken images, names and fields among them.
PICTURE = encoded(pictures(1)[0])
images = st.one_of(
    st.just(PICTURE),
    st.just(PICTURE),
    st.text(max_size=20),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
)
adapters = st.one_of(st.sampled_from(ADAPTERS), st.sampled_from(ADAPTERS), st.text(max_size=12))
inputs = st.lists(st.fixed_dictionaries({"image": images, "adapter": adapters}), max_size=MAX_IMAGES + 1)
top_ks = st.one_of(st.integers(1, 4), st.integers(1, 4), st.integers(-1, 200))
extras = st.sampled_from([{}, {}, {}, {"x": 1}, {"inputs": 3}])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=inputs, top_k=top_ks, extra=extras)
def test_any_classify_request_gets_predictions_or_a_clear_4xx(server: str, inputs, top_k: int, extra: dict) -> None:
    status, body = call(f"{server}/classify", "POST", {"inputs": inputs, "top_k": top_k, **extra})
    assert status in (200, 404, 409, 413, 422), (status, body)
    if status == 200:
        assert [len(p) for p in body["predictions"]] == [min(top_k, LABEL_COUNTS[i["adapter"]]) for i in inputs]
    else:
        assert body["detail"], body
