"""The ``adapterzoo`` command line: list methods, train, evaluate, serve an embedded Hub."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# What `adapterzoo train` reads besides the training options, with their help; also keys of its YAML config.
RUN_OPTIONS = {
    "backbone": "backbone to adapt: a Hub id or a local folder",
    "method": "method to attach (see `adapterzoo methods`)",
    "method_options": "the method's options, as KEY=VALUE pairs (YAML values) or, in a config file, a mapping",
    "adapter": "continue training a saved adapter (a folder or a Hub repo id) instead of --backbone/--method",
    "task": "image-classification (a new head) or clip-classification (CLIP's text classifier); default: the method's",
    "template": "prompt template of CLIP classification, e.g. 'a photo of a {}.'",
    "protocol": "standard, or base-to-novel: train --shots per class on the base half, test both halves",
    "dataset": "training data: builtin:<shapes|colors|counts>, an image folder, or a Hub dataset id",
    "split": "training split (default: train)",
    "eval_dataset": "evaluation data (default: --dataset)",
    "eval_split": "evaluation split; none: no evaluation (default: validation)",
    "search_split": "base-to-novel: the split a fitted method (gda, tip-adapter) chooses its hyper-parameters on, from"
    " --eval-dataset (default: validation)",
    "image_column": "image column (default: found by type or name)",
    "label_column": "label column (default: found by type or name)",
    "shots": "keep this many training examples per class, drawn with --seed (few-shot; base-to-novel: 16)",
    "class_split": "train and evaluate on the 'base' or 'novel' half of the classes",
}


def _size(text: str) -> int:
    """A byte count such as 10485760, 10MB or 10MiB."""
    units = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    upper = text.strip().upper()
    for unit, factor in units.items():
        if upper.endswith(unit):
            return int(float(upper[: -len(unit)]) * factor)
    return int(upper)


def _key_values(pairs: Sequence[str]) -> dict[str, Any]:
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"adapterzoo: method options are KEY=VALUE, got '{pair}'")
        options[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return options


def _add_training_flags(parser: argparse.ArgumentParser, method: str | None = None) -> None:
    """One flag per `TrainingConfig` field, typed and documented from the dataclass; the defaults shown are
    ``method``'s recipe where it sets them."""
    from adapterzoo.registry import method_recipe
    from adapterzoo.training.config import TrainingConfig

    recipe = method_recipe(method) if method else {}

    hints = typing.get_type_hints(TrainingConfig)
    group = parser.add_argument_group("training options (also keys of --config)")
    for field in dataclasses.fields(TrainingConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if isinstance(kind, types.UnionType):  # a str among the types takes any value; the config checks it
            kinds = [arg for arg in typing.get_args(kind) if arg is not type(None)]
            kind = str if str in kinds else kinds[0]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if field.name in recipe:
            default = f"{recipe[field.name]}, {method}'s recipe"
        help_text = f"{field.metadata['help']} (default: {default})"
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(kind) is list:
            group.add_argument(flag, nargs="+", default=None, help=help_text)
        else:
            choices = field.metadata.get("choices")
            group.add_argument(flag, type=kind, choices=choices, default=None, help=help_text)


def _train_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run options, training options): the config file's values, overridden by the flags given."""
    from adapterzoo.training.config import TrainingConfig

    values: dict[str, Any] = {}
    if args.config:
        import yaml

        if not os.path.isfile(args.config):
            from adapterzoo.local_paths import missing_path_message

            raise SystemExit(f"adapterzoo train: {missing_path_message(args.config, 'config file')}")

        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"adapterzoo: {args.config} must hold a mapping of option names to values")
        values.update({key.replace("-", "_"): value for key, value in loaded.items()})
        TrainingConfig.check_names(
            {k: v for k, v in values.items() if k not in RUN_OPTIONS}, source=f"key in {args.config}"
        )
    ignored = ("command", "config", "run")
    given = {key: value for key, value in vars(args).items() if value is not None and key not in ignored}
    if "method_options" in given:
        given["method_options"] = {**values.get("method_options", {}), **_key_values(given["method_options"])}
    values.update(given)
    run = {key: values.pop(key) for key in list(values) if key in RUN_OPTIONS}
    return run, values


