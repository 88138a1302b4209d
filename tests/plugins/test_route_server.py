"""The router's own server (plugins/llm_openai/route_server.py) on the shipped Qwen2.5 0.5B: the
route JSON with its fixed parts fed and only the choices decoded; typed values; the cut at a digit the
user never said; the prompt cache; and the HTTP face the plugin talks to."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from agent.interfaces import ToolSpec
from agent.tool_router import grounded, parse_route, route_messages, said_digits
from plugins.llm_openai import LocalServerConfig, shipped_model_path
from plugins.llm_openai.llm import ROUTE_SERVER
from plugins.llm_openai.local_server import LocalLlamaServer
from plugins.llm_openai.route_server import RouteDecoder, supported

LOOKUP = ToolSpec("lookup_order", "Look up an order's status by its order number.",
                  {"type": "object", "properties": {"order_id": {"type": "string", "description": "the order number"}},
                   "required": ["order_id"]})
HANDOFF = ToolSpec("handoff", "Transfer the customer to a human colleague when they ask for a person.",
                   {"type": "object", "properties": {"reason": {"type": "string"}}, "required": []})
CART = ToolSpec("add_to_cart", "Add items to the shopping cart.", {
    "type": "object", "required": ["quantity", "colour"],
    "properties": {"quantity": {"type": "integer"}, "colour": {"enum": ["red", "blue", "green"]},
                   "gift": {"type": "boolean"}, "note": {"type": "string"}}})


def wire(spec: ToolSpec) -> dict[str, object]:
    return {"name": spec.name, "parameters": spec.parameters}


@pytest.fixture(scope="module")
def decoder() -> Iterator[RouteDecoder]:
    yield RouteDecoder(str(shipped_model_path("qwen2.5-0.5b")), n_ctx=1024, n_threads=1, n_threads_batch=1,
                       n_batch=128)


def test_which_tools_the_route_server_writes() -> None:
    assert supported(LOOKUP.parameters) and supported(HANDOFF.parameters) and supported(CART.parameters)
    assert supported({"type": "object", "properties": {}})
    assert not supported({"type": "object", "properties": {"address": {"type": "object"}}})  # nested
    assert not supported({"type": "object", "properties": {"ids": {"type": "array"}}})
    assert not supported({"type": "object", "properties": {"price": {"type": "number"}}})  # decimals: the grammar
    assert not supported({"type": "object", "properties": {"tool": {"type": "string"}}})  # clashes with "tool"


def test_an_order_question_is_routed_with_the_number_and_a_policy_question_to_none(decoder: RouteDecoder) -> None:
    specs = [LOOKUP, HANDOFF]
    tools = [wire(s) for s in specs]
    order = decoder.route(route_messages(specs, [], "Where is my order 1234?"), tools, ["handoff"], "1234")
    assert not order["cut"] and json.loads(order["reply"]) == {"tool": "lookup_order", "order_id": "1234"}
    call = parse_route(order["reply"], specs)
    assert call is not None and grounded(call, ["Where is my order 1234?"])
    spoken = decoder.route(route_messages(specs, [], "Can you check order one two three four?"), tools, ["handoff"],
                           "1234")
    assert json.loads(spoken["reply"]) == {"tool": "lookup_order", "order_id": "1234"}  # spoken digits joined
    # a complaint that gives the number is a lookup (it went to none before the prompt said "whenever the
    # user's message gives the arguments it needs"), and so is Whisper's "for" for "four"
    for said, digits in [("My order 5678 never arrived.", "5678"), ("It's for 3 2 1.", "4321")]:
        got = decoder.route(route_messages(specs, [], said), tools, ["handoff"], said_digits(said))
        assert json.loads(got["reply"]) == {"tool": "lookup_order", "order_id": digits}, said
    policy = decoder.route(route_messages(specs, [], "What is your return policy?"), tools, ["handoff"], "")
    assert policy == {"reply": '{"tool": "none"}', "cut": False}
    person = decoder.route(route_messages(specs, [], "I want to speak to a human, please."), tools, ["handoff"], "")
    assert person == {"reply": '{"tool": "handoff"}', "cut": False}  # bare: no reason written


def test_an_identifier_the_user_never_said_is_cut_at_its_first_digit(decoder: RouteDecoder) -> None:
    # the words ask for order 1234; `said` holds other digits, so the 1 of 1234 is already made up
    reply = decoder.route(route_messages([LOOKUP], [], "Where is my order 1234?"), [wire(LOOKUP)], [], "5678")
    assert reply == {"reply": '{"tool": "lookup_order", "order_id": "1', "cut": True}


def test_typed_values_follow_their_schema(decoder: RouteDecoder) -> None:
    specs = [CART, LOOKUP]
    reply = decoder.route(route_messages(specs, [], "Please add three red shirts to my cart as a gift."),
                          [wire(s) for s in specs], [], "3")
    data = json.loads(reply["reply"])
    assert not reply["cut"] and data["tool"] == "add_to_cart", reply
    assert isinstance(data["quantity"], int) and data["colour"] in ("red", "blue", "green")
    assert set(data) <= {"tool", "quantity", "colour", "gift", "note"}
    assert isinstance(data.get("gift", False), bool) and isinstance(data.get("note", ""), str)


def test_drafts_from_the_users_words_and_queued_fixed_text_change_no_route(
        decoder: RouteDecoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value drafted from the user's message and checked in one batch is the value decoded token by
    token; the decided text (the only name left, the JSON between values) is evaluated with the next
    step, and a `none` route ends at its name, so fewer model calls."""
    cases = [([LOOKUP, HANDOFF], "Where is my order 1234?", "1234"), ([LOOKUP, HANDOFF], "It's for 3 2 1.", "4321"),
             ([CART, LOOKUP], "Please add three red shirts to my cart, note: ring the bell twice.", "3"),
             ([CART, LOOKUP], "Add 12 blue ones for my friend Anna Smith.", "12"),
             ([LOOKUP, HANDOFF], "What is your return policy?", ""),
             ([LOOKUP], "Where is my order 1234?", "5678")]  # cut at its first digit
    calls: list[int] = []
    real_eval = decoder._eval

    def counted(tokens: list[int]) -> object:
        calls.append(len(tokens))
        return real_eval(tokens)

    monkeypatch.setattr(decoder, "_eval", counted)
    drafted = []
    for specs, said, digits in cases:
        drafted.append(decoder.route(route_messages(specs, [], said), [wire(s) for s in specs], ["handoff"], digits))
    with_drafts = len(calls)
    assert drafted[0] == {"reply": '{"tool": "lookup_order", "order_id": "1234"}', "cut": False}
    assert drafted[4] == {"reply": '{"tool": "none"}', "cut": False}
    monkeypatch.setattr(decoder, "_draft", lambda tok: [])
    calls.clear()
    for (specs, said, digits), got in zip(cases, drafted, strict=True):
        assert decoder.route(route_messages(specs, [], said), [wire(s) for s in specs], ["handoff"], digits) == got
    assert with_drafts < len(calls)


