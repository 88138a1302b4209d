"""A knowledge base: a folder of Markdown/text files -> SQLite FTS5 (BM25) passages for the prompt.

`KnowledgeBase(db).index_dir(folder)` splits each file into passages (Markdown headings and blank
lines; long paragraphs cut at sentence ends), and stores them in an FTS5 table. Binary files, files
larger than `max_file_bytes`, undecodable or unreadable files are skipped with a logged reason,
never a crash. Re-indexing replaces a file's passages only when its size or mtime changed.
`search(query, k)` returns the best passages (BM25). `grounding(query, k)` adds the extractive
step: the sentences of those passages ranked against the question (BM25 again, over the sentences,
title words counted), so the answer can carry the best one or two sentences word for word instead
of a small model's rewording of whole passages. `context_message(...)` is the system message the
session puts before the user's message. `flowact-agent kb index DIR` runs `kb_index`.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import ConfigError
from agent.history import before_last_user
from agent.interfaces import ChatMessage

__all__ = ["QUOTE", "Grounding", "IndexReport", "KnowledgeBase", "KnowledgeConfig", "Passage", "asks",
           "build_messages", "kb_index", "quote_of", "split_sentences"]

log = logging.getLogger("agent.kb")
SUFFIXES = (".md", ".markdown", ".txt", ".rst")
MAX_PASSAGE_CHARS = 700
_WORD = re.compile(r"[A-Za-z0-9]+")
QUOTE = "knowledge_quote"  # ChatMessage.name of the system message that carries the sentences to say
_QUOTE_LEAD = ("Reply to the user's next message with exactly this text from the knowledge base, word for word, "
               "and nothing else: ")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[\"'(A-Z0-9])")
_STOP = frozenset("a an and are as at be by can do does for from get got had has have how i in is it me my of on or "
                  "our the to what when where which who why will with you your not no yet still just s t don doesn "
                  "didn hasn haven isn wasn".split())
# Words of asking, not of the subject ("how long", "please tell me"): left out of the match.
_ASKING = frozenset("hi hello hey please thanks thank long much many often soon tell know want need would could "
                    "should there this that help today now going doing fine ok okay great nice".split())
# A turn asks for something (a question or a request, not thanks or a goodbye) when it ends with "?", opens
# with one of these words (after a greeting or "so", "and", "okay"), or carries a request phrase.
_QUESTION_OPENERS = frozenset("what what's whats who who's where where's when when's why how how's which whose do "
                              "does did is are was were can could will would should may might shall have has "
                              "any".split())
# Words of a question about the assistant itself ("what's your name?", "are you a robot?"): its system
# prompt answers those, not the knowledge base.
_ABOUT_AGENT = frozenset("name names called robot bot chatbot ai artificial intelligence machine computer program "
                         "assistant avatar yourself".split())
_LEAD_INS = frozenset("so and also okay ok well hi hello hey um uh oh then but".split())
_REQUEST = re.compile(r"\b(i want|i'd like|i would like|i need|i'm looking for|i am looking for|tell me|"
                      r"is there|are there)\b", re.IGNORECASE)


class KnowledgeConfig(BaseModel):
    """`knowledge:` section: a folder indexed at startup, k passages per user turn."""

    model_config = ConfigDict(extra="forbid")

    dir: str = Field(description="folder of Markdown/text files")
    db: str = Field("~/.cache/flowact/kb.sqlite", description="SQLite index (re-indexed when files change)")
    k: int = Field(2, ge=1, le=10, description="passages searched per user turn")
    max_file_bytes: int = Field(1_000_000, ge=1024)
    answer: Literal["sentences", "passages"] = Field(
        "sentences",
        description="sentences: the passages' sentences that best match the question go into the prompt, to be "
                    "said as written (small models keep the facts); passages: the whole passages, worded by the model",
    )
    max_answer_chars: int = Field(240, ge=60, le=2000, description="length bound of the quoted sentences (speech)")
    unknown_line: str | None = Field(
        "[concerned:0.3] I'm sorry, I don't have information about that. Would you like me to connect you with "
        "a colleague?",
        description="with answer: sentences, said as written when a question's subject is not in the knowledge "
                    "base and no tool answers it (a small model would invent an answer); null: the model answers",
    )


@dataclass(frozen=True, slots=True)
class Passage:
    source: str
    title: str
    text: str
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Grounding:
    """What the knowledge base knows about one question: the passages and their best sentences."""

    passages: tuple[Passage, ...]
    sentences: tuple[str, ...]
    # the question is about something (it has subject words) that no sentence here answers
    unanswered: bool = False


@dataclass(slots=True)
class IndexReport:
    indexed: int = 0
    unchanged: int = 0
    passages: int = 0
    skipped: list[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        self.skipped = self.skipped or []


def split_passages(text: str, max_chars: int = MAX_PASSAGE_CHARS) -> list[tuple[str, str]]:
    """(title, passage) pairs: paragraphs under the nearest Markdown heading, long ones cut at sentences."""
    out: list[tuple[str, str]] = []
    title = ""
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        if not lines:
            continue
        if lines[0].lstrip().startswith("#"):
            title = lines[0].lstrip("# ").strip()
            lines = lines[1:]
        body = " ".join(ln.strip().lstrip("-* ").strip() for ln in lines)
        while body:
            if len(body) <= max_chars:
                out.append((title, body))
                break
            cut = max(body.rfind(". ", 0, max_chars), body.rfind("? ", 0, max_chars))
            cut = cut + 1 if cut > max_chars // 3 else max_chars
            out.append((title, body[:cut].strip()))
            body = body[cut:].strip()
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences (and `;` clauses, each a complete statement in FAQ prose) of one passage."""
    return [p.strip() for p in _SENTENCE_END.split(text) if p.strip()]


