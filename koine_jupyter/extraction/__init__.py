"""Bulk schema extraction: many texts → one pandas DataFrame, never paying twice.

``extract(texts, schema=Model, prompt=...)`` sends one ``generate_object`` request per row and
returns a DataFrame aligned to the input: one column per schema field (nested models flattened
to dotted names such as ``address.city``; dtypes from the schema only), then ``error``
(``"CODE: message"``), ``input_tokens`` / ``output_tokens`` (what this call paid for the row),
``attempts`` and ``answer_from`` (``request``, ``duplicate`` or ``ledger``). ``aextract`` is the
same for async code. pandas is imported only when called (it is an optional extra).

Every finished request is committed to the ledger (:mod:`koine_sdk.ledger`) at once, so a
re-run of the same call (after an error, an interrupt, a kernel restart or ``kill -9``) takes
every answer already paid for from there and requests only the rest. ``retry_failed`` re-sends
only the rows of a result that failed; ``history`` reads the ledger's runs and requests;
``estimate`` measures a sample and projects the tokens of all rows. Details:
``docs/extraction.md``.

Given a Dask DataFrame or Series, ``extract`` returns a lazy Dask DataFrame with the same
columns and dtypes, one extraction run per partition on the workers, the gateways' limits shared
by every worker through a ``distributed.Semaphore`` per gateway (``docs/dask.md``); ``totals``
sums its runs from the ledgers and ``parquet_schema`` types its ``.to_parquet``.

Layout: ``_options`` (the options, declared once), ``_verbs`` (extract, classify, generate),
``_columns`` (schema → columns and dtypes), ``_prepare`` (arguments → a run), ``_run`` (the
scheduler: a :class:`~._run.Run` whose state is private, declared in ``_outcomes.RunFields``),
``_decide`` (what a finished request means: a pure function returning an outcome),
``_outcomes`` (the run applying an outcome in one place: rows, ledger, gateway window),
``_claiming`` (keys claimed in the ledger so runs at once never pay twice), ``_pending``
(back-offs and ``/health`` checks), ``_replica`` (one gateway's window and health), ``_state``
(the rows), ``_estimate``, ``_stats``, ``_clients`` (calls on the clients' loops); for Dask:
``_dask`` (the lazy frame and the partition job), ``_leases`` (the shared gateway slots),
``_totals``, ``_arrow`` (the Parquet schema), ``_lazy`` (recognising Dask input).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Unpack, cast, overload

from pydantic import BaseModel

from koine_sdk.ledger import LedgerSpec, open_ledger, process_ledger

from ._arrow import parquet_schema
from ._clients import runner_for
from ._estimate import BudgetExceededError, Estimate
from ._lazy import is_dask
from ._options import Clients, OnInterrupt, Options, VerbOptions, invalid
from ._prepare import Call, prepare
from ._run import CANCEL_GRACE, Run
from ._totals import totals
from ._verbs import Classify, Extract, Generate, Verb, labels_of, needs_text_slot

if TYPE_CHECKING:
    import enum

    import dask.dataframe as dd
    import pandas as pd

    from koine_jupyter.views.progress import ProgressMode

__all__ = [
    "DEFAULT_PROMPT",
    "BudgetExceededError",
    "Clients",
    "Estimate",
    "OnInterrupt",
    "VerbOptions",
    "aclassify",
    "aextract",
    "agenerate",
    "classify",
    "clear_cache",
    "estimate",
    "extract",
    "generate",
    "history",
    "last_result",
    "parquet_schema",
    "retry_failed",
    "totals",
]

DEFAULT_PROMPT = "Extract the requested fields from the following text."
"""The prompt used when none is given; the row's text is appended after a blank line."""

last_result: pd.DataFrame | None = None
"""The frame of the latest verb call (``extract``, ``classify``, ``generate`` or their async
twins) in this process, also when the call was interrupted or stopped by an error (such a cell
cannot hand back a value)."""

_NOT_RETRIED = ("INVALID_ARGUMENT", "BUDGET_EXCEEDED", "INTERRUPTED", "NOT_SENT")
_CALLS: collections.OrderedDict[str, Call] = collections.OrderedDict()
_CALLS_KEPT = 8