def test_decided_text_longer_than_a_batch_is_evaluated_in_parts(decoder: RouteDecoder) -> None:
    """An enum value of 200+ tokens, decided at its first token, is queued whole: evaluated in parts
    of at most n_batch tokens, and the routes after it are unchanged."""
    long_text = " ".join(f"word{i}" for i in range(120))
    pick = ToolSpec("pick_plan", "Pick a plan.", {"type": "object", "required": ["plan", "count"], "properties": {
        "plan": {"enum": [long_text, "basic"]}, "count": {"type": "integer"}}})
    before = decoder.route(route_messages([LOOKUP], [], "Where is my order 1234?"), [wire(LOOKUP)], [], "1234")
    reply = decoder.route(route_messages([pick], [], f"I want the plan {long_text}, 2 of them."), [wire(pick)], [], "2")
    data = json.loads(reply["reply"])
    assert data["tool"] == "pick_plan" and data["plan"] in (long_text, "basic") and isinstance(data["count"], int)
    after = decoder.route(route_messages([LOOKUP], [], "Where is my order 1234?"), [wire(LOOKUP)], [], "1234")
    assert after == before


def test_the_prompt_cache_is_reused_and_changes_no_route(decoder: RouteDecoder) -> None:
    specs = [LOOKUP, HANDOFF]
    tools = [wire(s) for s in specs]
    a = route_messages(specs, [], "Is order 4321 on its way?")
    b = route_messages(specs, [], "Do you ship to other countries?")
    first = decoder.route(a, tools, ["handoff"], "4321")
    decoder.route(b, tools, ["handoff"], "")
    assert decoder.evaluated < 40  # the system prompt came from the cache: only the question was evaluated
    assert decoder.route(a, tools, ["handoff"], "4321") == first


async def test_the_route_server_answers_over_http_and_refuses_bad_requests() -> None:
    server = LocalLlamaServer(LocalServerConfig(n_ctx=1024, n_threads=1, startup_timeout_s=240), n_batch=128,
                              module=ROUTE_SERVER)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            body = {"messages": route_messages([LOOKUP], [], "Where is order 5678?"), "tools": [wire(LOOKUP)],
                    "said": "5678"}
            r = await client.post(f"{server.base_url}/route", json=body)
            assert r.status_code == 200 and json.loads(r.json()["reply"])["order_id"] == "5678"
            bad = await client.post(f"{server.base_url}/route", json={"tools": []})
            assert bad.status_code == 400 and "messages" in bad.json()["error"]
            for messages in ([], [{"role": "user", "content": None}], ["hi"]):
                wrong = await client.post(f"{server.base_url}/route", json={"messages": messages, "tools": []})
                assert wrong.status_code == 400 and "messages:" in wrong.json()["error"], messages
            garbled = await client.post(f"{server.base_url}/route", content=b"{not json")
            assert garbled.status_code == 400 and "JSONDecodeError" in garbled.json()["error"]
            assert (await client.post(f"{server.base_url}/chat/completions", json={})).status_code == 404
    finally:
        await server.stop()
    assert server.proc is None
