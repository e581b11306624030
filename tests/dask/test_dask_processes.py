"""Dask stays optional, and the extraction works in worker processes however they start.

- Importing ``koine_jupyter`` (and extracting pandas input) never imports Dask: checked in a
  fresh interpreter.
- Workers forked from a process whose extraction loop already ran (``multiprocessing-method:
  fork``) start their own loop and clients; the folder's cluster covers Dask's default, spawn.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import dask
import dask.dataframe as dd
import pandas as pd
from _cluster import LIMIT, configs_of, object_requests, start_cluster
from pydantic import BaseModel

from koine_jupyter.extraction import extract
from koine_sdk.testing import LocalGateway


class Place(BaseModel):
    city: str
    zip: int


_MARKS: list[str] = []  # set in this process before a cluster forks it: a fork's workers see it


def _forked() -> bool:
    return bool(_MARKS)


def test_importing_koine_jupyter_or_extracting_pandas_never_imports_dask(
    koine_gateway: LocalGateway, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import koine_jupyter
        from koine_jupyter import extract
        from koine_jupyter.extraction import parquet_schema, totals
        import pandas as pd
        from pydantic import BaseModel
        from koine_sdk import KoineConfig

        class Place(BaseModel):
            city: str

        config = KoineConfig(
            base_url={koine_gateway.base_url!r}, auth_key={koine_gateway.auth_key!r}
        )
        df = extract(pd.Series(["a", "b"]), Place, client=config, progress=False)
        assert df["error"].isna().all(), df
        assert totals(df)["requests"] == 2
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded
        print("no dask")
        """
    )
    env = {**os.environ, "KOINE_LEDGER": str(tmp_path / "ledger.sqlite3")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "no dask"


def test_workers_forked_after_the_parent_extracted_run_their_own_loop(
    koine_gateway_factory: Callable[..., LocalGateway], tmp_path: Path
) -> None:
    gateways = [koine_gateway_factory(max_nonstreaming=LIMIT) for _ in "ab"]
    configs = configs_of(gateways)
    before = extract(["warm the loop thread up"], Place, client=configs, progress=False)
    assert before["error"].isna().all()  # the parent's extraction loop thread now runs
    _MARKS.append("before the fork")
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
        cluster, client = start_cluster(tmp_path / "workers.sqlite3", set_as_default=False)
    try:
        assert all(client.run(_forked).values())  # the workers are forks of this process
        source = pd.Series([f"forked {i}" for i in range(40)], name="text")
        out = extract(
            dd.from_pandas(source, npartitions=4),
            Place,
            client=configs,
            ledger=str(tmp_path / "ledger.sqlite3"),
        )
        computed = client.compute(out).result(timeout=120)
    finally:
        client.close()
        cluster.close()
    assert computed["error"].isna().all() and computed.index.equals(source.index)
    assert object_requests(gateways) == 1 + 40
