"""The text view: an answer drawn as Markdown while it is written, and :class:`KoineAnswer`,
the finished answer as a displayable value."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from ._live import LiveView, session_of, usage_of
from ._markdown import BlockSplitter, sanitize_html, to_html
from ._surfaces import Frame

if TYPE_CHECKING:
    from koine_sdk import KoineUsage, SyncStreamTextResult

__all__ = ["FORMATS", "AnswerFormat", "KoineAnswer", "TextView", "provenance"]

AnswerFormat = Literal["markdown", "text", "code", "json", "html"]
FORMATS: Final[tuple[str, ...]] = get_args(AnswerFormat)

_WHOLE_FENCE = re.compile(r"\A\s*(`{3,}|~{3,})([^\n`]*)\n(.*?)\n\1\s*\Z", re.DOTALL)


def _strip_fence(text: str) -> tuple[str, str]:
    """(body, language) of a text that is one fenced block; else (text, "")."""
    m = _WHOLE_FENCE.match(text)
    if m is None:
        return text, ""
    return m.group(3), m.group(2).strip()


def _fenced(body: str, lang: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{body}\n{fence}"


def provenance(
    *,
    source: str,
    model: str | None,
    session: str | None,
    usage: KoineUsage | None,
    ledger_key: str | None,
) -> dict[str, Any]:
    """Where an answer came from, as JSON for an output's metadata (under ``"koine"``):
    ``source`` (``live``, or ``replay``: from the ledger, nothing sent), the model asked for,
    the ``--session`` name, the tokens (for a replayed answer: what it cost when recorded) and
    the answer's ledger key (when it was recorded or replayed: a hash of the request, the same
    on every run). No timings and no gateway ids, so a re-run saves the same metadata."""
    tokens = (
        None
        if usage is None
        else {
            "input": usage.input_tokens,
            "output": usage.output_tokens,
            "total": usage.total_tokens,
        }
    )
    info: dict[str, Any] = {
        "source": source,
        "model": model,
        "session": session,
        "tokens": tokens,
    }
    if ledger_key is not None:
        info["ledger_key"] = ledger_key
    return info


_PLAIN_LIMIT = 2000  # characters of an answer in its text/plain form
MAX_BLOCK: Final = 1024  # characters: a code block growing past this goes out in pieces


@dataclass(eq=False)
class KoineAnswer:
    """A text answer: finished, or what arrived before an interrupt or a failure.

    ``str(answer)`` is the text; in a notebook it renders per ``format``; ``{answer}`` in a later
    prompt inserts its text. Its representations depend on the text only (no timings, no ids),
    so a re-executed notebook compares equal; where it came from (:meth:`provenance`) travels
    in the output's metadata.

    Attributes:
        text: the answer (or the part that arrived).
        usage: token usage (``None`` when the stream did not finish).
        session_id: the gateway's resumable session id (``None`` when unknown).
        model: the model that was asked for (``None``: the gateway's default).
        session: the name of the ``--session`` this answer continued, if any.
        format: how it renders: ``markdown``, ``text``, ``code``, ``json`` or ``html``.
        interrupted: the stream was stopped (Ctrl-C) before it ended.
        error: the error that ended the stream early (a ``KoineError``), else ``None``.
        references: the ``{references}`` that were filled into the prompt.
        source: ``"live"`` (the gateway answered) or ``"replay"`` (the ledger did: nothing
            was sent; ``usage`` is what it cost when it was recorded).
        ledger_key: the answer's key in the ledger, when it was recorded or replayed.
    """

    text: str
    usage: KoineUsage | None = None
    session_id: str | None = None
    model: str | None = None
    session: str | None = None
    format: AnswerFormat = "markdown"
    interrupted: bool = False
    error: BaseException | None = None
    references: tuple[str, ...] = ()
    source: str = "live"
    ledger_key: str | None = None

    @property
    def complete(self) -> bool:
        """The stream ended normally: neither interrupted nor failed."""
        return not self.interrupted and self.error is None

    def provenance(self) -> dict[str, Any]:
        """Where the answer came from, as JSON (it goes into the output's metadata; see
        :func:`provenance`), with the filled references and ``complete: false`` when cut."""
        info = provenance(
            source=self.source,
            model=self.model,
            session=self.session,
            usage=self.usage,
            ledger_key=self.ledger_key,
        )
        if self.references:
            info["references"] = list(self.references)
        if not self.complete:
            info["complete"] = False
        return info

    def __str__(self) -> str:
        return self.text

    def __koine_text__(self) -> str:
        return self.text

    def _error_code(self) -> str | None:
        if self.error is None:
            return None
        return str(getattr(self.error, "code", type(self.error).__name__))

    def __repr__(self) -> str:
        short = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        extra = ", interrupted=True" if self.interrupted else ""
        if self.error is not None:
            extra += f", failed={self._error_code()!r}"
        return f"KoineAnswer(text={short!r}, model={self.model!r}, format={self.format!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KoineAnswer):
            return (self.text, self.format, self.interrupted, self._error_code()) == (
                other.text,
                other.format,
                other.interrupted,
                other._error_code(),
            )
        return NotImplemented

    __hash__ = None  # pyright: ignore[reportAssignmentType]

    @property
    def code(self) -> str:
        """The text without a surrounding code fence (for ``format="code"`` answers)."""
        return _strip_fence(self.text)[0]

    def json(self) -> Any:
        """The text parsed as JSON (a Markdown code fence around it, such as one tagged json, is
        ignored)."""
        return json.loads(_strip_fence(self.text)[0])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        # The plain-text form is a fallback beside the rich one (the whole text again would
        # double what a long answer sends to the frontend): long answers are cut, like pandas.
        text = self.text
        if len(text) > _PLAIN_LIMIT:
            more = len(text) - _PLAIN_LIMIT
            text = f"{text[:_PLAIN_LIMIT]}\n… ({more:,} more characters: str(answer) has all)"
        p.text(text)

    def _data(self) -> dict[str, Any]:
        fmt = self.format
        if fmt == "text":
            return {}
        if fmt == "html":
            return {"text/html": sanitize_html(self.text)}
        if fmt == "json":
            try:
                value = self.json()
            except ValueError:
                value = None
            if isinstance(value, dict | list):
                return {"application/json": value}
            return {"text/html": to_html(_fenced(self.code, "json"))}
        if fmt == "code":
            body, lang = _strip_fence(self.text)
            return {"text/html": to_html(_fenced(body, lang))}
        return {"text/html": to_html(self.text)}

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # (data, metadata): the data depends on the text only; the provenance is metadata,
        # which nbval does not compare.
        return self._data(), {"koine": self.provenance()}


class TextView(LiveView):
    """Draws a text stream while it is written: Markdown rendered block by block, code
    highlighted, a status line at the end.

    Use it with any sync SDK text stream::

        with koine.stream_text(prompt="...") as stream:
            answer = TextView().consume(stream)

    or feed it yourself: ``view.start()``, ``view.append(delta)``..., ``view.done()``.
    """

    def __init__(
        self,
        *,
        format: AnswerFormat = "markdown",
        display: str | None = None,
        rate: float | None = None,
        label: str = "",
        status: bool = True,
        note: str = "",
    ) -> None:
        super().__init__(display=display, rate=rate, label=label, status=status, note=note)
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {format!r})")
        self.format: AnswerFormat = format
        self._splitter = BlockSplitter(max_block=MAX_BLOCK)
        self._done: list[str] = []  # finished blocks, ready to draw
        self._cut = 0  # plain formats: how much of the text went out as finished lines
        # Deltas not yet split into blocks: splitting waits for the next draw, so a token
        # costs a list append here, not a scan (thousands of tokens per draw on a fast stream).
        self._unsplit: list[str] = []
        self.usage: KoineUsage | None = None

    def _split(self) -> BlockSplitter:
        if self._unsplit:
            delta = "".join(self._unsplit)
            self._unsplit = []
            blocks = self._splitter.feed(delta)
            if self.format == "markdown":
                self._done.extend(block.markdown for block in blocks)
        return self._splitter

    @property
    def text(self) -> str:
        """Everything received so far."""
        return self._split().text

    def append(self, delta: str) -> None:
        """Add a piece of text (redrawn when the throttle allows)."""
        if not delta:
            return
        self._unsplit.append(delta)
        self.poke()

    def _frame(self, status: str) -> Frame:
        text = self._split().text
        if self.format == "markdown":
            return Frame(self._done, self._splitter.tail_markdown, status, "markdown", text)
        # Other formats are drawn as plain text: complete lines go out once, as they come.
        end = text.rfind("\n") + 1
        if end > self._cut:
            self._done.append(text[self._cut : end])
            self._cut = end
        return Frame(self._done, text[self._cut :], status, "text", text)

    def _progress(self) -> str:
        return f"{len(self._split().text):,} chars"

    def _has_content(self) -> bool:
        return bool(self._split().text)

    def _summary(self) -> str:
        if self.usage is None:
            return f"{len(self._split().text):,} chars"
        u = self.usage
        return f"{u.total_tokens:,} tokens ({u.input_tokens:,} in, {u.output_tokens:,} out)"

    def consume(
        self,
        stream: SyncStreamTextResult,
        *,
        model: str | None = None,
        session: str | None = None,
    ) -> KoineAnswer:
        """Draw ``stream`` until it ends and return the answer.

        On a ``KoineError`` or ``KeyboardInterrupt`` what arrived stays drawn (marked) and the
        exception propagates; the text so far is in :attr:`text`.
        """

        def finish() -> str | None:
            self.usage = usage_of(stream)
            return session_of(stream)

        session_id = self._drive(stream, self.append, finish)
        self.done()
        return KoineAnswer(
            self.text,
            usage=self.usage,
            session_id=session_id,
            model=model,
            session=session,
            format=self.format,
            source=getattr(stream, "source", "live"),
            ledger_key=getattr(stream, "ledger_key", None),
        )

    def answer(self, *, model: str | None = None, session: str | None = None) -> KoineAnswer:
        """What arrived so far as an answer: ``interrupted`` after Ctrl-C, with ``error`` set
        after a failure (never passing as complete unless the view finished)."""
        failed = self.state in ("failed", "live", "new")
        error = self.error if failed else None
        if failed and error is None:
            error = RuntimeError("the stream did not finish")
        return KoineAnswer(
            self.text,
            usage=self.usage,
            model=model,
            session=session,
            format=self.format,
            interrupted=self.state == "interrupted",
            error=error,
        )
