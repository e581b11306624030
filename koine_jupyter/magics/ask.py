"""Asking: a prompt (a cell's body or a one-line ``%koine``) becomes one request, drawn live,
and its answer becomes the cell's value.

The flow: :func:`prepare` turns options and prompt into a :class:`Request` (references filled,
schema resolved, session resumed); a *source* answers it — the connection's sync client
(:meth:`~.connection.Connection.source`), which answers from the ledger itself when replay is
on (``%koine replay``: its results and streams say ``source="replay"``); then :func:`deliver`
records the session, fills ``--out`` and decides what the cell shows. Every answer carries its
provenance (source, model, tokens, session, ledger key; a text answer also its filled
references) in its output's metadata, under ``"koine"``
(:func:`~koine_jupyter.views.text.provenance`).

After a failure ``--out VAR`` holds what arrived: a text cell's ``KoineAnswer`` with ``.error``
set (``.complete`` is false; ``.interrupted`` only after Ctrl-C), a ``--schema`` cell's ``None``
(the raw JSON of a ``VALIDATION_ERROR`` is in the error). After Ctrl-C a ``--schema`` cell's
``--out`` holds the partial object.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn, cast

from IPython.core.error import UsageError

from koine_sdk import KoineError

from .._interpolate import interpolate, lookup
from ..views import AnswerFormat, FrameView, KoineAnswer, ObjectView, TextView, to_dataframe
from ..views._live import session_of
from ..views.text import provenance
from .args import AskOptions
from .context import MagicsContext
from .failures import ErrorTexts

if TYPE_CHECKING:
    from koine_sdk import KoineUsage, SyncKoineClient


__all__ = ["Outcome", "Prepared", "Request", "ask", "deliver", "prepare"]


@dataclass(frozen=True, slots=True)
class Request:
    """What is sent: the same fields for every kind of call (``model`` is ``--model`` only;
    without it the client's default, ``KoineMagics.model``, applies)."""

    prompt: str
    system: str | None = None
    model: str | None = None
    allowed_tools: list[str] | None = None
    session_id: str | None = None
    timeout: float | None = None

    def kwargs(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "system": self.system,
            "model": self.model,
            "allowed_tools": self.allowed_tools,
            "session_id": self.session_id,
            "timeout": self.timeout,
        }


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request with what the rest of the flow needs to know about it."""

    request: Request
    options: AskOptions
    schema: Any  # the type for --schema, else None
    model: str | None  # the model asked for (--model, else KoineMagics.model), for display
    references: tuple[str, ...] = ()  # filled {references}
    kept: tuple[str, ...] = ()  # references left as written: not defined
    resumed: str | None = None  # the --session this request continues (None: a fresh one)

    @property
    def label(self) -> str:
        session = self.options.session
        return " · ".join(
            p for p in (self.model or "koine", f"session {session}" if session else "") if p
        )

    @property
    def note(self) -> str:
        """Which references were filled (and which were kept as written), for the status."""
        parts: list[str] = []
        if self.references:
            parts.append("filled " + ", ".join(f"{{{r}}}" for r in dict.fromkeys(self.references)))
        if self.kept:
            kept = ", ".join(f"{{{r}}}" for r in dict.fromkeys(self.kept))
            parts.append(f"kept {kept} (not defined)")
        return "; ".join(parts)


@dataclass(slots=True)
class Outcome:
    """What the source answered: the cell's result, and whether it was printed already."""

    result: Any
    session_id: str | None
    usage: KoineUsage | None
    printed: bool = False
    metadata: dict[str, Any] | None = None  # provenance to attach (a text answer has its own)


def resolve_schema(expr: str, namespace: dict[str, Any]) -> Any:
    """The type for ``--schema expr``: a class in the namespace, or ``list[Class]``."""
    m = re.fullmatch(r"\s*(?:list|List)\s*\[\s*(.+?)\s*\]\s*", expr)
    inner = m.group(1) if m else expr
    try:
        tp = lookup(inner, namespace)
    except LookupError as exc:
        raise UsageError(f"--schema: {exc}") from None
    if not isinstance(tp, type):
        raise UsageError(f"--schema: {inner} is not a class (a Pydantic model is expected)")
    return list[tp] if m else tp  # type: ignore[valid-type]


def _with_errors(ctx: MagicsContext, ns: dict[str, Any]) -> Mapping[str, Any]:
    """The namespace, plus ``Err`` (the failed cells' tracebacks: ``{Err}``, ``{Err[n]}``) when
    a cell has failed and the user has no ``Err`` of their own."""
    if "Err" in ns or ctx.failures.get() is None:
        return ns
    return ChainMap({"Err": ErrorTexts(ctx.failures, ctx.connection.secrets())}, ns)


def prepare(ctx: MagicsContext, opts: AskOptions, prompt: str) -> Prepared:
    """Check the options, fill the prompt's references, resolve the schema and the session."""
    opts.check()
    ns = ctx.user_ns
    references: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    system = opts.system
    if ctx.settings.interpolate and not opts.no_interpolate:
        ns_err = _with_errors(ctx, ns)
        filled = interpolate(prompt, ns_err)
        prompt, references, kept = filled.text, tuple(filled.resolved), tuple(filled.unresolved)
        if system:
            filled = interpolate(system, ns_err)
            system = filled.text
            references += tuple(filled.resolved)
            kept += tuple(filled.unresolved)
    if not prompt.strip():
        raise UsageError("the prompt is empty")
    schema = resolve_schema(opts.schema, ns) if opts.schema else None
    resume = ctx.sessions.resume_id(opts.session, new=opts.new)
    request = Request(prompt, system, opts.model, opts.tool_list, resume, opts.timeout)
    model = opts.model or ctx.settings.model or None
    resumed = opts.session if resume is not None else None
    return Prepared(request, opts, schema, model, references, kept, resumed)


def _keep(ctx: MagicsContext, opts: AskOptions, value: Any) -> None:
    if opts.out:
        ctx.user_ns[opts.out] = value


def _fail(ctx: MagicsContext, p: Prepared, exc: KoineError) -> NoReturn:
    ctx.fail(exc, resumed=p.resumed, schema=p.options.schema)


def _view_options(ctx: MagicsContext, p: Prepared) -> dict[str, Any]:
    settings = ctx.settings
    return {
        "display": p.options.display or settings.display,
        "rate": settings.update_rate,
        "label": p.label,
        "note": p.note,
    }


def _ask_text(ctx: MagicsContext, client: SyncKoineClient, p: Prepared) -> Outcome:
    opts = p.options
    fmt = cast(AnswerFormat, opts.format)
    meta: dict[str, Any] = {"model": p.model, "session": opts.session, "format": fmt}
    if opts.no_stream or opts.quiet:
        try:
            r = client.generate_text(**p.request.kwargs())
        except KoineError as exc:
            _keep(ctx, opts, KoineAnswer("", error=exc, references=p.references, **meta))
            _fail(ctx, p, exc)
        except KeyboardInterrupt as exc:
            _keep(ctx, opts, KoineAnswer("", interrupted=True, references=p.references, **meta))
            ctx.interrupted(
                exc,
                "the request was stopped before its answer arrived (--no-stream shows "
                "nothing until the answer is complete).",
            )
        answer = KoineAnswer(
            r.text,
            usage=r.usage,
            session_id=r.session_id,
            references=p.references,
            source=r.source,
            ledger_key=r.ledger_key,
            **meta,
        )
        return Outcome(answer, r.session_id, r.usage)
    view = TextView(format=fmt, **_view_options(ctx, p))
    with view:
        try:
            with client.stream_text(**p.request.kwargs()) as stream:
                answer = view.consume(stream, model=p.model, session=opts.session)
        except KeyboardInterrupt as exc:
            view.interrupted()
            partial = view.answer(model=p.model, session=opts.session)
            _keep(ctx, opts, replace(partial, references=p.references))
            ctx.interrupted(
                exc,
                f"the answer was interrupted after {len(view.text):,} characters; what "
                "arrived is shown above (and kept in --out VAR if given).",
            )
        except KoineError as exc:
            view.failed(exc)
            partial = view.answer(model=p.model, session=opts.session)
            _keep(ctx, opts, replace(partial, references=p.references))
            _fail(ctx, p, exc)
    answer = replace(answer, references=p.references)
    return Outcome(answer, answer.session_id, answer.usage, printed=view.mode == "text")


def _ask_object(ctx: MagicsContext, client: SyncKoineClient, p: Prepared) -> Outcome:
    opts = p.options
    if opts.no_stream or opts.quiet:
        try:
            r = client.generate_object(schema=p.schema, **p.request.kwargs())
        except KoineError as exc:
            _keep(ctx, opts, None)
            _fail(ctx, p, exc)
        except KeyboardInterrupt as exc:
            _keep(ctx, opts, None)
            ctx.interrupted(exc, "the request was stopped before its answer arrived.")
        result: Any = to_dataframe(r.object) if opts.df else r.object
        origin = _provenance(p, r.source, r.usage, r.ledger_key)
        return Outcome(result, r.session_id, r.usage, metadata=origin)
    options = _view_options(ctx, p)
    view: ObjectView[Any] | FrameView = (
        FrameView(**options) if opts.df else ObjectView[Any](**options)
    )
    with view:
        try:
            with client.stream_object(schema=p.schema, **p.request.kwargs()) as stream:
                result = view.consume(stream)
                session_id = session_of(stream)
                source, key = stream.source, stream.ledger_key
        except KeyboardInterrupt as exc:
            view.interrupted()
            _keep(ctx, opts, view.partial)
            ctx.interrupted(
                exc,
                "the answer was interrupted; what arrived is shown above (and kept in "
                "--out VAR if given).",
            )
        except KoineError as exc:
            view.failed(exc)
            _keep(ctx, opts, None)
            _fail(ctx, p, exc)
    origin = _provenance(p, source, view.usage, key)
    return Outcome(result, session_id, view.usage, printed=view.mode == "text", metadata=origin)


def _provenance(
    p: Prepared, source: str, usage: KoineUsage | None, key: str | None
) -> dict[str, Any]:
    info = provenance(
        source=source,
        model=p.model,
        session=p.options.session,
        usage=usage,
        ledger_key=key,
    )
    if p.references:
        info["references"] = list(p.references)
    return info


def deliver(ctx: MagicsContext, p: Prepared, outcome: Outcome) -> Any:
    """Record the session turn, fill ``--out``, and return what the cell shows."""
    opts = p.options
    if opts.session and outcome.session_id:
        ctx.sessions.record(opts.session, outcome.session_id, outcome.usage, p.model, new=opts.new)
    _keep(ctx, opts, outcome.result)
    if opts.quiet:
        return None
    return ctx.cell_value(outcome.result, outcome.metadata, printed=outcome.printed)


def ask(ctx: MagicsContext, opts: AskOptions, prompt: str) -> Any:
    """Send ``prompt`` with ``opts``; return the cell's value."""
    p = prepare(ctx, opts, prompt)
    try:
        source = ctx.connection.source()
    except KoineError as exc:
        ctx.fail(exc)
    outcome = (_ask_object if p.schema is not None else _ask_text)(ctx, source, p)
    return deliver(ctx, p, outcome)
