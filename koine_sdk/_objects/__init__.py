"""Object streaming: the partial views ``stream_object`` yields while an object's JSON arrives.

- ``_schema_views``: a schema's partial view (every field optional) and :class:`PartialParser`,
  which turns any best-effort ``parsed`` value into an instance of it, and validates the final
  object against the real schema; ``json_schema`` (what is sent as the schema);
- ``_builder``: :class:`PartialBuilder`, which builds each next partial in O(new data) by
  reusing the unchanged parts of the previous one;
- ``_pruning``: validation that drops what does not fit yet instead of raising;
- ``_cache``: the bounded caches of derived partial types.

No I/O: the async and sync clients and the notebook views share it.
"""

from __future__ import annotations

from ._builder import PartialBuilder
from ._pruning import format_loc
from ._schema_views import (
    CACHE_SIZE,
    PartialParser,
    json_schema,
    parser_for,
    partial_type,
)

__all__ = [
    "CACHE_SIZE",
    "PartialBuilder",
    "PartialParser",
    "format_loc",
    "json_schema",
    "parser_for",
    "partial_type",
]
