"""Record / replay: answers kept in the ledger (:mod:`koine_sdk.ledger`) and given back for an
identical request, so a script or notebook re-runs offline, identically and for free.

A client's ``replay=`` mode (default ``$KOINE_REPLAY``, else ``off``):

- ``off``: every request goes to the gateway; nothing is written.
- ``record``: every request goes to the gateway; every complete answer is written.
- ``replay``: a request recorded before is answered from the ledger without a network call;
  any other goes to the gateway and is written.
- ``strict``: only the ledger answers; a request never recorded raises ``REPLAY_MISS``
  (naming its prompt) and nothing is sent.

"Identical" is the ledger's key (:func:`koine_sdk.ledger.request_key`): the endpoint, the
prompt, and the body fields that decide the answer (system, schema, model, tools, session id),
the same key ``extract`` uses. A streaming call and its non-streaming twin (``/stream`` and
``/generate-text``, ``/stream-object`` and ``/generate-object``) ask the same question, so each
may be answered from the other's recording (its own is preferred).

The JSON calls build their result from the recording; a replayed stream is fed through the
same state machines as a live one (fabricated ``session``, ``text`` or ``object``, ``result``
and ``done`` events: the text as one chunk, the object as one partial), so every member of a
stream result behaves as it does live. Only complete answers are recorded as answers (never a
stream without ``done``, one with an ``error`` event, an object that fails its schema); a
failure that was paid for is written with status ``failed`` (its tokens), and a failure is
never replayed.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, cast, get_args

from ._request import Endpoint
from ._sse import ServerSentEvent
from .errors import KoineError
from .types import GenerateObjectResult, GenerateTextResult, KoineUsage

if TYPE_CHECKING:  # the ledger (sqlite3) is imported when a client records or replays
    from ._objects import PartialParser
    from .ledger import Ledger, LedgerRecord, LedgerSpec

__all__ = ["ENV_REPLAY", "Recording", "ReplayMode", "Replayer", "replay_mode", "short_prompt"]

ReplayMode = Literal["off", "record", "replay", "strict"]
"""How a client uses the ledger (``replay=`` of :func:`create_koine`): ``off``; ``record``
(send every request, record every complete answer); ``replay`` (answer recorded requests from
the ledger, send and record the rest; ``"on"`` is accepted for it); ``strict`` (the ledger
only: a request never recorded raises ``REPLAY_MISS``, nothing is sent)."""

ENV_REPLAY: Final = "KOINE_REPLAY"
MODES: Final[tuple[str, ...]] = get_args(ReplayMode)
_ALIASES: Final = {
    "on": "replay",
    "": "off",
    "0": "off",
    "false": "off",
    "no": "off",
    "none": "off",
}
_PROMPT_SHOWN = 80  # characters of a prompt named in a REPLAY_MISS


def _paths(path: str) -> tuple[str, ...]:
    """``path`` and the endpoint that asks the same question with or without streaming (a
    path that is no endpoint has none)."""
    endpoint = Endpoint.of(path)
    return (path,) if endpoint is None else (path, endpoint.sibling.path)


def replay_mode(value: object = None) -> ReplayMode:
    """The mode ``value`` names (``None``: ``$KOINE_REPLAY``, else ``off``). ``on`` is
    ``replay``; ``0``/``false``/``no``/``none`` are ``off``. Anything else raises
    ``INVALID_CONFIG``."""
    where = "replay"
    if value is None:
        value, where = os.environ.get(ENV_REPLAY, ""), ENV_REPLAY
    if not isinstance(value, str):
        raise KoineError(
            f"replay must be one of {', '.join(MODES)} (got {type(value).__name__})",
            "INVALID_CONFIG",
        )
    name = value.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in MODES:
        raise KoineError(
            f"{where}={value!r} is not a replay mode: use off, record, replay (or on) or strict",
            "INVALID_CONFIG",
        )
    return cast(ReplayMode, name)


def short_prompt(prompt: str) -> str:
    """A prompt cut to a readable length (for messages, shown with ``repr()`` quoting, so
    whitespace and line breaks stay visible: two prompts that differ by a trailing space look
    different)."""
    return prompt if len(prompt) <= _PROMPT_SHOWN else prompt[: _PROMPT_SHOWN - 1] + "…"


def _usage(record: LedgerRecord) -> KoineUsage:
    i, o = record.input_tokens, record.output_tokens
    return KoineUsage(input_tokens=i, output_tokens=o, total_tokens=i + o)


def _event(name: str, data: Mapping[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(name, json.dumps(data, ensure_ascii=False, separators=(",", ":")))


@dataclass(frozen=True, slots=True)
class Recording:
    """A recorded answer found for a request: what a replayed call hands back."""

    key: str
    record: LedgerRecord

    @property
    def session_id(self) -> str | None:
        return self.record.session_id

    @property
    def usage(self) -> KoineUsage:
        return _usage(self.record)

    @property
    def text(self) -> str:
        return self.record.answer or ""

    def value(self) -> Any:
        """The recorded object (``ValueError`` when the recording holds none)."""
        if self.record.answer is None:
            raise ValueError("no object recorded")
        return json.loads(self.record.answer)

    def raw_text(self) -> str:
        raw = self.record.raw_text
        if raw is None:
            raw = json.dumps(self.value(), ensure_ascii=False)
        return raw

    def text_result(self) -> GenerateTextResult | None:
        """The ``generate_text`` result this recording gives (``None``: it has none)."""
        if self.record.session_id is None:
            return None
        return GenerateTextResult(
            text=self.text,
            usage=self.usage,
            session_id=self.record.session_id,
            source="replay",
            ledger_key=self.key,
        )

    def object_result(self, parser: PartialParser[Any]) -> GenerateObjectResult[Any] | None:
        """The ``generate_object`` result this recording gives, validated by ``parser``
        (``None``: it has none, or the object no longer fits the schema)."""
        if self.record.session_id is None:
            return None
        try:
            obj = parser.validate_final(self.value(), self.raw_text())
        except (KoineError, ValueError):
            return None
        return GenerateObjectResult(
            object=obj,
            raw_text=self.raw_text(),
            usage=self.usage,
            session_id=self.record.session_id,
            attempts=self.record.attempts,
            source="replay",
            ledger_key=self.key,
        )

    def fits(self, parser: PartialParser[Any]) -> bool:
        """Whether the recorded object is valid for ``parser``'s schema."""
        try:
            parser.validate_final(self.value(), self.raw_text())
        except (KoineError, ValueError):
            return False
        return True

    def events(self, path: str) -> list[ServerSentEvent]:
        """The events of a stream to ``path`` that gives this answer."""
        sid = self.session_id
        out: list[ServerSentEvent] = []
        if sid is not None:
            out.append(_event("session", {"sessionId": sid}))
        if path == Endpoint.STREAM_OBJECT.path:
            out.append(_event("object", {"object": self.value()}))
        elif self.text:
            out.append(_event("text", {"text": self.text}))
        if sid is not None:
            u = self.usage
            usage = {
                "inputTokens": u.input_tokens,
                "outputTokens": u.output_tokens,
                "totalTokens": u.total_tokens,
            }
            out.append(_event("result", {"sessionId": sid, "usage": usage}))
        out.append(_event("done", {"code": 0}))
        return out

    @asynccontextmanager
    async def stream_events(
        self, path: str
    ) -> AsyncGenerator[AsyncIterator[list[ServerSentEvent]]]:
        """Like :meth:`Transport.stream_events`, from the recording: one batch of events."""
        yield _batches(self.events(path))


