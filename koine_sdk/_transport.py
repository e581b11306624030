"""Requests on the wire: one pooled ``httpx.AsyncClient``, headers, bodies, retries, timeouts,
and the translation of every HTTP-level failure into a :class:`KoineError`.

This is the only module that talks to httpx. Tests and users swap the network through
``http_client=`` (any ``httpx.AsyncClient``, e.g. one with a custom transport).

:meth:`Transport.answer` and :meth:`Transport.events` are the seam the generation endpoints use:
a :class:`~koine_sdk._request.KoineRequest` in, the gateway's raw answer out (the JSON body, or
the server-sent events). :class:`~koine_sdk._replay_layer.ReplayLayer` wraps that seam to answer
from the ledger and record what the gateway returned.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ._config import KoineConfig
from ._response_limits import check_depth, too_large
from ._sse import ServerSentEvent, SSEDecoder
from ._version import __version__
from .errors import KoineError, error_from_response

if TYPE_CHECKING:
    from ._request import KoineRequest

__all__ = ["MAX_RETRY_AFTER", "Transport"]

_USER_AGENT = f"koine-sdk-python/{__version__}"
_MAX_ERROR_BODY = 64 * 1024
_MAX_CONNECTIONS = 200
# A pooled connection idle this long is not reused. Servers close idle keep-alive connections
# after a few seconds (Node's default, the real gateway's runtime: 5 s; uvicorn: 5 s); httpx's
# own default is also 5 s, so a request could go out on a connection the server was closing at
# that very moment and fail with "server disconnected". Expiring first avoids that race.
KEEPALIVE_EXPIRY = 4.0
# After ``done`` the gateway ends the body at once; a server that keeps talking is cut off.
_DRAIN_AFTER_DONE_SECONDS = 2.0
MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` pause ``max_retries`` waits for; a longer one raises the 429."""
# Connection pools inherited from the parent process after os.fork: never used or closed in
# the child (their sockets and event loop are the parent's), only kept from the garbage
# collector, which would close the child's copies of their sockets with warnings.
_FORK_ORPHANS: list[Any] = []

