"""Every upload path against the embedded Hub with its default settings: Xet (hf_xet installed, the default), git-LFS
(``HF_HUB_DISABLE_XET=1``), regular files in the commit, and ``datasets``' ``push_to_hub``; and hostile Xet bodies."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from pathlib import Path
from urllib.parse import urlsplit

import datasets
import lz4.frame
import numpy as np
from huggingface_hub import HfApi, hf_hub_download

from adapterzoo.hub import EmbeddedHub, xet
from adapterzoo.hub.names import HubError


def weights(seed: int) -> bytes:
    """Bytes shaped like a safetensors file: a JSON header, then float32 values (compressible, byte-grouped)."""
    values = np.random.default_rng(seed).standard_normal(150_000).astype(np.float32).round(2).tobytes()
    header = json.dumps({"w": {"dtype": "F32", "shape": [150_000], "data_offsets": [0, len(values)]}}).encode()
    return struct.pack("<Q", len(header)) + header + values


def download(hub: EmbeddedHub, repo_id: str, filename: str, tmp_path: Path, **kwargs) -> bytes:
    path = hf_hub_download(repo_id, filename, endpoint=hub.url, cache_dir=tmp_path / "cache", **kwargs)
    return Path(path).read_bytes()


def xorbs(hub: EmbeddedHub) -> set[str]:
    folder = Path(hub.settings.root) / "xet" / "xorbs"
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def test_binary_files_go_through_xet_and_come_back_identical(api: HfApi, hub: EmbeddedHub, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(payload := weights(0))
    (folder / "adapter_config.json").write_text('{"r": 8}')
    api.create_repo("lab/xet")
    attributes = b"*.vec filter=lfs diff=lfs merge=lfs -text\n"
    api.upload_file(path_or_fileobj=attributes, path_in_repo=".gitattributes", repo_id="lab/xet")
    api.upload_folder(folder_path=folder, repo_id="lab/xet")
    api.upload_file(path_or_fileobj=b"\0binary" * 1000, path_in_repo="blob", repo_id="lab/xet")
    api.upload_file(path_or_fileobj=b"1 2 3", path_in_repo="words.vec", repo_id="lab/xet")

    stored = xorbs(hub)
    assert stored, "nothing went through Xet"
    files = {f.path: f for f in api.list_repo_tree("lab/xet")}
    assert files["adapter_model.safetensors"].lfs.sha256 == hashlib.sha256(payload).hexdigest()
    assert files["blob"].lfs is not None and files["words.vec"].lfs is not None
    assert files["adapter_config.json"].lfs is None and files[".gitattributes"].lfs is None
    assert download(hub, "lab/xet", "adapter_model.safetensors", tmp_path) == payload
    assert download(hub, "lab/xet", "blob", tmp_path) == b"\0binary" * 1000

    # The client remembers the chunks it sent to this hub and sends none again: the second repo's file is rebuilt
    # from the xorbs of the first upload.
    api.create_repo("lab/again")
    api.upload_file(path_or_fileobj=payload, path_in_repo="copy.safetensors", repo_id="lab/again")
    assert xorbs(hub) == stored
    assert download(hub, "lab/again", "copy.safetensors", tmp_path) == payload


def test_without_hf_xet_binary_files_go_through_git_lfs(hub: EmbeddedHub, tmp_path: Path, run_python) -> None:
    payload = tmp_path / "weights.safetensors"
    payload.write_bytes(weights(1))
    HfApi(endpoint=hub.url).create_repo("lab/lfs")
    run_python(
        f"""
        from huggingface_hub import HfApi
        HfApi().upload_file(path_or_fileobj={str(payload)!r}, path_in_repo="w.safetensors", repo_id="lab/lfs")
        """,
        env={"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"},
    )
    assert not xorbs(hub)
    [entry] = HfApi(endpoint=hub.url).list_repo_tree("lab/lfs")
    assert entry.lfs.size == payload.stat().st_size
    assert download(hub, "lab/lfs", "w.safetensors", tmp_path) == payload.read_bytes()


def test_datasets_push_to_hub_and_load_dataset_round_trip(hub: EmbeddedHub, tmp_path: Path) -> None:
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}),
            "test": datasets.Dataset.from_dict({"text": ["d"], "label": [1]}),
        }
    )
    extra = datasets.Dataset.from_dict({"x": [1.5, 2.5]})
    with hub.activate():
        splits.push_to_hub("lab/shapes")
        extra.push_to_hub("lab/shapes", config_name="extra")
        card = datasets.load_dataset_builder("lab/shapes", cache_dir=str(tmp_path / "ds")).info
        default = datasets.load_dataset("lab/shapes", cache_dir=str(tmp_path / "ds"))
        loaded_extra = datasets.load_dataset("lab/shapes", "extra", split="train", cache_dir=str(tmp_path / "ds"))
    assert {name: split.to_dict() for name, split in default.items()} == {n: s.to_dict() for n, s in splits.items()}
    assert loaded_extra.to_dict() == extra.to_dict()
    assert card.splits is not None
    readme = download(hub, "lab/shapes", "README.md", tmp_path, repo_type="dataset").decode()
    assert "config_name: default" in readme and "config_name: extra" in readme
    parquet = [f for f in HfApi(endpoint=hub.url).list_repo_files("lab/shapes", repo_type="dataset") if ".parquet" in f]
    assert len(parquet) == 3 and xorbs(hub)


SHARD_TAG = b"HFRepoMetaData\x00UigEj{\x81W\x83\xa5\xbd\xd9\\\xcd\xd1J\xa9"


def raw_hash(hex_hash: str) -> bytes:
    """A hash as Xet writes it in a shard: four u64 words, little-endian, each given as 16 hex digits."""
    return struct.pack("<4Q", *(int(hex_hash[i : i + 16], 16) for i in range(0, 64, 16)))


def chunk(data: bytes, scheme: int) -> bytes:
    """A xorb chunk: none (0), LZ4 (1), or LZ4 of the bytes grouped by position modulo 4 (2)."""
    body = {0: data, 1: lz4.frame.compress(data), 2: lz4.frame.compress(b"".join(data[i::4] for i in range(4)))}[scheme]
    return bytes([0]) + len(body).to_bytes(3, "little") + bytes([scheme]) + len(data).to_bytes(3, "little") + body


def shard(xorb: str, sha256: str, *segments: tuple[int, int, int]) -> bytes:
    """A shard describing one file, with its sha256, made of the (first chunk, end chunk, size) segments of ``xorb``."""
    header = SHARD_TAG + struct.pack("<QQ", 2, 0)
    file = raw_hash("ab" * 32) + struct.pack("<IIQ", 1 << 30, len(segments), 0)
    entries = b"".join(raw_hash(xorb) + struct.pack("<4I", 0, n, start, end) for start, end, n in segments)
    metadata = raw_hash(sha256) + bytes(16)
    bookend = b"\xff" * 32 + bytes(16)
    xorb_info = raw_hash(xorb) + struct.pack("<4I", 0, 0, sum(n for _, _, n in segments), 0)
    return header + file + entries + metadata + bookend + xorb_info + bookend


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_hostile_xet_uploads_are_refused_and_change_nothing(api: HfApi, hub: EmbeddedHub, raw_request) -> None:
    api.create_repo("lab/cas")
    status, body, _ = raw_request(hub, "GET", "/api/models/lab/cas/xet-write-token/main")
    token = json.loads(body)
    assert status == 200 and token["exp"] > 0
    base = urlsplit(token["casUrl"]).path
    auth = {"Authorization": f"Bearer {token['accessToken']}"}
    parts = [bytes(range(256)) * 16, os.urandom(3000), b"ab" * 5000]
    content = b"".join(parts)
    xorb_hash, sha256 = "12" * 32, hashlib.sha256(content).hexdigest()
    good_xorb = b"".join(chunk(part, scheme) for scheme, part in enumerate(parts))
    good_shard = shard(xorb_hash, sha256, (0, 3, len(content)))
    root = Path(hub.settings.root)

    def post(path: str, data: bytes, headers: dict | None = None) -> int:
        return raw_request(hub, "POST", f"{base}/v1/{path}", data, {**auth, **(headers or {})})[0]

    before = tree(root)
    assert post(f"xorbs/default/{xorb_hash}", good_xorb, {"Authorization": "Bearer 1:model:lab/cas:0"}) == 401
    assert post(f"xorbs/default/{xorb_hash}", good_xorb[:-1]) == 400  # truncated
    assert post(f"xorbs/default/{xorb_hash}", b"\0\xff\xff\xff\0\xff\xff\xff") == 400  # oversized lengths
    assert post(f"xorbs/default/{xorb_hash}", chunk(b"x" * 100, 1)[:8] + b'\4"M\x18garbage' + bytes(70)) == 400
    assert post(f"xorbs/default/{xorb_hash}", b"", {"Content-Length": str(100 << 20)}) == 413
    assert post("shards", good_shard) == 400  # its xorb was never uploaded
    assert tree(root) == before

    assert post(f"xorbs/default/{xorb_hash}", good_xorb) == 200
    before = tree(root)
    assert post("shards", shard(xorb_hash, "00" * 32, (0, 3, len(content)))) == 400  # wrong sha256
    assert post("shards", shard(xorb_hash, sha256, (0, 4, len(content)))) == 400  # more chunks than the xorb holds
    assert post("shards", shard(xorb_hash, sha256, (0, 3, len(content) + 1))) == 400  # wrong size
    assert post("shards", shard(xorb_hash, sha256, (0, 3, 1 << 31))) == 413  # past the size limit, not rebuilt
    assert post("shards", good_shard[:-60]) == 400  # truncated
    oversized = bytearray(good_shard)
    oversized[48 + 36 : 48 + 40] = struct.pack("<I", 1 << 31)  # more entries than the shard holds
    assert post("shards", bytes(oversized)) == 400
    assert tree(root) == before

    assert post("shards", good_shard) == 200
    assert (root / "models" / "lab" / "cas" / "objects" / sha256).read_bytes() == content
    shuffled = parts[1] + parts[2] + parts[0] + parts[2]
    segments = (1, 3, len(parts[1] + parts[2])), (0, 1, len(parts[0])), (2, 3, len(parts[2]))
    digest = hashlib.sha256(shuffled).hexdigest()
    assert post("shards", shard(xorb_hash, digest, *segments)) == 200
    assert (root / "models" / "lab" / "cas" / "objects" / digest).read_bytes() == shuffled


def test_mangled_xorbs_and_shards_are_refused_with_a_400(tmp_path: Path) -> None:
    parts = [bytes(range(256)) * 16, os.urandom(3000), b"ab" * 5000]
    xorb = b"".join(chunk(part, scheme) for scheme, part in enumerate(parts))
    good_shard = shard("12" * 32, hashlib.sha256(b"".join(parts)).hexdigest(), (0, 3, sum(map(len, parts))))
    random = np.random.default_rng(0)
    for original, parse in ((xorb, lambda data: xet.check_xorb(io.BytesIO(data))), (good_shard, xet.parse_shard)):
        for _ in range(300):
            data = bytearray(original)
            for position in random.integers(0, len(data), random.integers(1, 4)):
                data[position] = random.integers(0, 256)
            data = data[: random.integers(0, len(data) + 1)] if random.random() < 0.3 else data
            try:
                parse(bytes(data))
            except HubError as error:
                assert error.status == 400, error


def test_xet_write_tokens_need_a_writer(tmp_path: Path, raw_request) -> None:
    with EmbeddedHub(tmp_path / "hub", token="secret") as hub:
        HfApi(endpoint=hub.url, token="secret").create_repo("lab/private", private=True)
        route = "/api/models/lab/private/xet-write-token/main"
        assert raw_request(hub, "GET", route)[0] == 401
        status, body, _ = raw_request(hub, "GET", route, headers={"Authorization": "Bearer secret"})
        assert status == 200 and json.loads(body)["casUrl"].startswith(hub.url + "/xet/")
