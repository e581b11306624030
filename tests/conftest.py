"""Shared fixtures. The local gateway fixtures (``koine_gateway``, ...) come from the
``koine_sdk.testing`` pytest plugin, registered by the package's entry point."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from koine_sdk import KoineClient, SyncKoineClient, create_koine, create_koine_sync

_WATCHED = ("CLAUDE_CODE_GATEWAY_API_KEY",)
"""Watched besides every ``KOINE_*`` variable."""


def _watched_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("KOINE_") or k in _WATCHED}


def _shown(name: str, value: str | None) -> str:
    if value is None:
        return "unset"
    if "KEY" in name or "SECRET" in name or "TOKEN" in name:
        return "set (value not shown)"  # a secret: never in a report
    return repr(value)


def environment_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What changed between two snapshots, one line per variable (secrets' values hidden)."""
    return [
        f"{name}: {_shown(name, before.get(name))} -> {_shown(name, after.get(name))}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


@pytest.fixture(autouse=True)
def _environment_kept() -> Iterator[None]:
    """Fail a test that leaves a ``KOINE_*`` variable (or the local gateway's key variable)
    changed once its fixtures are torn down: a leaked ``KOINE_REPLAY`` or ``KOINE_LEDGER``
    silently changes what every later test does. Set it with ``monkeypatch.setenv`` (or
    set-then-``monkeypatch.delenv`` when code under test sets it) so it is restored.

    The first function-scoped fixture of every test (autouse fixtures of this file come first,
    by name; nothing here requests another), so it is set up before, and torn down after, every
    other fixture of the test (monkeypatch's undo included)."""
    before = _watched_environment()
    yield
    changed = environment_changes(before, _watched_environment())
    if changed:
        pytest.fail("the test left environment variables changed: " + "; ".join(changed))


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
