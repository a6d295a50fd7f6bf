"""Writing a benchmark run: the machine's description, JSON, a Markdown table and PNG plots."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from adapterzoo.readme_blocks import replace_block

START = "<!-- benchmarks: written by `adapterzoo bench --readme README.md` -->"
END = "<!-- /benchmarks -->"
RATE_KEYS = ("images_per_second", "device_images_per_second")  # the pipeline's, per place of preprocessing


def machine(device: str, dtype: str) -> dict:
    """What the numbers were measured on."""
    description = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "dtype": dtype,
    }
    if device.startswith("cuda"):
        description["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return description


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    """The results as Markdown tables (what README shows)."""
    settings = results["settings"]
    lines = [
        f"Measured on {results['machine']['processor']} ({results['machine']['cpu_count']} cores, "
        f"{results['machine']['device']}, {results['machine']['dtype']}), torch {results['machine']['torch']}. "
        f"Parameters and file sizes at {settings['count_size']} size ({settings['classes']} classes for the ViT "
        f"rows); step time, memory and latency at {settings['timing_size']} size, batch {settings['batch']}, as "
        'ratios to full fine-tuning (training; "(fit)": a fitted method\'s fit, in place of a step) and to the '
        "backbone without the adapter (inference); accuracy with "
        f"the zoo's small pretrained backbones, mean ± std over {settings['seeds']} seeds.",
        "",
        "| method | trainable | % of backbone | = formula | file | step time ×full | peak memory ×full | latency "
        "×plain | merged ×plain | accuracy |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in results["methods"].items():
        if "file_bytes" not in row:  # the parameters section was skipped: no row to show
            continue
        formula = {True: "✓", False: "✗", None: "—"}[row.get("matches_formula")]
        size = row["file_bytes"] / 2**20
        accuracy = row.get("accuracy")
        score = "—" if accuracy is None else f"{100 * accuracy['mean']:.1f} ± {100 * accuracy['std']:.1f}"
        lines.append(
            f"| {label} | {row['trainable']:,} | {row['percent_of_backbone']:.3f} | {formula} | {size:.2f} MiB "
            f"| {_number(row.get('step_ratio'))}{' (fit)' if 'fit_seconds' in row else ''} "
            f"| {_number(row.get('memory_ratio'))} "
            f"| {_number(row.get('latency_ratio'))} | {_number(row.get('merged_latency_ratio'))} | {score} |"
        )
    overhead, caches = results.get("vpt_overhead"), results.get("cache_speedup", {})
    lines.append("")
    if overhead:
        lines.append(
            f"VPT-deep's forward takes {overhead['overhead_ratio']:.2f}× the time of the plain backbone's layers on "
            "the same number of tokens (the work VPT implies)."
        )
    for method, cache in caches.items():
        lines.append(
            f"The frozen-feature cache trains {method} {cache['speedup']:.1f}× faster "
            f"({cache['uncached_seconds']:.1f} s → {cache['cached_seconds']:.1f} s), "
            f"{'with the same' if cache['same_accuracy'] else 'with a DIFFERENT'} accuracy."
        )
    lines += pipeline_lines(results)
    lines += multi_adapter_lines(results)
    lines.append("")
    lines.append(
        "Accuracy: the ViT rows on the four shapes the pretrained ViT never saw; the CLIP rows the harmonic mean of "
        "base and novel accuracy under the base-to-novel protocol, except the few-shot rows (Tip-Adapter's cache "
        "cannot name unseen classes): accuracy on all eight shapes after 16 shots of each."
    )
    return "\n".join(lines)


def pipeline_lines(results: dict) -> list[str]:
    """The data pipeline's images per second beside what the training steps consume, and which bounds a run."""
    pipeline = results.get("pipeline")
    if not pipeline:
        return []
    batch = results["settings"]["batch"]
    steps = [row["step_seconds"] for row in results["methods"].values() if row.get("step_seconds")
             and "fit_seconds" not in row]  # fmt: skip
    consumed = [batch / seconds for seconds in steps]
    lines = []
    device = results["machine"]["device"]
    for image_format, measured in pipeline.items():
        rates = ", ".join(f"{rate:.0f} with {workers}" for workers, rate in measured["images_per_second"].items())
        lines.append(
            f"The data pipeline ({image_format}, 500×375, {measured['mean_file_kib']:.0f} KiB a file, decoded, "
            f"augmented and preprocessed) delivers images per second: {rates} worker(s)."
        )
        if "device_images_per_second" in measured:
            rates = ", ".join(
                f"{rate:.0f} with {workers}" for workers, rate in measured["device_images_per_second"].items()
            )
            lines.append(
                f'With `preprocess_on="device"` (workers only decode; the {device} crops, flips, resizes and '
                f"normalises): {rates} worker(s)."
            )
    if consumed:
        best = max(max(rate for key in RATE_KEYS for rate in m.get(key, {}).values()) for m in pipeline.values())
        bound = sum(rate > best for rate in consumed)
        lines.append(
            f"A training step consumes {min(consumed):.0f} to {max(consumed):.0f} images per second, so data loading "
            f"bounds {bound} of {len(consumed)} methods on this machine and compute bounds the rest."
        )
    return lines


