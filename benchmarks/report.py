"""The benchmark table: the figure, its target and a baseline measured in the same run."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Row:
    """One measured figure.

    ``higher_is_better`` decides how ``target`` is read: a minimum (True) or a maximum (False).
    ``baseline`` is measured in the same run (a bare library loop, the naive approach), or None
    where no baseline applies; ``baseline_label`` says what it is.
    """

    name: str
    value: float
    unit: str
    target: float | None
    higher_is_better: bool = True
    baseline: float | None = None
    baseline_label: str = ""

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def print_table(title: str, rows: list[Row], console: Console | None = None) -> None:
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("figure", justify="right")
    table.add_column("unit")
    table.add_column("target", justify="right")
    table.add_column("baseline (same run)", justify="right")
    table.add_column("vs baseline", justify="right")
    table.add_column("ok")
    for row in rows:
        target = (
            "-"
            if row.target is None
            else ("≥ " if row.higher_is_better else "≤ ") + _fmt(row.target)
        )
        ratio = "-"
        if row.baseline:
            ratio = f"{row.value / row.baseline:.2f}x"
        ok = {None: "-", True: "yes", False: "NO"}[row.meets_target]
        baseline = (
            "-" if row.baseline is None else f"{_fmt(row.baseline)} {row.baseline_label}".strip()
        )
        table.add_row(row.name, _fmt(row.value), row.unit, target, baseline, ratio, ok)
    (console or Console(width=160)).print(table)