Phase = Literal["send", "read", "stream"]


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~50 ms here); do it once per process, not per client.
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class _SlotTransport(httpx.AsyncBaseTransport):
    """Lets at most ``_MAX_CONNECTIONS`` requests into httpcore's pool at once; the rest wait
    here (a slot is held until the response is closed; waiting is bounded by the pool timeout).

    httpcore rescans every queued request against every connection each time a request starts
    or ends: with hundreds of concurrent calls on one client that is quadratic (500 calls: ~18M
    checks, seconds of CPU). Queued on a semaphore instead, they cost nothing while they wait.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(_MAX_CONNECTIONS)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: Any = request.extensions.get("timeout", {})
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection slot", request=request) from None
        try:
            response = await self._inner.handle_async_request(request)
            assert isinstance(response.stream, httpx.AsyncByteStream)
        except BaseException:
            self._slots.release()
            raise
        response.stream = _SlotStream(response.stream, self._slots)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _SlotStream(httpx.AsyncByteStream):
    """A response body that gives its slot back when it is closed (once)."""

    def __init__(self, inner: httpx.AsyncByteStream, slots: asyncio.Semaphore) -> None:
        self._inner = inner
        self._slots: asyncio.Semaphore | None = slots

    def __aiter__(self) -> AsyncIterator[bytes]:  # pyright: ignore[reportIncompatibleMethodOverride]
        return self._inner.__aiter__()  # the inner iterator itself: no extra hop per chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            slots, self._slots = self._slots, None
            if slots is not None:
                slots.release()


class Transport:
    """Sends requests for one client. Owns (or borrows) the pooled ``httpx.AsyncClient``.

    An httpx pool belongs to the event loop that made it, so a client used under two loops in
    turn (a script calling ``asyncio.run`` twice, or the sync client's private loop) gets one
    pool per loop, made on first use there; after ``os.fork`` the child makes its own.

    One retry loop (:meth:`_open`) serves plain requests and streams; one function
    (:meth:`_translate`) turns every httpx failure into a :class:`KoineError`.
    """

    def __init__(
        self,
        config: KoineConfig,
        *,
        max_retries: int = 0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self.max_retries = max_retries
        self._own_client = http_client is None
        self._client: httpx.AsyncClient | None = http_client
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._pid = os.getpid()
        self._closed = False
        self._headers = {
            "Authorization": f"Bearer {config.auth_key}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "User-Agent": _USER_AGENT,
        }

    def __repr__(self) -> str:
        return f"Transport(base_url={self.config.base_url!r})"

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the pool -------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise KoineError("this client is closed", "CLIENT_CLOSED")
        if not self.config.base_url:  # a strict-replay client made without a gateway
            raise KoineError(
                "no gateway URL: this client answers from the ledger only", "INVALID_CONFIG"
            )
        if not self._own_client:
            assert self._client is not None
            return self._client
        if self._pid != os.getpid():  # forked: the pool is the parent's
            if self._client is not None:
                _FORK_ORPHANS.append(self._client)
            self._client, self._client_loop, self._pid = None, None, os.getpid()
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            # A pool of a loop that is gone cannot be closed from here; drop it.
            limits = httpx.Limits(
                max_connections=_MAX_CONNECTIONS,
                max_keepalive_connections=50,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            )
            self._client = httpx.AsyncClient(
                timeout=self.config.timeout,
                verify=_ssl_context(),
                limits=limits,
                trust_env=True,
                transport=_SlotTransport(
                    httpx.AsyncHTTPTransport(verify=_ssl_context(), limits=limits, trust_env=True)
                ),
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the pool; calls still running fail with ``CLIENT_CLOSED``."""
        self._closed = True
        client, self._client = self._client, None
        if self._pid != os.getpid():
            return  # the parent's pool: not ours to close
        if self._own_client and client is not None and not client.is_closed:
            try:
                if self._client_loop is asyncio.get_running_loop():
                    await client.aclose()
            except RuntimeError:
                pass

    # -- errors ---------------------------------------------------------------------------

    def _translate(self, exc: httpx.HTTPError, *, during: str, phase: Phase) -> KoineError:
        """Every httpx failure as a KoineError (the key is never part of the message).

        ``phase``: ``send`` (connecting, sending, waiting for the status), ``read`` (reading a
        JSON answer) or ``stream`` (between events). Callers raise the result outside their
        ``except`` block, so the httpx exception (whose request holds the Authorization header)
        does not stay reachable as the error's ``__context__``.
        """
        if self._closed:
            return KoineError(f"the client was closed during the call ({during})", "CLIENT_CLOSED")
        if isinstance(exc, httpx.TimeoutException):
            if phase == "stream":
                kind = "for the next event"
            elif isinstance(exc, httpx.ConnectTimeout):
                kind = "connecting to the gateway"
            elif isinstance(exc, httpx.WriteTimeout):
                kind = "sending the request"
            elif isinstance(exc, httpx.PoolTimeout):
                kind = "waiting for a free connection"
            else:
                kind = "waiting for the gateway"
            return KoineError(f"timed out {kind} ({during})", "REQUEST_TIMEOUT")
        detail = f"{type(exc).__name__}: {exc}"
        if phase == "stream":
            return KoineError(
                f"the connection broke during the stream ({during}): {detail}", "STREAM_INCOMPLETE"
            )
        if isinstance(exc, httpx.ConnectError):
            return KoineError(
                f"could not connect to the gateway ({during}): {exc}. Is it running at base_url?",
                "NETWORK_ERROR",
            )
        where = "reading the answer" if phase == "read" else "network error"
        return KoineError(f"{where} ({during}): {detail}", "NETWORK_ERROR")

    # -- requests ---------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.config.base_url + path

    def _timeout(self, timeout: float | None) -> httpx.Timeout:
        t = self.config.timeout if timeout is None else timeout
        return httpx.Timeout(t)

    async def _retry_wait(self, attempt: int, error: KoineError) -> bool:
        """Sleep before retry ``attempt`` (1-based) if allowed; return whether to retry.

        A 429 waits its ``Retry-After`` (1 s, 2 s, ... without one); one asking for more than
        :data:`MAX_RETRY_AFTER` seconds is raised instead. A refused connection backs off
        0.25 s, 0.5 s, ... (at most 8 s). Nothing else is retried: the gateway may have started
        work for it."""
        if attempt > self.max_retries:
            return False
        if error.code == "CONCURRENCY_LIMIT_ERROR":
            if error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER:
                return False
            delay = error.retry_after if error.retry_after is not None else 1.0 * attempt
        elif error.code == "NETWORK_ERROR" and error.status is None:
            delay = min(8.0, 0.25 * 2 ** (attempt - 1))
        else:
            return False
        await asyncio.sleep(delay * (0.9 + 0.2 * random.random()))
        return True

    async def _open(
        self,
        method: str,
        path: str,
        body: bytes | None,
        timeout: float | None,
        ok_statuses: tuple[int, ...] = (),
    ) -> httpx.Response:
        """The one retry loop: send and return the open response of a 2xx status (or one in
        ``ok_statuses``); raise a KoineError for anything else, retrying as configured. The
        caller reads and closes the response."""
        during = f"{method} {path}"
        attempt = 0
        while True:
            attempt += 1
            client = self._http()
            request = client.build_request(
                method,
                self._url(path),
                content=body,
                headers=self._headers,
                timeout=self._timeout(timeout),
            )
            failure: KoineError | None = None
            retryable = False
            response: httpx.Response | None = None
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                failure = self._translate(exc, during=during, phase="send")
                retryable = isinstance(exc, httpx.ConnectError)
            if response is None:
                assert failure is not None
                if retryable and await self._retry_wait(attempt, failure):
                    continue
                raise failure
            status = response.status_code
            if 200 <= status < 300 or status in ok_statuses:
                return response
            try:
                content = await _read_capped(response)
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            error = error_from_response(status, content, response.headers)
            if await self._retry_wait(attempt, error):
                continue
            raise error

    async def request_json(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        timeout: float | None = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> tuple[int, bytes]:
        """Send a request; return (status, body) of a 2xx answer (or one in ``ok_statuses``),
        raise a KoineError otherwise. Retries as configured."""
        response = await self._open(method, path, body, timeout, ok_statuses)
        failure: KoineError | None = None
        content = b""
        limit = self.config.limits.max_body_bytes
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                failure = too_large(f"body ({int(declared):,} bytes announced)", limit)
            else:
                parts: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        failure = too_large("body", limit)
                        break
                    parts.append(chunk)
                content = b"".join(parts)
        except httpx.HTTPError as exc:
            failure = self._translate(exc, during=f"{method} {path}", phase="read")
        finally:
            await response.aclose()
        if failure is not None:  # raised outside the except block: see _translate
            raise failure
        check_depth(
            content,
            self.config.limits.max_depth,
            "INVALID_RESPONSE",
            f"the body of {method} {path}",
        )
        return response.status_code, content

    # -- the seam of the generation endpoints -------------------------------------------------

    async def answer(self, request: KoineRequest, *, timeout: float | None = None) -> bytes:
        """POST ``request`` to its (non-streaming) endpoint; the JSON body of the answer."""
        _, content = await self.request_json(
            "POST", request.endpoint.path, request.body(), timeout=timeout
        )
        return content

    def events(
        self, request: KoineRequest, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[list[ServerSentEvent]]]:
        """POST ``request`` to its streaming endpoint: :meth:`stream_events` of its body."""
        return self.stream_events(request.endpoint.path, request.body(), timeout=timeout)

    @asynccontextmanager
    async def stream_events(
        self, path: str, body: bytes, *, timeout: float | None = None
    ) -> AsyncGenerator[AsyncIterator[list[ServerSentEvent]]]:
        """POST and yield an async iterator of the response's events, in lists (one list per
        network read).

        Errors before the first event (status, connection) raise here, retried as configured;
        leaving the context closes the connection unless the body was read to its end.
        """
        response = await self._open("POST", path, body, timeout)
        try:
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                try:
                    content = await _read_capped(response)
                except httpx.HTTPError:
                    content = b""
                raise KoineError(
                    f"expected an event stream from POST {path}, got {ctype or 'no content type'}",
                    "INVALID_RESPONSE",
                    content.decode("utf-8", "replace")[:4096],
                    status=response.status_code,
                )
            yield self._events(response, path)
        finally:
            await response.aclose()

    async def _events(
        self, response: httpx.Response, path: str
    ) -> AsyncIterator[list[ServerSentEvent]]:
        """The events of the body, a non-empty list per network read: one await per read, not
        per event (a read often holds many events)."""
        limits = self.config.limits
        decoder = SSEDecoder(max_line=limits.max_line_chars, max_event=limits.max_event_chars)
        chunks = response.aiter_bytes()
        failure: KoineError | None = None
        try:
            async for chunk in chunks:
                events = decoder.feed(chunk)
                if not events:
                    continue
                for index, event in enumerate(events):
                    if event.event == "done":
                        yield events[: index + 1]
                        await _drain(chunks)
                        return
                yield events
        except httpx.HTTPError as exc:
            failure = self._translate(exc, during=f"POST {path}", phase="stream")
        # The body ended (or the connection broke, which ends it too): the events whose lines
        # all arrived whole go out before the end is judged (a last ``error`` event then
        # reaches the user with its own code). Not after a timeout: the body did not end.
        ended = failure is None or failure.code == "STREAM_INCOMPLETE"
        if ended and (events := decoder.close()):
            yield events
        if failure is not None:  # raised outside the except block: see _translate
            raise failure


async def _read_capped(response: httpx.Response) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        parts.append(chunk)
        size += len(chunk)
        if size >= _MAX_ERROR_BODY:
            break
    return b"".join(parts)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows ``done`` so the connection can return to the pool."""
    try:
        async with asyncio.timeout(_DRAIN_AFTER_DONE_SECONDS):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass
