"""The router step's own server: a JSON tool route decoded with its fixed parts fed, not generated.

A grammar-constrained completion (llama.cpp's JSON schema) still spends one decoding step per token of
text the grammar allows in only one way: `{"tool": "lookup_order", "order_id": "1234"}` is 17
steps, about 0.1 s each for the shipped 0.5B model on one core, of which 11 carry no choice. This
server (`python -m plugins.llm_openai.route_server`, started like llama.cpp's server, same flags)
feeds every fixed part as one batch and lets the model choose only where there is a choice: the
tool's name (or `none`) among the names, each argument's value (a string, an integer, a boolean, one
of an enum), and whether an optional argument follows. A made-up identifier is cut at its first
digit the user never said (`said`, `agent.tool_router.made_up`), as `hopeless_route` does for a stream.

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
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np

from agent.tool_router import made_up

__all__ = ["RouteDecoder", "supported"]

log = logging.getLogger("plugins.llm_openai.route_server")
MAX_VALUE_TOKENS = 24
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

    # --- the model -----------------------------------------------------------------------------
    def _logits(self) -> np.ndarray:
        row = self.llm._ctx.get_logits()  # type: ignore[no-untyped-call]
        return np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()

    def _prompt(self, tokens: list[int]) -> np.ndarray:
        """Evaluate the prompt after the longest prefix already in the cache; the next token's logits."""
        cached = self.llm.input_ids[: self.llm.n_tokens].tolist()
        common = 0
        while common < min(len(cached), len(tokens)) and cached[common] == tokens[common]:
            common += 1
        self.llm.n_tokens = min(common, len(tokens) - 1)  # at least one token evaluated: fresh logits
        self.evaluated = len(tokens) - self.llm.n_tokens  # the last prompt's tokens not taken from the cache
        self.llm.eval(tokens[self.llm.n_tokens:])
        return self._logits()

    def _feed(self, tokens: Sequence[int]) -> np.ndarray:
        if self.llm.n_tokens + len(tokens) >= self.llm.n_ctx() - 1:
            raise ValueError("the route does not fit the context")
        self.llm.eval(list(tokens))
        return self._logits()

    def _fixed(self, text: str) -> np.ndarray:
        return self._feed(self.llm.tokenize(text.encode(), add_bos=False, special=False))

    def _choose(self, logits: np.ndarray, options: Sequence[str]) -> tuple[str, np.ndarray]:
        """The option the model prefers, token by token (greedy over tokens that keep an option open)."""
        sofar = ""
        while True:
            allowed: dict[int, str] = {}
            for option in options:
                if not option.startswith(sofar):
                    continue
                rest = option[len(sofar):]
                for k in range(1, len(rest) + 1):
                    tok = self.by_text.get(rest[:k])
                    if tok is not None:
                        allowed[tok] = rest[:k]
            if not allowed:
                raise ValueError(f"no token continues {sofar!r} towards {options}")
            best = max(allowed, key=lambda t: float(logits[t]))
            sofar += allowed[best]
            logits = self._feed([best])
            if sofar in options:
                return sofar, logits

    # --- a route -----------------------------------------------------------------------------------
    def route(self, messages: list[dict[str, str]], tools: list[dict[str, Any]], bare: Sequence[str] = (),
              said: str = "") -> dict[str, Any]:
        """The route JSON for `messages` (`cut`: given up at a digit the user did not say)."""
        prompt = self.format(messages=messages).prompt  # type: ignore[arg-type]
        logits = self._prompt(self.llm.tokenize(prompt.encode(), add_bos=False, special=True))
        out = '{"tool": "'
        logits = self._fixed(out)
        specs = {t["name"]: t.get("parameters") or {} for t in tools}
        name, logits = self._choose(logits, [f'{n}"' for n in [*specs, "none"]])
        out += name
        name = name[:-1]
        if name == "none" or name in bare:
            return {"reply": out + "}", "cut": False}
        props: dict[str, Any] = specs[name].get("properties", {})
        required = [k for k in specs[name].get("required", []) if k in props]
        optional = [k for k in props if k not in required]
        for key in required:
            value, logits, cut = self._value(logits, key, props[key], said)
            out += value
            if cut:
                return {"reply": out, "cut": True}
        while optional:
            more, logits = self._choose(logits, ["}", *(f', "{k}":' for k in optional)])
            if more == "}":
                break
            key = more.split('"')[1]
            optional.remove(key)
            value, logits, cut = self._value(logits, key, props[key], said, keyed=True)
            out += value
            if cut:
                return {"reply": out, "cut": True}
        return {"reply": out + "}", "cut": False}

    def _value(self, logits: np.ndarray, key: str, schema: dict[str, Any], said: str,
               keyed: bool = False) -> tuple[str, np.ndarray, bool]:
        """`, "key": value` as JSON text, tokenized as the model writes it (`":`, ` "`, ` true`, ` `
        before digits); `keyed`: `, "key":` is already fed. `cut`: a string's digits were never said."""
        head = "" if keyed else f', "{key}":'
        out = f', "{key}":'
        if isinstance(schema.get("enum"), list) or schema.get("type") == "boolean":
            if head:
                logits = self._fixed(head)
            options = [" " + json.dumps(v) for v in schema.get("enum", [True, False])]
            value, logits = self._choose(logits, options)
            return out + value, logits, False
        if schema.get("type") == "integer":
            logits = self._fixed(head + " ")
            number, logits = self._number(logits)
            return f"{out} {number}", logits, False
        logits = self._fixed(head + ' "')
        data = b""
        for _ in range(MAX_VALUE_TOKENS):
            masked = np.where(self.plain | self.closers, logits, -np.inf)
            tok = int(np.argmax(masked))
            if self.closers[tok]:
                logits = self._feed([self.quote])  # the string closed; what follows is fed by the caller
                break
            data += self.llm.detokenize([tok])
            logits = self._feed([tok])
            if made_up(data.decode("utf-8", "replace"), said):
                return f'{out} "' + data.decode("utf-8", "replace"), logits, True
        return f"{out} {json.dumps(data.decode('utf-8', 'replace'))}", logits, False

    def _number(self, logits: np.ndarray) -> tuple[str, np.ndarray]:
        """A whole number, digit tokens until the model ends it (`,` or `}`: fed by the caller)."""
        text = ""
        for _ in range(MAX_VALUE_TOKENS):
            masked = np.where(self.digits | (self.ends if text else False), logits, -np.inf)
            tok = int(np.argmax(masked))
            if self.ends[tok]:
                break
            text += self.text[tok]
            logits = self._feed([tok])
        return str(int(text)), logits


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
            tools = [t for t in req["tools"] if supported(t.get("parameters") or {})]
            result = self.decoder.route(req["messages"], tools, req.get("bare", []), str(req.get("said", "")))
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
