"""The demo's table: its rows, the sizes it runs at, and the summary it prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DemoRow:
    """One adapted model: its method, backbone, trainable parameters, scores and adaptation time (training and
    fitting). CLIP rows also name their ``protocol`` ("base-to-novel" or "few-shot") and the ``shots`` per class."""

    method: str
    backbone: str
    trainable: int
    accuracy: float | None = None
    base: float | None = None
    novel: float | None = None
    harmonic_mean: float | None = None
    seconds: float = 0.0
    protocol: str | None = None
    shots: int | None = None


@dataclass(frozen=True)
class DemoSizes:
    """How much data and training the demo uses (the quick sizes are for tests): ``shots`` per base class under
    base-to-novel, ``few_shot`` the curves' shot counts, ``views`` the fitted methods' augmented passes,
    ``tip_search_steps`` Tip-Adapter's grid of β and α (the reference's 200 × 20), ``gda_neighbours`` the training
    features GDA's base-to-novel variant synthesises a new class from (the reference's 64)."""

    train_per_class: int = 64
    test_per_class: int = 50
    epochs: int = 30
    shots: int = 16
    validation_per_class: int = 16
    views: int = 10
    few_shot: tuple[int, ...] = (1, 2, 4, 8, 16)
    tip_search_steps: tuple[int, int] = (200, 20)
    gda_neighbours: int = 64


QUICK = DemoSizes(
    train_per_class=4, test_per_class=4, epochs=1, shots=2, validation_per_class=4, views=2, few_shot=(1, 2),
    tip_search_steps=(20, 5), gda_neighbours=8,
)  # fmt: skip


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _label(row: DemoRow) -> str:
    return f"{row.method} {row.shots}-shot" if row.protocol == "few-shot" else row.method


def print_summary(rows: list[DemoRow], seconds: float) -> None:
    print(
        f"\n{'method':<20}{'backbone':<28}{'trainable':>10}{'accuracy':>10}{'base':>8}{'novel':>8}{'HM':>8}{'time':>8}"
    )
    for row in rows:
        print(
            f"{_label(row):<20}{row.backbone:<28}{row.trainable:>10,}{_percent(row.accuracy):>10}"
            f"{_percent(row.base):>8}{_percent(row.novel):>8}{_percent(row.harmonic_mean):>8}{row.seconds:>7.1f}s"
        )
    print(
        f"\nTotal: {seconds:.0f} s. Accuracy on held-out test images (CLIP's N-shot rows: all 8 shapes); "
        "base/novel/HM: CLIP's base-to-novel protocol. Time: training and fitting."
    )
