"""What an edge instance loads before it does anything: no analysis or database library.

An edge box runs one instance per line (docs/operations.md sizes it at about 140 MB); pandas
alone adds about 35 MB to every instance, and psycopg is only needed with ``[database] url``.
They are imported where they are used (analysis, the optimizer, the database), never on the
way to ``circman5 run``.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "sklearn", "scipy", "matplotlib", "psycopg", "psycopg_pool")


def test_the_run_command_imports_no_analysis_or_database_library() -> None:
    code = (
        "import sys\n"
        "import circman5.cli, circman5.service.app, circman5.service.roles\n"
        "import circman5.service.twin_database, circman5.api.app\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout
