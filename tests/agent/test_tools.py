"""Tools that do things: real callables (sync, async, blocking, raising) and a real HTTP endpoint on
127.0.0.1 (aiohttp), schemas from typed signatures, timeouts and errors as apologies, never a raise."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from agent.errors import ConfigError
from agent.frames import ToolCall
from agent.interfaces import ChatMessage, ToolSpec
from agent.tool_router import (
    accepts_person_offer,
    grounded,
    hopeless_route,
    normalize_spoken_numbers,
    parse_route,
    route_messages,
    router_schema,
    said_digits,
    settled_route,
)
from agent.tools import DEFAULT_APOLOGY, HttpToolConfig, Tool, ToolConfig, ToolRegistry, schema_from_callable
from tests.agent import tool_funcs

M = "tests.agent.tool_funcs"


def call(name: str, **args: object) -> ToolCall:
    return ToolCall(name, json.dumps(args), "c1")


def test_schema_from_a_typed_signature() -> None:
    schema = schema_from_callable(tool_funcs.typed)
    assert schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"}, "count": {"type": "integer"}, "ratio": {"type": "number"},
            "flag": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["a", "b"]}, "note": {"type": "string"},
        },
        "required": ["name", "count", "ratio", "flag", "tags", "mode"],
    }
    tool = Tool(ToolConfig(name="lookup_order", callable=f"{M}:lookup_order"))
    assert tool.spec.description == "Look up the status of an order by its number."
    assert tool.spec.parameters["required"] == ["order_id"]


@pytest.mark.parametrize(("ref", "message"), [
    ("tests.agent.broken_tool_module:f", "does not import: ModuleNotFoundError"),
    (f"{M}:nope", "has no function 'nope'"),
    ("no_colon", "must be 'package.module:function'"),
    (f"{M}:untyped", "needs a type annotation"),
])
def test_bad_tool_references_are_clear_config_errors(ref: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ToolRegistry.from_config([ToolConfig(name="t", callable=ref)])


async def test_sync_async_and_blocking_callables_run() -> None:
    reg = ToolRegistry.from_config([
        ToolConfig(name="lookup_order", callable=f"{M}:lookup_order"),
        ToolConfig(name="slow", callable=f"{M}:slow_lookup"),
        ToolConfig(name="blocking", callable=f"{M}:blocking_lookup"),
    ])
    r = await reg.run(call("lookup_order", order_id="1234"))
    assert r.ok and json.loads(r.content) == {"order_id": "1234", "status": "shipped on Monday, arrives tomorrow"}
    r = await reg.run(call("slow", order_id="5678", delay_s=0.05))
    assert r.ok and r.content == "Order 5678: being packed, ships today." and r.duration_s >= 0.05
    r = await reg.run(call("blocking", order_id="1"))
    assert r.ok and r.content == "Order 1 checked." and r.duration_s >= 0.2


async def test_errors_timeouts_and_bad_arguments_become_apologies(caplog: pytest.LogCaptureFixture) -> None:
    reg = ToolRegistry.from_config([
        ToolConfig(name="broken", callable=f"{M}:broken", apology="Sorry, our order system is down."),
        ToolConfig(name="slow", callable=f"{M}:slow_lookup", timeout_s=0.1),
        ToolConfig(name="lookup_order", callable=f"{M}:lookup_order"),
    ])
    r = await reg.run(call("broken", order_id="1"))
    assert not r.ok and r.content == "Sorry, our order system is down." and "database down for 1" in r.error
    r = await reg.run(call("slow", order_id="1", delay_s=5))
    assert not r.ok and "timed out after 0.1 s" in r.error and r.duration_s < 1.0
    for bad, why in [(ToolCall("lookup_order", "{not json", "x"), "not JSON"),
                     (call("lookup_order"), "missing argument 'order_id'"),
                     (call("lookup_order", order_id=12), "should be string"),
                     (call("nope"), "unknown tool")]:
        r = await reg.run(bad)
        assert not r.ok and why in r.error and r.content
    assert (await reg.run(call("lookup_order", order_id="1234", extra=1))).ok  # stray arguments are dropped
    assert "tool broken" in caplog.text and "failed" in caplog.text


@pytest.fixture
async def order_api() -> AsyncIterator[str]:
    async def order(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.json_response({"error": "unauthorized"}, status=401)
        oid = request.query.get("order_id") or (await request.json()).get("order_id")
        if oid == "slow":
            import asyncio

            await asyncio.sleep(6)
        if oid == "500":
            return web.Response(status=500, text="boom")
        return web.json_response({"order_id": oid, "status": "shipped", "eta": "Friday"})

    app = web.Application()
    app.router.add_get("/orders", order)
    app.router.add_post("/orders", order)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/orders"
    finally:
        await runner.cleanup()


async def test_http_tool_get_and_post_with_secret_headers_from_env(
    order_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", "Bearer s3cret")
    params = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
    reg = ToolRegistry.from_config([
        ToolConfig(name="get_order", description="Order status.", parameters=params, timeout_s=4.0,  # < 6 s "slow"
                   http=HttpToolConfig(url=order_api, headers_env={"Authorization": "SHOP_TOKEN"}),
                   speak="result", say="Order {order_id} is {status} and arrives {eta}."),
        ToolConfig(name="post_order", description="Order status.", parameters=params,
                   http=HttpToolConfig(url=order_api, method="POST", headers_env={"Authorization": "SHOP_TOKEN"})),
    ])
    c = call("get_order", order_id="1234")
    r = await reg.run(c)
    assert r.ok and r.data == {"order_id": "1234", "status": "shipped", "eta": "Friday"}
    assert reg.spoken_result(c, r) == "Order 1234 is shipped and arrives Friday."
    r = await reg.run(call("post_order", order_id="77"))
    assert r.ok and json.loads(r.content)["order_id"] == "77" and reg.spoken_result(call("post_order"), r) is None
    r = await reg.run(call("get_order", order_id="500"))
    assert not r.ok and "500" in r.error and r.content == DEFAULT_APOLOGY
    r = await reg.run(call("get_order", order_id="slow"))
    assert not r.ok and "timed out" in r.error
    monkeypatch.delenv("SHOP_TOKEN")
    r = await reg.run(call("get_order", order_id="1"))
    assert not r.ok and "SHOP_TOKEN is not set" in r.error


async def test_canned_demo_answers_and_handoff_builtin() -> None:
    reg = ToolRegistry.from_config([
        ToolConfig(name="lookup_order", description="d", responses={"1234": "Shipped."}, default="Not found."),
        ToolConfig(name="handoff", builtin="handoff"),
    ])
    assert (await reg.run(call("lookup_order", order_id="1234"))).content == "Shipped."
    assert (await reg.run(call("lookup_order", order_id="9"))).content == "Not found."
    assert (await reg.run(call("handoff", reason="wants a human"))).ok
    with pytest.raises(ConfigError, match="duplicate"):
        ToolRegistry.from_config([ToolConfig(name="a", description="x")] * 2)


def test_router_parsing_and_grounding() -> None:
    specs = [Tool(ToolConfig(name="lookup_order", callable=f"{M}:lookup_order")).spec]
    schema = router_schema(specs)
    assert [o["properties"]["tool"]["const"] for o in schema["anyOf"]] == ["lookup_order", "none"]
    assert set(schema["anyOf"][0]["properties"]) == {"tool", "order_id"}  # arguments beside the name
    c = parse_route('{"tool": "lookup_order", "order_id": "1234"}', specs)
    assert c is not None and json.loads(c.arguments) == {"order_id": "1234"}
    for bad in ['{"tool": "none"}', "not json", '{"tool": "other", "order_id": "1"}', "[1]"]:
        assert parse_route(bad, specs) is None
    # a parameter named "tool" puts the arguments under "arguments"
    clash = [ToolSpec("pick", "d", {"type": "object", "properties": {"tool": {"type": "string"}}})]
    assert router_schema(clash)["anyOf"][0]["properties"]["arguments"]["properties"] == {"tool": {"type": "string"}}
    nested = parse_route('{"tool": "pick", "arguments": {"tool": "hammer"}}', clash)
    assert nested is not None and json.loads(nested.arguments) == {"tool": "hammer"}
    assert parse_route('{"tool": "pick", "arguments": 3}', clash) is None
    assert grounded(c, ["Where is my order one two three four?"])
    assert grounded(c, ["order twelve thirty-four please"])
    assert not grounded(c, ["hello there"])
    assert not grounded(c, ["my order is 5678"])
    assert normalize_spoken_numbers("it's 5 6 7 8, or two") == "it's 5678, or two"
    # Whisper's "for" for "four" before digits said one by one (not before a range or one number)
    assert normalize_spoken_numbers("It's for 3 2 1.") == "It's 4321."
    assert normalize_spoken_numbers("my order for 3-2-1 never came") == "my order 4321 never came"
    assert normalize_spoken_numbers("For 3 2 1, please") == "4321, please"
    assert normalize_spoken_numbers("it takes for 2-3 weeks") == "it takes for 23 weeks"
    assert normalize_spoken_numbers("an order for 321 dollars") == "an order for 321 dollars"
    assert normalize_spoken_numbers("waiting for three hours") == "waiting for three hours"
    assert said_digits("It's for 3 2 1.") == "4321"
    hand = [Tool(ToolConfig(name="handoff", builtin="handoff")).spec]
    assert router_schema(hand, bare={"handoff"})["anyOf"][0]["properties"] == {"tool": {"const": "handoff"}}
    handoff = parse_route('{"tool": "handoff"}', hand)
    assert handoff is not None and json.loads(handoff.arguments) == {}
    for asked in ["I want to speak to a human, please.", "Can I talk to someone?", "get me a real person"]:
        assert grounded(handoff, [asked], handoff=True), asked
    for slip in ["Can I exchange a shirt for another size?", "How long does a refund take?"]:
        assert not grounded(handoff, [slip], handoff=True), slip


def test_a_router_reply_that_cannot_be_grounded_is_known_before_it_ends() -> None:
    """The 0.5B router writes `lookup_order("12345")` for questions naming no order: the streamed
    reply is given up at its first digit the user never said, and a hand-off at its name when nobody
    asked for a person; a call the user's words do ground is never given up."""
    made_up = '{"tool": "lookup_order", "order_id": "12345"}'
    cut = [i for i in range(len(made_up) + 1) if hopeless_route(made_up[:i], "What does express shipping cost?")]
    assert cut and made_up[: cut[0]].endswith('"1')  # at the first digit, not after the whole call
    for said in ("where is order 12345", "order one two three four five", "It's 1 2 3 4 5."):
        assert not any(hopeless_route(made_up[:i], said) for i in range(len(made_up) + 1)), said
    assert hopeless_route('{"tool": "handoff"', "thanks, that's all", {"handoff"})
    assert not hopeless_route('{"tool": "handoff"}', "can I talk to a person?", {"handoff"})
    # a tool's name with digits is not an argument
    assert not hopeless_route('{"tool": "lookup_v2", "order_id": "77', "order 77")
    # keys and nested values are not arguments `grounded` checks; an escaped quote stays inside its string
    assert not hopeless_route('{"tool": "x", "k9": {"b": "999"}, "c": "a\\"b', "no numbers")
    assert hopeless_route('{"tool": "x", "c": "a\\"9', "no numbers")
    # the same under "arguments" (a parameter named "tool")
    nested = '{"tool": "x", "arguments": {"tool": "v9", "c": "a"}}'
    assert hopeless_route(nested, "no numbers", flat=False)
    assert not hopeless_route(nested, "version 9", flat=False)
    specs = [Tool(ToolConfig(name="lookup_order", callable=f"{M}:lookup_order")).spec]
    whole = parse_route(made_up, specs)  # the same rule as `grounded` on the whole call
    assert whole is not None and grounded(whole, ["where is order 12345"])
    assert not grounded(whole, ["what does it cost"])


def test_a_router_reply_stops_when_only_closing_braces_are_left() -> None:
    """The router's stream ends as soon as nothing but `}` can follow: every argument written and its
    string closed, or `none`, or a bare hand-off; never inside a value that may still grow."""
    specs = [Tool(ToolConfig(name="lookup_order", callable=f"{M}:lookup_order")).spec,
             Tool(ToolConfig(name="handoff", builtin="handoff")).spec,
             ToolSpec("add", "d", {"type": "object", "required": ["n"],
                                   "properties": {"n": {"type": "integer"}, "note": {"type": "string"}}})]
    call = '{"tool": "lookup_order", "order_id": "1234"}'
    done = [i for i in range(len(call) + 1) if settled_route(call[:i], specs, {"handoff"}) is not None]
    assert done and call[: done[0]] == call[:-1]  # the closing brace is not waited for
    assert parse_route(settled_route(call[:-1], specs) or "", specs) == parse_route(call, specs)
    assert settled_route('{"tool": "none"', specs) == '{"tool": "none"}'
    assert settled_route('{"tool": "handoff"', specs, {"handoff"}) == '{"tool": "handoff"}'
    assert settled_route('{"tool": "handoff"', specs) is None  # not bare: its reason may follow
    assert settled_route('{"tool": "lookup_order", "order_id": "12', specs) is None
    assert settled_route('{"tool": "add", "n": 1', specs) is None  # a number may go on: 1 -> 12
    assert settled_route('{"tool": "add", "n": 12', specs) is None  # "note" may follow
    assert settled_route('{"tool": "add", "n": 12}', specs) == '{"tool": "add", "n": 12}'  # whole
    assert settled_route('{"tool": "add", "n": 12, "note": "x"', specs) == '{"tool": "add", "n": 12, "note": "x"}'
    assert settled_route('{"tool": "lookup', specs) is None


