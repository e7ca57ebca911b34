"""``status_provider``: the connectors' statuses as the API's ``/api/connectors`` lists them."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from circman5.api.context import status_provider
from circman5.connectors.status import ConnectorStatus


@dataclass
class _Holder:
    status: ConnectorStatus | MappingProxyType[str, object]


def test_a_connector_status_is_listed_by_its_snapshot_and_a_mapping_as_a_copy() -> None:
    status = ConnectorStatus(name="plc", protocol="opcua", connected=True, samples_in=3)
    plain = MappingProxyType({"name": "meter", "connected": False})
    provide = status_provider([_Holder(status), _Holder(plain)])

    first, second = provide()
    assert first == status.snapshot()
    assert (first["name"], first["connected"], first["samples_in"]) == ("plc", True, 3)
    assert second == {"name": "meter", "connected": False}
    assert isinstance(second, dict)

    status.samples_in = 4  # each call reads the live status
    assert provide()[0]["samples_in"] == 4
