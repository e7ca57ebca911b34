"""Our URI-based node addresses to asyncua ``NodeId``s and back, for one session's indexes."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from asyncua import ua

from circman5.connectors.opcua.nodeid import IdKind, NodeAddress

__all__ = ["address_of", "node_id"]

_KIND_TYPES = {
    "i": ua.NodeIdType.Numeric,
    "s": ua.NodeIdType.String,
    "g": ua.NodeIdType.Guid,
    "b": ua.NodeIdType.ByteString,
}
_TYPE_KINDS: dict[ua.NodeIdType, IdKind] = {
    ua.NodeIdType.Numeric: "i",
    ua.NodeIdType.TwoByte: "i",
    ua.NodeIdType.FourByte: "i",
    ua.NodeIdType.String: "s",
    ua.NodeIdType.Guid: "g",
    ua.NodeIdType.ByteString: "b",
}


def node_id(node: NodeAddress, index: int) -> ua.NodeId:
    """``node`` as a NodeId in namespace ``index`` (its URI's index in this session)."""
    identifier: Any = node.identifier  # asyncua's NodeId takes one type per identifier kind
    if node.kind == "g":
        identifier = uuid.UUID(str(identifier))
    elif node.kind == "b":
        identifier = base64.b64decode(str(identifier))
    return ua.NodeId(identifier, ua.Int16(index), _KIND_TYPES[node.kind])


def address_of(node: ua.NodeId, namespaces: dict[int, str]) -> NodeAddress:
    """A browsed ``node`` as an address by namespace URI (``namespaces``: index -> URI)."""
    identifier = node.Identifier
    return NodeAddress(
        None if node.NamespaceIndex == 0 else namespaces.get(node.NamespaceIndex),
        _TYPE_KINDS.get(node.NodeIdType, "s"),
        identifier if isinstance(identifier, int) else str(identifier),
    )
