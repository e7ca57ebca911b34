"""Run the benchmarks: ``python -m benchmarks [NAME ...]`` (NAME = twin, outputs, ...)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks.report import print_table


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available()}", file=sys.stderr)
        return 2
    missed = 0
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        rows = module.main()
        print_table(f"benchmark: {name}", rows)
        missed += sum(1 for r in rows if r.meets_target is False)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
