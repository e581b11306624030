"""One request object: ``KoineRequest`` checks itself, builds the body bytes and gives the ledger
key of that very body — the same bytes and keys as before it existed (a ledger keeps answering)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koine_sdk import Endpoint, KoineError, KoineRequest
from koine_sdk.ledger import request_key


def _old_body(
    prompt: str,
    system: str | None,
    session_id: str | None,
    allowed_tools: list[str] | None,
    model: str | None,
    schema: dict[str, Any] | None,
) -> bytes:
    """The body exactly as 3.0.0a1's ``_transport.build_body`` wrote it (the reference)."""
    body: dict[str, Any] = {"prompt": prompt}
    for wire, value in (("system", system), ("sessionId", session_id), ("model", model)):
        if value is not None:
            body[wire] = value
    if allowed_tools is not None:
        body["allowedTools"] = list(allowed_tools)
    if schema is not None:
        body["schema"] = schema
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(body, separators=(",", ":")).encode()


_text = st.text(max_size=30)
_maybe = st.none() | _text
_model = st.none() | st.text(min_size=1, max_size=30).filter(str.strip)
_schema = st.none() | st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(_text, st.just({"type": "string"}))}
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(list(Endpoint)),
    _text,
    _maybe,
    _maybe,
    st.none() | st.lists(st.text(min_size=1, max_size=8), max_size=3),
    _model,
    _schema,
)
def test_bodies_and_keys_are_those_of_3_0_0a1(
    endpoint: Endpoint,
    prompt: str,
    system: str | None,
    session_id: str | None,
    tools: list[str] | None,
    model: str | None,
    schema: dict[str, Any] | None,
) -> None:
    schema = schema if endpoint.wants_object else None
    request = KoineRequest.build(
        endpoint,
        prompt=prompt,
        system=system,
        session_id=session_id,
        allowed_tools=tools,
        model=model,
        schema=schema,
        check_size=False,
    )
    old = _old_body(prompt, system, session_id, tools, model, schema)
    assert request.body() == old
    assert request.key() == request_key(endpoint.path, json.loads(old))
    assert request.shape().key(prompt) == request.key()
    assert KoineRequest.from_body(endpoint, request.body()) == request


def test_the_default_model_applies_once() -> None:
    base = {"prompt": "p", "default_model": "haiku"}
    assert KoineRequest.build(Endpoint.STREAM, **base).model == "haiku"
    assert KoineRequest.build(Endpoint.STREAM, model="sonnet", **base).model == "sonnet"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", 5),
        ("prompt", None),
        ("system", 5),
        ("model", 5),
        ("session_id", ["x"]),
        ("allowed_tools", "Bash"),
        ("allowed_tools", ["Read", ""]),
        ("allowed_tools", [3]),
    ],
)
def test_bad_values_are_invalid_arguments(field: str, value: object) -> None:
    args: dict[str, Any] = {"prompt": "p", field: value}
    with pytest.raises(KoineError) as info:
        KoineRequest.build(Endpoint.GENERATE_TEXT, **args)
    assert info.value.code == "INVALID_ARGUMENT"


def test_a_prompt_the_gateway_cannot_pass_is_refused_before_sending() -> None:
    with pytest.raises(KoineError) as info:
        KoineRequest.build(Endpoint.GENERATE_TEXT, prompt="x" * 200_000)
    assert info.value.code == "PROMPT_TOO_LARGE"


def test_endpoints_know_their_siblings_and_unknown_paths_are_none() -> None:
    assert Endpoint.STREAM.sibling is Endpoint.GENERATE_TEXT
    assert Endpoint.GENERATE_OBJECT.sibling is Endpoint.STREAM_OBJECT
    assert all(e.sibling.sibling is e for e in Endpoint)
    assert Endpoint.of("/stream") is Endpoint.STREAM and Endpoint.of("/health") is None
    with pytest.raises(KoineError):
        KoineRequest.build("/nope", prompt="p")
