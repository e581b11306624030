"""Where a request is built: the :class:`Endpoint` enum and the frozen :class:`KoineRequest`.

A request checks itself once (types: ``INVALID_ARGUMENT``; what the gateway can pass to the
CLI: ``PROMPT_TOO_LARGE``), then gives the body bytes sent on the wire and the ledger key of
that very body. The client, record/replay, ``extract`` and the local gateway all use it, so a
body and its key can never disagree.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._limits import check_arguments
from .errors import KoineError
from .ledger._key import RequestShape, request_key

__all__ = ["Endpoint", "KoineRequest"]


class Endpoint(enum.Enum):
    """The four generation endpoints (the value is the path)."""

    GENERATE_TEXT = "/generate-text"
    GENERATE_OBJECT = "/generate-object"
    STREAM = "/stream"
    STREAM_OBJECT = "/stream-object"

    @property
    def path(self) -> str:
        return self.value

    @property
    def streaming(self) -> bool:
        """Answers as server-sent events."""
        return self in (Endpoint.STREAM, Endpoint.STREAM_OBJECT)

    @property
    def wants_object(self) -> bool:
        """Takes a ``schema`` and answers with an object."""
        return self in (Endpoint.GENERATE_OBJECT, Endpoint.STREAM_OBJECT)

    @property
    def sibling(self) -> Endpoint:
        """The same answer by the other transport: ``/stream`` <-> ``/generate-text``,
        ``/stream-object`` <-> ``/generate-object`` (a recorded answer serves both)."""
        return _SIBLINGS[self]

    @classmethod
    def of(cls, path: str) -> Endpoint | None:
        """The endpoint at ``path``, or ``None`` for any other path."""
        try:
            return cls(path)
        except ValueError:
            return None


_SIBLINGS = {
    Endpoint.GENERATE_TEXT: Endpoint.STREAM,
    Endpoint.STREAM: Endpoint.GENERATE_TEXT,
    Endpoint.GENERATE_OBJECT: Endpoint.STREAM_OBJECT,
    Endpoint.STREAM_OBJECT: Endpoint.GENERATE_OBJECT,
}


def _string(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise KoineError(
            f"{name} must be a string (got {type(value).__name__})", "INVALID_ARGUMENT"
        )
    return value


def _tools(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence | set | frozenset):
        raise KoineError(
            "allowed_tools must be a list of tool names such as ['Read', 'Glob'] "
            f"(got {type(value).__name__})",
            "INVALID_ARGUMENT",
        )
    tools: list[str] = []
    for tool in value:  # pyright: ignore[reportUnknownVariableType]
        if not isinstance(tool, str) or not tool:
            raise KoineError(
                f"allowed_tools holds {tool!r}; tool names are non-empty strings",
                "INVALID_ARGUMENT",
            )
        tools.append(tool)
    return tuple(tools)


@dataclass(frozen=True, slots=True)
class KoineRequest:
    """One request to a generation endpoint, checked (build it with :meth:`build`).

    ``model`` is the model actually asked for (the call's, else the client's default);
    ``schema`` the JSON Schema sent (object endpoints only).
    """

    endpoint: Endpoint
    prompt: str
    system: str | None = None
    model: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    session_id: str | None = None
    schema: Mapping[str, Any] | None = None

    @classmethod
    def build(
        cls,
        endpoint: Endpoint | str,
        *,
        prompt: object,
        system: object = None,
        session_id: object = None,
        allowed_tools: object = None,
        model: object = None,
        default_model: str | None = None,
        schema: Mapping[str, Any] | None = None,
        check_size: bool = True,
    ) -> KoineRequest:
        """Check every argument and return the request: ``INVALID_ARGUMENT`` for a value of the
        wrong type, ``PROMPT_TOO_LARGE`` (unless ``check_size=False``) for one the gateway
        could not pass to the CLI. ``model=None`` takes ``default_model`` (the client's)."""
        point = endpoint if isinstance(endpoint, Endpoint) else Endpoint.of(endpoint)
        if point is None:
            raise KoineError(f"no such endpoint: {endpoint!r}", "INVALID_ARGUMENT")
        text = _string("prompt", prompt)
        if text is None:
            raise KoineError("prompt must be a string (got NoneType)", "INVALID_ARGUMENT")
        chosen = _string("model", model)
        if chosen is not None and not chosen.strip():
            raise KoineError("model must be a non-empty string or None", "INVALID_ARGUMENT")
        request = cls(
            point,
            text,
            _string("system", system),
            chosen if chosen is not None else default_model,
            _tools(allowed_tools),
            _string("session_id", session_id),
            schema if point.wants_object else None,
        )
        if check_size:
            request.check_size()
        return request

    def check_size(self) -> None:
        """``PROMPT_TOO_LARGE`` when one CLI argument the gateway builds would pass the OS
        limit (see :mod:`koine_sdk._limits`)."""
        check_arguments(
            self.endpoint.path,
            prompt=self.prompt,
            system=self.system,
            session_id=self.session_id,
            model=self.model,
            tools=self.allowed_tools,
            schema=dict(self.schema) if self.schema is not None else None,
        )

    def with_prompt(self, prompt: str) -> KoineRequest:
        """The same request with another prompt (not re-checked)."""
        return replace(self, prompt=prompt)

    def fields(self) -> dict[str, Any]:
        """The wire body as a dict: camelCase names, absent fields left out (never ``null``)."""
        body: dict[str, Any] = {"prompt": self.prompt}
        if self.system is not None:
            body["system"] = self.system
        if self.session_id is not None:
            body["sessionId"] = self.session_id
        if self.model is not None:
            body["model"] = self.model
        if self.allowed_tools is not None:
            body["allowedTools"] = list(self.allowed_tools)
        if self.schema is not None:
            body["schema"] = self.schema
        return body

    def body(self) -> bytes:
        """The bytes sent: compact JSON, UTF-8 (a lone surrogate, which UTF-8 cannot hold, is
        sent as its JSON escape)."""
        fields = self.fields()
        try:
            return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:
            return json.dumps(fields, separators=(",", ":")).encode()

    def key(self) -> str:
        """The ledger key of this request (:func:`koine_sdk.ledger.request_key` of its body)."""
        return request_key(self.endpoint.path, self.fields())

    def shape(self) -> RequestShape:
        """What requests differing only by prompt share: ``shape().key(prompt)`` is the key of
        :meth:`with_prompt` ``(prompt)``, the fixed part hashed once."""
        return RequestShape.of(self.endpoint.path, self.fields())

    @classmethod
    def from_body(cls, endpoint: Endpoint | str, body: bytes) -> KoineRequest:
        """The request a body (as :meth:`body` wrote it) holds, not re-checked for size."""
        fields: dict[str, Any] = json.loads(body)
        return cls.build(
            endpoint,
            prompt=fields.get("prompt"),
            system=fields.get("system"),
            session_id=fields.get("sessionId"),
            allowed_tools=fields.get("allowedTools"),
            model=fields.get("model"),
            schema=fields.get("schema"),
            check_size=False,
        )
