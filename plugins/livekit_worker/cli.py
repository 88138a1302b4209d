"""Command line of the dispatch worker (`flowact-agent worker` delegates here)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from flowact.errors import FlowActError, UserError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flowact-agent worker",
                                description="serve dispatched LiveKit rooms (one avatar session per room)")
    p.add_argument("--config", "-c", required=True, help="worker file (see examples/fleet/worker.yaml)")
    p.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", default="json", choices=["json", "text"],
                   help="json: one object per line with job_id/room fields (default); text: for a terminal")
    args = p.parse_args(argv)
    handler = logging.StreamHandler()
    if args.log_format == "json":
        from plugins.livekit_worker.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    try:
        from plugins.livekit_worker.config import load_worker_config

        with contextlib.ExitStack() as stack:
            if load_worker_config(args.config).metrics_port:
                from plugins.livekit_worker.metrics import enable_multiprocess

                stack.enter_context(enable_multiprocess())  # before livekit-agents imports prometheus_client
            from plugins.livekit_worker.server import run_worker

            return run_worker(args.config)
    except FlowActError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UserError) else 1
