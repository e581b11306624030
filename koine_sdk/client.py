"""The async client. Each generation method builds a :class:`KoineRequest`, hands it to the
call's :class:`~koine_sdk._replay_layer.ReplayLayer` (which answers from the ledger, or sends it
through :mod:`._transport` and records the answer) and parses the raw answer it gets back, the
same way whether it came from the gateway or the ledger (the result's ``source`` says which);
the streams parse with :mod:`._streams` (see :mod:`._results`)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

import httpx
from pydantic import ValidationError

from ._config import KoineConfig, shown_url
from ._objects import parser_for
from ._repair import repair_prompt
from ._replay import Replayer, ReplayMode, replay_mode
from ._replay_layer import Answer, Kept, Parsed, ReplayLayer, Resend
from ._request import Endpoint, KoineRequest
from ._results import StreamObjectResult, StreamTextResult
from ._streams import ObjectStreamState, TextStreamState
from ._transport import Transport
from .errors import KoineError
from .types import (
    GenerateObjectResult,
    GenerateTextResult,
    HealthStatus,
    KoineUsage,
    _GenerateObjectWire,  # pyright: ignore[reportPrivateUsage]
)

if TYPE_CHECKING:
    from .ledger import Ledger, LedgerSpec

__all__ = ["KoineClient", "StreamObjectResult", "StreamTextResult", "create_koine"]

T = TypeVar("T")


def _usage_in(body: bytes) -> KoineUsage | None:
    """The ``usage`` of an answer that is otherwise unusable, if it can be read (it was paid)."""
    try:
        data = json.loads(body)
        return KoineUsage.model_validate(data["usage"]) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError, RecursionError):
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


async def _parse_text(answer: Answer, resend: Resend | None) -> Parsed[GenerateTextResult]:
    """``/generate-text``'s JSON body → the result (live or replayed alike)."""
    try:
        result = GenerateTextResult.model_validate_json(answer.body)
    except ValidationError:
        raise _invalid_response("a generate-text result", answer.body) from None
    if answer.source != "live":
        result = result.model_copy(
            update={"source": answer.source, "ledger_key": answer.ledger_key}
        )
    return Parsed(result, Kept(result.text, None, result.usage, result.session_id))


