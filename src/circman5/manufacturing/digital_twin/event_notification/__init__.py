"""The twin's event system (event API document).

* :mod:`.event_types`: categories, severities and the typed events.
* :mod:`.event_manager`: the ``event_manager`` singleton (subscribe, filter, publish, query).
* :mod:`.event_persistence`: SQLite storage with a write-behind queue.
* :mod:`.publishers` / :mod:`.subscribers`: per-component publishers and ready-made consumers.

Import from the submodules (``from ...event_notification.event_manager import event_manager``);
importing this package imports nothing else, opens no file and starts no thread.
"""
