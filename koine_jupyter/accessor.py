"""The ``.koine`` accessor: ``extract``, ``classify`` and ``generate`` as column methods.

Importing this module registers ``.koine`` on pandas ``Series`` and ``DataFrame`` (and
``%load_ext koine_jupyter`` imports it when pandas is already imported). Dask's ``Series`` and
``DataFrame`` get it too when ``dask.dataframe`` is already imported at that moment, or when
:func:`register_dask` is called: pandas users never import Dask.

On a Series each value is the row's text and the methods are exactly the functions of
:mod:`koine_jupyter.extraction` (same arguments after the texts, same results). On a DataFrame
the prompt may name columns (``"{title}: {body}"``): each row fills them and the filled prompt
is that row's text; a name that is not a column is ``INVALID_ARGUMENT`` before anything is
sent. A DataFrame of one column with a prompt naming no column behaves as that column.
"""

from __future__ import annotations

import enum
import string
import sys
from collections.abc import Sequence
from typing import Any, Unpack, cast

import pandas as pd
from pydantic import BaseModel

from . import extraction as _verbs
from .extraction import DEFAULT_PROMPT
from .extraction._options import VerbOptions, invalid

# The verbs' overloads split pandas from Dask input; an accessor serves both, so it calls them
# untyped and its methods return what the function returns for that input.
extract: Any = _verbs.extract
classify: Any = _verbs.classify
generate: Any = _verbs.generate

__all__ = ["KoineAccessor", "register_dask"]

_TEXT = "{text}"


def _fields(prompt: str) -> list[str]:
    """The ``{names}`` a prompt refers to (``{{`` escapes skipped); bad templates are refused."""
    try:
        parsed = list(string.Formatter().parse(prompt))
    except ValueError as exc:
        raise invalid(f"prompt is not a valid template: {exc}") from None
    names: list[str] = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name or name.isdigit():
            raise invalid("prompt fields must name columns ({} and {0} are not allowed)")
        if name not in names:
            names.append(name)
    return names


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def _fill(prompt: str, names: list[str], row: Sequence[Any]) -> str | None:
    values = dict(zip(names, row, strict=True))
    if any(_missing(v) for v in values.values()):
        return None  # a missing value: the verb gives the row INVALID_ARGUMENT, nothing sent
    return prompt.format_map(values)


def _rows(frame: Any, prompt: str | None) -> tuple[Any, str | None]:
    """The texts of a frame's rows (pandas or Dask) for ``prompt``, and what is left of it.

    Returns ``(texts, None)`` when the prompt named columns (it is consumed into each text), or
    ``(the single column, prompt)`` when it named none (or there is no prompt).
    """
    columns = [str(c) for c in frame.columns]
    names = [] if prompt is None else _fields(prompt)
    if not names or (names == ["text"] and "text" not in columns):
        if len(columns) != 1:
            raise invalid(
                f"on a DataFrame of {len(columns)} columns the prompt must name the columns "
                "to use, e.g. '{title}: {body}'"
            )
        return frame[frame.columns[0]], prompt
    missing = [n for n in names if n not in columns]
    if missing:
        raise invalid(
            f"prompt names {', '.join(map(repr, missing))}, not a column of this DataFrame "
            f"(columns: {', '.join(map(repr, columns))})"
        )
    assert prompt is not None
    part = frame[names]
    if isinstance(part, pd.DataFrame):
        return _fill_partition(part, prompt, names), None
    return part.map_partitions(_fill_partition, prompt, names, meta=(None, "object")), None


def _fill_partition(part: pd.DataFrame, prompt: str, names: list[str]) -> pd.Series:
    filled = [_fill(prompt, names, row) for row in part.itertuples(index=False, name=None)]
    return pd.Series(filled, index=part.index, dtype=object)


class KoineAccessor:
    """``obj.koine``: the three verbs over a Series' values or a DataFrame's rows."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def _is_frame(self) -> bool:
        return getattr(self._obj, "ndim", 1) == 2  # a pandas or Dask DataFrame

    def extract(
        self, schema: type[BaseModel], prompt: str = DEFAULT_PROMPT, **options: Unpack[VerbOptions]
    ) -> Any:
        """:func:`koine_jupyter.extract` over this object's texts (see the module's docstring)."""
        if not isinstance(cast(object, prompt), str):
            raise invalid(f"prompt must be a string (got {type(prompt).__name__})")
        if not self._is_frame():
            return extract(self._obj, schema, prompt, **options)
        texts, rest = _rows(self._obj, prompt)
        return extract(texts, schema, DEFAULT_PROMPT if rest is None else rest, **options)

    def classify(
        self,
        labels: Sequence[str] | type[enum.Enum],
        prompt: str | None = None,
        *,
        reason: bool = False,
        **options: Unpack[VerbOptions],
    ) -> Any:
        """:func:`koine_jupyter.classify` over this object's texts."""
        if not self._is_frame():
            return classify(self._obj, labels, prompt, reason=reason, **options)
        if prompt is not None and not isinstance(cast(object, prompt), str):
            raise invalid(f"prompt must be a string (got {type(prompt).__name__})")
        texts, rest = _rows(self._obj, prompt)
        return classify(texts, labels, rest, reason=reason, **options)

    def generate(self, prompt: str, **options: Unpack[VerbOptions]) -> Any:
        """:func:`koine_jupyter.generate` over this object's texts."""
        if not self._is_frame():
            return generate(self._obj, prompt, **options)
        if not isinstance(cast(object, prompt), str):
            raise invalid(f"prompt must be a string (got {type(prompt).__name__})")
        texts, rest = _rows(self._obj, prompt)
        return generate(texts, _TEXT if rest is None else rest, **options)


def _register_pandas() -> None:
    for register in (
        pd.api.extensions.register_series_accessor,
        pd.api.extensions.register_dataframe_accessor,
    ):
        register("koine")(KoineAccessor)


_dask_done = False


def register_dask() -> None:
    """Register ``.koine`` on Dask Series and DataFrame (imports ``dask.dataframe``)."""
    global _dask_done
    if _dask_done:
        return
    import dask.dataframe.extensions

    ext: Any = dask.dataframe.extensions
    ext.register_series_accessor("koine")(KoineAccessor)
    ext.register_dataframe_accessor("koine")(KoineAccessor)
    _dask_done = True


_register_pandas()
if "dask.dataframe" in sys.modules:
    register_dask()
