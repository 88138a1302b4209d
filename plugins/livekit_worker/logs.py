"""JSON log lines for the worker and its jobs: one object per record, with the record's context fields.

Job processes' records reach the worker process through livekit-agents' log queue with their extra
fields (livekit-agents adds `job_id`, `room`, `room_id`, ...; ours add `job_id`, `room`, `persona`,
`reason`), so every line of a job says which room it belongs to.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

__all__ = ["JsonFormatter"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """`{"t": ..., "level": ..., "logger": ..., "msg": ..., <context fields>}`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "t": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and isinstance(value, str | int | float | bool):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)
