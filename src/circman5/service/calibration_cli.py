"""``circman5 calibrate``: fit the process model to the line's recorded history.

``circman5 calibrate --config plant.toml [--source embedded|influxdb] [--last 3600 | --start T
--end T] [--min-r2 0.8] [--step 1.0] [--dry-run] [--json]`` reads the service settings like
``circman5 run`` (data directory, outputs), prints the per-path fit table and saves the
calibration as the next active version (unless ``--dry-run``). Exit 0 when at least one path is
explained, 1 when none is, 2 on bad configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from circman5.errors import InvalidInputError, SinkError, StorageError


def add_calibrate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "calibrate", help="fit the simulation's process model to the line's recorded history"
    )
    parser.add_argument(
        "--config",
        dest="settings_file",
        type=Path,
        default=argparse.SUPPRESS,
        help="service settings file (edge.toml); same as the global --config",
    )
    parser.add_argument(
        "--source",
        choices=("embedded", "influxdb"),
        default=None,
        help="history source (default: influxdb when configured, else the embedded store)",
    )
    parser.add_argument("--last", type=float, default=None, help="window: the last N seconds")
    parser.add_argument("--start", default=None, help="window start (ISO 8601 or Unix seconds)")
    parser.add_argument("--end", default=None, help="window end (ISO 8601 or Unix seconds)")
    parser.add_argument(
        "--min-r2", type=float, default=0.8, help="accept a path at this free-run R² (0.8)"
    )
    parser.add_argument("--step", type=float, default=None, help="grid step in seconds")
    parser.add_argument("--dry-run", action="store_true", help="fit and print; do not save")
    parser.add_argument("--json", action="store_true", help="print the calibration as JSON")


def run_calibrate_command(args: argparse.Namespace) -> int:
    from circman5 import paths
    from circman5.manufacturing.digital_twin.simulation.calibration import (
        CalibrationOptions,
        format_report,
    )
    from circman5.service.calibration_runner import (
        Window,
        default_source,
        read_history,
        run_calibration,
    )
    from circman5.service.twin_database import calibrations_in
    from circman5.settings import load_settings

    settings = load_settings(args.settings_file)
    # the command line chose the directories (--data-dir, else the TOML's data_dir)
    data_dir = paths.data_dir()
    source = args.source or default_source(settings)
    try:
        window = Window.of(args.start, args.end, args.last)
        options = CalibrationOptions(
            min_r2=args.min_r2, step_s=args.step, start_s=window.start_s, end_s=window.end_s
        )
        history = read_history(settings, source, window, data_dir)
        with calibrations_in(settings.database) as database:
            calibration = run_calibration(history, source, options, data_dir, save=not args.dry_run)
    except InvalidInputError as err:
        print(f"calibrate: {err}", file=sys.stderr)
        return 2
    except SinkError as err:
        print(f"calibrate: cannot read the history: {err}", file=sys.stderr)
        return 2
    except StorageError as err:
        print(f"calibrate: cannot save to the database: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(calibration.to_dict(), indent=2))
    else:
        print(format_report(calibration))
        if args.dry_run:
            print("not saved (--dry-run)")
        else:
            where = database or data_dir
            print(f"saved as calibration {calibration.version} (active) in {where}")
    return 0 if calibration.accepted_paths else 1
