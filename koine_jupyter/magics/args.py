"""The magic's arguments, declared once.

The options of a prompt (:class:`AskOptions`) and of each subcommand are the fields of a frozen
dataclass, each field made by :func:`flag`, :func:`option` or :func:`word` (a free word, such as
the URL of ``connect``). Everything else is derived from those fields: the argparse parser
(:func:`parse`), the ``%koine?`` help, which options take a value (to find where a line's
leading options end), and how many free words a subcommand takes (:func:`free_words`: a line
whose words do not fit is a prompt, not a subcommand).
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from typing import Any, Final, Literal, NamedTuple, NoReturn, TypeVar

from IPython.core.error import UsageError

from ..views import FORMATS
from ..views._frontend import DISPLAY_CHOICES

__all__ = [
    "AskOptions",
    "Spec",
    "Split",
    "flag",
    "format_help",
    "free_words",
    "option",
    "option_names",
    "parse",
    "split_options",
    "tokens",
    "word",
    "word_count",
]

A = TypeVar("A")
_KEY: Final = "koine"
VARIABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Spec:
    """How one field is written on the line: a flag (``--new``), an option with a value
    (``--model NAME``) or a free word (``connect URL``)."""

    kind: Literal["flag", "option", "word"]
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None


def flag(help: str) -> Any:
    """A ``--name`` switch (the field is a ``bool``)."""
    return field(default=False, metadata={_KEY: Spec("flag", help)})


def option(
    help: str,
    *,
    metavar: str | None = None,
    type: Callable[[str], Any] = str,
    choices: tuple[str, ...] | None = None,
    default: Any = None,
) -> Any:
    """A ``--name VALUE`` option."""
    return field(default=default, metadata={_KEY: Spec("option", help, metavar, type, choices)})


def word(help: str, *, metavar: str) -> Any:
    """An optional free word (at most one per field)."""
    return field(default=None, metadata={_KEY: Spec("word", help, metavar)})


def _specs(cls: type[Any]) -> list[tuple[str, Spec, Any]]:
    out: list[tuple[str, Spec, Any]] = []
    for f in fields(cls):
        spec = f.metadata.get(_KEY)
        if not isinstance(spec, Spec):
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with flag(), option() or word()")
        out.append((f.name, spec, None if f.default is MISSING else f.default))
    return out


def _option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def option_names(cls: type[Any], kind: Literal["flag", "option"]) -> frozenset[str]:
    """The ``--names`` of ``cls``'s flags or of its options that take a value."""
    return frozenset(_option_name(n) for n, spec, _ in _specs(cls) if spec.kind == kind)


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is a readable ``UsageError`` (never ``SystemExit``)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


@cache
def _parser(cls: type[Any], prog: str) -> _Parser:
    parser = _Parser(prog=prog, add_help=False, allow_abbrev=False)
    for name, spec, default in _specs(cls):
        if spec.kind == "flag":
            parser.add_argument(_option_name(name), dest=name, action="store_true", help=spec.help)
        elif spec.kind == "option":
            parser.add_argument(
                _option_name(name),
                dest=name,
                metavar=spec.metavar,
                type=spec.type,
                choices=spec.choices,
                default=default,
                help=spec.help,
            )
        else:
            parser.add_argument(name, nargs="?", metavar=spec.metavar, help=spec.help)
    return parser


def parse(cls: type[A], argv: list[str], prog: str) -> A:
    """``argv`` read into an instance of the dataclass ``cls`` (``UsageError`` if it does not
    fit: an unknown option, a missing value, a word too many)."""
    namespace = _parser(cls, prog).parse_intermixed_args(argv)
    return cls(**vars(namespace))


def format_help(cls: type[Any], prog: str, usage: str | None = None) -> str:
    """The help of one parser (for ``%koine --help`` and ``%koine?``)."""
    parser = _parser(cls, prog)
    text = parser.format_help()
    if usage is not None:
        text = re.sub(r"\Ausage: .*?\n\n", f"usage: {usage}\n\n", text, flags=re.DOTALL)
    return text


