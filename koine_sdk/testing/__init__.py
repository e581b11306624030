"""A local Koine gateway for tests and offline work: ``koine_sdk.testing``.

This is a **test/offline gateway, not a production one**: it speaks the real gateway's wire
protocol (endpoints, status codes, error bodies, SSE framing, concurrency limits, the two
session ids) over real HTTP, but a deterministic echo "model" stands in for the Claude CLI.
Use it as the SDK's offline default, in tests (the pytest fixtures ``koine_gateway`` and
``koine_gateway_factory`` are registered automatically), in notebooks and in benchmarks.

    from koine_sdk.testing import LocalGateway, Fault

    with LocalGateway() as gw:
        gw.inject(Fault.drop(after=2))
        ...  # point a client at gw.base_url with gw.auth_key

Prompts may carry ``[[directives]]`` (``[[chunks=3]]``, ``[[fail-after=2]]``, ...): see
:data:`DIRECTIVES`. Needs the ``testing`` extra (starlette, uvicorn, jiter).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._directives import DIRECTIVES
    from ._examples import example_for_schema
    from ._faults import Fault, FaultKind, Reply
    from ._jsontext import partial_parse
    from ._server import LocalGateway
    from ._settings import GatewaySettings, settings_from_env
    from ._state import RecordedRequest

# Imported on first use: the pytest plugin (registered for every pytest run where koine-sdk is
# installed) imports this package, and must not need the ``testing`` extra until a fixture is used.
_WHERE = {
    "DIRECTIVES": "._directives",
    "example_for_schema": "._examples",
    "Fault": "._faults",
    "FaultKind": "._faults",
    "Reply": "._faults",
    "partial_parse": "._jsontext",
    "LocalGateway": "._server",
    "GatewaySettings": "._settings",
    "settings_from_env": "._settings",
    "RecordedRequest": "._state",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DIRECTIVES",
    "Fault",
    "FaultKind",
    "GatewaySettings",
    "LocalGateway",
    "RecordedRequest",
    "Reply",
    "example_for_schema",
    "partial_parse",
    "settings_from_env",
]
