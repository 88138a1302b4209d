"""The router step's own server: a JSON tool route decoded with its fixed parts fed, not generated.

A grammar-constrained completion (llama.cpp's JSON schema) still spends one decoding step per token of
text the grammar allows in only one way: `{"tool": "lookup_order", "order_id": "1234"}` is 17
steps, about 0.1 s each for the shipped 0.5B model on one core, of which 11 carry no choice. This
server (`python -m plugins.llm_openai.route_server`, started like llama.cpp's server, same flags)
feeds every fixed part as one batch and lets the model choose only where there is a choice: the
tool's name (or `none`) among the names, each argument's value (a string, an integer, a boolean, one
of an enum), and whether an optional argument follows. Decided text (the rest of the only name
left, the JSON between values) waits for the next step that needs the model and goes with it in one
batch; a `none` or bare route ends at its name. A value is mostly copied from the user's words: after
each decoded token, what follows that token in the user's message is drafted and checked in one batch
(greedy, so the value is the one decoded token by token; an order lookup went from 1.0 s to 0.65-0.75 s,
`none` from 0.48 s to 0.24 s on one core). A made-up identifier is cut at its first digit the user
never said (`said`, `agent.tool_router.made_up`), as `hopeless_route` does for a stream.

    GET  /v1/models   readiness (as llama.cpp's server)
    POST /v1/route    {"messages": [...], "tools": [{"name", "parameters"}], "bare": [...], "said": "1234"}
                      -> {"reply": '{"tool": "lookup_order", "order_id": "1234"}', "cut": false}

`supported(parameters)` says which tools it can write (flat JSON-schema objects of strings, integers
(written as whole numbers >= 0), booleans and enums); for others the plugin keeps llama.cpp's grammar
router. One request is decoded at a time (the model has one context); the reply is at most
`MAX_VALUE_TOKENS` per value.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np

from agent.tool_router import made_up

__all__ = ["RouteDecoder", "supported"]

log = logging.getLogger("plugins.llm_openai.route_server")
MAX_VALUE_TOKENS = 24
DRAFT_TOKENS = 8  # a value's tokens drafted from the user's message and checked in one batch
_SCALARS = {"string", "integer", "boolean"}  # integers as whole numbers >= 0; "number" keeps the grammar


def supported(parameters: dict[str, Any]) -> bool:
    """Whether the decoder writes a tool with these parameters: a flat object of strings, integers,
    booleans or enums (a decimal `number`, an object or an array: llama.cpp's grammar writes it)."""
    props = parameters.get("properties", {})
    if parameters.get("type", "object") != "object" or not isinstance(props, dict) or "tool" in props:
        return False
    return all(isinstance(p, dict) and (p.get("type") in _SCALARS or isinstance(p.get("enum"), list))
               for p in props.values())


class RouteDecoder:
    """A llama.cpp model that writes route JSON, its prompt prefix cached between requests."""

    def __init__(self, model_path: str, *, n_ctx: int, n_threads: int, n_threads_batch: int, n_batch: int) -> None:
        from llama_cpp import Llama, llama_chat_format

        self.llm = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads_batch,
                         n_batch=n_batch, verbose=False)
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise SystemExit("route server: the model has no chat template (tokenizer.chat_template); "
                             "set llm.local_server.fast_router: false to route with llama.cpp's server")
        self.format = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=self.llm._model.token_get_text(eos),
            bos_token=self.llm._model.token_get_text(bos) if bos != -1 else "",
        )
        self.n_vocab = self.llm.n_vocab()
        pieces = [self.llm.detokenize([i]) for i in range(self.n_vocab)]
        self.text = [p.decode("utf-8", "replace") for p in pieces]
        self.by_text: dict[str, int] = {}
        for i, t in enumerate(self.text):
            if t:
                self.by_text.setdefault(t, i)
        # a string value's tokens: no quote, backslash or control character (and not the end of text)
        self.plain = np.array([bool(p) and not re.search(rb'["\\\x00-\x1f]', p) and i != eos
                               for i, p in enumerate(pieces)])
        self.digits = np.array([t.isascii() and t.isdigit() for t in self.text])
        self.closers = np.array([bool(re.fullmatch(r'"[,}\s]*', t)) for t in self.text])  # `"`, `",`, `"}`
        self.ends = np.array([bool(re.fullmatch(r"\s*[,}][,}\s]*", t)) for t in self.text])  # after a number
        self.quote = self.by_text['"']
        self.evaluated = 0
        self._queued: list[int] = []
        self._last = np.zeros(self.n_vocab, np.float32)
        self._user: list[int] = []

    # --- the model -----------------------------------------------------------------------------
    # Text that is decided (fixed JSON, the rest of the only option left) is queued and evaluated with
    # the next step that needs the model's next-token distribution, in one batch; `_last` is that
    # distribution after everything evaluated so far.
    def _prompt(self, tokens: list[int]) -> None:
        """Evaluate the prompt after the longest prefix already in the cache."""
        cached = self.llm.input_ids[: self.llm.n_tokens].tolist()
        common = 0
        while common < min(len(cached), len(tokens)) and cached[common] == tokens[common]:
            common += 1
        self.llm.n_tokens = min(common, len(tokens) - 1)  # at least one token evaluated: fresh logits
        self.evaluated = len(tokens) - self.llm.n_tokens  # the last prompt's tokens not taken from the cache
        self.llm.eval(tokens[self.llm.n_tokens:])
        row = self.llm._ctx.get_logits()  # type: ignore[no-untyped-call]
        self._last = np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()
        self._queued = []

    def _queue(self, tokens: Sequence[int]) -> None:
        self._queued.extend(tokens)

    def _fixed(self, text: str) -> None:
        self._queue(self.llm.tokenize(text.encode(), add_bos=False, special=False))

    def _eval(self, tokens: Sequence[int]) -> np.ndarray:
        """Evaluate the queue and `tokens` as one batch; the next-token logits after each of `tokens`."""
        batch = [*self._queued, *tokens]
        self._queued = []
        if self.llm.n_tokens + len(batch) >= self.llm.n_ctx() - 1:
            raise ValueError("the route does not fit the context")
        if len(batch) > self.llm.n_batch:  # a long queue: its head first (the last batch keeps >= 1 token)
            head = len(batch) - max(1, len(tokens))
            self.llm.eval(batch[:head])
            batch = batch[head:]
        n_past, n = self.llm.n_tokens, len(batch)
        self.llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        self.llm._batch.set_batch(batch=batch, n_past=n_past, logits_all=True)
        self.llm._ctx.decode(self.llm._batch)
        self.llm.input_ids[n_past: n_past + n] = batch
        self.llm.n_tokens += n
        rows = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(n * self.n_vocab,))  # type: ignore[no-untyped-call]
        out = rows.reshape(n, self.n_vocab)
        self._last = out[-1].copy()
        return out[n - len(tokens):].copy()

    def _next(self) -> np.ndarray:
        """The next-token logits (the queue evaluated first)."""
        if self._queued:
            self._eval([])
        return self._last

    def _choose(self, options: Sequence[str]) -> str:
        """The option the model prefers, token by token (greedy over tokens that keep an option open);
        once one option is left, its rest is queued, not decoded."""
        sofar = ""
        while True:
            live = [o for o in options if o.startswith(sofar)]
            if len(live) == 1:
                if live[0] != sofar:
                    self._fixed(live[0][len(sofar):])
                return live[0]
            allowed: dict[int, str] = {}
            for option in live:
                rest = option[len(sofar):]
                for k in range(1, len(rest) + 1):
                    tok = self.by_text.get(rest[:k])
                    if tok is not None:
                        allowed[tok] = rest[:k]
            if not allowed:
                raise ValueError(f"no token continues {sofar!r} towards {options}")
            logits = self._next()
            best = max(allowed, key=lambda t: float(logits[t]))
            sofar += allowed[best]
            self._queue([best])
            if sofar in options:
                return sofar

    def _decode(self, pick: Callable[[np.ndarray, int], int], stop: np.ndarray,
                cut: Callable[[list[int]], bool]) -> tuple[list[int], bool]:
        """Greedy tokens of one value until a `stop` token (not fed) or `cut` says the value so far is
        made up (True). What follows a token in the user's message is drafted and checked in one batch
        (a value is mostly copied from the user's words): the same tokens as one step each, fewer steps."""
        toks: list[int] = []
        logits = self._next()
        while len(toks) < MAX_VALUE_TOKENS:
            tok = pick(logits, len(toks))
            if stop[tok]:
                return toks, False
            toks.append(tok)
            if cut(toks):
                return toks, True
            draft = self._draft(tok)[: MAX_VALUE_TOKENS - len(toks)]
            rows = self._eval([tok, *draft])
            k, made_up_now = 0, False
            while not made_up_now and k < len(draft) and pick(rows[k], len(toks)) == draft[k] and not stop[draft[k]]:
                toks.append(draft[k])
                k += 1
                made_up_now = cut(toks)
            self.llm.n_tokens -= len(draft) - k  # the draft's rejected tokens leave the cache
            self._last = logits = rows[k]
            if made_up_now:
                return toks, True
        return toks, False

    def _draft(self, tok: int) -> list[int]:
        """The user's tokens after `tok`'s first place in their message (none if it is not there)."""
        try:
            i = self._user.index(tok)
        except ValueError:
            return []
        return self._user[i + 1: i + 1 + DRAFT_TOKENS]

    # --- a route -----------------------------------------------------------------------------------
    def route(self, messages: list[dict[str, str]], tools: list[dict[str, Any]], bare: Sequence[str] = (),
              said: str = "") -> dict[str, Any]:
        """The route JSON for `messages` (`cut`: given up at a digit the user did not say)."""
        prompt = self.format(messages=messages).prompt  # type: ignore[arg-type]
        out = '{"tool": "'
        self._prompt(self.llm.tokenize((prompt + out).encode(), add_bos=False, special=True))
        user = messages[-1].get("content", "") if messages and messages[-1].get("role") == "user" else ""
        self._user = self.llm.tokenize(user.encode(), add_bos=False, special=False)
        specs = {t["name"]: t.get("parameters") or {} for t in tools}
        name = self._choose([f'{n}"' for n in [*specs, "none"]])
        out += name
        name = name[:-1]
        if name == "none" or name in bare:
            return {"reply": out + "}", "cut": False}
        props: dict[str, Any] = specs[name].get("properties", {})
        required = [k for k in specs[name].get("required", []) if k in props]
        optional = [k for k in props if k not in required]
        for key in required:
            value, cut = self._value(key, props[key], said)
            out += value
            if cut:
                return {"reply": out, "cut": True}
        while optional:
            more = self._choose(["}", *(f', "{k}":' for k in optional)])
            if more == "}":
                break
            key = more.split('"')[1]
            optional.remove(key)
            value, cut = self._value(key, props[key], said, keyed=True)
            out += value
            if cut:
                return {"reply": out, "cut": True}
        return {"reply": out + "}", "cut": False}

    def _value(self, key: str, schema: dict[str, Any], said: str, keyed: bool = False) -> tuple[str, bool]:
        """`, "key": value` as JSON text, tokenized as the model writes it (`":`, ` "`, ` true`, ` `
        before digits); `keyed`: `, "key":` is already queued. `cut`: a string's digits were never said."""
        head = "" if keyed else f', "{key}":'
        out = f', "{key}":'
        if isinstance(schema.get("enum"), list) or schema.get("type") == "boolean":
            self._fixed(head)
            value = self._choose([" " + json.dumps(v) for v in schema.get("enum", [True, False])])
            return out + value, False
        if schema.get("type") == "integer":
            self._fixed(head + " ")
            toks, _ = self._decode(
                lambda lg, n: int(np.argmax(np.where(self.digits | (self.ends if n else False), lg, -np.inf))),
                self.ends, lambda _: False)
            return f"{out} {int(''.join(self.text[t] for t in toks))}", False  # "," or "}": the caller's
        self._fixed(head + ' "')

        def as_text(toks: list[int]) -> str:
            return self.llm.detokenize(toks).decode("utf-8", "replace")

        toks, cut = self._decode(lambda lg, _: int(np.argmax(np.where(self.plain | self.closers, lg, -np.inf))),
                                 self.closers, lambda toks: made_up(as_text(toks), said))
        text = as_text(toks)
        if cut:
            return f'{out} "' + text, True
        self._queue([self.quote])  # the string closed; what follows is queued by the caller
        return f"{out} {json.dumps(text)}", False