def _check_local_paths(command: str, **sources: str | None) -> None:
    """Refuse, before anything loads, a source (``backbone="./vit"``) that can only be a local path and is not there:
    one line naming it, rather than a Hub client's "Repo id must be in the form ..." after seconds of imports."""
    from adapterzoo.local_paths import looks_like_local_path, missing_path_message

    for what, name in sources.items():
        if name and not name.startswith("builtin:") and looks_like_local_path(name) and not os.path.exists(name):
            raise SystemExit(f"adapterzoo {command}: {missing_path_message(name, what.replace('_', ' '))}")


def _without_transformers_bars(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command that loads models, run without the bar transformers draws for each load (`transformers_bars_off`)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from adapterzoo.progress import transformers_bars_off

        with transformers_bars_off():
            return command(args)

    return run


def _prepare_data(run: dict[str, Any], seed: int):
    from adapterzoo.data.loading import class_split, few_shot, find_columns, load_image_dataset

    if "dataset" not in run:
        raise SystemExit("adapterzoo: --dataset (or `dataset:` in --config) is required")
    train_data = load_image_dataset(run["dataset"], run.get("split", "train"))
    eval_split = run.get("eval_split", "validation")
    eval_data = None
    if str(eval_split).lower() != "none":
        eval_data = load_image_dataset(run.get("eval_dataset", run["dataset"]), eval_split)
    columns = find_columns(train_data, run.get("image_column"), run.get("label_column"))
    if run.get("protocol") == "base-to-novel":
        return train_data, eval_data, columns  # the protocol splits and subsamples itself
    if run.get("class_split"):
        train_data = class_split(train_data, run["class_split"], label_column=columns.label)
        if eval_data is not None:
            eval_data = class_split(eval_data, run["class_split"], label_column=columns.label)
    if run.get("shots"):
        train_data = few_shot(train_data, int(run["shots"]), seed=seed, label_column=columns.label)
    return train_data, eval_data, columns


@_without_transformers_bars
def _train(args: argparse.Namespace) -> int:
    from adapterzoo.training.config import TrainingConfig

    run, training = _train_options(args)
    sources = ("backbone", "adapter", "dataset", "eval_dataset")
    _check_local_paths("train", **{f"{name}_folder": run.get(name) for name in sources})
    # torch loads after the checks, so that a typo fails at once
    from adapterzoo import AutoAdapter, base_to_novel, fit, train
    from adapterzoo.data.loading import class_names, hub_dataset_id, load_image_dataset
    from adapterzoo.training.fit import is_fitted

    seed = training.get("seed", TrainingConfig.seed)
    train_data, eval_data, columns = _prepare_data(run, seed)
    if run.get("adapter"):
        model = AutoAdapter.from_pretrained(run["adapter"], is_trainable=True)
    elif run.get("backbone") and run.get("method"):
        from accelerate.utils import set_seed

        set_seed(seed)  # the adapter's and head's initialisation is part of the run
        labels = class_names(train_data, columns)
        options = run.get("method_options") or {}
        task = {"task": run.get("task"), "template": run.get("template")}
        model = AutoAdapter.from_backbone(run["backbone"], method=run["method"], labels=labels, **task, **options)
    else:
        raise SystemExit("adapterzoo: give --backbone and --method, or --adapter")
    dataset_id = hub_dataset_id(run["dataset"])
    if dataset_id is not None and dataset_id not in model.datasets:
        model.datasets.append(dataset_id)  # the card's `datasets`
    data_columns = {"image_column": columns.image, "label_column": columns.label}
    if run.get("protocol") == "base-to-novel":
        if eval_data is None:
            raise SystemExit("adapterzoo: the base-to-novel protocol needs an evaluation split (--eval-split)")
        shots = int(run["shots"]) if run.get("shots") else 16
        search = None
        if is_fitted(model):
            search = load_image_dataset(run.get("eval_dataset", run["dataset"]), run.get("search_split", "validation"))
        result = base_to_novel(
            model, train_data, eval_data, validation_dataset=search, shots=shots, **data_columns, **training
        )
        summary = {key: value for key, value in vars(result).items() if key != "training"}
    elif is_fitted(model):
        if eval_data is None:
            raise SystemExit(f"adapterzoo: '{model.method.name}' is fitted on a validation split (--eval-split)")
        final_dir = Path(training.get("output_dir", TrainingConfig.output_dir)) / "final"
        progress = training.get("progress", TrainingConfig.progress)
        summary = {
            "fitted": fit(model, train_data, eval_data, **data_columns, progress=progress),
            "final_dir": str(final_dir),
        }
        model.save_pretrained(final_dir)
    else:
        result = train(model, train_data, eval_data, **data_columns, **training)
        summary = {
            "metrics": result.metrics,
            "best_metric": result.best_metric,
            "steps": result.steps,
            "final_dir": str(result.final_dir),
            "best_dir": str(result.best_dir) if result.best_dir else None,
        }
    print(json.dumps(summary, indent=2))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from adapterzoo.benchmarks.command import main as bench

    return bench(args)


@_without_transformers_bars
def _demo(args: argparse.Namespace) -> int:
    from adapterzoo.demo import run_demo

    run_demo(quick=args.quick, hub_root=args.hub_root, output_dir=args.output_dir, progress=args.progress)
    return 0


@_without_transformers_bars
def _evaluate(args: argparse.Namespace) -> int:
    _check_local_paths("evaluate", adapter_folder=args.adapter, dataset_folder=args.dataset)
    from adapterzoo import AutoAdapter, evaluate
    from adapterzoo.data.loading import class_split, load_image_dataset
    from adapterzoo.training import evaluate_base_to_novel
    from adapterzoo.training.evaluation import check_metrics

    try:
        check_metrics(args.metrics)
    except ValueError as exc:  # before the adapter loads
        raise SystemExit(f"adapterzoo evaluate: {exc}") from exc

    model = AutoAdapter.from_pretrained(args.adapter, revision=args.revision)
    dataset = load_image_dataset(args.dataset, args.split)
    columns = {"image_column": args.image_column, "label_column": args.label_column, "progress": args.progress}
    if args.protocol == "base-to-novel":
        metrics = evaluate_base_to_novel(model, dataset, batch_size=args.batch_size, **columns)
    else:
        if args.class_split:
            dataset = class_split(dataset, args.class_split, label_column=args.label_column or "label")
        metrics = evaluate(
            model, dataset, metrics=args.metrics, batch_size=args.batch_size, mixed_precision=args.mixed_precision,
            preprocess_on=args.preprocess_on, **columns,
        )  # fmt: skip
    text = json.dumps(metrics, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


@_without_transformers_bars
def _export(args: argparse.Namespace) -> int:
    from adapterzoo import AdapterZooError, AutoAdapter

    if args.opset is not None and args.format != "onnx":
        raise SystemExit("adapterzoo export: --opset applies to --format onnx only")
    options = {"opset": args.opset} if args.opset is not None else {}
    try:
        model = AutoAdapter.from_pretrained(args.adapter, revision=args.revision)
        folder = model.export(args.output, format=args.format, **options)
    except (AdapterZooError, ImportError, OSError, ValueError) as exc:
        raise SystemExit(f"adapterzoo export: {' '.join(str(exc).split())}") from exc
    print(f"Exported {args.adapter} ({model.method.name}) as {args.format} to {Path(folder).resolve()}")
    return 0


def _methods(args: argparse.Namespace) -> int:
    from adapterzoo import list_methods

    if args.recipe:
        return _print_recipe(args.recipe)
    rows = [(info.name, info.distribution, info.version, info.summary) for info in list_methods()]
    # Each column as wide as its longest cell, so that long distribution names keep the summaries aligned.
    widths = [max((len(row[column]) for row in rows), default=0) for column in range(3)]
    for *cells, summary in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)), summary]))
    return 0