def _remember(run: Run, call: Call) -> None:
    global last_result
    if run.final is None:
        return
    last_result = run.final
    for verb in (extract, classify, generate):
        verb.__dict__["last_result"] = run.final
    if run.run_id is not None:
        _CALLS[run.run_id] = call
        while len(_CALLS) > _CALLS_KEPT:
            _CALLS.popitem(last=False)


def _attach_view(run: Run, mode: ProgressMode, verb: str) -> None:
    from koine_jupyter.views.progress import make_progress

    if mode != "none":
        run.show(make_progress(mode, run.snapshot, verb=verb, preview=run.preview), _announce)


def _announce(message: str) -> None:
    print(message, flush=True)


def _run_sync(run: Run, mode: ProgressMode, on_interrupt: str, call: Call) -> Any:
    runner = runner_for(run.clients())
    if _running_loop() is runner.loop():
        raise invalid(
            f"{call.verb.name}() was called on its own loop thread; use a{call.verb.name}() there"
        )
    _attach_view(run, mode, call.verb.name)
    try:
        return runner.run(run.execute())
    except KeyboardInterrupt:
        run.finished.wait(CANCEL_GRACE + 1.0)
        if on_interrupt == "raise" or run.final is None:
            raise
        return run.final
    finally:
        _remember(run, call)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _start(texts: Any, verb: Verb, prompt: str, options: VerbOptions) -> Any:
    """The one path of the three sync verbs: options checked, then Dask or a pandas run."""
    o = Options.of(verb.name, **options)
    verb.check(o)
    if is_dask(texts):
        from ._dask import verb_dask

        return verb_dask(texts, verb, prompt, o)
    call = Call(texts, verb, prompt, o)
    run = prepare(call, ledger=o.ledger, sample=o.sample)
    return _run_sync(run, o.mode, o.on_interrupt, call)


async def _astart(texts: Any, verb: Verb, prompt: str, options: VerbOptions) -> pd.DataFrame:
    if "on_interrupt" in options:
        raise invalid(f"a{verb.name}() takes no on_interrupt: cancelling it raises CancelledError")
    o = Options.of(f"a{verb.name}", **options)
    verb.check(o)
    call = Call(texts, verb, prompt, o)
    run = prepare(call, ledger=o.ledger, sample=o.sample)
    _attach_view(run, o.mode, verb.name)
    try:
        return await run.execute()
    finally:
        _remember(run, call)


def _classify_verb(labels: Any, prompt: Any, reason: Any) -> tuple[Classify, str]:
    if not isinstance(reason, bool):
        raise invalid(f"reason must be True or False (got {reason!r})")
    names = labels_of(labels)
    from ._verbs import default_classify_prompt

    text = default_classify_prompt(names) if prompt is None else needs_text_slot("classify", prompt)
    return Classify(names, reason), text


def _extract_verb(schema: Any, prompt: Any) -> Extract:
    if not isinstance(prompt, str):
        raise invalid(f"prompt must be a string (got {type(prompt).__name__})")
    return Extract(schema)


# fmt: off
@overload
def extract(
    texts: dd.DataFrame | dd.Series, schema: type[BaseModel], prompt: str = ...,
    **options: Unpack[VerbOptions],
) -> dd.DataFrame: ...
@overload
def extract(
    texts: Sequence[str | None] | pd.Series | pd.DataFrame, schema: type[BaseModel],
    prompt: str = ..., **options: Unpack[VerbOptions],
) -> pd.DataFrame: ...
# fmt: on


