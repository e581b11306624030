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

from ._config import KoineConfig
from ._loop import LoopThread
from ._objects import json_schema
from ._replay import ReplayMode
from ._request import Endpoint, KoineRequest
from ._response_limits import ResponseLimits
from ._streams import StreamWarning
from ._version import __version__
from .client import KoineClient, StreamObjectResult, StreamTextResult, create_koine
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

__all__ = [
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
]
