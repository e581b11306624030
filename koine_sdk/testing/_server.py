"""LocalGateway: the app served by uvicorn on a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import uvicorn

from ._app import build_app
from ._faults import Fault, Reply
from ._settings import DEFAULT_PORT, GatewaySettings, settings_from_env
from ._state import GatewayState, RecordedRequest

__all__ = ["LocalGateway"]


class LocalGateway:
    """A local, deterministic Koine gateway for tests, notebooks and offline work.

    It speaks the real gateway's wire protocol (same endpoints, status codes, bodies, SSE framing,
    concurrency limits, session-id rules), with a scripted echo "model" in place of the Claude CLI.
    It is not a production gateway: it calls no model.

    ``with LocalGateway() as gw: httpx.post(gw.base_url + "/generate-text", ...)``; also
    ``gw.start()`` / ``gw.stop()``. The server runs in its own thread with its own event loop, so
    sync and async tests can both use it. ``port=0`` picks a free port.
    """

    def __init__(
        self,
        auth_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_streaming: int = 3,
        max_nonstreaming: int = 5,
        allowed_tools: Sequence[str] | None = None,
        disallowed_tools: Sequence[str] | None = None,
        chunk_delay: float = 0.0,
        first_byte_delay: float = 0.0,
        strict_sessions: bool = True,
        healthy: bool = True,
        events_per_chunk: int = 1,
        report_concurrency: bool = True,
        health_status: int | None = None,
    ) -> None:
        settings = GatewaySettings(
            auth_key=auth_key or GatewaySettings.new_key(),
            max_streaming=max_streaming,
            max_nonstreaming=max_nonstreaming,
            allowed_tools=tuple(allowed_tools) if allowed_tools is not None else None,
            disallowed_tools=tuple(disallowed_tools or ()),
            chunk_delay=chunk_delay,
            first_byte_delay=first_byte_delay,
            strict_sessions=strict_sessions,
            healthy=healthy,
            events_per_chunk=events_per_chunk,
            report_concurrency=report_concurrency,
            health_status=health_status,
        )
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._state = GatewayState(settings)
        self._state.on_crash = self._on_crash
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self.startup_seconds: float | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LocalGateway:
        """Configured by the real gateway's environment variables (see ``settings_from_env``),
        then by ``overrides``. Defaults to port 3100 there, like the real gateway."""
        kwargs: dict[str, Any] = {"port": DEFAULT_PORT, **settings_from_env(environ)}
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind, serve in a background thread, and return once requests are accepted. After a
        :meth:`stop` it binds the same port again (clients keep their URL); state (settings,
        records, counters, sessions) is kept."""
        if self._thread is not None:
            return self
        began = time.perf_counter()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(
            family, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )  # TCP: asyncio sets TCP_NODELAY
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port if self._port is not None else self._requested_port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self._state),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server

        def serve() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                await server.serve(sockets=[sock])

            try:
                asyncio.run(main())
            except BaseException as exc:  # reported to start()/stop()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name=f"koine-gateway:{self._port}")
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._thread = None
                raise RuntimeError(f"the local gateway did not start: {self._error!r}")
            time.sleep(0.002)
        self.startup_seconds = time.perf_counter() - began
        return self

    def stop(self) -> None:
        """Stop serving; streams still open end at once (their connections are closed)."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None or thread is None:
            return
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._state.shutdown)
            except RuntimeError:
                pass  # the loop just closed
        server.should_exit = True
        thread.join(timeout=10)
        self._thread = self._server = self._loop = None
        self._error = None

    def _on_crash(self) -> None:
        """On the server's loop: stop serving, as the real gateway's process exits."""
        server = self._server
        if server is not None:
            server.should_exit = True

    @property
    def crashed(self) -> bool:
        """Whether a request took the gateway down (a CLI argument over the OS limit on a
        stream, as on the real gateway); it refuses connections until :meth:`restart`."""
        return self._state.crashed

    def restart(self, downtime: float = 0.0) -> Self:
        """Stop (connections in flight are cut), stay down ``downtime`` seconds, and start again
        on the same port: a gateway restart as clients see it (also after a crash). Settings,
        queued replies, records and conversations are kept."""
        self.stop()
        if self._port is not None:
            self._requested_port = self._port
        self._state.crashed = False
        if downtime > 0:
            time.sleep(downtime)
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._port is None:
            raise RuntimeError("the local gateway is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``, what the SDK's ``base_url`` takes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def auth_key(self) -> str:
        """The bearer key clients must send."""
        return self._state.settings.auth_key

    @property
    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <key>"}`` for hand-made requests."""
        return {"Authorization": f"Bearer {self.auth_key}"}

    # -- settings --------------------------------------------------------------------------
    @property
    def settings(self) -> GatewaySettings:
        """The current settings (an immutable snapshot)."""
        return self._state.settings

    def configure(self, **changes: Any) -> GatewaySettings:
        """Change settings at runtime: ``max_streaming``, ``max_nonstreaming``,
        ``allowed_tools``, ``disallowed_tools``, ``chunk_delay``, ``first_byte_delay``,
        ``strict_sessions``, ``healthy``, ``events_per_chunk``, ``report_concurrency``,
        ``health_status``, ``auth_key``. Applies to
        requests that arrive after."""
        return self._state.configure(**changes)

    def reset(self) -> None:
        """Restore the settings given at construction and clear queued replies and faults,
        recorded requests, sessions, peaks and counters (in-flight requests still count)."""
        self._state.reset()

    # -- scripting -------------------------------------------------------------------------
    def enqueue(self, *items: Reply | Fault) -> None:
        """Queue replies for the next requests to the four POST endpoints, one per request,
        whatever its outcome (a request answered 401, 429 or 400 uses its reply up). A bare
        :class:`Fault` is ``Reply.faulty(fault)``: the model's own answer with that fault."""
        with self._state.lock:
            for item in items:
                self._state.replies.append(Reply.faulty(item) if isinstance(item, Fault) else item)

    def script_text(self, chunks: str | Iterable[str], **timing: Any) -> None:
        """Queue exact text pieces (see :meth:`Reply.text`)."""
        self.enqueue(Reply.text(chunks, **timing))

    def script_object(self, value: Any, **options: Any) -> None:
        """Queue a JSON value streamed as JSON text in small pieces (see :meth:`Reply.object`)."""
        self.enqueue(Reply.object(value, **options))

    def script_raw(self, text: str, **timing: Any) -> None:
        """Queue model output that needs fallback extraction (see :meth:`Reply.raw`)."""
        self.enqueue(Reply.raw(text, **timing))

    def inject(self, *faults: Fault) -> None:
        """Queue one request with all of ``faults`` (and the model's own answer)."""
        self.enqueue(Reply.faulty(*faults))

    def seed_session(self, session_id: str, prompts: Sequence[str] = ()) -> None:
        """Make ``session_id`` a known conversation with these earlier prompts."""
        self._state.model.sessions[session_id] = list(prompts)

    @property
    def sessions(self) -> dict[str, list[str]]:
        """Known conversations: session id → prompts so far (directives removed)."""
        return {k: list(v) for k, v in self._state.model.sessions.items()}

    # -- observation -----------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the last reset, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def disconnects(self) -> int:
        """How many clients closed their connection before their response was complete."""
        return self._state.disconnects

    @property
    def rejected(self) -> int:
        """How many requests were answered 429 by the concurrency limiter."""
        return self._state.rejected

    @property
    def active(self) -> dict[str, int]:
        """In-flight requests per class: ``{"streaming": n, "nonStreaming": m}``."""
        return dict(self._state.active)

    @property
    def peak(self) -> dict[str, int]:
        """Most requests in flight at once per class since the last reset."""
        return dict(self._state.peak)

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> bool:
        """Wait until at least ``count`` client disconnects were seen; False on timeout."""
        with self._state.lock:
            return self._state.lock.wait_for(lambda: self._state.disconnects >= count, timeout)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` requests were received; False on timeout."""
        with self._state.lock:
            return self._state.lock.wait_for(lambda: len(self._state.requests) >= count, timeout)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is in flight; False on timeout."""
        with self._state.lock:
            return self._state.lock.wait_for(lambda: not any(self._state.active.values()), timeout)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<LocalGateway {where}>"
