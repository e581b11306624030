"""The async client: glues :mod:`._transport` (the wire) to :mod:`._sse` and :mod:`._streams`
(the protocol)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import httpx
from pydantic import ValidationError

from ._config import KoineConfig
from ._limits import check_arguments
from ._partial import parser_for
from ._repair import repair_prompt
from ._results import StreamObjectResult, StreamTextResult
from ._streams import ObjectStreamState, TextStreamState
from ._transport import Transport, build_body
from .errors import KoineError
from .types import (
    GenerateObjectResult,
    GenerateTextResult,
    HealthStatus,
    KoineUsage,
    _GenerateObjectWire,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["KoineClient", "StreamObjectResult", "StreamTextResult", "create_koine"]

T = TypeVar("T")


def _usage_in(body: bytes) -> KoineUsage | None:
    """The ``usage`` of an answer that is otherwise unusable, if it can be read (it was paid)."""
    try:
        data = json.loads(body)
        return KoineUsage.model_validate(data["usage"]) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def _invalid_response(what: str, body: bytes) -> KoineError:
    return KoineError(
        f"the gateway's answer is not {what}",
        "INVALID_RESPONSE",
        body.decode("utf-8", "replace")[:4096],
        status=200,
        usage=_usage_in(body),
    )


def _check_timeout(timeout: object) -> float | None:
    """A per-call ``timeout``: ``None`` (the client's) or a finite number of seconds > 0."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise KoineError(
            f"timeout must be a positive number of seconds or None (got {timeout!r})",
            "INVALID_ARGUMENT",
        )
    return float(timeout)


def _check_repairs(repairs: object) -> int:
    if isinstance(repairs, bool) or not isinstance(repairs, int) or repairs < 0:
        raise KoineError(
            f"repairs must be a whole number >= 0 (got {repairs!r})", "INVALID_ARGUMENT"
        )
    return repairs


def _sum(total: KoineUsage | None, usage: KoineUsage) -> KoineUsage:
    return usage if total is None else total + usage


