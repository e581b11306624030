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

A recording is given back as the gateway's raw answer (:meth:`Recording.body`: the JSON body
of ``/generate-text`` or ``/generate-object``; :meth:`Recording.events`: the events of a stream,
``session``, ``text`` or ``object``, ``result`` and ``done``: the text as one chunk, the object
as one partial), which the endpoint parses exactly as a live answer. Only complete answers are
recorded as answers (never a stream without ``done``, one with an ``error`` event, an object
that fails its schema); a failure that was paid for is written with status ``failed`` (its
tokens), and a failure is never replayed.

This module holds the modes, the recordings and the policy of one call (:class:`Replayer`: its
mode and ledger, looking up and writing); :mod:`._replay_layer` is the one place that uses it to
decide "answer from the ledger, or send and record".
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, cast, get_args

from ._request import Endpoint, KoineRequest
from ._sse import ServerSentEvent
from .errors import KoineError
from .types import KoineUsage

if TYPE_CHECKING:  # the ledger (sqlite3) is imported when a client records or replays
    from .ledger import Ledger, LedgerRecord, LedgerSpec

__all__ = [
    "ENV_REPLAY",
    "Kept",
    "Recording",
    "ReplayMode",
    "Replayer",
    "replay_mode",
    "short_prompt",
]

ReplayMode = Literal["off", "record", "replay", "strict"]
"""How a client uses the ledger (``replay=`` of :func:`create_koine`): ``off``; ``record``
(send every request, record every complete answer); ``replay`` (answer recorded requests from
the ledger, send and record the rest; ``"on"`` is accepted for it); ``strict`` (the ledger
only: a request never recorded raises ``REPLAY_MISS``, nothing is sent)."""

ENV_REPLAY: Final = "KOINE_REPLAY"
MODES: Final[tuple[str, ...]] = get_args(ReplayMode)
REPLAY_MODES: Final[tuple[str, ...]] = MODES
"""The replay modes, in order: ``off``, ``record``, ``replay``, ``strict`` (public name)."""
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
class Kept:
    """What the ledger keeps of a complete answer: the text, or the object as the gateway
    returned it (JSON) with the model's JSON text; the tokens paid (all attempts of a repaired
    object) and the session id to resume."""

    answer: str
    raw_text: str | None
    usage: KoineUsage | None
    session_id: str | None
    attempts: int = 1


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

    def body(self, endpoint: Endpoint) -> bytes:
        """The JSON body of the non-streaming answer this recording gives (``/generate-text``'s
        or ``/generate-object``'s, as the gateway writes it), for the endpoint's own parser; a
        recording without a session id gives a body without one (which that parser refuses)."""
        u = self.usage
        data: dict[str, Any] = {}
        if endpoint.wants_object:
            data["object"] = self.value()
            data["rawText"] = self.raw_text()
        else:
            data["text"] = self.text
        data["usage"] = {
            "inputTokens": u.input_tokens,
            "outputTokens": u.output_tokens,
            "totalTokens": u.total_tokens,
        }
        if self.session_id is not None:
            data["sessionId"] = self.session_id
        try:
            return json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: sent as its JSON escape
            return json.dumps(data).encode()

    def events(self, endpoint: Endpoint) -> list[ServerSentEvent]:
        """The events of a stream to ``endpoint`` that gives this answer."""
        sid = self.session_id
        out: list[ServerSentEvent] = []
        if sid is not None:
            out.append(_event("session", {"sessionId": sid}))
        if endpoint.wants_object:
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

    def find(self, request: KoineRequest) -> Recording | None:
        """The recording that answers this request, or ``None`` (send it). ``strict``: a
        request without one raises ``REPLAY_MISS`` instead."""
        if not self.replays or self.ledger is None:
            return None
        from .ledger import LedgerWarning, RequestShape

        fields = request.fields()
        paths = _paths(request.endpoint.path)
        keys = [RequestShape.of(p, fields).key(request.prompt) for p in paths]
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
        return self.missing(request)

    def missing(self, request: KoineRequest, why: str = "") -> None:
        """No usable recording (``why``, when one was found but cannot answer): ``None`` (send
        the request), or ``REPLAY_MISS`` in strict mode."""
        if self.mode != "strict":
            return None
        reason = why or "no answer to this request was recorded"
        raise KoineError(
            f"strict replay: {reason} (prompt {short_prompt(request.prompt)!r}, "
            f"{request.endpoint.path}); nothing was sent.{self._near(request)}",
            "REPLAY_MISS",
        )

    def _near(self, request: KoineRequest) -> str:
        """What differs from a recording of the same prompt, if the ledger holds one."""
        assert self.ledger is not None
        path = request.endpoint.path
        try:
            near = self.ledger.nearest(request.prompt, _paths(path))
        except KoineError:
            return ""
        if near is None:
            return ""
        model, session, system_hash, schema_hash, tools = near
        shape = request.shape()
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

    def _write(self, request: KoineRequest, **outcome: Any) -> str | None:
        if not self.records or self.ledger is None:
            return None
        from .ledger import LedgerWarning

        shape = request.shape()
        key = shape.key(request.prompt)
        if not self.writes:
            return key  # the caller writes this answer down itself (e.g. extract, with its run)
        try:
            self.ledger.record(shape, request.prompt, key=key, **outcome)
        except KoineError as exc:  # the answer is the user's all the same
            warnings.warn(f"{exc.message}; this answer was not recorded", LedgerWarning, 4)
            return None
        return key

    def record_answer(
        self, request: KoineRequest, kept: Kept, *, started: float | None
    ) -> str | None:
        """Write a complete answer; returns its ledger key (``None`` when nothing was written)."""
        usage = kept.usage
        return self._write(
            request,
            status="ok",
            answer=kept.answer,
            raw_text=kept.raw_text,
            input_tokens=usage.input_tokens if usage is not None else 0,
            output_tokens=usage.output_tokens if usage is not None else 0,
            session_id=kept.session_id,
            attempts=kept.attempts,
            started=started,
            finished=time.time(),
        )

    def record_failure(
        self,
        request: KoineRequest,
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
            request,
            status="failed",
            error_code=error.code,
            error_message=error.message,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            attempts=error.attempts or 1,
            started=started,
            finished=time.time(),
        )
