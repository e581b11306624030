"""The Parquet (Arrow) schema of a Dask ``extract`` result, for ``.to_parquet(schema=...)``.

Dask infers a Parquet schema from the frame's meta, which cannot tell what an ``object`` column
holds (lists, dates...): writing such a result needs the schema given. Here it comes from the
pydantic model: ``list[str]`` → ``list<string>``, ``date`` → ``date32``, ``dict[str, int]`` →
``map<string, int64>``...; the other columns (nullable pandas dtypes) and the index are typed
as Dask would. Values Parquet cannot hold as they are (pydantic models in a list, plain enums)
get a clear error naming the columns.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from ._columns import Column, schema_columns, unwrap
from ._dask import known_group, schema_of
from ._prepare import invalid
from ._totals import group_of

__all__ = ["parquet_schema"]

NULL_INDEX = "__null_dask_index__"  # the column Dask writes an unnamed index to
_LISTS = (list, tuple, set, frozenset, Sequence)


def _annotation(model: type[BaseModel], column: Column) -> Any:
    tp: Any = model
    for part in column.path:
        tp = unwrap(tp.model_fields[part].annotation)
    return tp


def _pyarrow() -> Any:
    return importlib.import_module("pyarrow")  # untyped: used as Any


def arrow_type(tp: Any) -> Any:
    """The ``pyarrow.DataType`` of values of type ``tp`` as the result holds them; ``None``
    when Parquet cannot hold them as they are."""
    pa = _pyarrow()
    tp = unwrap(tp)
    origin = get_origin(tp)
    if origin is Literal:
        kinds: set[type] = {type(v) for v in get_args(tp)}
        if len(kinds) != 1:
            return None
        return {str: pa.string(), int: pa.int64(), bool: pa.bool_()}.get(kinds.pop())
    if origin in _LISTS:
        args = get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return None  # a fixed tuple of mixed items
        item = arrow_type(args[0]) if args else None
        return pa.list_(item) if item is not None else None
    if origin in (dict, Mapping):
        args = get_args(tp)
        if len(args) != 2 or unwrap(args[0]) is not str:
            return None
        value = arrow_type(args[1])
        return pa.map_(pa.string(), value) if value is not None else None
    if not isinstance(tp, type):
        return None
    if issubclass(tp, enum.Enum) and not issubclass(tp, str | int):
        return None  # a plain Enum member is no value Parquet knows
    scalars: list[tuple[type, Any]] = [
        (bool, pa.bool_()),
        (int, pa.int64()),
        (float, pa.float64()),
        (str, pa.string()),
        (bytes, pa.binary()),
        (dt.datetime, pa.timestamp("us")),
        (dt.date, pa.date32()),
        (dt.time, pa.time64("us")),
        (dt.timedelta, pa.duration("us")),
        (decimal.Decimal, pa.string()),
    ]
    for kind, arrow in scalars:
        if issubclass(tp, kind):
            return arrow
    return None


def parquet_schema(result: Any) -> Any:
    """The Parquet schema (a ``pyarrow.Schema``) of ``result``, what ``extract`` returned for
    Dask input, to write it with ``result.to_parquet(path, schema=parquet_schema(result))``.

    Needed only when the schema has fields whose column is ``object`` (lists, dates, ...):
    Dask cannot infer those. Raises ``INVALID_ARGUMENT`` for columns whose values Parquet cannot
    hold as they are (pydantic models inside lists, plain enums): convert or drop them first."""
    import pandas as pd

    pa = _pyarrow()
    meta_nonempty: Any = importlib.import_module("dask.dataframe.utils").meta_nonempty

    found = group_of(result)
    model = schema_of(found[0]) if found is not None else None
    if found is None or not known_group(found[0]):
        raise invalid(
            "parquet_schema() takes the lazy frame that extract() returned for Dask input, in "
            "the process that called extract()"
        )
    meta: Any = result._meta
    objects = (
        [c for c in schema_columns(model)[0] if c.kind == "object" and c.name in meta]
        if model is not None
        else []
    )
    types: dict[str, Any] = {
        c.name: arrow_type(_annotation(model, c)) for c in objects if model is not None
    }
    bad = sorted(name for name, tp in types.items() if tp is None)
    if bad:
        raise invalid(
            f"columns {bad} hold Python objects Parquet cannot store as they are; convert them "
            "(e.g. to JSON text with .map(json.dumps, meta=(name, 'string'))) or drop them first"
        )
    sample: Any = meta_nonempty(meta)
    for name in types:
        sample[name] = None
    index: Any = sample.index
    sample.index = pd.Index(list(index), dtype=index.dtype, name=index.name or NULL_INDEX)
    schema: Any = pa.Schema.from_pandas(sample, preserve_index=True).remove_metadata()
    for name, tp in types.items():
        schema = schema.set(schema.get_field_index(name), pa.field(name, tp))
    return schema