def _print_recipe(method: str) -> int:
    """The options ``method``'s recipe sets, as YAML (keys of ``adapterzoo train --config``)."""
    import yaml

    from adapterzoo.registry import method_recipe

    recipe = method_recipe(method)
    print(f"# {method}'s recipe, over the defaults of `adapterzoo train --help`; any flag or --config key overrides it")
    print(yaml.safe_dump(recipe, sort_keys=False).rstrip() if recipe else "# (none: the defaults apply)")
    return 0


@_without_transformers_bars
def _serve(args: argparse.Namespace) -> int:
    from adapterzoo.environment import require_extra

    require_extra("serve", "Serving over HTTP")
    import uvicorn

    from adapterzoo.serving import AdapterPool
    from adapterzoo.serving.app import create_app

    pool = AdapterPool(backbone=args.backbone, max_adapters=args.max_adapters, max_models=args.max_models,
                       device=args.device)  # fmt: skip
    for ref in args.adapter:
        pool.load(ref, local=True)
    app = create_app(pool, max_images=args.max_images, max_body_bytes=args.max_body_size)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


def _hub_serve(args: argparse.Namespace) -> int:
    from adapterzoo.hub import HubSettings, serve
    from adapterzoo.hub.users import UsersFileError, load_accounts

    token = args.token or os.environ.get("ADAPTERZOO_HUB_TOKEN") or None
    if args.users and token:
        raise SystemExit("adapterzoo hub serve: --users gives each user their own tokens: drop --token")
    try:
        users = load_accounts(args.users) if args.users else None
    except UsersFileError as error:
        raise SystemExit(f"adapterzoo hub serve: {error}") from None
    settings = HubSettings(
        root=Path(args.root),
        token=token,
        user=args.user,
        users=users,
        lfs_threshold=args.lfs_threshold,
        verbose=args.verbose,
        max_body_size=args.max_body_size,
        timeout=args.timeout,
        max_connections=args.max_connections,
    )
    serve(settings, args.host, args.port)
    return 0