def _subject_words(query: str) -> list[str]:
    """The question's words about its subject (stop words and words of asking dropped), at most 16."""
    return list(dict.fromkeys(w for w in _WORD.findall(query.lower()) if w not in _STOP and w not in _ASKING))[:16]


def _match_expr(words: Sequence[str]) -> str:
    """An FTS5 query: the words OR-ed; "" when there are none."""
    return " OR ".join(f'"{w}"' for w in words)


class KnowledgeBase:
    def __init__(self, db_path: str | Path = ":memory:", *, max_file_bytes: int = 1_000_000) -> None:
        self.db_path = str(db_path) if str(db_path) == ":memory:" else str(Path(db_path).expanduser())
        self.max_file_bytes = max_file_bytes
        try:
            if self.db_path != ":memory:":
                Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.db_path, check_same_thread=False)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"kb: cannot open the index {self.db_path}: {e}") from e
        try:
            self.db.executescript(
                "CREATE VIRTUAL TABLE IF NOT EXISTS passages USING fts5(source UNINDEXED, title, text,"
                " tokenize='porter unicode61');"
                "CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, size INTEGER, mtime REAL);"
            )
        except sqlite3.OperationalError as e:
            raise ConfigError(f"kb: SQLite without FTS5 ({e}); use a Python built with FTS5") from e
        # A scratch index of the candidate passages' sentences, rebuilt per question (a few rows).
        self._scratch = sqlite3.connect(":memory:", check_same_thread=False)
        self._scratch.execute("CREATE VIRTUAL TABLE sentences USING fts5(title, text, prank UNINDEXED, pos UNINDEXED,"
                              " tokenize='porter unicode61')")
        self._lock = threading.Lock()

    def close(self) -> None:
        self.db.close()
        self._scratch.close()

    def index_dir(self, folder: str | Path) -> IndexReport:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise ConfigError(f"kb: {root} is not a folder")
        report = IndexReport()
        skipped = report.skipped
        assert skipped is not None
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = str(path.relative_to(root))
            reason = self._index_file(path, rel, report)
            if reason:
                skipped.append((rel, reason))
                log.warning("kb: skipped %s: %s", rel, reason)
        self.db.commit()
        log.info("kb: %d files indexed, %d unchanged, %d passages, %d skipped", report.indexed, report.unchanged,
                 report.passages, len(skipped))
        return report

    def _index_file(self, path: Path, rel: str, report: IndexReport) -> str:
        if path.suffix.lower() not in SUFFIXES:
            return f"not a text document ({path.suffix or 'no suffix'})"
        try:
            st = path.stat()
            if st.st_size > self.max_file_bytes:
                return f"too large ({st.st_size} bytes > {self.max_file_bytes})"
            row = self.db.execute("SELECT size, mtime FROM files WHERE path=?", (rel,)).fetchone()
            if row is not None and row == (st.st_size, st.st_mtime):
                report.unchanged += 1
                return ""
            raw = path.read_bytes()
        except OSError as e:
            return f"unreadable ({e.strerror or e})"
        if b"\x00" in raw[:4096]:
            return "binary content"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8 text"
        self.db.execute("DELETE FROM passages WHERE source=?", (rel,))
        parts = split_passages(text)
        self.db.executemany("INSERT INTO passages(source, title, text) VALUES (?, ?, ?)",
                            [(rel, t, p) for t, p in parts])
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (rel, st.st_size, st.st_mtime))
        report.indexed += 1
        report.passages += len(parts)
        return ""

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The k best passages for free text (words OR-ed, stop words dropped; BM25, title weighted 2x)."""
        match = _match_expr(_subject_words(query))
        if not match:
            return []
        rows = self.db.execute(
            "SELECT source, title, text, bm25(passages, 0.0, 2.0, 1.0) AS s FROM passages WHERE passages MATCH ?"
            " ORDER BY s LIMIT ?", (match, k),
        ).fetchall()
        return [Passage(src, title, text, -score) for src, title, text, score in rows]

    def _idf(self, words: Sequence[str]) -> dict[str, float]:
        """Each word's inverse document frequency over all passages (BM25's, kept positive; 0 for a word
        no passage has, stemmed as the index stems it)."""
        n = self.db.execute("SELECT count(*) FROM passages").fetchone()[0]
        df = {w: self.db.execute("SELECT count(*) FROM passages WHERE passages MATCH ?", (f'"{w}"',)).fetchone()[0]
              for w in words}
        return {w: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) if d else 0.0 for w, d in df.items()}


    def grounding(self, query: str, k: int = 2, *, max_chars: int = 240, max_sentences: int = 2) -> Grounding:
        """The k best passages and the sentences among them that best answer `query`: the best one,
        plus the next best of the same passage written after it (one topic: "is shipping free" is not
        answered by a sentence about cancelling free of charge; the answer first: "how long does express
        shipping take" does not begin with standard shipping) when it scores at least half as well and
        fits in `max_chars`. A sentence's heading counts as its words too.

        No sentences, and `unanswered`, when the question is about things the knowledge base does not
        answer: fewer than half of its subject words occur in it ("a delivery on a Sunday morning" is
        not answered by a sentence that only shares "delivery"), or fewer than half occur in the chosen
        sentences and their heading ("do you offer student discounts" is not answered by "we do not offer
        payment on delivery", the best match of "offer"). The passages are still there for a model to word."""
        passages = tuple(self.search(query, k))
        words = _subject_words(query)
        if not words or set(words) <= _ABOUT_AGENT:
            return Grounding(passages, ())  # nothing asked about (a greeting, thanks), or about the assistant
        weight = self._idf(words)
        if not passages or 2 * sum(weight[w] > 0.0 for w in words) < len(words):
            return Grounding(passages, (), unanswered=True)
        with self._lock:
            self._scratch.execute("DELETE FROM sentences")
            self._scratch.executemany(
                "INSERT INTO sentences(title, text, prank, pos) VALUES (?, ?, ?, ?)",
                [(p.title, sent, rank, pos) for rank, p in enumerate(passages)
                 for pos, sent in enumerate(split_sentences(p.text))],
            )
            rows = self._scratch.execute("SELECT rowid, text, prank, pos FROM sentences").fetchall()
            in_text = {w: {r[0] for r in self._scratch.execute("SELECT rowid FROM sentences WHERE sentences MATCH ?",
                                                                (f'text : "{w}"',))} for w in words}
            in_title = {w: {r[0] for r in self._scratch.execute("SELECT rowid FROM sentences WHERE sentences MATCH ?",
                                                                 (f'title : "{w}"',))} for w in words}
        # a sentence's score: the weights of the question's words it has (and half again for its heading's); the
        # weights come from the whole knowledge base (over these few sentences a word every one of them shares,
        # such as a passage's topic, would weigh nothing)
        scored = sorted(((sum(weight[w] * ((r[0] in in_text[w]) + 0.5 * (r[0] in in_title[w]))
                               for w in words), r) for r in rows), key=lambda t: (-t[0], t[1][2], t[1][3]))
        if not scored or scored[0][0] <= 0.0:
            return Grounding(passages, (), unanswered=True)
        best_score, best = scored[0]
        chosen = [best]
        for score, row in scored[1:]:
            if len(chosen) >= max_sentences or score < 0.5 * best_score:
                break
            if row[2] == best[2] and row[3] > best[3] and sum(len(r[1]) + 1 for r in chosen) + len(row[1]) <= max_chars:
                chosen.append(row)
        ids = {r[0] for r in chosen}
        covered = sum(bool(ids & (in_text[w] | in_title[w])) for w in words)
        if 2 * covered < len(words):
            return Grounding(passages, (), unanswered=True)
        chosen.sort(key=lambda r: (r[2], r[3]))
        text = [r[1] if len(r[1]) <= max_chars else r[1][:max_chars].rsplit(" ", 1)[0] for r in chosen]
        return Grounding(passages, tuple(text))


def asks(text: str) -> bool:
    """Whether a user's turn asks for something (a question or a request), not thanks or a goodbye:
    it ends with "?", opens with a question word or an auxiliary ("do you", "can I"), or makes a
    request ("I'd like", "tell me")."""
    t = text.strip()
    if t.endswith("?") or _REQUEST.search(t):
        return True
    words = [w for w in re.findall(r"[a-z']+", t.lower()) if w not in _LEAD_INS]
    return bool(words) and words[0] in _QUESTION_OPENERS


def context_message(found: Sequence[Passage] | Grounding) -> ChatMessage | None:
    """The knowledge for the prompt: the best sentences, to be said as written (a `Grounding` with
    sentences), else the passages, to be worded by the model."""
    if isinstance(found, Grounding) and found.sentences:
        return ChatMessage("system", f'{_QUOTE_LEAD}"{" ".join(found.sentences)}"', name=QUOTE)
    passages = found.passages if isinstance(found, Grounding) else found
    if not passages:
        return None
    lines = "\n".join(f"- {p.title + ': ' if p.title else ''}{p.text}" for p in passages)
    return ChatMessage("system", "Facts from the knowledge base (use them if they answer the user; if they do not, "
                                 "say you do not have that information: never guess; answer in one or two short "
                                 f"spoken sentences):\n{lines}")


def quote_of(messages: Sequence[ChatMessage]) -> str | None:
    """The knowledge-base sentences this turn's reply should be (a `QUOTE` message after the
    previous user message), or None. An LLM that cannot be trusted to copy them speaks them itself."""
    for m in reversed(messages[:-1] if messages and messages[-1].role == "user" else messages):
        if m.role == "user":
            return None
        if m.name == QUOTE and m.content.startswith(_QUOTE_LEAD):
            return m.content[len(_QUOTE_LEAD):].strip().strip('"').strip() or None
    return None


def build_messages(messages: Sequence[ChatMessage], found: Sequence[Passage] | Grounding) -> list[ChatMessage]:
    """`messages` with the knowledge (`context_message`) as a system message right before the last user message."""
    msg = context_message(found)
    return list(messages) if msg is None else before_last_user(messages, msg)


def kb_index(folder: str, db_path: str, *, max_file_bytes: int = 1_000_000) -> int:
    """`flowact-agent kb index DIR [--db PATH]`: index a folder, print a summary; exit code."""
    kb = KnowledgeBase(db_path, max_file_bytes=max_file_bytes)
    try:
        report = kb.index_dir(folder)
    finally:
        kb.close()
    print(f"indexed {report.indexed} files ({report.passages} passages), {report.unchanged} unchanged -> {db_path}")
    for rel, reason in report.skipped or []:
        print(f"skipped {rel}: {reason}")
    return 0
