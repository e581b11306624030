"""``extract`` on Dask input, on a real ``LocalCluster`` of 2 worker processes and 2 local
gateways (limit 2 each, 30 ms per request): laziness, columns and dtypes, index and partitions,
the gateways' limits over all workers, Parquet, the totals, a killed worker, a fatal error."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Literal

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pytest
from _cluster import LIMIT, configs_of, object_requests
from dask.diagnostics import ProgressBar
from distributed import Client, Semaphore, get_task_stream, progress
from pydantic import BaseModel

from koine_jupyter.extraction import estimate, extract, parquet_schema, retry_failed, totals
from koine_jupyter.extraction._arrow import arrow_type
from koine_jupyter.extraction._leases import semaphore_name
from koine_sdk import KoineConfig, KoineError, create_koine_sync
from koine_sdk.ledger import open_ledger
from koine_sdk.testing import LocalGateway


class Place(BaseModel):
    city: str
    zip: int


class Town(BaseModel):
    name: str
    population: int | None
    area: float
    capital: bool
    kind: Literal["town", "city"]
    streets: list[str]
    place: Place


def texts(n: int, tag: str = "") -> pd.Series[str]:
    """``n`` distinct texts indexed by ids 10, 13, 16, ... (an index that is not 0..n-1)."""
    index = pd.Index(range(10, 10 + 3 * n, 3), name="id")
    return pd.Series([f"text {i}{tag}" for i in range(n)], index=index, name="text")


def ledger_file(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.sqlite3")


def leases_taken(client: Client, gateways: list[LocalGateway], within: float = 0.0) -> int:
    """The leases of the gateways' semaphores held on the scheduler (waiting up to ``within``
    seconds for them to be given back)."""
    deadline = time.monotonic() + within
    while True:
        names = [semaphore_name(g.base_url, LIMIT) for g in gateways]
        taken = sum(
            Semaphore(LIMIT, name, client.scheduler, client.loop).get_value() for name in names
        )
        if taken == 0 or time.monotonic() >= deadline:
            return taken
        time.sleep(0.1)


def test_the_result_is_lazy_with_the_pandas_columns_dtypes_index_and_partitions(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    source = texts(24)
    ddf = dd.from_pandas(source, npartitions=3)
    out = extract(ddf, Town, "{text}", client=configs_of(gateways), ledger=ledger_file(tmp_path))
    assert object_requests(gateways) == 0  # lazy: nothing sent yet
    assert out.npartitions == 3 and out.divisions == ddf.divisions
    with create_koine_sync(base_url=gateways[0].base_url, auth_key=gateways[0].auth_key) as c:
        pandas_result = extract(
            source, Town, "{text}", client=c, ledger=ledger_file(tmp_path), progress=False
        )
    assert out.dtypes.to_dict() == pandas_result.dtypes.to_dict()  # the meta, from the schema
    computed = out.compute()
    assert computed.dtypes.to_dict() == pandas_result.dtypes.to_dict()
    assert list(computed.columns) == list(pandas_result.columns)
    assert computed.index.equals(source.index) and computed.index.name == "id"
    assert computed["error"].isna().all()
    assert (computed["answer_from"] == "ledger").all()  # the pandas call paid for them
    values = [c for c in computed.columns if c not in ("input_tokens", "answer_from")]
    values = [c for c in values if c != "output_tokens"]
    pd.testing.assert_frame_equal(computed[values], pandas_result[values])


def test_a_one_column_frame_is_its_column_and_bad_arguments_fail_before_any_task(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    frame = dd.from_pandas(texts(6).to_frame(), npartitions=2)
    configs = configs_of(gateways)
    out = extract(frame, Place, client=configs, ledger=ledger_file(tmp_path))
    assert len(out.compute()) == 6
    pandas_out = extract(texts(2).to_frame(), Place, client=configs[0], progress=False)
    assert pandas_out["error"].isna().all()
    sent = object_requests(gateways)
    with create_koine_sync(base_url=gateways[0].base_url, auth_key=gateways[0].auth_key) as c:
        bad: list[tuple[dict[str, Any], str]] = [
            ({"client": c}, "pass client.config"),
            ({"client": [configs[0], c]}, "pass client.config"),
            ({"client": "http://x"}, "KoineConfig"),
            ({"client": []}, "names no gateway"),
            ({"sample": 5}, "sample="),
            ({"max_rows": 10}, "max_rows="),
            ({"max_tokens": 10}, "max_tokens="),
            ({"progress": "text"}, "progress is Dask's"),
            ({"concurrency": 0}, "concurrency"),
            ({"ledger": 3}, "ledger must be"),
        ]
        for kwargs, needle in bad:
            with pytest.raises(KoineError) as info:
                extract(dd.from_pandas(texts(4), npartitions=2), Place, **kwargs)
            assert info.value.code == "INVALID_ARGUMENT", kwargs
            assert needle in info.value.message, (kwargs, info.value.message)
    with pytest.raises(KoineError, match="extracted by extract"):
        estimate(out, Place)  # pandas only: a sample of it, e.g. ddf["text"].head(1000)
    with pytest.raises(KoineError, match="compute that extraction again"):
        retry_failed(out)
    with pytest.raises(KoineError, match="compute that extraction again"):
        retry_failed(out.compute())
    two = dd.from_pandas(pd.DataFrame({"a": ["x"], "b": ["y"]}), npartitions=1)
    with pytest.raises(KoineError, match="DataFrame of 2 columns"):
        extract(two, Place, client=configs)
    with pytest.raises(KoineError) as info:
        extract(frame, Place, client=KoineConfig(base_url=gateways[0].base_url, auth_key=""))
    assert info.value.code == "INVALID_CONFIG"
    assert object_requests(gateways) == sent  # nothing was sent for them


def test_empty_input_gives_an_empty_frame_of_the_same_dtypes(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    empty = pd.Series([], dtype="string", name="text", index=pd.Index([], dtype="int64"))
    out = extract(dd.from_pandas(empty, npartitions=1), Town, client=configs_of(gateways))
    computed = out.compute()
    assert len(computed) == 0
    pandas_empty = extract([], Town, client=configs_of(gateways)[0], progress=False)
    assert computed.dtypes.to_dict() == pandas_empty.dtypes.to_dict()
    assert object_requests(gateways) == 0


def test_by_default_each_worker_records_in_its_own_default_ledger(
    dask_client: Client, gateways: list[LocalGateway]
) -> None:
    out = extract(
        dd.from_pandas(texts(8, tag=" default ledger"), npartitions=2),
        Place,
        client=configs_of(gateways),
    )
    assert out.compute()["error"].isna().all()
    where = set(dask_client.run(lambda: os.environ["KOINE_LEDGER"]).values())
    assert len(where) == 1 and where != {os.environ["KOINE_LEDGER"]}  # the workers', not ours
    groups = open_ledger(where.pop())._query("SELECT params FROM runs")
    assert sum(totals(out)["group"] in params for (params,) in groups) == 2  # one per partition
    assert totals(out)["requests"] == 8 and totals(out)["partitions"] == 2


def test_a_wrong_key_fails_the_compute_at_once_with_auth_invalid(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    wrong = [KoineConfig(base_url=g.base_url, auth_key="wrong-key-1234") for g in gateways]
    out = extract(
        dd.from_pandas(texts(200), npartitions=4), Place, client=wrong, ledger=ledger_file(tmp_path)
    )
    started = time.perf_counter()
    with pytest.raises(KoineError) as info:
        out.compute()
    assert time.perf_counter() - started < 30  # not a hang
    assert info.value.code == "AUTH_INVALID"
    assert "extract stopped in partition" in info.value.message
    assert "wrong-key-1234" not in str(info.value)
    assert object_requests(gateways) <= 4 * 2 * LIMIT  # each partition stops at its first 403s


def test_parquet_is_written_by_the_workers_and_reads_back_equal(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    source = texts(40, tag=" parquet")
    ledger = ledger_file(tmp_path)
    out = extract(
        dd.from_pandas(source, npartitions=4), Town, client=configs_of(gateways), ledger=ledger
    )
    folder = tmp_path / "towns"
    out.to_parquet(folder, schema=parquet_schema(out))  # computed on the workers
    assert len(list(folder.glob("*.parquet"))) == 4
    back = pd.read_parquet(folder)
    assert len(back) == 40 and back.index.equals(source.index)
    assert back.dtypes.drop("streets").to_dict() == out.dtypes.drop("streets").to_dict()
    assert (back["answer_from"] == "request").all() and back["error"].isna().all()
    again = extract(source, Town, client=configs_of(gateways)[0], ledger=ledger, progress=False)
    assert (again["answer_from"] == "ledger").all()  # written once, paid once
    assert back["streets"].map(list).tolist() == again["streets"].tolist()
    scalars = [c for c in again.columns if c not in ("streets", "answer_from")]
    scalars = [c for c in scalars if c not in ("input_tokens", "output_tokens")]
    pd.testing.assert_frame_equal(back[scalars], again[scalars])
    assert totals(back)["requests"] == 40  # the frame read back still names its runs


class Visit(BaseModel):
    day: dt.date
    counts: dict[str, int]
    scores: tuple[float, ...]
    stops: list[Place]


def test_parquet_schema_types_object_columns_and_names_those_parquet_cannot_hold(
    gateways: list[LocalGateway],
) -> None:
    assert arrow_type(dt.date) == pa.date32()
    assert arrow_type(dict[str, int]) == pa.map_(pa.string(), pa.int64())
    assert arrow_type(tuple[float, ...]) == pa.list_(pa.float64())
    assert arrow_type(list[Literal["a", "b"]] | None) == pa.list_(pa.string())
    assert arrow_type(list[Place]) is None and arrow_type(Literal["a", 1]) is None
    out = extract(dd.from_pandas(texts(4), npartitions=2), Visit, client=configs_of(gateways))
    with pytest.raises(KoineError) as info:
        parquet_schema(out)  # nothing computed: the types come from the schema
    assert info.value.code == "INVALID_ARGUMENT" and "['stops']" in info.value.message
    typed = parquet_schema(out.drop(columns=["stops"]))  # the rest has Parquet types
    assert typed.field("day").type == pa.date32() and typed.field("id").type == pa.int64()
    with pytest.raises(KoineError, match="takes the lazy frame"):
        parquet_schema(pd.DataFrame({"a": [1]}))
    assert object_requests(gateways) == 0


def test_the_local_threaded_scheduler_shares_the_limit_and_shows_dask_progress(
    gateways: list[LocalGateway], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = extract(
        dd.from_pandas(texts(60, tag=" threads"), npartitions=6),
        Place,
        client=configs_of(gateways),
        ledger=ledger_file(tmp_path),
    )
    with dask.config.set(scheduler="threads", num_workers=6), ProgressBar(minimum=0, dt=0.05):
        computed = out.compute()
    assert computed["error"].isna().all() and len(computed) == 60
    assert all(g.peak["nonStreaming"] <= LIMIT for g in gateways)
    assert sum(g.rejected for g in gateways) == 0  # 6 partitions, one limit per gateway
    assert "100% Completed" in capsys.readouterr().out


def test_distributed_progress_follows_the_extraction(
    dask_client: Client,
    gateways: list[LocalGateway],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = extract(
        dd.from_pandas(texts(40, tag=" progress"), npartitions=4),
        Place,
        client=configs_of(gateways),
        ledger=ledger_file(tmp_path),
    )
    persisted = out.persist()
    progress(persisted, notebook=False)  # a text bar in a terminal; blocks until the end
    assert "100% Completed" in capsys.readouterr().out
    assert persisted.compute()["error"].isna().all()


def test_partitions_holding_the_same_texts_pay_each_text_once(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    """4 partitions on 2 worker processes each hold the same 10 texts (issue 21: 40 calls): the
    partitions claim each key in the shared ledger and wait for each other's answers."""
    same = [f"text {i} shared [[delay=0.2]]" for i in range(10)]
    source = pd.Series(same * 4, index=pd.Index(range(40), name="id"), name="text")
    out = extract(
        dd.from_pandas(source, npartitions=4),
        Place,
        client=configs_of(gateways),
        ledger=ledger_file(tmp_path),
    )
    computed = out.compute()
    assert computed["error"].isna().all()
    assert object_requests(gateways) == 10  # each distinct text once, whichever partition asked
    counts = computed["answer_from"].value_counts().to_dict()
    assert counts == {"request": 10, "ledger": 30}


