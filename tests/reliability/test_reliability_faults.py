"""Reliability: the fault matrix, run for the async client AND the sync client against the local
gateway's fault injection (plus every invalid configuration value).

Every case checks, for both clients:
- the outcome (a result, or a ``KoineError`` with the right ``code``/``status``) within a
  wall-clock bound (the client timeout + 2 s, unless the case says otherwise);
- that every awaited accessor (``text()``/``object()``, ``usage()``, ``session_id()``) raises or
  returns promptly afterwards, inside and after the ``with`` block: nothing waits forever;
- that text / partial objects already received stay available (``received_text``,
  ``latest_partial``, ``raw_text``);
- that the connection was closed or returned to the pool: the gateway has nothing in flight, the
  next call on the same client works, and (where the response was complete) reuses the same peer
  (``RecordedRequest.client``), or (where the client had to abandon the body) does not;
- that the auth key appears in no ``str``/``repr``/``raw_text`` of the error.

The ``%%koine`` magic runs a representative subset in ``test_reliability_magic.py``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from koine_sdk import KoineConfig, KoineError, create_koine, create_koine_sync
from koine_sdk.testing import Fault, Reply

Op = Literal["stream_text", "stream_object", "generate_text", "generate_object"]
Conn = Literal["reuse", "fresh"] | None

SETTLE = 3.0  # seconds an accessor may take after the stream failed or ended


class City(BaseModel):
    name: str
    population: int
    districts: list[str]


@dataclass(frozen=True)
class Case:
    id: str
    op: Op
    replies: tuple[Fault | Reply, ...] = ()
    prompt: str = "alpha beta gamma delta epsilon zeta"
    code: str | None = None  # None: the call must succeed
    status: int | None = None
    timeout: float = 2.0  # the client's timeout
    budget: float | None = None  # wall-clock bound of the call; default timeout + 2 s
    max_retries: int = 0
    received: bool = False  # text / a partial object must have arrived before the failure
    conn: Conn = None  # "reuse": the next call reuses the peer; "fresh": it must not
    disconnect: bool = False  # the gateway must see the client hang up
    refused: bool = False  # point the client at a closed port
    check: Callable[[Outcome], None] | None = None
    # accessor -> its outcome ("ok" or a code) where it differs from the call's (NO_USAGE...)
    accessors: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    error: KoineError | None = None
    value: Any = None
    elapsed: float = 0.0
    opened: bool = False  # the stream's ``with`` block was entered
    received_text: str = ""
    latest_partial: Any = None
    raw_text: str = ""
    warnings: list[Any] = field(default_factory=list[Any])
    after: dict[str, str] = field(default_factory=dict[str, str])  # accessor → "ok"/"CODE"
    after_exit: dict[str, str] = field(default_factory=dict[str, str])
    next_text: str | None = None


def _check_warnings(o: Outcome) -> None:
    assert any(w.code == "BUFFER_PARSE_WARNING" for w in o.warnings), o.warnings


def _check_utf8(o: Outcome) -> None:
    assert "\ufffd" not in o.value
    assert any(ord(c) > 0x7F for c in o.value), o.value


def _check_huge(o: Outcome) -> None:
    assert len(o.value.encode()) >= 1_000_000


def _check_after_done(o: Outcome) -> None:
    assert o.value == "Echo: alpha beta gamma delta epsilon zeta"  # nothing after done leaks in


def _check_retry_after(seconds: float | None) -> Callable[[Outcome], None]:
    def check(o: Outcome) -> None:
        assert o.error is not None
        assert o.error.retry_after == seconds
        if seconds is not None:
            assert o.error.hint and "max_retries" in o.error.hint

    return check


def _check_html(o: Outcome) -> None:
    assert o.error is not None and o.error.raw_text is not None
    assert "<html>" in o.error.raw_text


def _check_empty(o: Outcome) -> None:
    assert o.error is not None
    assert "empty body" in o.error.message


def _check_skipped_partial(o: Outcome) -> None:
    assert [w.code for w in o.warnings] == ["PARTIAL_OBJECT_SKIPPED"], o.warnings
    assert o.value.name  # the final object event carried the answer


def _check_object_raw(o: Outcome) -> None:
    assert o.error is not None and o.error.raw_text
    assert o.raw_text  # the JSON text received stays available on the stream


TRICKLE = tuple(f"w{i} " for i in range(8))

CASES: list[Case] = [
    # -- the stream breaks --------------------------------------------------------------------
    Case("drop-mid-stream", "stream_text", (Fault.drop(after=2),), code="STREAM_INCOMPLETE",
         received=True, conn="fresh"),
    Case("drop-before-output", "stream_text", (Fault.drop(after=0),), code="STREAM_INCOMPLETE",
         conn="fresh"),
    Case("drop-mid-object", "stream_object", (Fault.drop(after=3),), code="STREAM_INCOMPLETE",
         received=True, conn="fresh"),
    Case("drop-generate", "generate_text", (Fault.drop(),), code="NETWORK_ERROR"),
    Case("error-event-after-text", "stream_text", (Fault.cli_error(after=2),),
         code="CLI_EXIT_ERROR", received=True, conn="reuse"),
    Case("error-event-after-partials", "stream_object", (Fault.cli_error(after=3),),
         code="CLI_EXIT_ERROR", received=True, conn="reuse"),
    Case("cli-error-generate", "generate_text", (Fault.cli_error(),), code="CLI_EXIT_ERROR",
         status=500, conn="reuse"),
    Case("malformed-json-text", "stream_text", (Fault.malformed_line(after=2),),
         code="SSE_PARSE_ERROR", received=True),
    Case("malformed-json-partial-object", "stream_object", (Fault.malformed_line(after=3),),
         check=_check_skipped_partial, conn="reuse"),
    Case("truncated-json-generate", "generate_text", (Fault.malformed_line(),),
         code="INVALID_RESPONSE", status=200, conn="reuse"),
    # done code 0 without result: the answer is complete, only usage and session id are missing
    Case("no-result-event", "stream_text", (Fault.no_result(),), received=True, conn="reuse",
         accessors=(("usage", "NO_USAGE"), ("session_id", "NO_SESSION"))),
    # (the gateway sends the object when the CLI's result line comes: none without it)
    Case("no-result-event-object", "stream_object", (Fault.no_result(),), code="NO_OBJECT",
         received=True, conn="reuse",
         accessors=(("usage", "NO_USAGE"), ("session_id", "NO_SESSION"))),
    # the body ends inside the closing events, without done
    Case("error-event-without-blank-line", "stream_text",
         (Reply.faulty(Fault.cli_error(after=2), Fault.cut_end()),), code="CLI_EXIT_ERROR",
         received=True, conn="fresh"),
    Case("error-event-cut-mid-line", "stream_text",
         (Reply.faulty(Fault.cli_error(after=2), Fault.cut_end("mid-line")),),
         code="STREAM_INCOMPLETE", received=True, conn="fresh"),
    Case("result-without-done", "stream_text", (Fault.cut_end(),), code="STREAM_INCOMPLETE",
         received=True, conn="fresh", accessors=(("usage", "ok"), ("session_id", "ok"))),
    Case("result-cut-mid-line", "stream_object", (Fault.cut_end("mid-line"),),
         code="STREAM_INCOMPLETE", received=True, conn="fresh"),
    # -- odd but valid framing: must succeed ---------------------------------------------------
    Case("unknown-events", "stream_text", (Fault.unknown_events(),), conn="reuse"),
    Case("unknown-events-object", "stream_object", (Fault.unknown_events(),), conn="reuse"),
    Case("extra-warnings", "stream_text", (Fault.extra_warnings(),), check=_check_warnings),
    Case("crlf", "stream_text", (Fault.crlf(),), conn="reuse"),
    Case("crlf-object", "stream_object", (Fault.crlf(),)),
    Case("split-utf8", "stream_text", (Fault.split_utf8(),), check=_check_utf8),
    Case("huge-event-1mb", "stream_text", (Fault.huge_event(1_000_000),), check=_check_huge,
         conn="reuse"),
    Case("events-after-done", "stream_text", (Fault.events_after_done(),),
         check=_check_after_done, conn="reuse"),
    # -- proxies and HTTP statuses --------------------------------------------------------------
    Case("500-html-stream", "stream_text", (Fault.http_error(500, "html"),), code="HTTP_ERROR",
         status=500, check=_check_html, conn="reuse"),
    Case("502-html-generate", "generate_text", (Fault.http_error(502, "html"),),
         code="HTTP_ERROR", status=502, check=_check_html, conn="reuse"),
    Case("502-empty-stream", "stream_text", (Fault.http_error(502, "empty"),), code="HTTP_ERROR",
         status=502, check=_check_empty, conn="reuse"),
    Case("500-empty-generate", "generate_object", (Fault.http_error(500, "empty"),),
         code="HTTP_ERROR", status=500, check=_check_empty),
    Case("401-stream", "stream_text", (Fault.unauthorized(),), code="AUTH_MISSING", status=401,
         conn="reuse"),
    Case("401-generate", "generate_text", (Fault.unauthorized(),), code="AUTH_MISSING",
         status=401),
    Case("403-stream", "stream_object", (Fault.forbidden(),), code="AUTH_INVALID", status=403),
    Case("403-generate", "generate_text", (Fault.forbidden(),), code="AUTH_INVALID", status=403),
    Case("429-retry-after", "stream_text", (Fault.rate_limited(retry_after=5),),
         code="CONCURRENCY_LIMIT_ERROR", status=429, check=_check_retry_after(5.0),
         conn="reuse"),
    Case("429-no-retry-after", "generate_text", (Fault.rate_limited(retry_after=None),),
         code="CONCURRENCY_LIMIT_ERROR", status=429, check=_check_retry_after(None)),
    Case("429-retried", "stream_text", (Fault.rate_limited(retry_after=0),), max_retries=2),
    # -- time -----------------------------------------------------------------------------------
    Case("first-byte-after-timeout-stream", "stream_text", (Fault.slow_first_byte(4.0),),
         code="REQUEST_TIMEOUT", timeout=0.5, disconnect=True, conn="fresh"),
    Case("first-byte-after-timeout-generate", "generate_text", (Fault.slow_first_byte(4.0),),
         code="REQUEST_TIMEOUT", timeout=0.5, disconnect=True, conn="fresh"),
    Case("stall-mid-stream", "stream_text", (Reply.text(["a ", "b"], chunk_delay=4.0),),
         code="REQUEST_TIMEOUT", timeout=0.5, disconnect=True, conn="fresh"),
    Case("slow-first-byte-within-timeout", "stream_text", (Fault.slow_first_byte(0.4),),
         timeout=1.5, conn="reuse"),
    # 8 pieces 0.25 s apart: 2 s in all, twice the 1 s timeout, which bounds each wait only.
    Case("slow-trickle-within-timeout", "stream_text", (Reply.text(TRICKLE, chunk_delay=0.25),),
         timeout=1.0, budget=5.0, conn="reuse"),
    # -- the connection -------------------------------------------------------------------------
    Case("refused-stream", "stream_text", code="NETWORK_ERROR", refused=True),
    Case("refused-generate", "generate_object", code="NETWORK_ERROR", refused=True),
    Case("close-before-headers-stream", "stream_text", (Fault.close_before_headers(),),
         code="NETWORK_ERROR", conn="fresh"),
    Case("close-before-headers-generate", "generate_text", (Fault.close_before_headers(),),
         code="NETWORK_ERROR", conn="fresh"),
    # -- objects --------------------------------------------------------------------------------
    Case("invalid-object-stream", "stream_object", (Fault.invalid_object(),),
         code="VALIDATION_ERROR", check=_check_object_raw, received=True, conn="reuse"),
    Case("invalid-object-generate", "generate_object", (Fault.invalid_object(),),
         code="VALIDATION_ERROR", conn="reuse"),
    Case("object-event-missing", "stream_object", (Fault.no_object(),),
         code="NO_OBJECT", received=True, conn="reuse"),
    Case("events-after-done-object", "stream_object", (Fault.events_after_done(),),
         conn="reuse"),
]  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, KoineError) else f"{type(exc).__name__}: {exc}"


# -- the async driver --------------------------------------------------------------------------


async def _settle_async(coro: Any) -> str:
    try:
        await asyncio.wait_for(coro, SETTLE)
    except TimeoutError:
        return "HANG"
    except KoineError as exc:
        return exc.code
    return "ok"


async def _op_async(koine: Any, case: Case, out: Outcome) -> None:
    if case.op == "generate_text":
        out.value = (await koine.generate_text(prompt=case.prompt)).text
        return
    if case.op == "generate_object":
        out.value = (await koine.generate_object(prompt=case.prompt, schema=City)).object
        return
    is_text = case.op == "stream_text"
    stream = (
        koine.stream_text(prompt=case.prompt)
        if is_text
        else koine.stream_object(prompt=case.prompt, schema=City)
    )
    final = ("text" if is_text else "object", "usage", "session_id")
    async with stream as r:
        out.opened = True
        try:
            if is_text:
                async for _ in r.text_stream:
                    pass
                out.value = await r.text()
            else:
                async for _ in r.partial_object_stream:
                    pass
                out.value = await r.object()
        except KoineError as exc:
            out.error = exc
        if is_text:
            out.received_text = r.received_text
        else:
            out.latest_partial, out.raw_text = r.latest_partial, r.raw_text
        out.warnings = r.warnings
        for name in final:
            out.after[name] = await _settle_async(getattr(r, name)())
    for name in final:
        out.after_exit[name] = await _settle_async(getattr(r, name)())


async def _drive_async(case: Case, base_url: str, key: str) -> Outcome:
    out = Outcome()
    koine = create_koine(
        base_url=base_url, auth_key=key, timeout=case.timeout, max_retries=case.max_retries
    )
    try:
        began = time.monotonic()
        try:
            await asyncio.wait_for(_op_async(koine, case, out), (case.budget or 0) + 30)
        except KoineError as exc:
            out.error = exc
        out.elapsed = time.monotonic() - began
        if not case.refused:
            out.next_text = (await koine.generate_text(prompt="next call")).text
    finally:
        await koine.aclose()
    return out


# -- the sync driver ---------------------------------------------------------------------------


def _bounded(fn: Callable[[], Any], limit: float) -> str:
    """Call ``fn`` on a daemon thread; "HANG" if it does not finish within ``limit``."""
    box: list[str] = []

    def main() -> None:
        try:
            fn()
        except KoineError as exc:
            box.append(exc.code)
        except BaseException as exc:
            box.append(f"{type(exc).__name__}: {exc}")
        else:
            box.append("ok")

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    thread.join(limit)
    return box[0] if box else "HANG"


def _op_sync(koine: Any, case: Case, out: Outcome) -> None:
    if case.op == "generate_text":
        out.value = koine.generate_text(prompt=case.prompt).text
        return
    if case.op == "generate_object":
        out.value = koine.generate_object(prompt=case.prompt, schema=City).object
        return
    is_text = case.op == "stream_text"
    stream = (
        koine.stream_text(prompt=case.prompt)
        if is_text
        else koine.stream_object(prompt=case.prompt, schema=City)
    )
    final = ("text" if is_text else "object", "usage", "session_id")
    with stream as r:
        out.opened = True
        try:
            if is_text:
                for _ in r.text_stream:
                    pass
                out.value = r.text()
            else:
                for _ in r.partial_object_stream:
                    pass
                out.value = r.object()
        except KoineError as exc:
            out.error = exc
        if is_text:
            out.received_text = r.received_text
        else:
            out.latest_partial, out.raw_text = r.latest_partial, r.raw_text
        out.warnings = r.warnings
        for name in final:
            out.after[name] = _bounded(getattr(r, name), SETTLE)
    for name in final:
        out.after_exit[name] = _bounded(getattr(r, name), SETTLE)


def _drive_sync(case: Case, base_url: str, key: str) -> Outcome:
    out = Outcome()
    koine = create_koine_sync(
        base_url=base_url, auth_key=key, timeout=case.timeout, max_retries=case.max_retries
    )
    try:
        began = time.monotonic()
        box: list[BaseException] = []

        def main() -> None:
            try:
                _op_sync(koine, case, out)
            except BaseException as exc:
                box.append(exc)

        thread = threading.Thread(target=main, daemon=True)
        thread.start()
        thread.join((case.budget or 0) + 30)
        assert not thread.is_alive(), "the sync call hung"
        if box:
            if not isinstance(box[0], KoineError):
                raise box[0]
            out.error = box[0]
        out.elapsed = time.monotonic() - began
        if not case.refused:
            out.next_text = koine.generate_text(prompt="next call").text
    finally:
        koine.close()
    return out


# -- the matrix --------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["async", "sync"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_matrix(case: Case, client: str, koine_gateway: Any) -> None:
    gw = koine_gateway
    key = gw.auth_key
    base_url = f"http://127.0.0.1:{_closed_port()}" if case.refused else gw.base_url
    if case.replies:
        gw.enqueue(*case.replies)
    if client == "async":
        out = asyncio.run(_drive_async(case, base_url, key))
    else:
        out = _drive_sync(case, base_url, key)

    # the outcome, in time
    budget = case.budget if case.budget is not None else case.timeout + 2.0
    assert out.elapsed < budget, f"took {out.elapsed:.2f} s (bound {budget} s)"
    if case.code is None:
        assert out.error is None, repr(out.error)
        assert out.value is not None
    else:
        assert out.error is not None, f"expected {case.code}, got the result {out.value!r}"
        assert out.error.code == case.code, repr(out.error)
        if case.status is not None:
            assert out.error.status == case.status, repr(out.error)
        for text in (str(out.error), repr(out.error), out.error.raw_text or "", out.error.message):
            assert key not in text
    if case.check is not None:
        case.check(out)

    # nothing waits forever; a failed stream keeps failing the same way
    if out.opened:
        expected = dict(case.accessors)
        for name, got in [*out.after.items(), *out.after_exit.items()]:
            assert got != "HANG", f"{name}() hung"
            if name in expected:
                assert got == expected[name], f"{name}() -> {got}"
            elif case.code is None:
                assert got == "ok", f"{name}() -> {got}"
            else:
                assert got == "ok" or got == case.code or got == "STREAM_INCOMPLETE", (
                    f"{name}() -> {got}"
                )
        if case.code is not None:
            final = "text" if case.op == "stream_text" else "object"
            assert out.after[final] == case.code
            assert out.after_exit[final] == case.code

    # what arrived stays available
    if case.received:
        if case.op == "stream_text":
            assert out.received_text.startswith("Echo: alpha"), out.received_text
        else:
            assert out.latest_partial is not None
            assert out.raw_text.startswith("{")

    # the connection was closed or handed back to the pool
    if case.refused:
        return
    assert out.next_text == "Echo: next call"
    assert gw.wait_idle(3.0), gw.active
    if case.disconnect:
        assert gw.wait_for_disconnect(3.0), "the gateway did not see the client hang up"
    posts = [r for r in gw.requests if r.method == "POST"]
    failed, following = posts[-2], posts[-1]
    assert following.json == {"prompt": "next call"}
    if case.conn == "reuse":
        assert following.client == failed.client, "the connection was not returned to the pool"
    elif case.conn == "fresh":
        assert following.client != failed.client, "an abandoned connection was reused"


# -- configuration -----------------------------------------------------------------------------

BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("no-base-url", {"base_url": "", "auth_key": "k"}, "base_url is required"),
    ("blank-base-url", {"base_url": "   ", "auth_key": "k"}, "base_url is required"),
    ("no-scheme", {"base_url": "localhost:3100", "auth_key": "k"}, "http"),
    ("ftp-scheme", {"base_url": "ftp://h", "auth_key": "k"}, "http"),
    ("ws-scheme", {"base_url": "ws://h:3100", "auth_key": "k"}, "http"),
    ("no-host", {"base_url": "http://", "auth_key": "k"}, "host"),
    ("bad-port", {"base_url": "http://h:99999", "auth_key": "k"}, "valid URL"),
    ("text-port", {"base_url": "http://h:port", "auth_key": "k"}, "valid URL"),
    ("credentials", {"base_url": "http://user:hunter2@h", "auth_key": "k"}, "credentials"),
    ("user-only", {"base_url": "https://hunter2@h", "auth_key": "k"}, "credentials"),
    ("query", {"base_url": "http://h/?key=hunter2", "auth_key": "k"}, "query"),
    ("fragment", {"base_url": "http://h/#x", "auth_key": "k"}, "fragment"),
    ("not-a-string-url", {"base_url": 3100, "auth_key": "k"}, "base_url"),
    ("no-key", {"base_url": "http://h", "auth_key": ""}, "auth_key is required"),
    ("blank-key", {"base_url": "http://h", "auth_key": "  "}, "auth_key is required"),
    ("key-newline", {"base_url": "http://h", "auth_key": "hunter2\r\nX: y"}, "control"),
    ("key-not-a-string", {"base_url": "http://h", "auth_key": 12345}, "auth_key"),
    ("timeout-zero", {"base_url": "http://h", "auth_key": "k", "timeout": 0}, "timeout"),
    ("timeout-negative", {"base_url": "http://h", "auth_key": "k", "timeout": -1.0}, "timeout"),
    ("timeout-nan", {"base_url": "http://h", "auth_key": "k", "timeout": float("nan")}, "timeout"),
    ("timeout-inf", {"base_url": "http://h", "auth_key": "k", "timeout": float("inf")}, "timeout"),
    ("timeout-bool", {"base_url": "http://h", "auth_key": "k", "timeout": True}, "timeout"),
    ("timeout-string", {"base_url": "http://h", "auth_key": "k", "timeout": "5"}, "timeout"),
    ("model-empty", {"base_url": "http://h", "auth_key": "k", "model": ""}, "model"),
    ("model-not-a-string", {"base_url": "http://h", "auth_key": "k", "model": 3}, "model"),
    ("retries-negative", {"base_url": "http://h", "auth_key": "k", "max_retries": -1}, "retries"),
    ("retries-float", {"base_url": "http://h", "auth_key": "k", "max_retries": 1.5}, "retries"),
    ("retries-bool", {"base_url": "http://h", "auth_key": "k", "max_retries": True}, "retries"),
]


@pytest.mark.parametrize("client", ["async", "sync"])
@pytest.mark.parametrize(
    ("kwargs", "needle"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_invalid_config_value(
    kwargs: dict[str, Any], needle: str, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KOINE_BASE_URL", raising=False)
    monkeypatch.delenv("KOINE_AUTH_KEY", raising=False)
    monkeypatch.delenv("KOINE_TIMEOUT", raising=False)
    factory: Any = create_koine if client == "async" else create_koine_sync
    began = time.monotonic()
    with pytest.raises(KoineError) as info:
        factory(**kwargs)
    assert time.monotonic() - began < 1.0
    assert info.value.code == "INVALID_CONFIG"
    assert needle in info.value.message, info.value.message
    assert "hunter2" not in str(info.value) + repr(info.value)


@pytest.mark.parametrize("value", ["abc", "nan", "-3", "0"])
@pytest.mark.parametrize("client", ["async", "sync"])
def test_invalid_timeout_in_environment(
    value: str, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOINE_BASE_URL", "http://127.0.0.1:3100")
    monkeypatch.setenv("KOINE_AUTH_KEY", "k")
    monkeypatch.setenv("KOINE_TIMEOUT", value)
    factory: Any = create_koine if client == "async" else create_koine_sync
    with pytest.raises(KoineError) as info:
        factory()
    assert info.value.code == "INVALID_CONFIG"
    assert "KOINE_TIMEOUT" in info.value.message or "timeout" in info.value.message


def test_invalid_config_object_and_mixing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KoineError) as info:
        create_koine({"base_url": "http://h", "auth_key": "k"})  # type: ignore[call-overload]
    assert info.value.code == "INVALID_CONFIG"
    for factory in (create_koine, create_koine_sync):
        with pytest.raises(KoineError) as info:
            factory(KoineConfig("http://h", "k"), timeout=3)  # type: ignore[call-overload]
        assert info.value.code == "INVALID_CONFIG"
        with pytest.raises(KoineError) as info:
            factory(KoineConfig("http://h", "k", timeout=-1))
        assert info.value.code == "INVALID_CONFIG"
