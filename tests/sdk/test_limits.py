"""Prompts the gateway cannot spawn: the SDK measures every CLI argument as the gateway builds it
and raises PROMPT_TOO_LARGE before sending. The local gateway models the real one (500 on
``/generate-*``; a stream takes its process down), so a prompt that slipped through would show."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, Field

from koine_sdk import KoineError, create_koine, create_koine_sync
from koine_sdk._jsjson import js_number, js_stringify
from koine_sdk._limits import MAX_ARG_BYTES, STREAM_OBJECT_PROMPT_EXTRA
from koine_sdk.testing import LocalGateway


class Note(BaseModel):
    text: str = Field(description="a note")
    weight: float = Field(default=1.0, ge=0.5)


def _schema_text(indent: int | None) -> str:
    return js_stringify(Note.model_json_schema(), indent)


# -- JSON.stringify, as Node writes it ---------------------------------------------------------


def test_js_stringify_matches_node() -> None:
    value = {
        "a": 1.0, "b": [], "c": {}, "d": 0.00005, "e": 1e21, "f": 5e-7, "g": "é\n\u0001\u2028",
        "h": [1, {"x": None}], "i": 123456789012345680000.0, "j": -0.1, "k": 1.5e300, "l": 1e-6,
        "m": True,
    }  # fmt: skip
    # Both outputs were printed by Node 18's JSON.stringify(value) / (value, null, 2).
    assert js_stringify(value) == (
        '{"a":1,"b":[],"c":{},"d":0.00005,"e":1e+21,"f":5e-7,"g":"é\\n\\u0001\u2028",'
        '"h":[1,{"x":null}],"i":123456789012345680000,"j":-0.1,"k":1.5e+300,"l":0.000001,'
        '"m":true}'
    )
    assert js_stringify({"h": [1, {"x": None}], "b": []}, 2) == (
        '{\n  "h": [\n    1,\n    {\n      "x": null\n    }\n  ],\n  "b": []\n}'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (-0.0, "0"), (100.0, "100"), (1e20, "100000000000000000000"), (1.5e-5, "0.000015"),
     (1.25e-7, "1.25e-7"), (123.456, "123.456"), (float("nan"), "null"), (2.5e21, "2.5e+21")],
)  # fmt: skip
def test_js_number(value: float, text: str) -> None:
    assert js_number(value) == text


# -- the check, against the local gateway --------------------------------------------------------


def _calls(schema: Any = Note) -> dict[str, Callable[[Any, str], Any]]:
    return {
        "/generate-text": lambda k, p: k.generate_text(prompt=p),
        "/generate-object": lambda k, p: k.generate_object(prompt=p, schema=schema),
        "/stream": lambda k, p: k.stream_text(prompt=p),
        "/stream-object": lambda k, p: k.stream_object(prompt=p, schema=schema),
    }


@pytest.mark.parametrize("path", list(_calls()))
def test_a_prompt_over_the_limit_is_never_sent(path: str, koine_gateway: LocalGateway) -> None:
    koine = create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with pytest.raises(KoineError) as info:
        _calls()[path](koine, "é" * 70_000)  # 140,000 bytes in UTF-8
    err = info.value
    assert err.code == "PROMPT_TOO_LARGE"
    assert ("131,071" in err.message and "140,000" in err.message) or path == "/stream-object"
    assert "nothing was sent" in err.message
    assert koine_gateway.requests == [] and not koine_gateway.crashed
    koine.close()


def test_each_argument_is_checked(koine_gateway: LocalGateway) -> None:
    koine = create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    big = "s" * (MAX_ARG_BYTES + 1)
    for kwargs, what in [
        ({"system": big}, "the system prompt"),
        ({"model": big}, "the model name"),
        ({"session_id": big}, "the session id"),
        ({"allowed_tools": ["Read", big]}, "the tool name"),
    ]:
        with pytest.raises(KoineError) as info:
            koine.generate_text(prompt="p", **kwargs)
        assert info.value.code == "PROMPT_TOO_LARGE"
        assert info.value.message.startswith(what), info.value.message
    assert koine_gateway.requests == []
    koine.close()


def test_the_limit_is_the_gateways(koine_gateway_factory: Callable[..., LocalGateway]) -> None:
    """At the limit the gateway still spawns (so the SDK must send it); one byte more and the SDK
    refuses. On /stream-object the argument is the prompt plus the instruction and the schema
    (JSON.stringify with an indent of 2), so the prompt itself must be that much shorter."""
    gw = koine_gateway_factory()
    koine = create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key)
    limits = {
        "/generate-text": MAX_ARG_BYTES,
        "/stream": MAX_ARG_BYTES,
        "/generate-object": MAX_ARG_BYTES,
        "/stream-object": MAX_ARG_BYTES - STREAM_OBJECT_PROMPT_EXTRA - len(_schema_text(2)),
    }
    for path, call in _calls().items():
        longest = "x" * limits[path]
        result = call(koine, longest)
        if path.startswith("/stream"):
            with result as r:
                r.text() if path == "/stream" else r.object()
        else:
            assert result.usage.input_tokens > 0
        assert gw.requests[-1].path == path and not gw.crashed
        with pytest.raises(KoineError) as info:
            call(koine, longest + "x")
        assert info.value.code == "PROMPT_TOO_LARGE", path
    koine.close()


def test_a_schema_too_large_for_generate_object(koine_gateway: LocalGateway) -> None:
    schema = {"type": "object", "description": "d" * MAX_ARG_BYTES}
    koine = create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    with pytest.raises(KoineError) as info:
        koine.generate_object(prompt="p", schema=schema)  # type: ignore[arg-type]
    assert info.value.code == "PROMPT_TOO_LARGE"
    assert info.value.message.startswith("the schema")
    koine.close()


async def test_the_async_client_checks_too(koine_gateway: LocalGateway) -> None:
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
    ) as koine:
        with pytest.raises(KoineError) as info:
            koine.stream_text(prompt="x" * (MAX_ARG_BYTES + 1))
        assert info.value.code == "PROMPT_TOO_LARGE"
        with pytest.raises(KoineError):
            await koine.generate_text(prompt="x" * (MAX_ARG_BYTES + 1))
    assert koine_gateway.requests == []


def test_a_lone_surrogate_is_sent_as_an_escape(koine_gateway: LocalGateway) -> None:
    koine = create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    assert koine.generate_text(prompt="a\ud800b").text.startswith("Echo: a")
    assert b"\\ud800" in koine_gateway.requests[-1].body
    assert json.loads(koine_gateway.requests[-1].body)["prompt"] == "a\ud800b"
    koine.close()
