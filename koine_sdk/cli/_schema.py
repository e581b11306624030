"""``--schema module:Class`` (a pydantic model importable from the current folder) or
``--schema file.json`` (a JSON schema of an object, turned into a pydantic model)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, create_model

from ._common import UsageError

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
}


def load_schema(spec: str) -> type[BaseModel]:
    """The model ``spec`` names; a ``UsageError`` (one line) when it cannot be used."""
    if spec.endswith(".json"):
        return _from_json_file(Path(spec))
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--schema {spec!r}: expected module:Class or a .json file")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current folder, as `python -m` does
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--schema {spec!r}: cannot import {module_name!r}: {exc}") from None
    model = getattr(module, attr, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise UsageError(f"--schema {spec!r}: {attr!r} is not a pydantic model in {module_name}")
    return model


def _from_json_file(path: Path) -> type[BaseModel]:
    try:
        schema: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--schema {path}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"--schema {path}: not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise UsageError(f"--schema {path}: expected an object schema with 'properties'")
    doc = cast(dict[str, Any], schema)
    properties = cast(dict[str, Any], doc.get("properties") or {})
    if not isinstance(properties, dict) or not properties:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise UsageError(f"--schema {path}: expected an object schema with 'properties'")
    required = {str(n) for n in cast(list[Any], doc.get("required", list(properties)))}
    fields: dict[str, Any] = {}
    for name, prop in properties.items():
        kind: Any = (
            cast(dict[str, Any], prop).get("type", "string") if isinstance(prop, dict) else "string"
        )
        if not isinstance(kind, str) or kind not in _TYPES:
            raise UsageError(f"--schema {path}: field {name!r} has an unsupported type {kind!r}")
        py: Any = _TYPES[kind]
        fields[name] = (py, ...) if name in required else (py | None, None)
    title = str(doc.get("title") or path.stem.title().replace("_", "").replace("-", ""))
    return create_model(str(title), **fields)
