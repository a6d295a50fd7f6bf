"""Shared fixtures of the core's tests (the tiny backbones' come from the kit's pytest plugin,
`adapterzoo.testing.pytest_plugin`)."""

from __future__ import annotations

import ast
import http.client
import importlib.metadata
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import datasets
import pytest
from huggingface_hub import HfApi

from adapterzoo import registry
from adapterzoo.data import builtin_dataset
from adapterzoo.hub import EmbeddedHub
from adapterzoo.pretraining import local_hub, pretrained_backbone


@pytest.fixture(scope="session")
def zoo_hub_root() -> Path:
    """The session's local Hub (under ADAPTERZOO_HOME), holding the quick pretrained ViT and CLIP, made once."""
    with local_hub() as hub:
        pretrained_backbone("vit", quick=True, progress=False)
        pretrained_backbone("clip", quick=True, progress=False)
    return hub.settings.root


@pytest.fixture
def uninstalled(monkeypatch: pytest.MonkeyPatch):
    """Hide an installed distribution's methods from the registry, as on a machine where it is not installed."""

    def uninstall(distribution: str) -> None:
        visible = importlib.metadata.entry_points

        def entry_points(**selection):
            return [ep for ep in visible(**selection) if ep.dist is None or ep.dist.name != distribution]

        monkeypatch.setattr(registry, "entry_points", entry_points)

    return uninstall


@pytest.fixture
def run_python(tmp_path: Path):
    """Run a Python script in a fresh process (another "machine": its own HF_HOME unless given) and return stdout."""

    def run(script: str, *, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        environment = {**os.environ, "HF_HOME": str(tmp_path / f"hf-home-{uuid.uuid4().hex[:6]}"), **(env or {})}
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    return run


@pytest.fixture
def heavy_imports(run_python):
    """Which of torch, transformers and PEFT a fresh process has imported after running ``script``: the command line,
    the Hub server and the listing of methods must start without them."""

    def heavy(script: str) -> list[str]:
        check = "import sys\nprint(sorted(name for name in ('torch', 'transformers', 'peft') if name in sys.modules))"
        return ast.literal_eval(run_python(f"{textwrap.dedent(script)}\n{check}").splitlines()[-1])

    return heavy


@pytest.fixture
def hub(tmp_path: Path):
    """An embedded Hub on loopback, serving a fresh folder."""
    with EmbeddedHub(tmp_path / "hub") as hub:
        yield hub


@pytest.fixture
def api(hub: EmbeddedHub) -> HfApi:
    return HfApi(endpoint=hub.url)


def _raw_request(hub: EmbeddedHub, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """One HTTP request as written, without a client's own checks: (status, body, headers)."""
    url = urlsplit(hub.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


@pytest.fixture
def raw_request():
    return _raw_request


FOUR = ["circle", "square", "triangle", "cross"]


@pytest.fixture(scope="session")
def shapes() -> datasets.Dataset:
    """A small four-class training set (24 images), made offline."""
    return builtin_dataset("shapes", "train", num_per_class=6, classes=FOUR)


@pytest.fixture(scope="session")
def shapes_eval() -> datasets.Dataset:
    return builtin_dataset("shapes", "validation", num_per_class=3, classes=FOUR)
