"""``circman5 sparkplug discover``: list the Sparkplug metrics the plant publishes.

Wired into :mod:`circman5.cli` with :func:`add_sparkplug_commands` and
:func:`run_sparkplug_command`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from circman5.errors import ConfigError

__all__ = ["add_sparkplug_commands", "run_sparkplug_command"]


def add_sparkplug_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``sparkplug`` command (with ``discover``) to ``subparsers``."""
    sparkplug = subparsers.add_parser(
        "sparkplug", help="Sparkplug B tools (discover the metrics edge nodes publish)"
    )
    actions = sparkplug.add_subparsers(dest="sparkplug_command", metavar="ACTION")
    actions.required = True
    discover = actions.add_parser(
        "discover",
        help="listen for N seconds and list the metrics seen in births (for the tag map)",
    )
    discover.add_argument(
        "--config",
        dest="settings_file",
        type=Path,
        default=argparse.SUPPRESS,
        help="the settings file (edge.toml) with a [[connectors]] entry of type 'sparkplug'",
    )
    discover.add_argument(
        "--connector", help="the name of the sparkplug connector to use (default: the first)"
    )
    discover.add_argument("--seconds", type=float, default=10.0, help="how long to listen")
    discover.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return sparkplug


def run_sparkplug_command(args: argparse.Namespace) -> int:
    from circman5.connectors.config import load_connectors
    from circman5.connectors.sparkplug.config import SparkplugConnectorSettings
    from circman5.connectors.sparkplug.discover import discover, format_json, format_table

    settings_file: Path | None = getattr(args, "settings_file", None)
    if settings_file is None:
        raise ConfigError("(command line)", "--config", "sparkplug discover needs --config FILE")
    candidates = [
        entry
        for entry in load_connectors(settings_file)
        if isinstance(entry, SparkplugConnectorSettings)
        and (args.connector is None or entry.name == args.connector)
    ]
    if not candidates:
        which = f"named '{args.connector}'" if args.connector else "of type 'sparkplug'"
        raise ConfigError(str(settings_file), "connectors", f"no connector {which}")
    if args.seconds <= 0:
        raise ConfigError("(command line)", "--seconds", "must be more than 0")
    metrics = asyncio.run(discover(candidates[0], args.seconds))
    print(format_json(metrics) if args.json else format_table(metrics))
    if not metrics and not args.json:
        print(
            f"no births seen in {args.seconds:g} s on group(s) "
            f"{', '.join(candidates[0].all_groups)}",
            file=sys.stderr,
        )
    return 0