@pytest.mark.slow
def test_1000_rows_on_2_workers_and_2_gateways_every_row_once_within_the_limits(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    n = 1000
    source = texts(n, tag=" thousand")
    ledger = ledger_file(tmp_path)
    out = extract(
        dd.from_pandas(source, npartitions=8), Place, client=configs_of(gateways), ledger=ledger
    )
    started = time.perf_counter()
    with get_task_stream(dask_client) as stream:
        computed = out.compute()
    seconds = time.perf_counter() - started
    assert computed.index.equals(source.index) and computed.index.is_unique
    assert computed["error"].isna().all() and (computed["answer_from"] == "request").all()
    assert object_requests(gateways) == n
    for g in gateways:
        assert g.peak["nonStreaming"] <= LIMIT
        assert g.rejected == 0  # the workers never asked a gateway for more than its limit
        assert object_requests([g]) > n / 4  # both replicas took a share
    hosts = open_ledger(ledger)._query("SELECT DISTINCT pid FROM runs")
    assert len(hosts) == 2  # both worker processes ran partitions
    assert {t["key"][0].split("-")[0] for t in stream.data} >= {"koine"}  # named for the dashboard
    assert leases_taken(dask_client, gateways) == 0  # every lease was given back
    sums = totals(out)
    assert sums["rows"] == sums["succeeded"] == sums["requests"] == n
    assert sums["partitions"] == sums["runs"] == 8 and sums["unfinished_runs"] == 0
    sent = {g["base_url"]: g["sent"] for g in sums["gateways"]}
    assert sent == {g.base_url: object_requests([g]) for g in gateways}
    print(f"1000 rows on 2 workers: {seconds:.1f} s; ideal {n / (2 * LIMIT) * 0.03:.1f} s")


@pytest.mark.slow
def test_a_killed_worker_reruns_its_partitions_from_the_ledger_and_no_row_is_lost(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    n = 1000
    source = texts(n, tag=" killed")
    ledger = ledger_file(tmp_path)
    out = extract(
        dd.from_pandas(source, npartitions=10), Place, client=configs_of(gateways), ledger=ledger
    )
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 60
        while object_requests(gateways) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        busy = [a for a, keys in dask_client.processing().items() if keys]
        pids: dict[str, int] = dask_client.run(os.getpid)
        pid = pids[busy[0]]
        os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker; its tasks run again
        killed.append(pid)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        computed = dask_client.compute(out).result(timeout=120)
    finally:
        killer.join()
    assert killed
    assert computed.index.equals(source.index) and computed.index.is_unique
    assert computed["error"].isna().all()
    sent = object_requests(gateways)
    in_flight = 2 * LIMIT  # at most what the killed worker had in flight (its leases)
    assert n <= sent <= n + in_flight
    for g in gateways:
        assert g.peak["nonStreaming"] <= LIMIT
    # The dead worker's leases come back when the scheduler's lease timeout (5 s here) passes.
    assert leases_taken(dask_client, gateways, within=15) == 0
    sums = totals(out)
    assert sums["unfinished_runs"] >= 1  # the killed partition's run never ended...
    assert sums["requests"] <= sent <= sums["requests"] + in_flight  # ...its requests count
    assert sums["rows"] == sums["succeeded"] == n
    print(f"killed worker {killed[0]}: {sent} requests for {n} rows; totals {sums['requests']}")