def test_the_router_sees_the_agents_last_line_only_when_it_asked_something() -> None:
    """"It's 4321." answers "What is your order number?"; a tool's line before the next order question
    is not a question (shown as "You asked: Order 1234 is shipped ..." it sent the 0.5B router to none)."""
    specs = [Tool(ToolConfig(name="lookup_order", callable=f"{M}:lookup_order")).spec]
    asked = [ChatMessage("user", "Where is my parcel?"), ChatMessage("assistant", "Sure, what is your order number?")]
    msgs = route_messages(specs, asked, "It's four three two one.")
    assert msgs[1]["content"] == "(You asked: Sure, what is your order number?)\nIt's 4321."
    told = [ChatMessage("user", "Where is order 1234?"), ChatMessage("assistant", "[nod] Order 1234 is shipped.")]
    assert route_messages(specs, told, "And order 5678?")[1]["content"] == "And order 5678?"
    assert "lookup_order" in msgs[0]["content"] and "order_id" in msgs[0]["content"]


@pytest.mark.parametrize(("agent", "user", "accepted"), [
    ("I don't have that. Would you like me to connect you with a colleague?", "Yes, please.", True),
    ("I don't have that. Would you like me to connect you with a colleague?", "sure", True),
    ("I don't have that. Would you like me to connect you with a colleague?", "Okay, thanks.", True),
    ("I don't have that. Would you like me to connect you with a colleague?", "No thanks.", False),
    ("I don't have that. Would you like me to connect you with a colleague?", "Yes, but is shipping free?", False),
    ("What is your order number?", "Yes.", False),  # no person offered
    ("A colleague helped you before. Anything else?", "Yes.", False),  # the question offers nobody
])
def test_a_yes_to_an_offered_colleague_is_a_hand_off(agent: str, user: str, accepted: bool) -> None:
    assert accepts_person_offer(agent, user) is accepted
