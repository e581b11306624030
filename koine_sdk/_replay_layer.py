"""The replaying / recording layer: the one place that decides "answer from the ledger, or send
and record".

The generation endpoints build a :class:`~koine_sdk._request.KoineRequest` and hand it to a
:class:`ReplayLayer`, made per call from the client's mode and the call's ``replay=`` and
``record=`` (a :class:`~koine_sdk._replay.Replayer`). The layer wraps the HTTP transport
(:class:`Sender`, the seam :class:`~koine_sdk._transport.Transport` offers): it gives back the
gateway's raw answer, from the ledger when a recording answers the request (nothing is sent),
else from the wire, and tells which (``source``). The endpoint parses it with one parser either
way:

- ``/generate-text``, ``/generate-object``: :meth:`ReplayLayer.answer` calls the endpoint's
  ``parse`` on the JSON body (an :class:`Answer`). A recording that does not parse (an object
  that no longer fits the schema, a recording without a session id) is not used: the request
  is sent (``strict``: ``REPLAY_MISS``). A live answer that parses is recorded as ``parse``
  says the ledger keeps it (:class:`~koine_sdk._replay.Kept`); a failure that was paid for is
  recorded as ``failed``.
- ``/stream``, ``/stream-object``: :meth:`ReplayLayer.stream` opens a :class:`Reply` whose
  events the stream's state machine reads; a recording is used when its events parse through
  a blank copy of that state machine. When the stream ends, the result says so
  (:meth:`Reply.ended`) and the layer records the state's complete answer, or its paid failure.

The parse may send follow-up requests of its own (``generate_object``'s repairs) through the
``resend`` it is given with a live answer: they go to the wire, never to the ledger, and the
final answer is recorded under the first request's key.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

from ._replay import Kept, Replayer
from ._request import KoineRequest
from ._sse import ServerSentEvent
from ._streams import StreamState
from .errors import KoineError
from .types import Source

__all__ = ["Answer", "Kept", "Parse", "Parsed", "ReplayLayer", "Reply", "Resend", "Sender"]

R = TypeVar("R", bound=BaseModel)

Events = AsyncIterator[list[ServerSentEvent]]


class Sender(Protocol):
    """The seam under the layer: a request in, the gateway's raw answer out (what
    :class:`~koine_sdk._transport.Transport` does over HTTP)."""

    async def answer(self, request: KoineRequest, *, timeout: float | None = None) -> bytes:
        """The JSON body of a non-streaming endpoint's answer."""
        ...

    def events(
        self, request: KoineRequest, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[Events]:
        """A streaming endpoint's events, in lists (one per network read)."""
        ...


@dataclass(frozen=True, slots=True)
class Answer:
    """The raw answer to a non-streaming request and where it came from: ``body`` is the JSON
    the gateway wrote (or the recording's, in the same shape); ``ledger_key`` is the
    recording's key (``None`` for a live answer, until it is recorded); ``attempts`` the
    answers a recording took (repairs included), 1 live."""

    body: bytes
    source: Source
    ledger_key: str | None = None
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class Parsed(Generic[R]):
    """What an endpoint's parse gives: its result and what the ledger keeps of the answer."""

    result: R
    kept: Kept


Resend = Callable[[KoineRequest], Awaitable[bytes]]
"""Sends a follow-up request (a repair) to the wire and returns its JSON body."""

Parse = Callable[[Answer, Resend | None], Awaitable[Parsed[R]]]
"""An endpoint's parser: the raw answer (and, for a live one, a way to send follow-ups) → the
result; raises a :class:`KoineError` when the answer is no answer (``INVALID_RESPONSE``,
``VALIDATION_ERROR``...)."""


class Reply:
    """A stream's answer: its ``events``, ``source``, and ``ledger_key`` (a replayed stream's
    at once; a live one's once its complete answer was recorded)."""

    __slots__ = ("_end", "events", "ledger_key", "source")

    def __init__(
        self,
        events: Events,
        source: Source,
        ledger_key: str | None = None,
        end: Callable[[KoineError | None], str | None] | None = None,
    ) -> None:
        self.events = events
        self.source: Source = source
        self.ledger_key = ledger_key
        self._end = end

    def ended(self, failure: KoineError | None) -> None:
        """The stream ended: properly (``failure`` is ``None``: its state holds the answer) or
        with ``failure``. Called once; a stream closed before its end never calls it (nothing is
        recorded)."""
        end, self._end = self._end, None
        if end is not None:
            self.ledger_key = end(failure) or self.ledger_key


async def _batch(events: list[ServerSentEvent]) -> Events:
    yield events


def _stream_unusable(state: StreamState, events: list[ServerSentEvent]) -> str:
    """Why ``events`` (a recording's) cannot answer a stream read by ``state`` ("" when they
    can): they are read through a blank copy of it, as a live stream would be."""
    probe = state.blank()
    try:
        for event in events:
            probe.feed(event)
        probe.final_answer()
    except KoineError as exc:
        return _why(exc)
    return ""


def _why(exc: KoineError) -> str:
    if exc.code == "VALIDATION_ERROR":
        return "the recorded answer no longer fits the schema"
    return f"the recording cannot be read here ({exc.code}: {exc.message})"


class ReplayLayer:
    """One call's record / replay, over ``sender`` (see the module's docstring)."""

    __slots__ = ("_policy", "_sender")

    def __init__(self, sender: Sender, policy: Replayer) -> None:
        self._sender = sender
        self._policy = policy

    async def answer(self, request: KoineRequest, parse: Parse[R], *, timeout: float | None) -> R:
        """The parsed answer to a non-streaming ``request``: the recording's when one answers
        it, else the gateway's (recorded, with its key in the result's ``ledger_key``)."""
        recording = self._policy.find(request)
        if recording is not None:
            try:
                body = recording.body(request.endpoint)
                answer = Answer(body, "replay", recording.key, recording.record.attempts)
                return (await parse(answer, None)).result
            except KoineError as exc:
                why = (
                    "the recording has no session id and usage"
                    if recording.session_id is None
                    else _why(exc)
                )
            except ValueError:  # the recorded object is not JSON (a ledger from elsewhere)
                why = "the recorded answer is not JSON"
            self._policy.missing(request, why)  # strict: REPLAY_MISS; else send it
        sender = self._sender

        async def resend(follow: KoineRequest) -> bytes:
            return await sender.answer(follow, timeout=timeout)

        started = time.time()
        try:
            body = await sender.answer(request, timeout=timeout)
            parsed = await parse(Answer(body, "live"), resend)
        except KoineError as exc:
            self._policy.record_failure(request, exc, started=started)
            raise
        key = self._policy.record_answer(request, parsed.kept, started=started)
        result = parsed.result
        return result if key is None else result.model_copy(update={"ledger_key": key})

    @asynccontextmanager
    async def stream(
        self, request: KoineRequest, state: StreamState, *, timeout: float | None
    ) -> AsyncGenerator[Reply]:
        """The :class:`Reply` to a streaming ``request``, read by ``state``: the recording's
        events when one answers it, else the gateway's (recorded when :meth:`Reply.ended`)."""
        recording = self._policy.find(request)
        if recording is not None:
            try:
                events = recording.events(request.endpoint)
            except ValueError:
                why = "the recorded answer is not JSON"
            else:
                why = _stream_unusable(state, events)
                if not why:
                    yield Reply(_batch(events), "replay", recording.key)
                    return
            self._policy.missing(request, why)
        started = time.time()
        policy = self._policy

        def end(failure: KoineError | None) -> str | None:
            if not policy.records:
                return None
            if failure is None:
                try:
                    answer = state.final_answer()
                except KoineError as exc:
                    failure = exc
                else:
                    if answer is None:
                        return None  # keep_text=False: nothing kept to record
                    kept = Kept(answer[0], answer[1], state.usage, state.session_id)
                    return policy.record_answer(request, kept, started=started)
            policy.record_failure(request, failure, started=started, usage=state.usage)
            return None

        async with self._sender.events(request, timeout=timeout) as events:
            yield Reply(events, "live", end=end)
