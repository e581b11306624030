"""A run's statistics as a typed value: what the frame shows reads back the same, and a
ledger's statistics of an earlier version read back."""

from __future__ import annotations

from koine_jupyter.extraction import classify, history
from koine_jupyter.extraction._stats import RunStats
from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway


def test_the_statistics_are_typed_and_read_back_the_same(koine_gateway: LocalGateway) -> None:
    with create_koine_sync(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
    ) as koine:
        df = classify(["a", "b [[fail]]", "a"], ["x", "y"], client=koine, progress=False)
    attrs = df.attrs["koine"]
    stats = RunStats.read(attrs)
    assert stats is not None
    assert (stats.verb, stats.rows, stats.succeeded, stats.failed) == ("classify", 3, 2, 1)
    assert (stats.requests, stats.duplicates) == (2, 1)
    assert stats.input_tokens == int(df["input_tokens"].sum())
    assert stats.as_dict() == attrs
    assert history().iloc[0]["kind"] == "classify"


def test_statistics_of_an_earlier_version_read_back() -> None:
    old = {"rows": 2, "succeeded": 1, "failed": 1, "cache_hits": 1, "requests": 1, "extra": 5}
    stats = RunStats.read(old)
    assert stats is not None
    assert (stats.rows, stats.ledger_hits, stats.verb, stats.gateways) == (2, 1, "extract", ())
    assert RunStats.read(None) is None
