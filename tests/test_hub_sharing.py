"""Sharing adapters through a Hub: push_to_hub, AutoAdapter.from_pretrained by repo id, model cards, offline reloads.

The Hub is the embedded server on loopback, reached over HTTP by the real huggingface_hub client and transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import HfApi
from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

from adapterzoo import AutoAdapter, CheckpointError, MethodNotFoundError
from adapterzoo.hub import EmbeddedHub
from adapterzoo.testing import LABELS, images, perturb_trainable, tiny_backbone


@pytest.fixture
def hub(tmp_path: Path):
    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate():
        yield hub


@pytest.fixture
def backbone_repo(hub: EmbeddedHub) -> str:
    """A tiny ViT pushed to the hub with transformers' own push_to_hub, as a user would publish a backbone."""
    tiny_backbone("vit").push_to_hub("zoo/tiny-vit")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).push_to_hub("zoo/tiny-vit")
    return "zoo/tiny-vit"


def trained_vpt(backbone: str):
    model = AutoAdapter.from_backbone(backbone, method="vpt", labels=LABELS, num_tokens=2, deep=True)
    perturb_trainable(model, seed=0)
    return model.eval()


def test_push_and_pull_by_repo_id_is_exact(hub: EmbeddedHub, backbone_repo: str) -> None:
    model = trained_vpt(backbone_repo)
    model.metrics = {"accuracy": 0.75}
    info = model.push_to_hub("me/vit-vpt", commit_message="first adapter")
    api = HfApi()
    assert sorted(api.list_repo_files("me/vit-vpt")) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "adapterzoo_config.json",
        "preprocessor_config.json",
    ]
    assert api.list_repo_commits("me/vit-vpt")[0].title == "first adapter"
    assert info.oid == api.model_info("me/vit-vpt").sha
    loaded = AutoAdapter.from_pretrained("me/vit-vpt")
    with torch.no_grad():
        assert torch.equal(loaded(images()).logits, model(images()).logits)
    assert loaded.backbone_name == backbone_repo
    assert loaded.backbone_revision == api.model_info(backbone_repo).sha
    assert loaded.metrics == {"accuracy": 0.75}


def test_the_model_card_on_the_hub(hub: EmbeddedHub, backbone_repo: str) -> None:
    model = trained_vpt(backbone_repo)
    model.metrics = {"accuracy": 0.75}
    model.push_to_hub("me/vit-vpt")
    card = HfApi().model_info("me/vit-vpt").card_data
    assert card.library_name == "adapterzoo" and card.base_model == backbone_repo
    assert {"adapterzoo", "vpt", "image-classification"} <= set(card.tags)
    readme = Path(transformers.utils.cached_file("me/vit-vpt", "README.md")).read_text()
    assert readme.split("## Usage")[1].split("```bash\n")[1].startswith("pip install adapterzoo-vpt\n")
    assert 'AutoAdapter.from_pretrained("me/vit-vpt")' in readme
    assert f"{model.trainable_parameters:,}" in readme and "| accuracy | 0.75 |" in readme


def test_push_options_private_branch_and_pull_request(hub: EmbeddedHub, backbone_repo: str) -> None:
    api = HfApi()
    first = trained_vpt(backbone_repo)
    first.push_to_hub("me/options", private=True)
    assert api.model_info("me/options").private is True
    second = AutoAdapter.from_backbone(backbone_repo, method="vpt", labels=["x", "y"], num_tokens=2)
    second.push_to_hub("me/options", revision="experiment")
    proposal = AutoAdapter.from_backbone(backbone_repo, method="lora", labels=["p", "q"])
    pr = proposal.push_to_hub("me/options", create_pr=True, commit_message="try LoRA")
    assert AutoAdapter.from_pretrained("me/options").labels == list(LABELS)
    assert AutoAdapter.from_pretrained("me/options", revision="experiment").labels == ["x", "y"]
    assert AutoAdapter.from_pretrained("me/options", revision=pr.pr_revision).method.name == "lora"
    main_commit = api.model_info("me/options").sha
    api.create_tag("me/options", tag="v1")
    second.push_to_hub("me/options")
    assert AutoAdapter.from_pretrained("me/options", revision="v1").labels == list(LABELS)
    assert AutoAdapter.from_pretrained("me/options", revision=main_commit).labels == list(LABELS)
    assert AutoAdapter.from_pretrained("me/options").labels == ["x", "y"]


