"""The ``adapterzoo`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _size(text: str) -> int:
    """A byte count such as 10485760, 10MB or 10MiB."""
    units = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    upper = text.strip().upper()
    for unit, factor in units.items():
        if upper.endswith(unit):
            return int(float(upper[: -len(unit)]) * factor)
    return int(upper)


def _methods(args: argparse.Namespace) -> int:
    from adapterzoo import list_methods

    for info in list_methods():
        print(f"{info.name:<16} {info.distribution:<18} {info.version:<8} {info.summary}")
    return 0


def _hub_serve(args: argparse.Namespace) -> int:
    from adapterzoo.hub import HubSettings, serve

    settings = HubSettings(
        root=Path(args.root),
        token=args.token or os.environ.get("ADAPTERZOO_HUB_TOKEN") or None,
        user=args.user,
        lfs_threshold=args.lfs_threshold,
        verbose=args.verbose,
    )
    serve(settings, args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adapterzoo", description="Parameter-efficient adaptation of vision models.")
    commands = parser.add_subparsers(dest="command", required=True)

    methods = commands.add_parser("methods", help="list the installed methods")
    methods.set_defaults(run=_methods)

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
        "--lfs-threshold",
        type=_size,
        default=None,
        help="upload files at least this large (e.g. 10MB) through git-LFS; clients then need HF_HUB_DISABLE_XET=1 "
        "(default: every file travels in the commit itself)",
    )
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.set_defaults(run=_hub_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
