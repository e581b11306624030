"""From the arguments of ``extract`` to a ready :class:`Run`: checks (nothing is sent when an
argument is unusable), the rows and their prompts, the gateways, and the ledger's answers."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ValidationError

from koine_sdk import (
    Endpoint,
    KoineClient,
    KoineConfig,
    KoineError,
    KoineRequest,
    SyncKoineClient,
    create_koine,
)
from koine_sdk.ledger import LedgerRecord, LedgerSpec, LedgerWarning, open_ledger, process_ledger

from ._clients import ClientLike, make_client, wire_schema
from ._columns import flatten, schema_columns
from ._lazy import is_dask
from ._replica import Replica
from ._run import Limits, Request, Run
from ._state import FROM_LEDGER, FROM_NOT_SENT, Rows, Unit

if TYPE_CHECKING:
    from koine_jupyter.views.progress import ProgressMode

__all__ = ["ENDPOINT", "Call", "invalid", "prepare", "progress_mode", "render"]

ENDPOINT = Endpoint.GENERATE_OBJECT


def invalid(message: str) -> KoineError:
    return KoineError(message, "INVALID_ARGUMENT")


@dataclass(frozen=True, slots=True)
class Call:
    """The arguments of one extract call, checked (kept for ``retry_failed``)."""

    texts: Any
    schema: type[BaseModel]
    prompt: str
    options: dict[str, Any]


def check_count(name: str, value: Any, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid(f"{name} must be a whole number >= {minimum} (got {value!r})")


def check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value >= 0):
        raise invalid(f"{name} must be a number of seconds >= 0 (got {value!r})")
    return float(value)


def check_timeout(value: Any) -> float | None:
    """``None`` (the client's) or a positive, finite number of seconds."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise invalid(f"timeout must be a positive number of seconds or None (got {value!r})")
    return float(value)


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"{name} must be True or False (got {value!r})")
    return value


def progress_mode(progress: Any) -> ProgressMode:
    if progress is True:
        return "auto"
    if progress is False or progress is None:
        return "none"
    if progress in ("auto", "widget", "markdown", "text", "none"):
        return progress
    raise invalid(
        f"progress must be True, False, 'widget', 'markdown' or 'text' (got {progress!r})"
    )