class _Version(argparse.Action):
    """``--version``: adapterzoo's version and those of the libraries it runs on, read without importing them."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from adapterzoo.environment import version_report

        print(version_report())
        parser.exit()


def build_parser(help_method: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``help_method``: the method whose recipe `adapterzoo train --help` shows as defaults."""
    from adapterzoo.training.config import PRECISIONS, PREPROCESS_PLACES

    parser = argparse.ArgumentParser(prog="adapterzoo", description="Parameter-efficient adaptation of vision models.")
    parser.add_argument("--version", action=_Version, help="show the versions of adapterzoo and its libraries")
    commands = parser.add_subparsers(dest="command", required=True)

    methods = commands.add_parser("methods", help="list the installed methods, or one method's training recipe")
    methods.add_argument("--recipe", metavar="METHOD", help="print the training options METHOD's recipe sets")
    methods.set_defaults(run=_methods)

    train = commands.add_parser(
        "train",
        help="train an adapter (one process, or many under torchrun / accelerate launch)",
        description="Train a method's adapter and a head on a dataset. Options come from --config (YAML, keys as "
        "the flags with underscores), overridden by flags, over the method's recipe (its paper's optimizer and "
        "schedule). "
        + (
            f"Defaults below are {help_method}'s."
            if help_method
            else "Defaults below are those of a method without a recipe: `adapterzoo train --method M --help` shows "
            "M's, `adapterzoo methods --recipe M` lists what M's recipe sets."
        ),
    )
    train.add_argument("--config", help="YAML file of options (any flag below, with underscores)")
    run_group = train.add_argument_group("what to train, on what")
    for name, help_text in RUN_OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        if name == "method_options":
            run_group.add_argument("--option", dest=name, action="append", metavar="KEY=VALUE", help=help_text)
        elif name == "shots":
            run_group.add_argument(flag, type=int, help=help_text)
        elif name == "class_split":
            run_group.add_argument(flag, choices=("base", "novel"), help=help_text)
        elif name == "protocol":
            run_group.add_argument(flag, choices=("standard", "base-to-novel"), help=help_text)
        else:
            run_group.add_argument(flag, help=help_text)
    _add_training_flags(train, help_method)
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a saved adapter (folder or Hub repo) on a dataset")
    evaluate.add_argument("adapter", help="a saved adapter folder or a Hub repo id")
    evaluate.add_argument("--dataset", required=True, help="builtin:<task>, an image folder, or a Hub dataset id")
    evaluate.add_argument("--split", default="test", help="split to evaluate (default: test)")
    evaluate.add_argument(
        "--metrics", nargs="+", default=["accuracy"],
        help="metrics: accuracy, top_k_accuracy, f1, quadratic_kappa (default: accuracy)",
    )  # fmt: skip
    evaluate.add_argument("--batch-size", type=int, default=64, help="examples per batch (default: 64)")
    evaluate.add_argument("--revision", help="branch, tag or commit of a Hub adapter")
    evaluate.add_argument("--image-column", help="image column (default: found by type or name)")
    evaluate.add_argument("--label-column", help="label column (default: found by type or name)")
    evaluate.add_argument("--class-split", choices=("base", "novel"), help="evaluate on one half of the classes")
    evaluate.add_argument(
        "--protocol",
        choices=("standard", "base-to-novel"),
        default="standard",
        help="base-to-novel: accuracy on each half of the classes (a CLIP classifier switched to it) and their "
        "harmonic mean",
    )
    evaluate.add_argument(
        "--mixed-precision", choices=PRECISIONS, default="no", help="compute under autocast: bf16, or fp16 on a GPU"
    )
    evaluate.add_argument(
        "--preprocess-on", choices=PREPROCESS_PLACES, default="cpu",
        help="device: workers only decode, the model's device resizes and normalises (default: cpu)",
    )  # fmt: skip
    evaluate.add_argument("--output", help="also write the metrics to this JSON file")
    evaluate.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser(
        "export",
        help="export a saved adapter (folder or Hub repo) for deployment: transformers or ONNX",
        description="Write a deployable model of a saved adapter into OUTPUT: a plain transformers "
        "*ForImageClassification folder with the adapter merged (for the methods that can be merged), or an ONNX "
        'graph (pixel_values -> logits, any method; needs pip install "adapterzoo[onnx]") beside the image '
        "processor's config and the labels.",
    )
    export.add_argument("adapter", help="a saved adapter folder or a Hub repo id")
    export.add_argument("output", help="folder to write (replaced when it holds an earlier export of that format)")
    export.add_argument(
        "--format", choices=("transformers", "onnx"), default="transformers", help="(default: transformers)"
    )
    export.add_argument("--revision", help="branch, tag or commit of a Hub adapter")
    export.add_argument("--opset", type=int, help="ONNX opset to target (default: the exporter's)")
    export.set_defaults(run=_export)

    demo = commands.add_parser(
        "demo",
        help="the whole library offline: pretrained small backbones, VPT/LoRA/linear probe, MaPLe, Hub push and pull",
        description="Adapt the zoo's small pretrained ViT to shapes it never saw with VPT, LoRA and a linear probe "
        "(and a random ViT, to show what pretraining brings), run CLIP's base-to-novel protocol with zero-shot CLIP, "
        "CoOp and MaPLe, push the best adapter to the local Hub, load it back and predict. The backbones are "
        "pretrained on first use (about 2 minutes on 2 CPU cores) and reused from the local Hub afterwards.",
    )
    demo.add_argument("--quick", action="store_true", help="seconds-long backbones and runs (for tests)")
    demo.add_argument(
        "--hub-root", help="the local Hub's folder (default: $ADAPTERZOO_HOME/hub, else ~/.cache/adapterzoo/hub)"
    )
    demo.add_argument("--output-dir", default="outputs/demo", help="training outputs (default: outputs/demo)")
    demo.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    demo.set_defaults(run=_demo)

    bench = commands.add_parser(
        "bench",
        help="benchmark every installed method: parameters, file size, speed, memory, latency, accuracy",
        description="Measure every installed method (and the linear probe and full fine-tuning) on one machine and "
        "write results.json, results.md and PNG plots. Benchmarks, not tests: nothing is asserted.",
    )
    from adapterzoo.benchmarks.command import add_arguments

    add_arguments(bench)
    bench.set_defaults(run=_bench)

    serve = commands.add_parser(
        "serve",
        help='classify images over HTTP through many adapters on one backbone (pip install "adapterzoo[serve]")',
        description="Serve image classification over HTTP (FastAPI, uvicorn) through adapters of one backbone, loaded "
        "from the Hub by repo id on first use (HF_ENDPOINT picks the Hub). POST /classify takes JSON "
        '{"inputs": [{"image": BASE64, "adapter": REPO_ID}, ...], "top_k": 1}; GET /adapters lists the loaded '
        "adapters, POST /adapters loads one, GET /health answers. The routes' documentation is at /docs.",
    )
    serve.add_argument("--backbone", help="the Hub id of the backbone served (default: the first adapter's)")
    serve.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="FOLDER_OR_REPO_ID",
        help="an adapter to load at start (repeat for several); clients name a folder's by its path",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    serve.add_argument("--device", default="cpu", help="where the models run: cpu, cuda, cuda:1 (default: cpu)")
    serve.add_argument("--max-adapters", type=int, default=16, help="adapters held at most (default: 16)")
    serve.add_argument("--max-models", type=int, default=2,
                       help="methods held at most, each on a copy of the backbone (default: 2)")  # fmt: skip
    serve.add_argument("--max-images", type=int, default=64, help="images per request at most (default: 64)")
    serve.add_argument("--max-body-size", type=_size, default="32MiB",
                       help="largest request body accepted, e.g. 64MB (default: 32MiB)")  # fmt: skip
    serve.set_defaults(run=_serve)

    hub = commands.add_parser("hub", help="the embedded Hub-compatible server")
    hub_commands = hub.add_subparsers(dest="hub_command", required=True)
    serve = hub_commands.add_parser(
        "serve",
        help="serve repositories stored in a folder over the Hugging Face Hub's HTTP API",
        description="Serve repositories stored under --root over the Hub's HTTP API. Point clients at it with "
        "HF_ENDPOINT=http://HOST:PORT (and HF_TOKEN when the server has a token).",
    )
    serve.add_argument("--root", required=True, help="folder holding the repositories (created if missing)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default: 8000)")
    serve.add_argument(
        "--token",
        help="token that writes (and private reads) require; default $ADAPTERZOO_HUB_TOKEN, else none: open to all",
    )
    serve.add_argument("--user", default="local", help="user name of the token holder, the default namespace")
    serve.add_argument(
        "--users",
        metavar="FILE",
        help="YAML file of users (each with read or write tokens) and organisations (with members): writes and "
        "private reads then follow the Hub's rules; replaces --token and --user",
    )
    serve.add_argument(
        "--lfs-threshold",
        type=_size,
        default="10MiB",
        help="files at least this large go through Xet (or git-LFS) even when they are text; binary files and those "
        "matching the LFS patterns of .gitattributes always do (default: 10MiB, as on the Hub)",
    )
    serve.add_argument(
        "--max-body-size",
        type=_size,
        default="1GiB",
        help="largest request body accepted, e.g. 2GB; a commit's regular files travel in it base64-encoded (4/3 of "
        "their size) and LFS uploads count one object at a time (default: 1GiB)",
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds a connection may stay idle or stall in the middle of a request before it is closed (default: 60)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="connections served at once, each with a thread; lowered to what the open-files limit allows. At the cap "
        "the longest-idle connection is closed for a new one (default: 256)",
    )
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.set_defaults(run=_hub_serve)
    return parser


