"""Partial views of a schema: what ``stream_object(schema=Recipe)`` yields while JSON streams in.

While an object streams, the gateway sends ``partial-object`` events whose ``parsed`` value is a
best-effort parse of the JSON received so far: strings cut short, trailing fields missing, an
object just opened inside a list shown as ``{}``. Such data rarely satisfies the real schema, yet
every item of a partial stream should have *one* type. :func:`partial_type` derives that type —
``Recipe`` becomes ``PartialRecipe``, the same fields, each optional and ``None`` until it
arrives — and :class:`PartialParser` turns any ``parsed`` value into an instance of it, dropping
what does not fit yet instead of raising. Only the final object is validated against the real
schema (:meth:`PartialParser.validate_final`).
"""

from __future__ import annotations

import collections.abc
import threading
import types
from typing import (
    Annotated,
    Any,
    ForwardRef,
    Generic,
    Literal,
    Optional,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
)

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import core_schema

from .errors import KoineError

__all__ = ["PartialParser", "partial_type"]

T = TypeVar("T")

# Parts of a model's config that change how input is *read*; everything else (extra="forbid",
# frozen, strict, validators' settings...) is not carried over to the partial model.
_CONFIG_KEYS_KEPT: tuple[str, ...] = (
    "populate_by_name",
    "validate_by_name",
    "validate_by_alias",
    "loc_by_alias",
    "arbitrary_types_allowed",
    "use_enum_values",
    "coerce_numbers_to_str",
    "str_strip_whitespace",
    "str_to_lower",
    "str_to_upper",
    "ser_json_timedelta",
    "ser_json_bytes",
    "val_json_bytes",
    "serialize_by_alias",
    "regex_engine",
)

_MAX_PRUNE_ROUNDS = 8

_lock = threading.RLock()
_cache: dict[Any, Any] = {}
# Models whose partial is being built: model -> name of the forward reference to use for it.
_in_progress: dict[type[BaseModel], str] = {}
# Namespace in which forward references between partial models are resolved.
_forward_ns: dict[str, Any] = {}
# Partial models created with unresolved forward references, rebuilt when the outermost
# partial_type call finishes.
_to_rebuild: list[type[BaseModel]] = []

_UNION_ORIGINS: tuple[Any, ...] = (Union, types.UnionType)
_SEQUENCE_ORIGINS: frozenset[Any] = frozenset(
    {
        list,
        set,
        frozenset,
        collections.deque,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Set,
        collections.abc.MutableSet,
        collections.abc.Iterable,
        collections.abc.Collection,
    }
)
_MAPPING_ORIGINS: frozenset[Any] = frozenset(
    {
        dict,
        collections.OrderedDict,
        collections.defaultdict,
        collections.abc.Mapping,
        collections.abc.MutableMapping,
    }
)


def partial_type(tp: Any) -> Any:
    """The partial counterpart of a schema type (cached; thread-safe).

    * a pydantic model ``Recipe`` → a generated model ``PartialRecipe`` (same module, qualname
      prefix) whose every field is ``partial_type(field type) | None = None``, keeping aliases,
      titles and descriptions, ignoring unknown keys and requiring nothing;
    * ``list[X]``, ``set[X]``, ``Sequence[X]``... → the same container of ``partial_type(X)``;
      ``dict[K, V]`` → ``dict[K, partial_type(V)]``; ``tuple[X, ...]`` → ``tuple[PX, ...]``;
      a fixed ``tuple[A, B]`` → ``tuple[PA, PB] | tuple[PA] | tuple[()]`` (a growing prefix);
    * unions / ``Optional`` → the union of the partial members; ``Annotated[X, ...]`` around a
      container or model → ``partial_type(X)`` (constraints such as ``min_length`` would reject a
      growing value, so they are dropped; they are kept around leaf types);
    * leaf types (``str``, ``int``, ``float``, ``bool``, enums, ``Literal``, ``datetime``...)
      are returned unchanged.

    Self-referencing and mutually recursive models are supported.
    """
    with _lock:
        outermost = not _in_progress
        try:
            result, _ = _partial(tp)
        finally:
            if outermost:
                _in_progress.clear()
        if outermost and _to_rebuild:
            pending = list(_to_rebuild)
            _to_rebuild.clear()
            for model in pending:
                model.model_rebuild(force=True, _types_namespace=_forward_ns)
        return result


