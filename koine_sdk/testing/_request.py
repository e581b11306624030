"""Reading a request as the real gateway does: the body as ``express.json()`` parses it, and the
bearer key check."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ._jsontext import strict_loads
from ._responses import NO_KEY, WRONG_KEY, fault_response
from ._settings import GatewaySettings

__all__ = ["BAD_JSON", "MAX_BODY_BYTES", "auth_error", "parse_body"]

MAX_BODY_BYTES = 10 * 1024 * 1024
BAD_JSON = object()


def parse_body(request: Request, raw: bytes) -> Any:
    """Like express.json(): only for a JSON content type; empty → {}; strict (object/array)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" or not raw.strip():
        return {}
    if len(raw) > MAX_BODY_BYTES:
        return BAD_JSON  # express.json({limit: "10mb"}) fails, the error handler answers 500
    text = raw.decode("utf-8", "replace")
    if text.lstrip()[:1] not in ("{", "["):
        return BAD_JSON
    try:
        return strict_loads(text)
    except ValueError:
        return BAD_JSON


def auth_error(settings: GatewaySettings, request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):  # as the gateway checks it: case and space matter
        return fault_response(NO_KEY)
    if not secrets.compare_digest(header[7:].encode(), settings.auth_key.encode()):
        return fault_response(WRONG_KEY)
    return None
