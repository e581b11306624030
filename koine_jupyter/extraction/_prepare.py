"""From the arguments of a verb call to a ready :class:`Run`: checks (nothing is sent when an
argument is unusable), the rows and their prompts, the gateways, and the ledger's answers."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from koine_sdk import (
    KoineClient,
    KoineConfig,
    KoineError,
    KoineRequest,
    SyncKoineClient,
    create_koine,
)
from koine_sdk.ledger import (
    LedgerSpec,
    LedgerWarning,
    RequestShape,
    open_ledger,
    process_ledger,
)

from ._clients import ClientLike, make_client
from ._lazy import is_dask
from ._options import Options, invalid, progress_mode
from ._replica import Replica
from ._run import Limits, Run
from ._state import FROM_LEDGER, FROM_NOT_SENT, Rows, Unit
from ._verbs import Verb

__all__ = ["Call", "invalid", "prepare", "progress_mode", "render"]


@dataclass(frozen=True, slots=True)
class Call:
    """The arguments of one verb call, checked (kept for ``retry_failed``)."""

    texts: Any
    verb: Verb
    prompt: str
    options: Options


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
    o, verb, prompt = call.options, call.verb, call.prompt
    if not isinstance(prompt, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise invalid(f"prompt must be a string (got {type(prompt).__name__})")
    verb.check(o)
    columns = verb.columns()
    texts, index = texts_of(call.texts)
    book = open_ledger(ledger)
    clients, own = clients_of(o.client)
    # One request per model the gateways ask for: its checks, the default-model rule and the
    # ledger key are the SDK's (KoineRequest), the same that builds the bodies the clients
    # send. Each replica's answers are keyed (and looked up) under its own model.
    by_model: dict[str | None, RequestShape] = {}
    replica_shapes: list[RequestShape] = []
    model: str | None = None
    tools: tuple[str, ...] | None = None
    for c in clients:
        request = KoineRequest.build(
            verb.endpoint,
            prompt="",
            system=o.system,
            allowed_tools=o.allowed_tools,
            model=o.model,
            default_model=c.config.model,
            schema=verb.wire_schema(),
            check_size=False,
        )
        if request.model not in by_model:
            by_model[request.model] = request.shape()
        if not replica_shapes:
            model, tools = request.model, request.allowed_tools
        replica_shapes.append(by_model[request.model])
    shape = replica_shapes[0]
    shapes = list(by_model.values())  # the first replica's first
    rows = Rows(len(texts), index, columns)
    wanted: dict[int, str] = {}  # the key under the first replica's model
    others: dict[int, list[str]] = {}  # the keys under the other models of the run
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
            if len(shapes) > 1:
                others[pos] = [other.key(rendered) for other in shapes[1:]]
    hits = {}
    if o.cache:
        every = [*wanted.values(), *(k for keys in others.values() for k in keys)]
        try:
            hits = book.lookup(every)
        except KoineError as exc:
            warnings.warn(
                f"{exc.message}; only answers kept in this process are used",
                LedgerWarning,
                stacklevel=3,
            )
            book = process_ledger()  # where a run whose ledger broke kept its answers
            hits = book.lookup(every)
    units: dict[str, Unit] = {}
    ledger_usage: list[tuple[int, int]] = []
    for pos, key in wanted.items():
        # an answer of any model this run asks (the first replica's first)
        hit = next(
            (hits[k] for k in (key, *others.get(pos, ())) if k in hits and hits[k].ok),
            hits.get(key),
        )
        values = verb.replay(hit) if hit is not None and hit.ok else None
        if hit is not None and values is not None:
            rows.finish(
                pos,
                values=values,
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
            units[key] = Unit(prompts[pos], key, [pos], others=tuple(others.get(pos, ())))
        else:
            unit.positions.append(pos)
    params = {
        "prompt": prompt,
        "verb": verb.name,
        "schema": verb.label,
        "schema_hash": shape.schema_hash,
        "model": model if len(shapes) == 1 else " | ".join(str(m) for m in by_model),
        "system_hash": shape.system_hash,
        "allowed_tools": list(tools) if tools is not None else None,
        "endpoint": verb.endpoint.path,
        **(tags or {}),
    }
    dask_tags: Any = (tags or {}).get("dask")
    group: Any = (
        cast(dict[str, Any], dask_tags).get("group") if isinstance(dask_tags, dict) else None
    )
    group = group if isinstance(group, str) else None
    try:
        run_id: str | None = book.start_run(verb.name, rows=len(texts), params=params, group=group)
    except KoineError as exc:
        warnings.warn(f"{exc.message}; this run is kept in this process only", LedgerWarning, 3)
        book = process_ledger()
        run_id = book.start_run(verb.name, rows=len(texts), params=params, group=group)
    return Run(
        rows=rows,
        units=list(units.values()),
        verb=verb,
        options=o,
        shape=shape,
        replicas=[
            Replica(c, i, o.max_outage, shape=replica_shapes[i]) for i, c in enumerate(clients)
        ],
        own_clients=own,
        concurrency=o.concurrency,
        limits=Limits(o.max_retries, o.max_retry_after, o.max_rows, o.max_tokens),
        ledger=book,
        run_id=run_id,
        sample=sample,
        stop_after_sample=stop_after_sample,
        ledger_usage=ledger_usage,
    )
