"""Checkpoints: weights in safetensors, the config and metadata in a JSON file beside them.

`save(model, "run/model.safetensors", meta)` writes `run/model.safetensors` and `run/model.json`
(`{"format": "flowact-mmdit", "version": 1, "config": {...}, "meta": {...}}`). `load` accepts
either path (or the stem) and raises `ModelError` naming what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flowact.errors import ModelError
from flowact.model.config import MMDiTConfig
from flowact.model.mmdit import MMDiT

__all__ = ["checkpoint_paths", "load_checkpoint", "save_checkpoint"]

FORMAT = "flowact-mmdit"
VERSION = 1


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights .safetensors, config .json) for a checkpoint given by either file or their stem."""
    p = Path(path).expanduser()
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def save_checkpoint(model: MMDiT, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    weights, config = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = weights.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(weights)
    doc = {"format": FORMAT, "version": VERSION, "config": model.cfg.to_dict(), "meta": meta or {}}
    config.write_text(json.dumps(doc, indent=1))
    return weights


def load_checkpoint(path: str | Path) -> tuple[MMDiT, dict[str, Any]]:
    """(model in eval mode, meta) or `ModelError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, config = checkpoint_paths(path)
    for f in (weights, config):
        if not f.is_file():
            raise ModelError(f"checkpoint file not found: {f}")
    try:
        doc = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{config}: not a readable JSON checkpoint config ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("config"), dict):
        raise ModelError(f"{config}: not a {FORMAT} checkpoint config")
    if doc.get("version") != VERSION:
        raise ModelError(f"{config}: checkpoint version {doc.get('version')} is not supported (want {VERSION})")
    cfg = MMDiTConfig.from_dict(doc["config"])
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{weights}: cannot read safetensors weights ({e})") from e
    model = MMDiT(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{weights}: weights do not match the config ({str(e).splitlines()[0]})") from e
    model.eval()
    meta = doc.get("meta") or {}
    return model, dict(meta)