def tokens(text: str) -> list[str]:
    """``text`` split like a shell line (``UsageError`` on unbalanced quotes)."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot read the options: {exc}") from None


def free_words(cls: type[Any], words: Iterable[str]) -> int:
    """How many of ``words`` are free words for ``cls`` (neither its options nor their
    values). A token that looks like an option but is not one of ``cls``'s counts as free."""
    flags = option_names(cls, "flag")
    valued = option_names(cls, "option")
    count = 0
    skip = False
    for token in words:
        if skip:
            skip = False
        elif token in flags or token in ("-h", "--help"):
            pass
        elif token.split("=", 1)[0] in valued:
            skip = "=" not in token
        else:
            count += 1
    return count


_TOKEN = re.compile(r"\s*(\"[^\"]*\"|'[^']*'|\S+)")


class Split(NamedTuple):
    """A line cut after its leading options. ``separated``: a ``--`` ended them, so the rest
    is a prompt whatever its first word."""

    lead: str
    rest: str
    separated: bool = False


def split_options(line: str, valued: frozenset[str]) -> Split:
    """Split ``line`` into its leading options and the rest (a one-line prompt or a
    subcommand), without tokenizing the rest (a prompt may hold unbalanced quotes). ``--``
    ends the options: everything after it is the rest, as written. ``valued``: the options
    that take a value."""
    pos = 0
    expect_value = False
    while True:
        m = _TOKEN.match(line, pos)
        if m is None:
            return Split(line, "")
        token = m.group(1)
        if expect_value:
            expect_value = False
        elif token == "--":
            return Split(line[: m.start()], line[m.end() :].strip(), separated=True)
        elif token.startswith("-"):
            expect_value = token in valued
        else:
            return Split(line[: m.start()], line[m.start() :].strip())
        pos = m.end()


def word_count(cls: type[Any]) -> int:
    """How many free words ``cls`` takes (one per :func:`word` field)."""
    return sum(1 for _, spec, _ in _specs(cls) if spec.kind == "word")


# -- the options of a prompt --------------------------------------------------------------------


def _timeout() -> Any:
    return option(
        "Seconds to wait for the gateway (and for each event).", metavar="SECONDS", type=float
    )


@dataclass(frozen=True, slots=True)
class AskOptions:
    """The options of ``%%koine`` and of a one-line ``%koine`` prompt."""

    system: str | None = option("System prompt (quote it).", metavar="TEXT")
    model: str | None = option("Model alias or name (default: KoineMagics.model).", metavar="NAME")
    tools: str | None = option("Allowed tools, comma-separated: Read,Glob.", metavar="LIST")
    session: str | None = option(
        "Continue the named conversation (default: every cell is a fresh, stateless request).",
        metavar="NAME",
    )
    new: bool = flag("Start the --session conversation over.")
    format: str = option(
        "How the answer renders: markdown (default), text, code, json, html. Answers are "
        "untrusted: markdown keeps formatting and safe links but escapes raw HTML; html "
        "keeps structure, text formatting, tables and http/https/mailto links, and drops "
        "scripts, event handlers, iframes, forms, remote images and positioning styles.",
        choices=FORMATS,
        default="markdown",
    )
    out: str | None = option("Also store the result in this variable.", metavar="VAR")
    no_stream: bool = flag("One request, no live view.")
    quiet: bool = flag("Show nothing; keep the result with --out VAR.")
    schema: str | None = option(
        "Structured output: a Pydantic model from the namespace, or list[Model].",
        metavar="TYPE",
    )
    df: bool = flag("Turn a list result into a pandas DataFrame.")
    timeout: float | None = _timeout()
    no_interpolate: bool = flag("Send {braces} as written, no {name} filling.")
    display: str | None = option(
        "Override KoineMagics.display for this cell.", choices=DISPLAY_CHOICES
    )

    def check(self) -> None:
        """Combinations that cannot work (``UsageError``)."""
        if self.new and not self.session:
            raise UsageError("--new starts a named session over: use it with --session NAME")
        if self.df and not self.schema:
            raise UsageError("--df needs --schema list[Model]")
        if self.out is not None and not VARIABLE.fullmatch(self.out):
            raise UsageError(f"--out needs a variable name (got {self.out!r})")

    @property
    def tool_list(self) -> list[str] | None:
        if not self.tools:
            return None
        return [t.strip() for t in self.tools.split(",") if t.strip()] or None


timeout_option = _timeout
