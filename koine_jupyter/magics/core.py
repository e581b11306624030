"""``%%koine`` / ``%koine``: ask the Koine gateway from a notebook cell.

One :class:`KoineMagics` instance per shell holds the settings (traitlets: ``%config
KoineMagics.model = "haiku"``), the :class:`~.connection.Connection` (one sync client, reused;
the local test gateway), the named sessions and the error renderer. The magic itself only tells
a prompt from a subcommand and hands over: prompts to :func:`~.ask.ask`, subcommands to their
handler in :data:`~.commands.COMMANDS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, CaselessStrEnum, Float, Integer, Unicode, observe

from koine_sdk import KoineError, SyncKoineClient

from .._sessions import SessionStore
from ..views._frontend import DISPLAY_CHOICES
from ..views._markdown import set_remote_images
from .args import (
    AskOptions,
    format_help,
    free_words,
    option_names,
    parse,
    split_options,
    tokens,
    word_count,
)
from .ask import ask
from .commands import COMMANDS, Command
from .connection import Connection, Settings
from .errors import ErrorContext, ErrorRenderer
from .failures import FailedCells
from .metadata import ResultMetadata
from .settings import ENV_AUTH_KEY, ENV_BASE_URL, REPLAY_CHOICES

if TYPE_CHECKING:
    from .ask import Prepared

__all__ = ["KoineMagics", "help_text"]

_PROMPT_PROG = "%%koine [options] / %koine [options] PROMPT"
_HELP = ("-h", "--help")


def _valued_options() -> frozenset[str]:
    """Every option that takes a value, of the prompt and of the subcommands (to find where a
    line's leading options end)."""
    names = option_names(AskOptions, "option")
    for cmd in COMMANDS.values():
        names |= option_names(cmd.args, "option")
    return names


def help_text() -> str:
    """``%koine --help``: the options of a prompt, then every subcommand."""
    parts = [format_help(AskOptions, "%%koine", _PROMPT_PROG), "subcommands (%koine NAME):"]
    for cmd in COMMANDS.values():
        parts.append(f"  {cmd.usage}\n      {cmd.help}")
    parts.append(
        "\nA line whose first word names a subcommand but that has more words than the "
        "subcommand takes is a prompt; %koine -- WORDS always sends WORDS as a prompt."
    )
    return "\n".join(parts)


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
        help="How answers are drawn while they stream: auto, widget, markdown (display "
        "handles) or text. 'auto' honours the KOINE_DISPLAY environment variable.",
    ).tag(config=True)
    update_rate = Float(20.0, help="At most this many live updates a second.").tag(config=True)
    max_retries = Integer(
        0, help="Retries of a busy (429) gateway or a failed connection, per request."
    ).tag(config=True)
    interpolate = Bool(True, help="Fill {name} references in prompts.").tag(config=True)
    replay = CaselessStrEnum(
        list(REPLAY_CHOICES),
        default_value="auto",
        help="Answers from the ledger: off; record (ask the gateway, record every answer); on "
        "(answer recorded requests from the ledger, ask and record the rest); strict (the "
        "ledger only: an unrecorded request fails). 'auto' honours KOINE_REPLAY, else off.",
    ).tag(config=True)
    ledger = Unicode(
        "",
        help="The ledger file replay records to and answers from (empty: KOINE_LEDGER, else "
        "the user cache folder).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # set before the traits: loading the configuration may already call the observers
        self.sessions = SessionStore()
        self.connection = Connection(cast(Settings, self))  # traits read as plain values
        self.errors = ErrorRenderer(self.connection.secrets)
        self.result_metadata = ResultMetadata()
        self.failures = FailedCells()
        super().__init__(shell=shell, **kwargs)

    remote_images = Bool(
        False,
        help="Load remote images in answers (off: shown as links, since loading an image URL "
        "can send data out of the notebook). KOINE_REMOTE_IMAGES=1 turns it on too.",
    ).tag(config=True)

    @observe("remote_images")
    def _remote_images_changed(self, change: Any) -> None:
        set_remote_images(True if change["new"] else None)

    @observe("base_url", "auth_key_env", "model", "timeout", "max_retries", "replay", "ledger")
    def _settings_changed(self, change: Any) -> None:
        self.connection.reset()

    # -- what handlers use ------------------------------------------------------------------

    @property
    def user_ns(self) -> dict[str, Any]:
        shell: Any = self.shell
        return cast(dict[str, Any], shell.user_ns) if shell is not None else {}

    def resolved_base_url(self) -> str:
        """The URL in use: ``base_url``, else ``KOINE_BASE_URL``."""
        return self.connection.base_url()

    def client(self) -> SyncKoineClient:
        """The sync client for the current settings (made once, reused)."""
        return self.connection.client()

    def error_context(self, prepared: Prepared | None = None) -> ErrorContext:
        """What the advice for a failure may mention."""
        return ErrorContext(
            key_env=self.connection.key_env(),
            base_url=self.connection.shown_base_url(),
            resumed=prepared.resumed if prepared is not None else None,
            schema=prepared.options.schema if prepared is not None else None,
        )

    def fail(self, exc: KoineError) -> NoReturn:
        """Raise ``exc``, drawn as a few lines with what to do."""
        self.errors.fail(exc, self.error_context())

    def close(self) -> None:
        """Close the client and stop a local gateway started by ``%koine connect --local``."""
        self.connection.close()

    def after_cell(self, *args: Any) -> None:
        """``post_run_cell`` hook: errors of the finished cell draw in full from now on; the
        provenance tags of its results are dropped."""
        if args:
            self.failures.record(args[0])
        self.errors.after_cell()
        self.result_metadata.after_cell()

    # -- the magic --------------------------------------------------------------------------

    @line_cell_magic
    @no_var_expand  # one pass of {name} filling, ours: IPython's would evaluate, then ours refill
    def koine(self, line: str, cell: str | None = None) -> Any:
        """Ask the Koine gateway (Claude Code over HTTP).

        Braces are filled once, by koine's own scanner (names, attributes, subscripts: never
        evaluated), in a line as in a cell; text inside a filled value is never filled again.

        Cell: the body is the prompt; {name}, {obj.attr}, {seq[0]}, {In[2]}, {Out[3]} in its
        prose are filled from the namespace ({{ and }} for literal braces). Code — a Markdown
        code fence or an `inline code span` — is sent exactly as written, and so is ${...};
        braces that are not such a reference (JSON, LaTeX) stay too. The answer streams into
        the cell and becomes the cell's value.

            %%koine --session chat --model sonnet
            Summarise {report} in three bullet points.

        Line: %koine [options] a one-line prompt | %koine connect URL [--key-env VAR] |
        %koine connect --local | --auto | %koine disconnect | %koine health |
        %koine sessions [NAME] [--clear] | %koine replay on|off|record|strict |
        %koine status (also: %koine alone).

        Each cell is a fresh, stateless request unless --session NAME names a conversation
        kept in this kernel (--new starts it over). Settings: %config KoineMagics.
        """
        if cell is not None:
            argv = tokens(line)
            if any(a in _HELP for a in argv):
                print(help_text())
                return None
            opts = parse(AskOptions, argv, "%%koine")
            return ask(self, opts, cell)
        return self._line(line)

    def _line(self, line: str) -> Any:
        lead, rest, separated = split_options(line, _valued_options())
        lead_argv = tokens(lead)
        if not rest and not lead_argv:
            return COMMANDS["status"].run(self, parse(COMMANDS["status"].args, [], "status"))
        cmd = None if separated or not rest else COMMANDS.get(rest.split(None, 1)[0])
        if cmd is not None:
            try:
                words = tokens(rest)[1:]
            except UsageError:
                words = None  # unbalanced quotes: prose, not a subcommand
            # Subcommands take no free words beyond their own: otherwise the line is a prompt.
            if words is not None and free_words(cmd.args, words) <= word_count(cmd.args):
                return self._command(cmd, lead_argv + words, rest)
        if any(a in _HELP for a in lead_argv):
            print(help_text())
            return None
        return ask(self, parse(AskOptions, lead_argv, "%koine"), rest)

    def _command(self, cmd: Command[Any], argv: list[str], rest: str) -> Any:
        prog = f"%koine {cmd.name}"
        if any(a in _HELP for a in argv):
            print(format_help(cmd.args, prog, cmd.usage))
            return None
        try:
            args = parse(cmd.args, argv, prog)
        except UsageError as exc:
            raise UsageError(
                f"{exc} (usage: {cmd.usage}; to send these words as a prompt: %koine -- {rest})"
            ) from None
        return cmd.run(self, args)


# ``%koine?`` shows the magic's docstring: the options and subcommands follow it, generated
# from the same declarations as ``%koine --help``.
_koine: Any = KoineMagics.koine
_koine.__doc__ = f"{_koine.__doc__}\n{help_text()}"
