"""Schema → columns, and rows → a DataFrame whose dtypes follow the schema only.

Every column's dtype is decided by the schema, never by the data: ``int`` → ``Int64``,
``float`` → ``Float64``, ``bool`` → ``boolean``, ``str`` (and ``Literal`` of strings) →
``string``; anything else (lists, enums, dates, nested models without fields) stays ``object``.
The same schema gives the same dtypes for any rows, all failed or none at all.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from koine_sdk import KoineError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESERVED", "Column", "flatten", "frame", "schema_columns", "unwrap"]

RESERVED = ("error", "input_tokens", "output_tokens", "attempts", "answer_from")
"""The result's own columns, after the schema's."""

Kind = Literal["int", "float", "bool", "str", "object", "category"]
_DTYPES: dict[Kind, str] = {
    "int": "Int64",
    "float": "Float64",
    "bool": "boolean",
    "str": "string",
    "object": "object",
    "category": "category",
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    path: tuple[str, ...]
    kind: Kind
    categories: tuple[str, ...] = ()
    """For ``kind == "category"``: the categories, in order (a pandas ``Categorical``)."""


def unwrap(tp: Any) -> Any:
    """``Optional[X]`` / ``Annotated[X, ...]`` → X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin is Union or origin is types.UnionType:
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def kind_of(tp: Any) -> Kind:
    if get_origin(tp) is Literal:
        values = get_args(tp)
        if values and all(isinstance(v, str) for v in values):
            return "str"
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "int"
        return "object"
    if not isinstance(tp, type) or issubclass(tp, enum.Enum):
        return "object"
    if issubclass(tp, bool):
        return "bool"
    if issubclass(tp, int):
        return "int"
    if issubclass(tp, float):
        return "float"
    if issubclass(tp, str):
        return "str"
    return "object"


def columns_of(
    model: type[BaseModel], prefix: tuple[str, ...] = (), seen: tuple[type, ...] = ()
) -> list[Column]:
    """One column per field; nested models flattened to dotted names (``address.city``)."""
    out: list[Column] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        inner = unwrap(info.annotation)
        if (
            isinstance(inner, type)
            and issubclass(inner, BaseModel)
            and inner not in seen
            and inner.model_fields
        ):
            out.extend(columns_of(inner, path, (*seen, model)))
        else:
            out.append(Column(".".join(path), path, kind_of(inner)))
    return out


def flatten(obj: Any, columns: Sequence[Column]) -> tuple[Any, ...]:
    """The values of ``obj`` (a validated model) in column order (``None`` where missing)."""
    values: list[Any] = []
    for col in columns:
        value: Any = obj
        for part in col.path:
            if value is None:
                break
            value = getattr(value, part, None)
        values.append(value)
    return tuple(values)


def schema_columns(schema: Any) -> tuple[list[Column], str]:
    """The columns of ``schema`` and its JSON Schema as canonical JSON; ``INVALID_ARGUMENT``
    for anything but a pydantic model class with fields whose names the result does not use."""
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise KoineError(
            f"schema must be a pydantic model class (got {schema!r}); e.g. "
            "class Person(BaseModel): name: str",
            "INVALID_ARGUMENT",
        )
    model: type[BaseModel] = schema
    columns = columns_of(model)
    if not columns:
        raise KoineError(
            f"schema {model.__name__} has no fields: there is nothing to extract",
            "INVALID_ARGUMENT",
        )
    clash = sorted({c.name for c in columns} & set(RESERVED))
    if clash:
        raise KoineError(
            f"schema {model.__name__} has field(s) {clash} whose names the result reserves for "
            f"its own columns {list(RESERVED)}; rename them (e.g. with a pydantic alias)",
            "INVALID_ARGUMENT",
        )
    schema_json = json.dumps(model.model_json_schema(), sort_keys=True, separators=(",", ":"))
    return columns, schema_json


def series(values: list[Any], kind: Kind, index: Any, categories: Sequence[str] = ()) -> Any:
    import pandas as pd

    if kind == "category":
        return pd.Series(values, index=index, dtype=pd.CategoricalDtype(list(categories)))
    return pd.Series(values, index=index, dtype=_DTYPES[kind])


@dataclass(slots=True)
class RowValues:
    """What one row of the result holds besides the schema's values."""

    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempts: int | None = None
    answer_from: str | None = None


def frame(
    columns: Sequence[Column],
    values: Sequence[tuple[Any, ...] | None],
    extras: Sequence[RowValues],
    index: Any,
) -> pd.DataFrame:
    """The result frame: the schema's columns, then :data:`RESERVED`."""
    import pandas as pd

    data: dict[str, Any] = {}
    blank: tuple[Any, ...] = (None,) * len(columns)
    rows = [v if v is not None else blank for v in values]
    for i, col in enumerate(columns):
        data[col.name] = series([r[i] for r in rows], col.kind, index, col.categories)
    data["error"] = series([e.error for e in extras], "str", index)
    data["input_tokens"] = series([e.input_tokens for e in extras], "int", index)
    data["output_tokens"] = series([e.output_tokens for e in extras], "int", index)
    data["attempts"] = series([e.attempts for e in extras], "int", index)
    data["answer_from"] = series([e.answer_from for e in extras], "str", index)
    return pd.DataFrame(data, index=index)
