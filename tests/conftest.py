"""Shared fixtures. The local gateway fixtures (``koine_gateway``, ...) come from the
``koine_sdk.testing`` pytest plugin, registered by the package's entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from koine_sdk import KoineClient, SyncKoineClient, create_koine, create_koine_sync


@pytest.fixture(autouse=True)
def _own_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test records to a ledger of its own (never the user's, never another test's)."""
    monkeypatch.setenv("KOINE_LEDGER", str(tmp_path / "ledger.sqlite3"))


@pytest.fixture
async def koine(koine_gateway: Any) -> AsyncIterator[KoineClient]:
    client = create_koine(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    yield client
    await client.aclose()


@pytest.fixture
def koine_sync(koine_gateway: Any) -> Iterator[SyncKoineClient]:
    client = create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    yield client
    client.close()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """A plain httpx client, for tests that speak to the local gateway directly."""
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def gw(koine_gateway: Any) -> Any:
    """The shared local gateway (reset before each test)."""
    return koine_gateway
