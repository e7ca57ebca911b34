"""Every ```python block in the README and docs/ runs, as written, against fresh singletons."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import reset_singletons

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for index, match in enumerate(BLOCK.finditer(doc.read_text())):
            found.append((f"{doc.relative_to(ROOT)}#{index + 1}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_doc_example_runs(where: str, code: str) -> None:
    reset_singletons()
    exec(compile(code, where, "exec"), {"__name__": "__doc_example__"})


def test_there_are_examples() -> None:
    assert len(examples()) >= 1
