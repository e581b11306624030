"""Errors raised by the SDK: :class:`KoineError`, with a ``code``, and its categories.

Gateway codes pass through unchanged (``e.code == "CONCURRENCY_LIMIT_ERROR"`` works as the
gateway documents it); codes the SDK adds for its own failures are listed in :data:`ErrorCode`
beside them. Each code belongs to a category, a subclass of :class:`KoineError` —
:class:`KoineConnectionError`, :class:`KoineTimeoutError`, :class:`KoineRateLimitError`,
:class:`KoineValidationError`, :class:`KoineAuthError`, :class:`KoineResponseError` — so
``except KoineRateLimitError`` and ``err.retryable`` work; ``KoineError(message, code)`` builds
the subclass of its code by itself. Errors are values: :meth:`KoineError.replace` makes a
changed copy instead of mutating one that was raised.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from .types import KoineUsage

__all__ = [
    "KNOWN_ERROR_CODES",
    "ErrorCode",
    "KoineAuthError",
    "KoineConnectionError",
    "KoineError",
    "KoineRateLimitError",
    "KoineResponseError",
    "KoineTimeoutError",
    "KoineValidationError",
    "to_error_code",
]

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
    # Added by extract (a row's error, never sent to the gateway).
    "BUDGET_EXCEEDED",  # the run's max_tokens/max_rows would be passed: the row was not sent
    "INTERRUPTED",  # the run was interrupted before the row finished
    "NOT_SENT",  # the run stopped (a fatal error) before the row was sent
]

_KNOWN_CODES: frozenset[str] = frozenset(get_args(ErrorCode))

KNOWN_ERROR_CODES: frozenset[str] = _KNOWN_CODES
"""Every code in :data:`ErrorCode` (as in koine-sdk 2.3.0, where the set was smaller: this one
holds the gateway's codes and every code this SDK and ``extract`` raise)."""


def to_error_code(code: str | None, fallback: ErrorCode) -> ErrorCode:
    """``code`` if it is a known code (:data:`KNOWN_ERROR_CODES`), else ``fallback``
    (2.3.0's helper, kept for code written against it)."""
    if code and code in _KNOWN_CODES:
        return code  # type: ignore[return-value]
    return fallback


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

    retryable: bool = False
    """Whether the same request may succeed if sent again later (a busy gateway, a broken
    connection, a timeout); see each category."""

    def __new__(
        cls,
        message: str,
        code: ErrorCode | str,
        raw_text: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        usage: KoineUsage | None = None,
        attempts: int | None = None,
    ) -> KoineError:
        # KoineError("...", code) is an instance of the category of its code.
        target: type[KoineError] = _category(code, status) if cls is KoineError else cls
        return Exception.__new__(target)

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
    def fatal(self) -> bool:
        """Whether every further request to this gateway would fail the same way (a wrong
        key, a wrong URL, a configuration no request can pass): a run stops at once."""
        return self.code in _FATAL

    def replace(self, **changes: Any) -> KoineError:
        """A copy with some fields changed (``usage=``, ``attempts=``, ``message=``, ...): errors
        are not changed after they are raised."""
        fields: dict[str, Any] = {
            "message": self.message,
            "code": self.code,
            "raw_text": self.raw_text,
            "status": self.status,
            "retry_after": self.retry_after,
            "usage": self.usage,
            "attempts": self.attempts,
        }
        fields.update(changes)
        message, code, raw_text = fields.pop("message"), fields.pop("code"), fields.pop("raw_text")
        copy = KoineError(message, code, raw_text, **fields)
        copy.__cause__ = self.__cause__  # e.g. pydantic's ValidationError behind a VALIDATION_ERROR
        return copy

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


class KoineConnectionError(KoineError):
    """The request did not get through: connection refused, reset or closed early, DNS, a
    client closed meanwhile, or a 5xx from something in front of the gateway (a proxy's 502).
    Retryable."""

    retryable = True


class KoineTimeoutError(KoineError):
    """No answer (or no next event) in time, or the CLI behind the gateway timed out.
    Retryable."""

    retryable = True


class KoineRateLimitError(KoineError):
    """The gateway is at its concurrency limit (429); ``retry_after`` says when to try again.
    Retryable."""

    retryable = True


class KoineValidationError(KoineError):
    """The request's body or the answer's object did not pass validation (400, or a final
    object that fails your schema). Not retryable as it is."""


class KoineAuthError(KoineError):
    """No key, or a key the gateway refuses (401/403). Not retryable."""


class KoineResponseError(KoineError):
    """The answer is not what the protocol promises: malformed, cut short, too large."""


_CATEGORIES: dict[str, type[KoineError]] = {
    "NETWORK_ERROR": KoineConnectionError,
    "CLIENT_CLOSED": KoineConnectionError,
    "REQUEST_TIMEOUT": KoineTimeoutError,
    "TIMEOUT_ERROR": KoineTimeoutError,
    "CONCURRENCY_LIMIT_ERROR": KoineRateLimitError,
    "VALIDATION_ERROR": KoineValidationError,
    "AUTH_MISSING": KoineAuthError,
    "AUTH_INVALID": KoineAuthError,
    "INVALID_RESPONSE": KoineResponseError,
    "SSE_PARSE_ERROR": KoineResponseError,
    "STREAM_INCOMPLETE": KoineResponseError,
    "RESPONSE_TOO_LARGE": KoineResponseError,
    "NO_USAGE": KoineResponseError,
    "NO_SESSION": KoineResponseError,
    "NO_OBJECT": KoineResponseError,
}

_FATAL: frozenset[str] = frozenset(
    {"AUTH_MISSING", "AUTH_INVALID", "NOT_FOUND", "INVALID_CONFIG", "NO_TOOLS_AVAILABLE"}
)


def _category(code: str, status: int | None) -> type[KoineError]:
    if code == "HTTP_ERROR" and status is not None and status >= 500:
        return KoineConnectionError  # a 5xx without a gateway code: in front of the gateway
    return _CATEGORIES.get(code, KoineError)


_MAX_RETRY_AFTER = 3600.0  # an HTTP date far ahead is capped here (callers cap further)


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, given as seconds or as an HTTP date; ``None``
    for a negative, NaN, infinity or something unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        import time

        seconds = min(_MAX_RETRY_AFTER, max(0.0, when.timestamp() - time.time()))
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
    # The gateway answers 401/403 with its own JSON error; the same status with an HTML page or
    # nothing comes from something in front of it (a proxy, a firewall): not about the key.
    gateway_said = isinstance(payload, dict) and message is not None
    if code is None:
        if status == 401 and gateway_said:
            code = "AUTH_MISSING"
        elif status == 403 and gateway_said:
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
