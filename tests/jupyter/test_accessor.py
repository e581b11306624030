"""The ``.koine`` accessor on pandas: the same results as the functions, DataFrame prompts
naming columns, and a clear error (nothing sent) for a name that is not a column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pandas as pd
import pytest
from pydantic import BaseModel

from koine_jupyter.accessor import KoineAccessor
from koine_jupyter.extraction import VerbOptions, classify, clear_cache, extract, generate
from koine_sdk import KoineError, SyncKoineClient, create_koine_sync
from koine_sdk.testing import LocalGateway


def koine(obj: object) -> KoineAccessor:
    """``obj.koine``, typed (pandas' and Dask's accessors are dynamic attributes)."""
    accessor: KoineAccessor = cast(Any, obj).koine
    assert isinstance(accessor, KoineAccessor)
    return accessor


LABELS = ["positive", "negative", "neutral"]


class Review(BaseModel):
    stars: int


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def client(koine_gateway: LocalGateway) -> Iterator[SyncKoineClient]:
    c = create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    yield c
    c.close()


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    # the second call's answers come from this process's memory: same values, no tokens paid
    paid = {"answer_from", "input_tokens", "output_tokens", "attempts"}
    cols = [c for c in a.columns if c not in paid]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_series_accessor_gives_the_functions_results(
    client: SyncKoineClient, koine_gateway: LocalGateway
) -> None:
    s = pd.Series(["great phone", "broke in a day"], index=[10, 20])
    opts: VerbOptions = {"client": client, "ledger": False, "progress": False}
    _same(
        koine(s).extract(Review, "Rate: {text}", **opts), extract(s, Review, "Rate: {text}", **opts)
    )
    _same(koine(s).classify(LABELS, **opts), classify(s, LABELS, **opts))
    _same(koine(s).generate("Summarise: {text}", **opts), generate(s, "Summarise: {text}", **opts))
    got = koine(s).classify(LABELS, reason=True, **opts)
    assert list(got.index) == [10, 20]
    assert list(got["label"].cat.categories) == LABELS
    assert "reason" in got.columns


def test_dataframe_prompt_fills_columns_per_row(
    client: SyncKoineClient, koine_gateway: LocalGateway
) -> None:
    df = pd.DataFrame({"title": ["Loud", "Quiet"], "body": ["fan noise", "silent"]})
    opts: VerbOptions = {"client": client, "ledger": False, "progress": False}
    got = koine(df).generate("{title}: {body}", **opts)
    assert got["error"].isna().all(), got
    prompts = [
        json.loads(r.body)["prompt"] for r in koine_gateway.requests if r.path == "/generate-text"
    ]
    assert any("Loud: fan noise" in p for p in prompts), prompts
    assert any("Quiet: silent" in p for p in prompts), prompts
    expected = generate(["Loud: fan noise", "Quiet: silent"], "{text}", **opts)
    _same(got.reset_index(drop=True), expected)
    ext = koine(df).extract(Review, "{title} / {body}", **opts)
    assert ext["error"].isna().all(), ext
    lab = koine(df).classify(LABELS, "Mood of {title}: {body}", **opts)
    assert list(lab["label"].cat.categories) == LABELS


def test_missing_column_is_refused_before_anything_is_sent(
    client: SyncKoineClient, koine_gateway: LocalGateway
) -> None:
    df = pd.DataFrame({"title": ["a"], "body": ["b"]})
    for call in (
        lambda: koine(df).generate("{title}: {bdy}", client=client, progress=False),
        lambda: koine(df).classify(LABELS, "{nope}", client=client, progress=False),
        lambda: koine(df).extract(Review, "{title} {0}", client=client, progress=False),
        lambda: koine(df).generate("no column named", client=client, progress=False),
    ):
        with pytest.raises(KoineError) as info:
            call()
        assert info.value.code == "INVALID_ARGUMENT"
    with pytest.raises(KoineError, match="'bdy', not a column"):
        koine(df).generate("{title} {bdy}")
    assert koine_gateway.requests == []


def test_one_column_frame_is_that_column(client: SyncKoineClient) -> None:
    df = pd.DataFrame({"review": ["fine", "bad"]})
    opts: VerbOptions = {"client": client, "ledger": False, "progress": False}
    _same(koine(df).classify(LABELS, **opts), classify(df["review"], LABELS, **opts))


def test_a_missing_cell_fails_that_row_without_a_request(
    client: SyncKoineClient, koine_gateway: LocalGateway
) -> None:
    df = pd.DataFrame({"title": ["A", None], "body": ["x", "y"]})
    got = koine(df).generate("{title}: {body}", client=client, ledger=False, progress=False)
    assert got["error"].isna().tolist() == [True, False]
    assert str(got["error"].iloc[1]).startswith("INVALID_ARGUMENT")
    assert sum(1 for r in koine_gateway.requests if r.path == "/generate-text") == 1
