"""The ``.koine`` accessor on Dask Series and DataFrames (the folder's ``LocalCluster``): lazy
results equal to the functions', DataFrame prompts filled per row on the workers; and pandas use
of the accessor never imports Dask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, cast

import dask.dataframe as dd
import pandas as pd
import pytest
from _cluster import configs_of
from distributed import Client

from koine_jupyter.accessor import KoineAccessor, register_dask
from koine_jupyter.extraction import classify, generate
from koine_sdk import KoineError
from koine_sdk.testing import LocalGateway


def koine(obj: object) -> KoineAccessor:
    """``obj.koine``, typed (pandas' and Dask's accessors are dynamic attributes)."""
    accessor: KoineAccessor = cast(Any, obj).koine
    assert isinstance(accessor, KoineAccessor)
    return accessor


LABELS = ["spam", "ham"]


def sent(gateways: list[LocalGateway], path: str) -> list[str]:
    return [json.loads(r.body)["prompt"] for g in gateways for r in g.requests if r.path == path]


def test_dask_series_and_frame_accessor(
    dask_client: Client, gateways: list[LocalGateway], tmp_path: Path
) -> None:
    register_dask()
    ledger = str(tmp_path / "ledger.sqlite3")
    source = pd.Series([f"message {i}" for i in range(6)], name="text")
    ds = dd.from_pandas(source, npartitions=2)
    out = koine(ds).classify(LABELS, client=configs_of(gateways), ledger=ledger)
    assert sent(gateways, "/generate-object") == []  # lazy
    by_fn = classify(ds, LABELS, client=configs_of(gateways), ledger=ledger)
    assert out.dtypes.to_dict() == by_fn.dtypes.to_dict()
    assert out.compute()["label"].tolist() == by_fn.compute()["label"].tolist()
    assert len(sent(gateways, "/generate-object")) == 6  # the second compute paid nothing

    frame = pd.DataFrame({"title": ["A", "B", "C"], "body": ["x", "y", "z"]})
    dframe = dd.from_pandas(frame, npartitions=2)
    text = koine(dframe).generate("{title}: {body}", client=configs_of(gateways), ledger=ledger)
    expected = generate(["A: x", "B: y", "C: z"], "{text}", client=configs_of(gateways))
    assert text.compute()["text"].tolist() == expected["text"].tolist()
    assert {"A: x", "B: y", "C: z"} <= set(sent(gateways, "/generate-text"))
    with pytest.raises(KoineError, match="'nope', not a column"):
        koine(dframe).generate("{title} {nope}", client=configs_of(gateways))


def test_pandas_accessor_never_imports_dask(koine_gateway: LocalGateway, tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import pandas as pd
        import koine_jupyter.accessor
        from koine_sdk import KoineConfig

        config = KoineConfig(
            base_url={koine_gateway.base_url!r}, auth_key={koine_gateway.auth_key!r}
        )
        df = pd.DataFrame({{"a": ["x", "y"], "b": ["1", "2"]}})
        out = df.koine.classify(["p", "q"], "{{a}} {{b}}", client=config, progress=False)
        assert out["error"].isna().all(), out
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