def test_tokens_guard_writes_and_private_reads(tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub", token="s3cret", user="ana") as hub, hub.activate():
        backbone = tiny_backbone("vit")
        model = AutoAdapter.from_backbone(backbone, method="lora", labels=LABELS, image_processor=_processor())
        with pytest.raises(Exception, match="401"):
            model.push_to_hub("ana/adapter", token=False)
        model.push_to_hub("ana/adapter", token="s3cret", private=True)
        with pytest.raises(RepositoryNotFoundError):
            AutoAdapter.from_pretrained("ana/adapter", token=False, backbone=tiny_backbone("vit"))
        loaded = AutoAdapter.from_pretrained("ana/adapter", token="s3cret", backbone=tiny_backbone("vit"))
        assert loaded.labels == list(LABELS)


def _processor():
    return transformers.ViTImageProcessor(size={"height": 32, "width": 32})


def test_a_repo_without_an_adapter_is_named(hub: EmbeddedHub, backbone_repo: str) -> None:
    expected = "'zoo/tiny-vit'.*no adapterzoo_config.json and no adapter_config.json: it holds neither"
    with pytest.raises(CheckpointError, match=expected):
        AutoAdapter.from_pretrained(backbone_repo)


def test_a_repo_with_only_pickle_weights_is_refused(hub: EmbeddedHub, backbone_repo: str, tmp_path: Path) -> None:
    folder = trained_vpt(backbone_repo).save_pretrained(tmp_path / "adapter")
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    api = HfApi()
    api.create_repo("me/pickled")
    api.upload_folder(repo_id="me/pickled", folder_path=folder)
    with pytest.raises(CheckpointError, match=r"only pickle weights \(adapter_model.bin\)"):
        AutoAdapter.from_pretrained("me/pickled")


def test_a_missing_plugin_names_the_package_to_install(
    hub: EmbeddedHub, backbone_repo: str, tmp_path: Path, uninstalled
) -> None:
    uninstalled("adapterzoo-maple")
    folder = trained_vpt(backbone_repo).save_pretrained(tmp_path / "adapter")
    record = json.loads((folder / "adapterzoo_config.json").read_text())
    record.update(method="maple", distribution="adapterzoo-maple", distribution_version="0.2.0")
    (folder / "adapterzoo_config.json").write_text(json.dumps(record))
    api = HfApi()
    api.create_repo("me/maple-adapter")
    api.upload_folder(repo_id="me/maple-adapter", folder_path=folder)
    with pytest.raises(MethodNotFoundError, match=r'pip install "adapterzoo-maple>=0.2.0"'):
        AutoAdapter.from_pretrained("me/maple-adapter")


@pytest.mark.parametrize("repo_id", ["me/../etc", "a/b/c", "me/name with space"])
def test_escaping_repo_ids_are_refused_by_the_client(hub: EmbeddedHub, repo_id: str) -> None:
    with pytest.raises(HFValidationError):
        AutoAdapter.from_pretrained(repo_id)


def test_a_whole_pipeline_across_machines_runs_offline(tmp_path: Path, run_python) -> None:
    """Machine A publishes a backbone; B trains an adapter on it and pushes it; C pulls it, then reloads offline."""
    with EmbeddedHub(tmp_path / "hub") as hub:
        on_hub = {"HF_ENDPOINT": hub.url}
        run_python(
            """
            import transformers
            from adapterzoo.testing import tiny_backbone
            tiny_backbone("clip", seed=3).push_to_hub("lab/tiny-clip")
            processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32)
            processor.push_to_hub("lab/tiny-clip")
            """,
            env=on_hub,
        )
        trained = run_python(
            f"""
            import json, torch
            from adapterzoo import AutoAdapter
            model = AutoAdapter.from_backbone("lab/tiny-clip", method="lora", labels=["a", "b", "c"], r=4)
            optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
            pixels, labels = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3
            for _ in range(5):
                loss = model(pixels, labels=labels).loss
                optimizer.zero_grad(); loss.backward(); optimizer.step()
            model.push_to_hub("lab/clip-lora")
            model.eval()
            torch.save(pixels, {str(tmp_path / "pixels.pt")!r})
            print(json.dumps(model(pixels).logits.tolist()))
            """,
            env=on_hub,
        )
        pull = f"""
            import json, torch
            from adapterzoo import AutoAdapter
            model = AutoAdapter.from_pretrained("lab/clip-lora")
            print(json.dumps(model(torch.load({str(tmp_path / "pixels.pt")!r})).logits.tolist()))
            """
        machine_c = {**on_hub, "HF_HOME": str(tmp_path / "machine-c")}
        assert run_python(pull, env=machine_c) == trained
    offline = {**machine_c, "HF_HUB_OFFLINE": "1"}
    assert run_python(pull, env=offline) == trained
