"""Configuration of the MQTT control channel (secrets never live here: they come from env)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MqttControlConfig"]

_TOPIC_SEGMENT = r"^[A-Za-z0-9_\-]{1,64}$"


class MqttControlConfig(BaseModel):
    """Broker address, topic naming and reconnect policy.

    Credentials and TLS material are read from the environment variables named here (so a YAML file
    can be committed): `FLOWACT_MQTT_USERNAME`, `FLOWACT_MQTT_PASSWORD`, `FLOWACT_MQTT_TLS` (1/true),
    `FLOWACT_MQTT_CA_FILE`, `FLOWACT_MQTT_CERT_FILE`, `FLOWACT_MQTT_KEY_FILE` by default.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    agent: str = Field("avatar", pattern=_TOPIC_SEGMENT, description="agent id: topics are <prefix>/<agent>/...")
    prefix: str = Field("flowact", pattern=_TOPIC_SEGMENT)
    session: str = Field(
        "", pattern=r"^[A-Za-z0-9_\-]{0,64}$", description="optional: topics become <prefix>/<agent>/<session>/..."
    )
    client_id: str = Field("", max_length=64, description="empty: flowact-<agent>-<random>")
    keepalive_s: int = Field(30, ge=5, le=3600)
    tls: bool = False
    tls_insecure: bool = Field(False, description="skip hostname verification (self-signed test brokers)")
    connect_timeout_s: float = Field(5.0, gt=0, description="start() waits this long for the first connection")
    reconnect_min_s: float = Field(0.25, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)
    command_queue: int = Field(32, ge=1, le=1024, description="accepted commands waiting for the session")
    outgoing_queue: int = Field(256, ge=1, le=10000, description="events/telemetry buffered while offline")
    username_env: str = "FLOWACT_MQTT_USERNAME"
    password_env: str = "FLOWACT_MQTT_PASSWORD"
    tls_env: str = "FLOWACT_MQTT_TLS"
    ca_file_env: str = "FLOWACT_MQTT_CA_FILE"
    cert_file_env: str = "FLOWACT_MQTT_CERT_FILE"
    key_file_env: str = "FLOWACT_MQTT_KEY_FILE"
