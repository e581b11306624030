"""Bulk schema extraction: many texts → one pandas DataFrame.

``extract(texts, schema=Model, prompt=...)`` sends one ``generate_object`` request per row and
returns a DataFrame aligned to the input: one column per schema field (nested models flattened
to dotted names such as ``address.city``), an ``error`` column (``None`` or ``"CODE: message"``)
and the usage columns ``input_tokens`` / ``output_tokens``. ``aextract`` is the same for async
code. pandas is imported only when called (it is an optional extra).

How it runs:

* **Concurrency.** Each gateway's non-streaming limit is read from ``/health`` (``concurrency=``
  overrides it; 2 when unknown). A 429 makes that gateway pause ``Retry-After`` seconds (capped
  by ``max_retry_after``), halves its window, and the row is retried; every success widens the
  window again by about one slot per window's worth of rows, never above the limit (AIMD).
* **Several gateways.** ``client=[c1, c2]`` spreads rows over replicas, each within its own
  limit. A connection failure moves the row to another replica; a replica that fails
  ``_MAX_REPLICA_FAILURES`` times in a row is taken out. Rows fail only when no replica is left.
* **Cache.** A row whose request (prompt with its text, system, schema JSON, model, tools)
  already succeeded in this process is not sent again (``cache=False`` opts out;
  :func:`clear_cache` empties it). Identical texts within one call are requested once.
* **Budget.** ``max_rows`` (requests sent) and ``max_tokens`` (tokens spent by this call) are
  checked before each new request; rows not sent get ``BUDGET_EXCEEDED``. Requests already in
  flight finish, so the spend may pass ``max_tokens`` by what they cost.
* **Interrupts.** Ctrl-C / Kernel ▸ Interrupt during ``extract`` cancels the requests in
  flight (closing their connections frees their gateway slots; the real gateway does not stop
  a ``/generate-object`` CLI on disconnect, so those runs finish and are billed), marks
  unfinished rows ``INTERRUPTED`` and returns the partial frame (``on_interrupt="raise"``
  re-raises the ``KeyboardInterrupt`` instead). A cancelled ``aextract`` re-raises
  ``CancelledError``. Either way the frame of the latest call is kept in :data:`last_result` —
  reachable as ``koine_jupyter.extract.last_result`` (an attribute of the ``extract``
  function, mirrored as ``koine_jupyter.extraction.last_result``).
* **Progress.** A widget (bar + label, and a preview of the frame filling in) in a notebook, a
  throttled text line on ``stderr`` elsewhere, nothing with ``progress=False``.

Statistics of the run (requests, cache hits, 429s, tokens spent, per-gateway counters) are in
``df.attrs["koine"]``.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import enum
import hashlib
import json
import math
import sys
import threading
import time
import types
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
)

from pydantic import BaseModel

from koine_sdk import KoineClient, KoineError, LoopThread, SyncKoineClient, create_koine

from .views.progress import ProgressMode, ProgressSnapshot, ProgressView, make_progress

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_PROMPT", "aextract", "clear_cache", "extract", "last_result"]

DEFAULT_PROMPT = "Extract the requested fields from the following text."
"""The prompt used when none is given; the row's text is appended after a blank line."""

last_result: pd.DataFrame | None = None
"""The frame of the latest ``extract``/``aextract`` call in this process, also when the call
was interrupted (an interrupted cell cannot hand back a value)."""

ClientLike = KoineClient | SyncKoineClient
OnInterrupt = Literal["return", "raise"]

_DEFAULT_CONCURRENCY = 2  # per gateway, when /health does not tell
_HEALTH_TIMEOUT = 5.0
_MAX_REPLICA_FAILURES = 3  # consecutive connection failures before a replica is taken out
_REPLICA_BACKOFF = 0.2  # seconds; doubled per consecutive connection failure
_DEFAULT_429_WAIT = 1.0  # seconds, when a 429 comes without Retry-After (doubles per 429)
_CANCEL_GRACE = 5.0  # seconds an interrupted extract waits for its requests to close
_POLL = 0.1  # seconds between checks for Ctrl-C while the sync extract waits
_PREVIEW_ROWS = 10
_CACHE_MAX = 100_000
_RESERVED = ("error", "input_tokens", "output_tokens")

R = TypeVar("R")


def _invalid(message: str) -> KoineError:
    return KoineError(message, "INVALID_ARGUMENT")


# -- schema → columns ------------------------------------------------------------------------

