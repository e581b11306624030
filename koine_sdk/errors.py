"""Errors raised by the SDK: one exception type, :class:`KoineError`, with a ``code``.

Gateway codes pass through unchanged (``e.code == "CONCURRENCY_LIMIT_ERROR"`` works as the
gateway documents it); codes the SDK adds for its own failures are listed in :data:`ErrorCode`
beside them.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from .types import KoineUsage

__all__ = ["ErrorCode", "KoineError"]

ErrorCode = Literal[
    # Sent by the gateway.
    "VALIDATION_ERROR",  # 400: bad request body; also: a final object that fails your schema
    "NO_TOOLS_AVAILABLE",  # 400: every requested tool is blocked by the gateway
    "CONCURRENCY_LIMIT_ERROR",  # 429: too many requests at once; see ``retry_after``
    "TIMEOUT_ERROR",  # 500 / stream: the CLI behind the gateway timed out
    "CLI_EXIT_ERROR",  # 500 / stream: the CLI exited with an error
    "SPAWN_ERROR",  # 500 / stream: the CLI could not be started
    "PARSE_ERROR",  # 500 / stream: the gateway could not read the CLI's output / JSON
    "INTERNAL_ERROR",  # 500: any other gateway failure
    "UNKNOWN_ERROR",  # 500: the gateway could not classify the failure
    # Added by the SDK.
    "INVALID_CONFIG",  # the client configuration is unusable (caught before any request)
    "INVALID_ARGUMENT",  # a call's arguments are unusable (caught before any request)
    "AUTH_MISSING",  # 401: the gateway received no bearer key
    "AUTH_INVALID",  # 403: the gateway refused the bearer key
    "NOT_FOUND",  # 404: the path does not exist (wrong base_url?)
    "HTTP_ERROR",  # any other non-2xx status without a gateway code (proxies, HTML pages)
    "NETWORK_ERROR",  # connection refused, reset, DNS failure, server closed early
    "REQUEST_TIMEOUT",  # no answer (or no next event) within the configured timeout
    "INVALID_RESPONSE",  # a 2xx body that is not what the protocol promises
    "SSE_PARSE_ERROR",  # an event's data is not valid JSON / not of the documented shape
    "STREAM_INCOMPLETE",  # the stream ended before ``done``: the answer may be cut short
    "STREAM_ERROR",  # an ``error`` event without a code
    "NO_USAGE",  # the stream ended properly but without a ``result`` event: no usage
    "NO_SESSION",  # the stream ended properly but without a ``result`` event: no session id
    "NO_OBJECT",  # the object stream ended properly but without an ``object`` event
    "PROMPT_TOO_LARGE",  # one CLI argument would pass the OS limit (caught before sending)
    "RESPONSE_TOO_LARGE",  # a body, event line, event or answer passed its limit (not read on)
    "CLIENT_CLOSED",  # the client was closed before or during the call
    "REPLAY_MISS",  # strict replay: the request was never recorded (nothing was sent)
    "LEDGER_ERROR",  # the ledger file cannot be opened, read or written
]

_KNOWN_CODES: frozenset[str] = frozenset(get_args(ErrorCode))

_HINTS: dict[str, str] = {
    "AUTH_MISSING": "The gateway got no bearer key: set auth_key (or KOINE_AUTH_KEY).",
    "AUTH_INVALID": (
        "The gateway refused the key: auth_key (or KOINE_AUTH_KEY) must equal the gateway's "
        "CLAUDE_CODE_GATEWAY_API_KEY."
    ),
    "CONCURRENCY_LIMIT_ERROR": (
        "The gateway is busy (its concurrency limit is reached): retry after a pause, or pass "
        "max_retries to the client."
    ),
    "RESPONSE_TOO_LARGE": (
        "The answer passed a size limit and was not read further: raise it with "
        "KoineConfig(limits=ResponseLimits(...)) only for a gateway you trust."
    ),
    "NOT_FOUND": "No such endpoint: check that base_url points at a Koine gateway.",
    "NETWORK_ERROR": "Could not talk to the gateway: is it running at base_url?",
    "REPLAY_MISS": (
        "Strict replay answers from the ledger only: record this request first "
        "(replay='replay' or KOINE_REPLAY=replay sends what is missing and records it)."
    ),
}


class KoineError(Exception):
    """An error from the gateway or the SDK.

    Attributes:
        message: a readable description (never contains the auth key).
        code: one of :data:`ErrorCode`; a newer gateway may send codes not listed there.
        raw_text: the raw body or text involved, when there is one (gateway ``rawText``, an HTML
            error page, the JSON that failed validation).
        status: the HTTP status, when the error came with a response.
        retry_after: seconds to wait before retrying, from the ``Retry-After`` header.
        usage: the tokens the failed call was billed for, when the gateway answered (an object
            that failed validation, summed over every repair attempt); else ``None``.
        attempts: how many answers a ``generate_object(..., repairs=N)`` call received before
            it gave up; ``None`` for other errors.
    """

    message: str
    code: str
    raw_text: str | None
    status: int | None
    retry_after: float | None
    usage: KoineUsage | None
    attempts: int | None

    def __init__(
        self,
        message: str,
        code: ErrorCode | str,
        raw_text: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        usage: KoineUsage | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.raw_text = raw_text
        self.status = status
        self.retry_after = retry_after
        self.usage = usage
        self.attempts = attempts

    @property
    def hint(self) -> str | None:
        """What to do about it, for the common cases (``None`` when there is no advice)."""
        return _HINTS.get(self.code)

    def __str__(self) -> str:
        where = f" (HTTP {self.status})" if self.status is not None else ""
        return f"[{self.code}]{where} {self.message}"

    def __repr__(self) -> str:
        extra = ""
        if self.usage is not None:
            extra += f", usage={self.usage!r}"
        if self.attempts is not None:
            extra += f", attempts={self.attempts!r}"
        return (
            f"KoineError(message={self.message!r}, code={self.code!r}, status={self.status!r}, "
            f"retry_after={self.retry_after!r}{extra})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                self.message,
                self.code,
                self.raw_text,
                self.status,
                self.retry_after,
                self.usage,
                self.attempts,
            ),
        )


def _rebuild(
    message: str,
    code: str,
    raw_text: str | None,
    status: int | None,
    retry_after: float | None,
    usage: KoineUsage | None = None,
    attempts: int | None = None,
) -> KoineError:
    return KoineError(
        message,
        code,
        raw_text,
        status=status,
        retry_after=retry_after,
        usage=usage,
        attempts=attempts,
    )


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; ``None`` for a date, a negative, NaN or infinity."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: rare from this gateway; ignored rather than guessed
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_from_response(status: int, body: bytes, headers: Any) -> KoineError:
    """Map a non-2xx response to a :class:`KoineError` (never raises itself).

    ``headers`` is any mapping with ``get`` (an ``httpx.Headers``).
    """
    retry_after = _parse_retry_after(headers.get("retry-after"))
    text = body.decode("utf-8", errors="replace")
    payload: Any = None
    if text.strip():
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            payload = None
    message: str | None = None
    code: str | None = None
    raw_text: str | None = None
    if isinstance(payload, dict):
        error = payload.get("error")  # type: ignore[union-attr]
        if isinstance(error, str):
            message = error
        gw_code = payload.get("code")  # type: ignore[union-attr]
        if isinstance(gw_code, str) and gw_code:
            code = gw_code
        raw = payload.get("rawText")  # type: ignore[union-attr]
        if isinstance(raw, str):
            raw_text = raw
    if code is None:
        if status == 401:
            code = "AUTH_MISSING"
        elif status == 403:
            code = "AUTH_INVALID"
        elif status == 404:
            code = "NOT_FOUND"
        elif status == 429:
            code = "CONCURRENCY_LIMIT_ERROR"
        else:
            code = "HTTP_ERROR"
    if raw_text is None and payload is None and text.strip():
        raw_text = text[:4096]
    if message is None:
        snippet = " ".join(text.split())[:200]
        message = f"HTTP {status}" + (f": {snippet}" if snippet else " with an empty body")
    hint = _HINTS.get(code)
    if hint and code in ("AUTH_MISSING", "AUTH_INVALID", "NOT_FOUND"):
        message = f"{message}. {hint}"
    return KoineError(message, code, raw_text, status=status, retry_after=retry_after)
