"""Which share of an OPC UA connector's tags a process monitors (``workers = N``).

A node belongs to share ``k`` of ``N`` (1-based) by a stable hash of its address by namespace
URI (``nsu=<uri>;s=<id>``): BLAKE2b, so the split is the same in every process and after every
restart (Python's ``hash()`` is salted per process), it does not depend on the order of the tags
in the file or on the server's namespace indexes, and a worker's outbox keeps holding the same
tags. Configured and discovered tags are split by the same rule; each worker browses for itself
and keeps its share of what it finds.
"""

from __future__ import annotations

import hashlib

__all__ = ["share_of"]


def share_of(address: str, shares: int) -> int:
    """The share (1..``shares``) that monitors the node at ``address``."""
    digest = hashlib.blake2b(address.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shares + 1
