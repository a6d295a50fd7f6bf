"""The method × backbone support matrix: every pair works (attaches, trains) or is refused by name, and README.md
shows exactly the matrix these checks compute for the repository's own methods, whatever else is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapterzoo.testing import VISION_KINDS
from adapterzoo.testing.matrix import END, START, readme_block, rows, support_matrix

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def matrix():
    return support_matrix()


def test_readme_shows_the_matrix_the_checks_compute(matrix) -> None:
    text = README.read_text()
    shown = text[text.index(START) : text.index(END) + len(END)]
    stale = "README's support matrix is stale: run python -m adapterzoo.testing.matrix --write README.md"
    assert shown == readme_block(matrix, ROOT), stale


def test_every_refusal_names_the_method_the_architecture_and_why(matrix) -> None:
    refused = {key: cell for key, cell in matrix.items() if not cell.supported}
    assert refused  # prompt insertion on BEiT and Swin, CLIP classification elsewhere than CLIP, PSRP on Swin
    for (label, kind), cell in refused.items():
        method = label.split(" ")[0]
        assert f"'{method}'" in cell.message and cell.reason in cell.message
        assert f"'{kind}'" in cell.message or f"'{kind.split('_')[0]}'" in cell.message, cell.message


def test_every_installed_method_has_a_row_and_every_architecture_a_column(matrix) -> None:
    labels = {label for label, _ in matrix}
    assert {"lora", "vpt", "dvpt", "maple", "coop", "zero-shot", "moment-probing (plus=True)"} <= labels
    assert len(labels) == len(rows()) and {kind for _, kind in matrix} == set(VISION_KINDS)
