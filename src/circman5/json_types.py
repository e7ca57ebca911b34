"""The type of JSON data: what ``json.loads`` returns and ``json.dumps`` writes.

Every part of the product may import this module (it imports nothing of the product).
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["JsonScalar", "JsonValue"]

JsonScalar: TypeAlias = str | int | float | bool | None
#: A JSON document or any part of it.
JsonValue: TypeAlias = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]