class _Handler(BaseHTTPRequestHandler):
    decoder: RouteDecoder

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug(format, *args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the turn was cancelled while its route was decoded
            log.info("the client left before its route was sent")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "route", "object": "model"}]})
        else:
            self._send(404, {"error": f"no such path {self.path}"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if self.path.rstrip("/") != "/v1/route":
            self._send(404, {"error": f"no such path {self.path}"})
            return
        try:
            size = int(self.headers.get("Content-Length", "0"))
            if not 0 < size <= 1 << 20:
                raise ValueError("a route request of 1 byte to 1 MB is expected")
            req = json.loads(self.rfile.read(size))
            messages = req["messages"]
            if not (isinstance(messages, list) and messages and all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in messages)):
                raise ValueError("messages: a non-empty list of {role, content} with string values is expected")
            tools = [t for t in req["tools"] if supported(t.get("parameters") or {})]
            result = self.decoder.route(messages, tools, req.get("bare", []), str(req.get("said", "")))
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._send(200, result)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n_ctx", type=int, default=2048)
    ap.add_argument("--n_threads", type=int, default=1)
    ap.add_argument("--n_threads_batch", type=int)
    ap.add_argument("--n_batch", type=int, default=128)
    ap.add_argument("--chat_format", help="ignored: routes are written in the model's own chat template")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    _Handler.decoder = RouteDecoder(args.model, n_ctx=args.n_ctx, n_threads=args.n_threads,
                                    n_threads_batch=args.n_threads_batch or args.n_threads, n_batch=args.n_batch)
    server = HTTPServer((args.host, args.port), _Handler)
    log.info("route server ready on %s:%d", args.host, args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