def _help_method(argv: Sequence[str]) -> str | None:
    """The ``--method`` of ``adapterzoo train ... --method M ... --help``, whose recipe the help then shows."""
    if not argv or argv[0] != "train" or not {"-h", "--help"} & set(argv):
        return None
    for index, word in enumerate(argv):
        if word == "--method" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--method="):
            return word.partition("=")[2]
    return None


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user's mistake raises (a typo in a name or option, a missing file or repo, a dataset that does not fit,
    an extra not installed): reported in one line, without a traceback. Imported only when something failed."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import errors as hub

    from adapterzoo.data.loading import DatasetError
    from adapterzoo.environment import MissingExtraError
    from adapterzoo.errors import AdapterZooError

    hub_errors = (hub.HFValidationError, hub.RepositoryNotFoundError, hub.RevisionNotFoundError,
                  hub.RevisionResolutionError, hub.EntryNotFoundError, hub.OfflineModeIsEnabled)  # fmt: skip
    return (AdapterZooError, DatasetError, MissingExtraError, DatasetNotFoundError, *hub_errors)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = "adapterzoo"
    try:
        args = build_parser(_help_method(argv)).parse_args(argv)
        command = f"adapterzoo {args.command}"
        return args.run(args)
    except KeyboardInterrupt:
        return 130  # what a shell reports for Ctrl-C; training has already said where it stopped
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        raise SystemExit(f"{command}: {' '.join(str(exc).split())}") from exc


if __name__ == "__main__":
    sys.exit(main())