_MISSING: Any = object()


def _partial(tp: Any) -> tuple[Any, bool]:
    """``(partial type, whether it contains a forward-reference string)``.

    A type holding a forward reference (to a model whose partial is still being built) is not
    cached: only the models themselves are, and they are rebuilt once every reference resolves.
    """
    try:
        cached = _cache.get(tp, _MISSING)
    except TypeError:  # unhashable metadata somewhere inside: build without caching
        return _build(tp)
    if cached is not _MISSING:
        return cached, False
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        forward = _in_progress.get(tp)
        if forward is not None:
            return forward, True  # a recursive reference: resolved when the model is rebuilt
        result: Any = _partial_model(tp)
        _cache[tp] = result
        return result, False
    result, has_forward = _build(tp)
    if not has_forward:
        _cache[tp] = result
    return result, has_forward


def _build(tp: Any) -> tuple[Any, bool]:
    if isinstance(tp, type):
        return tp, False  # a leaf class: str, int, an enum, datetime, ... (models: see _partial)
    origin = get_origin(tp)
    if origin is None or origin is Literal:
        return tp, False  # Any, a TypeVar, a NewType, a Literal, ...
    args = get_args(tp)
    if origin is Annotated:
        inner, has_forward = _partial(args[0])
        return (tp, False) if inner is args[0] else (inner, has_forward)
    if origin in _UNION_ORIGINS:
        members, has_forward = _partial_all(args)
        if members == args:
            return tp, False
        return Union[members], has_forward  # noqa: UP007  (members may be forward refs)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item, has_forward = _partial(args[0])
            return tuple[item, ...], has_forward
        if not args or args == ((),):
            return tp, False
        members, has_forward = _partial_all(args)
        prefixes: list[Any] = [
            tuple.__class_getitem__(members[:n]) for n in range(len(members), 0, -1)
        ]
        prefixes.append(tuple[()])
        return Union[tuple(prefixes)], has_forward  # noqa: UP007
    if origin in _SEQUENCE_ORIGINS and len(args) == 1:
        item, has_forward = _partial(args[0])
        return (tp, False) if item is args[0] else (origin[item], has_forward)
    if origin in _MAPPING_ORIGINS and len(args) == 2:
        value, has_forward = _partial(args[1])
        return (tp, False) if value is args[1] else (origin[args[0], value], has_forward)
    return tp, False