def extract(
    texts: Any,
    schema: type[BaseModel],
    prompt: str = DEFAULT_PROMPT,
    **options: Unpack[VerbOptions],
) -> pd.DataFrame | dd.DataFrame:
    """Extract ``schema`` from every text; one row of the result per text.

    The keyword options (:class:`VerbOptions`) are the same for :func:`classify` and
    :func:`generate`; each is checked before anything is sent.

    Args:
        texts: a list of strings, or a pandas Series (e.g. ``df["text"]``, whose index the
            result keeps; a DataFrame of one column is that column). A missing, empty or
            whitespace-only text gives that row an ``INVALID_ARGUMENT`` error without a
            request. A Dask Series or DataFrame (of one column) gives a lazy Dask DataFrame
            (see below).
        schema: a pydantic model class. Nested models become dotted columns
            (``address.city``); lists stay Python lists.
        prompt: the instruction; the row's text replaces ``{text}`` if the prompt has it, else
            it is appended after a blank line.
        client: a ``KoineClient`` or ``SyncKoineClient``, a ``KoineConfig`` (this call makes
            the client and closes it), or a list of them (gateway replicas sharing the work).
            Default: a client from the environment (``KOINE_BASE_URL``, ``KOINE_AUTH_KEY``).
        system, model, allowed_tools, timeout: passed to every ``generate_object`` request.
        concurrency: requests at once per gateway (default and cap: its ``/health`` limit;
            2 when unknown).
        max_retries: 429 answers tolerated per row before it fails.
        max_retry_after: cap, in seconds, on a 429's ``Retry-After`` pause.
        max_outage: seconds a gateway that answered before may stay unreachable (a restart)
            before it is taken out; its rows wait meanwhile (or move to another replica).
        max_rows: at most this many requests (ledger answers and duplicates are free).
        max_tokens: stop sending new requests once this call spent this many tokens; with
            ``sample``, stop before the rest when the projection is above it.
        sample: send this many rows first (spread over the input), print the projected tokens
            of all rows, then go on (or raise ``BUDGET_EXCEEDED`` above ``max_tokens``).
        repairs: on an object that fails the schema, ask this many times more in the same
            session with the validation errors (needs an SDK that supports it).
        ledger: where answers are recorded and looked up: ``None`` (default: ``KOINE_LEDGER``,
            else the user's cache folder), a file path, a ``koine_sdk.ledger.Ledger``, or
            ``False`` (this process's memory only).
        cache: use answers already in the ledger (``False``: always request, still record).
        progress: ``True`` (a widget in a notebook with a widget manager, a display handle in
            other kernels, a text line on stderr elsewhere; ``KOINE_DISPLAY`` applies),
            ``False``, or one of ``"widget"``, ``"markdown"``, ``"text"``.
        on_interrupt: on Ctrl-C / Kernel ▸ Interrupt, ``"return"`` the partial frame
            (unfinished rows get ``INTERRUPTED``) or ``"raise"`` ``KeyboardInterrupt`` after
            storing it in :data:`last_result`.

    Returns:
        A DataFrame with the schema's columns, ``error``, ``input_tokens``, ``output_tokens``,
        ``attempts`` and ``answer_from``; ``df.attrs["koine"]`` holds the run's statistics.

    Raises:
        KoineError: ``INVALID_ARGUMENT``/``INVALID_CONFIG`` for unusable arguments (nothing
            is sent); a fatal error of the gateway (``AUTH_INVALID``, ``AUTH_MISSING``,
            ``NOT_FOUND``, ``NO_TOOLS_AVAILABLE``) at once, sending nothing more;
            ``BUDGET_EXCEEDED`` when ``sample`` projects above ``max_tokens``. The frame so
            far is then in ``extract.last_result`` and every answer paid for is in the ledger.

    Works in scripts and inside a running event loop (a notebook cell): the requests run on a
    private event loop thread. In async code prefer ``await aextract(...)``.

    **Dask input** (the ``dask`` extra) returns a lazy Dask DataFrame with the columns and
    dtypes above, the input's index and partitions; each partition is extracted on a worker
    by clients made there from ``client=`` (``KoineConfig`` objects; none: each worker's
    environment), within each gateway's limit summed over all workers, recorded in
    ``ledger=`` as each worker resolves it (default: the worker's own). ``sample``,
    ``max_rows`` and ``max_tokens`` are not available; progress is Dask's. See
    ``docs/dask.md``, :func:`totals` and :func:`parquet_schema`.
    """
    return _start(texts, _extract_verb(schema, prompt), prompt, options)


async def aextract(
    texts: Any,
    schema: type[BaseModel],
    prompt: str = DEFAULT_PROMPT,
    **options: Unpack[VerbOptions],
) -> pd.DataFrame:
    """The async twin of :func:`extract` (same arguments, without ``on_interrupt``).

    Cancelling it cancels the requests in flight and re-raises ``CancelledError``; the partial
    frame (unfinished rows: ``INTERRUPTED``) is then in :data:`last_result`.
    """
    return await _astart(texts, _extract_verb(schema, prompt), prompt, options)


