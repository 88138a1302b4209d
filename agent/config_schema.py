"""The JSON schema of a config YAML file (`flowact-agent schema config`).

Top level: `session` plus one optional section per plugin kind (`tts`, `generator`, `sink`
required). Each plugin section is a `oneOf` over the registered plugins of its kind: each
alternative is that plugin's pydantic `Config` schema with `type` fixed to the plugin's name. A
plugin that cannot be imported here (its extra is not installed) is listed with `type` only.
Checks across fields that JSON schema cannot state (e.g. whole audio samples per chunk) are left
to `load_config`.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from agent.config import APP_SECTIONS, PLUGIN_SECTIONS, REQUIRED_SECTIONS, SessionConfig
from agent.errors import ConfigError
from agent.registry import available, load_plugin, plugin_config_class

__all__ = ["config_file_schema"]

_REF = "#/$defs/{model}"


def config_file_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) that every valid config YAML file satisfies."""
    plugins: dict[tuple[str, str], type[BaseModel] | None] = {}
    for kind in PLUGIN_SECTIONS:
        for name in sorted(available(kind)):
            try:
                plugins[kind, name] = plugin_config_class(load_plugin(kind, name))
            except ConfigError:  # its extra is not installed: only its name is known
                plugins[kind, name] = None
    models: list[type[BaseModel]] = [
        SessionConfig, *APP_SECTIONS.values(), *{m for m in plugins.values() if m is not None}
    ]
    refs, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    sections: dict[str, Any] = {"session": refs[SessionConfig, "validation"]}
    sections |= {name: refs[model, "validation"] for name, model in APP_SECTIONS.items()}
    for kind in PLUGIN_SECTIONS:
        variants = []
        for (k, name), model in plugins.items():
            if k != kind:
                continue
            key = f"{kind}.{name}"
            defs[key] = _with_type(defs, refs[model, "validation"] if model else None, name)
            variants.append({"$ref": _REF.format(model=key)})
        sections[kind] = {"oneOf": variants, "description": f"the {kind} plugin, chosen by `type`"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "flowact-agent config file",
        "type": "object",
        "properties": sections,
        "required": list(REQUIRED_SECTIONS),
        "additionalProperties": False,
        "$defs": defs,
    }


def _with_type(defs: dict[str, Any], ref: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The plugin's Config schema with a required `type: <name>` field added."""
    type_field = {"const": name, "description": "the plugin's registered name"}
    if ref is None:
        return {"type": "object", "properties": {"type": type_field}, "required": ["type"],
                "description": f"plugin {name!r} is not installed here: install its extra to see its fields"}
    schema: dict[str, Any] = copy.deepcopy(defs[ref["$ref"].rsplit("/", 1)[-1]])
    schema["properties"] = {"type": type_field, **schema.get("properties", {})}
    schema["required"] = ["type", *schema.get("required", [])]
    return schema
