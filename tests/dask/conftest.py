"""Fixtures of the Dask tests: one real ``LocalCluster`` for the folder (see ``_cluster.py``),
and two local gateways per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from koine_sdk.testing import LocalGateway

pytest.importorskip("distributed", reason="the dask extra is not installed")

from _cluster import DELAY, LIMIT, start_cluster
from distributed import Client


@pytest.fixture(scope="session")
def dask_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A client of the folder's cluster (the default client while it lives)."""
    cluster, client = start_cluster(tmp_path_factory.mktemp("dask") / "workers.sqlite3")
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def gateways(koine_gateway_factory: Callable[..., LocalGateway]) -> list[LocalGateway]:
    """Two gateway replicas, limit 2 each, every request taking 30 ms."""
    return [koine_gateway_factory(max_nonstreaming=LIMIT, first_byte_delay=DELAY) for _ in "ab"]
