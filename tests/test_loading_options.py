"""transformers' loading options on `AutoAdapter.from_backbone` and `from_pretrained`: dtype, device_map and the Hub
options (token, revision, subfolder, cache_dir, local_files_only, force_download, offline mode), kept apart from the
method's options; and the bad input: a dtype or device the machine cannot serve, an unknown option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from adapterzoo import AutoAdapter, UnknownOptionError
from adapterzoo.errors import LoadingOptionError
from adapterzoo.hub import EmbeddedHub
from adapterzoo.hub.server import use_endpoint
from adapterzoo.loading_options import LoadingOptions
from adapterzoo.testing import LABELS, images, perturb_trainable, save_tiny_backbone, tiny_backbone


def float_dtypes(model: torch.nn.Module) -> set[torch.dtype]:
    return {tensor.dtype for tensor in model.state_dict().values() if tensor.is_floating_point()}


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"dtype": torch.bfloat16}, torch.bfloat16),
        ({"dtype": "float16"}, torch.float16),
        ({"torch_dtype": torch.bfloat16}, torch.bfloat16),
        ({"dtype": "auto"}, torch.float32),
        ({}, torch.float32),
    ],
)
def test_dtype_reaches_the_backbone_and_the_adapter_follows(vit_path: Path, options, expected) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, **options)
    assert model.task_model.backbone.dtype == expected and float_dtypes(model) == {expected}


def test_auto_takes_the_checkpoints_own_dtype(tmp_path: Path) -> None:
    folder = save_tiny_backbone(tmp_path / "vit", "vit")
    tiny_backbone("vit").to(torch.bfloat16).save_pretrained(folder)
    model = AutoAdapter.from_backbone(str(folder), method="vpt", labels=LABELS, num_tokens=2)
    assert float_dtypes(model) == {torch.bfloat16}


@pytest.mark.parametrize("device_map", ["cpu", torch.device("cpu"), "auto", {"": "cpu"}])
def test_device_map_places_the_backbone_adapter_and_head(vit_path: Path, device_map) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, device_map=device_map)
    reference = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS)
    reference.load_state_dict(model.state_dict())
    assert {p.device for p in model.parameters()} == {torch.device("cpu")}
    with torch.no_grad():
        assert torch.equal(model.eval()(images()).logits, reference.eval()(images()).logits)


def test_loading_options_reach_a_clip_and_its_tokenizer(clip_path: Path, tmp_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="coop", labels=LABELS, num_context=2, dtype="bfloat16")
    assert float_dtypes(model) == {torch.bfloat16}
    model.save_pretrained(tmp_path / "coop")
    assert float_dtypes(AutoAdapter.from_pretrained(tmp_path / "coop", torch_dtype=torch.float32)) == {torch.float32}


@pytest.fixture
def private_hub(tmp_path: Path):
    """A hub that needs a token to read private repos, on which 'ana/models' holds a tiny ViT in its folder 'vit' on
    branch 'v1' and a different one (seed 1) on main."""
    with EmbeddedHub(tmp_path / "hub", token="s3cret", user="ana") as hub, use_endpoint(hub.url):
        api = HfApi(token="s3cret")
        api.create_repo("ana/models", private=True)
        api.upload_folder(
            repo_id="ana/models", folder_path=save_tiny_backbone(tmp_path / "v1", "vit"), path_in_repo="vit"
        )
        api.create_branch("ana/models", branch="v1")
        main = save_tiny_backbone(tmp_path / "main", "vit", seed=1)
        api.upload_folder(repo_id="ana/models", folder_path=main, path_in_repo="vit")
        yield hub


def test_hub_options_reach_the_backbone(private_hub: EmbeddedHub, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    hub = {"token": "s3cret", "subfolder": "vit", "cache_dir": str(cache)}
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone("ana/models", method="lora", labels=LABELS, revision="v1", **hub).eval()
    torch.manual_seed(0)
    local = AutoAdapter.from_backbone(str(tmp_path / "v1"), method="lora", labels=LABELS).eval()
    with torch.no_grad():
        assert torch.equal(model(images()).logits, local(images()).logits)  # v1's backbone, not main's
    assert model.backbone_revision == HfApi(token="s3cret").model_info("ana/models", revision="v1").sha
    assert model.backbone_subfolder == "vit" and (cache / "models--ana--models").is_dir()
    with pytest.raises(OSError, match="private repository"):
        AutoAdapter.from_backbone("ana/models", method="lora", labels=LABELS, subfolder="vit", token=False)


def test_hub_options_reach_the_adapter_and_its_backbone(private_hub: EmbeddedHub, tmp_path: Path, run_python) -> None:
    """An adapter in a subfolder of a private repo, on a branch: downloaded with the token into cache_dir, its
    backbone (private too) with the same token at the recorded revision and subfolder; then again from the cache
    alone with local_files_only=True and with HF_HUB_OFFLINE=1 once the hub is down, where force_download fails."""
    cache = str(tmp_path / "cache")
    model = AutoAdapter.from_backbone("ana/models", method="lora", labels=LABELS, subfolder="vit", token="s3cret")
    perturb_trainable(model, seed=0)
    model.eval()
    folder = model.save_pretrained(tmp_path / "adapter")
    api = HfApi(token="s3cret")
    api.create_branch("ana/models", branch="adapters")
    api.upload_folder(repo_id="ana/models", folder_path=folder, path_in_repo="lora", revision="adapters")
    where = {"revision": "adapters", "subfolder": "lora", "cache_dir": cache}
    with torch.no_grad():
        expected = model(images()).logits
        assert torch.equal(
            AutoAdapter.from_pretrained("ana/models", token="s3cret", **where)(images()).logits, expected
        )
        with pytest.raises(RepositoryNotFoundError):
            AutoAdapter.from_pretrained("ana/models", token=False, **where)
        private_hub.stop()
        offline = AutoAdapter.from_pretrained("ana/models", token="s3cret", local_files_only=True, **where)
        assert torch.equal(offline(images()).logits, expected)
        with pytest.raises(ValueError, match="Force download failed"):
            AutoAdapter.from_pretrained("ana/models", token="s3cret", force_download=True, **where)
    torch.save(images(), tmp_path / "pixels.pt")
    logits = run_python(
        f"""
        import json, torch
        from adapterzoo import AutoAdapter
        model = AutoAdapter.from_pretrained("ana/models", **{where!r})
        print(json.dumps(model(torch.load({str(tmp_path / "pixels.pt")!r})).logits.tolist()))
        """,
        env={"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": private_hub.url},
    )
    assert torch.equal(torch.tensor(json.loads(logits)), expected)


def test_a_misspelt_option_is_named_with_the_closest_one(vit_path: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownOptionError, match=r"Method 'lora' has no option 'tokn'\. Did you mean 'token'\?"):
        AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, tokn="x")
    with pytest.raises(UnknownOptionError, match=r"Method 'lora' has no option 'rr'\. Did you mean 'r'\?"):
        AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, rr=4, dtype=torch.bfloat16)
    folder = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS).save_pretrained(tmp_path / "a")
    expected = r"AutoAdapter.from_pretrained has no option 'dtpye'\. Did you mean 'dtype'\?.*Loading options: "
    with pytest.raises(UnknownOptionError, match=expected):
        AutoAdapter.from_pretrained(folder, dtpye=torch.bfloat16)


def test_loading_and_method_options_go_together(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(
        str(vit_path), method="lora", labels=LABELS, r=4, token=False, cache_dir="unused", dtype=torch.bfloat16
    )
    assert model.peft_model.peft_config["default"].r == 4 and float_dtypes(model) == {torch.bfloat16}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dtype": "bf16"}, r"Unknown dtype 'bf16'\. Did you mean 'bfloat16'\?"),
        ({"dtype": torch.int8}, r"torch\.int8 is not a floating-point type"),
        ({"dtype": torch.float8_e4m3fn}, r"torch\.float8_e4m3fn cannot run on cpu: .*Use dtype=torch\.float32"),
        ({"dtype": torch.bfloat16, "torch_dtype": torch.float16}, r"Pass dtype only: torch_dtype is its older name"),
        (
            {"device_map": "cuda:7"},
            r"device_map='cuda:7': this machine cannot place tensors on cuda:7 .*Use device_map=",
        ),
        ({"device_map": "gpu please"}, r"device_map='gpu please' is neither a device"),
        ({"local_files_only": "yes"}, r"local_files_only must be True or False"),
    ],
)
def test_options_the_machine_cannot_serve_are_refused_before_loading(options, message) -> None:
    with pytest.raises(LoadingOptionError, match=message):
        LoadingOptions.of(options)


def test_a_dtype_is_refused_before_the_backbone_is_loaded(tmp_path: Path) -> None:
    with pytest.raises(LoadingOptionError, match="cannot run on cpu"):
        AutoAdapter.from_backbone(str(tmp_path / "nothing-here"), method="lora", labels=LABELS, dtype="float8_e5m2")


def test_a_device_map_that_needs_the_disk_is_refused(vit_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transformers.integrations.accelerate, "accelerate_max_memory", lambda _: {"cpu": 2000})
    with pytest.raises(LoadingOptionError, match=r"device_map='auto' leaves the whole model .* on the disk"):
        AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, device_map="auto")


def test_dtype_and_device_map_are_refused_for_a_loaded_backbone(vit_path: Path) -> None:
    with pytest.raises(LoadingOptionError, match=r"pass its Hub id or folder instead, or place the model yourself"):
        AutoAdapter.from_backbone(tiny_backbone("vit"), method="lora", labels=LABELS, dtype=torch.bfloat16)