class KoineClient:
    """Async client of a Koine gateway. Make it with :func:`create_koine`.

    One pooled HTTP client serves every call; close it with ``await koine.aclose()`` or use
    ``async with create_koine(...) as koine:``. The auth key never appears in ``repr``.
    """

    def __init__(
        self,
        config: KoineConfig,
        *,
        max_retries: int = 0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise KoineError(
                f"max_retries must be a whole number >= 0 (got {max_retries!r})", "INVALID_CONFIG"
            )
        self.config = config.validated()
        self._transport = Transport(self.config, max_retries=max_retries, http_client=http_client)

    def __repr__(self) -> str:
        return f"KoineClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a client you passed in as ``http_client`` stays open)."""
        await self._transport.aclose()

    @property
    def max_retries(self) -> int:
        return self._transport.max_retries

    def _body(
        self,
        path: str,
        prompt: str,
        system: str | None,
        session_id: str | None,
        allowed_tools: Sequence[str] | None,
        model: str | None,
        schema: dict[str, Any] | None = None,
    ) -> bytes:
        """The request body, after checking the arguments (``INVALID_ARGUMENT``) and that the
        gateway can pass each of them to the CLI (``PROMPT_TOO_LARGE``): nothing is sent
        otherwise."""
        model = model if model is not None else self.config.model
        body = build_body(
            prompt=prompt,
            system=system,
            session_id=session_id,
            allowed_tools=allowed_tools,
            model=model,
            schema=schema,
        )
        check_arguments(
            path,
            prompt=prompt,
            system=system,
            session_id=session_id,
            model=model,
            tools=allowed_tools,
            schema=schema,
        )
        return body

    # -- text -------------------------------------------------------------------------------

    async def generate_text(
        self,
        *,
        prompt: str,
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> GenerateTextResult:
        """Generate text from a prompt. ``session_id`` continues an earlier conversation;
        ``allowed_tools`` narrows the CLI tools the gateway allows.

        Cancelling the call (or Ctrl-C on the sync client) closes the connection and frees the
        gateway's slot, but the real gateway lets that CLI run to its end (only streams are
        stopped on disconnect): the tokens are spent anyway."""
        timeout = _check_timeout(timeout)
        body = self._body("/generate-text", prompt, system, session_id, allowed_tools, model)
        _, content = await self._transport.request_json(
            "POST", "/generate-text", body, timeout=timeout
        )
        try:
            return GenerateTextResult.model_validate_json(content)
        except ValidationError:
            raise _invalid_response("a generate-text result", content) from None

    def stream_text(
        self,
        *,
        prompt: str,
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
        keep_text: bool = True,
    ) -> StreamTextResult:
        """Stream text as it is written: ``async with koine.stream_text(prompt=...) as r:``
        then ``async for chunk in r.text_stream``; afterwards ``await r.text()``,
        ``await r.usage()``, ``await r.session_id()``.

        The stream keeps every chunk for ``r.text()``, so its memory grows with the answer.
        ``keep_text=False`` keeps nothing (memory stays flat however long the stream), for a
        consumer that handles each chunk itself; ``r.text()`` and ``r.received_text`` then raise
        ``INVALID_ARGUMENT``."""
        timeout = _check_timeout(timeout)
        body = self._body("/stream", prompt, system, session_id, allowed_tools, model)
        state = TextStreamState(keep_text=keep_text)
        return StreamTextResult(self._transport, "/stream", body, timeout, state)

    # -- objects ----------------------------------------------------------------------------

    async def generate_object(
        self,
        *,
        prompt: str,
        schema: type[T],
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
        repairs: int = 0,
    ) -> GenerateObjectResult[T]:
        """Extract an object of ``schema`` (a Pydantic model class, or a type such as
        ``list[Model]``). The object is validated; a mismatch raises ``VALIDATION_ERROR`` with
        the raw JSON text in ``raw_text`` and the tokens spent in ``usage``.

        ``repairs=N`` (default 0) gives the model up to N more tries: when its answer fails the
        schema, the same session is resumed with the validation errors and a request for the
        corrected object. The result's ``attempts`` counts the answers (1 when the first was
        valid) and ``usage`` sums them all; when every try fails, ``VALIDATION_ERROR`` carries
        ``attempts`` and the summed ``usage``. (``stream_object`` has no repair loop: catch its
        ``VALIDATION_ERROR`` and call ``generate_object(..., session_id=...)`` yourself.)

        Cancelling the call frees the gateway's slot, but the real gateway lets the CLI run to
        its end (see :meth:`generate_text`)."""
        repairs = _check_repairs(repairs)
        timeout = _check_timeout(timeout)
        parser: Any = parser_for(schema)
        json_schema = parser.json_schema()
        ask, session = prompt, session_id
        attempts = 0
        total: KoineUsage | None = None
        while True:
            body = self._body(
                "/generate-object", ask, system, session, allowed_tools, model, json_schema
            )
            try:
                _, content = await self._transport.request_json(
                    "POST", "/generate-object", body, timeout=timeout
                )
            except KoineError as exc:
                if attempts:  # a repair failed: the earlier answers were paid all the same
                    exc.usage = exc.usage or total
                    exc.attempts = attempts
                raise
            attempts += 1
            try:
                wire = _GenerateObjectWire.model_validate_json(content)
            except ValidationError:
                error = _invalid_response("a generate-object result", content)
                error.usage = _sum(total, error.usage) if error.usage is not None else total
                error.attempts = attempts
                raise error from None
            total = _sum(total, wire.usage)
            try:
                obj = parser.validate_final(wire.object, wire.raw_text)
            except KoineError as exc:
                exc.usage, exc.attempts = total, attempts
                if attempts > repairs:
                    raise
                ask, session = repair_prompt(exc), wire.session_id
                continue
            result: GenerateObjectResult[T] = GenerateObjectResult(
                object=obj,
                raw_text=wire.raw_text,
                usage=total,
                session_id=wire.session_id,
                attempts=attempts,
            )
            return result

    def stream_object(
        self,
        *,
        prompt: str,
        schema: type[T],
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> StreamObjectResult[T]:
        """Stream an object as its JSON is written: ``async with koine.stream_object(...) as r:``
        then ``async for partial in r.partial_object_stream`` (each a partial view of
        ``schema``: any field may still be missing); afterwards ``await r.object()``.

        No repair loop here (see :meth:`generate_object`)."""
        timeout = _check_timeout(timeout)
        parser: Any = parser_for(schema)
        body = self._body(
            "/stream-object", prompt, system, session_id, allowed_tools, model, parser.json_schema()
        )
        return StreamObjectResult(
            self._transport, "/stream-object", body, timeout, ObjectStreamState(parser)
        )

    # -- health -----------------------------------------------------------------------------

    async def health(self, *, timeout: float | None = None) -> HealthStatus:
        """The gateway's ``/health`` (a 503 "unhealthy" answer is returned, not raised)."""
        timeout = _check_timeout(timeout)
        _, content = await self._transport.request_json(
            "GET", "/health", None, timeout=timeout, ok_statuses=(503,)
        )
        try:
            return HealthStatus.model_validate_json(content)
        except ValidationError:
            raise _invalid_response("a health status", content) from None


@overload
def create_koine(
    config: KoineConfig, /, *, max_retries: int = ..., http_client: httpx.AsyncClient | None = ...
) -> KoineClient: ...
@overload
def create_koine(
    config: None = None,
    /,
    *,
    base_url: str | None = ...,
    auth_key: str | None = ...,
    timeout: float | None = ...,
    model: str | None = ...,
    max_retries: int = ...,
    http_client: httpx.AsyncClient | None = ...,
) -> KoineClient: ...
def create_koine(
    config: KoineConfig | None = None,
    /,
    *,
    base_url: str | None = None,
    auth_key: str | None = None,
    timeout: float | None = None,
    model: str | None = None,
    max_retries: int = 0,
    http_client: httpx.AsyncClient | None = None,
) -> KoineClient:
    """Create an async client. Pass a :class:`KoineConfig`, or keywords; what is not given
    comes from the environment (``KOINE_BASE_URL``, ``KOINE_AUTH_KEY``, ``KOINE_TIMEOUT``,
    ``KOINE_MODEL``). The configuration is validated once, here (``INVALID_CONFIG``).

    ``max_retries`` (default 0: the SDK does not retry) retries 429 answers, waiting
    ``Retry-After``, and connection failures, before any response was used.
    """
    if config is None:
        config = KoineConfig.from_env(
            base_url=base_url, auth_key=auth_key, timeout=timeout, model=model
        )
    elif not isinstance(config, KoineConfig):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise KoineError(
            f"create_koine takes a KoineConfig (got {type(config).__name__})", "INVALID_CONFIG"
        )
    elif any(v is not None for v in (base_url, auth_key, timeout, model)):
        raise KoineError(
            "pass either a KoineConfig or keyword settings, not both", "INVALID_CONFIG"
        )
    return KoineClient(config, max_retries=max_retries, http_client=http_client)
