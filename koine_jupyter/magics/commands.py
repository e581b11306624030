"""The ``%koine`` subcommands: one handler each, registered in :data:`COMMANDS`.

A subcommand is a function ``(ctx, args) -> value`` and a frozen dataclass of its arguments
(fields made with :func:`~.args.flag`, :func:`~.args.option`, :func:`~.args.word`), registered
with :func:`command`::

    @dataclass(frozen=True, slots=True)
    class HistoryArgs:
        limit: int | None = option("How many entries.", metavar="N", type=int)

    @command("history", HistoryArgs, "the requests of this kernel")
    def _history(ctx: MagicsContext, args: HistoryArgs) -> Any:
        ...

Parsing, ``%koine?`` and the rule that tells a subcommand from a prompt follow from the
dataclass: ``%koine NAME ...`` runs the subcommand only if its words fit the dataclass (at most
one word per :func:`~.args.word` field); otherwise the whole line is a prompt.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from IPython.core.error import UsageError

from koine_sdk import KoineError

from ..views import choose_mode
from ..views._markdown import to_html
from .args import VARIABLE, AskOptions, flag, option, parse, timeout_option, word
from .ask import ask
from .context import MagicsContext
from .failures import masked
from .settings import ENV_AUTH_KEY, ENV_BASE_URL, USER_MODES

__all__ = ["COMMANDS", "Command", "HealthReport", "command"]

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Command(Generic[A]):
    """A registered subcommand: its name, the dataclass of its arguments, its handler."""

    name: str
    args: type[A]
    run: Callable[[MagicsContext, A], Any]
    help: str
    usage: str


COMMANDS: dict[str, Command[Any]] = {}
"""Every subcommand, by name (the order is the order of ``%koine --help``)."""


def command(
    name: str, args: type[A], help: str, usage: str = ""
) -> Callable[[Callable[[MagicsContext, A], Any]], Callable[[MagicsContext, A], Any]]:
    """Register the decorated function as ``%koine NAME`` with the arguments ``args``."""

    def register(run: Callable[[MagicsContext, A], Any]) -> Callable[[MagicsContext, A], Any]:
        if name in COMMANDS:
            raise ValueError(f"%koine {name} is registered twice")
        COMMANDS[name] = Command(name, args, run, help, usage or f"%koine {name}")
        return run

    return register


@dataclass(frozen=True, slots=True)
class NoArgs:
    """A subcommand without arguments."""


# -- connect / disconnect -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectArgs:
    url: str | None = word(
        "The gateway's URL (http:// or https://, no credentials).", metavar="URL"
    )
    key_env: str | None = option(
        "The environment variable holding the key (default KOINE_AUTH_KEY).", metavar="VAR"
    )
    local: bool = flag("Start a local test gateway (an echo model) in this kernel.")
    auto: bool = flag("Use $KOINE_BASE_URL if set, else start a local test gateway.")


def _connected_line(ctx: MagicsContext, url: str) -> str:
    conn = ctx.connection
    state = "set" if conn.has_key() else "NOT set"
    return f"Connected to {url} (key from ${conn.key_env()}, which is {state})."


def _start_local(ctx: MagicsContext) -> None:
    try:
        url = ctx.connection.start_local()
    except ImportError as exc:  # pragma: no cover - needs the testing extra
        raise UsageError(
            "the local gateway needs the testing extra: pip install 'koine-sdk[testing]'"
        ) from exc
    print(
        f"Started a local test gateway (echo model) at {url}; "
        f"${ENV_BASE_URL} and ${ENV_AUTH_KEY} point at it in this kernel."
    )


@command(
    "connect",
    ConnectArgs,
    "use a gateway: its URL (the key from $VAR), a local test gateway, or the environment",
    "%koine connect URL [--key-env VAR] | --local | --auto",
)
def _connect(ctx: MagicsContext, args: ConnectArgs) -> None:
    if (args.local or args.auto) and args.url is not None:
        raise UsageError("%koine connect --local / --auto takes no URL")
    if args.key_env is not None and not VARIABLE.fullmatch(args.key_env):
        raise UsageError("--key-env takes the NAME of an environment variable, not a key")
    if args.auto and ctx.connection.use_environment():
        print(_connected_line(ctx, f"${ENV_BASE_URL}"))
        return
    if args.local or args.auto:
        _start_local(ctx)
        return
    if args.url is None:
        raise UsageError("usage: %koine connect URL [--key-env VAR]  or  %koine connect --local")
    try:
        ctx.connection.connect(args.url, args.key_env)
    except KoineError as exc:
        ctx.fail(exc)
    print(_connected_line(ctx, ctx.connection.shown_base_url()))


@command("disconnect", NoArgs, "close the connection (and stop a local gateway)")
def _disconnect(ctx: MagicsContext, args: NoArgs) -> None:
    ctx.connection.close()
    print("Disconnected.")


# -- health / status / sessions -----------------------------------------------------------------


class HealthReport:
    """What ``%koine health`` shows."""

    def __init__(self, base_url: str, health: Any) -> None:
        self.base_url = base_url
        self.health = health

    def _rows(self) -> list[tuple[str, str]]:
        h = self.health
        rows = [("gateway", self.base_url), ("status", str(h.status))]
        if h.claude_cli is not None:
            rows.append(("Claude CLI", str(h.claude_cli)))
        if h.concurrency is not None:
            s, n = h.concurrency.streaming, h.concurrency.non_streaming
            rows.append(("streaming", f"{s.active} of {s.limit} in use"))
            rows.append(("non-streaming", f"{n.active} of {n.limit} in use"))
        return rows

    def __repr__(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self._rows())

    def _repr_html_(self) -> str:
        # Gateway fields are data from outside: escaped, then through the one renderer.
        def cell(text: str) -> str:
            return html.escape(text).replace("|", "&#124;").replace("\n", " ")

        lines = ["| | |", "|---|---|"]
        lines += [f"| {cell(k)} | {cell(v)} |" for k, v in self._rows()]
        return to_html("\n".join(lines))


@dataclass(frozen=True, slots=True)
class HealthArgs:
    timeout: float | None = timeout_option()


@command("health", HealthArgs, "the gateway's /health", "%koine health [--timeout SECONDS]")
def _health(ctx: MagicsContext, args: HealthArgs) -> HealthReport:
    try:
        client = ctx.connection.client()
        health = client.health(timeout=args.timeout)
    except KoineError as exc:
        ctx.fail(exc)
    return HealthReport(ctx.connection.shown_base_url(), health)


@command("status", NoArgs, "what is configured (never the key)")
def _status(ctx: MagicsContext, args: NoArgs) -> None:
    conn, settings = ctx.connection, ctx.settings
    url = conn.base_url()
    shown = conn.shown_base_url() if url else "(none: set KOINE_BASE_URL or %koine connect)"
    print(
        f"gateway: {shown}\nkey: {conn.key_state()}\n"
        f"model: {settings.model or 'gateway default'}\n"
        f"display: {settings.display} (now: {choose_mode(settings.display)})\n"
        f"replay: {conn.shown_replay()}\nsessions: {len(ctx.sessions)}"
    )


@dataclass(frozen=True, slots=True)
class SessionsArgs:
    name: str | None = word("One session (with --clear: the one to forget).", metavar="NAME")
    clear: bool = flag("Forget the session NAME (or all of them).")


@command(
    "sessions",
    SessionsArgs,
    "the named conversations of this kernel; --clear forgets one (or all)",
    "%koine sessions [NAME] [--clear]",
)
def _sessions(ctx: MagicsContext, args: SessionsArgs) -> Any:
    if args.clear:
        count = ctx.sessions.clear(args.name)
        print(f"Forgot {count} session{'s' if count != 1 else ''}.")
        return None
    if args.name is not None:
        return ctx.sessions.only(args.name)
    return ctx.sessions


# -- history ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryArgs:
    run: str | None = word("A run id from the list, or 'last': that run's requests.", metavar="RUN")
    failed: bool = flag("With RUN: only its failed requests.")
    limit: int | None = option("At most N entries.", metavar="N", type=int)


@command(
    "history",
    HistoryArgs,
    "the ledger: extract runs (newest first), or one run's requests",
    "%koine history [RUN|last] [--failed] [--limit N]",
)
def _history(ctx: MagicsContext, args: HistoryArgs) -> Any:
    from ..extraction import history

    if args.failed and args.run is None:
        raise UsageError("--failed needs a run: %koine history last --failed")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit takes a whole number >= 1")
    try:
        return history(args.run, status="failed" if args.failed else None, limit=args.limit)
    except KoineError as exc:
        ctx.fail(exc)


# -- replay -------------------------------------------------------------------------------------

_REPLAY_SAYS = {
    "off": "every cell asks the gateway; nothing is recorded.",
    "record": "every cell asks the gateway, and every complete answer is recorded.",
    "replay": "a cell recorded before is answered from the ledger (nothing is sent, nothing "
    "paid); any other asks the gateway and is recorded.",
    "strict": "every answer comes from the ledger; a cell never recorded fails (nothing is "
    "sent, no gateway needed).",
}


@dataclass(frozen=True, slots=True)
class ReplayArgs:
    mode: str | None = word(
        f"{', '.join(USER_MODES)} (none: show the mode; the SDK's aliases work too).",
        metavar="MODE",
    )
    ledger: str | None = option(
        "The ledger file to record to and replay from (default: $KOINE_LEDGER, else the user "
        "cache folder); keep it beside the notebook to share the recordings.",
        metavar="PATH",
    )


@command(
    "replay",
    ReplayArgs,
    "answers from the ledger: on (recorded cells replay, others are asked and recorded), off, "
    "record, strict (the ledger only)",
    "%koine replay [on|off|record|strict] [--ledger PATH]",
)
def _replay(ctx: MagicsContext, args: ReplayArgs) -> None:
    """Set the mode (and the ledger) of the magic, and ``$KOINE_REPLAY`` (and
    ``$KOINE_LEDGER``) in this kernel, as ``%config KoineMagics.replay`` does: SDK clients and
    ``extract`` calls made in later cells follow it too, as they follow ``%koine connect
    --local``. A mode that records or replays checks the ledger first; a refusal changes
    nothing."""
    try:
        ctx.connection.use_replay(args.mode, args.ledger)
    except KoineError as exc:
        ctx.fail(exc)
    mode = ctx.connection.replay_mode()
    print(f"Replay: {ctx.connection.shown_replay()}: {_REPLAY_SAYS.get(mode, '')}".rstrip())


@dataclass(frozen=True, slots=True)
class FixArgs:
    cell: str | None = word(
        "The execution count of the failed cell (default: the last).", metavar="N"
    )


_FIX_PROMPT = """A cell of my Jupyter notebook failed. Explain the error in a few sentences, \
then give the corrected cell, whole, in one ```python block.

The cell [{count}]:
```python
{source}
```

Its traceback:
```
{traceback}
```"""


@command(
    "fix", FixArgs, "explain the last failed cell (or cell N) and correct it", "%koine fix [N]"
)
def _fix(ctx: MagicsContext, args: FixArgs) -> Any:
    count: int | None = None
    if args.cell is not None:
        try:
            count = int(args.cell.lstrip("[").rstrip("]"))
        except ValueError:
            raise UsageError(
                f"%koine fix: N is a cell's execution count (got {args.cell!r})"
            ) from None
    failure = ctx.failures.get(count)
    if failure is None:
        which = "No cell has failed" if count is None else f"Cell [{count}] did not fail"
        print(
            f"{which} in this kernel since the extension was loaded: nothing to fix, nothing sent."
        )
        return None
    secrets = ctx.connection.secrets()
    prompt = _FIX_PROMPT.format(
        count=failure.count,
        source=masked(failure.source, secrets),
        traceback=masked(failure.traceback, secrets),
    )
    return ask(ctx, parse(AskOptions, ["--no-interpolate"], "%koine fix"), prompt)
