"""The ``circman5`` command (also ``python -m circman5``).

``circman5 [--config FILE] [--constants DIR] [--data-dir DIR] COMMAND``, one meaning per flag:

``--config FILE``
    the service settings (``edge.toml``) for every command; ``circman5 run --config FILE`` and
    ``circman5 check-config FILE`` say the same. Commands that read or write data (``run``,
    ``user``, ...) take the data directory from its ``data_dir``.
``--constants DIR``
    the directory of the twin's JSON constants (default: the TOML's ``config_dir``, else
    ``CIRCMAN5_CONFIG_DIR``, else the embedded defaults).
``--data-dir DIR``
    where everything is written; overrides the TOML's ``data_dir`` (default:
    ``CIRCMAN5_DATA_DIR`` or ``~/.local/share/circman5``).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from circman5 import __version__
from circman5.errors import ConfigError, StorageError
from circman5.paths import locations

if TYPE_CHECKING:
    from circman5.service.roles import Role
    from circman5.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circman5", description="CIRCMAN5.0 edge twin of a PV-module manufacturing line"
    )
    parser.add_argument("--version", action="version", version=f"circman5 {__version__}")
    parser.add_argument(
        "--config", dest="settings_file", type=Path, help="service settings file (edge.toml)"
    )
    parser.add_argument(
        "--constants",
        dest="constants_dir",
        type=Path,
        help="directory of the twin's JSON constants",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="where circman5 writes its files (overrides data_dir)"
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the edge service")
    run.add_argument(
        "--config",
        dest="settings_file",
        type=Path,
        default=argparse.SUPPRESS,
        help="service settings file (edge.toml); same as the global --config",
    )
    from circman5.service.roles import ROLES

    run.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all: the whole service on one box (default); edge: one line's connectors, twin "
        "and outputs, no HMI; api: the HMI and API on PostgreSQL and the lines' MQTT topics; "
        "processing: a worker on the PostgreSQL job queue (api and processing need "
        "[database] url)",
    )

    demo = commands.add_parser("demo", help="run the twin on its embedded defaults, live")
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--rate", type=float, default=10.0, help="updates per second")
    demo.add_argument("--plain", action="store_true", help="print lines instead of a live view")

    check = commands.add_parser(
        "check-config", help="validate the configuration and print it (secrets masked)"
    )
    check.add_argument(
        "check_file",
        nargs="?",
        type=Path,
        metavar="settings_file",
        help="service settings file (edge.toml); same as the global --config",
    )

    init = commands.add_parser(
        "init-config", help="write the default JSON constants into a directory, to edit"
    )
    init.add_argument("directory", type=Path)
    init.add_argument("--force", action="store_true", help="overwrite existing files")

    from circman5.api.user_cli import add_user_commands

    add_user_commands(commands)

    from circman5.service.calibration_cli import add_calibrate_command

    add_calibrate_command(commands)

    from circman5.service.opcua_cli import add_opcua_commands

    add_opcua_commands(commands)

    from circman5.connectors.sparkplug.cli import add_sparkplug_commands

    add_sparkplug_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Start-up creates ~190,000 objects that live as long as the process (modules, classes,
    # schemas) and next to no garbage: the cyclic collector would scan them over and over
    # (~8% of a service's start). ``circman5 run`` turns it back on, tuned, once its start-up
    # is done (circman5.service.gc_tuning); every other command right after its arguments.
    gc.disable()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command != "run" or args.role == "processing":
            gc.enable()
        return _main(parser, args)
    finally:
        gc.enable()


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        data_dir, constants_dir, settings = _locations_of(args)
        with locations(data_dir, constants_dir):
            return _dispatch(parser, args, constants_dir, settings)
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    except StorageError as err:  # the database is unreachable, or its schema is newer
        print(f"database error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _dispatch(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    constants_dir: Path | None,
    settings: Settings | None,
) -> int:
    """Run the command; ``constants_dir`` is the resolved constants directory (flag or TOML),
    ``settings`` the settings file as loaded to find it (None: not loaded)."""
    if args.command == "demo":
        from circman5.service.demo import run_demo

        return run_demo(
            duration=args.duration, rate=args.rate, plain=args.plain, log_level=args.log_level
        )
    if args.command == "run":
        return run_service(
            args.settings_file,
            args.log_level,
            data_dir=args.data_dir,
            constants_dir=args.constants_dir,
            role=args.role,
            loaded=settings,
        )
    if args.command == "check-config":
        return check_config(args.settings_file, constants_dir)
    if args.command == "init-config":
        return init_config(args.directory, args.force)
    if args.command == "user":
        from circman5.api.user_cli import run_user_command
        from circman5.service.twin_database import user_store_for

        with user_store_for(args.settings_file) as users:
            return run_user_command(args, users)
    if args.command == "calibrate":
        from circman5.service.calibration_cli import run_calibrate_command

        return run_calibrate_command(args)
    if args.command == "opcua":
        from circman5.service.opcua_cli import run_opcua_command

        return run_opcua_command(args)
    if args.command == "sparkplug":
        from circman5.connectors.sparkplug.cli import run_sparkplug_command

        return run_sparkplug_command(args)
    parser.print_help()
    return 0


def _locations_of(
    args: argparse.Namespace,
) -> tuple[Path | None, Path | None, Settings | None]:
    """The data and constants directories of this command, from the flags and the TOML, and
    the settings when the TOML had to be loaded for them.

    The command line is the outermost composition root: it decides once, before anything
    reads them, where this process keeps its files and finds its constants
    (:func:`circman5.paths.locations`; the process environment is left alone).
    """
    if getattr(args, "check_file", None) is not None:
        args.settings_file = args.check_file
    settings_file: Path | None = args.settings_file
    if settings_file is not None and settings_file.is_dir():
        raise ConfigError(
            str(settings_file),
            "--config",
            "is a directory; --config takes the service settings file (edge.toml), "
            "the twin's JSON constants directory is --constants DIR",
        )
    data_dir: Path | None = args.data_dir
    constants_dir: Path | None = args.constants_dir
    settings = None
    if settings_file is not None and (data_dir is None or constants_dir is None):
        from circman5.settings import load_settings

        settings = load_settings(settings_file)
        data_dir = data_dir or settings.data_dir
        constants_dir = constants_dir or settings.config_dir
    return data_dir, constants_dir, settings


def check_config(settings_file: Path | None, constants_dir: Path | None = None) -> int:
    """Validate the twin's constants and the service settings; print them resolved.

    ``constants_dir``: the constants directory (``--constants``, else the TOML's
    ``config_dir``); None reads ``CIRCMAN5_CONFIG_DIR``, else the embedded defaults.
    """
    from circman5.adapters.services.constants_service import ConstantsService
    from circman5.settings import load_settings, masked

    settings = load_settings(settings_file)
    constants = ConstantsService(constants_dir or settings.config_dir)
    resolved = {
        "settings_file": str(settings_file) if settings_file else None,
        "constants_dir": str(constants.config_dir) if constants.config_dir else "(embedded)",
        "settings": masked(settings),
        "thresholds": {
            path: {"low": r.low, "high": r.high, "severity": r.severity, "deadband": r.deadband}
            for path, r in constants.get_parameter_thresholds().items()
        },
    }
    print(json.dumps(resolved, indent=2))
    from circman5.service.opcua_cli import certificate_problems

    for problem in certificate_problems(settings):
        print(f"warning: {problem}", file=sys.stderr)
    print("configuration OK", file=sys.stderr)
    return 0


def init_config(directory: Path, force: bool) -> int:
    """Write every adapter's defaults as JSON files into ``directory``."""
    from circman5.adapters.config.adapters import ADAPTERS

    directory.mkdir(parents=True, exist_ok=True)
    for adapter_cls in ADAPTERS.values():
        target = directory / adapter_cls.file_name
        if target.exists() and not force:
            print(f"kept {target} (exists; --force overwrites)", file=sys.stderr)
            continue
        target.write_text(json.dumps(adapter_cls(target).get_defaults(), indent=4) + "\n")
        print(f"wrote {target}")
    return 0


