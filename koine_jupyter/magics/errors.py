"""How a failed cell reads: a few lines (the error code, the message, what to do), never a page
of traceback; ``%tb`` still shows the full traceback once the cell is over.

:data:`HINTS` is the one table of what to do, per error code, in notebook terms (``%koine
connect``, ``--timeout``, ``%config KoineMagics...``). A code it does not list falls back to
the SDK's own advice (:attr:`koine_sdk.KoineError.hint`), so codes a newer SDK adds get advice
without a change here.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn, cast

from koine_sdk import KoineError

__all__ = ["HINTS", "ErrorContext", "ErrorRenderer", "hint_for"]

_RED = "\x1b[31m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"

_CLI_FAILED = (
    "The Claude CLI behind the gateway failed: try again; if it persists, check the gateway's logs."
)
_KEY = (
    "Set the environment variable {key_env} to the gateway's key (its "
    "CLAUDE_CODE_GATEWAY_API_KEY), or point to another variable with "
    "%koine connect URL --key-env VAR."
)
_UNREACHABLE = (
    "No Koine gateway answers at {base_url}. Start it, or connect elsewhere: %koine connect URL "
    "(or set KOINE_BASE_URL); %koine connect --local starts an offline test gateway."
)

HINTS: Final[dict[str, str]] = {
    # code (or "code/resumed": when the cell continued a --session): what to do. Fields:
    # {key_env}, {base_url}, {wait}, {session}.
    "AUTH_MISSING": _KEY,
    "AUTH_INVALID": _KEY,
    "CONCURRENCY_LIMIT_ERROR": (
        "The gateway is busy (too many requests at once): run the cell again in {wait}, or let "
        "the client retry: %config KoineMagics.max_retries = 3."
    ),
    "NETWORK_ERROR": _UNREACHABLE,
    "NOT_FOUND": _UNREACHABLE,
    "NO_TOOLS_AVAILABLE": (
        "The gateway allows none of the tools in --tools (its KOINE_ALLOWED_TOOLS / "
        "KOINE_DISALLOWED_TOOLS decide): name tools it allows, or drop --tools."
    ),
    "REQUEST_TIMEOUT": (
        "No answer in time: raise --timeout or %config KoineMagics.timeout = SECONDS."
    ),
    "TIMEOUT_ERROR": "The Claude CLI behind the gateway timed out: shorten the task or try again.",
    "CLI_EXIT_ERROR": _CLI_FAILED,
    "CLI_EXIT_ERROR/resumed": (
        "The CLI failed; if the gateway no longer knows session {session}, start it over "
        "with --new."
    ),
    "SPAWN_ERROR": _CLI_FAILED,
    "INTERNAL_ERROR": _CLI_FAILED,
    "UNKNOWN_ERROR": _CLI_FAILED,
    "REPLAY_MISS": (
        "Strict replay answers from the ledger only and this request was never recorded: "
        "%koine replay on asks the gateway for what is missing (and records it)."
    ),
    "INVALID_CONFIG": (
        "Check the connection: %koine status shows it; %koine connect URL [--key-env VAR] sets "
        "it (the key always comes from an environment variable, never from the URL)."
    ),
}


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """What the advice may mention: where the key comes from, the gateway's URL (safe to
    show), the ``--session`` a cell continued (``None``: a fresh request) and the schema."""

    key_env: str = "KOINE_AUTH_KEY"
    base_url: str = "(no URL set)"
    resumed: str | None = None
    schema: str | None = None


def hint_for(exc: KoineError, ctx: ErrorContext) -> str | None:
    """What to do about ``exc``, from :data:`HINTS`, else the SDK's hint."""
    template = HINTS.get(f"{exc.code}/resumed") if ctx.resumed is not None else None
    template = template or HINTS.get(exc.code)
    if template is None:
        return exc.hint
    wait = f"{exc.retry_after:g} s" if exc.retry_after is not None else "a few seconds"
    return template.format(
        key_env=ctx.key_env, base_url=ctx.base_url, wait=wait, session=repr(ctx.resumed)
    )


def _error_lines(exc: KoineError, ctx: ErrorContext) -> list[str]:
    where = f" (HTTP {exc.status})" if exc.status is not None else ""
    lines = [f"{_RED}{_BOLD}KoineError [{exc.code}]{_RESET}{where}: {exc.message}"]
    todo = hint_for(exc, ctx)
    if todo:
        lines.append(f"What to do: {todo}")
    if exc.code == "VALIDATION_ERROR" and exc.raw_text:
        raw = exc.raw_text
        if len(raw) > 4000:
            raw = raw[:4000] + f"… ({len(exc.raw_text):,} characters in all)"
        what = f" for {ctx.schema}" if ctx.schema else ""
        lines.append(f"The JSON received{what}:")
        lines.append(raw)
    lines.append(f"{_DIM}(%tb shows the full traceback){_RESET}")
    return lines


def _get_shell() -> Any:
    from IPython.core.getipython import get_ipython

    return get_ipython()


class _ShortTraceback:
    """Installed as an exception's ``_render_traceback_`` (IPython's hook for exceptions that
    draw themselves): a few readable lines while the cell fails, then — once the cell is over —
    the full traceback, so ``%tb`` still shows where it came from."""

    def __init__(self, exc: BaseException, lines: list[str]) -> None:
        self.exc = exc
        self.lines = lines
        self.short = True

    def __call__(self) -> list[str]:
        if self.short:
            return self.lines
        shell = _get_shell()
        if shell is not None:
            try:
                return cast(
                    list[str],
                    shell.InteractiveTB.structured_traceback(
                        type(self.exc), self.exc, self.exc.__traceback__
                    ),
                )
            except Exception:
                pass
        return traceback.format_exception(self.exc)


class ErrorRenderer:
    """The errors of one magic: each failing cell shows its short form; after the cell (the
    ``post_run_cell`` hook calls :meth:`after_cell`) the full one. ``secrets`` returns what
    must never be shown (the key in use): it is masked in every line."""

    def __init__(self, secrets: Callable[[], Sequence[str]]) -> None:
        self._secrets = secrets
        self._pending: list[_ShortTraceback] = []

    def short(self, exc: BaseException, lines: list[str]) -> None:
        """Make ``exc`` draw as ``lines`` while this cell fails."""
        for secret in self._secrets():
            if secret:
                lines = [line.replace(secret, "***") for line in lines]
        renderer = _ShortTraceback(exc, lines)
        try:
            exc._render_traceback_ = renderer  # type: ignore[attr-defined]
        except AttributeError:  # pragma: no cover - exceptions with __slots__
            return
        self._pending.append(renderer)

    def fail(self, exc: KoineError, ctx: ErrorContext) -> NoReturn:
        """Raise ``exc``, drawn short with the advice for ``ctx``."""
        self.short(exc, _error_lines(exc, ctx))
        raise exc

    def interrupted(self, exc: KeyboardInterrupt, what: str) -> NoReturn:
        """Re-raise Ctrl-C as one line saying ``what`` happened."""
        self.short(exc, [f"{_RED}{_BOLD}KeyboardInterrupt{_RESET}: {what}"])
        raise exc

    def after_cell(self) -> None:
        """The cell is over: its errors draw in full from now on (for ``%tb``)."""
        for renderer in self._pending:
            renderer.short = False
        self._pending.clear()
