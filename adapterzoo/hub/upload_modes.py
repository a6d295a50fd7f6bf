"""Which files a commit uploads as "lfs" (through Xet or git-LFS) and which travel in the commit itself ("regular").

The Hub's rule, followed here: a file goes through LFS if it is binary (its first bytes, the ``sample`` the client
sends to the preupload route, hold a NUL byte, git's own test), if it is large (``threshold``, 10 MiB on the Hub), or
if its path matches an LFS pattern: those of the Hub's default ``.gitattributes`` and the ``filter=lfs`` lines of the
repo's own ``.gitattributes``. Upload modes matter beyond size: ``datasets`` pre-uploads its parquet shards from
temporary files that are gone by commit time, which only works for "lfs" files.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

DEFAULT_THRESHOLD = 10 << 20
DEFAULT_LFS_PATTERNS = (
    *("*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel"),
    *("*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt"),
    *("*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm"),
    *("*.xz", "*.zip", "*.zst", "*tfevents*"),
)


def lfs_patterns(gitattributes: str) -> list[str]:
    """The patterns of a ``.gitattributes`` text whose files go through LFS (``filter=lfs``)."""
    lines = [line.split() for line in gitattributes.splitlines() if not line.startswith("#")]
    return [words[0] for words in lines if "filter=lfs" in words[1:]]


def _matches(path: str, pattern: str) -> bool:
    """git's rule, simplified: a pattern without '/' matches the file's name, one with '/' its whole path."""
    if "/" in pattern.strip("/"):
        return fnmatchcase(path, pattern.strip("/"))
    return fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def upload_mode(path: str, size: int, sample: bytes, threshold: int, patterns: list[str]) -> str:
    """ "lfs" or "regular" for a file of ``size`` bytes starting with ``sample`` (see the module's docstring)."""
    binary = b"\0" in sample
    lfs = binary or size >= threshold or any(_matches(path, p) for p in (*DEFAULT_LFS_PATTERNS, *patterns))
    return "lfs" if lfs else "regular"
