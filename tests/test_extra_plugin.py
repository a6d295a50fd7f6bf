"""The core's generated checks with a third-party plugin installed as pip would (its .dist-info with entry points on
sys.path): the matrix and the benchmark table gain the rows the plugin declares, and README's matrix block, which
shows the repository's own methods, does not go stale."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

TOY_PLUGIN = Path(__file__).parent / "fixtures" / "toy_plugin"
ROOT = Path(__file__).resolve().parents[1]

DECLARATION = """
    from adapterzoo import Method
    from adapterzoo.benchmarks.shapes import Row, Shape, head

    METHOD = Method(
        name="toy-scale", config="az_toy_scale:ToyScaleConfig", tuner="az_toy_scale:ToyScaleModel",
        tasks=("image-classification",), summary="A third party's method.", variants=({}, {"target_modules": ["fc1"]}),
        benchmarks="az_extra:rows",
    )


    def rows(shape: Shape) -> list[Row]:
        return [Row("toy-scale (fc2)", "toy-scale", formula=lambda s, c: s.depth * s.width + head(s, c))]
"""

CHECKS = """
    from pathlib import Path

    from adapterzoo.benchmarks import run_benchmarks
    from adapterzoo.benchmarks.report import END, START
    from adapterzoo.testing.matrix import first_party, readme_block, render, rows, support_matrix

    root, folder = Path({root!r}), Path({folder!r})
    assert ("toy-scale", {{"target_modules": ["fc1"]}}) in rows() and "az-extra" not in first_party(root)
    cells = support_matrix(kinds=("vit",))
    assert cells["toy-scale", "vit"].supported and cells["toy-scale (target_modules=['fc1'])", "vit"].supported
    own = {{key: cell for key, cell in cells.items() if not key[0].startswith("toy-scale")}}
    assert readme_block(cells, root) == render(own) != render(cells)

    readme = folder / "README.md"
    readme.write_text(f"{{START}}\\n{{END}}\\n")
    skip = ("steps", "latency", "overhead", "cache", "accuracy")
    results = run_benchmarks(size="tiny", skip=skip, output=folder / "results", readme=readme, progress=False)
    methods = results["methods"]
    assert methods["toy-scale (fc2)"]["matches_formula"] is True and "| toy-scale (fc2) |" in readme.read_text()
    assert {{"linear-probe", "lora (r 8, q v)", "vpt-deep (50)", "moment-probing+ (PSRP)", "coop (16)"}} <= set(methods)
    print("checked")
"""


def test_the_generated_checks_hold_with_a_third_party_plugin_installed(tmp_path: Path, run_python) -> None:
    site = tmp_path / "site"
    info = site / "az_extra-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: az-extra\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[adapterzoo.methods]\ntoy-scale = az_extra:METHOD\n")
    (site / "az_extra.py").write_text(textwrap.dedent(DECLARATION))
    path = os.pathsep.join([str(site), str(TOY_PLUGIN), os.environ.get("PYTHONPATH", "")])
    script = CHECKS.format(root=str(ROOT), folder=str(tmp_path))
    assert run_python(script, env={"PYTHONPATH": path}, timeout=1800).strip().endswith("checked")
