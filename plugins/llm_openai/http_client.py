"""The HTTP client the openai plugin's SDK clients use."""

from __future__ import annotations

from typing import Any

__all__ = ["one_idle_connection_client"]


def one_idle_connection_client() -> Any:
    """openai's default HTTP client keeping at most one idle connection (its default keeps up to 100):
    one session asks one thing at a time; a request that overlapped another (the history's cache
    re-prime beside an answer) closes its connection when done instead of leaving it open for the
    rest of the session. Built on whichever HTTP library the installed openai uses (httpx, httpx2)."""
    import sys

    from openai import DefaultAsyncHttpxClient

    http = sys.modules[DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]]
    return DefaultAsyncHttpxClient(limits=http.Limits(max_connections=8, max_keepalive_connections=1))
