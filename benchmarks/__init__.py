"""Benchmarks: each module ``bench_*.py`` has ``main() -> list[Row]``; run with ``make bench``."""
