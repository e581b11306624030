"""``%%koine`` / ``%koine``: ask the Koine gateway from a notebook cell.

One :class:`KoineMagics` instance per shell holds the connection (one sync client, reused), the
named sessions and the settings (traitlets: ``%config KoineMagics.model = "haiku"``).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from typing import Any, Final, NoReturn, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, CaselessStrEnum, Float, Integer, Unicode, observe

from koine_sdk import KoineError, SyncKoineClient, create_koine_sync

from ._interpolate import interpolate, lookup
from ._sessions import SessionStore
from .views import FORMATS, FrameView, KoineAnswer, ObjectView, TextView
from .views._frontend import DISPLAY_CHOICES, LiveView

__all__ = ["KoineMagics"]

ENV_BASE_URL: Final = "KOINE_BASE_URL"
ENV_AUTH_KEY: Final = "KOINE_AUTH_KEY"
_SUBCOMMANDS: Final = ("connect", "disconnect", "health", "history", "sessions", "status")

_RED = "\x1b[31m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"

# (names, argparse keywords) of every option; the help of %%koine? is generated from these.
_OPTIONS: Final[list[tuple[tuple[str, ...], dict[str, Any]]]] = [
    (("--system",), {"metavar": "TEXT", "help": "System prompt (quote it)."}),
    (
        ("--model",),
        {"metavar": "NAME", "help": "Model alias or name (default: KoineMagics.model)."},
    ),
    (("--tools",), {"metavar": "LIST", "help": "Allowed tools, comma-separated: Read,Glob."}),
    (
        ("--session",),
        {
            "metavar": "NAME",
            "help": "Continue the named conversation (default: every cell is a fresh, "
            "stateless request).",
        },
    ),
    (("--new",), {"action": "store_true", "help": "Start the --session conversation over."}),
    (
        ("--format",),
        {
            "choices": FORMATS,
            "default": "markdown",
            "help": "How the answer renders: markdown (default), text, code, json, html.",
        },
    ),
    (("--out",), {"metavar": "VAR", "help": "Also store the result in this variable."}),
    (("--no-stream",), {"action": "store_true", "help": "One request, no live view."}),
    (
        ("--quiet",),
        {"action": "store_true", "help": "Show nothing; keep the result with --out VAR."},
    ),
    (
        ("--schema",),
        {
            "metavar": "TYPE",
            "help": "Structured output: a Pydantic model from the namespace, or list[Model].",
        },
    ),
    (("--df",), {"action": "store_true", "help": "Turn a list result into a pandas DataFrame."}),
    (("--timeout",), {"type": float, "metavar": "SECONDS", "help": "Seconds to wait."}),
    (
        ("--no-interpolate",),
        {"action": "store_true", "help": "Send {braces} as written, no {name} filling."},
    ),
    (
        ("--display",),
        {"choices": DISPLAY_CHOICES, "help": "Override KoineMagics.display for this cell."},
    ),
    (("--key-env",), {"metavar": "VAR", "help": "connect: the variable holding the key."}),
    (("--local",), {"action": "store_true", "help": "connect: start a local test gateway."}),
    (
        ("--auto",),
        {
            "action": "store_true",
            "help": "connect: use $KOINE_BASE_URL if set, else start a local test gateway.",
        },
    ),
    (("--clear",), {"action": "store_true", "help": "sessions: forget one session (or all)."}),
    (
        ("words",),
        {
            "nargs": "*",
            "help": "Line magic: connect URL | connect --local | disconnect | health | "
            "sessions [--clear [NAME]] | status | a one-line prompt.",
        },
    ),
]
_VALUE_OPTIONS: Final = frozenset(
    name
    for names, kw in _OPTIONS
    if names[0].startswith("-") and kw.get("action") is None
    for name in names
)

_F = Callable[..., Any]


def _with_options(func: _F) -> _F:
    decorated: Any = func
    for names, kw in reversed(_OPTIONS):
        decorated = cast(Any, argument(*names, **kw))(decorated)
    return cast(_F, cast(Any, magic_arguments())(decorated))


_TOKEN = re.compile(r"\s*(\"[^\"]*\"|'[^']*'|\S+)")


def _split_options(line: str) -> tuple[str, str]:
    """Split ``line`` into its leading options and the rest (a one-line prompt or a
    subcommand), without tokenizing the rest (a prompt may hold unbalanced quotes)."""
    pos = 0
    expect_value = False
    while True:
        m = _TOKEN.match(line, pos)
        if m is None:
            return line, ""
        token = m.group(1)
        if expect_value:
            expect_value = False
        elif token == "--":
            return line[: m.start()], line[m.end() :].strip()
        elif token.startswith("-"):
            expect_value = token in _VALUE_OPTIONS
        else:
            return line[: m.start()], line[m.start() :].strip()
        pos = m.end()


# -- errors -----------------------------------------------------------------------------------


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
        import traceback

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


def _get_shell() -> Any:
    from IPython.core.getipython import get_ipython

    return get_ipython()


def _what_to_do(exc: KoineError, magics: KoineMagics, session: str | None) -> str | None:
    code = exc.code
    env = magics.auth_key_env or ENV_AUTH_KEY
    if code in ("AUTH_MISSING", "AUTH_INVALID"):
        return (
            f"Set the environment variable {env} to the gateway's key "
            "(its CLAUDE_CODE_GATEWAY_API_KEY), or point to another variable with "
            "%koine connect URL --key-env VAR."
        )
    if code == "CONCURRENCY_LIMIT_ERROR":
        wait = f"{exc.retry_after:g} s" if exc.retry_after is not None else "a few seconds"
        return (
            f"The gateway is busy (too many requests at once): run the cell again in {wait}, "
            "or let the client retry: %config KoineMagics.max_retries = 3."
        )
    if code in ("NETWORK_ERROR", "NOT_FOUND"):
        where = magics.resolved_base_url() or "(no URL set)"
        return (
            f"No Koine gateway answers at {where}. Start it, or connect elsewhere: "
            f"%koine connect URL (or set {ENV_BASE_URL}); %koine connect --local starts an "
            "offline test gateway."
        )
    if code == "NO_TOOLS_AVAILABLE":
        return (
            "The gateway allows none of the tools in --tools (its KOINE_ALLOWED_TOOLS / "
            "KOINE_DISALLOWED_TOOLS decide): name tools it allows, or drop --tools."
        )
    if code == "REQUEST_TIMEOUT":
        return "No answer in time: raise --timeout or %config KoineMagics.timeout = SECONDS."
    if code == "TIMEOUT_ERROR":
        return "The Claude CLI behind the gateway timed out: shorten the task or try again."
    if code == "CLI_EXIT_ERROR" and session is not None:
        return (
            f"The CLI failed; if the gateway no longer knows session {session!r}, start it "
            "over with --new."
        )
    if code in ("CLI_EXIT_ERROR", "SPAWN_ERROR", "INTERNAL_ERROR", "UNKNOWN_ERROR"):
        return (
            "The Claude CLI behind the gateway failed: try again; if it persists, check the "
            "gateway's logs."
        )
    if code == "INVALID_CONFIG":
        return "Check the connection: %koine status shows it; %koine connect URL sets it."
    return exc.hint


def _error_lines(
    exc: KoineError, magics: KoineMagics, session: str | None, schema: str | None
) -> list[str]:
    where = f" (HTTP {exc.status})" if exc.status is not None else ""
    lines = [f"{_RED}{_BOLD}KoineError [{exc.code}]{_RESET}{where}: {exc.message}"]
    todo = _what_to_do(exc, magics, session)
    if todo:
        lines.append(f"What to do: {todo}")
    if exc.code == "VALIDATION_ERROR" and exc.raw_text:
        raw = exc.raw_text
        if len(raw) > 4000:
            raw = raw[:4000] + f"… ({len(exc.raw_text):,} characters in all)"
        what = f" for {schema}" if schema else ""
        lines.append(f"The JSON received{what}:")
        lines.append(raw)
    lines.append(f"{_DIM}(%tb shows the full traceback){_RESET}")
    return lines


# -- the magics -------------------------------------------------------------------------------


class _HealthReport:
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

    def _repr_markdown_(self) -> str:
        lines = ["| | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self._rows()]
        return "\n".join(lines)


@magics_class
class KoineMagics(Magics):
    """The ``%%koine`` cell magic and ``%koine`` line magic, configurable with ``%config``."""

    base_url = Unicode(
        "", help=f"The gateway's URL (empty: the {ENV_BASE_URL} environment variable)."
    ).tag(config=True)
    auth_key_env = Unicode(
        ENV_AUTH_KEY,
        help="The environment variable that holds the gateway's key (the key itself is "
        "never stored in the notebook).",
    ).tag(config=True)
    model = Unicode(None, allow_none=True, help="Default model alias or name.").tag(config=True)
    timeout = Float(
        None, allow_none=True, help="Seconds to wait for the gateway (and for each event)."
    ).tag(config=True)
    display = CaselessStrEnum(
        list(DISPLAY_CHOICES),
        default_value="auto",
        help="How answers are drawn while they stream: auto, widget, markdown (a display "
        "handle) or text. 'auto' honours the KOINE_DISPLAY environment variable.",
    ).tag(config=True)
    update_rate = Float(20.0, help="At most this many live updates a second.").tag(config=True)
    max_retries = Integer(
        0, help="Retries of a busy (429) gateway or a failed connection, per request."
    ).tag(config=True)
    interpolate = Bool(True, help="Fill {name} references in prompts.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # set before the traits: loading the configuration may already call the observers
        self.sessions = SessionStore()
        self._client: SyncKoineClient | None = None
        self._client_key: tuple[Any, ...] | None = None
        self._local: Any = None  # a koine_sdk.testing.LocalGateway started by connect --local
        self._local_key: str | None = None
        self._errors: list[_ShortTraceback] = []
        super().__init__(shell=shell, **kwargs)

    # -- connection -------------------------------------------------------------------------

    @observe("base_url", "auth_key_env", "model", "timeout", "max_retries")
    def _settings_changed(self, change: Any) -> None:
        self._drop_client()

    def resolved_base_url(self) -> str:
        """The URL in use: ``base_url``, else ``KOINE_BASE_URL``."""
        return self.base_url or os.environ.get(ENV_BASE_URL, "")

    def _auth_key(self) -> str:
        local = self._local
        if local is not None and self._local_key and self.resolved_base_url() == local.base_url:
            return self._local_key
        env = self.auth_key_env or ENV_AUTH_KEY
        key = os.environ.get(env, "")
        if not key:
            raise KoineError(
                f"no key: the environment variable {env} is not set "
                "(set it, or name another one with %koine connect URL --key-env VAR)",
                "INVALID_CONFIG",
            )
        return key

    def client(self) -> SyncKoineClient:
        """The sync client for the current settings (made once, reused)."""
        base_url = self.resolved_base_url()
        if not base_url:
            raise KoineError(
                f"no gateway URL: set {ENV_BASE_URL}, %config KoineMagics.base_url = URL, "
                "or %koine connect URL (or %koine connect --local)",
                "INVALID_CONFIG",
            )
        key = self._auth_key()
        settings = (base_url, key, self.timeout, self.model, self.max_retries)
        if self._client is None or self._client_key != settings:
            self._drop_client()
            self._client = create_koine_sync(
                base_url=base_url,
                auth_key=key,
                timeout=self.timeout,
                model=self.model,
                max_retries=self.max_retries,
            )
            self._client_key = settings
        return self._client

    def _drop_client(self) -> None:
        client, self._client, self._client_key = self._client, None, None
        if client is not None:
            client.close()

    def _stop_local(self) -> None:
        local, key = self._local, self._local_key
        self._local, self._local_key = None, None
        if local is not None:
            if os.environ.get(ENV_BASE_URL) == str(local.base_url):
                os.environ.pop(ENV_BASE_URL, None)
            if key is not None and os.environ.get(ENV_AUTH_KEY) == key:
                os.environ.pop(ENV_AUTH_KEY, None)
            local.stop()

    def close(self) -> None:
        """Close the client and stop a local gateway started by ``%koine connect --local``."""
        self._drop_client()
        self._stop_local()

    # -- errors -----------------------------------------------------------------------------

    def _short(self, exc: BaseException, lines: list[str]) -> None:
        key = self._client_key[1] if self._client_key else None
        if key:
            lines = [line.replace(key, "***") for line in lines]
        renderer = _ShortTraceback(exc, lines)
        try:
            exc._render_traceback_ = renderer  # type: ignore[attr-defined]
        except AttributeError:  # pragma: no cover - exceptions with __slots__
            return
        self._errors.append(renderer)

    def after_cell(self, *args: Any) -> None:
        """``post_run_cell`` hook: errors of the finished cell draw in full from now on."""
        for renderer in self._errors:
            renderer.short = False
        self._errors.clear()

    def _fail(
        self, exc: KoineError, session: str | None = None, schema: str | None = None
    ) -> NoReturn:
        self._short(exc, _error_lines(exc, self, session, schema))
        raise exc

    # -- the magic --------------------------------------------------------------------------

    @line_cell_magic
    @_with_options
    def koine(self, line: str, cell: str | None = None) -> Any:
        """Ask the Koine gateway (Claude Code over HTTP).

        Cell: the body is the prompt; {name}, {obj.attr}, {seq[0]}, {In[2]}, {Out[3]} are
        filled from the namespace ({{ and }} for literal braces; braces that are not such a
        reference, as in JSON or LaTeX, stay as written). The answer streams into the cell
        and becomes the cell's value.

            %%koine --session chat --model sonnet
            Summarise {report} in three bullet points.

        Line: %koine connect URL [--key-env VAR] | %koine connect --local | --auto |
        %koine disconnect | %koine health | %koine sessions [--clear [NAME]] |
        %koine status | %koine history [RUN_ID|last [failed]] |
        %koine [options] a one-line prompt.

        Each cell is a fresh, stateless request unless --session NAME names a conversation
        kept in this kernel (--new starts it over). Settings: %config KoineMagics.
        """
        if re.search(r"(^|\s)(-h|--help)(\s|$)", line) and cell is None:
            print(self._parser().format_help())
            return None
        if cell is None:
            options, rest = _split_options(line)
            first = rest.split(None, 1)[0] if rest else ""
            if first in _SUBCOMMANDS or not rest:
                return self._subcommand(self._parse(line))
            args = self._parse(options)
            prompt = rest
        else:
            args = self._parse(line)
            if args.words:
                raise UsageError(
                    f"unexpected words after the options: {' '.join(args.words)} "
                    "(the prompt goes in the cell body; quote option values with spaces)"
                )
            prompt = cell
        return self._ask(args, prompt)

    def _parser(self) -> Any:
        """The argparse parser ``magic_arguments`` built from :data:`_OPTIONS`."""
        return cast(Any, type(self).koine).parser

    def _parse(self, line: str) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot read the options: {exc}") from None
        return self._parser().parse_intermixed_args(argv)

    # -- subcommands ------------------------------------------------------------------------

    def _subcommand(self, args: Any) -> Any:
        words: list[str] = list(args.words)
        command = words[0] if words else "status"
        rest = words[1:]
        if command == "connect":
            return self._connect(rest, args)
        if command == "disconnect":
            self.close()
            print("Disconnected.")
            return None
        if command == "health":
            client = self.client()
            try:
                health = client.health(timeout=args.timeout)
            except KoineError as exc:
                self._fail(exc)
            return _HealthReport(client.config.base_url, health)
        if command == "history":
            return self._history(rest)
        if command == "sessions":
            if args.clear:
                count = self.sessions.clear(rest[0] if rest else None)
                print(f"Forgot {count} session{'s' if count != 1 else ''}.")
                return None
            return self.sessions
        return self._status()

    def _history(self, rest: list[str]) -> Any:
        """``%koine history`` (the ledger's runs, newest first), ``%koine history RUN_ID|last``
        (that run's requests), ``%koine history RUN_ID|last failed`` (its failures only)."""
        from .extraction import history

        if len(rest) > 2 or (len(rest) == 2 and rest[1] not in ("ok", "failed")):
            raise UsageError("usage: %koine history [RUN_ID|last [ok|failed]]")
        try:
            return history(rest[0] if rest else None, status=rest[1] if len(rest) > 1 else None)
        except KoineError as exc:
            self._fail(exc)

    def _connect(self, rest: list[str], args: Any) -> None:
        if args.auto:
            if rest or args.local:
                raise UsageError("%koine connect --auto takes no URL")
            if os.environ.get(ENV_BASE_URL):
                self._stop_local()
                self.base_url = ""
                env = self.auth_key_env or ENV_AUTH_KEY
                state = "set" if os.environ.get(env) else "NOT set"
                print(f"Connected to ${ENV_BASE_URL} (key from ${env}, which is {state}).")
                return None
            args.local = True
        if args.local:
            if rest:
                raise UsageError("%koine connect --local takes no URL")
            try:
                from koine_sdk.testing import LocalGateway
            except ImportError as exc:  # pragma: no cover - needs the testing extra
                raise UsageError(
                    "the local gateway needs the testing extra: pip install 'koine-sdk[testing]'"
                ) from exc
            self.close()
            gateway = LocalGateway()
            gateway.start()
            self._local = gateway
            self._local_key = str(gateway.auth_key)
            self.base_url = str(gateway.base_url)
            # SDK code in later cells (create_koine_sync(), extract) finds the same gateway.
            os.environ[ENV_BASE_URL] = self.base_url
            os.environ[ENV_AUTH_KEY] = self._local_key
            print(
                f"Started a local test gateway (echo model) at {self.base_url}; "
                f"${ENV_BASE_URL} and ${ENV_AUTH_KEY} point at it in this kernel."
            )
            return None
        if len(rest) != 1:
            raise UsageError(
                "usage: %koine connect URL [--key-env VAR]  or  %koine connect --local"
            )
        self._stop_local()
        if args.key_env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.key_env):
                raise UsageError("--key-env takes the NAME of an environment variable, not a key")
            self.auth_key_env = args.key_env
        self.base_url = rest[0]
        env = self.auth_key_env or ENV_AUTH_KEY
        state = "set" if os.environ.get(env) else "NOT set"
        print(f"Connected to {self.base_url} (key from ${env}, which is {state}).")
        return None

    def _status(self) -> None:
        base_url = self.resolved_base_url() or "(none: set KOINE_BASE_URL or %koine connect)"
        env = self.auth_key_env or ENV_AUTH_KEY
        if self._local is not None:
            key = "the local gateway's key"
        else:
            key = f"${env} ({'set' if os.environ.get(env) else 'not set'})"
        from .views import choose_mode

        print(
            f"gateway: {base_url}\nkey: {key}\nmodel: {self.model or 'gateway default'}\n"
            f"display: {self.display} (now: {choose_mode(self.display)})\n"
            f"sessions: {len(self.sessions)}"
        )
        return None

    # -- asking -----------------------------------------------------------------------------

    def _resolve_schema(self, expr: str) -> tuple[Any, bool]:
        """The schema type for ``--schema expr`` and whether it is a list."""
        ns = self._user_ns()
        m = re.fullmatch(r"\s*(?:list|List)\s*\[\s*(.+?)\s*\]\s*", expr)
        inner = m.group(1) if m else expr
        try:
            tp = lookup(inner, ns)
        except LookupError as exc:
            raise UsageError(f"--schema: {exc}") from None
        if not isinstance(tp, type):
            raise UsageError(f"--schema: {inner} is not a class (a Pydantic model is expected)")
        return (list[tp] if m else tp), m is not None  # type: ignore[valid-type]

    def _ask(self, args: Any, prompt: str) -> Any:
        shell: Any = self.shell
        ns = self._user_ns()
        if args.new and not args.session:
            raise UsageError("--new starts a named session over: use it with --session NAME")
        if args.df and not args.schema:
            raise UsageError("--df needs --schema list[Model]")
        if args.out is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.out):
            raise UsageError(f"--out needs a variable name (got {args.out!r})")
        if self.interpolate and not args.no_interpolate:
            prompt = interpolate(prompt, ns).text
        if not prompt.strip():
            raise UsageError("the prompt is empty")
        schema: Any = None
        if args.schema:
            schema, _ = self._resolve_schema(args.schema)
        tools = [t.strip() for t in args.tools.split(",") if t.strip()] if args.tools else None
        model: str | None = args.model or self.model or None
        resume = self.sessions.resume_id(args.session, new=args.new)
        request: dict[str, Any] = {
            "prompt": prompt,
            "system": args.system,
            "session_id": resume,
            "allowed_tools": tools,
            "model": args.model,
            "timeout": args.timeout,
        }
        try:
            client = self.client()
        except KoineError as exc:
            self._fail(exc)
        display = args.display or self.display
        label = " · ".join(
            p for p in (model or "koine", f"session {args.session}" if args.session else "") if p
        )
        if schema is not None:
            result, session_id, usage, printed = self._ask_object(
                client, request, schema, args, display, label
            )
        else:
            result, session_id, usage, printed = self._ask_text(
                client, request, args, display, label, model
            )
        if args.session and session_id:
            self.sessions.record(args.session, session_id, usage, model, new=args.new)
        if args.out:
            ns[args.out] = result
        if args.quiet:
            return None
        if printed and shell is not None:
            # Text mode already printed the answer while it streamed: showing it again as the
            # cell's value would repeat it, so only ``_`` and ``Out[n]`` get it.
            shell.displayhook.update_user_ns(result)
            return None
        return result

    def _view_options(self, args: Any, display: str, label: str) -> dict[str, Any]:
        return {"display": display, "rate": self.update_rate, "label": label}

    def _ask_text(
        self,
        client: SyncKoineClient,
        request: dict[str, Any],
        args: Any,
        display: str,
        label: str,
        model: str | None,
    ) -> tuple[KoineAnswer, str | None, Any, bool]:
        session: str | None = args.session
        if args.no_stream or args.quiet:
            try:
                r = client.generate_text(**request)
            except KoineError as exc:
                self._fail(exc, session)
            answer = KoineAnswer(
                r.text,
                usage=r.usage,
                session_id=r.session_id,
                model=model,
                session=session,
                format=args.format,
            )
            return answer, r.session_id, r.usage, False
        view = TextView(format=args.format, **self._view_options(args, display, label))
        view.start()
        try:
            with client.stream_text(**request) as stream:
                answer = view.consume(stream, model=model, session=session)
        except KeyboardInterrupt as exc:
            view.interrupted()
            self._keep_partial(args, view.answer(model=model, session=session))
            self._short(exc, self._interrupt_lines(view, len(view.text)))
            raise
        except KoineError as exc:
            view.failed(exc)
            if view.text:
                self._keep_partial(args, view.answer(model=model, session=session))
            self._fail(exc, session)
        return answer, answer.session_id, answer.usage, view.mode == "text"

    def _ask_object(
        self,
        client: SyncKoineClient,
        request: dict[str, Any],
        schema: Any,
        args: Any,
        display: str,
        label: str,
    ) -> tuple[Any, str | None, Any, bool]:
        session: str | None = args.session
        if args.no_stream or args.quiet:
            try:
                r = client.generate_object(schema=schema, **request)
            except KoineError as exc:
                self._fail(exc, session, args.schema)
            result: Any = r.object
            if args.df:
                from .views import to_dataframe

                result = to_dataframe(result)
            return result, r.session_id, r.usage, False
        options = self._view_options(args, display, label)
        view: ObjectView[Any] | FrameView = (
            FrameView(**options) if args.df else ObjectView[Any](**options)
        )
        view.start()
        try:
            with client.stream_object(schema=schema, **request) as stream:
                result = view.consume(stream)
                session_id = stream.session_id()
        except KeyboardInterrupt as exc:
            view.interrupted()
            if args.out:
                self._user_ns()[args.out] = view.partial
            self._short(exc, self._interrupt_lines(view, None))
            raise
        except KoineError as exc:
            view.failed(exc)
            self._fail(exc, session, args.schema)
        return result, session_id, view.usage, False

    def _user_ns(self) -> dict[str, Any]:
        shell: Any = self.shell
        return cast(dict[str, Any], shell.user_ns) if shell is not None else {}

    def _keep_partial(self, args: Any, answer: KoineAnswer) -> None:
        if args.out:
            self._user_ns()[args.out] = answer

    def _interrupt_lines(self, view: LiveView, chars: int | None) -> list[str]:
        got = f" after {chars:,} characters" if chars is not None else ""
        return [
            f"{_RED}{_BOLD}KeyboardInterrupt{_RESET}: the answer was interrupted{got}; "
            "what arrived is shown above (and kept in --out VAR if given)."
        ]
