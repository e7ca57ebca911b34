"""OPC UA node addresses by namespace URI (pure Python, no asyncua).

Tags name their nodes with the namespace **URI**, never the index, because a server may hand
out different indexes after a restart or an upgrade::

    nsu=urn:circman5:sim:plc;s=Line1.Laminator.Temperature
    nsu=http://example.com/UA/;i=1001
    i=2258                       (namespace 0: the standard nodes)
    ns=0;i=2258                  (same)
    s=Line1.Laminator.Temperature   (only with the connector's ``namespace_uri``)

A bare ``i=`` id is always namespace 0 (``i=85`` is the Objects folder); bare ``s=``, ``g=`` and
``b=`` ids are in the connector's ``namespace_uri``.

Identifier kinds: ``i=`` numeric (UInt32), ``s=`` string, ``g=`` GUID, ``b=`` ByteString
(base64). The connector resolves the URI to the server's current index at every (re)connect.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Literal

IdKind = Literal["i", "s", "g", "b"]

_NSU = re.compile(r"^nsu=(?P<uri>[^;]+?);(?P<kind>[isgb])=(?P<id>.*)$", re.DOTALL)
_NS = re.compile(r"^ns=(?P<index>\d+);(?P<kind>[isgb])=(?P<id>.*)$", re.DOTALL)
_BARE = re.compile(r"^(?P<kind>[isgb])=(?P<id>.*)$", re.DOTALL)

STANDARD_NAMESPACE = "http://opcfoundation.org/UA/"


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """A node id with its namespace given by URI (``None``: namespace 0)."""

    namespace_uri: str | None
    kind: IdKind
    identifier: str | int

    def __str__(self) -> str:
        ident = f"{self.kind}={self.identifier}"
        return ident if self.namespace_uri is None else f"nsu={self.namespace_uri};{ident}"


def _identifier(kind: str, raw: str) -> str | int:
    if kind == "i":
        if not raw.isdigit():
            raise ValueError(f"numeric identifier 'i={raw}' is not an unsigned integer")
        value = int(raw)
        if value > 0xFFFFFFFF:
            raise ValueError(f"numeric identifier 'i={raw}' does not fit in UInt32")
        return value
    if not raw:
        raise ValueError(f"empty identifier '{kind}='")
    if kind == "g":
        try:
            uuid.UUID(raw)
        except ValueError as err:
            raise ValueError(f"'g={raw}' is not a GUID") from err
    elif kind == "b":
        try:
            base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"'b={raw}' is not base64") from err
    return raw


def parse_node_address(text: str, default_uri: str | None = None) -> NodeAddress:
    """Parse ``text``; ``default_uri`` is the namespace of a bare ``s=``/``g=``/``b=`` id
    (a bare ``i=`` id is namespace 0).

    Raises ``ValueError`` with the reason (namespace index > 0, bad identifier, ...).
    """
    text = text.strip()
    match = _NSU.match(text)
    if match:
        uri = match["uri"]
        kind = match["kind"]
        ident = _identifier(kind, match["id"])
        return NodeAddress(None if uri == STANDARD_NAMESPACE else uri, kind, ident)  # type: ignore[arg-type]
    match = _NS.match(text)
    if match:
        if int(match["index"]) != 0:
            raise ValueError(
                f"'{text}' uses a namespace index; address nodes by namespace URI instead "
                "('nsu=<uri>;s=...'), indexes can change when the server restarts"
            )
        return NodeAddress(None, match["kind"], _identifier(match["kind"], match["id"]))  # type: ignore[arg-type]
    match = _BARE.match(text)
    if match:
        kind = match["kind"]
        ident = _identifier(kind, match["id"])
        if kind == "i":
            return NodeAddress(None, "i", ident)  # bare numeric ids are standard nodes
        if default_uri is None:
            raise ValueError(
                f"'{text}' has no namespace: write 'nsu=<namespace uri>;{text}' or set the "
                "connector's namespace_uri"
            )
        return NodeAddress(default_uri, kind, ident)  # type: ignore[arg-type]
    raise ValueError(
        f"'{text}' is not an OPC UA node id (expected 'nsu=<uri>;s=<id>', 'nsu=<uri>;i=<n>' "
        "or 'i=<n>')"
    )
