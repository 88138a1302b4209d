"""Knowledge base: a Markdown folder -> SQLite FTS5 (BM25); bad files are logged skips, never a crash."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.interfaces import ChatMessage
from agent.kb import KnowledgeBase, build_messages, kb_index, split_passages

FAQ = Path(__file__).resolve().parents[2] / "examples" / "customer_support" / "faq"


def test_shop_faq_answers_policy_questions() -> None:
    kb = KnowledgeBase()
    report = kb.index_dir(FAQ)
    assert report.indexed == 3 and report.passages >= 7 and report.skipped == []
    cases = {
        "What is your return policy?": "30 days",
        "how long does shipping take": "3 to 5 business days",
        "Do you take PayPal?": "PayPal",
        "when can I talk to a person": "9 am to 6 pm",
        "is delivery free": "free for orders over 50 euros",
    }
    for q, fact in cases.items():
        top = kb.search(q, k=2)
        assert top and any(fact in p.text for p in top), (q, top)
    assert kb.search("the and of") == [] and kb.search("") == []
    kb.close()


def test_bad_files_are_logged_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "ok.md").write_text("# Hours\n\nWe open at nine.\n")
    (tmp_path / "image.md").write_bytes(b"\x89PNG\x00\x00binary")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "big.md").write_text("word " * 100_000)
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    locked = tmp_path / "locked.md"
    locked.write_text("secret")
    locked.chmod(0)
    kb = KnowledgeBase(tmp_path / "kb.sqlite", max_file_bytes=100_000)
    report = kb.index_dir(tmp_path)
    reasons = dict(report.skipped or [])
    assert report.indexed == 1 + (os.geteuid() == 0)  # root reads mode-0 files
    assert reasons["image.md"] == "binary content" and reasons["latin1.txt"] == "not UTF-8 text"
    assert reasons["big.md"].startswith("too large") and reasons["photo.jpg"].startswith("not a text document")
    assert "kb: skipped big.md" in caplog.text
    assert kb.search("when do you open")[0].text == "We open at nine."
    again = kb.index_dir(tmp_path)  # unchanged files are not re-indexed
    assert again.indexed == 0 and again.unchanged == report.indexed
    kb.close()
    with pytest.raises(ConfigError, match="not a folder"):
        KnowledgeBase().index_dir(tmp_path / "nope")


def test_passages_split_at_headings_and_long_paragraphs() -> None:
    parts = split_passages("# A\n\none. two.\n\n# B\n\n" + "Long sentence here. " * 80)
    assert parts[0] == ("A", "one. two.") and all(t == "B" for t, _ in parts[1:]) and len(parts) > 2
    assert all(len(p) <= 700 for _, p in parts)


def test_build_messages_puts_passages_before_the_user_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "kb.sqlite"
    assert kb_index(str(FAQ), str(db)) == 0 and "indexed 3 files" in capsys.readouterr().out
    kb = KnowledgeBase(db)
    msgs = [ChatMessage("system", "You are Ava."), ChatMessage("user", "Can I return shoes?")]
    out = build_messages(msgs, kb.search("Can I return shoes?"))
    assert [m.role for m in out] == ["system", "system", "user"] and "30 days" in out[1].content
    assert build_messages(msgs, []) == msgs
    kb.close()
    assert sqlite3.connect(db).execute("SELECT count(*) FROM files").fetchone()[0] == 3
