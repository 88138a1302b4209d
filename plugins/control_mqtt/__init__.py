"""MQTT control channel: commands in, telemetry and events out (aiomqtt)."""

from plugins.control_mqtt.config import MqttControlConfig
from plugins.control_mqtt.control import COMMAND_KINDS, MqttControl

__all__ = ["COMMAND_KINDS", "MqttControl", "MqttControlConfig"]