def _run_processing(settings: Settings, settings_file: str) -> int:
    """``circman5 run --role processing``: jobs until SIGTERM or SIGINT (exit 0)."""
    import asyncio
    import signal

    from circman5.service.processing import ProcessingWorker

    async def serve() -> None:
        worker = ProcessingWorker(settings, settings_file)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(serve())
    return 0


def run_service(
    settings_file: Path | None,
    log_level: str | None,
    data_dir: Path | None = None,
    constants_dir: Path | None = None,
    role: Role = "all",
    loaded: Settings | None = None,
) -> int:
    """``circman5 run``: until SIGTERM or SIGINT, then a graceful stop (exit 0).

    ``loaded``: ``settings_file`` already loaded (without overrides), not read a second time.
    """
    import asyncio
    import signal

    from circman5.adapters.services.constants_service import ConstantsService
    from circman5.logging_setup import configure_logging
    from circman5.service.app import EdgeService
    from circman5.settings import load_settings

    overrides: dict[str, Path] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if constants_dir is not None:
        overrides["config_dir"] = constants_dir
    if loaded is not None and not overrides:
        settings = loaded
    else:
        settings = load_settings(settings_file, **overrides)
    configure_logging(log_level or settings.log.level, settings.log.format)

    source = str(settings_file or "environment (CIRCMAN5_*)")
    if role == "processing":
        return _run_processing(settings, source)

    async def serve() -> None:
        service = EdgeService(settings, ConstantsService(settings.config_dir), role, source)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        runner = asyncio.create_task(service.run())
        await service.wait_stop_requested(runner)
        try:
            async with asyncio.timeout(settings.shutdown_timeout_s):
                await runner
        except TimeoutError:
            print("shutdown took too long; exiting", file=sys.stderr)
            raise

    asyncio.run(serve())
    return 0
