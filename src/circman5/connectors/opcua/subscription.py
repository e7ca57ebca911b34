"""The one subscription of a session and its monitored items (created in batches).

Notifications bypass asyncua's per-item event objects: :class:`Notifications` hands each
publish response's notification list to one callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from circman5.connectors.opcua.config import OpcUaConnectorSettings
from circman5.connectors.opcua.tags import CompiledTag

__all__ = ["Notifications", "create_subscription", "item_request", "monitor"]

_FILTER_UNSUPPORTED = {
    StatusCodes.BadMonitoredItemFilterUnsupported,
    StatusCodes.BadFilterNotAllowed,
    StatusCodes.BadMonitoredItemFilterInvalid,
    StatusCodes.BadDeadbandFilterInvalid,
}


class _NoHandler:
    """Handler mode without handler calls (publish_callback is replaced below)."""

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        return None


_NO_HANDLER = _NoHandler()


class Notifications(Subscription):
    """A subscription that passes each publish response straight to a callback."""

    def __init__(
        self,
        session: object,
        params: ua.CreateSubscriptionParameters,
        on_data: Callable[[list[object]], None],
    ) -> None:
        super().__init__(session, params, handler=_NO_HANDLER)  # type: ignore[arg-type]
        self._on_data = on_data

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        message = publish_result.NotificationMessage
        data = message.NotificationData
        if data:
            self.last_sequence_number = int(message.SequenceNumber)
            self._on_data(data)


async def create_subscription(
    client: Client, s: OpcUaConnectorSettings, on_data: Callable[[list[object]], None]
) -> Notifications:
    """The session's subscription (publishing interval, lifetime and keep-alive counts)."""
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = s.publishing_interval_ms
    params.RequestedLifetimeCount = s.lifetime_count
    params.RequestedMaxKeepAliveCount = s.keepalive_count
    params.MaxNotificationsPerPublish = s.max_notifications_per_publish
    params.PublishingEnabled = True
    params.Priority = 0
    subscription = Notifications(client.uaclient.session, params, on_data)
    await subscription.init()
    return subscription


async def monitor(
    subscription: Subscription,
    s: OpcUaConnectorSettings,
    tags: Sequence[CompiledTag],
    handles: dict[int, CompiledTag],
) -> list[tuple[CompiledTag, str]]:
    """Monitor ``tags`` in batches of ``monitored_items_batch_size``; fills ``handles`` (client
    handle -> tag) as it goes, so notifications can arrive meanwhile. Returns the tags that
    could not be monitored, with the server's reason. A server that cannot filter gets the
    item without the deadband."""
    failed: list[tuple[CompiledTag, str]] = []
    size = s.monitored_items_batch_size
    handle = 1
    for start in range(0, len(tags), size):
        chunk = tags[start : start + size]
        requests = []
        for tag in chunk:
            handles[handle] = tag
            requests.append(item_request(s, tag, handle, with_filter=True))
            handle += 1
        results = await subscription.create_monitored_items(requests)
        retry: list[ua.MonitoredItemCreateRequest] = []
        for request, result in zip(requests, results, strict=True):
            if not isinstance(result, ua.StatusCode):
                continue
            tag = handles[request.RequestedParameters.ClientHandle]
            if result.value in _FILTER_UNSUPPORTED:
                # The server cannot filter: subscribe without the deadband.
                retry.append(
                    item_request(
                        s, tag, request.RequestedParameters.ClientHandle, with_filter=False
                    )
                )
                continue
            failed.append((tag, result.name))
            del handles[request.RequestedParameters.ClientHandle]
        if retry:
            for request, result in zip(
                retry, await subscription.create_monitored_items(retry), strict=True
            ):
                if isinstance(result, ua.StatusCode):
                    tag = handles.pop(request.RequestedParameters.ClientHandle)
                    failed.append((tag, result.name))
    return failed


def item_request(
    s: OpcUaConnectorSettings, tag: CompiledTag, handle: int, with_filter: bool
) -> ua.MonitoredItemCreateRequest:
    """One monitored item: sampling interval, queue size, deadband filter (absolute or %)."""
    t = tag.settings
    read = ua.ReadValueId()
    read.NodeId = tag.nodeid
    read.AttributeId = AttributeIds.Value
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = (
        t.sampling_interval_ms if t.sampling_interval_ms is not None else s.sampling_interval_ms
    )
    params.QueueSize = t.queue_size if t.queue_size is not None else s.queue_size
    params.DiscardOldest = True
    if with_filter and t.deadband > 0:
        data_filter = ua.DataChangeFilter()
        data_filter.Trigger = ua.DataChangeTrigger.StatusValue
        if t.deadband_type == "percent":
            data_filter.DeadbandType = ua.DeadbandType.Percent
            data_filter.DeadbandValue = t.deadband
        else:
            data_filter.DeadbandType = ua.DeadbandType.Absolute
            data_filter.DeadbandValue = t.deadband / abs(t.scale)
        params.Filter = data_filter
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = read
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = params
    return request
