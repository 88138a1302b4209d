"""The application commands of `flowact-agent`: `kb index DIR`, `sessions`, `transcript ID [--json]`.

`agent.cli` adds them with `add_app_commands(sub)` and dispatches with `run_app_command(args)`.
"""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_KB_DB", "DEFAULT_RECORD_DB", "add_app_commands", "run_app_command"]

DEFAULT_RECORD_DB = "~/.local/share/flowact/record.sqlite"
DEFAULT_KB_DB = "~/.cache/flowact/kb.sqlite"


def add_app_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kb = sub.add_parser("kb", help="knowledge base: index a folder of Markdown/text files")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    idx = kb_sub.add_parser("index", help="index DIR into SQLite full-text search (FTS5, BM25)")
    idx.add_argument("dir")
    idx.add_argument("--db", default=DEFAULT_KB_DB)
    idx.add_argument("--max-file-bytes", type=int, default=1_000_000)
    q = kb_sub.add_parser("search", help="print the best passages for a question and the sentences said")
    q.add_argument("query")
    q.add_argument("--db", default=DEFAULT_KB_DB)
    q.add_argument("-k", type=int, default=3)

    ses = sub.add_parser("sessions", help="list recorded conversations")
    ses.add_argument("--db", default=DEFAULT_RECORD_DB)
    tr = sub.add_parser("transcript", help="print one recorded conversation")
    tr.add_argument("id", help="session id (or a unique prefix)")
    tr.add_argument("--db", default=DEFAULT_RECORD_DB)
    tr.add_argument("--json", action="store_true", help="machine-readable output")


def run_app_command(args: argparse.Namespace) -> int | None:
    """Run an application command; None if `args.command` is not one of them."""
    if args.command == "kb":
        from agent.kb import KnowledgeBase, kb_index

        if args.kb_command == "index":
            return kb_index(args.dir, args.db, max_file_bytes=args.max_file_bytes)
        kb = KnowledgeBase(args.db)
        try:
            found = kb.grounding(args.query, args.k)
            for p in found.passages:
                print(f"[{p.score:.2f}] {p.source} / {p.title}: {p.text}")
            none = "(none: not in the knowledge base, knowledge.unknown_line)" if found.unanswered else "(none)"
            print(f"answer: {' '.join(found.sentences)}" if found.sentences else f"answer: {none}")
        finally:
            kb.close()
        return 0
    if args.command == "sessions":
        from agent.record import sessions_command

        return sessions_command(args.db)
    if args.command == "transcript":
        from agent.record import transcript_command

        return transcript_command(args.db, args.id, as_json=args.json)
    return None