def multi_adapter_lines(results: dict) -> list[str]:
    """A batch mixing many adapters against one adapter, and one backbone holding them against separate models."""
    lines = []
    for label, row in results.get("multi_adapter", {}).items():
        lines.append(
            f"{label}: a batch of {row['batch']} mixing {row['adapters']} adapters runs at "
            f"{row['throughput_ratio']:.2f}× the throughput of the batch on one adapter "
            f"({row['one_adapter_seconds']:.3f} s → {row['mixed_seconds']:.3f} s); the {row['adapters']} adapters on "
            f"one backbone hold {row['shared_backbone_mib']:.1f} MiB of weights, {row['adapters']} separate models "
            f"{row['separate_models_mib']:.1f} MiB."
        )
    return lines


def plots(results: dict, folder: Path) -> list[Path]:
    """accuracy_vs_parameters.png and cost_ratios.png."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = {label: row for label, row in results["methods"].items() if row.get("accuracy")}
    figure, axis = pyplot.subplots(figsize=(8, 5))
    for label, row in rows.items():
        trainable = max(row["accuracy"]["trainable_on_small_backbone"], 1)
        marker = "s" if row["accuracy"]["metric"].startswith("harmonic") else "o"  # CLIP rows: another metric
        axis.errorbar(trainable, 100 * row["accuracy"]["mean"], yerr=100 * row["accuracy"]["std"], fmt=marker)
        axis.annotate(label, (trainable, 100 * row["accuracy"]["mean"]), fontsize=7, xytext=(4, 2),
                      textcoords="offset points")  # fmt: skip
    axis.set_xscale("log")
    axis.set_xlabel("trainable parameters (small pretrained backbone; zero-shot drawn at 1)")
    axis.set_ylabel("accuracy ● / base-to-novel H ■ (%)")
    axis.set_title("Accuracy against trainable parameters")
    figure.tight_layout()
    accuracy_path = folder / "accuracy_vs_parameters.png"
    figure.savefig(accuracy_path, dpi=120)
    pyplot.close(figure)

    timed = {label: row for label, row in results["methods"].items() if row.get("step_ratio") is not None}
    figure, axis = pyplot.subplots(figsize=(9, 5))
    positions = range(len(timed))
    for offset, key, name in ((-0.2, "step_ratio", "step time ×full"), (0.2, "memory_ratio", "peak memory ×full")):
        axis.bar([p + offset for p in positions], [row[key] for row in timed.values()], width=0.4, label=name)
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_xticks(list(positions), list(timed), rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("ratio to full fine-tuning")
    axis.set_title("Training cost relative to full fine-tuning")
    axis.legend()
    figure.tight_layout()
    cost_path = folder / "cost_ratios.png"
    figure.savefig(cost_path, dpi=120)
    pyplot.close(figure)
    return [accuracy_path, cost_path]


def write(results: dict, folder: Path, readme: Path | None = None) -> list[Path]:
    """results.json, results.md and the plots in ``folder``; the Markdown also into ``readme`` between the markers."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (folder / "results.md").write_text(table + "\n")
    written = [folder / "results.json", folder / "results.md", *plots(results, folder)]
    if readme is not None:
        replace_block(readme, START, END, f"{START}\n\n{table}\n\n{END}")
    return written
