"""A CLIP tokenizer made offline: byte-level BPE in CLIP's own format, trained on the built-in captions.

No tokenizer can be downloaded here, so small CLIPs made for tests and the demo carry this one. It is written as
CLIP's ``vocab.json`` and ``merges.txt`` (words end in ``</w>``; the vocabulary is the 256 byte characters, the same
with ``</w>``, the merges in order, then ``<|startoftext|>`` and ``<|endoftext|>``), so `transformers.CLIPTokenizer`,
``AutoTokenizer`` and ``AutoProcessor`` load it from a checkpoint folder like any Hub CLIP. Every word of the
built-in captions becomes a single token.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from functools import cache
from itertools import product
from pathlib import Path

import transformers

from adapterzoo.data.builtin import COLORS, COUNTS, SHAPES, caption

CLIP_CONTEXT_LENGTH = 77  # CLIP's text length, which every released CLIP tokenizer records
_WORD = re.compile(r"[a-z]+|[0-9]|[^\sa-z0-9]+")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map from bytes to printable characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    characters, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, characters), strict=True))


def train_bpe(texts: Iterable[str], max_merges: int = 5000) -> list[tuple[str, str]]:
    """Merges learnt from ``texts`` until every word is one symbol (or ``max_merges``); ties broken alphabetically."""
    encoder = bytes_to_unicode()
    words = Counter(word for text in texts for word in _WORD.findall(text.lower()))
    split = {word: [encoder[b] for b in word.encode()] for word in words}
    for symbols in split.values():
        symbols[-1] += "</w>"
    merges = []
    while len(merges) < max_merges:
        pairs: Counter = Counter()
        for word, symbols in split.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += words[word]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for symbols in split.values():
            i = 0
            while i < len(symbols) - 1:
                if (symbols[i], symbols[i + 1]) == best:
                    symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
                i += 1
    return merges


def write_clip_tokenizer(folder: str | Path, texts: Iterable[str]) -> transformers.CLIPTokenizer:
    """Train a tokenizer on ``texts`` and save it to ``folder`` in CLIP's format; returns it loaded."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merges = train_bpe(texts)
    characters = list(bytes_to_unicode().values())
    vocabulary = characters + [c + "</w>" for c in characters] + ["".join(merge) for merge in merges]
    vocabulary += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocabulary)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tokenizer = transformers.CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=CLIP_CONTEXT_LENGTH
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def builtin_texts() -> list[str]:
    """Every caption the built-in datasets can produce, every class name, and prompt learning's placeholder "X"."""
    captions = [caption(s, c, n) for s, c, n in product(SHAPES, COLORS, range(1, len(COUNTS) + 1))]
    return captions + [" ".join(names) for names in (SHAPES, COLORS, COUNTS)] + ["X", "a photo of a"]


@cache
def builtin_clip_tokenizer() -> transformers.CLIPTokenizer:
    """The tokenizer of the zoo's own small CLIPs, trained on `builtin_texts` (deterministic)."""
    with tempfile.TemporaryDirectory() as folder:
        return write_clip_tokenizer(folder, builtin_texts())
