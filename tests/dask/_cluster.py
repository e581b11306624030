"""A real Dask cluster for the Dask tests: a ``LocalCluster`` of 2 worker processes (Dask's
default start method, spawn, unless told) on loopback; and helpers about the gateways.

Leases of workers that die come back after 5 s here (30 s by default), so the test that kills a
worker does not wait half a minute; a worker's event loop refreshes its leases every second.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dask
from distributed import Client, LocalCluster

from koine_sdk import KoineConfig
from koine_sdk.testing import LocalGateway

LIMIT = 2  # each gateway's limit
DELAY = 0.03  # seconds each request takes
LEASES = {
    "distributed.scheduler.locks.lease-timeout": "5s",
    "distributed.scheduler.locks.lease-validation-interval": "500ms",
}


def start_cluster(ledger: Path, *, set_as_default: bool = True) -> tuple[LocalCluster, Client]:
    """The cluster and a client of it (the default client unless told). The workers' default
    ledger (``KOINE_LEDGER``) is ``ledger``: never the user's, nor the one the rest of the test
    run (and the notebooks) share."""
    with dask.config.set(LEASES):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # its HTTP server on a free port, never 8787
            silence_logs=logging.ERROR,
            env={"KOINE_LEDGER": str(ledger)},
        )
        return cluster, Client(cluster, set_as_default=set_as_default)


def configs_of(gateways: list[LocalGateway]) -> list[KoineConfig]:
    return [KoineConfig(base_url=g.base_url, auth_key=g.auth_key) for g in gateways]


def object_requests(gateways: list[LocalGateway]) -> int:
    return sum(1 for g in gateways for r in g.requests if r.path == "/generate-object")
