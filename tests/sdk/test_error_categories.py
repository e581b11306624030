"""Errors by category: each code builds its subclass, carries ``.retryable`` and ``.fatal``,
pickles as itself, is never changed after raising (``replace`` makes a copy); 2.3.0's
``KNOWN_ERROR_CODES`` and ``to_error_code`` still import; ``Retry-After`` dates are read."""

from __future__ import annotations

import pickle
import time
from email.utils import formatdate
from typing import Any, get_args

import httpx
import pytest

from koine_sdk import (
    KoineAuthError,
    KoineConnectionError,
    KoineError,
    KoineRateLimitError,
    KoineResponseError,
    KoineTimeoutError,
    KoineValidationError,
    create_koine_sync,
)
from koine_sdk.errors import (
    KNOWN_ERROR_CODES,
    ErrorCode,
    _parse_retry_after,  # pyright: ignore[reportPrivateUsage]
    error_from_response,
    to_error_code,
)
from koine_sdk.testing import Fault

CASES: list[tuple[str, int | None, type[KoineError], bool]] = [
    ("NETWORK_ERROR", None, KoineConnectionError, True),
    ("CLIENT_CLOSED", None, KoineConnectionError, True),
    ("HTTP_ERROR", 502, KoineConnectionError, True),
    ("HTTP_ERROR", 418, KoineError, False),
    ("REQUEST_TIMEOUT", None, KoineTimeoutError, True),
    ("TIMEOUT_ERROR", 500, KoineTimeoutError, True),
    ("CONCURRENCY_LIMIT_ERROR", 429, KoineRateLimitError, True),
    ("VALIDATION_ERROR", 400, KoineValidationError, False),
    ("AUTH_MISSING", 401, KoineAuthError, False),
    ("AUTH_INVALID", 403, KoineAuthError, False),
    ("RESPONSE_TOO_LARGE", None, KoineResponseError, False),
    ("SSE_PARSE_ERROR", None, KoineResponseError, False),
    ("CLI_EXIT_ERROR", 500, KoineError, False),
]


@pytest.mark.parametrize(("code", "status", "cls", "retryable"), CASES)
def test_each_code_is_its_category(
    code: str, status: int | None, cls: type[KoineError], retryable: bool
) -> None:
    err = KoineError("boom", code, "raw", status=status, retry_after=2.0)
    assert type(err) is cls and isinstance(err, KoineError)
    assert err.retryable is retryable and err.code == code
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and (back.code, back.status, back.raw_text) == (code, status, "raw")


def test_fatal_codes_are_the_ones_no_request_can_pass() -> None:
    fatal = {c for c in get_args(ErrorCode) if KoineError("x", c).fatal}
    assert fatal == {
        "AUTH_MISSING",
        "AUTH_INVALID",
        "NOT_FOUND",
        "INVALID_CONFIG",
        "NO_TOOLS_AVAILABLE",
    }


def test_replace_copies_instead_of_changing() -> None:
    err = KoineError("bad object", "VALIDATION_ERROR", attempts=1)
    copy = err.replace(attempts=3)
    assert err.attempts == 1 and copy.attempts == 3
    assert type(copy) is KoineValidationError and copy.message == "bad object"


def test_every_code_the_project_raises_is_known() -> None:
    """Codes written as string literals next to KoineError(...) in both packages."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found: set[str] = set()
    pattern = re.compile(r'KoineError\([^()]*?,\s*"([A-Z_]+)"', re.S)
    for path in [*root.glob("koine_sdk/**/*.py"), *root.glob("koine_jupyter/**/*.py")]:
        if "testing" in path.parts:
            continue  # the local gateway sends codes, it does not raise them
        found |= set(pattern.findall(path.read_text()))
    assert found, "the scan found nothing: the pattern is wrong"
    assert found <= KNOWN_ERROR_CODES, found - KNOWN_ERROR_CODES
    for code in ("BUDGET_EXCEEDED", "INTERRUPTED", "NOT_SENT", "RESPONSE_TOO_LARGE"):
        assert code in KNOWN_ERROR_CODES


def test_2_3_0_helpers_import_as_they_did() -> None:
    assert isinstance(KNOWN_ERROR_CODES, frozenset)
    assert {"HTTP_ERROR", "VALIDATION_ERROR", "SSE_PARSE_ERROR"} <= KNOWN_ERROR_CODES
    assert to_error_code("VALIDATION_ERROR", "UNKNOWN_ERROR") == "VALIDATION_ERROR"
    assert to_error_code("SOMETHING_NEW", "HTTP_ERROR") == "HTTP_ERROR"
    assert to_error_code(None, "HTTP_ERROR") == "HTTP_ERROR"
    assert to_error_code("", "HTTP_ERROR") == "HTTP_ERROR"


def test_retry_after_as_an_http_date() -> None:
    soon = formatdate(time.time() + 20, usegmt=True)
    seconds = _parse_retry_after(soon)
    assert seconds is not None and 15 <= seconds <= 21
    assert _parse_retry_after(formatdate(time.time() - 100, usegmt=True)) == 0.0
    assert _parse_retry_after(formatdate(time.time() + 10**7, usegmt=True)) == 3600.0
    assert _parse_retry_after("not a date") is None
    err = error_from_response(429, b"", httpx.Headers({"retry-after": soon}))
    assert isinstance(err, KoineRateLimitError) and err.retry_after is not None


def test_a_gateway_429_is_caught_as_a_rate_limit(koine_gateway: Any) -> None:
    koine_gateway.enqueue(Fault.rate_limited(retry_after=1))
    with create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key) as k:
        with pytest.raises(KoineRateLimitError) as info:
            k.generate_text(prompt="hi")
    assert info.value.retryable and info.value.status == 429
