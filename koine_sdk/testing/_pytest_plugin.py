"""pytest fixtures for the local gateway (registered through the ``pytest11`` entry point).

- ``koine_gateway_server`` (session): one :class:`LocalGateway`, started once per test session.
- ``koine_gateway``: that server after ``reset()`` (default settings, empty queues, no records).
- ``koine_gateway_factory``: ``factory(**settings)`` starts a separate gateway (e.g.
  ``max_streaming=1``); every gateway it started is stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the server (and the ``testing`` extra) is imported when a fixture is used
    from ._server import LocalGateway

__all__ = ["koine_gateway", "koine_gateway_factory", "koine_gateway_server"]


@pytest.fixture(scope="session")
def koine_gateway_server() -> Iterator[LocalGateway]:
    """A local gateway shared by the whole test session."""
    from ._server import LocalGateway

    with LocalGateway() as gateway:
        yield gateway


@pytest.fixture
def koine_gateway(koine_gateway_server: LocalGateway) -> LocalGateway:
    """The shared local gateway, reset to its default settings with nothing queued or recorded
    (and restarted if a test crashed it)."""
    if not koine_gateway_server.running or koine_gateway_server.crashed:
        koine_gateway_server.restart()
    koine_gateway_server.reset()
    return koine_gateway_server


@pytest.fixture
def koine_gateway_factory() -> Iterator[Callable[..., LocalGateway]]:
    """Start separate gateways with custom settings; all are stopped after the test."""
    from ._server import LocalGateway

    started: list[LocalGateway] = []

    def factory(**settings: Any) -> LocalGateway:
        gateway = LocalGateway(**settings).start()
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        gateway.stop()