def texts_of(texts: Any) -> tuple[list[str | None], Any]:
    """The texts as a list (``None`` for a missing value) and the index of the result."""
    if isinstance(texts, str | bytes):
        raise invalid("texts must be a list of strings or a pandas Series, not one string")
    if is_dask(texts):
        raise invalid(
            "a Dask DataFrame or Series is extracted by extract() only (it returns a lazy "
            "frame); take a sample to pandas for this, e.g. ddf['text'].head(1000)"
        )
    import pandas as pd

    if isinstance(texts, pd.DataFrame):
        if len(texts.columns) != 1:
            raise invalid(
                "texts must be one column (a Series, e.g. df['text']), not a DataFrame of "
                f"{len(texts.columns)} columns"
            )
        texts = cast(Any, texts).iloc[:, 0]
    if isinstance(texts, pd.Series):
        raw: list[Any] = texts.tolist()
        index: Any = texts.index
    elif isinstance(texts, list | tuple):
        raw = list(cast(Sequence[Any], texts))
        index = pd.RangeIndex(len(raw))
    else:
        raise invalid(
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


def render(prompt: str, text: str) -> str:
    if "{text}" in prompt:
        return prompt.replace("{text}", text)
    return f"{prompt}\n\n{text}" if prompt else text


def clients_of(client: Any) -> tuple[list[ClientLike], list[KoineClient]]:
    """The gateways' clients, and those this call made (and must close)."""
    if client is None:
        made = create_koine()
        return [made], [made]
    items: list[Any] = (
        list(cast(Sequence[Any], client)) if isinstance(client, list | tuple) else [client]
    )
    if not items:
        raise invalid("client=[] names no gateway")
    out: list[ClientLike] = []
    own: list[KoineClient] = []
    for item in items:
        if isinstance(item, KoineClient | SyncKoineClient):
            out.append(item)
        elif isinstance(item, KoineConfig):
            made = make_client(item)
            out.append(made)
            own.append(made)
        else:
            raise invalid(
                "client must be a KoineClient, a SyncKoineClient, a KoineConfig or a list of "
                f"them (got {type(item).__name__})"
            )
    return out, own


def _from_ledger(schema: type[BaseModel], record: LedgerRecord) -> BaseModel | None:
    """The answer of a ledger record, validated again from what the gateway sent (``raw_text``,
    the model's JSON as it was paid for), so every schema — aliases, excluded or computed
    fields, validators that transform — resumes at no cost with the values of the first run.
    ``answer`` (the validated object as JSON) is the fallback for records without it."""
    for text in (record.raw_text, record.answer):
        if text is None:
            continue
        try:
            return schema.model_validate_json(text)
        except ValidationError:
            continue  # recorded under an older version of the model: try the next, else ask
    return None


def prepare(
    call: Call,
    *,
    ledger: LedgerSpec,
    only: Callable[[int], bool] | None = None,
    carried: Callable[[int], str | None] | None = None,
    sample: int = 0,
    stop_after_sample: bool = False,
    tags: Mapping[str, Any] | None = None,
) -> Run:
    """Check ``call`` and build its :class:`Run` (nothing is sent yet).

    ``only(pos)``: send only these rows (others are answered from the ledger, else keep the
    error ``carried(pos)``). ``tags`` join the run's parameters in the ledger."""
    o = call.options
    schema, prompt = call.schema, call.prompt
    columns, _ = schema_columns(schema)
    if not isinstance(prompt, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise invalid(f"prompt must be a string (got {type(prompt).__name__})")
    for name in ("concurrency",):
        check_count(name, o["concurrency"], 1)
    for name in ("max_retries", "max_rows", "max_tokens", "repairs"):
        check_count(name, o[name], 0)
    check_timeout(o["timeout"])
    check_flag("cache", o["cache"])
    max_retry_after = check_seconds("max_retry_after", o["max_retry_after"])
    max_outage = check_seconds("max_outage", o["max_outage"])
    texts, index = texts_of(call.texts)
    book = open_ledger(ledger)
    clients, own = clients_of(o["client"])
    # One request made once: its checks, the default-model rule and the ledger key are the
    # SDK's (KoineRequest), the same that builds the bodies the clients send.
    request = KoineRequest.build(
        ENDPOINT,
        prompt="",
        system=o["system"],
        allowed_tools=o["allowed_tools"],
        model=o["model"],
        default_model=clients[0].config.model,
        schema=wire_schema(schema),
        check_size=False,
    )
    model, tools = request.model, request.allowed_tools
    shape = request.shape()
    rows = Rows(len(texts), index, columns)
    wanted: dict[int, str] = {}
    prompts: dict[int, str] = {}
    for pos, text in enumerate(texts):
        if text is None:
            rows.finish(
                pos,
                error="INVALID_ARGUMENT: this row has no text (missing)",
                answer_from=FROM_NOT_SENT,
            )
        elif not text.strip():
            rows.finish(
                pos, error="INVALID_ARGUMENT: this row's text is empty", answer_from=FROM_NOT_SENT
            )
        else:
            prompts[pos] = rendered = render(prompt, text)
            wanted[pos] = shape.key(rendered)
    hits = {}
    if o["cache"]:
        try:
            hits = book.lookup(wanted.values())
        except KoineError as exc:
            warnings.warn(f"{exc.message}; no earlier answers used", LedgerWarning, stacklevel=3)
            book = process_ledger()
    units: dict[str, Unit] = {}
    ledger_usage: list[tuple[int, int]] = []
    for pos, key in wanted.items():
        hit = hits.get(key)
        obj = _from_ledger(schema, hit) if hit is not None and hit.ok else None
        if hit is not None and obj is not None:
            rows.finish(
                pos,
                values=flatten(obj, columns),
                tokens=(0, 0),
                attempts=hit.attempts,
                answer_from=FROM_LEDGER,
            )
            ledger_usage.append((hit.input_tokens, hit.output_tokens))
            continue
        if only is not None and not only(pos):
            rows.finish(
                pos,
                error=(carried(pos) if carried else None) or "NOT_SENT: not retried",
                answer_from=FROM_NOT_SENT,
            )
            continue
        unit = units.get(key)
        if unit is None:
            units[key] = Unit(prompts[pos], key, [pos])
        else:
            unit.positions.append(pos)
    params = {
        "prompt": prompt,
        "schema": schema.__name__,
        "schema_hash": shape.schema_hash,
        "model": model,
        "system_hash": shape.system_hash,
        "allowed_tools": list(tools) if tools is not None else None,
        "endpoint": ENDPOINT.path,
        **(tags or {}),
    }
    dask_tags: Any = (tags or {}).get("dask")
    group: Any = (
        cast(dict[str, Any], dask_tags).get("group") if isinstance(dask_tags, dict) else None
    )
    group = group if isinstance(group, str) else None
    try:
        run_id: str | None = book.start_run("extract", rows=len(texts), params=params, group=group)
    except KoineError as exc:
        warnings.warn(f"{exc.message}; this run is kept in this process only", LedgerWarning, 3)
        book = process_ledger()
        run_id = book.start_run("extract", rows=len(texts), params=params, group=group)
    return Run(
        rows=rows,
        units=list(units.values()),
        request=Request(
            schema,
            o["system"],
            o["model"],
            tools,
            o["timeout"],
            o["repairs"],
            # cache=False is the caller's explicit choice: no answer from any ledger, the
            # client's included
            None if o["cache"] else "off",
        ),
        shape=shape,
        replicas=[Replica(c, i, max_outage) for i, c in enumerate(clients)],
        own_clients=own,
        concurrency=o["concurrency"],
        limits=Limits(o["max_retries"], max_retry_after, o["max_rows"], o["max_tokens"]),
        ledger=book,
        run_id=run_id,
        sample=sample,
        stop_after_sample=stop_after_sample,
        ledger_usage=ledger_usage,
    )