def _partial_all(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    results = [_partial(a) for a in args]
    members = tuple(r for r, _ in results)
    if all(m is a for m, a in zip(members, args, strict=True)):
        members = args
    return members, any(f for _, f in results)


def _partial_model(model: type[BaseModel]) -> type[BaseModel]:
    forward = f"_KoinePartial{len(_forward_ns)}"
    _forward_ns[forward] = None  # reserve the name
    _in_progress[model] = forward
    try:
        fields: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            field_type: Any = Optional[_partial(info.annotation)[0]]  # noqa: UP045
            if _is_leaf(field_type):
                field_type = Annotated[field_type, _DropInvalid]
            fields[name] = (field_type, _partial_field(info))
    finally:
        del _in_progress[model]
    config = ConfigDict(extra="ignore", protected_namespaces=())
    for key in _CONFIG_KEYS_KEPT:
        if key in model.model_config:
            config[key] = model.model_config[key]
    if "title" in model.model_config:
        config["title"] = model.model_config["title"]
    name = f"Partial{model.__name__}"
    qualname = model.__qualname__
    prefix = qualname[: -len(model.__name__)] if qualname.endswith(model.__name__) else ""
    partial: type[BaseModel] = create_model(
        name,
        __config__=config,
        __doc__=(
            f"A partial view of :class:`{model.__qualname__}` while it streams in: the same "
            "fields, each ``None`` until it arrives (strings and lists may still be growing). "
            "Generated by :func:`koine_sdk._partial.partial_type`."
        ),
        __module__=model.__module__,
        __qualname__=prefix + name,
        **fields,
    )
    _forward_ns[forward] = partial
    if not partial.__pydantic_complete__:
        _to_rebuild.append(partial)
    return partial


def _is_leaf(tp: Any) -> bool:
    """True if no model or container hides in ``tp`` (their inner errors must be pruned where
    they happen, not turn the whole field into ``None``)."""
    if isinstance(tp, str | ForwardRef):
        return False
    if isinstance(tp, type):
        return not issubclass(tp, BaseModel) and not (
            issubclass(tp, list | tuple | set | frozenset | dict)
        )
    origin = get_origin(tp)
    if origin is None or origin is Literal:
        return True
    if origin is Annotated:
        return _is_leaf(get_args(tp)[0])
    if origin in _UNION_ORIGINS:
        return all(_is_leaf(a) for a in get_args(tp))
    return False


class _DropInvalid:
    """Marker on the leaf fields of a partial model: a value that fails the field's type (a cut enum
    string, a half-typed number...) becomes ``None`` instead of failing the whole object.

    This is pydantic-core's ``with_default`` schema with ``on_error="default"``: handled inside
    the Rust validator, so the common failure costs no second validation pass.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_default_schema(handler(source), default=None, on_error="default")


def _partial_field(info: FieldInfo) -> Any:
    return Field(
        default=None,
        alias=info.alias,
        validation_alias=info.validation_alias,
        serialization_alias=info.serialization_alias,
        title=info.title,
        description=info.description,
    )


# -- lenient parsing --------------------------------------------------------------------------

_REMOVE: Any = object()


class PartialParser(Generic[T]):
    """Turns the gateway's ``parsed`` values into instances of the partial type, and validates
    the final object against the real schema.

    ``schema`` is a pydantic model, any type pydantic can validate (``list[Recipe]``...), or a
    JSON Schema given as a ``dict`` (then partials and the final object are plain JSON values).
    """

    partial_type: Any

    def __init__(self, schema: type[T] | Any) -> None:
        self.schema: Any = schema
        self._json_schema: dict[str, Any] | None = None
        self._raw_schema: dict[str, Any] | None = None
        if isinstance(schema, collections.abc.Mapping):
            self._raw_schema = dict(cast("collections.abc.Mapping[str, Any]", schema))
            self.partial_type = Any
            self._adapter: TypeAdapter[Any] | None = None
            self._partial_adapter: TypeAdapter[Any] | None = None
            self._empty: Any = None
            return
        self.partial_type = partial_type(schema)
        self._adapter = _adapter(schema)
        self._partial_adapter = _adapter(self.partial_type)
        self._empty = _empty_value(self.partial_type)

    def parse(self, data: Any) -> Any:
        """A partial instance for ``data`` (a JSON value); never raises.

        Values that do not fit yet are dropped: a field whose value fails its type becomes
        ``None``; a failing item is removed if it is the last (still growing) item of its list,
        otherwise the whole list is dropped. If nothing fits, the empty partial is returned (a
        partial model with every field ``None``, or an empty list / dict).
        """
        adapter = self._partial_adapter
        if adapter is None:
            return data
        for _ in range(_MAX_PRUNE_ROUNDS):
            try:
                return adapter.validate_python(data)
            except ValidationError as exc:
                try:
                    locs = [err["loc"] for err in exc.errors(include_url=False)]
                except Exception:
                    break
                data = _prune(data, locs)
                if data is _REMOVE:
                    break
            except Exception:
                break
        return self._fresh_empty()

    def validate_final(self, data: Any, raw_text: str) -> T:
        """Validate the final object against the real schema.

        Raises:
            KoineError: code ``VALIDATION_ERROR``, with ``raw_text``, listing pydantic's errors.
        """
        if self._adapter is None:
            return cast("T", data)
        try:
            return cast("T", self._adapter.validate_python(data))
        except ValidationError as exc:
            schema = self.schema
            name = schema.__name__ if isinstance(schema, type) else repr(schema)
            problems = "; ".join(
                f"{_format_loc(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
            )
            count = exc.error_count()
            raise KoineError(
                f"The object does not match {name} ({count} error{'s' if count != 1 else ''}): "
                f"{problems}",
                "VALIDATION_ERROR",
                raw_text=raw_text,
            ) from exc

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema to send to the gateway."""
        if self._raw_schema is not None:
            return dict(self._raw_schema)
        assert self._adapter is not None
        if self._json_schema is None:
            self._json_schema = self._adapter.json_schema()
        return self._json_schema  # shared: callers must not mutate it

    def _fresh_empty(self) -> Any:
        empty = self._empty
        if isinstance(empty, BaseModel):
            return empty.model_copy()
        if isinstance(empty, list):
            return []
        if isinstance(empty, dict):
            return {}
        return empty


_adapter_cache: dict[Any, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    try:
        cached = _adapter_cache.get(tp)
    except TypeError:
        return TypeAdapter(tp)
    if cached is None:
        cached = TypeAdapter(tp)
        with _lock:
            _adapter_cache[tp] = cached
    return cached


def _empty_value(tp: Any) -> Any:
    """The value shown when nothing of the data fits the partial type."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp()
    origin = get_origin(tp)
    if origin in (list, collections.abc.Sequence, collections.abc.MutableSequence):
        return []
    if origin in _MAPPING_ORIGINS:
        return {}
    try:  # a type whose empty value validates: set(), tuple(), ...
        adapter: TypeAdapter[Any] = _adapter(tp)
        return adapter.validate_python([])
    except Exception:
        return None


def _format_loc(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "(root)"
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _prune(data: Any, locs: list[tuple[int | str, ...]]) -> Any:
    """``data`` without the values the error locations point at (copy-on-write: the input is
    never mutated). Returns ``_REMOVE`` when the root itself must go, or when nothing could be
    removed (so the caller stops retrying)."""
    trie: dict[Any, Any] = {}
    for loc in locs:
        path = _resolve(data, loc)
        if not path:
            return _REMOVE
        node: dict[Any, Any] = trie
        for key in path[:-1]:
            child: Any = node.get(key)
            if child is _REMOVE:
                break
            if child is None:
                child = node[key] = {}
            node = child
        else:
            node[path[-1]] = _REMOVE
    if not trie:
        return _REMOVE
    return _apply(data, trie)


def _resolve(data: Any, loc: tuple[int | str, ...]) -> list[Any]:
    """The concrete path (keys / indexes into ``data``) of the value to remove for one error.

    Location parts that are not keys of the data (union member tags such as ``int`` or
    ``PartialIngredient``, ``[key]`` markers) are skipped. A failing list item is removed only if
    it is the list's last item; otherwise the list itself is removed.
    """
    path: list[Any] = []
    parent_sizes: list[int | None] = []  # the length of each list on the path; None for dicts
    node: Any = data
    for part in loc:
        if isinstance(node, dict):
            as_dict = cast("dict[Any, Any]", node)
            if part in as_dict:
                parent_sizes.append(None)
                path.append(part)
                node = as_dict[part]
        elif isinstance(node, list) and isinstance(part, int):
            as_list = cast("list[Any]", node)
            if 0 <= part < len(as_list):
                parent_sizes.append(len(as_list))
                path.append(part)
                node = as_list[part]
    while path and (size := parent_sizes[-1]) is not None and path[-1] != size - 1:
        path.pop()
        parent_sizes.pop()
    return path


def _apply(node: Any, trie: dict[Any, Any]) -> Any:
    if isinstance(node, dict):
        new_dict = dict(cast("dict[Any, Any]", node))
        for key, sub in trie.items():
            if sub is _REMOVE:
                new_dict.pop(key, None)
            else:
                new_dict[key] = _apply(new_dict[key], sub)
        return new_dict
    if isinstance(node, list):
        new_list = list(cast("list[Any]", node))
        doomed: list[int] = []
        for key, sub in trie.items():
            if sub is _REMOVE:
                doomed.append(key)
            else:
                new_list[key] = _apply(new_list[key], sub)
        for key in sorted(doomed, reverse=True):
            del new_list[key]
        return new_list
    return node


_parser_cache: dict[Any, PartialParser[Any]] = {}


def parser_for(schema: Any) -> PartialParser[Any]:
    """A cached :class:`PartialParser` for ``schema`` (building one costs a JSON Schema)."""
    try:
        cached = _parser_cache.get(schema)
    except TypeError:  # unhashable (a dict schema)
        return PartialParser(schema)
    if cached is None:
        cached = PartialParser(schema)
        with _lock:
            _parser_cache[schema] = cached
    return cached
