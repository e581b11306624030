"""``classify`` and ``generate`` on Dask input (the same ``LocalCluster`` as ``extract``): a lazy
result with the pandas columns and dtypes, answers shared with pandas calls through the ledger."""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import pandas as pd
from _cluster import configs_of
from distributed import Client

from koine_jupyter.extraction import classify, generate, parquet_schema, totals
from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway

LABELS = ["spam", "ham"]


def texts(n: int) -> pd.Series[str]:
    index = pd.Index(range(100, 100 + 2 * n, 2), name="id")
    return pd.Series([f"message {i}" for i in range(n)], index=index, name="text")


def sent(gateways: list[LocalGateway], path: str) -> int:
    return sum(1 for g in gateways for r in g.requests if r.path == path)


def test_classify_on_dask_is_lazy_with_the_pandas_dtypes(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger.sqlite3")
    source = texts(12)
    ddf = dd.from_pandas(source, npartitions=3)
    out = classify(ddf, LABELS, reason=True, client=configs_of(gateways), ledger=ledger)
    assert sent(gateways, "/generate-object") == 0  # lazy
    assert isinstance(out.dtypes["label"], pd.CategoricalDtype)
    assert list(out.dtypes["label"].categories) == LABELS
    computed = out.compute()
    assert sent(gateways, "/generate-object") == 12
    summed = totals(out)
    assert (summed["rows"], summed["requests"], summed["partitions"]) == (12, 12, 3)
    assert computed.index.equals(source.index)
    assert computed["error"].isna().all()
    assert list(computed.dtypes["label"].categories) == LABELS
    assert set(computed["label"]) <= set(LABELS)
    with create_koine_sync(base_url=gateways[0].base_url, auth_key=gateways[0].auth_key) as c:
        local = classify(source, LABELS, reason=True, client=c, ledger=ledger, progress=False)
    assert sent(gateways, "/generate-object") == 12  # the cluster's answers, reused
    assert (local["answer_from"] == "ledger").all()
    assert computed.dtypes.to_dict() == local.dtypes.to_dict()
    assert computed["label"].tolist() == local["label"].tolist()


def test_generate_on_dask_is_lazy_with_the_pandas_dtypes(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger.sqlite3")
    source = texts(8)
    ddf = dd.from_pandas(source, npartitions=2)
    out = generate(
        ddf, "Repeat: {text}", system="short", client=configs_of(gateways), ledger=ledger
    )
    assert sent(gateways, "/generate-text") == 0
    assert str(out.dtypes["text"]) == "string"
    computed = out.compute()
    assert sent(gateways, "/generate-text") == 8
    assert computed["error"].isna().all()
    assert computed.loc[100, "text"].endswith("message 0")
    with create_koine_sync(base_url=gateways[0].base_url, auth_key=gateways[0].auth_key) as c:
        local = generate(
            source, "Repeat: {text}", system="short", client=c, ledger=ledger, progress=False
        )
    assert sent(gateways, "/generate-text") == 8
    assert computed.dtypes.to_dict() == local.dtypes.to_dict()
    assert parquet_schema(out).field("text") is not None
