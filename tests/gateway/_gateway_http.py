"""Helpers of the gateway tests that talk plain HTTP (httpx) to the local gateway."""

from __future__ import annotations

import json
from typing import Any

import httpx

from koine_sdk.testing import LocalGateway

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    "required": ["city", "temp"],
}


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """(event name, decoded data) of every event in an SSE body (LF or CRLF framing)."""
    events: list[tuple[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        names = [line[7:] for line in lines if line.startswith("event: ")]
        datas = [line[6:] for line in lines if line.startswith("data: ")]
        if datas:
            events.append((names[0] if names else "message", json.loads(datas[0])))
    return events


def post(
    http: httpx.Client, gw: LocalGateway, path: str, body: Any, **headers: str
) -> httpx.Response:
    return http.post(gw.base_url + path, json=body, headers={**gw.headers, **headers})