_Kind = Literal["int", "float", "bool", "str", "object"]


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    path: tuple[str, ...]
    kind: _Kind


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``Optional[X]`` / ``Annotated[X, ...]`` → (X, whether None is allowed)."""
    optional = False
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin is Union or origin is types.UnionType:
            args = [a for a in get_args(tp) if a is not type(None)]
            optional = optional or len(args) < len(get_args(tp))
            if len(args) == 1:
                tp = args[0]
                continue
        return tp, optional


def _kind(tp: Any) -> _Kind:
    if get_origin(tp) is Literal:
        values = get_args(tp)
        if values and all(isinstance(v, str) for v in values):
            return "str"
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "int"
        return "object"
    if not isinstance(tp, type) or issubclass(tp, enum.Enum):
        return "object"
    if issubclass(tp, bool):
        return "bool"
    if issubclass(tp, int):
        return "int"
    if issubclass(tp, float):
        return "float"
    if issubclass(tp, str):
        return "str"
    return "object"


def _columns(
    model: type[BaseModel], prefix: tuple[str, ...] = (), seen: tuple[type, ...] = ()
) -> list[_Column]:
    out: list[_Column] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        inner, _ = _unwrap(info.annotation)
        if (
            isinstance(inner, type)
            and issubclass(inner, BaseModel)
            and inner not in seen
            and inner.model_fields
        ):
            out.extend(_columns(inner, path, (*seen, model)))
        else:
            out.append(_Column(".".join(path), path, _kind(inner)))
    return out


def _flatten(obj: Any, columns: Sequence[_Column]) -> tuple[Any, ...]:
    values: list[Any] = []
    for col in columns:
        value: Any = obj
        for part in col.path:
            if value is None:
                break
            value = getattr(value, part, None)
        values.append(value)
    return tuple(values)


def _schema_columns(schema: Any) -> tuple[list[_Column], str]:
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise _invalid(
            f"schema must be a pydantic model class (got {schema!r}); e.g. "
            "class Person(BaseModel): name: str"
        )
    model: type[BaseModel] = schema
    columns = _columns(model)
    if not columns:
        raise _invalid(f"schema {model.__name__} has no fields: there is nothing to extract")
    clash = sorted({c.name for c in columns} & set(_RESERVED))
    if clash:
        raise _invalid(
            f"schema {model.__name__} has field(s) {clash} whose names the result reserves for "
            f"its own columns {list(_RESERVED)}; rename them (e.g. with a pydantic alias)"
        )
    schema_json = json.dumps(model.model_json_schema(), sort_keys=True, separators=(",", ":"))
    return columns, schema_json


# -- values → DataFrame ----------------------------------------------------------------------


def _series(values: list[Any], kind: _Kind, index: Any) -> Any:
    import pandas as pd

    missing = any(v is None for v in values)
    if kind == "int":
        return pd.Series(values, index=index, dtype="Int64" if missing else "int64")
    if kind == "float":
        return pd.Series(values, index=index, dtype="Float64" if missing else "float64")
    if kind == "bool":
        return pd.Series(values, index=index, dtype="boolean" if missing else "bool")
    if kind == "str" and not all(v is None for v in values):
        return pd.Series(values, index=index)  # pandas' own string dtype (``str`` in pandas 3)
    return pd.Series(values, index=index, dtype=object)


def _frame(
    columns: Sequence[_Column],
    values: Sequence[tuple[Any, ...] | None],
    errors: Sequence[str | None],
    usage: Sequence[tuple[int, int] | None],
    index: Any,
) -> pd.DataFrame:
    import pandas as pd

    data: dict[str, Any] = {}
    width = len(columns)
    blank: tuple[Any, ...] = (None,) * width
    rows = [v if v is not None else blank for v in values]
    for i, col in enumerate(columns):
        data[col.name] = _series([r[i] for r in rows], col.kind, index)
    data["error"] = pd.Series(list(errors), index=index, dtype=object)
    data["input_tokens"] = _series([u[0] if u else None for u in usage], "int", index)
    data["output_tokens"] = _series([u[1] if u else None for u in usage], "int", index)
    return pd.DataFrame(data, index=index)


# -- the cache -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cached:
    values: tuple[Any, ...]
    usage: tuple[int, int]


class _Cache:
    """Successful rows of this process, keyed by a hash of everything that shapes the answer."""

    def __init__(self, max_entries: int = _CACHE_MAX) -> None:
        self._data: collections.OrderedDict[str, _Cached] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: str) -> _Cached | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
        return None if hit is None else _Cached(copy.deepcopy(hit.values), hit.usage)

    def put(self, key: str, values: tuple[Any, ...], usage: tuple[int, int]) -> None:
        entry = _Cached(copy.deepcopy(values), usage)
        with self._lock:
            self._data[key] = entry
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_CACHE = _Cache()


def clear_cache() -> None:
    """Forget every cached row (the next ``extract`` requests every row again)."""
    _CACHE.clear()


def _cache_key(
    prompt: str, system: str | None, schema_json: str, model: str | None, tools: Any
) -> str:
    payload = json.dumps(
        [prompt, system, schema_json, model, tools], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# -- gateways --------------------------------------------------------------------------------


class _Replica:
    """One gateway: its client, its concurrency window (AIMD) and its health."""

    def __init__(self, client: ClientLike, number: int) -> None:
        self.number = number
        self.client = client
        self.sync = isinstance(client, SyncKoineClient)
        self.base_url = client.config.base_url
        self.limit = _DEFAULT_CONCURRENCY
        self.window = float(_DEFAULT_CONCURRENCY)
        self.active = 0
        self.cool_until = 0.0
        self.cooling_for_429 = False
        self.failures = 0
        self.dead = False
        self.last_error: str | None = None
        self.sent = 0
        self.ok = 0
        self.throttled = 0
        self.failed_connections = 0
        self.consecutive_429 = 0

    async def call(self, make: Callable[[KoineClient], Coroutine[Any, Any, R]]) -> R:
        """Run ``make(async_client)`` where the client lives: here for an async client, on its
        own loop thread for a sync one (cancelling this await cancels it there)."""
        if isinstance(self.client, SyncKoineClient):
            return await self.client.arun(make)
        return await make(self.client)

    def set_limit(self, limit: int, active: int = 0) -> None:
        self.limit = max(1, limit)
        self.window = float(max(1, self.limit - max(0, active)))

    def capacity(self, now: float) -> int:
        if self.dead or now < self.cool_until:
            return 0
        return max(1, math.floor(self.window)) - self.active

    def on_success(self) -> None:
        self.ok += 1
        self.failures = 0
        self.consecutive_429 = 0
        if self.window < self.limit:
            self.window = min(float(self.limit), self.window + 1.0 / self.window)

    def on_throttled(self, now: float, wait: float) -> None:
        self.throttled += 1
        self.consecutive_429 += 1
        if now >= self.cool_until:  # one decrease per congestion event, not per 429
            self.window = max(1.0, self.window / 2)
        self.cool_until = max(self.cool_until, now + wait)
        self.cooling_for_429 = True

    def on_connection_failure(self, now: float, message: str) -> None:
        self.failed_connections += 1
        self.failures += 1
        self.last_error = message
        if self.failures >= _MAX_REPLICA_FAILURES:
            self.dead = True
        else:
            self.cool_until = max(
                self.cool_until, now + _REPLICA_BACKOFF * 2 ** (self.failures - 1)
            )
            self.cooling_for_429 = False

    def stats(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "limit": self.limit,
            "sent": self.sent,
            "ok": self.ok,
            "throttled": self.throttled,
            "connection_failures": self.failed_connections,
            "taken_out": self.dead,
        }


def _is_connection_trouble(exc: KoineError) -> bool:
    if exc.code == "NETWORK_ERROR" or exc.code == "CLIENT_CLOSED":
        return True
    # A 5xx without a gateway code came from something in front of (or instead of) the gateway.
    return exc.code == "HTTP_ERROR" and exc.status is not None and exc.status >= 500


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KoineError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


# -- one run ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """One request: a distinct prompt, and the rows (positions) its answer fills."""

    prompt: str
    key: str | None
    positions: list[int]
    throttled: int = 0
    moves: int = 0
    counted: bool = False
    avoid: set[int] = field(default_factory=lambda: set[int]())


@dataclass(frozen=True, slots=True)
class _Outcome:
    task: asyncio.Task[Any]
    unit: _Unit
    replica: _Replica
    result: Any
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class _Request:
    schema: type[BaseModel]
    system: str | None
    model: str | None
    allowed_tools: tuple[str, ...] | None
    timeout: float | None


class _Run:
    """The state of one extraction and the scheduler that drives it (on one event loop)."""

    def __init__(
        self,
        *,
        texts: list[str | None],
        index: Any,
        columns: list[_Column],
        request: _Request,
        prompts: list[str | None],
        keys: list[str | None],
        replicas: list[_Replica],
        own_clients: list[KoineClient],
        concurrency: int | None,
        max_retries: int,
        max_retry_after: float,
        max_rows: int | None,
        max_tokens: int | None,
        cache: bool,
    ) -> None:
        n = len(texts)
        self.n = n
        self.index = index
        self.columns = columns
        self.request = request
        self.replicas = replicas
        self.own_clients = own_clients
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.max_rows = max_rows
        self.max_tokens = max_tokens
        self.use_cache = cache
        self.values: list[tuple[Any, ...] | None] = [None] * n
        self.errors: list[str | None] = [None] * n
        self.usage: list[tuple[int, int] | None] = [None] * n
        self.finished_rows = [False] * n
        self.completion_order: list[int] = []
        self.done = 0
        self.failed = 0
        self.cached = 0
        self.requested_rows = 0
        self.requests = 0
        self.throttled = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.budget_hit: str | None = None
        self.interrupted = False
        self.started = time.monotonic()
        self.ended: float | None = None
        self.queue: collections.deque[_Unit] = collections.deque()
        self.inflight: dict[asyncio.Task[Any], tuple[_Unit, _Replica]] = {}
        self.crash: BaseException | None = None
        self.wake: asyncio.Event | None = None
        self.view: ProgressView = ProgressView(self.snapshot)
        self.final: pd.DataFrame | None = None
        self.finished_event = threading.Event()

        units: dict[str, _Unit] = {}
        for pos in range(n):
            prompt = prompts[pos]
            if prompt is None:
                self._finish_row(pos, error="INVALID_ARGUMENT: this row has no text (missing)")
                continue
            key = keys[pos]
            if key is not None:
                hit = _CACHE.get(key) if cache else None
                if hit is not None:
                    self.cached += 1
                    self._finish_row(pos, values=hit.values, usage=hit.usage)
                    continue
                unit = units.get(key)
                if unit is not None:
                    unit.positions.append(pos)
                    continue
                unit = units[key] = _Unit(prompt, key, [pos])
            else:
                unit = _Unit(prompt, None, [pos])
            self.queue.append(unit)

    # -- bookkeeping ------------------------------------------------------------------------

    def _finish_row(
        self,
        pos: int,
        *,
        values: tuple[Any, ...] | None = None,
        usage: tuple[int, int] | None = None,
        error: str | None = None,
    ) -> None:
        if self.finished_rows[pos]:
            return
        self.finished_rows[pos] = True
        self.values[pos] = values
        self.usage[pos] = usage
        self.errors[pos] = error
        self.completion_order.append(pos)
        if error is None:
            self.done += 1
        else:
            self.failed += 1

    def _fail_unit(self, unit: _Unit, error: str) -> None:
        for pos in unit.positions:
            self._finish_row(pos, error=error)

    def _fail_queue(self, error: str) -> None:
        while self.queue:
            self._fail_unit(self.queue.popleft(), error)

    def snapshot(self) -> ProgressSnapshot:
        live = [r for r in self.replicas if not r.dead]
        now = time.monotonic()
        note: str | None = None
        if self.budget_hit:
            note = "budget reached"
        elif any(r.cool_until > now and r.cooling_for_429 for r in live):
            note = "gateway busy (429): backing off"
        return ProgressSnapshot(
            total=self.n,
            done=self.done,
            failed=self.failed,
            cached=self.cached,
            in_flight=len(self.inflight),
            requested=self.requested_rows,
            elapsed=(self.ended or now) - self.started,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            concurrency=sum(max(1, math.floor(r.window)) for r in live),
            limit=sum(r.limit for r in live) or sum(r.limit for r in self.replicas),
            replicas_alive=len(live),
            replicas=len(self.replicas),
            note=note,
        )

    def frame(self) -> pd.DataFrame:
        df = _frame(self.columns, self.values, self.errors, self.usage, self.index)
        df.attrs["koine"] = self.stats()
        return df

    def preview(self) -> pd.DataFrame:
        recent = sorted(self.completion_order[-_PREVIEW_ROWS:])
        return _frame(
            self.columns,
            [self.values[p] for p in recent],
            [self.errors[p] for p in recent],
            [self.usage[p] for p in recent],
            self.index.take(recent),
        )

    def stats(self) -> dict[str, Any]:
        return {
            "rows": self.n,
            "succeeded": self.done,
            "failed": self.failed,
            "cache_hits": self.cached,
            "requests": self.requests,
            "throttled": self.throttled,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "elapsed": round((self.ended or time.monotonic()) - self.started, 3),
            "interrupted": self.interrupted,
            "budget_exceeded": self.budget_hit,
            "gateways": [r.stats() for r in self.replicas],
        }

    # -- the scheduler ----------------------------------------------------------------------

    async def execute(self) -> pd.DataFrame:
        """Run every queued row; return the frame (also on interrupt: see ``final``)."""
        global last_result
        self.wake = asyncio.Event()
        self.started = time.monotonic()
        message: str | None = None
        try:
            try:
                if self.queue:
                    await self._learn_limits()
                await self._loop()
            except BaseException as exc:
                await self._cancel_inflight()
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                    self.interrupted = True
                    left = self.n - self.done - self.failed
                    self._fail_queue("INTERRUPTED: the extraction was interrupted")
                    for pos in range(self.n):
                        self._finish_row(pos, error="INTERRUPTED: the extraction was interrupted")
                    message = (
                        f"Interrupted: {self.done} of {self.n} rows done, {left} unfinished "
                        "(error INTERRUPTED). The partial frame is in "
                        "koine_jupyter.extract.last_result."
                    )
                raise
            finally:
                self.ended = time.monotonic()
                for client in self.own_clients:
                    try:
                        await client.aclose()
                    except Exception:
                        pass
                df = self.frame()
                self.final = df
                last_result = df
                extract.__dict__["last_result"] = df
                if message is None and self.budget_hit:
                    message = f"Stopped: {self.budget_hit}."
                try:
                    self.view.finish(message)
                except Exception:
                    pass
                if message and self.interrupted and isinstance(self.view, _Silent):
                    _note(message)
        finally:
            self.finished_event.set()
        return df

    async def _learn_limits(self) -> None:
        if self.concurrency is not None:
            for r in self.replicas:
                r.set_limit(self.concurrency)
            return

        async def learn(r: _Replica) -> None:
            try:
                health = await r.call(lambda c: c.health(timeout=_HEALTH_TIMEOUT))
            except KoineError as exc:
                if _is_connection_trouble(exc):
                    r.on_connection_failure(time.monotonic(), _describe(exc))
                return
            except Exception:
                return
            if health.concurrency is not None:
                slots = health.concurrency.non_streaming
                r.set_limit(slots.limit, slots.active)

        await asyncio.gather(*(learn(r) for r in self.replicas))

    def _budget_left(self) -> bool:
        if self.max_rows is not None and self.requests >= self.max_rows:
            self.budget_hit = f"max_rows={self.max_rows} requests sent"
            return False
        if (
            self.max_tokens is not None
            and self.input_tokens + self.output_tokens >= self.max_tokens
        ):
            self.budget_hit = (
                f"max_tokens={self.max_tokens} reached "
                f"({self.input_tokens + self.output_tokens} tokens spent)"
            )
            return False
        return True

    def _pick(self, unit: _Unit, now: float) -> _Replica | None:
        best: _Replica | None = None
        best_score: tuple[int, int] = (0, 0)
        for r in self.replicas:
            free = r.capacity(now)
            if free <= 0:
                continue
            score = (0 if r.number in unit.avoid else 1, free)
            if best is None or score > best_score:
                best, best_score = r, score
        return best

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self.queue:
            unit = self.queue[0]
            if not unit.counted and not self._budget_left():
                self._fail_queue_budget()
                continue
            replica = self._pick(unit, now)
            if replica is None:
                return
            self.queue.popleft()
            if not unit.counted:
                unit.counted = True
                self.requests += 1
            replica.active += 1
            replica.sent += 1
            task = asyncio.get_running_loop().create_task(self._attempt(unit, replica))
            self.inflight[task] = (unit, replica)

    def _fail_queue_budget(self) -> None:
        # Retries of rows already counted keep their place; only new rows are refused.
        keep: collections.deque[_Unit] = collections.deque()
        while self.queue:
            unit = self.queue.popleft()
            if unit.counted:
                keep.append(unit)
            else:
                self._fail_unit(unit, f"BUDGET_EXCEEDED: {self.budget_hit}")
        self.queue = keep

    async def _attempt(self, unit: _Unit, replica: _Replica) -> None:
        req = self.request
        result: Any = None
        error: BaseException | None = None
        try:
            result = await replica.call(
                lambda c: c.generate_object(
                    prompt=unit.prompt,
                    schema=req.schema,
                    system=req.system,
                    model=req.model,
                    allowed_tools=req.allowed_tools,
                    timeout=req.timeout,
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        task = asyncio.current_task()
        assert task is not None and self.wake is not None
        # Handle the outcome and start the next request right here, in this task: waking the
        # scheduler first would leave the slot idle for a loop iteration per row.
        try:
            self._handle(_Outcome(task, unit, replica, result, error))
            self._dispatch()
            self.view.poke()
        except BaseException as exc:  # a bug: hand it to the scheduler, never lose it
            self.crash = exc
            self.wake.set()
            return
        if not self.inflight or error is not None:
            self.wake.set()  # the scheduler decides: the end, or a timer for a cooldown

    def _next_wake(self) -> float | None:
        now = time.monotonic()
        waits = [r.cool_until - now for r in self.replicas if not r.dead and r.cool_until > now]
        return max(0.0, min(waits)) if waits else None

    async def _loop(self) -> None:
        wake = self.wake
        assert wake is not None
        while True:
            self._dispatch()
            self.view.poke()
            if not self.queue and not self.inflight:
                return
            if self.queue and not self.inflight and all(r.dead for r in self.replicas):
                reason = "; ".join(
                    f"{r.base_url}: {r.last_error}" for r in self.replicas if r.last_error
                )
                self._fail_queue(f"NETWORK_ERROR: every gateway failed ({reason})")
                continue
            timeout = self._next_wake() if self.queue else None
            if timeout is None and not self.inflight:
                timeout = _POLL  # never wait for nothing (defensive: should not happen)
            wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await wake.wait()
            except TimeoutError:
                pass
            if self.crash is not None:
                raise self.crash

    def _handle(self, outcome: _Outcome) -> None:
        unit, replica, result, error = outcome.unit, outcome.replica, outcome.result, outcome.error
        self.inflight.pop(outcome.task, None)
        replica.active -= 1
        now = time.monotonic()
        if error is None:
            replica.on_success()
            usage = (result.usage.input_tokens, result.usage.output_tokens)
            self.input_tokens += usage[0]
            self.output_tokens += usage[1]
            values = _flatten(result.object, self.columns)
            if unit.key is not None and self.use_cache:
                _CACHE.put(unit.key, values, usage)
            for i, pos in enumerate(unit.positions):
                self.requested_rows += 1
                row_values = values if i == 0 else copy.deepcopy(values)
                self._finish_row(pos, values=row_values, usage=usage)
            return
        if isinstance(error, KoineError) and error.code == "CONCURRENCY_LIMIT_ERROR":
            self.throttled += 1
            unit.throttled += 1
            if error.retry_after is not None:
                wait = error.retry_after
            else:
                wait = _DEFAULT_429_WAIT * 2 ** min(replica.consecutive_429, 6)
            replica.on_throttled(now, min(self.max_retry_after, max(0.0, wait)))
            if unit.throttled > self.max_retries:
                self.requested_rows += len(unit.positions)
                self._fail_unit(unit, _describe(error))
            else:
                self.queue.appendleft(unit)
            return
        if isinstance(error, KoineError) and _is_connection_trouble(error):
            replica.on_connection_failure(now, _describe(error))
            unit.moves += 1
            unit.avoid.add(replica.number)
            if unit.moves > len(self.replicas) + _MAX_REPLICA_FAILURES:
                self.requested_rows += len(unit.positions)
                self._fail_unit(unit, _describe(error))
            else:
                self.queue.appendleft(unit)
            return
        replica.failures = 0  # the gateway answered: it is reachable
        self.requested_rows += len(unit.positions)
        self._fail_unit(unit, _describe(error))

    async def _cancel_inflight(self) -> None:
        tasks = list(self.inflight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CANCEL_GRACE)
        self.inflight.clear()


class _Silent(ProgressView):
    """``progress=False``."""


def _note(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except Exception:
        pass


# -- arguments -------------------------------------------------------------------------------


def _rows(texts: Any) -> tuple[list[str | None], Any]:
    """The texts as a list (``None`` for a missing value) and the index of the result."""
    if isinstance(texts, str | bytes):
        raise _invalid("texts must be a list of strings or a pandas Series, not one string")
    import pandas as pd

    if isinstance(texts, pd.DataFrame):
        raise _invalid(
            "texts must be one column (a Series, e.g. df['text']), not a whole DataFrame"
        )
    if isinstance(texts, pd.Series):
        raw: list[Any] = texts.tolist()
        index: Any = texts.index
    elif isinstance(texts, list | tuple):
        raw = list(cast(Sequence[Any], texts))
        index = pd.RangeIndex(len(raw))
    else:
        raise _invalid(
            f"texts must be a list of strings or a pandas Series (got {type(texts).__name__})"
        )
    out: list[str | None] = []
    for value in raw:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            out.append(None)
        elif isinstance(value, str):
            out.append(value)
        else:
            out.append(str(value))
    return out, index


def _render(prompt: str, text: str) -> str:
    if "{text}" in prompt:
        return prompt.replace("{text}", text)
    return f"{prompt}\n\n{text}" if prompt else text


def _clients(client: Any) -> tuple[list[ClientLike], bool]:
    if client is None:
        return [], True
    if isinstance(client, KoineClient | SyncKoineClient):
        return [client], False
    if isinstance(client, list | tuple):
        items = list(cast(Sequence[Any], client))
        if not items:
            raise _invalid("client=[] names no gateway")
        for item in items:
            if not isinstance(item, KoineClient | SyncKoineClient):
                raise _invalid(
                    f"client must be a KoineClient or SyncKoineClient (got {type(item).__name__})"
                )
        return cast(list[ClientLike], items), False
    raise _invalid(
        f"client must be a KoineClient, a SyncKoineClient or a list of them "
        f"(got {type(client).__name__})"
    )


def _check_count(name: str, value: Any, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(f"{name} must be a whole number >= {minimum} (got {value!r})")


def _prepare(
    texts: Any,
    schema: Any,
    prompt: Any,
    *,
    client: Any,
    system: str | None,
    model: str | None,
    allowed_tools: Sequence[str] | None,
    timeout: float | None,
    concurrency: int | None,
    max_retries: int,
    max_retry_after: Any,
    max_rows: int | None,
    max_tokens: int | None,
    cache: bool,
    progress: Any,
) -> tuple[_Run, ProgressMode, list[ClientLike]]:
    columns, schema_json = _schema_columns(schema)
    if not isinstance(prompt, str):
        raise _invalid(f"prompt must be a string (got {type(prompt).__name__})")
    _check_count("concurrency", concurrency, 1)
    _check_count("max_retries", max_retries, 0)
    _check_count("max_rows", max_rows, 0)
    _check_count("max_tokens", max_tokens, 0)
    if (
        isinstance(max_retry_after, bool)
        or not isinstance(max_retry_after, int | float)
        or not (max_retry_after >= 0)
    ):
        raise _invalid(
            f"max_retry_after must be a number of seconds >= 0 (got {max_retry_after!r})"
        )
    if progress is True:
        mode: ProgressMode = "auto"
    elif progress is False or progress is None:
        mode = "none"
    elif progress in ("auto", "widget", "markdown", "text", "none"):
        mode = progress
    else:
        raise _invalid(
            f"progress must be True, False, 'widget', 'markdown' or 'text' (got {progress!r})"
        )
    clients: list[ClientLike]
    clients, make_own = _clients(client)
    texts_list, index = _rows(texts)
    tools = tuple(allowed_tools) if allowed_tools is not None else None
    own: list[KoineClient] = []
    if make_own:
        own_client = create_koine()
        own.append(own_client)
        clients = [own_client]
    replicas = [_Replica(c, i) for i, c in enumerate(clients)]
    key_model = model if model is not None else replicas[0].client.config.model
    prompts: list[str | None] = []
    keys: list[str | None] = []
    for text in texts_list:
        if text is None:
            prompts.append(None)
            keys.append(None)
            continue
        rendered = _render(prompt, text)
        prompts.append(rendered)
        keys.append(
            _cache_key(rendered, system, schema_json, key_model, list(tools) if tools else tools)
        )
    run = _Run(
        texts=texts_list,
        index=index,
        columns=columns,
        request=_Request(cast(type[BaseModel], schema), system, model, tools, timeout),
        prompts=prompts,
        keys=keys if cache else [None] * len(prompts),
        replicas=replicas,
        own_clients=own,
        concurrency=concurrency,
        max_retries=max_retries,
        max_retry_after=float(max_retry_after),
        max_rows=max_rows,
        max_tokens=max_tokens,
        cache=cache,
    )
    return run, mode, clients


def _attach_view(run: _Run, mode: ProgressMode) -> None:
    if mode == "none":
        run.view = _Silent(run.snapshot)
        return
    run.view = make_progress(mode, run.snapshot, preview=run.preview)


# -- the private loop of the sync extract ----------------------------------------------------


_LOOP = LoopThread(name="koine-extract-loop")


def _loop_for(clients: list[ClientLike]) -> SyncKoineClient | LoopThread:
    """Where the sync extract runs its scheduler: the loop of the first sync client (no hop
    between threads per request), else a private loop."""
    for c in clients:
        if isinstance(c, SyncKoineClient):
            return c
    return _LOOP


# -- public API ------------------------------------------------------------------------------


def extract(
    texts: Any,
    schema: type[BaseModel],
    prompt: str = DEFAULT_PROMPT,
    *,
    client: ClientLike | Sequence[ClientLike] | None = None,
    system: str | None = None,
    model: str | None = None,
    allowed_tools: Sequence[str] | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
    max_retries: int = 8,
    max_retry_after: float = 30.0,
    max_rows: int | None = None,
    max_tokens: int | None = None,
    cache: bool = True,
    progress: bool | ProgressMode = True,
    on_interrupt: OnInterrupt = "return",
) -> pd.DataFrame:
    """Extract ``schema`` from every text; one row of the result per text.

    Args:
        texts: a list of strings, or a pandas Series (e.g. ``df["text"]``, whose index the
            result keeps). A missing value (None/NaN) gives that row an ``INVALID_ARGUMENT``
            error without a request.
        schema: a pydantic model class. Nested models become dotted columns
            (``address.city``); lists stay Python lists.
        prompt: the instruction; the row's text replaces ``{text}`` if the prompt has it, else
            it is appended after a blank line.
        client: a ``KoineClient`` or ``SyncKoineClient``, or a list of them (gateway replicas
            sharing the work). Default: a client made from the environment (``KOINE_BASE_URL``,
            ``KOINE_AUTH_KEY``) and closed afterwards.
        system, model, allowed_tools, timeout: passed to every ``generate_object`` request.
        concurrency: requests at once per gateway (default: its ``/health`` limit, else 2).
        max_retries: 429 answers tolerated per row before it fails.
        max_retry_after: cap, in seconds, on a 429's ``Retry-After`` pause.
        max_rows: at most this many requests (cache hits and duplicates are free).
        max_tokens: stop sending new requests once this call spent this many tokens.
        cache: reuse rows that already succeeded in this process (``False``: always request).
        progress: ``True`` (a widget in a notebook with a widget manager, a display handle in
            other kernels, a text line on stderr elsewhere; ``KOINE_DISPLAY`` applies),
            ``False``, or one of ``"widget"``, ``"markdown"``, ``"text"``.
        on_interrupt: on Ctrl-C / Kernel ▸ Interrupt, ``"return"`` the partial frame
            (unfinished rows get ``INTERRUPTED``) or ``"raise"`` ``KeyboardInterrupt`` after
            storing it in :data:`last_result`.

    Returns:
        A DataFrame with the schema's columns, ``error``, ``input_tokens`` and
        ``output_tokens``; ``df.attrs["koine"]`` holds the run's statistics.

    Raises:
        KoineError: ``INVALID_ARGUMENT`` for unusable arguments (nothing is sent then).

    Works in scripts and inside a running event loop (a notebook cell): the requests run on a
    private event loop thread. In async code prefer ``await aextract(...)``.
    """
    if on_interrupt not in ("return", "raise"):
        raise _invalid(f"on_interrupt must be 'return' or 'raise' (got {on_interrupt!r})")
    run, mode, clients = _prepare(
        texts, schema, prompt, client=client, system=system, model=model,
        allowed_tools=allowed_tools, timeout=timeout, concurrency=concurrency,
        max_retries=max_retries, max_retry_after=max_retry_after, max_rows=max_rows,
        max_tokens=max_tokens, cache=cache, progress=progress,
    )  # fmt: skip
    runner = _loop_for(clients)
    if _running_loop() is runner.loop():
        raise _invalid("extract() was called on its own loop thread; use aextract() there")
    _attach_view(run, mode)
    try:
        if isinstance(runner, SyncKoineClient):
            return runner.run(lambda _: run.execute())
        return runner.run(run.execute())
    except KeyboardInterrupt:
        run.finished_event.wait(_CANCEL_GRACE + 1.0)
        if on_interrupt == "raise" or run.final is None:
            raise
        return run.final


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def aextract(
    texts: Any,
    schema: type[BaseModel],
    prompt: str = DEFAULT_PROMPT,
    *,
    client: ClientLike | Sequence[ClientLike] | None = None,
    system: str | None = None,
    model: str | None = None,
    allowed_tools: Sequence[str] | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
    max_retries: int = 8,
    max_retry_after: float = 30.0,
    max_rows: int | None = None,
    max_tokens: int | None = None,
    cache: bool = True,
    progress: bool | ProgressMode = True,
) -> pd.DataFrame:
    """The async twin of :func:`extract` (same arguments, without ``on_interrupt``).

    Cancelling it cancels the requests in flight and re-raises ``CancelledError``; the partial
    frame (unfinished rows: ``INTERRUPTED``) is then in :data:`last_result`.
    """
    run, mode, _ = _prepare(
        texts, schema, prompt, client=client, system=system, model=model,
        allowed_tools=allowed_tools, timeout=timeout, concurrency=concurrency,
        max_retries=max_retries, max_retry_after=max_retry_after, max_rows=max_rows,
        max_tokens=max_tokens, cache=cache, progress=progress,
    )  # fmt: skip
    _attach_view(run, mode)
    return await run.execute()


extract.__dict__["last_result"] = None