async def _parse_object(
    answer: Answer,
    resend: Resend | None,
    request: KoineRequest,
    parser: Any,
    repairs: int,
) -> Parsed[GenerateObjectResult[Any]]:
    """``/generate-object``'s JSON body → the validated result. An object that fails the
    schema is repaired (up to ``repairs`` more answers, sent through ``resend``: a live answer
    only): the same session is resumed with the validation errors. ``usage`` sums every
    answer; the ledger keeps the last one's object as the gateway returned it."""
    body = answer.body
    attempts = 0
    total: KoineUsage | None = None
    while True:
        attempts += 1
        try:
            wire = _GenerateObjectWire.model_validate_json(body)
        except ValidationError:
            error = _invalid_response("a generate-object result", body)
            usage = _sum(total, error.usage) if error.usage is not None else total
            raise error.replace(usage=usage, attempts=attempts) from error.__cause__
        total = _sum(total, wire.usage)
        try:
            obj = parser.validate_final(wire.object, wire.raw_text)
        except KoineError as invalid:
            exc = invalid.replace(usage=total, attempts=attempts)
            if resend is None or attempts > repairs:
                raise exc from invalid.__cause__
            follow = replace(request, prompt=repair_prompt(exc), session_id=wire.session_id)
            follow.check_size()
            try:
                body = await resend(follow)
            except KoineError as failed:  # the earlier answers were paid all the same
                raise failed.replace(
                    usage=failed.usage or total, attempts=attempts
                ) from failed.__cause__
            continue
        result: GenerateObjectResult[Any] = GenerateObjectResult(
            object=obj,
            raw_text=wire.raw_text,
            usage=total,
            session_id=wire.session_id,
            attempts=attempts if answer.source == "live" else answer.attempts,
            source=answer.source,
            ledger_key=answer.ledger_key,
        )
        kept = Kept(
            json.dumps(wire.object, ensure_ascii=False),
            wire.raw_text,
            total,
            wire.session_id,
            attempts,
        )
        return Parsed(result, kept)


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
        replay: ReplayMode | str | None = None,
        record: bool = True,
        ledger: LedgerSpec = None,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise KoineError(
                f"max_retries must be a whole number >= 0 (got {max_retries!r})", "INVALID_CONFIG"
            )
        mode = replay_mode(replay)
        # Strict replay never sends a request: it needs no gateway (an offline re-run).
        self.config = config.validated(gateway_required=mode != "strict")
        self._replay = Replayer(mode, ledger)
        self._transport = Transport(self.config, max_retries=max_retries, http_client=http_client)
        self._default_layer = ReplayLayer(self._transport, self._replay)

    def __repr__(self) -> str:
        # Never raises, even for a client whose __init__ failed half-way (verbose tracebacks
        # call repr on it): nothing but the class name is taken for granted.
        config = getattr(self, "config", None)
        if config is None:
            return "KoineClient(<not configured>)"
        replay = getattr(self, "replay", "off")
        shown = f", replay={replay!r}" if replay != "off" else ""
        url = shown_url(getattr(config, "base_url", None))
        return f"KoineClient(base_url={url!r}, model={getattr(config, 'model', None)!r}{shown})"

    @property
    def replay(self) -> ReplayMode:
        """How this client uses the ledger: ``off``, ``record``, ``replay`` or ``strict``."""
        return self._replay.mode

    @property
    def ledger(self) -> Ledger | None:
        """The ledger this client records to / replays from (``None`` with ``replay="off"``)."""
        return self._replay.ledger

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

    def _layer(self, replay: ReplayMode | str | None, record: bool = True) -> ReplayLayer:
        """The record/replay layer of one call, over the transport: the client's mode, or
        ``replay=`` for this call alone (``"off"``: ask the gateway and record nothing,
        whatever the client's mode); ``record=False``: replay as the mode says, but write
        nothing (the caller records the answer itself, as ``extract`` does with its run)."""
        if not isinstance(record, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise KoineError(
                f"record must be True or False (got {type(record).__name__})", "INVALID_ARGUMENT"
            )
        if replay is None and record:
            return self._default_layer
        policy = self._replay if replay is None else self._replay.with_mode(replay_mode(replay))
        return ReplayLayer(self._transport, policy if record else policy.without_writing())

    def _request(
        self,
        endpoint: Endpoint,
        prompt: str,
        system: str | None,
        session_id: str | None,
        allowed_tools: Sequence[str] | None,
        model: str | None,
        schema: dict[str, Any] | None = None,
    ) -> KoineRequest:
        """The request, after checking the arguments (``INVALID_ARGUMENT``) and that the
        gateway can pass each of them to the CLI (``PROMPT_TOO_LARGE``): nothing is sent
        otherwise."""
        return KoineRequest.build(
            endpoint,
            prompt=prompt,
            system=system,
            session_id=session_id,
            allowed_tools=allowed_tools,
            model=model,
            default_model=self.config.model,
            schema=schema,
        )

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
        replay: ReplayMode | str | None = None,
        record: bool = True,
    ) -> GenerateTextResult:
        """Generate text from a prompt. ``session_id`` continues an earlier conversation;
        ``allowed_tools`` narrows the CLI tools the gateway allows.

        Cancelling the call (or Ctrl-C on the sync client) closes the connection and frees the
        gateway's slot, but the real gateway lets that CLI run to its end (only streams are
        stopped on disconnect): the tokens are spent anyway."""
        timeout = _check_timeout(timeout)
        layer = self._layer(replay, record)
        request = self._request(
            Endpoint.GENERATE_TEXT, prompt, system, session_id, allowed_tools, model
        )
        return await layer.answer(request, _parse_text, timeout=timeout)

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
        replay: ReplayMode | str | None = None,
        record: bool = True,
    ) -> StreamTextResult:
        """Stream text as it is written: ``async with koine.stream_text(prompt=...) as r:``
        then ``async for chunk in r.text_stream``; afterwards ``await r.text()``,
        ``await r.usage()``, ``await r.session_id()``.

        The stream keeps every chunk for ``r.text()``, so its memory grows with the answer.
        ``keep_text=False`` keeps nothing (memory stays flat however long the stream), for a
        consumer that handles each chunk itself; ``r.text()`` and ``r.received_text`` then raise
        ``INVALID_ARGUMENT``."""
        timeout = _check_timeout(timeout)
        request = self._request(Endpoint.STREAM, prompt, system, session_id, allowed_tools, model)
        limits = self.config.limits
        state = TextStreamState(keep_text, limits.max_answer_chars, limits.max_depth)
        return StreamTextResult(self._layer(replay, record), request, timeout, state)

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
        replay: ReplayMode | str | None = None,
        record: bool = True,
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
        layer = self._layer(replay, record)
        parser: Any = parser_for(schema)
        request = self._request(
            Endpoint.GENERATE_OBJECT,
            prompt,
            system,
            session_id,
            allowed_tools,
            model,
            parser.json_schema(),
        )

        async def parse(answer: Answer, resend: Resend | None) -> Parsed[GenerateObjectResult[Any]]:
            return await _parse_object(answer, resend, request, parser, repairs)

        return await layer.answer(request, parse, timeout=timeout)

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
        replay: ReplayMode | str | None = None,
        record: bool = True,
    ) -> StreamObjectResult[T]:
        """Stream an object as its JSON is written: ``async with koine.stream_object(...) as r:``
        then ``async for partial in r.partial_object_stream`` (each a partial view of
        ``schema``: any field may still be missing); afterwards ``await r.object()``.

        No repair loop here (see :meth:`generate_object`)."""
        timeout = _check_timeout(timeout)
        parser: Any = parser_for(schema)
        request = self._request(
            Endpoint.STREAM_OBJECT,
            prompt,
            system,
            session_id,
            allowed_tools,
            model,
            parser.json_schema(),
        )
        state = ObjectStreamState(parser, self.config.limits.max_depth)
        return StreamObjectResult(self._layer(replay, record), request, timeout, state)

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
    config: KoineConfig,
    /,
    *,
    max_retries: int = ...,
    http_client: httpx.AsyncClient | None = ...,
    replay: ReplayMode | str | None = ...,
    ledger: LedgerSpec = ...,
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
    replay: ReplayMode | str | None = ...,
    ledger: LedgerSpec = ...,
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
    replay: ReplayMode | str | None = None,
    ledger: LedgerSpec = None,
) -> KoineClient:
    """Create an async client. Pass a :class:`KoineConfig`, or keywords; what is not given
    comes from the environment (``KOINE_BASE_URL``, ``KOINE_AUTH_KEY``, ``KOINE_TIMEOUT``,
    ``KOINE_MODEL``, ``KOINE_REPLAY``). The configuration is validated once, here
    (``INVALID_CONFIG``).

    ``max_retries`` (default 0: the SDK does not retry) retries 429 answers, waiting
    ``Retry-After``, and connection failures, before any response was used.

    ``replay`` (default ``$KOINE_REPLAY``, else ``"off"``) records answers in the ledger and
    gives them back for identical requests: ``"record"`` writes every complete answer;
    ``"replay"`` (or ``"on"``) answers recorded requests from the ledger without sending them
    and sends (and records) the rest; ``"strict"`` answers from the ledger only, raising
    ``REPLAY_MISS`` for a request never recorded (and needs no ``base_url`` / ``auth_key``).
    ``ledger`` picks the ledger (default: ``KOINE_LEDGER``, else the user cache folder; a path,
    a :class:`~koine_sdk.ledger.Ledger`, or ``False`` for one kept in this process).
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
    return KoineClient(
        config, max_retries=max_retries, http_client=http_client, replay=replay, ledger=ledger
    )
