"""Shared by the examples: use a real gateway when KOINE_BASE_URL/KOINE_AUTH_KEY are set, else
start the local gateway (``pip install "koine-sdk[testing]"``) for the duration of the example."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator

from koine_sdk import KoineConfig


@contextlib.contextmanager
def gateway_config() -> Generator[KoineConfig]:
    if os.environ.get("KOINE_BASE_URL"):
        yield KoineConfig.from_env()
        return
    from koine_sdk.testing import LocalGateway

    with LocalGateway() as gateway:
        print(f"(no KOINE_BASE_URL set: using the local gateway at {gateway.base_url})\n")
        yield KoineConfig(base_url=gateway.base_url, auth_key=gateway.auth_key)
