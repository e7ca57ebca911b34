"""The output settings models: defaults, validation and secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from circman5.sinks.config import (
    EmbeddedStoreSettings,
    InfluxDB1Settings,
    InfluxDB2Settings,
    MqttOutputSettings,
    MqttTlsSettings,
    OutboxSettings,
    OutputSettings,
)


def test_defaults_use_the_embedded_store_and_no_mqtt() -> None:
    settings = OutputSettings()
    assert (settings.influxdb, settings.influxdb1, settings.mqtt) == (None, None, None)
    assert settings.embedded.mode == "fallback"
    assert settings.series.sample_measurement == "sample"


def test_unknown_keys_and_bad_values_fail_with_the_key() -> None:
    with pytest.raises(ValidationError, match="bukcet"):
        InfluxDB2Settings.model_validate({"bukcet": "x"})
    with pytest.raises(ValidationError, match="url"):
        InfluxDB2Settings(url="influx:8086")
    with pytest.raises(ValidationError, match="not both"):
        OutputSettings(influxdb=InfluxDB2Settings(), influxdb1=InfluxDB1Settings())
    with pytest.raises(ValidationError, match="topic_prefix"):
        MqttOutputSettings(topic_prefix="plant/#")
    with pytest.raises(ValidationError, match="site"):
        MqttOutputSettings(site="a/b")
    with pytest.raises(ValidationError, match="go together"):
        MqttTlsSettings(cert_file="client.pem")
    with pytest.raises(ValidationError, match="backoff"):
        OutboxSettings(backoff_initial_s=10, backoff_max_s=1)
    with pytest.raises(ValidationError, match="data directory"):
        EmbeddedStoreSettings(file="../elsewhere.sqlite3")


def test_mqtt_derived_names_and_protocol_spelling() -> None:
    settings = MqttOutputSettings.model_validate(
        {"topic_prefix": "plant/twin", "site": "s1", "line": "l2", "protocol": 5}
    )
    assert settings.protocol == "5"
    assert settings.base_topic == "plant/twin/s1/l2"
    assert settings.effective_client_id == "circman5-s1-l2"
    assert MqttOutputSettings(protocol="3.1.1", client_id="me").effective_client_id == "me"


def test_secrets_stay_out_of_reprs() -> None:
    v2 = InfluxDB2Settings(token="s3cr3t-token")
    v1 = InfluxDB1Settings(username="u", password="s3cr3t-pass")
    mqtt = MqttOutputSettings(username="u", password="s3cr3t-mqtt")
    for model, secret in ((v2, "s3cr3t-token"), (v1, "s3cr3t-pass"), (mqtt, "s3cr3t-mqtt")):
        assert secret not in repr(model) and secret not in str(model.model_dump())
    assert v2.token.get_secret_value() == "s3cr3t-token"
