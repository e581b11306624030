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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._config import KoineConfig
    from ._loop import LoopThread
    from ._objects import json_schema
    from ._replay import REPLAY_MODES, ReplayMode, replay_mode
    from ._request import (
        Endpoint,
        KoineRequest,
    )
    from ._response_limits import ResponseLimits
    from ._streams import StreamWarning
    from .client import (
        KoineClient,
        StreamObjectResult,
        StreamTextResult,
        create_koine,
    )
    from .errors import (
        ErrorCode,
        KoineAuthError,
        KoineConnectionError,
        KoineError,
        KoineRateLimitError,
        KoineResponseError,
        KoineTimeoutError,
        KoineValidationError,
    )
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

# Each public name and the module that holds it, imported on first use: `import koine_sdk`
# costs next to nothing (a command's --help, a script that needs one call), and
# `from koine_sdk import X` imports what X needs.
_WHERE: dict[str, str] = {
    "ConcurrencySlots": ".types",
    "Endpoint": "._request",
    "ErrorCode": ".errors",
    "GatewayConcurrency": ".types",
    "GenerateObjectResult": ".types",
    "GenerateTextResult": ".types",
    "HealthStatus": ".types",
    "KoineAuthError": ".errors",
    "KoineClient": ".client",
    "KoineConfig": "._config",
    "KoineConnectionError": ".errors",
    "KoineError": ".errors",
    "KoineRateLimitError": ".errors",
    "KoineRequest": "._request",
    "KoineResponseError": ".errors",
    "KoineTimeoutError": ".errors",
    "KoineUsage": ".types",
    "KoineValidationError": ".errors",
    "LoopThread": "._loop",
    "REPLAY_MODES": "._replay",
    "ReplayMode": "._replay",
    "ResponseLimits": "._response_limits",
    "StreamObjectResult": ".client",
    "StreamTextResult": ".client",
    "StreamWarning": "._streams",
    "SyncKoineClient": ".sync",
    "SyncStreamObjectResult": ".sync",
    "SyncStreamTextResult": ".sync",
    "create_koine": ".client",
    "create_koine_sync": ".sync",
    "json_schema": "._objects",
    "replay_mode": "._replay",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "REPLAY_MODES",
    "ConcurrencySlots",
    "Endpoint",
    "ErrorCode",
    "GatewayConcurrency",
    "GenerateObjectResult",
    "GenerateTextResult",
    "HealthStatus",
    "KoineAuthError",
    "KoineClient",
    "KoineConfig",
    "KoineConnectionError",
    "KoineError",
    "KoineRateLimitError",
    "KoineRequest",
    "KoineResponseError",
    "KoineTimeoutError",
    "KoineUsage",
    "KoineValidationError",
    "LoopThread",
    "ReplayMode",
    "ResponseLimits",
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
    "replay_mode",
]
