"""The `jouleflow` command. Each sub-module registers its sub-commands.

Handlers import their heavy dependencies lazily, so `jouleflow energy` never imports
measurement code and `jouleflow measure` never imports plotting.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from jouleflow import __version__

# Modules under jouleflow.cli, one per top-level command (`import_` is `import`), each with
# `register(subparsers)`; the order is the order of --help.
COMMAND_MODULES = (
    "measure",
    "prepare",
    "energy",
    "attribute",
    "summarize",
    "campaign",
    "import_",
    "frontier",
    "recommend",
    "plot",
    "report",
    "compare",
    "plan",
)


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jouleflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"jouleflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"jouleflow.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"jouleflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # Library errors carry the file/key name in their message; show it without a traceback.
        print(f"jouleflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