async def _batches(events: list[ServerSentEvent]) -> AsyncIterator[list[ServerSentEvent]]:
    yield events


class Replayer:
    """The record / replay policy of one client: its mode and its ledger.

    Raises ``INVALID_CONFIG`` when a mode other than ``off`` has no ledger to use
    (``KOINE_LEDGER=off``), and ``LEDGER_ERROR`` when the ledger file cannot be opened:
    recording or replaying into nothing would silently pay again (or fail every request)."""

    def __init__(self, mode: ReplayMode, ledger: LedgerSpec = None) -> None:
        self.mode: ReplayMode = mode
        self.ledger: Ledger | None = None
        self._spec: LedgerSpec = ledger  # what a call's replay= opens, when this one is off
        self.writes = True  # False: answers are not written (see without_writing)
        if mode == "off":
            return
        from .ledger import default_location, open_ledger

        if (ledger is None or ledger is True) and default_location() is None:
            raise KoineError(
                f"replay={mode!r} needs the ledger, but KOINE_LEDGER turns it off: set "
                "KOINE_LEDGER to a file, pass ledger=PATH (or ledger=False for one kept in "
                "this process), or use replay='off'",
                "INVALID_CONFIG",
            )
        self.ledger = open_ledger(ledger, fallback=False)

    def without_writing(self) -> Replayer:
        """This policy, but the answers are not written (a call's ``record=False``: the caller
        records them itself); replaying is unchanged."""
        if not self.writes:
            return self
        other = Replayer("off", self._spec)
        other.mode, other.ledger, other.writes = self.mode, self.ledger, False
        return other

    def with_mode(self, mode: ReplayMode) -> Replayer:
        """This policy with another mode, on the same ledger (a call's ``replay=``)."""
        if mode == self.mode:
            return self
        if mode == "off":
            return Replayer("off", self._spec)
        if self.ledger is None:
            return Replayer(mode, self._spec)
        other = Replayer("off", self._spec)
        other.mode, other.ledger = mode, self.ledger
        return other

    @property
    def records(self) -> bool:
        """Whether live answers are written (``record`` and ``replay``)."""
        return self.mode in ("record", "replay")

    @property
    def replays(self) -> bool:
        return self.mode in ("replay", "strict")

    # -- answering from the ledger ------------------------------------------------------------

    def find(self, path: str, body: bytes) -> Recording | None:
        """The recording that answers this request, or ``None`` (send it). ``strict``: a
        request without one raises ``REPLAY_MISS`` instead."""
        if not self.replays or self.ledger is None:
            return None
        from .ledger import LedgerWarning, RequestShape

        fields: dict[str, Any] = json.loads(body)
        keys = [RequestShape.of(p, fields).key(fields["prompt"]) for p in _paths(path)]
        try:
            found = self.ledger.lookup(keys)
        except KoineError as exc:
            if self.mode == "strict":
                raise
            warnings.warn(
                f"{exc.message}; this request goes to the gateway", LedgerWarning, stacklevel=4
            )
            return None
        for key in keys:
            record = found.get(key)
            if record is not None and record.ok and record.answer is not None:
                return Recording(key, record)
        return self.missing(path, fields)

    def unusable(self, path: str, body: bytes, why: str) -> None:
        """The recording found cannot answer (``why``): ``None`` (send the request), or
        ``REPLAY_MISS`` in strict mode."""
        self.missing(path, json.loads(body), why)

    def missing(self, path: str, fields: Mapping[str, Any], why: str = "") -> None:
        """No usable recording: ``None`` (send it), or ``REPLAY_MISS`` in strict mode."""
        if self.mode != "strict":
            return None
        prompt = str(fields.get("prompt", ""))
        reason = why or "no answer to this request was recorded"
        raise KoineError(
            f"strict replay: {reason} (prompt {short_prompt(prompt)!r}, {path}); nothing was "
            f"sent.{self._near(path, fields)}",
            "REPLAY_MISS",
        )

    def _near(self, path: str, fields: Mapping[str, Any]) -> str:
        """What differs from a recording of the same prompt, if the ledger holds one."""
        from .ledger import RequestShape

        assert self.ledger is not None
        try:
            near = self.ledger.nearest(str(fields["prompt"]), _paths(path))
        except KoineError:
            return ""
        if near is None:
            return ""
        model, session, system_hash, schema_hash, tools = near
        shape = RequestShape.of(path, fields)
        differ = [
            name
            for name, theirs, ours in (
                ("model", model, shape.model),
                ("session id", session, shape.session_id),
                ("system prompt", system_hash, shape.system_hash),
                ("schema", schema_hash, shape.schema_hash),
                (
                    "allowed tools",
                    tools,
                    json.dumps(list(shape.allowed_tools)) if shape.allowed_tools else None,
                ),
            )
            if theirs != ours
        ]
        return f" This prompt was recorded with another {', '.join(differ)}." if differ else ""

    # -- writing ------------------------------------------------------------------------------

    def _write(self, path: str, body: bytes, **outcome: Any) -> str | None:
        if not self.records or self.ledger is None:
            return None
        from .ledger import LedgerWarning, RequestShape

        fields: dict[str, Any] = json.loads(body)
        shape = RequestShape.of(path, fields)
        key = shape.key(fields["prompt"])
        if not self.writes:
            return key  # the caller writes this answer down itself (e.g. extract, with its run)
        try:
            self.ledger.record(shape, fields["prompt"], key=key, **outcome)
        except KoineError as exc:  # the answer is the user's all the same
            warnings.warn(f"{exc.message}; this answer was not recorded", LedgerWarning, 4)
            return None
        return key

    def record_answer(
        self,
        path: str,
        body: bytes,
        *,
        answer: str,
        raw_text: str | None,
        usage: KoineUsage | None,
        session_id: str | None,
        attempts: int = 1,
        started: float | None,
    ) -> str | None:
        """Write a complete answer; returns its ledger key (``None`` when nothing was written)."""
        return self._write(
            path,
            body,
            status="ok",
            answer=answer,
            raw_text=raw_text,
            input_tokens=usage.input_tokens if usage is not None else 0,
            output_tokens=usage.output_tokens if usage is not None else 0,
            session_id=session_id,
            attempts=attempts,
            started=started,
            finished=time.time(),
        )

    def record_failure(
        self,
        path: str,
        body: bytes,
        error: KoineError,
        *,
        started: float | None,
        usage: KoineUsage | None = None,
    ) -> None:
        """Write a failure that was paid for (``usage``, else the error's), as ``failed``: its
        tokens are accounted for; it is never replayed."""
        usage = usage or error.usage
        if usage is None:
            return
        self._write(
            path,
            body,
            status="failed",
            error_code=error.code,
            error_message=error.message,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            attempts=error.attempts or 1,
            started=started,
            finished=time.time(),
        )