# fmt: off
@overload
def classify(
    texts: dd.DataFrame | dd.Series, labels: Sequence[str] | type[enum.Enum],
    prompt: str | None = ..., *, reason: bool = ..., **options: Unpack[VerbOptions],
) -> dd.DataFrame: ...
@overload
def classify(
    texts: Sequence[str | None] | pd.Series | pd.DataFrame,
    labels: Sequence[str] | type[enum.Enum], prompt: str | None = ..., *, reason: bool = ...,
    **options: Unpack[VerbOptions],
) -> pd.DataFrame: ...
# fmt: on


def classify(
    texts: Any,
    labels: Sequence[str] | type[enum.Enum],
    prompt: str | None = None,
    *,
    reason: bool = False,
    **options: Unpack[VerbOptions],
) -> pd.DataFrame | dd.DataFrame:
    """Label every text with one of ``labels``; one row of the result per text.

    ``labels`` is a list of distinct strings or an ``Enum`` class (its string values, else its
    names). The result has a ``label`` column of pandas ``Categorical`` dtype whose categories
    are exactly the labels (missing where the row failed), ``reason`` (a short ``string``, with
    ``reason=True``), then ``error``, ``input_tokens``, ``output_tokens``, ``attempts`` and
    ``answer_from`` as :func:`extract` has them. ``prompt`` must hold ``{text}`` (default: an
    instruction listing the labels). Every option of :func:`extract` applies (the ledger,
    resume, replicas, budgets, ``sample``, Dask input, progress); one ``/generate-object``
    request per distinct text, whose schema allows only the labels.

    Raises:
        KoineError: ``INVALID_ARGUMENT`` before anything is sent for an empty label list,
            repeated labels, labels that are not strings or an Enum, a prompt without
            ``{text}``, or any bad option; otherwise as :func:`extract`.
    """
    verb, text = _classify_verb(labels, prompt, reason)
    return _start(texts, verb, text, options)


async def aclassify(
    texts: Any,
    labels: Sequence[str] | type[enum.Enum],
    prompt: str | None = None,
    *,
    reason: bool = False,
    **options: Unpack[VerbOptions],
) -> pd.DataFrame:
    """The async twin of :func:`classify` (same arguments, without ``on_interrupt``)."""
    verb, text = _classify_verb(labels, prompt, reason)
    return await _astart(texts, verb, text, options)


# fmt: off
@overload
def generate(
    texts: dd.DataFrame | dd.Series, prompt: str, **options: Unpack[VerbOptions],
) -> dd.DataFrame: ...
@overload
def generate(
    texts: Sequence[str | None] | pd.Series | pd.DataFrame, prompt: str,
    **options: Unpack[VerbOptions],
) -> pd.DataFrame: ...
# fmt: on


def generate(
    texts: Any, prompt: str, **options: Unpack[VerbOptions]
) -> pd.DataFrame | dd.DataFrame:
    """Free text for every text: one ``/generate-text`` request per distinct prompt.

    ``prompt`` must hold ``{text}`` (where each row's text goes). The result has a ``text``
    column (``string`` dtype; missing where the row failed), then ``error``, ``input_tokens``,
    ``output_tokens``, ``attempts`` and ``answer_from``. Every option of :func:`extract` applies
    (``system=``, ``model=``, the ledger, resume, replicas, budgets, Dask input) except
    ``repairs`` (there is no schema to repair against).
    """
    return _start(texts, Generate(), needs_text_slot("generate", prompt), options)


async def agenerate(texts: Any, prompt: str, **options: Unpack[VerbOptions]) -> pd.DataFrame:
    """The async twin of :func:`generate` (same arguments, without ``on_interrupt``)."""
    return await _astart(texts, Generate(), needs_text_slot("agenerate", prompt), options)


