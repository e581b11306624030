"""``%%koine`` / ``%koine``: ask the Koine gateway from a notebook cell.

One :class:`KoineMagics` instance per shell holds the settings (traitlets: ``%config
KoineMagics.model = "haiku"``, declared and checked in :mod:`.settings`), the
:class:`~.connection.Connection` (one sync client, reused; the local test gateway), the named
sessions and the error renderer; it is the handlers' :class:`~.context.MagicsContext`. The
magic itself only tells a prompt from a subcommand and hands over: prompts to
:func:`~.ask.ask`, subcommands to their handler in :data:`~.commands.COMMANDS`.
"""

from __future__ import annotations

from typing import Any, NoReturn, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from koine_sdk import KoineError

from .._sessions import SessionStore
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
from .connection import Connection
from .errors import ErrorContext, ErrorRenderer
from .failures import FailedCells
from .metadata import ResultMetadata
from .settings import DisplaySettings, KoineSettings

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
class KoineMagics(Magics, KoineSettings):
    """The ``%%koine`` cell magic and ``%koine`` line magic, configurable with ``%config``
    (the settings, their checks and what a change does: :class:`~.settings.KoineSettings`)."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.sessions = SessionStore()
        self.connection = Connection(self)
        self.errors = ErrorRenderer(self.connection.secrets)
        self.result_metadata = ResultMetadata()
        self.failures = FailedCells()

    # -- the handlers' context (MagicsContext) ------------------------------------------------

    @property
    def user_ns(self) -> dict[str, Any]:
        shell: Any = self.shell
        return cast(dict[str, Any], shell.user_ns) if shell is not None else {}

    @property
    def settings(self) -> DisplaySettings:
        return self.snapshot()

    def fail(
        self, exc: KoineError, *, resumed: str | None = None, schema: str | None = None
    ) -> NoReturn:
        """Raise ``exc``, drawn as a few lines with what to do."""
        context = ErrorContext(
            key_env=self.connection.key_env(),
            base_url=self.connection.shown_base_url(),
            resumed=resumed,
            schema=schema,
        )
        self.errors.fail(exc, context)

    def interrupted(self, exc: KeyboardInterrupt, what: str) -> NoReturn:
        """Re-raise Ctrl-C as one line saying ``what`` happened."""
        self.errors.interrupted(exc, what)

    def cell_value(
        self, value: Any, metadata: dict[str, Any] | None = None, *, printed: bool = False
    ) -> Any:
        """The cell's value; its output tagged with ``metadata``; ``None`` if printed."""
        shell: Any = self.shell
        if printed and shell is not None:
            # Text mode already printed the answer while it streamed: showing it again as the
            # cell's value would repeat it, so only ``_`` and ``Out[n]`` get it.
            shell.displayhook.update_user_ns(value)
            return None
        if metadata is not None:
            self.result_metadata.attach(shell, value, metadata)
        return value

    # -- the extension's hooks ----------------------------------------------------------------

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
