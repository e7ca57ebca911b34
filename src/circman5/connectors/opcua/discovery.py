"""Browse discovery (``[[connectors.discover]]``): Variables below a root whose browse path
matches a pattern become tags, named by the rule's path template.

Naming follows the MQTT wildcard rules (docs/tag_mapping.md): ``{name}`` (the browse name) and
``{1}``, ``{2}``, ... (what the ``*`` wildcards matched) are put into the template in snake case
(``SiliconWafer`` -> ``silicon_wafer``); every segment of the path must then be a valid path
segment, so a name of digits only is fine inside a named segment (``seq_{1}`` with ``0`` is
``seq_0``) and refused as a segment of its own. A refused node is counted (``topics_refused``)
and reported as a ``PathRefused`` warning. A path that another tag already feeds is skipped
and reported (``DuplicatePath``).

The cap: a rule adds at most ``max_nodes`` tags. Matching nodes beyond it are counted
(``paths_over_limit``) and not subscribed; the first time it happens the connector logs one
WARNING and publishes one ``DiscoveryPathLimit`` error event with the count.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

from circman5.connectors.mqtt.topics import is_path_part
from circman5.connectors.opcua.config import OpcUaConnectorSettings, OpcUaDiscovery, OpcUaTag
from circman5.connectors.opcua.nodeid import parse_node_address
from circman5.connectors.opcua.tags import CompiledTag
from circman5.connectors.opcua.ua_nodes import address_of, node_id
from circman5.connectors.status import ConnectorStatus
from circman5.reporting import RateLimitedReporter

__all__ = ["BrowseDiscovery", "discovered_path", "match_levels", "snake_case"]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_BROWSABLE = (ua.NodeClass.Object, ua.NodeClass.Variable)


def snake_case(name: str) -> str:
    """``SiliconWafer`` -> ``silicon_wafer``; other characters than letters and digits -> ``_``."""
    text = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()


def discovered_path(template: str, name: str, captures: Sequence[str]) -> str:
    """The twin path of a node named ``name`` whose ``*`` wildcards matched ``captures``.

    ``ValueError`` with the reason when the names cannot make a twin path.
    """
    values = {"name": snake_case(name)}
    for number, capture in enumerate(captures, start=1):
        values[str(number)] = snake_case(capture)
    for key in _PLACEHOLDER.findall(template):
        if not values.get(key):
            raise ValueError(f"the browse name for {{{key}}} has no letters or digits")
    path = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    for segment in path.split("."):
        if not is_path_part(segment):
            raise ValueError(
                f"browse name(s) would make '{segment}' a segment of the twin path '{path}', and "
                "a segment must start with a letter or '_' (give it a name in the path "
                "template, e.g. 'seq_{1}')"
            )
    return path


def compile_glob(pattern: str) -> list[re.Pattern[str] | None]:
    """Per pattern level a regex with one group per ``*``; None for ``**``."""
    levels: list[re.Pattern[str] | None] = []
    for level in pattern.strip("/").split("/"):
        if level == "**":
            levels.append(None)
            continue
        regex = "".join("(.*)" if ch == "*" else re.escape(ch) for ch in level)
        levels.append(re.compile(f"^{regex}$"))
    return levels


def match_levels(
    levels: Sequence[re.Pattern[str] | None], names: Sequence[str]
) -> tuple[bool, bool, tuple[str, ...]]:
    """(full match, prefix could still match deeper, captures) of browse ``names``."""
    captures: list[str] = []
    for index, name in enumerate(names):
        if index >= len(levels):
            return False, False, ()
        level = levels[index]
        if level is None:
            # '**': match anything from here (captures only come from '*').
            rest = levels[index + 1 :]
            for skip in range(len(names) - index + 1):
                full, _, more = match_levels(rest, names[index + skip :])
                if full:
                    return True, True, (*captures, *more)
            return False, True, ()
        match = level.match(name)
        if match is None:
            return False, False, ()
        captures.extend(match.groups())
    full = len(names) == len(levels) or (len(levels) == len(names) + 1 and levels[-1] is None)
    return full, True, tuple(captures)


def _tag_settings(rule: OpcUaDiscovery, address: str, path: str) -> OpcUaTag:
    return OpcUaTag(
        address=address,
        path=path,
        data_type=rule.data_type,
        scale=rule.scale,
        offset=rule.offset,
        unit=rule.unit,
        deadband=rule.deadband,
        deadband_type=rule.deadband_type,
        sampling_interval_ms=rule.sampling_interval_ms,
        queue_size=rule.queue_size,
        stale_timeout_s=rule.stale_timeout_s,
        writable=rule.writable,
        timestamp_outside_window=rule.timestamp_outside_window,
    )


class BrowseDiscovery:
    """Runs a connector's discovery rules at every (re)connect; lives as long as the connector."""

    def __init__(
        self,
        settings: OpcUaConnectorSettings,
        compile_tag: Callable[[OpcUaTag], CompiledTag],
        problems: RateLimitedReporter,
        status: ConnectorStatus,
        log: logging.Logger,
    ) -> None:
        self._settings = settings
        self._compile = compile_tag
        self._problems = problems
        self._status = status
        self._log = log
        self._limit_reported = False

    async def discover(
        self, client: Client, indexes: dict[str, int], taken: set[str]
    ) -> list[CompiledTag]:
        """The tags of every rule; ``taken``: paths already fed (grows with what is found)."""
        found: list[CompiledTag] = []
        for rule in self._settings.discover:
            try:
                found += await self._browse(client, rule, indexes, taken)
            except UaStatusCodeError as err:
                self._problems.note(
                    "DiscoveryFailed",
                    f"opcua {self._settings.name}: browsing {rule.root} failed: {err}",
                    {"root": rule.root},
                )
        return found

    async def _browse(
        self, client: Client, rule: OpcUaDiscovery, indexes: dict[str, int], taken: set[str]
    ) -> list[CompiledTag]:
        root = parse_node_address(rule.root, self._settings.namespace_uri)
        if root.namespace_uri is not None and root.namespace_uri not in indexes:
            raise UaStatusCodeError(StatusCodes.BadNodeIdUnknown)  # type: ignore[no-untyped-call]
        root_id = node_id(root, 0 if root.namespace_uri is None else indexes[root.namespace_uri])
        namespaces = {index: uri for uri, index in indexes.items()}
        levels = compile_glob(rule.pattern)
        found: list[CompiledTag] = []
        over: list[tuple[ua.NodeId, str]] = []
        frontier: list[tuple[ua.NodeId, tuple[str, ...]]] = [(root_id, ())]
        depth = 0
        while frontier and depth < rule.max_depth:
            depth += 1
            nodes = [client.get_node(parent) for parent, _ in frontier]
            results = await client.browse_nodes(nodes)
            next_frontier: list[tuple[ua.NodeId, tuple[str, ...]]] = []
            for (_, names), (_, result) in zip(frontier, results, strict=True):
                for ref in result.References or []:
                    if not ref.IsForward:
                        continue
                    child_names = (*names, ref.BrowseName.Name)
                    full, deeper, captures = match_levels(levels, child_names)
                    if ref.NodeClass == ua.NodeClass.Variable and full:
                        path = self._path(rule, ref.NodeId, ref.BrowseName.Name, captures, taken)
                        if path is not None and len(found) >= rule.max_nodes:
                            over.append((ref.NodeId, path))
                        elif path is not None:
                            taken.add(path)
                            address = str(address_of(ref.NodeId, namespaces))
                            found.append(self._compile(_tag_settings(rule, address, path)))
                    if deeper and ref.NodeClass in _BROWSABLE:
                        child = ua.NodeId(
                            ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType
                        )
                        next_frontier.append((child, child_names))
            frontier = next_frontier
        if over:
            self._over_limit(rule, over)
        return found

    def _path(
        self,
        rule: OpcUaDiscovery,
        node: ua.NodeId,
        name: str,
        captures: tuple[str, ...],
        taken: set[str],
    ) -> str | None:
        """The node's twin path, or None (refused or already fed: counted and reported)."""
        try:
            path = discovered_path(rule.path, name, captures)
        except ValueError as err:
            self._status.topics_refused += 1
            self._problems.note(
                "PathRefused",
                f"opcua {self._settings.name}: discovered node {node} refused: {err}",
                {"address": str(node), "reason": str(err)},
                "warning",
            )
            return None
        if path in taken:
            self._problems.note(
                "DuplicatePath",
                f"opcua {self._settings.name}: discovered node {node} maps to '{path}', "
                "which another tag already feeds; skipped",
                {"path": path},
            )
            return None
        return path

    def _over_limit(self, rule: OpcUaDiscovery, over: list[tuple[ua.NodeId, str]]) -> None:
        self._status.paths_over_limit += len(over)
        if self._limit_reported:
            return
        self._limit_reported = True
        first_node, first_path = over[0]
        message = (
            f"opcua connector {self._settings.name}: discovery of '{rule.pattern}' under "
            f"{rule.root} found {len(over)} node(s) beyond its limit of {rule.max_nodes} "
            f"(max_nodes); they are not subscribed (first: {first_node} -> {first_path})"
        )
        self._log.warning("%s", message)
        self._problems.note(
            "DiscoveryPathLimit",
            message,
            {
                "limit": rule.max_nodes,
                "over_limit": len(over),
                "root": rule.root,
                "pattern": rule.pattern,
                "address": str(first_node),
                "path": first_path,
            },
            "error",
        )