def estimate(
    texts: Any,
    schema: type[BaseModel],
    prompt: str = DEFAULT_PROMPT,
    **options: Unpack[VerbOptions],
) -> Estimate:
    """Send ``sample`` rows (spread over the input) and project the tokens of all rows.

    Takes the arguments of :func:`extract`. The sampled answers go to the ledger, so the
    extract that follows does not pay for them again; rows already answered in the ledger are
    not counted as still to send (and, when nothing new needs sending, their recorded usage
    is the measure). ``sample`` defaults to 10 and ``progress`` to ``False`` here.
    ``print(estimate(...))`` reads well; the numbers are attributes."""
    given: VerbOptions = {"sample": 10, "progress": False, **options}
    o = Options.of("estimate", **given)
    if o.sample < 1:
        raise invalid("sample must be at least 1 for an estimate")
    # the sample is what is asked for: no budget applies to it
    o = replace(o, max_rows=None, max_tokens=None)
    call = Call(texts, _extract_verb(schema, prompt), prompt, o)
    run = prepare(call, ledger=o.ledger, sample=o.sample, stop_after_sample=True)
    _run_sync(run, o.mode, "raise", call)
    return run.finish_estimate()


def retry_failed(
    result: pd.DataFrame | None = None,
    *,
    progress: bool | ProgressMode = True,
    on_interrupt: OnInterrupt = "return",
) -> pd.DataFrame:
    """Re-send only the rows of ``result`` (default: :data:`last_result`) that failed, with
    the arguments of the call that made it; return the whole frame, those rows replaced.

    Rows that never got a request (``BUDGET_EXCEEDED``, ``INTERRUPTED``, ``NOT_SENT``,
    ``INVALID_ARGUMENT``) keep their error: re-run the call itself to send them. Rows that
    succeeded come from the ledger (``answer_from == "ledger"``). Works for the last
    calls of this process (their arguments are kept in memory, not in the ledger)."""
    frame = result if result is not None else last_result
    if frame is None:
        raise invalid(
            "retry_failed() needs the frame of an extract, classify or generate call (none ran yet)"
        )
    if is_dask(frame) or "group" in frame.attrs.get("koine", {}):
        raise invalid(
            "this is the result of extract on Dask input: compute that extraction again (rows "
            "answered before come from the ledger, failed ones are sent again)"
        )
    run_id = frame.attrs.get("koine", {}).get("run_id")
    known = _CALLS.get(run_id) if isinstance(run_id, str) else None
    if known is None:
        raise invalid(
            "retry_failed() does not know the call that made this frame (only the last "
            f"{_CALLS_KEPT} calls of this process are kept); run extract(...) again instead"
        )
    call = known
    errors: list[Any] = cast(Any, frame)["error"].tolist()

    def failed(pos: int) -> bool:
        error = errors[pos]
        return isinstance(error, str) and error.split(":", 1)[0] not in _NOT_RETRIED

    def carried(pos: int) -> str | None:
        error = errors[pos]
        return error if isinstance(error, str) else None

    o = Options.of("retry_failed", progress=progress, on_interrupt=on_interrupt)
    options = replace(call.options, cache=True, progress=o.progress, on_interrupt=o.on_interrupt)
    call = Call(call.texts, call.verb, call.prompt, options)
    run = prepare(call, ledger=options.ledger, only=failed, carried=carried)
    return _run_sync(run, options.mode, options.on_interrupt, call)


def history(
    run_id: str | None = None,
    *,
    ledger: LedgerSpec = None,
    status: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The ledger as a DataFrame: its runs (newest first), or with ``run_id`` (``"last"`` for
    the latest run) the requests of that run (prompt, answer, status, error, tokens,
    attempts, timings; ``status="failed"`` for the failures only)."""
    book = open_ledger(ledger, fallback=False)
    if run_id is None:
        return book.runs(limit=limit)
    if run_id == "last":
        runs = book.runs(limit=1)
        if runs.empty:
            return book.rows(run_id="", status=status, limit=limit)
        run_id = str(runs.index[0])
    return book.rows(run_id, status=status, limit=limit)


def clear_cache() -> None:
    """Forget the answers kept in this process's memory (``ledger=False`` calls). The ledger
    file is left alone: ``koine_sdk.ledger.open_ledger().clear()`` empties it."""
    process_ledger().clear()


for _verb in (extract, classify, generate):
    _verb.__dict__["last_result"] = None
