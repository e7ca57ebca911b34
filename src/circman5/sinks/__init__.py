"""Outputs: time series (InfluxDB, the embedded store), the outbox, MQTT events.

* :mod:`~circman5.sinks.line_protocol`: Samples and twin KPIs as InfluxDB line protocol;
* :mod:`~circman5.sinks.influxdb`: sinks for the v2 write API and InfluxDB 1.x;
* :mod:`~circman5.sinks.outbox`: disk-backed store-and-forward in front of every remote sink;
* :mod:`~circman5.sinks.embedded_store`: the local SQLite time-series store and its queries;
* :mod:`~circman5.sinks.mqtt_events`: events, state and status published over MQTT;
* :mod:`~circman5.sinks.timeseries`: :func:`open_series_output`, the time-series output as a whole;
* :mod:`~circman5.sinks.config`: the settings models; :mod:`~circman5.sinks.base`: the contracts
  (``Sink``); problems go to a :class:`circman5.reporting.ProblemReporter`.

Importing this package opens nothing; see ``docs/outputs.md``.
"""
