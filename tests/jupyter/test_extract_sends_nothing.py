"""A run with nothing to send talks to no gateway: not even ``/health``. Strict replay answers
every row from the ledger or fails it ``REPLAY_MISS``; a run whose rows are all ledger hits
needs no gateway either."""

from __future__ import annotations

from pathlib import Path

from koine_jupyter.extraction import generate
from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway


def test_strict_replay_and_all_hits_send_nothing_not_even_health(
    koine_gateway: LocalGateway, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "replay.sqlite3")
    gw = {"base_url": koine_gateway.base_url, "auth_key": koine_gateway.auth_key}
    with create_koine_sync(**gw) as koine:
        generate(["one", "two"], "Say {text}", client=koine, ledger=ledger, progress=False)
    koine_gateway.reset()
    with create_koine_sync(**gw, replay="strict", ledger=ledger) as strict:
        df = generate(
            ["one", "two", "three", "four [[status=502]]"],
            "Say {text}",
            client=strict,
            ledger=ledger,
            progress=False,
        )
    assert list(df["answer_from"]) == ["ledger", "ledger", "not_sent", "not_sent"]
    assert df["error"].iloc[2:].str.startswith("REPLAY_MISS").all()
    assert koine_gateway.requests == []  # no request, no /health
    with create_koine_sync(**gw) as koine:
        hits = generate(["two", "one"], "Say {text}", client=koine, ledger=ledger, progress=False)
    assert (hits["answer_from"] == "ledger").all()
    assert koine_gateway.requests == []
