"""One measurement of ``extract`` on Dask, in a fresh process: ``python _dask_driver.py IMPL JSON``.

Run by ``run.py`` (benchmark ``dask``). ``IMPL``: ``pandas`` (one process, no Dask: the floor),
``dask-W`` (a ``LocalCluster`` of W worker processes, 2 threads each, started before the clock).
``JSON``: ``gateways`` ([[url, key], ...]), ``n`` rows, ``partitions``. A warm-up extraction runs
first (imports, worker start, connections). Prints one JSON line: ``wall`` seconds of the timed
extraction, ``rows``, ``errors``, ``unique`` (every row once).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
import uuid
from typing import Any

import pandas as pd
from pydantic import BaseModel

from koine_jupyter.extraction import extract
from koine_sdk import KoineConfig


class Person(BaseModel):
    name: str
    age: int


def texts(n: int, what: str) -> pd.Series:
    tag = uuid.uuid4().hex[:8]  # fresh texts: nothing is in any ledger yet
    return pd.Series([f"{what} {i} ({tag}): a person described in some text" for i in range(n)])


def main() -> None:
    impl, a = sys.argv[1], json.loads(sys.argv[2])
    configs = [KoineConfig(base_url=url, auth_key=key) for url, key in a["gateways"]]
    n, partitions = a["n"], a["partitions"]
    options: dict[str, Any] = {
        "client": configs,
        "ledger": f"{tempfile.mkdtemp(prefix='koine-bench-')}/ledger.sqlite3",
    }
    if impl == "pandas":
        extract(texts(8, "warm-up"), Person, progress=False, **options)
        started = time.perf_counter()
        df = extract(texts(n, "row"), Person, progress=False, **options)
        wall = time.perf_counter() - started
    else:
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

        workers = int(impl.split("-")[1])
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=2,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",  # its HTTP server on a free port, never 8787
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster),
        ):
            warm = dd.from_pandas(texts(4 * workers, "warm-up"), npartitions=2 * workers)
            extract(warm, Person, **options).compute()
            lazy = extract(
                dd.from_pandas(texts(n, "row"), npartitions=partitions), Person, **options
            )
            started = time.perf_counter()
            df = lazy.compute()
            wall = time.perf_counter() - started
    result = {
        "wall": wall,
        "rows": len(df),
        "errors": int(df["error"].notna().sum()),
        "unique": bool(df.index.is_unique),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
