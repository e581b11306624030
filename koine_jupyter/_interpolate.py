"""Safe ``{reference}`` filling for prompts: a small scanner, not ``str.format``.

A reference is a name followed by attribute accesses and integer or quoted-string subscripts:
``{name}``, ``{obj.attr}``, ``{seq[0]}``, ``{In[2]}``, ``{Out[3]}``, ``{cfg["key"]}``.
Nothing is evaluated: names are looked up in the namespace, attributes with ``getattr``
(dunder attributes are refused), subscripts with ``[]``.

Only prose is filled. Code is sent exactly as written: a Markdown fenced code block (from its
opening fence line to its closing one, or to the end) and an inline code span (a run of
backticks to the next run of the same length, within a paragraph) — so a pasted
``print(f"row {i}")`` or ``{{ template }}`` keeps its braces. A ``${...}`` (JavaScript template
literals, shell, CI expressions such as ``${{ matrix.os }}``) is never filled either.

In prose, anything else between braces — JSON, LaTeX, a name that is not defined — stays exactly
as written, so pasting ``{"a": 1}`` or ``\\frac{a}{b}`` into a prompt never fails. ``{{`` is an
escape for a literal ``{`` and the ``}}`` that closes it for ``}`` (a ``}}`` with no ``{{`` before
it, as at the end of nested JSON, stays as written). A brace group that directly follows a LaTeX
command (``\\frac{x}``), ``^``, another brace group (``{a}{b}``) or a one-letter subscript
(``x_{i}``) is treated as LaTeX and kept. Code splits the prose into pieces filled one by one:
an escape or a brace group never spans a code span.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = ["Interpolation", "code_regions", "interpolate", "lookup", "render_value"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_BACKTICKS = re.compile(r"`+")
_INT = re.compile(r"-?[0-9]+")
_LATEX_BEFORE = re.compile(r"(?:\\[A-Za-z]+\*?|\\[A-Za-z]+_|(?<![A-Za-z0-9_])[A-Za-z0-9]_)$")


@dataclass(frozen=True, slots=True)
class _Attr:
    name: str


@dataclass(frozen=True, slots=True)
class _Item:
    key: int | str


_Step = _Attr | _Item


@dataclass(slots=True)
class Interpolation:
    """The result of :func:`interpolate`: the filled text and what happened to each reference."""

    text: str
    resolved: list[str] = field(default_factory=list[str])
    unresolved: list[str] = field(default_factory=list[str])


class _Missing(Exception):
    """A reference could not be resolved (kept as written)."""


def _parse_reference(body: str) -> tuple[str, list[_Step]] | None:
    """Parse ``name(.attr | [int] | ['str'] | ["str"])*``; ``None`` if ``body`` is not one."""
    match = _NAME.match(body)
    if match is None:
        return None
    name = match.group()
    steps: list[_Step] = []
    pos = match.end()
    n = len(body)
    while pos < n:
        ch = body[pos]
        if ch == ".":
            m = _NAME.match(body, pos + 1)
            if m is None:
                return None
            steps.append(_Attr(m.group()))
            pos = m.end()
        elif ch == "[":
            pos += 1
            if pos < n and body[pos] in "'\"":
                quote = body[pos]
                end = body.find(quote, pos + 1)
                if end < 0 or "\\" in body[pos + 1 : end]:
                    return None
                steps.append(_Item(body[pos + 1 : end]))
                pos = end + 1
            else:
                m = _INT.match(body, pos)
                if m is None:
                    return None
                steps.append(_Item(int(m.group())))
                pos = m.end()
            if pos >= n or body[pos] != "]":
                return None
            pos += 1
        else:
            return None
    return name, steps


def _resolve(name: str, steps: list[_Step], namespace: Mapping[str, Any]) -> Any:
    if name not in namespace:
        raise _Missing(name)
    value: Any = namespace[name]
    for step in steps:
        try:
            if isinstance(step, _Attr):
                if step.name.startswith("__"):
                    raise _Missing(step.name)
                value = getattr(value, step.name)
            else:
                value = value[step.key]
        except _Missing:
            raise
        except Exception as exc:
            raise _Missing(str(step)) from exc
    return value


def lookup(reference: str, namespace: Mapping[str, Any]) -> Any:
    """The value of one reference (``name``, ``mod.Model``, ``items[0]``) in ``namespace``.

    Raises:
        LookupError: ``reference`` is not a reference or does not resolve.
    """
    parsed = _parse_reference(reference.strip())
    if parsed is None:
        raise LookupError(f"{reference!r} is not a name (name, name.attr or name[index])")
    try:
        return _resolve(parsed[0], parsed[1], namespace)
    except _Missing:
        raise LookupError(f"{reference.strip()!r} is not defined") from None


def render_value(value: Any) -> str:
    """How a value is written into a prompt: a Koine answer as its text, a Pydantic model (or a
    list of them) as JSON, anything else with ``str``."""
    from pydantic import BaseModel, TypeAdapter

    text = getattr(value, "__koine_text__", None)
    if callable(text):
        return str(text())
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2)
    if isinstance(value, list | tuple):
        items = list(cast("Sequence[Any]", value))
        if items and all(isinstance(v, BaseModel) for v in items):
            return TypeAdapter(list[Any]).dump_json(items, indent=2).decode()
    return str(cast(object, value))


def _latex_context(template: str, start: int) -> bool:
    """Whether the ``{`` at ``start`` opens a LaTeX argument: after a command (``\\frac{``),
    ``^``, another group (``}{``) or a one-letter subscript (``x_{``, but not ``file_{``)."""
    if start == 0:
        return False
    before = template[start - 1]
    if before in "^}":
        return True
    return _LATEX_BEFORE.search(template, 0, start) is not None


def _fence_regions(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(fenced code blocks, paragraphs outside them) of ``text``, as ``(start, end)``."""
    fences: list[tuple[int, int]] = []
    paragraphs: list[tuple[int, int]] = []
    fence: str | None = None
    block_start = para_start = 0
    pos = 0
    n = len(text)
    while pos < n:
        end = text.find("\n", pos)
        end = n if end < 0 else end + 1
        line = text[pos:end].rstrip("\r\n")
        m = _FENCE.match(line)
        if fence is not None:
            if (
                m is not None
                and m.group(1)[0] == fence[0]
                and len(m.group(1)) >= len(fence)
                and not m.group(2).strip()
            ):
                fences.append((block_start, end))
                fence = None
                para_start = end
        elif m is not None and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            paragraphs.append((para_start, pos))
            fence, block_start = m.group(1), pos
        elif not line.strip():
            paragraphs.append((para_start, pos))
            para_start = end
        pos = end
    if fence is not None:
        fences.append((block_start, n))  # an unclosed fence runs to the end
    else:
        paragraphs.append((para_start, n))
    return fences, [(a, b) for a, b in paragraphs if a < b]


def _span_regions(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The inline code spans in ``text[start:end]`` (one paragraph)."""
    spans: list[tuple[int, int]] = []
    pos = start
    while True:
        m = _BACKTICKS.search(text, pos, end)
        if m is None:
            return spans
        if m.start() > 0 and text[m.start() - 1] == "\\" and m.end() - m.start() == 1:
            pos = m.end()  # an escaped backtick is literal
            continue
        run = m.group()
        close = m.end()
        while True:
            c = _BACKTICKS.search(text, close, end)
            if c is None or c.group() == run:
                break
            close = c.end()
        if c is None:
            pos = m.end()  # no closing run: the backticks are literal
            continue
        spans.append((m.start(), c.end()))
        pos = c.end()


def code_regions(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds code, as sorted ``(start, end)`` pairs: fenced code blocks and
    inline code spans (see the module docstring)."""
    fences, paragraphs = _fence_regions(text)
    regions = list(fences)
    for start, end in paragraphs:
        regions.extend(_span_regions(text, start, end))
    return sorted(regions)


def _dollar_group(template: str, i: int) -> int:
    """The end of the ``{...}`` group opened at ``i`` (after a ``$``), braces balanced; or
    ``i + 1`` when it does not close."""
    depth = 0
    for j in range(i, len(template)):
        ch = template[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return i + 1


def _fill(template: str, namespace: Mapping[str, Any], result: Interpolation) -> str:
    """Fill the references of one piece of prose."""
    out: list[str] = []
    escaped_open = 0  # ``{{`` seen whose ``}}`` is still to come
    i = 0
    n = len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if i > 0 and template[i - 1] == "$":
                end = _dollar_group(template, i)  # ${...}: never filled, kept whole
                out.append(template[i:end])
                i = end
                continue
            if template.startswith("{{", i):
                out.append("{")
                escaped_open += 1
                i += 2
                continue
            close = template.find("}", i + 1)
            inner = template[i + 1 : close] if close >= 0 else ""
            parsed = _parse_reference(inner) if close >= 0 and "{" not in inner else None
            if parsed is None or _latex_context(template, i):
                out.append(ch)
                i += 1
                continue
            try:
                value = _resolve(parsed[0], parsed[1], namespace)
            except _Missing:
                result.unresolved.append(inner)
                out.append(template[i : close + 1])
            else:
                out.append(render_value(value))
                result.resolved.append(inner)
            i = close + 1
        elif ch == "}":
            # ``}}`` closes an earlier ``{{``; elsewhere (the end of nested JSON) it is kept.
            if escaped_open and template.startswith("}}", i):
                escaped_open -= 1
                out.append("}")
                i += 2
            else:
                out.append("}")
                i += 1
        else:
            nxt = min(
                (p for p in (template.find("{", i), template.find("}", i)) if p >= 0), default=n
            )
            out.append(template[i:nxt])
            i = nxt
    return "".join(out)


def interpolate(template: str, namespace: Mapping[str, Any]) -> Interpolation:
    """Fill the ``{references}`` in the prose of ``template`` from ``namespace`` (see the
    module docstring); code is kept as written."""
    result = Interpolation("")
    out: list[str] = []
    pos = 0
    for start, end in code_regions(template):
        out.append(_fill(template[pos:start], namespace, result))
        out.append(template[start:end])
        pos = end
    out.append(_fill(template[pos:], namespace, result))
    result.text = "".join(out)
    return result
