"""The demo's plots of its CLIP rows: accuracy against trainable parameters, and against adaptation time.

matplotlib is the optional ``bench`` extra, as for `adapterzoo bench`; without it the demo runs and says how to get the
plots.
"""

from __future__ import annotations

from pathlib import Path

from adapterzoo.demo_table import DemoRow
from adapterzoo.environment import install_hint, missing_modules

# Log axes have no 0: zero-shot's 0 parameters and 0 seconds are drawn here (the axis labels say so).
NO_PARAMETERS, NO_TIME = 1, 0.01


def missing_plotting() -> str | None:
    """Why the plots cannot be drawn (matplotlib missing, with the pip command), or None."""
    missing = missing_modules("bench")
    return f"Plotting needs {', '.join(missing)} (not installed): {install_hint('bench')}" if missing else None


def plot(rows: list[DemoRow], folder: Path) -> list[Path]:
    """accuracy_vs_parameters.png (the base-to-novel HM of each method) and accuracy_vs_time.png (those, the few-shot
    curves' accuracy at each shot count, and zero-shot's on all classes) in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    base_to_novel = [row for row in rows if row.protocol == "base-to-novel"]
    curves: dict[str, list[DemoRow]] = {}
    for row in rows:
        if row.protocol == "few-shot" and row.shots:
            curves.setdefault(row.method, []).append(row)
    zero_shot = [row.accuracy for row in rows if row.protocol == "few-shot" and row.shots == 0]
    paths = []
    for name, x_of, x_label, with_curves in (
        ("accuracy_vs_parameters.png", lambda r: max(r.trainable, NO_PARAMETERS),
         f"trainable parameters (log; none drawn at {NO_PARAMETERS})", False),
        ("accuracy_vs_time.png", lambda r: max(r.seconds, NO_TIME),
         f"adaptation time: training and fitting, s (log; none drawn at {NO_TIME})", True),
    ):  # fmt: skip
        figure, axis = pyplot.subplots(figsize=(8, 5))
        at: dict[tuple[float, float], list[str]] = {}  # methods drawn at one point share one label
        for row in base_to_novel:
            at.setdefault((x_of(row), 100 * row.harmonic_mean), []).append(row.method)
        for (x, y), methods in at.items():
            axis.plot(x, y, "s", color="tab:blue")
            axis.annotate(", ".join(methods), (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
        if with_curves:
            for accuracy in zero_shot:
                axis.axhline(100 * accuracy, linestyle="--", color="grey", label="zero-shot on all 8 shapes")
            for method, points in curves.items():
                xs, ys = [x_of(r) for r in points], [100 * r.accuracy for r in points]
                axis.plot(xs, ys, "o-", label=f"{method}, few-shot on all 8 shapes")
                for row, x, y in zip(points, xs, ys, strict=True):
                    axis.annotate(str(row.shots), (x, y), fontsize=6, xytext=(3, -8), textcoords="offset points")
            axis.legend(fontsize=7)
        axis.set_xscale("log")
        axis.set_xlabel(x_label)
        axis.set_ylabel("base-to-novel HM ■ / few-shot accuracy ● (%)")
        axis.set_title("CLIP on the shapes: " + ("accuracy against adaptation time" if with_curves else
                       "base-to-novel HM against trainable parameters"))  # fmt: skip
        figure.tight_layout()
        path = folder / name
        figure.savefig(path, dpi=120)
        pyplot.close(figure)
        paths.append(path)
    return paths
