"""koine_sdk: Python SDK for the Koine gateway (Claude Code CLI over HTTP).

Async::

    from koine_sdk import create_koine
    async with create_koine(base_url="http://localhost:3100", auth_key="...") as koine:
        result = await koine.generate_text(prompt="Hello")

Sync (scripts, notebooks, threads)::

    from koine_sdk import create_koine_sync
    with create_koine_sync() as koine:          # KOINE_BASE_URL / KOINE_AUTH_KEY
        print(koine.generate_text(prompt="Hello").text)
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._config import KoineConfig
    from ._loop import LoopThread
    from ._partial import json_schema
    from ._replay import ReplayMode
    from ._streams import StreamWarning
    from .client import KoineClient, StreamObjectResult, StreamTextResult, create_koine
    from .errors import ErrorCode, KoineError
    from .sync import (
        SyncKoineClient,
        SyncStreamObjectResult,
        SyncStreamTextResult,
        create_koine_sync,
    )
    from .types import (
        ConcurrencySlots,
        GatewayConcurrency,
        GenerateObjectResult,
        GenerateTextResult,
        HealthStatus,
        KoineUsage,
    )

_LAZY: dict[str, str] = {
    "KoineConfig": "._config",
    "LoopThread": "._loop",
    "json_schema": "._partial",
    "ReplayMode": "._replay",
    "StreamWarning": "._streams",
    "KoineClient": ".client",
    "StreamObjectResult": ".client",
    "StreamTextResult": ".client",
    "create_koine": ".client",
    "ErrorCode": ".errors",
    "KoineError": ".errors",
    "SyncKoineClient": ".sync",
    "SyncStreamObjectResult": ".sync",
    "SyncStreamTextResult": ".sync",
    "create_koine_sync": ".sync",
    "ConcurrencySlots": ".types",
    "GatewayConcurrency": ".types",
    "GenerateObjectResult": ".types",
    "GenerateTextResult": ".types",
    "HealthStatus": ".types",
    "KoineUsage": ".types",
}
"""Where each public name lives: imported on first use, so ``import koine_sdk`` (and the
``koine`` command's start) does not pay for httpx, pydantic and asyncio before a call needs them."""

__all__ = [
    "ConcurrencySlots",
    "ErrorCode",
    "GatewayConcurrency",
    "GenerateObjectResult",
    "GenerateTextResult",
    "HealthStatus",
    "KoineClient",
    "KoineConfig",
    "KoineError",
    "KoineUsage",
    "LoopThread",
    "ReplayMode",
    "StreamObjectResult",
    "StreamTextResult",
    "StreamWarning",
    "SyncKoineClient",
    "SyncStreamObjectResult",
    "SyncStreamTextResult",
    "__version__",
    "create_koine",
    "create_koine_sync",
    "json_schema",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
